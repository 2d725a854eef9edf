"""Solutions to the exercises of 05_inference.ipynb.

Run from anywhere: python notebooks/solutions/05_inference.py
"""

from llmcore import teach
from llmcore.generate import next_token_probs
from llmcore.run import load_run

run = load_run("storyworld")

# 05.1 The first of the model's guesses is the most likely one.
guesses = next_token_probs(run.model, run.tokenizer, "Once upon a", k=3)
print(guesses)
answer = guesses[0][0]
print(teach.check("05.1", answer))

# 05.2 Temperature 0 is greedy: all the probability goes to the top token, as with top_k=1.
answer = 0
print(teach.check("05.2", answer))

# 05.3 Sorted: 0.5 (total 0.5 < 0.7, keep going), 0.25 (total 0.75 >= 0.7, stop). Two tokens.
answer = 2
print(teach.check("05.3", answer))
