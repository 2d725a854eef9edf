"""Tests for llmcore.run: opening run directories by path or shipped name, and their records."""

import json
import shutil

import pytest
import torch

from llmcore.errors import UserError
from llmcore.run import (
    METRICS_FILE,
    MODEL_FILE,
    TIMELINE_FILE,
    TOKENIZER_FILE,
    load_run,
    read_jsonl,
    resolve_run,
    shipped_runs,
)


def test_load_run_by_path(tiny_run):
    run = load_run(tiny_run)
    assert run.path == tiny_run and run.name == tiny_run.name
    assert run.params_file == tiny_run / MODEL_FILE
    assert run.model.cfg.d_vocab == run.tokenizer.vocab_size and run.tokenizer.kind == "char"
    assert run.meta["tokenizer_kind"] == "char" and run.provenance == {"made_by": "tests/conftest.py"}
    assert run.metrics() == [] and run.timeline() == []  # none written: empty, not an error
    assert load_run(str(tiny_run)).name == run.name
    assert load_run(tiny_run / MODEL_FILE).path == tiny_run  # the parameter file itself names its run


def test_a_loaded_run_is_read_only_and_in_eval_mode(tiny_run, tiny_bpe_run):
    for path in (tiny_run, tiny_bpe_run):
        run = load_run(path)
        assert not run.model.training
        assert all(not p.requires_grad for p in run.model.parameters())
        with torch.no_grad():
            logits = run.model(torch.tensor([run.tokenizer.encode("Mia")]))
        assert torch.isfinite(logits).all()


def test_load_shipped_run_by_name():
    names = shipped_runs()
    if not names:
        pytest.skip("no run ships in llmcore/assets yet")
    for name in names:
        run = load_run(name)
        assert run.name == name and resolve_run(name) == run.path
        assert run.model.cfg.d_vocab == run.tokenizer.vocab_size
        assert all(not p.requires_grad for p in run.model.parameters())


def test_resolve_errors_name_the_shipped_runs(tmp_path):
    listed = ", ".join(shipped_runs()) or "none"
    for bad in ("no-such-run", tmp_path, tmp_path / "missing", ""):
        with pytest.raises(UserError, match="shipped runs") as e:
            resolve_run(bad)
        assert str(e.value).endswith(listed) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="not a run directory"):
        load_run("no-such-run")


def test_broken_run_directories_are_user_errors(tiny_run, tiny_bpe_run, tmp_path):
    no_tok = tmp_path / "no-tok"
    no_tok.mkdir()
    shutil.copy(tiny_run / MODEL_FILE, no_tok / MODEL_FILE)
    with pytest.raises(UserError, match=TOKENIZER_FILE):
        load_run(no_tok)
    wrong_tok = tmp_path / "wrong-tok"
    wrong_tok.mkdir()
    shutil.copy(tiny_run / MODEL_FILE, wrong_tok / MODEL_FILE)
    shutil.copy(tiny_bpe_run / TOKENIZER_FILE, wrong_tok / TOKENIZER_FILE)
    with pytest.raises(UserError, match="tokenizer has 300 tokens"):
        load_run(wrong_tok)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / MODEL_FILE).write_bytes(b"not a model")
    shutil.copy(tiny_run / TOKENIZER_FILE, junk / TOKENIZER_FILE)
    with pytest.raises(UserError):
        load_run(junk)


def test_read_jsonl_skips_a_torn_last_line(tmp_path):
    path = tmp_path / METRICS_FILE
    rows = [{"step": i, "loss": 5.0 - i} for i in range(1, 4)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text + '{"step": 4, "lo')  # killed mid-write
    assert read_jsonl(path) == rows
    path.write_bytes(text.encode() + b'{"step": 4, "sample": "caf\xc3')  # torn inside a UTF-8 character
    assert read_jsonl(path) == rows
    path.write_text(text + "\n[1, 2]\nnull\n")  # blank lines and non-objects are skipped too
    assert read_jsonl(path) == rows
    assert read_jsonl(path, limit=2) == rows[:2]
    assert read_jsonl(tmp_path / "absent.jsonl") == []


def test_run_reads_its_metrics_and_timeline(tiny_run, tmp_path):
    run_dir = tmp_path / "with-records"
    shutil.copytree(tiny_run, run_dir)
    (run_dir / METRICS_FILE).write_text(json.dumps({"step": 1, "loss": 4.2}) + "\n")
    (run_dir / TIMELINE_FILE).write_text(json.dumps({"step": 0, "samples": {"Once": "xx"}}) + "\n{")
    run = load_run(run_dir)
    assert run.metrics() == [{"step": 1, "loss": 4.2}]
    assert run.timeline() == [{"step": 0, "samples": {"Once": "xx"}}]


def test_a_trained_run_opens_with_its_records(trained_run):
    from llmcore.generate import Sampling, generate
    from llmcore.params import inspect_file

    run = load_run(trained_run)
    metrics = run.metrics()
    assert [m["step"] for m in metrics] == list(range(1, 31))
    assert metrics[-1]["loss"] < metrics[0]["loss"] and "val_loss" in metrics[-1]
    timeline = run.timeline()
    assert timeline and timeline[0]["step"] == 0 and timeline[-1]["step"] == 30
    assert run.provenance["steps"] == 30 and run.provenance["corpus"] == "storyworld"
    assert run.meta["dtype"] == "fp16" and inspect_file(run.params_file)["bytes_per_param"] == 2
    assert all(not p.requires_grad for p in run.model.parameters())
    text = generate(run.model, run.tokenizer, "Once upon a time", Sampling(temperature=0, max_new_tokens=20))
    assert len(text) == 20
