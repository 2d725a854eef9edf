"""Tests for llmcore.tokenizer: round trips, files, hostile input, Hugging Face parity.

Every tokenizer here is trained in the test on a few lines of text (hermetic, no
downloads); the Hugging Face reference is `tokenizers` / `transformers` itself.
"""

import copy
import doctest
import json
import logging
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmcore.tokenizer as T
from llmcore import byte_level
from llmcore.byte_level import bytes_to_unicode
from llmcore.errors import UserError
from llmcore.hf import load_hf, save_hf
from llmcore.tokenizer import (
    UNK_STR,
    BPETokenizer,
    CharTokenizer,
    load_tokenizer,
    show_bytes,
    train_tokenizer,
)

TEXT = (
    "Once upon a time, a little cat named Tom sat on a mat.\n"
    "Tom was happy. He liked the sun, the wind and the sea!\n\n"
    'One day Tom met a dog. "Hello," said the dog. Tom said: hello 123.\n'
    "Café, naïve, 東京, 😀 — tabs\tand  spaces   too.\n\n"
) * 8

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(TEXT, vocab_size=320)


@pytest.fixture(scope="module")
def char():
    return CharTokenizer.train(TEXT)


def test_docstring_examples_run():
    assert doctest.testmod(T).failed == 0


def test_byte_map_is_gpt2s():
    from tokenizers import pre_tokenizers

    m = bytes_to_unicode()
    assert len(set(m.values())) == 256
    assert set(m.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert (m[ord(" ")], m[ord("\n")], m[ord("a")]) == ("Ġ", "Ċ", "a")


def test_show_bytes_escapes_partial_characters():
    assert show_bytes(b" the") == " the"
    assert show_bytes("→".encode()[:2]) == "<0xE2><0x86>"
    assert show_bytes(b"a\xffb") == "a<0xFF>b"


# ---------------------------------------------------------------- char


def test_char_alphabet_is_sorted_set_plus_unknown():
    tok = CharTokenizer.train("abba cab")
    assert tok.chars == [" ", "a", "b", "c"]
    assert (tok.unk_id, tok.vocab_size, tok.kind) == (4, 5, "char")
    assert tok.encode("cab") == [3, 1, 2]
    assert tok.token_str(tok.unk_id) == UNK_STR


@FUZZ
@given(data=st.data())
def test_char_round_trip_over_its_alphabet(char, data):
    s = data.draw(st.text(alphabet=st.sampled_from(char.chars), max_size=60))
    ids = char.encode(s, errors="strict")
    assert char.decode(ids) == s
    assert "".join(p for p, _ in char.pieces(s)) == s


def test_char_unknown_replace_is_visible_and_logged_once(char, caplog):
    with caplog.at_level(logging.WARNING, logger="llmcore.tokenizer"):
        ids = char.encode("Tom ZZ~")  # 'Z' and '~' never appear in TEXT
    assert ids[-3:] == [char.unk_id] * 3
    assert char.decode(ids) == f"Tom {UNK_STR * 3}"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "3 character(s)" in warnings[0].getMessage()
    assert char.pieces("aZ")[1] == (UNK_STR, char.unk_id)


def test_char_unknown_strict_names_char_and_position(char):
    with pytest.raises(UserError, match=r"'Z' at position 4"):
        char.encode("Tom Z", errors="strict")
    with pytest.raises(UserError, match="errors must be"):
        char.encode("Tom", errors="ignore")


@FUZZ
@given(s=st.text(max_size=40))
def test_char_never_crashes_on_any_text(char, s):
    ids = char.encode(s)
    assert len(ids) == len(s) and all(0 <= i < char.vocab_size for i in ids)


@pytest.mark.parametrize("bad", ["", None, 123, "a\ud800b"])
def test_char_train_refuses_bad_text(bad):
    with pytest.raises(UserError):
        CharTokenizer.train(bad)


def test_char_constructor_validates():
    for bad in ([], ["ab"], ["a", "a"], [1], "abc", ["\udc80"]):
        with pytest.raises(UserError):
            CharTokenizer(bad)


# ---------------------------------------------------------------- BPE


@FUZZ
@given(s=st.text(max_size=80))  # any unicode (hypothesis leaves out lone surrogates)
def test_bpe_round_trip_any_text(bpe, s):
    ids = bpe.encode(s)
    assert bpe.decode(ids) == s


@pytest.mark.parametrize(
    "s",
    ["", "\x00", "a\x00b", "😀🦙👩‍👩‍👧", "e\u0301\u0301", "\r\n\t \u2028", "\U0010ffff", "Ġ Ċ <0xE2>", "東京タワー"],
)
def test_bpe_round_trip_hard_cases(bpe, s):
    assert bpe.decode(bpe.encode(s)) == s


def test_bpe_vocab_is_bytes_plus_merges(bpe):
    assert bpe.kind == "bpe" and bpe.vocab_size == 320
    assert len(bpe.merges) == 320 - 256
    assert sorted(bpe.token_bytes(i) for i in range(bpe.vocab_size) if len(bpe.token_bytes(i)) == 1) == [
        bytes([b]) for b in range(256)
    ]
    # Each merge's token is its two halves joined.
    tm = BPETokenizer.train("the cat sat on the mat. " * 50, vocab_size=260)
    assert tm.merges == [("a", "t"), ("h", "e"), ("t", "he"), (" ", "the")]
    assert [tm.token_str(i) for i in range(256, 260)] == ["at", "he", "the", " the"]


def test_bpe_pieces(bpe):
    s = "Once upon a time, Tom said hello.\n\n"
    pieces = bpe.pieces(s)
    assert "".join(p for p, _ in pieces) == s
    assert [i for _, i in pieces] == bpe.encode(s)
    assert any(p.startswith(" ") and len(p) > 1 for p, _ in pieces)  # " upon"-style pieces keep the space
    # A character the training text never had is spelled in bytes, escaped for display.
    emoji = [p for p, _ in bpe.pieces("🦙")]
    assert "".join(emoji) == "<0xF0><0x9F><0xA6><0x99>"


@FUZZ
@given(s=st.text(alphabet=st.sampled_from(list("ab1'. \n\t\x1f\u00a0\u3000é😀")), min_size=20, max_size=300))
def test_bpe_chunked_encoding_equals_one_call(bpe, monkeypatch, s):
    monkeypatch.setattr(T, "CHUNK_CHARS", 4)  # cut every few characters
    assert bpe.encode(s) == bpe._tk.encode(s, add_special_tokens=False).ids


def test_bpe_chunked_encoding_on_a_long_text(bpe):
    long = TEXT * 60  # ~110k characters: several chunks
    assert bpe._chunkable and len(long) > 4 * T.CHUNK_CHARS
    assert bpe.encode(long) == bpe._tk.encode(long, add_special_tokens=False).ids


def test_bpe_training_is_deterministic(bpe):
    again = BPETokenizer.train(TEXT, vocab_size=320)
    assert again.to_dict() == bpe.to_dict()
    # ... and in a fresh process, where every Rust hash map is seeded differently.
    code = (
        "import json, sys; from llmcore.tokenizer import BPETokenizer;"
        "print(json.dumps(BPETokenizer.train(sys.stdin.read(), 320).to_dict()))"
    )
    out = subprocess.run([sys.executable, "-c", code], input=TEXT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == bpe.to_dict()


def test_bpe_small_text_stops_early():
    tok = BPETokenizer.train("abab", vocab_size=1000)
    assert 256 < tok.vocab_size < 1000 and tok.decode(tok.encode("abab!")) == "abab!"


@pytest.mark.parametrize(
    "text, vocab_size",
    [
        ("", 300),
        (None, 300),
        ("abc", 256),
        ("abc", 100_001),
        ("abc", True),
        ("abc", "1024"),
        ("abc", 300.0),
        ("a\udc80", 300),
    ],
)
def test_bpe_train_refuses_bad_settings(text, vocab_size):
    with pytest.raises(UserError):
        BPETokenizer.train(text, vocab_size=vocab_size)


def test_bpe_encode_refuses_surrogates_and_non_text(bpe):
    with pytest.raises(UserError, match="position 1"):
        bpe.encode("a\ud800")
    with pytest.raises(UserError, match="str"):
        bpe.encode(b"bytes")


def test_train_tokenizer_dispatch():
    assert isinstance(train_tokenizer("char", "abc"), CharTokenizer)
    assert isinstance(train_tokenizer("bpe", "abc abc", vocab_size=258), BPETokenizer)
    with pytest.raises(UserError, match="kind"):
        train_tokenizer("wordpiece", "abc")


# ---------------------------------------------------------------- decode checks


@pytest.mark.parametrize("which", ["char", "bpe"])
def test_decode_refuses_bad_ids(which, request):
    tok = request.getfixturevalue(which)
    for bad in ([-1], [tok.vocab_size], [0, 10**30], ["a"], [1.0], [None], [True], 5, None):
        with pytest.raises(UserError):
            tok.decode(bad)
    with pytest.raises(UserError, match="outside the vocabulary"):
        tok.token_str(tok.vocab_size)
    ids = tok.encode("Tom sat")
    assert tok.decode(np.array(ids)) == tok.decode(tuple(ids)) == "Tom sat"  # numpy ints are fine


def test_bpe_decode_of_half_a_character_is_replacement(bpe):
    ids = bpe.encode("🦙")  # four byte tokens
    assert bpe.decode(ids[:2]) == UNK_STR


# ---------------------------------------------------------------- files


@pytest.mark.parametrize("which", ["char", "bpe"])
def test_save_load_round_trip(which, request, tmp_path):
    tok = request.getfixturevalue(which)
    path = tok.save(tmp_path / "run" / "tokenizer.json")
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]  # no temporary left behind
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["kind"] == which and data["format_version"] == 1
    for again in (load_tokenizer(path), load_tokenizer(str(path)), load_tokenizer(path.parent), load_tokenizer(data)):
        assert type(again) is type(tok) and again.to_dict() == tok.to_dict()
        assert again.encode(TEXT[:300]) == tok.encode(TEXT[:300])
    assert tok.save(tmp_path / "run") == path  # a folder means its tokenizer.json


def _bad_files(tmp_path):
    good = CharTokenizer.train("abc").to_dict()
    yield "missing", tmp_path / "nope.json"
    yield "empty dir", tmp_path
    for name, text in [
        ("truncated", json.dumps(good)[:20]),
        ("list", "[1, 2, 3]"),
        ("deep", "[" * 100_000 + "]" * 100_000),
        ("long int", '{"kind": "char", "format_version": ' + "9" * 5000 + "}"),
        ("no kind", '{"chars": ["a"]}'),
        ("hf file", '{"model": {"type": "BPE"}}'),
        ("bad kind", json.dumps({**good, "kind": "wordpiece"})),
        ("kind not str", json.dumps({**good, "kind": ["char"]})),
        ("too new", json.dumps({**good, "format_version": 2})),
        ("no version", json.dumps({k: v for k, v in good.items() if k != "format_version"})),
        ("bool version", json.dumps({**good, "format_version": True})),
        ("chars dict", json.dumps({**good, "chars": {"a": 0}})),
        ("chars not str", json.dumps({**good, "chars": ["a", 1, "c"]})),
        ("chars multi", json.dumps({**good, "chars": ["a", "bc", "d"]})),
        ("chars dup", json.dumps({**good, "chars": ["a", "b", "a"]})),
        ("chars surrogate", '{"kind": "char", "format_version": 1, "chars": ["\\ud800"], "unk_id": 1}'),
        ("unk_id", json.dumps({**good, "unk_id": 0})),
        ("bpe no tokenizer", '{"kind": "bpe", "format_version": 1}'),
        ("bpe tokenizer list", '{"kind": "bpe", "format_version": 1, "tokenizer": []}'),
    ]:
        p = tmp_path / f"{name}.json"
        p.write_text(text, encoding="utf-8")
        yield name, p
    p = tmp_path / "binary.json"
    p.write_bytes(b"\xff\xfe\x00junk")
    yield "binary", p


def test_hostile_files_give_one_line_user_errors(tmp_path):
    for name, path in list(_bad_files(tmp_path)):
        with pytest.raises(UserError) as e:
            load_tokenizer(path)
        assert "\n" not in str(e.value), name
    with pytest.raises(UserError, match="load_hf"):
        load_tokenizer(tmp_path / "hf file.json")
    with pytest.raises(UserError, match="upgrade"):
        load_tokenizer(tmp_path / "too new.json")
    with pytest.raises(UserError):
        load_tokenizer(42)
    with pytest.raises(UserError, match="cannot read"):
        load_tokenizer("bad\x00path.json")


def _bpe_json(tok):
    return copy.deepcopy(tok.to_dict()["tokenizer"])


def test_hostile_bpe_contents(bpe, monkeypatch):
    def broken(edit):
        d = _bpe_json(bpe)
        edit(d)
        with pytest.raises(UserError):
            load_tokenizer({"kind": "bpe", "format_version": 1, "tokenizer": d})

    broken(lambda d: d.update(normalizer={"type": "NFC"}))
    broken(lambda d: d["pre_tokenizer"].update(add_prefix_space=True))
    broken(lambda d: d.update(pre_tokenizer={"type": "Whitespace"}))
    broken(lambda d: d["model"].update(dropout=0.1))
    broken(lambda d: d["model"].update(type="WordPiece"))
    broken(lambda d: d["model"]["vocab"].pop("Ġ"))  # a missing byte (and a gap in the ids)
    broken(lambda d: d["model"]["vocab"].update({"Ġ": 10_000}))  # id past the end
    broken(lambda d: d["model"]["vocab"].update({"Ġ": 0}))  # two tokens, one id
    broken(lambda d: d["model"]["vocab"].update({"Ġ": "220"}))
    broken(lambda d: d["model"]["vocab"].update({"\u4e00": 320}))  # not a byte-level string
    broken(lambda d: d["model"].update(merges=[["not", "there"]]))  # tokenizers refuses it
    broken(lambda d: d["model"].update(merges="Ġ t"))
    broken(lambda d: d.update(added_tokens=[{"id": 320, "content": "<x>", "lstrip": True}]))
    broken(lambda d: d.update(added_tokens=[{"id": "320", "content": "<x>"}]))
    monkeypatch.setattr(T, "MAX_LOAD_VOCAB", 300)  # the char tokenizer reads it here
    monkeypatch.setattr(byte_level, "MAX_LOAD_VOCAB", 300)  # byte-level BPE there
    broken(lambda d: None)  # 320 tokens > patched limit: "huge vocab"
    with pytest.raises(UserError, match="limit"):
        CharTokenizer([chr(i) for i in range(33, 400)])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(obj, prefix=()):
    # Every place in a nested JSON value: ("tokenizer", "model", "vocab", "Ġ"), ...
    yield prefix
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for k, v in items:
        yield from _paths(v, (*prefix, k))


def _mutate(data, base):
    # Replace or delete one to three places in a valid JSON document with junk.
    paths = list(_paths(base))[:400]
    d = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        if not path:
            d = data.draw(JSON)
            continue
        parent = d
        try:
            for k in path[:-1]:
                parent = parent[k]
            if data.draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = data.draw(JSON)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed this place
    return d


def _still_works_or_user_error(load, d):
    try:
        tok = load(d)
    except UserError as e:
        assert "\n" not in str(e)
    else:  # a harmless mutation: the tokenizer must still work
        out = tok.decode(tok.encode("Tom sat"))
        assert out == "Tom sat" if tok.kind == "bpe" else len(out) == 7


@FUZZ
@given(data=st.data())
def test_mutated_files_only_raise_user_error(bpe, char, data):
    base = data.draw(st.sampled_from([bpe, char])).to_dict()
    _still_works_or_user_error(load_tokenizer, _mutate(data, base))


@FUZZ
@given(data=st.data())
def test_mutated_hf_files_only_raise_user_error(bpe, char, tmp_path, data):
    folder = tmp_path / data.draw(st.sampled_from(["bpe", "char"]))
    if not folder.exists():
        save_hf(bpe if folder.name == "bpe" else char, folder)
    base = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    bad = tmp_path / "bad" / "tokenizer.json"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text(json.dumps(_mutate(data, base)), encoding="utf-8")
    _still_works_or_user_error(load_hf, bad.parent)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_junk_bytes_only_raise_user_error(tmp_path, blob):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(blob)
    with pytest.raises(UserError):
        load_tokenizer(path)
    with pytest.raises(UserError):
        load_hf(path)


# ---------------------------------------------------------------- Hugging Face exchange

ORDINARY = ["Once upon a time, Tom met a dog.\n\nThe end.", "hello 123 Café 東京 😀", "  spaces\tand\nlines  "]


@pytest.mark.parametrize("which", ["char", "bpe"])
def test_save_hf_matches_transformers(which, request, tmp_path):
    transformers = pytest.importorskip("transformers")
    tok = request.getfixturevalue(which)
    folder = save_hf(tok, tmp_path / "hf")
    auto = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    texts = ORDINARY + ["Tom ZZ~ unknown chars"]  # char: 'Z', '~' are unknown on both sides
    for s in texts:
        ours = tok.encode(s)
        assert auto.encode(s) == ours and fast.encode(s) == ours, s
        assert auto.decode(ours) == tok.decode(ours)
    back = load_hf(folder)
    assert type(back) is type(tok) and back.to_dict() == tok.to_dict()


def test_save_hf_keeps_run_directory_tokenizer(char, tmp_path):
    char.save(tmp_path)
    with pytest.raises(UserError, match="llmcore tokenizer"):
        save_hf(char, tmp_path)
    assert load_tokenizer(tmp_path).to_dict() == char.to_dict()
    assert load_hf(tmp_path).to_dict() == char.to_dict()  # load_hf reads an llmcore file too


def test_load_hf_gpt2_style(tmp_path):
    from tokenizers import ByteLevelBPETokenizer

    # A tiny stand-in for GPT-2's tokenizer.json: byte-level BPE with <|endoftext|>.
    ref = ByteLevelBPETokenizer()
    ref.train_from_iterator([TEXT], vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False)
    ref.save(str(tmp_path / "tokenizer.json"))
    tok = load_hf(tmp_path)
    assert isinstance(tok, BPETokenizer) and tok.vocab_size == ref.get_vocab_size() == 300
    for s in ORDINARY + ["story one<|endoftext|>story two", "🦙\x00"]:
        assert tok.encode(s) == ref.encode(s).ids
        assert tok.decode(tok.encode(s)) == s == ref.decode(ref.encode(s).ids, skip_special_tokens=False)
    assert tok.token_str(0) == "<|endoftext|>"
    assert load_tokenizer(tok.to_dict()).encode(TEXT) == ref.encode(TEXT).ids  # survives our own format


def test_load_hf_gpt2_legacy_layout(tmp_path):
    from tokenizers import ByteLevelBPETokenizer

    # GPT-2's file on the Hub dates from 2020: no model "type", merges as "a b" strings,
    # empty-string affixes, and <|endoftext|> as the last id (50256 there).
    ref = ByteLevelBPETokenizer()
    ref.train_from_iterator([TEXT], vocab_size=300, show_progress=False)
    ref.add_special_tokens(["<|endoftext|>"])
    d = json.loads(ref._tokenizer.to_str())
    model = d["model"]
    del model["type"]
    model["merges"] = [" ".join(m) for m in model["merges"]]
    model.update(continuing_subword_prefix="", end_of_word_suffix="")
    d["added_tokens"][0]["normalized"] = True
    (tmp_path / "tokenizer.json").write_text(json.dumps(d), encoding="utf-8")
    tok = load_hf(tmp_path)
    assert tok.vocab_size == 301 and tok.token_str(300) == "<|endoftext|>"
    s = "Tom said hello.<|endoftext|>The end."
    assert tok.encode(s) == ref.encode(s).ids and tok.decode(tok.encode(s)) == s
    assert len(tok.merges) == len(model["merges"])


def test_load_hf_split_then_byte_level(tmp_path):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    # Llama-3 style: a regex Split, then ByteLevel without its own regex.
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\p{N}{1,3}| ?\p{L}+|\s+|."), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    hf.decoder = decoders.ByteLevel()
    hf.train_from_iterator(
        [TEXT],
        trainers.BpeTrainer(vocab_size=280, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False),
    )
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = load_hf(tmp_path / "tokenizer.json")
    for s in ORDINARY:
        assert tok.encode(s) == hf.encode(s).ids and tok.decode(tok.encode(s)) == s


def test_load_hf_refuses_unsupported(tmp_path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    wp = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    wp.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(UserError, match="not supported"):
        load_hf(tmp_path)
    wl = Tokenizer(models.WordLevel({"hello": 0, "<unk>": 1}, unk_token="<unk>"))
    wl.pre_tokenizer = pre_tokenizers.Whitespace()
    wl.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(UserError, match="char export"):
        load_hf(tmp_path)
    nfc = Tokenizer(models.BPE())
    nfc.normalizer = normalizers.NFC()
    nfc.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    nfc.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(UserError, match="normalizer"):
        load_hf(tmp_path)
    with pytest.raises(UserError, match="no tokenizer file"):
        load_hf(tmp_path / "elsewhere")
