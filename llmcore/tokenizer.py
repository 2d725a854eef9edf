"""Tokenizers: how text becomes the integers a GPT reads, and back.

A language model never sees letters. It sees a list of integers ("token ids"),
each one an index into a fixed vocabulary. This file holds the two vocabularies
llmcore teaches with:

* ``CharTokenizer``: one token per character. The vocabulary is the sorted set
  of characters in the training text, plus one visible *unknown* token for
  characters the text never contained::

      >>> tok = CharTokenizer.train("hello")
      >>> tok.chars                    # id -> character; the unknown token is last
      ['e', 'h', 'l', 'o']
      >>> tok.encode("hell")
      [1, 0, 2, 2]
      >>> tok.encode("help")           # 'p' was never seen: unknown token, id 4
      [1, 0, 2, 4]
      >>> tok.decode([1, 0, 2, 4])
      'hel\N{REPLACEMENT CHARACTER}'

* ``BPETokenizer``: byte-level byte-pair encoding, as in GPT-2. Text is turned
  into UTF-8 bytes (256 possible values, so *every* string can be written
  down), then the most frequent neighbouring pair of tokens in the training
  text is merged into a new token, again and again, until the vocabulary has
  ``vocab_size`` tokens (minbpe tells the same story in pure Python)::

      b"hi hi" = [104, 105, 32, 104, 105]  -> pair counts {(104, 105): 2, (105, 32): 1, (32, 104): 1}
      merge (104, 105) into new token 256  -> [256, 32, 256]      # "hi" is now one token

  (As in GPT-2, the ids 0..255 of the single bytes follow the order of their
  printable stand-ins, see ``byte_level.bytes_to_unicode``: "!" is id 0 and " " is id 220.)

  Training and encoding run in Hugging Face ``tokenizers`` (Rust), so 1 MB of
  text trains in seconds; the bytes behind every token are kept here in a plain
  table so ``decode`` and the teaching views stay readable Python.

Both kinds share one interface (``Tokenizer``): ``encode``, ``decode``,
``token_str``, ``pieces`` (the teaching view: text cut into ``(piece, id)``),
and ``save`` to one JSON file ``{"kind": ..., "format_version": 1, ...}``.
``load_tokenizer`` reads it back and turns a wrong or hostile file into a
one-line ``UserError``. GPT-2's byte table and the check that a Hugging Face
JSON is byte-level BPE live in ``byte_level``; ``llmcore.hf.save_hf`` / ``load_hf``
exchange a vocabulary with Hugging Face ``transformers``.
"""

from __future__ import annotations

import codecs
import json
import logging
import operator
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from llmcore.byte_level import BYTE_OF_CHAR, MAX_LOAD_VOCAB, byte_table
from llmcore.errors import UserError
from llmcore.files import atomic_write, check_output_folder

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the JSON layout changes; loaders refuse newer files
FILE_NAME = "tokenizer.json"  # the name inside a run directory
UNK_STR = "\N{REPLACEMENT CHARACTER}"  # how the char tokenizer shows the unknown token
MIN_BPE_VOCAB = 257  # 256 single bytes + at least one merge
MAX_BPE_VOCAB = 100_000  # training limit: beyond this a small GPT is all embedding table
MAX_FILE_BYTES = 100 * 2**20  # GPT-2's tokenizer.json is 1.4 MB
CHUNK_CHARS = 16_384  # long texts are encoded in chunks of about this size, in parallel
MAX_TRAIN_WORD = 1_000  # BPE training sees words of at most this many characters (see _training_pieces)




def _hex_escape(err: UnicodeDecodeError) -> tuple[str, int]:
    # Error handler for bytes.decode: show each undecodable byte as <0xNN>.
    bad = err.object[err.start : err.end]
    return "".join(f"<0x{b:02X}>" for b in bad), err.end


codecs.register_error("llmcore.hexbytes", _hex_escape)


def show_bytes(data: bytes) -> str:
    """Bytes as text, with bytes that are not whole UTF-8 characters escaped.

    >>> show_bytes(" the".encode())
    ' the'
    >>> show_bytes("→".encode()[:2])   # first two of the three bytes of '→'
    '<0xE2><0x86>'
    """
    return data.decode("utf-8", errors="llmcore.hexbytes")


# ----------------------------------------------------------------------------
# The shared interface


