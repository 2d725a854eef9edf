"""Compression: the model's next-token probabilities, turned into a file.

A language model gives every possible next token a probability. Arithmetic coding
(Witten, Neal & Cleary, 1987; the coder is `llmcore.arithmetic_coding`) turns
probabilities into bits: a token the model gave probability p costs -log2(p) bits,
and the whole file comes within two bits of the sum. So the better the model
predicts, the smaller the file: the training loss, measured in bits, *is* the
compressed size. "Language Modeling Is Compression" (Delétang et al., 2023)
measures large models this way against gzip; this module does it with the toy you
trained.

    text (UTF-8 bytes) -> tokens -> for each token: the model's probabilities
        -> integer frequencies -> the coder narrows its interval [low, high] -> bits

The decoder runs the *same* model on the tokens it has decoded so far, gets the
*same* frequencies, and reads the next token back out of the bits. "Same" means
bit-identical, so both sides run one shared piece of code (`_Predictor`): token by
token with a KV cache, restarting from the last n_ctx // 2 tokens whenever the
context is full, on one CPU thread, with the float32 logits turned into integer
frequencies by float64 numpy. (Floating point can still differ between CPUs or torch
versions; a file then fails its checksum with a clear message, never silently.)

The file (integers little-endian):

    b"LLMZ" | format version (1 byte) | SHA-256 of the run's model.safetensors (32 bytes)
    | original length in bytes (u32) | token count (u32) | CRC-32 of the original (u32)
    | the arithmetic code

`compare_compressors` puts the model beside gzip, bz2 and xz, alone and given the
training text, and adds the parameter file's size ("adjusted", as Delétang et al.).
"""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import math
import struct
import threading
import time
import zlib
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch

from llmcore.arithmetic_coding import ArithmeticDecoder, ArithmeticEncoder
from llmcore.errors import UserError
from llmcore.model import KVCache, model_lock
from llmcore.tokenizer import CharTokenizer

log = logging.getLogger(__name__)

MAGIC = b"LLMZ"
FORMAT_VERSION = 1
HEADER = struct.Struct("<4sB32sIII")  # magic, version, sha256, n_bytes, n_tokens, crc32: 49 bytes
TOTAL = 1 << 24  # one step's integer frequencies add up to at most this
UNK_BITS = 21  # an unknown character's code point, coded uniformly: every one is < 0x110000 < 2**21
MAX_INPUT_BYTES = 64 * 2**20  # a toy model codes ~1-2k tokens/s: 64 MB would take hours
MAX_TOKENS_PER_CODE_BYTE = 256  # the format's promise, so a decoder can refuse a file claiming more
PROGRESS_EVERY = 128  # tokens between progress callbacks

Progress = Callable[[int, int], None] | None


# ----------------------------------------------------------------------------
# The model as a next-token oracle, identical on both sides


def quantise(logits: np.ndarray) -> np.ndarray:
    """float32 logits [d_vocab] -> cumulative integer frequencies [d_vocab + 1].

    Every token gets floor(p * (TOTAL - d_vocab)) + 1 counts, so even a token the
    model rules out costs finitely many bits (about 24), and the counts add up to at
    most TOTAL. Token i owns [cum[i], cum[i + 1]) of cum[-1].

    >>> quantise(np.array([0.0, 0.0], dtype=np.float32))
    array([       0,  8388608, 16777216])
    """
    x = logits.astype(np.float64)
    if not np.isfinite(x).all():
        raise UserError("the model produced NaN or infinite logits; its weights are broken")
    p = np.exp(x - x.max())
    p /= p.sum()
    freqs = np.floor(p * (TOTAL - len(x))).astype(np.int64) + 1
    cum = np.zeros(len(x) + 1, dtype=np.int64)
    np.cumsum(freqs, out=cum[1:])
    return cum


