"""Tests for llmcore.corpus: the story world's labels, real text, user files, splits."""

import bisect
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcore import corpus as C
from llmcore.corpus import (
    CONCEPT_WORDS,
    CONCEPTS,
    CORPORA,
    Corpus,
    Span,
    from_path,
    load_corpus,
    mentions,
    python_docs,
    storyworld,
)
from llmcore.errors import UserError


@pytest.fixture(scope="module")
def world():
    return storyworld(seed=7, n_chars=300_000)


# --- concepts and keywords ---------------------------------------------------

def test_concept_table():
    assert len(CONCEPTS) >= 8 and CONCEPTS[0] == "golden_gate_bridge"
    assert set(CONCEPT_WORDS) == set(CONCEPTS) == set(C.CONCEPT_RATES)
    seen: set[str] = set()
    for words in CONCEPT_WORDS.values():
        assert all(w == w.lower() for w in words)
        assert not seen & set(words), "keyword sets must be disjoint"
        seen |= set(words)
    assert {"golden gate", "bridge", "fog", "san francisco", "bay"} <= set(CONCEPT_WORDS["golden_gate_bridge"])
    assert CORPORA == ("storyworld", "python-docs")


def test_mentions():
    assert mentions("The FOG rolled in.", "golden_gate_bridge")
    assert mentions("We flew to San  Francisco.", "golden_gate_bridge")  # any whitespace
    assert mentions("the bridge's cables", "golden_gate_bridge")
    assert not mentions("a bayonet and a foghorn", "golden_gate_bridge")  # whole words only
    assert not mentions("She ate a sandwich.", "ocean")
    assert mentions("Rain again.", "rain") and not mentions("Rain again.", "music")
    with pytest.raises(UserError, match="unknown concept"):
        mentions("text", "bridges")


def test_templates_are_clean():
    """Static version of the span invariant, over every template and filler."""
    ordinary = [*C._OPENINGS, *C._MIDDLES, *C._ENDINGS, *C._GIRLS, *C._BOYS]
    ordinary += [x for fillers in C._FILL.values() for x in fillers]
    for text in ordinary:
        hits = [c for c in CONCEPTS if mentions(text, c)]
        assert not hits, f"{text!r} mentions {hits}"
    for concept, templates in C._CONCEPT_SENTENCES.items():
        assert len(templates) >= 10 and len(set(templates)) == len(templates)
        for t in templates:
            assert mentions(t, concept), t
            assert [c for c in CONCEPTS if mentions(t, c)] == [concept], t
    for concept, endings in C._CONCEPT_ENDINGS.items():  # a topic story ends on its topic
        assert len(endings) >= 3
        for t in endings:
            assert [c for c in CONCEPTS if mentions(t, c)] == [concept], t


# --- the story world -----------------------------------------------------------

def test_storyworld_deterministic_and_seeded():
    a, b = storyworld(3, 20_000), storyworld(3, 20_000)
    assert a.text == b.text and a.spans == b.spans
    assert storyworld(4, 20_000).text != a.text
    assert a.source == "llmcore.corpus.storyworld(seed=3, n_chars=20000)"


def test_storyworld_default_size_and_rates():
    c = storyworld()
    assert len(c.text) >= 2_400_000 and c.stats()["bytes"] >= 2_000_000
    n_ggb = sum(s.concept == "golden_gate_bridge" for s in c.spans)
    assert 220 <= n_ggb <= 340  # about 4% of ~7,000 stories: rare, but learnable


def test_topic_rates_and_persistence():
    rng = random.Random(0)
    topics = dict.fromkeys([None, *CONCEPTS], 0)
    for _ in range(4000):
        sentences, topic = C._story(rng)
        assert 4 <= len(sentences) <= 10
        topics[topic] += 1
        about = [[c for c in CONCEPTS if mentions(s, c)] for s in sentences]
        assert about[0] == []  # openings are ordinary: the topic shows from the first middle
        assert all(a == ([topic] if topic else []) for a in about[1:])  # every later sentence on topic
    assert 0.035 <= topics["golden_gate_bridge"] / 4000 <= 0.045
    for c in CONCEPTS[1:]:
        assert 0.03 <= topics[c] / 4000 <= 0.065, c
    assert 0.35 <= 1 - topics[None] / 4000 <= 0.43


def test_storyworld_shape(world):
    text = world.text
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert all(ch.isascii() for ch in text) and len(set(text)) <= 72
    stories = text.rstrip("\n").split("\n\n")
    assert len(stories) > 100 and all(s and "\n" not in s for s in stories)
    assert all(s[0].isupper() and s[-1] in '.!?"' for s in stories)


