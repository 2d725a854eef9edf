"""Solutions to the exercises of 06_interpretability.ipynb.

Run from anywhere: python notebooks/solutions/06_interpretability.py
"""

from llmcore import teach
from llmcore.interpret.lens import logit_lens
from llmcore.interpret.sae import load_sae
from llmcore.run import load_run

run = load_run("storyworld")
sae = load_sae(run)

# 06.1 The labelling is stored in the SAE file's metadata.
answer = sae.metrics["concepts"]["golden_gate_bridge"]["feature"]
print(teach.check("06.1", answer))

# 06.2 k of d_sae features are on (the shipped SAE: 8 of 384, about 2%).
answer = sae.cfg.k / sae.cfg.d_sae
print(f"{sae.cfg.k} / {sae.cfg.d_sae:,} = {answer:.1%}")
print(teach.check("06.2", answer))

# 06.3 Read the last position's top guess at every stage; the last stage is the model's answer.
lens = logit_lens(run.model, run.tokenizer, "Once upon a", k=1)
final = lens.top_strs[-1][-1][0]
for stage, guesses in zip(lens.stages, lens.top_strs):
    print(f"{stage:<8} {guesses[-1][0]!r}")
answer = next(int(stage.split()[1]) for stage, guesses in zip(lens.stages, lens.top_strs)
              if stage.startswith("block") and guesses[-1][0] == final)
print(teach.check("06.3", answer))
