"""Solutions to the exercises of 06_interpretability.ipynb.

Run from anywhere: python notebooks/solutions/06_interpretability.py
"""

from llmcore import teach
from llmcore.corpus import load_corpus
from llmcore.generate import Sampling
from llmcore.interpret.features import default_strength, encode_text, top_contexts
from llmcore.interpret.lens import logit_lens
from llmcore.interpret.sae import load_sae
from llmcore.interpret.steer import NEUTRAL_PROMPTS, measure, steering_hook
from llmcore.run import load_run

run = load_run("storyworld")
sae = load_sae(run)

# 06.1 The mystery feature lights up on songs, drums, melodies and "the music filled the room".
encoded = encode_text(run, sae, load_corpus("storyworld", "val", n_chars=60_000).text)
for c in top_contexts(encoded, run.tokenizer, teach.mystery_feature(), n=6):
    print("".join(piece for piece, _ in c["pieces"]))
answer = "music"
print(teach.check("06.1", answer))


# 06.2 The features live in the activations: run the model on the text, encode what it carries
# at the SAE's hook ([tokens, features]), add up over the tokens, take the largest.
def strongest_feature(text):
    return int(encode_text(run, sae, text).acts.sum(0).argmax())


print(strongest_feature("The waves crashed on the beach and the ocean was blue."),
      "fires most on an ocean sentence; the labels say", sae.metrics["concepts"]["ocean"]["feature"])
print(teach.check("06.2", strongest_feature))

# 06.3 Read the last position's top guess at every stage; the last stage is the model's answer.
lens = logit_lens(run.model, run.tokenizer, "Once upon a", k=1)
final = lens.top_strs[-1][-1][0]
for stage, guesses in zip(lens.stages, lens.top_strs):
    print(f"{stage:<8} {guesses[-1][0]!r}")
answer = next(int(stage.split()[1]) for stage, guesses in zip(lens.stages, lens.top_strs)
              if stage.startswith("block") and guesses[-1][0] == final)
print(teach.check("06.3", answer))

# 06.4 The ocean's feature comes from the labels; llmcore's rule says how hard to push a feature that has
# no stored steering pick: half the most it fires in held-out stories. Twice that breaks the sentences.
ocean = sae.metrics["concepts"]["ocean"]["feature"]
strength = default_strength(run, sae, ocean)["strength"]
print(f"feature {ocean} at {strength}:", teach.check("06.4", (ocean, strength)))
twice = measure(run, NEUTRAL_PROMPTS[:5], range(2), "ocean", Sampling(temperature=0.8, max_new_tokens=30),
                hooks=[steering_hook(sae, ocean, 2 * strength)])
print(f"twice as hard, {2 * strength:.3f}: {twice['mention_rate']:.0%} mention the ocean, "
      f"fluency loss {twice['fluency_loss']:.2f}: the sentences break")
