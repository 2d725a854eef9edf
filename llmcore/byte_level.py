"""GPT-2's byte-level trick, and the check that a tokenizers JSON uses it.

Byte-level BPE works on bytes, not characters, so it can encode any text and give
it back exactly. Its vocabulary is stored as strings, one stand-in character per
byte (``bytes_to_unicode``), which is why GPT-2's tokens look like ``"Ġthe"``.

``byte_table`` checks that a Hugging Face ``tokenizers`` JSON is byte-level BPE
that gives back every string exactly, and says which bytes each id stands for::

    {"model": {"type": "BPE", "vocab": {"a": 64, "Ġthe": 262, ...}}}  ->  [..., b"a", ..., b" the", ...]

``llmcore.tokenizer`` (our BPE *is* such a JSON) and ``llmcore.hf`` (reading
GPT-2 style files) both stand on this module; it imports neither.
"""

from __future__ import annotations

from llmcore.errors import UserError

MAX_LOAD_VOCAB = 300_000  # loading limit: real tokenizers (GPT-2: 50,257) fit, junk does not


# ----------------------------------------------------------------------------
# Bytes <-> printable characters (GPT-2's byte-level trick)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte (0..255) to a printable character.

    Byte-level BPE stores its vocabulary as strings, and a byte such as 0x20
    (space) or 0x0A (newline) is awkward inside a string, so each byte gets a
    stand-in character: printable bytes stand for themselves, the others are
    shifted past 255::

        >>> m = bytes_to_unicode()
        >>> m[ord("a")], m[ord(" ")], m[ord("\\n")]
        ('a', 'Ġ', 'Ċ')

    That is why GPT-2's vocabulary is full of tokens like ``"Ġthe"`` (" the").
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in mapping:  # control bytes, space, and a few Latin-1 gaps
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


BYTE_OF_CHAR = {c: b for b, c in bytes_to_unicode().items()}  # 'Ġ' -> 32


# ----------------------------------------------------------------------------
# Is this tokenizers JSON byte-level BPE?


def byte_table(obj: object, source: str) -> list[bytes]:
    """Check a tokenizers JSON is byte-level BPE; return id -> bytes.

    ``{"model": {"type": "BPE", "vocab": {"a": 64, "Ġthe": 262, ...}}}``
    -> ``[..., b"a", ..., b" the", ...]``. Every check here protects the promise
    ``decode(encode(s)) == s`` or refuses a hostile file before Rust sees it.
    """
    def fail(msg: str) -> UserError:
        return UserError(f"{source}: {msg}")

    if not isinstance(obj, dict):
        raise fail("'tokenizer' must be a JSON object (a Hugging Face tokenizers JSON)")
    model = obj.get("model")
    if model_type(model) != "BPE":
        raise fail("not a BPE tokenizer ('model.type' must be 'BPE')")
    for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix", "byte_fallback"):
        if model.get(key) not in (None, "", False, 0):
            raise fail(f"BPE option {key}={model.get(key)!r:.40} is not supported (it breaks exact round trips)")
    if obj.get("normalizer") is not None:
        raise fail("has a normalizer, which changes the text, so decode(encode(text)) would differ; not supported")
    if not _is_byte_level_pre_tokenizer(obj.get("pre_tokenizer")):
        raise fail(
            "pre-tokenizer must be ByteLevel (add_prefix_space false), optionally after Split with a literal or a "
            "simple regex (no repeated group holding a repeat or alternation); not byte-level BPE"
        )
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not vocab:
        raise fail("'model.vocab' must be a non-empty object of token -> id")
    merges = model.get("merges", [])
    if not isinstance(merges, list):
        raise fail("'model.merges' must be a list")
    added = obj.get("added_tokens", [])
    if added is None:
        added = []
    if not isinstance(added, list):
        raise fail("'added_tokens' must be a list")
    if len(vocab) + len(added) > MAX_LOAD_VOCAB or len(merges) > MAX_LOAD_VOCAB:
        raise fail(f"vocabulary is larger than the limit of {MAX_LOAD_VOCAB} tokens")

    for a in added:
        if not isinstance(a, dict) or not isinstance(a.get("content"), str) or not a.get("content"):
            raise fail("each added token must be an object with a non-empty 'content' string")
        if a.get("lstrip") or a.get("rstrip"):
            raise fail(f"added token {a['content']!r:.40} strips spaces around it, which loses text; not supported")
    added_text = {a["content"] for a in added}

    # Fill id -> bytes: vocab tokens through the byte map, added tokens as their UTF-8.
    table: list[bytes | None] = [None] * (len(vocab) + len(added))
    for token, i in vocab.items():
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(table):
            raise fail(f"token {token!r:.40} has id {i!r:.40}; ids must run 0..n-1 without gaps")
        if table[i] is not None:
            raise fail(f"id {i} is used by two tokens")
        if isinstance(token, str) and token and all(c in BYTE_OF_CHAR for c in token):
            table[i] = bytes(BYTE_OF_CHAR[c] for c in token)  # 'Ġthe' -> b' the'
        elif token in added_text:
            table[i] = token.encode("utf-8")  # a special token such as "<|endoftext|>"
        else:
            raise fail(f"token {token!r:.40} is not written in byte-level characters; not byte-level BPE")
    vocab_ids = set(vocab.values())
    for a in added:
        i, content = a.get("id"), a["content"].encode("utf-8")
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(table):
            raise fail(f"added token {a['content']!r:.40} has a bad id {i!r:.40}")
        if i in vocab_ids and table[i] != content:
            raise fail(f"id {i} is both {a['content']!r:.40} and another token")
        table[i] = content  # special tokens decode to their text, e.g. b"<|endoftext|>"
    while table and table[-1] is None:  # added tokens that reuse vocab ids leave spare slots
        table.pop()
    if None in table:
        raise fail(f"id {table.index(None)} has no token; ids must run 0..n-1 without gaps")
    missing = set(range(256)) - {t[0] for t in table if t is not None and len(t) == 1}
    if missing:
        raise fail(
            f"{len(missing)} single bytes (e.g. 0x{min(missing):02X}) lack a token, so some text could not be encoded"
        )
    return table  # type: ignore[return-value]