class _Predictor:
    """Feeds tokens to the model one at a time; `cumulative()` is the next token's table.

    Encoder and decoder call exactly the same methods with the same tokens, so the
    model runs the same computations (same shapes, same order) on both sides.
    """

    def __init__(self, model, first_token: int):
        self.model = model
        self.n_ctx = model.cfg.n_ctx
        self.keep = max(1, self.n_ctx // 2)  # tokens kept when the window slides
        self.device = next(model.parameters()).device
        self.history = [first_token]  # the tokens the cache holds (and the new one)
        self._restart()

    def _forward(self, ids: list[int]) -> None:
        with model_lock(self.model):  # no one attaches hooks (steering) mid-step
            logits = self.model(torch.tensor([ids], device=self.device), self.cache)[0, -1]
        self.logits = logits.float().cpu().numpy()  # [d_vocab]

    def _restart(self) -> None:
        # A fresh cache from the last n_ctx // 2 tokens, read in one pass: [1, keep].
        self.history = self.history[-self.keep :]
        self.cache = KVCache(self.model.cfg, 1, device=self.device)
        self._forward(self.history)

    def push(self, token: int) -> None:
        self.history.append(token)
        if self.cache.pos >= self.n_ctx:  # the context is full: slide the window
            self._restart()
        else:
            self._forward([token])  # [1, 1], attending to the cached keys and values

    def cumulative(self) -> np.ndarray:
        return quantise(self.logits)


_COMPUTE_LOCK = threading.RLock()


@contextmanager
def _deterministic():
    """No gradients, one CPU thread: the same sums in the same order on every call.

    torch's thread count is process-wide, so compressions take turns (a lock).
    """
    with _COMPUTE_LOCK, torch.no_grad():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _first_token(tok) -> int:
    """The context before the first token: a newline, as at the start of a story."""
    if isinstance(tok, CharTokenizer):
        return tok.stoi.get("\n", 0)
    ids = tok.encode("\n")
    return ids[-1] if ids else 0


def _token_table(tok) -> list[bytes | None]:
    """id -> the bytes it stands for (None for the char tokenizer's unknown token)."""
    if isinstance(tok, CharTokenizer):
        return [c.encode("utf-8") for c in tok.chars] + [None]
    return [tok.token_bytes(i) for i in range(tok.vocab_size)]


def _tokenize(tok, text: str, data: bytes) -> tuple[list[int], list[int]]:
    """Text -> (token ids, code points of unknown characters, in order).

    "hé?" with an alphabet lacking "é" -> ([id h, unk_id, id ?], [233]).
    """
    if isinstance(tok, CharTokenizer):
        ids = [tok.stoi.get(c, tok.unk_id) for c in text]
        return ids, [ord(c) for c in text if c not in tok.stoi]
    ids = tok.encode(text)
    table = _token_table(tok)
    if b"".join(table[i] for i in ids) != data:  # byte-level BPE always passes; be sure
        raise UserError("this tokenizer does not give back the exact bytes of the text; it cannot compress it")
    return ids, []


# ----------------------------------------------------------------------------
# compress / decompress


def _check_bytes(data, what: str) -> bytes:
    if isinstance(data, str):
        raise UserError(f"{what} must be bytes, not text; pass text.encode('utf-8')")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UserError(f"{what} must be bytes, not {type(data).__name__}")
    return bytes(data)


def _walk(run, ids: list[int], unknown: list[int], encoder: ArithmeticEncoder | None, progress: Progress) -> float:
    """Run the model along the tokens; code each one if given an encoder. Returns the ideal bits.

    The ideal code length is the sum of -log2(freq / total) over the coded symbols:
    what a perfect coder would write with these quantised probabilities.
    """
    tok = run.tokenizer
    unk_id = tok.unk_id if isinstance(tok, CharTokenizer) else None
    unknown_iter = iter(unknown)
    bits = 0.0
    pred = _Predictor(run.model, _first_token(tok)) if ids else None
    for i, t in enumerate(ids):
        cum = pred.cumulative()
        start, end, total = int(cum[t]), int(cum[t + 1]), int(cum[-1])
        bits += math.log2(total / (end - start))
        if encoder is not None:
            encoder.encode(start, end, total)
        if t == unk_id:  # then the character itself, 21 bits, all code points equally likely
            cp = next(unknown_iter)
            bits += UNK_BITS
            if encoder is not None:
                encoder.encode(cp, cp + 1, 1 << UNK_BITS)
        if i + 1 < len(ids):  # nothing to predict after the last token
            pred.push(t)
        if progress and ((i + 1) % PROGRESS_EVERY == 0 or i + 1 == len(ids)):
            progress(i + 1, len(ids))
    return bits


def _encode(run, data, progress: Progress = None) -> tuple[bytes, float, int]:
    """compress(), also returning the ideal code length in bits and the token count."""
    data = _check_bytes(data, "the data to compress")
    if len(data) > MAX_INPUT_BYTES:
        raise UserError(f"{len(data):,} bytes is more than this toy compressor takes ({MAX_INPUT_BYTES:,}); cut it")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"the data is not valid UTF-8 (byte offset {e.start}: {e.reason}); the model compresses text only"
        ) from None
    ids, unknown = _tokenize(run.tokenizer, text, data)
    with _deterministic():
        enc = ArithmeticEncoder()
        bits = _walk(run, ids, unknown, enc, progress)
    code = enc.finish() if ids else b""
    # Keep the format's promise of at least one byte per MAX_TOKENS_PER_CODE_BYTE tokens
    # (only text the model finds almost perfectly predictable needs it); the decoder
    # never reads the padding.
    code += bytes(max(0, -(-len(ids) // MAX_TOKENS_PER_CODE_BYTE) - len(code)))
    header = HEADER.pack(MAGIC, FORMAT_VERSION, run.params_sha256, len(data), len(ids), zlib.crc32(data))
    log.info(
        "compressed %d bytes (%d tokens) to %d bytes; ideal %.1f bytes",
        len(data),
        len(ids),
        HEADER.size + len(code),
        bits / 8,
    )
    return header + code, bits, len(ids)


def compress(run, data: bytes, progress: Progress = None) -> bytes:
    """UTF-8 `data` -> a compressed file that only `run`'s model can read back.

    `progress(done_tokens, total_tokens)` is called as the model goes along.
    """
    return _encode(run, data, progress)[0]


def _read_header(run, blob: bytes) -> tuple[int, int, int, bytes]:
    """Check the header; return (n_bytes, n_tokens, crc32, code)."""
    if blob[:4] != MAGIC:
        raise UserError("not an llmcore compressed file (it does not start with LLMZ)")
    if len(blob) < HEADER.size:
        raise UserError(f"the compressed file is truncated: {len(blob)} bytes, its header alone needs {HEADER.size}")
    _, version, sha, n_bytes, n_tokens, crc = HEADER.unpack_from(blob)
    if version != FORMAT_VERSION:
        raise UserError(f"compressed file format version {version}; this llmcore reads version {FORMAT_VERSION}")
    if sha != run.params_sha256:
        raise UserError(
            f"this file was compressed with a different model (parameter file sha256 {sha.hex()[:12]}...); "
            f"{run.name or run.path} has {run.params_sha256.hex()[:12]}...: decompress with the run that compressed it"
        )
    code = blob[HEADER.size :]
    # The longest code the encoder can write for n_tokens: each token costs at most
    # log2(TOTAL) = 24 bits (+2 for rounding) and an unknown character 21 more, plus two
    # bits to finish and the padding the format promises. More is junk: refuse it before
    # decoding (8 MB of junk would cost ~0.9 GB as the decoder's bit list).
    unk_bits = UNK_BITS if isinstance(run.tokenizer, CharTokenizer) else 0
    max_code = max(-(-(n_tokens * (26 + unk_bits) + 2) // 8), -(-n_tokens // MAX_TOKENS_PER_CODE_BYTE))
    if len(code) > max_code:
        raise UserError(f"the compressed file is corrupt: {len(code):,} bytes of code for {n_tokens:,} tokens "
                        f"(at most {max_code:,}); junk was appended or the header lies")
    max_token_bytes = 4 if isinstance(run.tokenizer, CharTokenizer) else max(map(len, _token_table(run.tokenizer)))
    if (
        n_bytes > MAX_INPUT_BYTES
        or not n_tokens <= n_bytes <= n_tokens * max_token_bytes  # every token is 1..max_token_bytes bytes
        or n_tokens > MAX_TOKENS_PER_CODE_BYTE * len(code)
        or (n_tokens == 0 and code)  # empty text has no code
    ):
        raise UserError(
            f"the compressed file is corrupt: its header claims {n_bytes:,} bytes in {n_tokens:,} tokens "
            f"from {len(code):,} bytes of code"
        )
    return n_bytes, n_tokens, crc, code


def decompress(run, blob: bytes, progress: Progress = None) -> bytes:
    """A file from `compress` -> the original bytes, exactly. Needs the same run."""
    blob = _check_bytes(blob, "the compressed file")
    n_bytes, n_tokens, crc, code = _read_header(run, blob)
    tok = run.tokenizer
    table = _token_table(tok)
    unk_id = tok.unk_id if isinstance(tok, CharTokenizer) else None
    out = bytearray()
    with _deterministic():
        dec = ArithmeticDecoder(code) if n_tokens else None
        pred = _Predictor(run.model, _first_token(tok)) if n_tokens else None
        for i in range(n_tokens):
            cum = pred.cumulative()
            total = int(cum[-1])
            t = int(np.searchsorted(cum, dec.target(total), side="right")) - 1  # cum[t] <= target < cum[t+1]
            dec.consume(int(cum[t]), int(cum[t + 1]), total)
            if t == unk_id:  # the unknown character's code point follows
                cp = dec.target(1 << UNK_BITS)
                dec.consume(cp, cp + 1, 1 << UNK_BITS)
                if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF or chr(cp) in tok.stoi:
                    raise UserError("the compressed file is corrupt: it holds an impossible character")
                out += chr(cp).encode("utf-8")
            else:
                out += table[t]
            if len(out) > n_bytes:
                break  # corrupt: more text than the header promised (caught below)
            if i + 1 < n_tokens:
                pred.push(t)
            if progress and ((i + 1) % PROGRESS_EVERY == 0 or i + 1 == n_tokens):
                progress(i + 1, n_tokens)
    # The encoder wrote exactly (shifts + 2) bits, where the decoder has read 32 + shifts: so the
    # code has a known length (or the promised padding); bytes beyond it are junk.
    if n_tokens and len(code) != max(-(-(dec.pos - 30) // 8), -(-n_tokens // MAX_TOKENS_PER_CODE_BYTE)):
        raise UserError(f"the compressed file is corrupt: {len(code):,} bytes of code where the text needs "
                        f"{-(-(dec.pos - 30) // 8):,}; bytes were appended or the file is damaged")
    if len(out) != n_bytes or zlib.crc32(out) != crc:
        raise UserError(
            "the decompressed text fails its checksum: the file is corrupt, or this machine computes the "
            "model's probabilities differently from the one that compressed it (another CPU or torch version)"
        )
    return bytes(out)


def model_bits(run, text: str) -> float:
    """The ideal compressed size of `text` in bits: the model's cross-entropy on it.

    The sum over tokens of -log2 p(token | the tokens before), with the same
    probabilities (quantised to integer frequencies, which costs < 0.01%) and the
    same sliding window as `compress`, plus 21 bits for each character the char
    tokenizer never saw. `compress` writes this + the 49-byte header + at most ~2 bytes.
    """
    if not isinstance(text, str):
        raise UserError(f"text must be a str, got {type(text).__name__}")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise UserError(f"text has a lone surrogate at position {e.start}, which is not a character") from None
    ids, unknown = _tokenize(run.tokenizer, text, data)
    with _deterministic():
        return _walk(run, ids, unknown, None, None)


# ----------------------------------------------------------------------------
# Against the classical compressors


def _xz(data: bytes) -> bytes:
    """xz -9e. Its presets 6..9 differ only in dictionary size (-9: 64 MiB, which costs
    674 MiB of memory), so a dictionary as big as the input gives exactly -9e's output."""
    dict_size = min(64 * 2**20, max(2**16, 1 << max(0, len(data) - 1).bit_length()))
    lzma2 = {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": dict_size}
    return lzma.compress(data, format=lzma.FORMAT_XZ, filters=[lzma2])


# The classical compressors, each at its strongest setting.
CLASSICAL: dict[str, Callable[[bytes], bytes]] = {
    "gzip -9": lambda b: gzip.compress(b, compresslevel=9, mtime=0),
    "bz2 -9": lambda b: bz2.compress(b, compresslevel=9),
    "xz -9e": _xz,
}


def compare_compressors(run, text: str, train_text: str | None = None, progress: Progress = None) -> dict:
    """Compress `text` with the model and with gzip, bz2 and xz; sizes in bytes and bits per byte.

    - "model": the real file from `compress` (header included), and the
      cross-entropy it implies (`model_bits`).
    - "model + parameter file": the file plus the parameters the decoder needs
      (Delétang et al.'s "adjusted" size): the price of not sharing the model.
    - "gzip -9", "bz2 -9", "xz -9e": alone, and given `train_text` as context:
      size(c(train + text)) - size(c(train)), what the text adds once the training
      text is shared. (gzip looks back only 32 KB and bz2 works in 900 kB blocks, so
      they can use little of it; xz keeps all of it.)

    Each row also has "seconds": the time to compress the text alone (the model is
    thousands of times slower than gzip: it runs a transformer for every token).
    """
    if not isinstance(text, str) or not text:
        raise UserError("give some text to compress (a non-empty str)")
    if train_text is not None and not isinstance(train_text, str):
        raise UserError(f"train_text must be a str or None, got {type(train_text).__name__}")
    try:
        data = text.encode("utf-8")
        train = train_text.encode("utf-8") if train_text is not None else None
    except UnicodeEncodeError as e:
        raise UserError(f"text has a lone surrogate at position {e.start}, which is not a character") from None
    n = len(data)

    def rate(n_bytes: float) -> float:
        return 8 * n_bytes / n

    t0 = time.perf_counter()
    blob, ideal_bits, n_tokens = _encode(run, data, progress)
    model_seconds = time.perf_counter() - t0
    params_bytes = run.params_file.stat().st_size
    methods: dict[str, dict] = {
        "model": {
            "bytes": len(blob),
            "bits_per_byte": rate(len(blob)),
            "header_bytes": HEADER.size,
            "cross_entropy_bytes": ideal_bits / 8,
            "cross_entropy_bits_per_byte": ideal_bits / n,
            "seconds": model_seconds,
        },
        "model + parameter file": {
            "bytes": len(blob) + params_bytes,
            "bits_per_byte": rate(len(blob) + params_bytes),
        },
    }
    for name, fn in CLASSICAL.items():
        t0 = time.perf_counter()
        size = len(fn(data))
        row = {"bytes": size, "bits_per_byte": rate(size), "seconds": time.perf_counter() - t0}
        row.update(given_train_bytes=None, given_train_bits_per_byte=None)
        if train is not None:
            extra = len(fn(train + data)) - len(fn(train))
            row.update(given_train_bytes=extra, given_train_bits_per_byte=rate(extra))
        methods[name] = row
    return {
        "run": run.name,
        "text_bytes": n,
        "text_chars": len(text),
        "tokens": n_tokens,
        "train_text_bytes": len(train) if train is not None else None,
        "params_file_bytes": params_bytes,
        "n_params": run.model.n_params(),
        "methods": methods,
    }
