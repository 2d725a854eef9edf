"""Solutions to the exercises of 01_data.ipynb.

Run from anywhere: python notebooks/solutions/01_data.py
"""

from llmcore import teach
from llmcore.corpus import load_corpus
from llmcore.run import load_run

bpe = load_run("storyworld").tokenizer

# 01.1 Count the ids the tokenizer gives back. Common words (with their leading space) are
# single tokens; rarer ones ("rolled", "Golden") may be cut into pieces.
sentence = "The fog rolled over the Golden Gate Bridge."
print(bpe.pieces(sentence))
answer = len(bpe.encode(sentence))
print(teach.check("01.1", answer))


# 01.2 Bytes, not characters: UTF-8 spends 2 bytes on 'è' and 4 on '🌉'.
def bytes_per_token(text):
    return len(text.encode("utf-8")) / len(bpe.encode(text))


print(teach.check("01.2", bytes_per_token))

# 01.3 Fewer: the tokenizer's merges are the stories' frequent pairs (' the', ' said', names),
# so on Python's documentation ('assert', 'exception', 'interpreter') it falls back to smaller pieces.
docs = load_corpus("python-docs", "all")
answer = bytes_per_token(docs.text)
print(f"{answer:.2f} bytes per token on the docs")
print(teach.check("01.3", answer))
