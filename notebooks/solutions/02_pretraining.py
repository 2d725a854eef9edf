"""Solutions to the exercises of 02_pretraining.ipynb.

Run from anywhere: python notebooks/solutions/02_pretraining.py
"""

import math

from llmcore import teach
from llmcore.corpus import load_corpus
from llmcore.run import load_run

shipped = load_run("storyworld")

# 02.1 Every token gets probability 1/1024, so the loss is -ln(1/1024) = ln(1024) = 6.93 nats.
answer = math.log(1024)
print(teach.check("02.1", answer))

# 02.2 Each step reads batch_size windows of n_ctx tokens.
config = shipped.provenance["train_config"]
answer = shipped.provenance["steps"] * config["batch_size"] * shipped.model.cfg.n_ctx
print(f"{answer:,} tokens")
print(teach.check("02.2", answer))

# 02.3 nats -> bits: divide by ln 2. Per token -> per byte: divide by bytes per token.
val = load_corpus("storyworld", "val")
bytes_per_token = val.stats(shipped.tokenizer)["bytes_per_token"]
answer = shipped.provenance["val_loss"] / math.log(2) / bytes_per_token
print(teach.check("02.3", answer))