class Tokenizer:
    """What every llmcore tokenizer does. Subclasses fill in the vocabulary.

    ``kind`` names the subclass in saved files ("char" or "bpe").
    """

    kind: str = ""

    @property
    def vocab_size(self) -> int:
        """Number of token ids: valid ids are ``0 .. vocab_size - 1`` (TransformerLens: d_vocab)."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        """Text -> token ids."""
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> text. UserError on an id outside the vocabulary."""
        raise NotImplementedError

    def token_str(self, token_id: int) -> str:
        """One token as readable text, for tables and highlighted text."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this tokenizer, as plain JSON values."""
        raise NotImplementedError

    def pieces(self, text: str) -> list[tuple[str, int]]:
        """The teaching view: ``text`` cut into its tokens, as ``(piece, id)`` pairs.

        >>> CharTokenizer.train("hi there").pieces("hi")
        [('h', 2), ('i', 3)]
        >>> BPETokenizer.train("hi there, " * 20, vocab_size=263).pieces("hi there")
        [('hi', 257), (' there', 261)]

        Note the space *inside* the BPE piece " there". Joining the pieces
        gives back the text, with two exceptions a learner should see rather
        than have hidden: an unknown character shows as the unknown token, and
        a BPE token holding only part of a character (an emoji split over two
        tokens) shows its bytes, e.g. ``"<0xF0><0x9F>"``.
        """
        return [(self.token_str(i), i) for i in self.encode(text)]

    def save(self, path: str | os.PathLike) -> Path:
        """Write one JSON file (a folder gets ``tokenizer.json``). Atomic: tmp, then rename."""
        path = Path(path)
        if path.is_dir():
            path = path / FILE_NAME
        if not path.parent.is_dir():  # a new folder: made here, unless it would be in the package
            check_output_folder(path.parent).mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n")
        logger.info("saved %s tokenizer (%d tokens) to %s", self.kind, self.vocab_size, path)
        return path

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        # Accept lists, tuples, numpy arrays, 1-D tensors; refuse anything not an in-range int.
        n = self.vocab_size
        checked = []
        try:
            items = list(ids)
        except TypeError:
            raise UserError(f"token ids must be a list of integers, not {type(ids).__name__}") from None
        if all(type(x) is int for x in items) and (not items or (min(items) >= 0 and max(items) < n)):
            return items  # fast path: a plain list of in-range ints
        for pos, x in enumerate(items):
            try:
                if isinstance(x, (bool, float, str)):
                    raise TypeError
                i = operator.index(x)  # int, numpy int, 0-d tensor
            except TypeError:
                raise UserError(f"token ids must be integers; got {x!r:.40} at position {pos}") from None
            if not 0 <= i < n:
                raise UserError(
                    f"token id {i} at position {pos} is outside the vocabulary (0..{n - 1}); "
                    "were these ids made with another tokenizer?"
                )
            checked.append(i)
        return checked

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise UserError(f"text must be a str, got {type(text).__name__}")
    return text


def _refuse_surrogates(text: str) -> None:
    # A lone surrogate (e.g. from a bad decode with errors="surrogateescape") is not
    # text: it has no UTF-8 bytes, so no tokenizer can hold it. (Encoding is the
    # fast way to look: C speed, and the error says where.)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        pos = e.start
        raise UserError(
            f"text has a lone surrogate {text[pos]!r} at position {pos}, which is not a character; "
            "read the file with encoding='utf-8' and errors='replace'"
        ) from None


# ----------------------------------------------------------------------------
# Character tokenizer