def model_type(model: object) -> object:
    # Files from 2020 (GPT-2's on the Hub among them) have no "type": a model with merges is BPE.
    if not isinstance(model, dict):
        return None
    return model.get("type", "BPE" if "merges" in model else None)


def _is_byte_level_pre_tokenizer(pre: object) -> bool:
    # GPT-2: ByteLevel. Llama-3 style: Sequence[Split(regex, Isolated), ByteLevel(use_regex=False)].
    def byte_level(p: object) -> bool:
        return isinstance(p, dict) and p.get("type") == "ByteLevel" and not p.get("add_prefix_space")

    def lossless_split(p: object) -> bool:
        return (
            isinstance(p, dict) and p.get("type") == "Split" and p.get("behavior") == "Isolated" and not p.get("invert")
            and _safe_split_pattern(p.get("pattern"))
        )

    if byte_level(pre):
        return True
    if isinstance(pre, dict) and pre.get("type") == "Sequence" and isinstance(pre.get("pretokenizers"), list):
        steps = pre["pretokenizers"]
        return bool(steps) and byte_level(steps[-1]) and all(lossless_split(p) for p in steps[:-1])
    return False


MAX_PATTERN_CHARS = 1000  # GPT-4's and Llama-3's split regexes are under 200 characters


def _safe_split_pattern(pattern: object) -> bool:
    """True for a Split pattern the Rust regex engine can run on any text in linear-ish time.

    A literal string is always safe. A regex must not repeat a group that itself holds a
    repeat or an alternation: ``(a|a?)+`` or ``(a+)+`` backtrack exponentially on
    "aaaa...c", and Oniguruma then panics ("retry-limit-in-match"). GPT-2's,
    GPT-4's and Llama-3's patterns (`` ?\p{L}+| ?\p{N}+|\s+(?!\S)|...``, ``(?i:'s|'t)|...``)
    repeat only single characters and classes, so they pass. No backreferences either.
    """
    if isinstance(pattern, dict) and set(pattern) == {"String"} and isinstance(pattern["String"], str):
        return True
    if not (isinstance(pattern, dict) and set(pattern) == {"Regex"} and isinstance(pattern["Regex"], str)):
        return False
    return _regex_risk(pattern["Regex"]) is None


def _regex_risk(rx: str) -> str | None:
    """Why `rx` could backtrack catastrophically, or None: a scan of its groups and quantifiers."""
    if len(rx) > MAX_PATTERN_CHARS:
        return f"longer than {MAX_PATTERN_CHARS} characters"
    groups = [[False, False]]  # for each open group: [holds a quantifier, holds an alternation]
    i = 0
    while i < len(rx):
        c = rx[i]
        if c == "\\":  # an escape: \p{L} is one atom; \1 or \k<name> is a backreference
            nxt = rx[i + 1 : i + 2]
            if nxt.isdigit() and nxt != "0" or nxt == "k":
                return "a backreference"
            i = rx.find("}", i) + 1 if nxt in ("p", "P", "x") and rx[i + 2 : i + 3] == "{" else i + 2
            if i == 0:
                return "an unterminated escape"
            continue
        if c == "[":  # a character class, to its closing bracket (escapes and a leading ] inside)
            j = i + 1 + (rx[i + 1 : i + 2] == "^")
            j += rx[j : j + 1] == "]"
            while j < len(rx) and rx[j] != "]":
                j += 2 if rx[j] == "\\" else 1
            if j >= len(rx):
                return "an unterminated character class"
            i = j + 1
            continue
        if c == "(":
            groups.append([False, False])
            i += 2 if rx[i + 1 : i + 2] == "?" else 1  # (?:, (?i:, (?! open groups; that ? is no quantifier
            continue
        if c == ")":
            if len(groups) == 1:
                return "an unbalanced parenthesis"
            inner = groups.pop()
            i += 1
            if i < len(rx) and (rx[i] in "*+?" or rx[i] == "{") and (inner[0] or inner[1]):
                return "a repeated group that holds a repeat or an alternation"
            groups[-1][0] |= inner[0]
            continue
        if c in "*+?{":
            groups[-1][0] = True
            if c == "{":
                i = rx.find("}", i)
                if i < 0:
                    return "an unterminated {n,m}"
        elif c == "|":
            groups[-1][1] = True
        i += 1
    return "an unbalanced parenthesis" if len(groups) != 1 else None
