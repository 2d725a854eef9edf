"""Solutions to the exercises of 02_pretraining.ipynb.

Run from anywhere: python notebooks/solutions/02_pretraining.py
"""

import math

from llmcore import teach
from llmcore.corpus import load_corpus
from llmcore.generate import next_token_probs
from llmcore.run import load_run
from llmcore.tokenizer import CharTokenizer

shipped = load_run("storyworld")

# 02.1 A blind guess gives every token 1/V, so the loss is -ln(1/V) = ln V. The character
# tokenizer has far fewer tokens than BPE's 1,024, so its blind loss starts lower.
V = CharTokenizer.train(load_corpus("storyworld", "train").text).vocab_size
answer = math.log(V)
print(f"ln({V}) = {answer:.3f}")
print(teach.check("02.1", answer))


# 02.2 nats -> bits: divide by ln 2. Per token -> per byte: divide by the bytes one token stands for.
def bits_per_byte(loss, bytes_per_token):
    return loss / math.log(2) / bytes_per_token


print(teach.check("02.2", bits_per_byte))

# 02.3 p(' the' | 'Mia went to') is about a third (the model's favourite is 'r', for 'rest'),
# so storing ' the' costs a bit more than 1.5 bits: more than one bit, because p < 1/2.
p = dict(next_token_probs(shipped.model, shipped.tokenizer, "Mia went to"))[" the"]
answer = -math.log2(p)
print(f"p = {p:.3f}, -log2 p = {answer:.3f} bits")
print(teach.check("02.3", answer))