class CharTokenizer(Tokenizer):
    """One token per character; ids follow the sorted alphabet, the unknown token last.

    >>> tok = CharTokenizer.train("abba cab")
    >>> tok.chars, tok.unk_id, tok.vocab_size
    ([' ', 'a', 'b', 'c'], 4, 5)
    >>> tok.encode("cab")
    [3, 1, 2]

    ``decode(encode(s)) == s`` for every string made of the alphabet. A character
    outside it (``"z"`` above) is never a crash: with ``errors="replace"`` (the
    default) it becomes ``unk_id``, shown and decoded as "\N{REPLACEMENT CHARACTER}", and one
    warning is logged per call; with ``errors="strict"`` it is a ``UserError``
    naming the character and its position.
    """

    kind = "char"

    def __init__(self, chars: list[str]):
        _check_chars(chars)
        self.chars = list(chars)  # id -> character
        self.stoi = {c: i for i, c in enumerate(self.chars)}  # character -> id
        self.unk_id = len(self.chars)  # the one id no character maps to

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        """The alphabet is the sorted set of characters in ``text``."""
        _check_text(text)
        if not text:
            raise UserError("cannot train a tokenizer on empty text; give it some text")
        _refuse_surrogates(text)
        tok = cls(sorted(set(text)))
        logger.info("char tokenizer: %d characters + 1 unknown token", len(tok.chars))
        return tok

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str, errors: str = "replace") -> list[int]:
        """Characters -> ids. ``errors``: "replace" (unknown token) or "strict" (UserError)."""
        _check_text(text)
        if errors not in ("replace", "strict"):
            raise UserError(f"errors must be 'replace' or 'strict', not {errors!r}")
        try:
            return [self.stoi[c] for c in text]  # fast path: every character known
        except KeyError:
            pass
        # Slow path: find the unknown characters, then refuse or replace them.
        unknown = [(pos, c) for pos, c in enumerate(text) if c not in self.stoi]
        pos, c = unknown[0]
        if errors == "strict":
            raise UserError(
                f"character {c!r} at position {pos} is not in this tokenizer's alphabet of "
                f"{len(self.chars)} characters; remove it, or encode with errors='replace'"
            )
        logger.warning(
            "%d character(s) not in the alphabet became the unknown token %s (first: %r at position %d)",
            len(unknown),
            UNK_STR,
            c,
            pos,
        )
        return [self.stoi.get(c, self.unk_id) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        table = self.chars + [UNK_STR]  # id -> text, the unknown token last
        return "".join([table[i] for i in self._check_ids(ids)])

    def token_str(self, token_id: int) -> str:
        (i,) = self._check_ids([token_id])
        return UNK_STR if i == self.unk_id else self.chars[i]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "format_version": FORMAT_VERSION, "chars": self.chars, "unk_id": self.unk_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "tokenizer") -> CharTokenizer:
        chars = data.get("chars")
        try:
            tok = cls(chars)  # type: ignore[arg-type]
        except UserError as e:
            raise UserError(f"{source}: {e}") from None
        if data.get("unk_id") != tok.unk_id or isinstance(data.get("unk_id"), bool):
            raise UserError(f"{source}: 'unk_id' must be {tok.unk_id} (the number of chars)")
        return tok


def _check_chars(chars: object) -> None:
    # An alphabet is a non-empty list of distinct one-character strings.
    if not isinstance(chars, list) or not chars:
        raise UserError("'chars' must be a non-empty list of one-character strings")
    if len(chars) > MAX_LOAD_VOCAB:
        raise UserError(f"alphabet has {len(chars)} characters, more than the limit {MAX_LOAD_VOCAB}")
    seen = set()
    for i, c in enumerate(chars):
        if not isinstance(c, str) or len(c) != 1 or "\ud800" <= c <= "\udfff":
            raise UserError(f"chars[{i}] = {c!r:.40} is not a single character")
        if c in seen:
            raise UserError(f"chars[{i}] = {c!r} appears twice; each character needs one id")
        seen.add(c)


# ----------------------------------------------------------------------------
# Byte-level BPE tokenizer


