"""Writes lose nothing: every output is checked before a byte is written (llmcore/files.py).

One test per data-loss case of issue 19, each showing that nothing outside what the
command was asked to write changed: a device node or FIFO as the output, symlinks
planted at the output, in an output folder and at temporary names, export and import
onto a run or onto themselves, a finished run as `train --out`, the shipped run as a
target, two trainings in one folder. `snapshot` records every entry of the folders
involved (type, bytes or link target, mtime) before and after.
"""

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmcore import files
from llmcore.cli import main
from llmcore.errors import UserError
from llmcore.files import TEMP_SUFFIX, append_line, atomic_write, lock_folder
from llmcore.hf import export_hf, import_hf
from llmcore.run import ASSETS, load_run
from llmcore.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def snapshot(*roots) -> dict:
    """Every entry under `roots`, never following a symlink: path -> (type, content digest, mtime)."""
    seen = {}
    for root in map(Path, roots):
        for p in [root, *root.rglob("*")] if root.is_dir() and not root.is_symlink() else [root]:
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                content = "-> " + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(p.read_bytes()).hexdigest()
            else:  # a folder, FIFO or device: its kind and device numbers, never its contents
                content = f"{stat.S_IFMT(st.st_mode):o}:{st.st_rdev}"
            # A folder's mtime moves when a lock file comes and goes; its entries are what count.
            seen[str(p)] = (content, None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns)
    return seen


def run_cli(*argv):
    """The CLI in-process: (exit code, stderr)."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


def refused(code_err, match: str):
    """A CLI refusal: exit status 2, one line on stderr that says `match`."""
    code, err = code_err
    assert code == 2, err
    assert err.count("\n") == 1 and match in err and "Traceback" not in err, err


def make_special(path: Path, kind: str) -> Path:
    """A FIFO, or a character device with /dev/null's numbers (harmless if ever written)."""
    if kind == "fifo":
        os.mkfifo(path)
    else:
        try:
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
        except (PermissionError, OSError) as e:
            pytest.skip(f"cannot make a device node here ({e})")
    return path


@pytest.fixture
def victim(tmp_path) -> Path:
    """A file nobody asked to write: a planted symlink points at it."""
    path = tmp_path / "victim.txt"
    path.write_text("precious, not to be overwritten\n")
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_train_config):
    """A run that trained to the end (4 steps): model, tokenizer, metrics, timeline."""
    return train(tiny_train_config(steps=4), tmp_path_factory.mktemp("finished") / "run")


# --- a device node or FIFO as the output ------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_device_or_fifo_output_is_refused_by_every_command(tmp_path, tiny_run, kind):
    src = tmp_path / "in.txt"
    src.write_text("Once upon a time Mia went to the park.\n")
    out = make_special(tmp_path / "out", kind)
    before = snapshot(tmp_path)
    t0 = time.perf_counter()
    what = "FIFO" if kind == "fifo" else "device"
    refused(run_cli("compress", tiny_run, src, out, "--quiet"), f"is a {what}")
    refused(run_cli("decompress", tiny_run, src, out, "--quiet"), f"is a {what}")
    refused(run_cli("corpus", "storyworld", "--n-chars", "100", "--out", out), f"is a {what}")
    assert time.perf_counter() - t0 < 30  # refused at once: no hang on the FIFO
    assert snapshot(tmp_path) == before  # the node is still there, same kind and numbers; nothing added


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_library_writers_refuse_device_or_fifo(tmp_path, tiny_run, kind):
    from llmcore.params import save_params

    run = load_run(tiny_run)
    out = make_special(tmp_path / "out", kind)
    before = snapshot(tmp_path)
    for write in (lambda: atomic_write(out, b"data"), lambda: save_params(run.model, out),
                  lambda: run.tokenizer.save(out), lambda: append_line(out, "{}")):
        with pytest.raises(UserError, match="not a regular file") as e:
            write()
        assert "\n" not in str(e.value) and str(out) in str(e.value)
    assert snapshot(tmp_path) == before


# --- symlinks: at the output, inside an output folder, at temporary names --------------


