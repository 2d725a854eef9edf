"""Tests for llmcore.compress: exact round trips, hostile files, the size bound, the comparison.

The runs are the random tiny GPTs of conftest.py (n_ctx = 32, so a few hundred
characters already slide the window several times). A random model predicts badly,
which does not matter here: every property below holds for any model.
"""

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmcore.compress import (
    HEADER,
    MAGIC,
    MAX_TOKENS_PER_CODE_BYTE,
    ArithmeticDecoder,
    ArithmeticEncoder,
    compare_compressors,
    compress,
    decompress,
    model_bits,
    quantise,
)
from llmcore.errors import UserError

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FUZZ_FILES = settings(FUZZ, max_examples=15)  # each example decodes a whole file


@pytest.fixture(scope="module")
def char_run(tiny_run):
    from llmcore.run import load_run

    return load_run(tiny_run)


@pytest.fixture(scope="module")
def bpe_run(tiny_bpe_run):
    from llmcore.run import load_run

    return load_run(tiny_bpe_run)


@pytest.fixture(scope="module")
def sample(story_text) -> bytes:
    return story_text[:300].encode()


@pytest.fixture(scope="module")
def blob(bpe_run, sample) -> bytes:
    return compress(bpe_run, sample)


# --- the coder on its own -------------------------------------------------------------


def test_coder_round_trips_skewed_symbols():
    rng = np.random.default_rng(0)
    freqs = np.array([1, 1, 5000, 3, 2**20, 1])  # very likely and very unlikely symbols
    cum = np.concatenate([[0], np.cumsum(freqs)])
    symbols = rng.choice(len(freqs), size=2000, p=freqs / freqs.sum()).tolist() + [0, 1, 5, 0]
    enc = ArithmeticEncoder()
    for s in symbols:
        enc.encode(int(cum[s]), int(cum[s + 1]), int(cum[-1]))
    dec = ArithmeticDecoder(enc.finish())
    out = []
    for _ in symbols:
        s = int(np.searchsorted(cum, dec.target(int(cum[-1])), side="right")) - 1
        dec.consume(int(cum[s]), int(cum[s + 1]), int(cum[-1]))
        out.append(s)
    assert out == symbols


def test_quantise_gives_every_token_a_count():
    cum = quantise(np.array([0.0, -1000.0, 50.0, 3.0], dtype=np.float32))
    freqs = np.diff(cum)
    assert freqs.min() == 1 and cum[-1] <= 2**24 and freqs.argmax() == 2
    with pytest.raises(UserError, match="NaN"):
        quantise(np.array([0.0, np.nan], dtype=np.float32))


# --- round trips ----------------------------------------------------------------------


def test_empty_input_round_trips(char_run, bpe_run):
    for run in (char_run, bpe_run):
        blob = compress(run, b"")
        assert len(blob) == HEADER.size and decompress(run, blob) == b""


@FUZZ
@given(text=st.text(max_size=40))
def test_bpe_round_trips_any_unicode(bpe_run, text):
    data = text.encode()
    assert decompress(bpe_run, compress(bpe_run, data)) == data


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("the cat. \nMia")) | st.characters(), max_size=40))
def test_char_round_trips_unseen_characters(char_run, text):
    data = text.encode()
    assert decompress(char_run, compress(char_run, data)) == data


def test_unknown_characters_cost_21_bits_each(char_run):
    known, unseen = "the cat", "the c\u00e6t\U0001f600"  # two characters the alphabet lacks
    assert model_bits(char_run, unseen) > model_bits(char_run, known) + 2 * 21 - 30


def test_long_text_slides_the_window(char_run, bpe_run, story_text):
    text = story_text[:700]  # 700 characters: the char model's context of 32 slides ~40 times
    for run in (char_run, bpe_run):
        data = text.encode()
        assert decompress(run, compress(run, data)) == data


def test_compression_is_deterministic(bpe_run, sample, blob):
    assert compress(bpe_run, sample) == blob


def test_progress_reports_tokens(bpe_run, sample):
    seen = []
    blob = compress(bpe_run, sample, progress=lambda done, total: seen.append((done, total)))
    n_tokens = struct.unpack_from("<I", blob, 41)[0]
    assert seen and seen[-1] == (n_tokens, n_tokens)
    back = []
    decompress(bpe_run, blob, progress=lambda done, total: back.append((done, total)))
    assert back == seen


# --- size: the real file against the model's cross-entropy --------------------------


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_size_is_within_a_few_bytes_of_the_cross_entropy(kind, char_run, bpe_run, story_text):
    run = char_run if kind == "char" else bpe_run
    text = story_text[:500] + " \u00e6\u00f8\u00e5"  # with unknown characters for the char model
    code_bits = 8 * (len(compress(run, text.encode())) - HEADER.size)
    ideal = model_bits(run, text)
    assert ideal - 8 <= code_bits <= ideal + 2 + 8 + 1e-3 * ideal  # 2 bits to finish, 8 to fill the byte


# --- bad input, wrong model, hostile files ------------------------------------------


def test_invalid_utf8_names_the_offset(char_run):
    with pytest.raises(UserError, match="offset 3"):
        compress(char_run, b"abc\xff def")
    with pytest.raises(UserError, match="bytes"):
        compress(char_run, "text, not bytes")


