"""The run directory: what one training run leaves behind, and how to open it.

    runs/my-run/
      model.safetensors   the parameters, with config and provenance in the header
      tokenizer.json      how text becomes token ids
      metrics.jsonl       one JSON line per logged step: loss, learning rate, tokens/s, val loss
      timeline.jsonl      samples written while training, to replay "watch it learn"
      sae.safetensors     (optional) a sparse autoencoder trained on the run's activations
      checkpoint.safetensors   (while training) what --resume needs: weights, optimizer, step, schedule

Everything else in llmcore opens a run with `load_run`, by path or by the name of a
run that ships in `llmcore/assets/` (`load_run("storyworld")`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from llmcore.errors import UserError
from llmcore.files import LOCK_FILE

ASSETS = Path(__file__).parent / "assets"
MODEL_FILE, TOKENIZER_FILE, METRICS_FILE, TIMELINE_FILE, SAE_FILE, CHECKPOINT_FILE = (
    "model.safetensors",
    "tokenizer.json",
    "metrics.jsonl",
    "timeline.jsonl",
    "sae.safetensors",
    "checkpoint.safetensors",
)


def shipped_runs() -> list[str]:
    """Names of the pretrained runs that ship with the package."""
    return sorted(p.name for p in ASSETS.iterdir() if (p / MODEL_FILE).is_file()) if ASSETS.is_dir() else []


def resolve_run(name_or_path) -> Path:
    """A path to a run directory, from a path or the name of a shipped run."""
    p = Path(name_or_path)
    if (p / MODEL_FILE).is_file():
        return p
    if str(name_or_path) and (ASSETS / str(name_or_path) / MODEL_FILE).is_file():
        return ASSETS / str(name_or_path)
    if p.is_file() and p.suffix == ".safetensors":
        return p.parent
    shipped = ", ".join(shipped_runs()) or "none"
    raise UserError(f"{name_or_path!r} is not a run directory (no {MODEL_FILE}); shipped runs: {shipped}")


RUN_ONLY_FILES = (METRICS_FILE, TIMELINE_FILE, SAE_FILE, CHECKPOINT_FILE, LOCK_FILE)


def run_evidence(folder) -> str | None:
    """The name of a file showing that `folder` holds an llmcore run, or None.

    For the commands that fill a folder (export-hf, import-hf) and must never write over
    a run: its logs, SAE, checkpoint or lock, an llmcore parameter file (a Hugging Face
    export's model.safetensors says "pt" instead), or an llmcore tokenizer.
    """
    folder = Path(folder)
    for name in RUN_ONLY_FILES:
        if os.path.lexists(folder / name):
            return name
    model, tok = folder / MODEL_FILE, folder / TOKENIZER_FILE
    for p in (model, tok):  # read only regular files: never through a link, never from a FIFO
        if os.path.lexists(p) and not p.is_file() or p.is_symlink():
            return p.name
    if os.path.lexists(model):
        from llmcore.params import read_header

        try:
            if read_header(model)[1].get("format") != "pt":
                return MODEL_FILE  # llmcore's, or unreadable: not ours to replace
        except UserError:
            return MODEL_FILE
    if os.path.lexists(tok):
        try:
            head = json.loads(tok.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return TOKENIZER_FILE
        if not isinstance(head, dict) or "kind" in head:  # llmcore tokenizers carry a "kind"
            return TOKENIZER_FILE
    return None


def read_jsonl(path: Path, limit: int = 1_000_000) -> list[dict]:
    """Read a JSON-lines file, skipping a torn last line (a run killed mid-write)."""
    if not path.is_file():
        return []
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:  # a torn line may end mid-character
        for i, line in enumerate(f):
            if i >= limit:
                break
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


@dataclass
class Run:
    """An opened run directory: the model (eval mode, never mutated), its tokenizer and records."""

    path: Path
    model: object
    tokenizer: object
    meta: dict
    name: str = ""
    _sha256: bytes | None = field(default=None, repr=False)

    def metrics(self) -> list[dict]:
        return read_jsonl(self.path / METRICS_FILE)

    def timeline(self) -> list[dict]:
        return read_jsonl(self.path / TIMELINE_FILE)

    @property
    def params_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def params_sha256(self) -> bytes:
        """SHA-256 of the parameter file (read once): which model a compressed file or an SAE needs."""
        if self._sha256 is None:
            from llmcore.files import sha256

            self._sha256 = sha256(self.params_file)
        return self._sha256

    @property
    def provenance(self) -> dict:
        return self.meta.get("provenance", {})


def load_run(name_or_path) -> Run:
    """Open a run by path or shipped name: `load_run("storyworld")`."""
    from llmcore.params import load_model
    from llmcore.tokenizer import load_tokenizer

    path = resolve_run(name_or_path)
    model, meta = load_model(path / MODEL_FILE)
    tok_path = path / TOKENIZER_FILE
    if not tok_path.is_file():
        raise UserError(f"{path}: the run has no {TOKENIZER_FILE}")
    tokenizer = load_tokenizer(tok_path)
    if tokenizer.vocab_size != model.cfg.d_vocab:
        raise UserError(
            f"{path}: tokenizer has {tokenizer.vocab_size} tokens but the model expects {model.cfg.d_vocab}"
        )
    for p in model.parameters():  # a loaded run is read-only: shared safely between users
        p.requires_grad_(False)
    return Run(path=path, model=model, tokenizer=tokenizer, meta=meta, name=path.name)