def test_symlink_at_the_output_is_refused_not_followed(tmp_path, tiny_run, victim):
    src = tmp_path / "in.txt"
    src.write_text("Mia and Leo went to the park.\n")
    link = tmp_path / "out.llmz"
    link.symlink_to(victim)
    before = snapshot(tmp_path)
    refused(run_cli("compress", tiny_run, src, link, "--quiet"), "symbolic link")
    for write in (lambda: atomic_write(link, b"x"), lambda: append_line(link, "{}")):
        with pytest.raises(UserError, match="symbolic link"):
            write()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("planted", ["metrics.jsonl", "timeline.jsonl", "tokenizer.json", "checkpoint.safetensors"])
def test_symlink_planted_in_a_run_folder_is_never_followed(tmp_path, tiny_train_config, victim, planted):
    out = tmp_path / "run"
    out.mkdir()
    (out / planted).symlink_to(victim)
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match="symbolic link"):
        train(tiny_train_config(steps=2), out)
    assert snapshot(tmp_path) == before  # refused before anything was written


def test_log_replaced_by_a_symlink_while_training_is_not_followed(tmp_path, tiny_train_config, victim):
    out = tmp_path / "run"

    def plant(ev):  # mid-run, someone swaps metrics.jsonl for a link to another file
        if ev.kind == "step" and ev.step == 1:
            (out / "metrics.jsonl").unlink()
            (out / "metrics.jsonl").symlink_to(victim)

    before = victim.read_bytes(), victim.stat().st_mtime_ns
    with pytest.raises(UserError, match="symbolic link"):
        train(tiny_train_config(steps=3), out, callbacks=(plant,))
    assert (victim.read_bytes(), victim.stat().st_mtime_ns) == before


@pytest.mark.parametrize("planted", ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
def test_symlink_planted_in_an_export_folder_is_never_followed(tmp_path, tiny_run, victim, planted):
    out = tmp_path / "hf"
    out.mkdir()
    (out / planted).symlink_to(victim)
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match="symbolic link"):
        export_hf(load_run(tiny_run), out)
    assert snapshot(tmp_path) == before  # not even config.json was written


def test_symlinks_at_temporary_names_are_never_followed(tmp_path, tiny_run, victim, monkeypatch):
    from llmcore.params import save_params

    run = load_run(tiny_run)
    # The old, predictable names (pid-based) of both former writers: planted links stay inert.
    for name in (f".model.safetensors.tmp-{os.getpid()}", f".tokenizer.json.{os.getpid()}.tmp"):
        (tmp_path / name).symlink_to(victim)
    # And a link at the very name the writer draws first: O_EXCL refuses it, the writer draws again.
    draws = iter(["0" * 12, "1" * 12, "0" * 12, "2" * 12])
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: next(draws))
    for name in ("model.safetensors", "tokenizer.json"):
        (tmp_path / f".{name}.{'0' * 12}{TEMP_SUFFIX}").symlink_to(victim)
    before = snapshot(victim)
    save_params(run.model, tmp_path / "model.safetensors")
    run.tokenizer.save(tmp_path / "tokenizer.json")
    assert snapshot(victim) == before
    assert load_run(tmp_path).model.cfg == run.model.cfg  # what was asked for is written, whole
    assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o666 & ~_umask()  # not 0600
    links = sorted(p.name for p in tmp_path.iterdir() if p.is_symlink())
    assert len(links) == 4 and all(os.readlink(tmp_path / n) == str(victim) for n in links)


def test_temporary_names_are_unpredictable_private_and_cleaned(tmp_path, monkeypatch):
    folders, real_mkdir, real_open = [], os.mkdir, os.open

    def mkdir(path, mode=0o777, **k):
        folders.append(Path(path).name)
        assert mode == 0o700  # a private folder: nobody else can plant anything inside
        return real_mkdir(path, mode, **k)

    def open_(path, flags, *a, **k):
        if Path(path).parent.name.endswith(TEMP_SUFFIX) and flags & os.O_CREAT:
            assert flags & os.O_EXCL and flags & os.O_NOFOLLOW  # created new, never through a link
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    for _ in range(3):
        atomic_write(tmp_path / "f.bin", b"x")
    monkeypatch.undo()
    assert len(set(folders)) == 3 and all(n.endswith(TEMP_SUFFIX) and str(os.getpid()) not in n for n in folders)
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_stale_temp_cleanup_removes_links_not_their_targets(tmp_path, tiny_train_config, victim):
    out = tmp_path / "run"
    out.mkdir()
    (out / f".metrics.jsonl.abcdef012345{TEMP_SUFFIX}").symlink_to(victim)  # as if left by a killed writer
    stale = out / f".model.safetensors.0123456789ab{TEMP_SUFFIX}"  # a killed save: its folder and
    stale.mkdir(mode=0o700)  # safetensors' own temporary file inside
    (stale / ".tmpAbC123").write_bytes(b"half a file")
    before = snapshot(victim)
    train(tiny_train_config(steps=2), out)
    assert snapshot(victim) == before
    assert not list(out.glob(f"*{TEMP_SUFFIX}")) and not (out / files.LOCK_FILE).exists()