def test_wrong_model_is_refused(tmp_path, bpe_run, blob):
    from llmcore.model import GPT
    from llmcore.params import save_params
    from llmcore.run import load_run

    other_dir = tmp_path / "other"
    other_dir.mkdir()
    bpe_run.tokenizer.save(other_dir / "tokenizer.json")
    save_params(GPT(bpe_run.model.cfg, seed=7), other_dir / "model.safetensors", tokenizer_kind="bpe")
    other = load_run(other_dir)
    with pytest.raises(UserError, match="different model"):
        decompress(other, blob)


def _fails_cleanly(run, corrupt: bytes, original: bytes):
    """A damaged file either raises UserError or (when only padding changed) decodes exactly."""
    try:
        out = decompress(run, corrupt)
    except UserError:
        return
    assert out == original


@FUZZ_FILES
@given(data=st.data())
def test_truncated_and_bit_flipped_files_fail_cleanly(bpe_run, sample, blob, data):
    cut = data.draw(st.integers(0, len(blob) - 1))
    _fails_cleanly(bpe_run, blob[:cut], sample)
    bit = data.draw(st.integers(0, 8 * len(blob) - 1))
    flipped = bytearray(blob)
    flipped[bit // 8] ^= 1 << (bit % 8)
    _fails_cleanly(bpe_run, bytes(flipped), sample)


@FUZZ
@given(tail=st.binary(max_size=200), n_bytes=st.integers(0, 2**32 - 1), n_tokens=st.integers(0, 2**32 - 1))
def test_garbage_after_a_valid_looking_header_fails_cleanly(bpe_run, blob, tail, n_bytes, n_tokens):
    header = MAGIC + bytes([1]) + blob[5:37] + struct.pack("<III", n_bytes, n_tokens, zlib.crc32(tail))
    valid_empty_file = n_bytes == n_tokens == 0 and not tail
    _fails_cleanly(bpe_run, header + tail, b"" if valid_empty_file else None)  # else only UserError will do
    with pytest.raises(UserError):
        decompress(bpe_run, tail)  # no header at all


def test_a_huge_token_count_is_refused_at_once(bpe_run, blob):
    lying = blob[:37] + struct.pack("<III", 2**32 - 1, 2**32 - 1, 0) + blob[HEADER.size :]
    with pytest.raises(UserError, match="corrupt"):
        decompress(bpe_run, lying)
    assert (len(blob) - HEADER.size) * MAX_TOKENS_PER_CODE_BYTE < 2**32 - 1


def test_other_versions_and_files_are_refused(bpe_run, blob):
    with pytest.raises(UserError, match="version"):
        decompress(bpe_run, blob[:4] + bytes([99]) + blob[5:])
    with pytest.raises(UserError, match="not an llmcore compressed file"):
        decompress(bpe_run, b"\x1f\x8b\x08 a gzip file")


# --- the comparison and its figure -----------------------------------------------------


def test_compare_compressors(bpe_run, story_text):
    text, train = story_text[:400], story_text[400:3000]
    r = compare_compressors(bpe_run, text, train_text=train)
    n = len(text.encode())
    assert r["text_bytes"] == n and r["train_text_bytes"] == len(train.encode())
    assert set(r["methods"]) == {"model", "model + parameter file", "gzip -9", "bz2 -9", "xz -9e"}
    model = r["methods"]["model"]
    assert model["bytes"] == len(compress(bpe_run, text.encode()))
    assert abs(model["cross_entropy_bytes"] - model_bits(bpe_run, text) / 8) < 1e-6
    assert r["methods"]["model + parameter file"]["bytes"] == model["bytes"] + r["params_file_bytes"]
    for name, row in r["methods"].items():
        assert row["bits_per_byte"] == pytest.approx(8 * row["bytes"] / n), name
    for name in ("gzip -9", "bz2 -9", "xz -9e"):
        row = r["methods"][name]
        assert 0 < row["bytes"] < n and row["given_train_bytes"] is not None
        assert row["given_train_bits_per_byte"] == pytest.approx(8 * row["given_train_bytes"] / n)
    # Given the training text, xz finds the repeated story phrases there: it must help.
    assert r["methods"]["xz -9e"]["given_train_bytes"] < r["methods"]["xz -9e"]["bytes"]

    alone = compare_compressors(bpe_run, text[:50])
    assert alone["train_text_bytes"] is None and alone["methods"]["gzip -9"]["given_train_bytes"] is None
    with pytest.raises(UserError):
        compare_compressors(bpe_run, "")


def test_compression_figure(bpe_run, story_text):
    from llmcore.viz.compress import compression_figure

    r = compare_compressors(bpe_run, story_text[:100], train_text=story_text[100:1000])
    fig = compression_figure(r)
    assert [t.name for t in fig.data] == ["the receiver has nothing", "the receiver has the training text"]
    assert list(fig.data[0].x) == ["model", "gzip -9", "bz2 -9", "xz -9e"]
    assert fig.data[1].y[0] == pytest.approx(r["methods"]["model"]["bits_per_byte"])
    assert fig.layout.yaxis.type == "log"
    compression_figure(compare_compressors(bpe_run, story_text[:50]), projector=True)  # no training text
    with pytest.raises(UserError, match="compare_compressors"):
        compression_figure({"methods": {}})
