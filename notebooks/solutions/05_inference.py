"""Solutions to the exercises of 05_inference.ipynb.

Run from anywhere: python notebooks/solutions/05_inference.py
"""

from llmcore import teach
from llmcore.generate import next_token_probs
from llmcore.run import load_run

run = load_run("storyworld")

# 05.1 The model's top guess, read off next_token_probs (tokens carry their leading space).
guesses = next_token_probs(run.model, run.tokenizer, "Once upon a", k=3)
print(guesses)
answer = guesses[0][0]
print(teach.check("05.1", answer))


# 05.2 The k-th largest probability is the bar; everything under it goes to 0, and the kept
# ones are divided by their sum so that they add up to 1 again.
def top_k_filter(probs, k):
    kth = probs.topk(k).values[-1]
    kept = probs.masked_fill(probs < kth, 0.0)
    return kept / kept.sum()


print(teach.check("05.2", top_k_filter))

# 05.3 0.5 < 0.7, 0.5 + 0.25 = 0.75 >= 0.7: the two most likely tokens stay.
answer = 2
print(teach.check("05.3", answer))