# --- export and import onto a run or onto themselves ---------------------------------


def test_export_hf_onto_its_own_run_or_inside_it_is_refused(tmp_path, finished_run):
    before = snapshot(finished_run)
    refused(run_cli("export-hf", finished_run, finished_run), "export to a new folder")
    refused(run_cli("export-hf", finished_run, finished_run / "hf"), "inside it")
    assert snapshot(finished_run) == before


def test_export_hf_onto_another_run_is_refused_before_writing(tmp_path, tiny_run, finished_run):
    before = snapshot(finished_run)
    with pytest.raises(UserError, match="holds an llmcore run"):
        export_hf(load_run(tiny_run), finished_run)
    assert snapshot(finished_run) == before  # neither config.json nor model.safetensors appeared


def test_export_hf_replaces_an_earlier_export_and_nothing_else(tmp_path, tiny_run, tiny_bpe_run):
    out = export_hf(load_run(tiny_run), tmp_path / "hf")
    (out / "README.md").write_text("my notes\n")
    notes = snapshot(out / "README.md")
    export_hf(load_run(tiny_bpe_run), out)  # a re-export is what was asked: its four files change
    assert snapshot(out / "README.md") == notes
    assert load_run(import_hf(out, tmp_path / "back")).tokenizer.kind == "bpe"


def test_import_hf_onto_itself_an_hf_folder_or_a_run_is_refused(tmp_path, tiny_run, tiny_bpe_run, finished_run):
    hf = export_hf(load_run(tiny_run), tmp_path / "hf")
    other = export_hf(load_run(tiny_bpe_run), tmp_path / "hf2")
    before = snapshot(tmp_path, finished_run)
    refused(run_cli("import-hf", hf, hf), "the folder being imported")
    refused(run_cli("import-hf", hf, other), "already holds a model")
    refused(run_cli("import-hf", hf, finished_run), "already holds a model")
    assert snapshot(tmp_path, finished_run) == before
    import transformers  # the Hugging Face folder still loads as one

    transformers.AutoModelForCausalLM.from_pretrained(hf)


# --- a finished run as train --out ----------------------------------------------------


def test_finished_run_as_out_is_refused_without_force(finished_run, tiny_train_config):
    before = snapshot(finished_run)
    with pytest.raises(UserError, match="finished run.*--force"):
        train(tiny_train_config(steps=4, tokenizer="bpe", vocab_size=300), finished_run)
    code_err = run_cli("train", "--out", finished_run, "--corpus", tiny_train_config().corpus, "--tokenizer", "char",
                       "--preset", "nano", "--steps", "2", "--quiet")
    refused(code_err, "--force")
    assert snapshot(finished_run) == before  # metrics, timeline and tokenizer untouched


def test_force_checks_first_and_a_killed_start_leaves_no_old_model(tmp_path, tiny_train_config, tiny_run):
    out = train(tiny_train_config(steps=4), tmp_path / "run")
    (out / "sae.safetensors").write_bytes(b"an SAE of the old model")
    before = snapshot(out)
    # a forced start that fails its own checks (no such corpus) changes nothing
    with pytest.raises(UserError):
        train(tiny_train_config(corpus=str(tmp_path / "missing.txt")), out, force=True)
    assert snapshot(out) == before

    def killed(ev):  # the process dies right after the new tokenizer is written
        if ev.kind == "start":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_train_config(steps=4, tokenizer="bpe", vocab_size=300), out, force=True, callbacks=(killed,))
    assert not (out / "model.safetensors").exists() and not (out / "sae.safetensors").exists()
    with pytest.raises(UserError, match="not a run directory"):  # never the old model beside the new tokenizer
        load_run(out)
    # nothing of value is left, so a plain start (no --force) may go on there
    assert load_run(train(tiny_train_config(steps=4), out)).provenance["steps"] == 4


