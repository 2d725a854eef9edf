"""Tests for the stage figures (llmcore.viz.data/training/params/inference) and their helpers in scale.

Each builder is fed small data built here (or a tiny random run from conftest) and
checked for what a learner would see: the number of traces and frames, the values
plotted, escaped text. Nothing is timed.
"""

import json
import re
import struct
import subprocess
import sys

import pytest
import torch

from llmcore.errors import UserError
from llmcore.viz.common import HIGHLIGHT_COLOUR, NARROW_CELL_WRAP, PROJECTOR_FONT_SIZE


@pytest.fixture(scope="module")
def run(tiny_bpe_run):
    from llmcore.run import load_run

    torch.set_num_threads(1)
    return load_run(tiny_bpe_run)


def _metrics(n=20):
    rows = []
    for s in range(1, n + 1):
        row = {"step": s, "loss": 7 - s * 0.2}
        if s % 5 == 0:
            row |= {"val_loss": 7.1 - s * 0.2, "val_bpb": 2.5 - s * 0.05}
        rows.append(row)
    return rows


def _timeline(steps=(0, 10, 20)):
    return [{"step": s, "tokens_seen": s * 100,
             "samples": {"Once upon a time": f" text at {s} <script>x</script>", "\n": "a\nb"},
             "embedding_2d": {"tokens": [" the", "ed", ".", " a"], "xy": [[s, 0], [0, s], [1, 1], [-s, -1]]}}
            for s in steps]


# --- llmcore.scale additions --------------------------------------------------------


def test_reading_equivalents_of_llama2_data():
    from llmcore.scale import LLAMA2_DATA_BYTES, reading_equivalents, reading_time_text

    r = reading_equivalents(LLAMA2_DATA_BYTES)
    assert r["books"] == pytest.approx(2e7)
    assert r["words"] == pytest.approx(10e12 / 6)
    # 1.67e12 words / 250 per minute / 60 / 8 hours / 365.25 days ~ 38,000 years
    assert r["reading_years"] == pytest.approx(38_026, rel=1e-3)
    assert "250 words a minute" in r["assumptions"]["text"]
    assert reading_time_text(LLAMA2_DATA_BYTES) == "20,000,000 books, 38,026 years of reading"
    assert reading_time_text(30_000).endswith("minutes of reading")
    assert reading_equivalents(0)["books"] == 0
    for bad in (-1, float("nan"), "10", True):
        with pytest.raises(UserError):
            reading_equivalents(bad)


