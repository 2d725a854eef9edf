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

# 01.2 10 TB / 6 bytes per word = 1.67e12 words; at 250 words a minute that is 1.1e8 hours;
# at 8 hours a day, 1.4e7 days; divided by 365.25 days a year, about 38,000 years.
words = 10e12 / 6
hours = words / 250 / 60
answer = hours / 8 / 365.25
print(f"{answer:,.0f} years")
print(teach.check("01.2", answer))

# 01.3 Bytes of the text divided by the number of tokens it becomes.
val = load_corpus("storyworld", "val")
answer = len(val.text.encode("utf-8")) / len(bpe.encode(val.text))
print(teach.check("01.3", answer))