def test_resume_and_force_together_are_refused(tmp_path, tiny_train_config):
    with pytest.raises(UserError, match="choose one"):
        train(tiny_train_config(), tmp_path / "run", resume=True, force=True)
    assert not (tmp_path / "run").exists()


# --- the shipped run is read-only ------------------------------------------------------


def test_nothing_writes_into_the_shipped_run(tmp_path, tiny_train_config, tiny_run):
    if not (ASSETS / "storyworld" / "model.safetensors").is_file():
        pytest.skip("llmcore/assets/storyworld is not built")
    from llmcore.interpret.sae import train_sae_for_run

    shipped = ASSETS / "storyworld"
    before = snapshot(ASSETS)
    refused(run_cli("sae", "train", "storyworld", "--steps", "1", "--quiet"), "read-only")
    with pytest.raises(UserError, match="copy the run first"):
        train_sae_for_run("storyworld", steps=1)
    link = tmp_path / "mine"  # a symlink to the shipped run is the shipped run
    link.symlink_to(shipped)
    with pytest.raises(UserError, match="read-only"):
        train_sae_for_run(link, steps=1)
    src = tmp_path / "in.txt"
    src.write_text("Mia went to the park.\n")
    refused(run_cli("compress", "storyworld", src, shipped / "x.llmz", "--quiet"), "read-only")
    for write in (lambda: train(tiny_train_config(steps=2), shipped, force=True),
                  lambda: train(tiny_train_config(steps=2), ASSETS / "new-run"),
                  lambda: export_hf(load_run(tiny_run), shipped / "hf"),
                  lambda: atomic_write(shipped / "tokenizer.json", "{}")):
        with pytest.raises(UserError, match="read-only"):
            write()
    assert snapshot(ASSETS) == before


# --- two trainings in one folder -------------------------------------------------------


def _cli_train(out, corpus, steps):
    return [sys.executable, "-m", "llmcore.cli", "train", "--out", str(out), "--corpus", str(corpus),
            "--tokenizer", "char", "--preset", "nano", "--steps", str(steps), "--batch-size", "4",
            "--eval-every", "1000", "--eval-batches", "1", "--sample-every", "1000", "--checkpoint-every", "0",
            "--save-dtype", "fp32", "--warmup", "2", "--quiet"]


def _wait_for(path: Path, proc, seconds=120):
    t0 = time.perf_counter()
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.perf_counter() - t0 < seconds, f"{path} never appeared"
        time.sleep(0.05)


def test_second_training_in_the_same_folder_is_refused(tmp_path, text_file):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(_cli_train(out, text_file, 100_000), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, env=env)
    try:
        _wait_for(out / "metrics.jsonl", first)  # training has begun (it holds the lock)
        assert (out / files.LOCK_FILE).exists()
        second = subprocess.run(_cli_train(out, text_file, 5), capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 2 and "in use by another llmcore process" in second.stderr, second.stderr
        assert second.stderr.count("\n") == 1
        # and in-process (a notebook or the dashboard), the same refusal
        with pytest.raises(UserError, match="in use"):
            train(TrainConfig(corpus=str(text_file), tokenizer="char", preset="nano", steps=2), out)
        rows = (out / "metrics.jsonl").read_text().splitlines()[:-1]  # the last line may be mid-write
        assert [json.loads(r)["step"] for r in rows] == list(range(1, len(rows) + 1))  # one run, not two
    finally:
        first.kill()
        first.wait()
    # the lock died with its process: the folder is free again (the killed start had no checkpoint)
    cfg = TrainConfig(corpus=str(text_file), tokenizer="char", preset="nano", steps=2, batch_size=4, eval_batches=1,
                      save_dtype="fp32", warmup=1)
    assert load_run(train(cfg, out)).provenance["steps"] == 2


@pytest.mark.slow
def test_data_parallel_training_refused_cleanly_when_the_folder_is_locked(tmp_path, text_file):
    """Under torchrun only rank 0 locks; the other process learns of the refusal and does not hang."""
    out = tmp_path / "run"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with lock_folder(out):
        before = snapshot(out)
        p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                            *_cli_train(out, text_file, 5)[1:]], capture_output=True, text=True, env=env, timeout=180)
        assert p.returncode != 0  # and it returned: the second process did not wait forever
        assert "in use by another llmcore process" in p.stderr, p.stderr[-2000:]
        assert "the first process refused" in p.stderr, p.stderr[-2000:]
        assert snapshot(out) == before
