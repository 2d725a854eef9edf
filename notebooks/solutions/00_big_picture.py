"""Solutions to the exercises of 00_big_picture.ipynb.

Run from anywhere: python notebooks/solutions/00_big_picture.py
Each answer is worked out the way the notebook suggests, then checked with teach.check.
"""

from llmcore import teach
from llmcore.run import load_run

run = load_run("storyworld")

# 00.1 Every parameter is one 16-bit number, 2 bytes; the header is extra.
answer = 2 * run.model.n_params()
print(teach.check("00.1", answer))

# 00.2 Inference *uses* the model; interpretability looks inside it to explain what it does.
answer = "interpretability"
print(teach.check("00.2", answer))
