"""Guess the next word: a person against the model, on real text.

A round cuts a text just before a word and hides the rest. The person types a word;
the model's guess is its most likely next token, finished the way it would finish it
(it writes "b" then "ridge", and a person should be compared with "bridge", not "b"):

    >>> first_word(" bridge. The")
    'bridge'
    >>> same_word(" Bridge!", "bridge")
    True

`round_from` picks the cut, `model_word` makes the model's guess, `same_word` scores.
"""

from __future__ import annotations

import random
import re

from llmcore.errors import UserError

_WORD = re.compile(r"\s*([^\W_]+(?:['\-][^\W_]+)*|\S)")  # a word (don't, well-known) or one mark


def first_word(text: str) -> str:
    """The whole word (or the one mark) a text starts with: " bridge. The" -> "bridge"."""
    m = _WORD.match(text)
    return m.group(1) if m else text.strip()


def same_word(guess: str, actual: str) -> bool:
    """Does `guess` name the same word as `actual`? Case and surrounding marks do not count."""
    return bool(guess.strip()) and first_word(guess).lower() == first_word(actual).lower()


def round_from(tokenizer, text: str, seed: int) -> tuple[str, str]:
    """One round: (the text so far, the whole word that really came next).

    Cuts `text` at a token that starts a new word, with 12 to 40 tokens before it;
    the same seed gives the same round.
    """
    ids = tokenizer.encode(text)
    rng = random.Random(seed)
    starts = [i for i in range(12, len(ids)) if tokenizer.token_str(ids[i])[:1] == " "
              and tokenizer.token_str(ids[i])[1:2].isalpha()] or list(range(1, len(ids)))
    if not starts:
        raise UserError("the text is too short for the game")
    i = rng.choice(starts)
    before = ids[max(0, i - rng.randint(12, 40)) : i]
    return tokenizer.decode(before), first_word(tokenizer.decode(ids[i : i + 8]))


def model_word(model, tokenizer, context: str) -> tuple[str, str, float]:
    """The model's guess: (its most likely next token, the whole word it writes greedily from it, p of the token)."""
    from llmcore.generate import Sampling, generate, next_token_probs

    first, p = next_token_probs(model, tokenizer, context, k=1)[0]
    more = generate(model, tokenizer, context, Sampling(temperature=0, max_new_tokens=8))
    return first, first_word(more), float(p)