def test_measure_kv_cache_rows(run):
    from llmcore.scale import measure_kv_cache

    rows = measure_kv_cache(run.model, run.tokenizer, lengths=(2, 3), prompt="Once")
    assert [(r["n_tokens"], r["cache"]) for r in rows] == [(2, True), (2, False), (3, True), (3, False)]
    assert all(r["seconds"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    # lengths past the context are capped so both paths generate the same tokens
    capped = measure_kv_cache(run.model, run.tokenizer, lengths=(500,), prompt="Once")
    assert capped[0]["n_tokens"] < run.model.cfg.n_ctx
    with pytest.raises(UserError):
        measure_kv_cache(run.model, run.tokenizer, lengths=())
    with pytest.raises(UserError):
        measure_kv_cache(run.model, run.tokenizer, lengths=(0,))


# --- data ---------------------------------------------------------------------------


def test_corpus_sizes_figure_puts_llama2_on_a_log_axis():
    from llmcore.viz.data import LLAMA2_LABEL, corpus_sizes_figure

    fig = corpus_sizes_figure({"storyworld": {"bytes": 1_200_000, "words": 200_000}, "mine": {"bytes": 5_000}})
    (bar,) = fig.data
    assert list(bar.y) == ["mine", "storyworld", LLAMA2_LABEL]  # sorted by size
    assert bar.x[-1] == 10e12
    assert fig.layout.xaxis.type == "log"
    assert "years of reading" in bar.customdata[-1] and "books" in bar.customdata[1]  # in the hover
    assert bar.text[-1] == "10.0 TB"
    assert "Assumptions" in fig.layout.annotations[0].text
    assert len(corpus_sizes_figure({"a": {"bytes": 10}}, include_llama2=False).data[0].y) == 1
    for bad in ({"a": {"bytes": 0}}, {"a": {}}, {"a": 5}, [], {}):
        with pytest.raises(UserError):
            corpus_sizes_figure(bad, include_llama2=False)


# --- training -----------------------------------------------------------------------


def test_loss_figure_full_partial_and_empty():
    from llmcore.viz.training import loss_figure

    fig = loss_figure(_metrics())
    train, val, bpb = fig.data
    assert len(train.x) == 20 and len(val.x) == 4 and len(bpb.x) == 4
    assert bpb.yaxis == "y2"
    assert "step 20" in fig.layout.title.text
    partial = loss_figure(_metrics(3))  # a live run before its first evaluation
    assert len(partial.data) == 3 and len(partial.data[1].x) == 0
    empty = loss_figure([])
    assert len(empty.data) == 3 and "waiting" in empty.layout.title.text
    assert len(loss_figure([{"step": 1, "loss": float("nan")}, {"nope": 1}]).data[0].x) == 0
    with pytest.raises(UserError):
        loss_figure("metrics.jsonl")


def test_timeline_figure_frames_slider_and_escaping():
    from llmcore.viz.training import timeline_figure

    fig = timeline_figure(_timeline(), _metrics())
    assert len(fig.data) == 3  # the samples table, the loss line, the marker
    assert [f.name for f in fig.frames] == ["0", "10", "20"]
    assert [s.label for s in fig.layout.sliders[0].steps] == ["0", "10", "20"]
    assert fig.layout.updatemenus[0].buttons[0].label.endswith("Play")
    cells = fig.frames[1].data[0].cells.values[0]  # one column: the prompt in grey, then the sample
    assert "Once upon a time" in cells[0] and "&lt;script&gt;" in cells[0] and "<script>" not in cells[0]
    assert 'a<span style="color:#999">\u21b5</span>b' in cells[1]  # a newline shows as a mark (early models write pages of them)
    assert all(c.endswith("<br>") or "<br>" in c for c in cells)  # plotly never re-wraps (and breaks) the markup
    heights = [fig.layout.height, timeline_figure(_timeline(), _metrics(), wrap=NARROW_CELL_WRAP).layout.height]
    assert heights[1] > heights[0]  # a phone's narrower lines: a taller table, so no row scrolls out of sight
    phone = timeline_figure([{"step": 0, "samples": {"p": " word" * 60}}], wrap=NARROW_CELL_WRAP)
    lines = re.sub("<[^>]+>", "\n", phone.data[0].cells.values[0][0]).split("\n")
    assert max(len(line) for line in lines) <= NARROW_CELL_WRAP
    assert fig.frames[2].data[1].x == (20,)  # the marker follows the step
    assert fig.frames[0].data[1].y[0] == pytest.approx(6.8)  # before the first metric: the first loss
    alone = timeline_figure(_timeline(), projector=True)
    assert len(alone.data) == 1 and len(alone.frames) == 3
    assert alone.layout.font.size == PROJECTOR_FONT_SIZE
    long = timeline_figure([{"step": 0, "samples": {"p": "x" * 500}}])
    assert long.data[0].cells.values[0][0].count("<br>") >= 5  # a long run is wrapped
    for bad in ([], [{"no": "step"}], None):
        with pytest.raises(UserError):
            timeline_figure(bad)


def test_embedding_figure_animates_groups_on_fixed_axes():
    from llmcore.viz.training import embedding_figure

    fig = embedding_figure(_timeline())
    assert len(fig.data) == 3 and len(fig.frames) == 3
    names = [t.name for t in fig.data]
    assert names == ["word", "word piece", "punctuation"]
    assert list(fig.data[0].text) == ["\u00b7the", "\u00b7a"]
    lo, hi = fig.layout.xaxis.range
    assert lo < -20 and hi > 20  # the range covers every frame
    with pytest.raises(UserError, match="embedding"):
        embedding_figure([{"step": 0, "samples": {}}])


# --- params -------------------------------------------------------------------------


def test_histogram_and_treemap_from_a_real_file(run):
    from llmcore.model import parameter_breakdown
    from llmcore.params import inspect_file
    from llmcore.viz.params import histogram_figure, treemap_figure

    info = inspect_file(run.params_file, bins=20)
    fig = histogram_figure(info, log_y=True)
    assert len(fig.data) == 1 and sum(fig.data[0].y) == info["n_params"]
    assert fig.layout.yaxis.type == "log" and f"{info['n_params']:,}" in fig.layout.title.text
    assert len(histogram_figure(info["histogram"]).data[0].x) == 20

    tree = treemap_figure(run.model.cfg)
    (t,) = tree.data
    assert sum(t.values) == run.model.n_params() == sum(parameter_breakdown(run.model.cfg).values())
    assert "block 1" in t.labels and "MLP 0" in t.labels and "final LayerNorm" in t.labels
    assert sum(treemap_figure(run.model.cfg.to_dict()).data[0].values) == run.model.n_params()
    flat = treemap_figure(parameter_breakdown(run.model.cfg))
    assert list(flat.data[0].labels) == ["model", "embeddings", "attention", "mlp", "norms"]
    for bad in ({"counts": [1], "edges": [0]}, "x"):
        with pytest.raises(UserError):
            histogram_figure(bad) if isinstance(bad, dict) else treemap_figure(bad)
    with pytest.raises(UserError):
        treemap_figure({"a": -1})


def test_dtype_figure():
    from llmcore.viz.params import dtype_figure

    rows = [{"dtype": "fp32", "bytes": 4e6, "loss": 1.0, "bpb": 1.50},
            {"dtype": "int8", "bytes": 1e6, "loss": 1.01, "bpb": 1.52}]
    fig = dtype_figure(rows)
    assert len(fig.data) == 2 and list(fig.data[0].x) == ["fp32", "int8"]
    lo, hi = fig.layout.yaxis2.range
    assert lo == 0 and hi > 1.52  # from zero: a zoomed axis made noise look like a better model
    # with paired differences: the change against fp32, its error bars, an axis around zero
    rows = [r | {"delta_bpb": d, "delta_se": e} for r, d, e in zip(rows, (0.0, -0.0001), (0.0, 0.0001))]
    fig = dtype_figure(rows)
    lo, hi = fig.layout.yaxis2.range
    assert lo < -0.0003 and hi > 0.0003 and list(fig.data[1].error_y.array) == [0.0, 0.0002]
    with pytest.raises(UserError):
        dtype_figure([{"dtype": "fp32"}])


def test_dtype_differences_pair_the_tokens(run, tmp_path):
    from llmcore.params import dtype_differences

    rows = dtype_differences(run, "Once upon a time, Mia went to the park. " * 20, tmp_path, ("fp32", "int8"))
    assert rows[0]["delta_bpb"] == 0 and rows[0]["delta_se"] == 0
    assert rows[1]["bytes"] < rows[0]["bytes"] and rows[1]["delta_se"] >= 0
    assert abs(rows[1]["bpb"] - rows[0]["bpb"] - rows[1]["delta_bpb"]) < 1e-9


def test_raw_bytes_html_names_the_parts_and_escapes(run, tmp_path):
    from llmcore.viz.params import raw_bytes_html

    out = raw_bytes_html(run.params_file, 64)
    header_len = struct.unpack("<Q", run.params_file.read_bytes()[:8])[0]
    assert f"<b>{header_len:,}</b>" in out
    assert "00000030" in out and "00000040" not in out  # 64 bytes = 4 lines of 16
    assert "&quot;__metadata__&quot;" in out or "__metadata__" in out
    hostile = tmp_path / "x.safetensors"
    head = json.dumps({"__metadata__": {"note": "<script>alert(1)</script><img src=x onerror=alert(1)>"}}).encode()
    hostile.write_bytes(struct.pack("<Q", len(head)) + head)
    out = raw_bytes_html(hostile, 4096)
    assert "<script" not in out and "<img" not in out and "&lt;script&gt;" in out
    short = tmp_path / "short.bin"
    short.write_bytes(b"\x01\x02")
    assert "01" in raw_bytes_html(short)
    with pytest.raises(UserError):
        raw_bytes_html(tmp_path / "missing.safetensors")


# --- inference ----------------------------------------------------------------------


def test_next_token_figure_highlights_the_chosen_token():
    from llmcore.viz.inference import next_token_figure

    fig = next_token_figure([(" the", 0.5), (" a", 0.3), ("<b>", 0.1)], chosen=" a")
    (bar,) = fig.data
    assert list(bar.y) == ["\u00b7the", "\u00b7a", "&lt;b&gt;"]
    assert bar.marker.color[1] == HIGHLIGHT_COLOUR and bar.marker.color[0] != HIGHLIGHT_COLOUR
    assert "drew" in fig.layout.title.text
    dup = next_token_figure([("a", 0.5), ("a", 0.2)])  # two tokens that look the same stay two bars
    assert len(set(dup.data[0].y)) == 2
    for bad in ([], [("a", -1)], [("a",)], None):
        with pytest.raises(UserError):
            next_token_figure(bad)


def test_generation_figure_one_frame_per_token(run):
    from llmcore.generate import Sampling, steps
    from llmcore.viz.inference import generation_figure

    got = list(steps(run.model, run.tokenizer, "Once <i>", Sampling(max_new_tokens=4, seed=1)))
    fig = generation_figure(got, "Once <i>")
    assert len(fig.data) == 2 and len(fig.frames) == 4
    assert [s.label for s in fig.layout.sliders[0].steps] == ["1", "2", "3", "4"]
    last_text = fig.frames[-1].data[0].cells.values[0][0]
    assert "Once &lt;i&gt;" in last_text and "<i>" not in last_text
    chosen = fig.frames[2].data[1]
    assert HIGHLIGHT_COLOUR in list(chosen.marker.color)  # the drawn token is lit in every frame
    with pytest.raises(UserError):
        generation_figure([], "x")


def test_sampling_data_and_figure(run):
    from llmcore.generate import Sampling, sampling_data
    from llmcore.viz.inference import sampling_figure

    before, after, labels = sampling_data(run.model, run.tokenizer, "Once upon", Sampling(top_k=3), k=8)
    assert len(before) == len(after) == len(labels) == 8
    assert before == sorted(before, reverse=True)
    assert sum(p > 0 for p in after) == 3 and sum(after) == pytest.approx(1.0, abs=1e-5)
    greedy = sampling_data(run.model, run.tokenizer, "Once upon", Sampling(temperature=0), k=4)[1]
    assert greedy[0] == 1.0 and greedy[1:] == [0, 0, 0]
    fig = sampling_figure(before, after, labels, settings="top-k 3")
    assert len(fig.data) == 2 and fig.layout.barmode == "group" and "top-k 3" in fig.layout.title.text
    with pytest.raises(UserError):
        sampling_figure([0.5], [0.5, 0.5], ["a"])
    with pytest.raises(UserError):
        sampling_data(run.model, run.tokenizer, "x", Sampling(), k=0)


def test_kv_cache_figure():
    from llmcore.viz.inference import kv_cache_figure

    rows = [{"n_tokens": n, "cache": c, "seconds": n * (1 if c else n) / 100} for n in (8, 16) for c in (True, False)]
    fig = kv_cache_figure(rows)
    assert len(fig.data) == 2 and list(fig.data[1].y) == [0.64, 2.56]
    with pytest.raises(UserError):
        kv_cache_figure([{"n": 1}])
    with pytest.raises(UserError):
        kv_cache_figure([])


# --- the package ----------------------------------------------------------------------


def test_import_llmcore_viz_is_cheap_and_lazy():
    code = ("import sys, llmcore.viz as v; assert 'plotly' not in sys.modules, 'eager plotly';"
            "assert 'llmcore.viz.training' not in sys.modules; f = v.loss_figure;"
            "assert f.__module__ == 'llmcore.viz.training'; assert 'loss_figure' in dir(v); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
    import llmcore.viz as v

    for name in v.__all__:  # every re-export resolves
        assert callable(getattr(v, name)) or isinstance(getattr(v, name), (dict, tuple))
    with pytest.raises(AttributeError):
        v.no_such_figure  # noqa: B018


def test_sampling_data_never_sees_another_threads_hooks(run):
    """A hosted dashboard shares one model: a steering hook in one thread must not leak into another."""
    import threading

    from llmcore.generate import Sampling, sampling_data

    s = Sampling(temperature=0.7)
    baseline = sampling_data(run.model, run.tokenizer, "Once upon a", s, k=5)
    tokens = torch.tensor([run.tokenizer.encode("Once upon a")])
    results, errors = [], []

    def steer():
        for _ in range(15):
            with run.model.hooked([("hook_embed", lambda x, hook: x + 5.0)]):
                run.model(tokens)

    def read():
        try:
            for _ in range(15):
                results.append(sampling_data(run.model, run.tokenizer, "Once upon a", s, k=5))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=f) for f in (steer, read, steer, read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 30
    assert all(r == baseline for r in results)


def test_continuation_html_escapes_marks_and_wraps():
    from llmcore.viz.common import continuation_html

    out = continuation_html("<i>Mia", " ran\n<b>", "!\x07")
    assert out.startswith('<span style="color:#888">&lt;i&gt;Mia</span><b>') and "&lt;b&gt;" in out
    assert "<u>!\\x07</u>" in out and "\u21b5<br>" in out  # newest token underlined, control char visible
    assert "<br>" not in continuation_html("a", "\n" * 50, newlines="mark")  # marks never break a line
    wrapped = continuation_html("x" * 25, " word" * 40, width=30)
    lines = wrapped.replace('<span style="color:#888">', "").replace("</span>", "").replace("<b>", "").replace("</b>", "")
    assert max(len(line) for line in lines.split("<br>")) <= 30 and lines.count("<br>") >= 6
    with pytest.raises(ValueError):
        continuation_html("a", "b", newlines="wrap")