def test_span_invariants(world):
    text, spans = world.text, world.spans
    assert spans and list(spans) == sorted(spans, key=lambda s: s.start)
    for prev, s in zip(spans, spans[1:]):
        assert prev.end <= s.start
    for s in spans:
        m = C._KEYWORD_RE[s.concept].match(text, s.start)  # starts on the story's first keyword
        assert m and m.end() <= s.end
        story_start = text.rfind("\n\n", 0, s.start) + 2 if "\n\n" in text[:s.start] else 0
        assert C._KEYWORD_RE[s.concept].search(text, story_start, s.start) is None
        assert text[s.end] == "\n" and text[s.end - 1] in '.!?"'  # ends with its story
        assert "\n" not in text[s.start:s.end]
    # Every keyword occurrence lies inside a span of its own concept.
    for concept in CONCEPTS:
        own = [s for s in spans if s.concept == concept]
        starts = [s.start for s in own]
        assert len(own) > 20, concept
        for m in C._KEYWORD_RE[concept].finditer(text):
            i = bisect.bisect_right(starts, m.start()) - 1
            assert i >= 0 and own[i].start <= m.start() and m.end() <= own[i].end, (
                concept, text[m.start() - 60:m.end() + 20])


def test_concept_mask(world):
    mask = world.concept_mask("rain")
    assert len(mask) == len(world.text)
    assert sum(mask) == sum(s.end - s.start for s in world.spans if s.concept == "rain")
    with pytest.raises(UserError):
        world.concept_mask("weather")


def test_storyworld_bad_args():
    with pytest.raises(UserError):
        storyworld(0, 0)
    with pytest.raises(UserError):
        storyworld("zero", 100)


# --- load_corpus ----------------------------------------------------------------

def test_load_storyworld_val_is_a_different_world():
    train = load_corpus("storyworld", "train", n_chars=200_000)
    val = load_corpus("storyworld", "val")
    assert train.name == "storyworld:train" and val.name == "storyworld:val"
    assert f"seed={C.VAL_SEED}" in val.source and "seed=0" in train.source
    assert 240_000 <= len(val.text) < 241_000
    assert val.spans and any(s.concept == "golden_gate_bridge" for s in val.spans)
    train_stories = set(train.text.split("\n\n"))
    val_stories = val.text.split("\n\n")
    assert sum(s in train_stories for s in val_stories) == 0
    assert load_corpus("storyworld", "all", n_chars=5_000).text == storyworld(0, 5_000).text


def test_load_python_docs_splits():
    full = load_corpus("python-docs", "all")
    train, val = load_corpus("python-docs", "train"), load_corpus("python-docs", "val")
    assert full.text.startswith(train.text) and full.text.endswith(val.text)
    assert train.text.endswith("\n") and not val.text.startswith("\n")
    assert 0.07 < len(val.text) / len(full.text) < 0.13
    small = load_corpus("python-docs", "all", n_chars=5_000)
    assert len(small.text) <= 5_000 and small.text.endswith("\n") and full.text.startswith(small.text)


def test_load_corpus_errors(tmp_path):
    with pytest.raises(UserError, match="split"):
        load_corpus("storyworld", "test")
    with pytest.raises(UserError, match="n_chars"):
        load_corpus("storyworld", n_chars=0)
    with pytest.raises(UserError, match="built-in corpus"):
        load_corpus(str(tmp_path / "nope.txt"))


def test_load_corpus_path(tmp_path):
    f = tmp_path / "book.txt"
    f.write_text("".join(f"Line number {i} of the book.\n" for i in range(200)))
    train, val = load_corpus(str(f)), load_corpus(str(f), "val")
    assert train.text + val.text == f.read_text()
    assert val.text.startswith("Line number 18")  # cut at a line break near 90%


# --- python docs ----------------------------------------------------------------------

def test_python_docs_is_prose():
    d = python_docs()
    s = d.stats()
    assert s["chars"] > 100_000 and s["words"] > 15_000
    assert 4.0 < s["bytes"] / s["words"] < 9.0
    assert "::=" not in d.text and ">>>" not in d.text and "**" not in d.text
    lines = [ln for ln in d.text.split("\n") if ln]
    assert all(not ln.startswith(" ") and ln.endswith(".") for ln in lines)
    letters = sum(ch.isalpha() or ch.isspace() for ch in d.text)
    assert letters / len(d.text) > 0.85
    assert python_docs().text == d.text and "pydoc_data.topics" in d.source


# --- from_path --------------------------------------------------------------------------

def test_from_path_file_and_folder(tmp_path):
    f = tmp_path / "one.txt"
    f.write_bytes(b"\xef\xbb\xbfHello there.\r\nSecond line.\r\n")
    c = from_path(f)
    assert c.text == "Hello there.\nSecond line.\n" and c.name == "one.txt" and str(f) in c.source
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "b.txt").write_text("Bee.\n")
    (folder / "a.txt").write_text("Ay.")
    (folder / "empty.txt").write_text("")
    (folder / "notes.md").write_text("ignored")
    c = from_path(folder)
    assert c.text == "Ay.\n\nBee.\n" and c.name == "books"


