"""Solutions to the exercises of 00_big_picture.ipynb.

Run from anywhere: python notebooks/solutions/00_big_picture.py
Each answer is worked out the way the notebook suggests, then checked with teach.check.
"""

import math

from llmcore import teach
from llmcore.generate import Sampling, generate
from llmcore.run import load_run

run = load_run("storyworld")

# 00.1 loss = -ln(p), so p = e^(-loss). A loss near 0.67 means about one half: on a typical
# token the model gave the right one about a 50% chance, where a blind guess gives 1 in 1,024.
last = run.metrics()[-1]
answer = math.exp(-last["loss"])
print(f"loss {last['loss']:.3f} -> p = {answer:.2f}")
print(teach.check("00.1", answer))

# 00.2 Inference *uses* the model; interpretability looks inside it to explain what it does.
answer = "interpretability"
print(teach.check("00.2", answer))

# 00.3 The bridge stories talk about fog, San Francisco and tall towers: start with one of those
# and the model, having read hundreds of such stories, brings the bridge up itself.
prompt = "The tall red towers"
print(prompt + generate(run.model, run.tokenizer, prompt, Sampling(temperature=0, max_new_tokens=40)))
print(teach.check("00.3", prompt))
