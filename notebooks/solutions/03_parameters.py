"""Solutions to the exercises of 03_parameters.ipynb.

Run from anywhere: python notebooks/solutions/03_parameters.py
"""

from llmcore import scale, teach
from llmcore.model import parameter_breakdown
from llmcore.run import load_run

run = load_run("storyworld")

# 03.1 fp32 spends 4 bytes on each parameter: twice the shipped fp16 file's numbers.
answer = 4 * run.model.n_params()
print(teach.check("03.1", answer))

# 03.2 int8 is 1 byte per parameter: 70e9 bytes = 70 GB.
answer = scale.file_size_bytes(70e9, "int8") / 1e9
print(teach.check("03.2", answer))

# 03.3 The component with the largest count. Each MLP has 2 x d_model x 4 d_model weights,
# twice attention's 4 x d_model x d_model.
parts = parameter_breakdown(run.model.cfg)
answer = max(parts, key=parts.get)
print(parts)
print(teach.check("03.3", answer))