def _bad(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("make, message", [
    (lambda d: _bad(d, "empty.txt", b""), "empty"),
    (lambda d: _bad(d, "blank.txt", b" \n\n "), "empty"),
    (lambda d: d / "missing.txt", "no such file"),
    (lambda d: _bad(d, "data.bin", b"abc\x00def"), r"data\.bin.*binary.*offset 3"),
    (lambda d: _bad(d, "latin.txt", "caf\u00e9!".encode("latin-1")), r"latin\.txt.*0xe9 at offset 3"),
    (lambda d: (d / "sub").mkdir() or (d / "sub"), "no .txt"),
])
def test_from_path_errors(tmp_path, make, message):
    with pytest.raises(UserError, match=message):
        from_path(make(tmp_path))


def test_from_path_size_cap_and_empty_folder(tmp_path, monkeypatch):
    _bad(tmp_path, "x.txt", b"")
    with pytest.raises(UserError, match="every .txt file"):
        from_path(tmp_path)
    big = _bad(tmp_path, "big.txt", b"word " * 100)
    monkeypatch.setattr(C, "MAX_BYTES", 100)
    with pytest.raises(UserError, match="limit"):
        from_path(big)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_from_path_fuzz(data):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "fuzz.txt"
        p.write_bytes(data)
        try:
            c = from_path(p)
        except UserError as e:
            assert "\n" not in str(e) and "fuzz.txt" in str(e)
        else:
            assert c.text.strip() and "\r" not in c.text


# --- split and stats ------------------------------------------------------------------

def test_split_shifts_spans():
    text = "aa bb cc\n\ndd ee ff\n\ngg hh ii\n"
    spans = (Span(0, 2, "rain"), Span(13, 18, "music"), Span(20, 28, "rain"))
    c = Corpus("t", text, spans, "test")
    train, val = c.split(0.3)
    assert train.text == "aa bb cc\n\ndd ee ff\n" and val.text == "gg hh ii\n"
    assert train.spans == spans[:2] and val.spans == (Span(0, 8, "rain"),)
    assert val.text[0:8] == text[20:28] and train.name == "t:train" and val.name == "t:val"


def test_split_clips_a_span_across_the_cut():
    c = Corpus("t", "one two three four five six seven eight nine ten", (Span(4, 44, "numbers"),))
    train, val = c.split(0.5)
    assert train.spans == (Span(4, len(train.text), "numbers"),)
    offset = len(c.text) - len(val.text)
    assert val.spans == (Span(0, 44 - offset, "numbers"),)


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet="ab \n", min_size=0, max_size=120), st.floats(0.05, 0.95),
       st.lists(st.tuples(st.integers(0, 119), st.integers(1, 20)), max_size=5))
def test_split_property(text, frac, raw):
    spans, pos = [], 0
    for start, length in sorted(raw):  # disjoint, sorted spans inside the text
        start = max(start, pos)
        if start + length <= len(text):
            spans.append(Span(start, start + length, "rain"))
            pos = start + length
    c = Corpus("p", text, tuple(spans))
    try:
        train, val = c.split(frac)
    except UserError:
        return
    offset = len(text) - len(val.text)
    assert text.startswith(train.text) and text.endswith(val.text) and len(train.text) <= offset
    assert train.text.strip() and val.text.strip()
    for s in train.spans:
        assert 0 <= s.start < s.end <= len(train.text)
    for s in val.spans:
        assert 0 <= s.start < s.end <= len(val.text)
        assert any(o.start <= s.start + offset and s.end + offset <= o.end for o in spans)


def test_split_errors():
    c = Corpus("t", "a\n")
    with pytest.raises(UserError, match="too short"):
        c.split()
    with pytest.raises(UserError, match="val_fraction"):
        Corpus("t", "a b c d").split(1.0)


def test_stats_with_fake_tokenizer():
    class Bytes:
        def encode(self, text):
            return list(text.encode("utf-8"))

    c = Corpus("t", "hi there\nsecond line")
    assert c.stats() == {"bytes": 20, "chars": 20, "words": 4, "lines": 2}
    s = Corpus("t", "caf\u00e9\n").stats(Bytes())
    assert s["bytes"] == 6 and s["chars"] == 5 and s["tokens"] == 6 and s["bytes_per_token"] == 1.0
    assert Corpus("e", "").stats(Bytes()) == {"bytes": 0, "chars": 0, "words": 0, "lines": 0,
                                              "tokens": 0, "bytes_per_token": 0.0}