class BPETokenizer(Tokenizer):
    """Byte-level BPE: 256 byte tokens, then one new token per learned merge.

    >>> tok = BPETokenizer.train("the cat sat on the mat. " * 50, vocab_size=260)
    >>> tok.merges                          # the four merges, most frequent pair first
    [('a', 't'), ('h', 'e'), ('t', 'he'), (' ', 'the')]
    >>> tok.pieces("the mat")
    [('the', 258), (' ', 220), ('m', 76), ('at', 256)]

    Every string round-trips exactly, ``decode(encode(s)) == s``, whatever its
    characters (emoji, accents, ``"\\x00"``): in the worst case a character is
    spelled as its UTF-8 bytes. Decoding ids that stop in the middle of a
    character (a model generating half an emoji) gives "\N{REPLACEMENT CHARACTER}" for the broken bytes.

    Wraps a Hugging Face ``tokenizers.Tokenizer`` built from its JSON, which
    must be byte-level BPE (GPT-2's is): no normalizer (it would change the
    text), a ByteLevel pre-tokenizer without an added prefix space, all 256
    byte tokens in the vocabulary, and ids ``0 .. n-1`` with no gaps.
    """

    kind = "bpe"

    def __init__(self, tokenizer_json: dict[str, Any], source: str = "tokenizer"):
        from tokenizers import Tokenizer as HFTokenizer

        # Check the JSON ourselves first: one readable message beats a Rust error.
        self._bytes = byte_table(tokenizer_json, source)  # id -> the bytes it stands for
        try:
            # A saved truncation or padding setting would change encode(): drop them.
            tk = HFTokenizer.from_str(json.dumps({**tokenizer_json, "truncation": None, "padding": None}))
        except Exception as e:  # tokenizers raises plain Exception on bad JSON
            raise UserError(f"{source}: the tokenizers library refused it: {_one_line(e)}") from None
        if tk.get_vocab_size(with_added_tokens=True) != len(self._bytes):
            raise UserError(f"{source}: vocabulary size does not match its ids; the file is inconsistent")
        self._tk = tk
        # Chunked encoding is exact only for GPT-2's own split rule (see _encode_long).
        pre = tokenizer_json["pre_tokenizer"]
        self._chunkable = (
            pre.get("type") == "ByteLevel"
            and pre.get("use_regex", True) is True
            and not any(" " in a["content"] for a in tokenizer_json.get("added_tokens") or [])
        )

    @classmethod
    def train(cls, text: str, vocab_size: int = 1024) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text``. Same text, same tokenizer.

        If the text has fewer distinct pairs than that, training stops early and
        the vocabulary is smaller (logged as a warning).
        """
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        _check_text(text)
        if not text:
            raise UserError("cannot train a tokenizer on empty text; give it some text")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise UserError(f"vocab_size must be an integer, got {vocab_size!r}")
        if not MIN_BPE_VOCAB <= vocab_size <= MAX_BPE_VOCAB:
            raise UserError(
                f"vocab_size must be between {MIN_BPE_VOCAB} (256 bytes + 1 merge) and {MAX_BPE_VOCAB}, "
                f"got {vocab_size}"
            )
        _refuse_surrogates(text)
        t0 = time.perf_counter()
        # The pipeline: text -> GPT-2 regex split into words (" the", "!!", "\n") ->
        # each word as byte characters ('Ġthe') -> BPE merges inside each word.
        tk = HFTokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tk.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen or not
            special_tokens=[],  # nothing reserved: stories are separated by "\n\n"
            show_progress=False,
        )
        tk.train_from_iterator(_training_pieces(text), trainer=trainer)
        tok = cls(json.loads(tk.to_str()), source="trained tokenizer")
        seconds = time.perf_counter() - t0
        logger.info(
            "trained byte-level BPE: %d tokens (%d merges) on %d characters in %.1fs",
            tok.vocab_size,
            tok.vocab_size - 256,
            len(text),
            seconds,
        )
        if tok.vocab_size < vocab_size:
            logger.warning(
                "the text only had enough repeated pairs for %d tokens, not the %d asked for",
                tok.vocab_size,
                vocab_size,
            )
        return tok

    @property
    def vocab_size(self) -> int:
        return len(self._bytes)

    def encode(self, text: str) -> list[int]:
        """Text -> ids, in Rust. Never adds special tokens (a BOS would break round trips)."""
        _check_text(text)
        _refuse_surrogates(text)
        try:
            if self._chunkable and len(text) >= 2 * CHUNK_CHARS:
                return self._encode_long(text)
            return self._tk.encode(text, add_special_tokens=False).ids
        except BaseException as e:  # a Rust panic (pyo3's PanicException is a BaseException)
            if type(e).__name__ != "PanicException":
                raise
            raise UserError(f"the tokenizer failed on this text ({_one_line(e)}); is the tokenizer file sound?") from None

    def _encode_long(self, text: str) -> list[int]:
        """A corpus, encoded as chunks on all CPU cores; the same ids as one call.

        BPE never merges across the words the pre-tokenizer makes, so words are
        independent. GPT-2's split rule has no look-behind, and a word always
        ends before a space that sits between two non-space characters:
        "...the cat| sat on..." -> "the", " cat" | " sat", " on". Cutting there
        changes nothing (tested against one whole call).
        """
        cuts = [0]
        while cuts[-1] + CHUNK_CHARS < len(text):
            i = text.find(" ", cuts[-1] + CHUNK_CHARS)
            while i != -1 and (i + 1 == len(text) or text[i - 1].isspace() or text[i + 1].isspace()):
                i = text.find(" ", i + 1)  # "a  b" or "a \n": not a clean word boundary
            if i == -1:
                break
            cuts.append(i)
        chunks = [text[a:b] for a, b in zip(cuts, cuts[1:] + [len(text)])]
        encodings = self._tk.encode_batch_fast(chunks, add_special_tokens=False)  # parallel, no offsets
        return [i for e in encodings for i in e.ids]

    def decode(self, ids: Iterable[int]) -> str:
        # Join every token's bytes, then read the bytes as UTF-8 once.
        return b"".join(self._bytes[i] for i in self._check_ids(ids)).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes behind one token: ``b" the"``."""
        (i,) = self._check_ids([token_id])
        return self._bytes[i]

    def token_str(self, token_id: int) -> str:
        """The token's bytes as text; a partial character shows as ``<0xE2>``. A leading space stays a space."""
        return show_bytes(self.token_bytes(token_id))

    @property
    def merges(self) -> list[tuple[str, str]]:
        """The learned merges in order, as readable pairs: ``[("t", "h"), (" ", "th"), ...]``."""
        out = []
        for m in json.loads(self._tk.to_str())["model"]["merges"]:
            left, right = m.split(" ", 1) if isinstance(m, str) else m  # old files: "a b"
            # 'Ġ', 'the' -> b' ', b'the' -> ' ', 'the'  (the table check guarantees byte-level chars)
            out.append(tuple(show_bytes(bytes(BYTE_OF_CHAR[c] for c in s)) for s in (left, right)))
        return out  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        # The tokenizers JSON, nested as an object so the file stays one readable document.
        return {"kind": self.kind, "format_version": FORMAT_VERSION, "tokenizer": json.loads(self._tk.to_str())}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "tokenizer") -> BPETokenizer:
        return cls(data.get("tokenizer"), source=source)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------
