"""Solutions to the exercises of 03_parameters.ipynb.

Run from anywhere: python notebooks/solutions/03_parameters.py
"""

import torch

from llmcore import teach
from llmcore.params import inspect_file
from llmcore.run import load_run

run = load_run("storyworld")
info = inspect_file(run.params_file)

# 03.1 One MLP: W_in [d_mlp, d_model], b_in [d_mlp], W_out [d_model, d_mlp], b_out [d_model].
mlp = [(t["name"], t["shape"]) for t in info["tensors"] if t["name"].startswith("blocks.0.mlp")]
print(mlp)
answer = sum(torch.Size(shape).numel() for _, shape in mlp)
print(teach.check("03.1", answer))


# 03.2 Embeddings: W_E (shared with the unembedding) and W_pos. Each block: two LayerNorms (2 x 2d),
# attention's qkv (3d x d + 3d) and out (d x d + d), the MLP (d x 4d + 4d + 4d x d + d).
# One final LayerNorm (2d). Per block that is 12 d^2 + 13 d.
def n_params(d_vocab, n_ctx, d_model, n_layers):
    d = d_model
    block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d + 4 * d * d + d)
    return d_vocab * d + n_ctx * d + n_layers * block + 2 * d


print(n_params(50257, 1024, 768, 12), "parameters in GPT-2 small")
print(teach.check("03.2", n_params))

# 03.3 bf16 keeps 8 significant bits: near 0.1 (between 1/16 and 1/8) its neighbours are
# 1/16 x 2^-7 = 0.000488 apart, and 0.1 rounds up to 0.10009765625.
answer = torch.tensor(0.1).to(torch.bfloat16).item()
print(answer, "in bf16;", torch.tensor(0.1).to(torch.float16).item(), "in fp16")
print(teach.check("03.3", answer))
