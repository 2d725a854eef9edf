"""The `llmcore` command: help everywhere, JSON outputs, one-line errors on bad input."""

import json
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmcore.cli import main
from llmcore.corpus import storyworld
from llmcore.model import GPT, GPTConfig
from llmcore.params import save_params
from llmcore.tokenizer import CharTokenizer

COMMANDS = ["corpus", "train", "generate", "serve", "inspect", "export-hf", "import-hf", "scale", "compress", "decompress",
            "compare-compressors", "sae", "features", "steer"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tok = CharTokenizer.train(storyworld(seed=0, n_chars=3000).text)
    model = GPT(GPTConfig(d_vocab=tok.vocab_size, n_ctx=32, d_model=32, n_layers=2, n_heads=2), seed=0)
    out = tmp_path_factory.mktemp("run")
    tok.save(out / "tokenizer.json")
    save_params(model, out / "model.safetensors", dtype="fp16", tokenizer_kind="char")
    return out


def run_cli(*argv):
    """Run in-process; returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as e:  # argparse: --help (0) or a malformed command line (2)
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    code, out, _ = run_cli(command, "--help")
    assert code == 0 and "usage: llmcore " + command in out


def test_every_train_flag_says_what_it_does_and_its_default():
    from dataclasses import fields

    from llmcore.cli import build_parser
    from llmcore.model import PRESETS
    from llmcore.params import DTYPES
    from llmcore.recipe import PICKED
    from llmcore.train import TrainConfig

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {a.dest: a for a in train._actions if a.dest != "help"}
    defaults = TrainConfig()
    for f in fields(TrainConfig):  # the dataclass and --help say the same sentence
        text = flags[f.name].help
        assert text.startswith(f.metadata["help"]) and len(f.metadata["help"].split()) >= 6
        default = "picked for the text and budget" if f.name in PICKED else getattr(defaults, f.name)
        assert text.endswith(f"(default: {default})")
    assert flags["preset"].choices == list(PRESETS) and flags["save_dtype"].choices == list(DTYPES)  # the library's
    assert all(p in flags["preset"].help for p in PRESETS) and all(d in flags["save_dtype"].help for d in DTYPES)
    assert all(len(a.help.split()) >= 3 for a in flags.values())  # --out, --resume, --force, --quiet too
    code, out, _ = run_cli("train", "--help")
    examples = out[out.index("examples:"):]
    for use in ("--out runs/mine\n", "--corpus my.txt", "--max-seconds", "--resume", "torchrun"):
        assert use in examples


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "llmcore.cli", "--help"], capture_output=True, text=True, check=True).stdout
    assert all(c in out for c in COMMANDS)


def test_corpus_writes_text_and_prints_sizes(tmp_path):
    code, out, _ = run_cli("corpus", "storyworld", "--split", "val", "--n-chars", "5000", "--out", str(tmp_path / "s.txt"), "--json")
    stats = json.loads(out)
    assert code == 0 and stats["bytes"] == (tmp_path / "s.txt").stat().st_size and stats["chars"] > 0


def test_generate_json_steps(run_dir):
    code, out, _ = run_cli("generate", str(run_dir), "--prompt", "Mia", "--max-new-tokens", "5", "--temperature", "0", "--json")
    data = json.loads(out)
    assert code == 0 and len(data["steps"]) == 5
    assert all(0 <= s["prob"] <= 1 and s["alternatives"] for s in data["steps"])


def test_inspect_identity(run_dir):
    code, out, _ = run_cli("inspect", str(run_dir), "--json")
    info = json.loads(out)
    assert code == 0 and info["identity_holds"] and info["dtype"] == "fp16"
    assert info["data_bytes"] == 2 * info["n_params"]


def test_scale_json_reproduces_the_140_gb_file():
    code, out, _ = run_cli("scale", "--preset", "llama-2-70b", "--params", "70e9", "--json")
    est = json.loads(out)
    assert code == 0 and json.dumps(est)  # JSON all the way down
    code, out, _ = run_cli("scale", "--check", "--json")
    assert code == 0 and json.loads(out)


@pytest.mark.parametrize("argv", [
    ["generate", "no-such-run"],
    ["generate", "RUN", "--temperature", "-1"],
    ["generate", "RUN", "--top-p", "0"],
    ["generate", "RUN", "--max-new-tokens", "1000000000"],
    ["inspect", "/etc/passwd"],
    ["corpus", "/no/such/file.txt"],
    ["scale", "--preset", "gpt-9"],
    ["scale", "--gpus", "-5"],
    ["train", "--out", "OUT", "--steps", "0"],
    ["train", "--out", "OUT", "--steps", "10", "--warmup", "20"],
    ["train", "--out", "OUT", "--tokenizer", "/no/such/tokenizer.json"],
    ["train", "--out", "OUT", "--corpus", "/no/such/text.txt"],
    ["train", "--out", "OUT", "--save-dtype", "fp8"],
    ["train", "--out", "OUT", "--preset", "huge"],
    ["import-hf", "/tmp", "OUT"],
])
def test_bad_input_is_one_line_and_exit_2(argv, run_dir, tmp_path):
    argv = [str(run_dir) if a == "RUN" else str(tmp_path / "o") if a == "OUT" else a for a in argv]
    code, out, err = run_cli(*argv)
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_train_prints_what_it_picked_and_flags_win(tmp_path, text_file):
    common = ["--corpus", str(text_file), "--tokenizer", "char", "--steps", "3", "--eval-batches", "1",
              "--save-dtype", "fp32", "--quiet"]
    code, out, err = run_cli("train", "--out", str(tmp_path / "picked"), *common)
    assert code == 0, err
    picked = json.loads(out)["train_config"]
    assert "preset storyworld" in err and "because" in err and len(err.strip().splitlines()) == 2  # what, and why
    assert (picked["preset"], picked["steps"], picked["batch_size"], picked["n_ctx"]) == ("storyworld", 3, 12, 128)
    code, out, err = run_cli("train", "--out", str(tmp_path / "mine"), *common, "--preset", "nano", "--batch-size", "4",
                             "--n-ctx", "32")
    mine = json.loads(out)["train_config"]
    assert code == 0 and "preset nano" in err and "batch 4" in err and "you chose the preset" in err
    assert (mine["preset"], mine["batch_size"], mine["n_ctx"], mine["steps"]) == ("nano", 4, 32, 3)
    code, out, err = run_cli("train", "--out", str(tmp_path / "timed"), *common[:4], "--max-seconds", "3",
                             "--eval-batches", "1", "--save-dtype", "fp32", "--quiet")
    timed = json.loads(out)
    assert code == 0 and "3 s: preset " in err and timed["schedule"]["planned"]["by"] == "time"
    assert timed["train_config"]["steps"] > timed["steps"]  # a cap the clock came to first


def test_resume_needs_only_out(tmp_path, tiny_train_config):
    from llmcore.train import train

    def crash(ev):
        if ev.kind == "step" and ev.step == 6:
            raise RuntimeError("power cut")

    cfg = tiny_train_config(steps=10, lr=2e-3)  # settings no default or pick would give
    with pytest.raises(RuntimeError):
        train(cfg, tmp_path / "run", callbacks=(crash,))
    code, out, err = run_cli("train", "--out", str(tmp_path / "run"), "--resume", "--quiet")
    assert code == 0, err
    assert json.loads(out)["train_config"] == cfg.to_dict() and json.loads(out)["steps"] == 10


def test_malformed_command_lines_exit_2():
    for argv in ([], ["fly"], ["generate"], ["generate", "x", "--temperature", "hot"]):
        code, _, err = run_cli(*argv)
        assert code == 2 and "Traceback" not in err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=st.text(max_size=60), temperature=st.floats(allow_nan=True, allow_infinity=True, width=32),
       top_k=st.integers(-5, 50), top_p=st.floats(-1, 2), n=st.integers(-3, 6))
def test_generate_fuzz_never_crashes(run_dir, prompt, temperature, top_k, top_p, n):
    torch.set_num_threads(1)
    code, out, err = run_cli("generate", str(run_dir), "--prompt", prompt, "--temperature", repr(temperature),
                             "--top-k", str(top_k), "--top-p", repr(top_p), "--max-new-tokens", str(n), "--json")
    assert code in (0, 2) and "Traceback" not in err
    if code == 0:
        assert len(json.loads(out)["steps"]) == n


def test_compress_round_trip_and_bad_files(run_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("Mia went to the park. Ünïcödé the model never saw: 🌉\n")
    assert run_cli("compress", str(run_dir), str(src), str(tmp_path / "c"), "--quiet")[0] == 0
    assert run_cli("decompress", str(run_dir), str(tmp_path / "c"), str(tmp_path / "back"), "--quiet")[0] == 0
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    for bad in (src, tmp_path / "missing"):
        code, _, err = run_cli("decompress", str(run_dir), str(bad), str(tmp_path / "x"), "--quiet")
        assert code == 2 and len(err.strip().splitlines()) == 1
    code, out, _ = run_cli("compare-compressors", str(run_dir), str(src), "--json")
    assert code == 0 and "gzip -9" in json.loads(out)["methods"]


def test_features_and_steer_on_the_shipped_run():
    from llmcore.run import shipped_runs

    if "storyworld" not in shipped_runs():
        pytest.skip("no shipped storyworld run in this checkout")
    code, out, _ = run_cli("features", "storyworld", "--json")
    assert code == 0 and "golden_gate_bridge" in json.loads(out)["concepts"]
    code, out, _ = run_cli("steer", "storyworld", "--strength", "0", "--mode", "add", "--max-new-tokens", "8", "--json")
    r = json.loads(out)
    assert code == 0 and r["plain"] == r["steered"]  # strength 0 changes nothing
    code, out, _ = run_cli("steer", "storyworld", "--max-new-tokens", "8", "--json")  # the stored strength
    r = json.loads(out)
    assert code == 0 and r["strength"] > 0 and r["plain"] != r["steered"]
    # The number `features` reports finds its concept's stored strength and mode, as the name does.
    bridge = json.loads(run_cli("features", "storyworld", "--json")[1])["steering"]["golden_gate_bridge"]
    code, out, _ = run_cli("steer", "storyworld", "--feature", str(bridge["feature"]), "--prompt", "One morning",
                           "--max-new-tokens", "8", "--json")
    r = json.loads(out)
    assert code == 0 and (r["strength"], r["mode"]) == (bridge["strength"], bridge["mode"]), r
    assert "golden_gate_bridge" in r["strength_rule"]
    # Any other feature: half the most it fires in held-out stories, and the output says so.
    code, out, _ = run_cli("steer", "storyworld", "--feature", "3", "--max-new-tokens", "8")
    assert code == 0 and "0.5 x the most it fires" in out
    code, out, _ = run_cli("features", "storyworld")
    assert code == 0 and "golden_gate_bridge" in out and "precision" in out
    for bad in (["--strength", "nan"], ["--strength", "1e9"], ["--strength", "1", "--feature", "no_such_concept"]):
        code, _, err = run_cli("steer", "storyworld", *bad)
        assert code == 2 and len(err.strip().splitlines()) == 1