# Training, saving and loading


def _training_pieces(text: str) -> list[str]:
    """The text as the BPE trainer should see it: runs of non-space longer than MAX_TRAIN_WORD cut up.

    Training cost grows with the square of a word's length (every merge rescans the
    word), so 1 MB without a space would take hours. Cutting such runs into
    1,000-character pieces (separate items for the trainer) bounds the work and
    changes nothing for ordinary text, which is passed through whole:
    "ab cd" -> ["ab cd"];  "x" * 2500 -> ["x" * 1000, "x" * 1000, "x" * 500].
    """
    import re

    long_runs = list(re.finditer(r"\S{" + str(MAX_TRAIN_WORD + 1) + ",}", text))
    if not long_runs:
        return [text]
    pieces, start = [], 0
    for m in long_runs:
        for cut in range(m.start() + MAX_TRAIN_WORD, m.end(), MAX_TRAIN_WORD):
            pieces.append(text[start:cut])
            start = cut
    pieces.append(text[start:])
    return pieces


def train_tokenizer(kind: str, text: str, vocab_size: int = 1024) -> Tokenizer:
    """``train_tokenizer("bpe", text, 1024)`` or ``train_tokenizer("char", text)`` (vocab_size ignored)."""
    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size=vocab_size)
    raise UserError(f"tokenizer kind must be 'char' or 'bpe', not {kind!r:.40}")


_KINDS: dict[str, type[CharTokenizer] | type[BPETokenizer]] = {"char": CharTokenizer, "bpe": BPETokenizer}


def load_tokenizer(path_or_dict: str | os.PathLike | dict[str, Any]) -> Tokenizer:
    """Read a file written by ``Tokenizer.save`` (or its dict; a folder means its tokenizer.json).

    Any problem is a one-line ``UserError``; nothing in the file is executed.
    """
    if isinstance(path_or_dict, dict):
        data, source = path_or_dict, "tokenizer dict"
    elif isinstance(path_or_dict, (str, os.PathLike)):
        path = Path(path_or_dict)
        data, source = _read_json(path / FILE_NAME if path.is_dir() else path), str(path_or_dict)
    else:
        raise UserError(f"give a tokenizer file path or dict, not {type(path_or_dict).__name__}")
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a JSON object with a 'kind' field, got {type(data).__name__}")
    if "kind" not in data:
        hint = "; it looks like a Hugging Face tokenizer.json: use llmcore.hf.load_hf(folder)" if "model" in data else ""
        raise UserError(f"{source}: not an llmcore tokenizer (no 'kind' field){hint}")
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UserError(f"{source}: 'format_version' must be a positive integer, got {version!r:.40}")
    if version > FORMAT_VERSION:
        raise UserError(
            f"{source}: format version {version} is newer than this llmcore understands ({FORMAT_VERSION}); upgrade llmcore"
        )
    kind = data["kind"]
    if not isinstance(kind, str) or kind not in _KINDS:
        raise UserError(f"{source}: unknown tokenizer kind {kind!r:.40}; expected 'char' or 'bpe'")
    return _KINDS[kind].from_dict(data, source=source)


def _read_json(path: Path) -> Any:
    # Read a JSON file with a size cap checked before reading; every failure becomes one line.
    from llmcore.files import read_bytes

    if "\0" not in str(path) and not os.path.lexists(path):
        raise UserError(f"no tokenizer file at {path}; train one first or check the path")
    raw = read_bytes(path, "tokenizer file", limit=MAX_FILE_BYTES)  # a FIFO, /dev/zero or 5 GB: refused
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; is it really a tokenizer JSON file?") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, 5000-digit ints, [[[[...]]]]
        raise UserError(f"{path} is not valid JSON ({_one_line(e)}); the file may be truncated or corrupt") from None


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:200]
