"""The sparse autoencoder of a run: train one, save it as `sae.safetensors`, load it back.

The autoencoder itself (SAE, SAEConfig, its training loop and metrics) lives in
`sae_model`; this module re-exports it, so `from llmcore.interpret.sae import ...`
gives everything.

    runs/my-run/sae.safetensors
      tensors   W_enc [d_model, d_sae], b_enc [d_sae], W_dec [d_sae, d_model], b_dec [d_model]
      header    format "llmcore-sae", format_version, config (SAEConfig as JSON),
                metrics (L0, variance explained, dead fraction, loss recovered, and the
                best feature for every planted concept), model_sha256

An SAE only means something for the one model it was trained on, so the header keeps
the SHA-256 of that model.safetensors and `load_sae` refuses an SAE whose model has
changed. Like the parameter file, the SAE file can come from a stranger: nothing is
unpickled, and every way it can be wrong (not safetensors, truncated, lying header,
wrong shapes, NaN, not unit-norm) is a one-line `UserError`.
"""

from __future__ import annotations

import json
import logging
import math
import os

import torch

from llmcore.errors import UserError
from llmcore.interpret.sae_model import SAE, SAEConfig, SAEEvent, evaluate_sae, train_sae

__all__ = ["SAE", "SAEConfig", "SAEEvent", "evaluate_sae", "train_sae", "train_sae_for_run", "load_sae",
           "load_sae_file", "save_sae", "search_steering_for_run"]
log = logging.getLogger(__name__)

FORMAT, FORMAT_VERSION = "llmcore-sae", 1
TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec")
STEER_CONCEPTS = ("golden_gate_bridge",)  # concepts whose steering feature is searched for at training
RESID_HOOKS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out")


def save_sae(sae: SAE, path, *, metrics: dict | None = None, model_sha256: str = "") -> None:
    """Write the SAE (fp32) with its config, metrics (default `sae.metrics`) and model fingerprint, atomically."""
    from pathlib import Path

    from llmcore.files import atomic_write
    from llmcore.params import save_sorted

    tensors = {name: getattr(sae, name).detach().float().cpu().contiguous() for name in TENSORS}
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(sae.cfg.to_dict()),
        "metrics": json.dumps(sae.metrics if metrics is None else metrics),
        "model_sha256": model_sha256,
    }
    atomic_write(Path(path), lambda tmp: save_sorted(tensors, tmp, meta))


def load_sae_file(path) -> tuple[SAE, dict]:
    """(SAE, metadata) from an sae.safetensors file; every way a file can be wrong is a UserError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from llmcore.params import read_header

    header, meta, _ = read_header(path)  # refuses truncated, lying or non-safetensors files, FIFOs
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}: a safetensors file, but not an llmcore SAE (no {FORMAT} metadata)")
    if meta.get("format_version") not in [str(v) for v in range(1, FORMAT_VERSION + 1)]:
        raise UserError(f"{path}: SAE format version {meta.get('format_version')!r} is not one this llmcore reads")
    try:
        cfg = SAEConfig.from_dict(json.loads(meta.get("config", "")))
        metrics = json.loads(meta.get("metrics") or "{}")
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise UserError(f"{path}: the SAE config in the header is not valid JSON") from None
    if not isinstance(metrics, dict):
        raise UserError(f"{path}: the SAE metrics in the header are not a JSON object")
    # The four tensors, by name and shape, checked against the config before anything is
    # allocated: a 3 KB file claiming 10 million features is refused here, not after 10 GB.
    want = {"W_enc": [cfg.d_model, cfg.d_sae], "b_enc": [cfg.d_sae], "W_dec": [cfg.d_sae, cfg.d_model],
            "b_dec": [cfg.d_model]}
    for name in sorted(set(header) | set(want)):
        got = header[name]["shape"] if name in header else "missing"
        if got != want.get(name) or header[name]["dtype"] not in ("F32", "F16", "BF16"):
            raise UserError(f"{path}: tensor {name!r:.60} is {got}, the SAE config needs "
                            f"{want.get(name, 'no such tensor')} in float")
    try:
        raw = load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise UserError(f"{path}: cannot read tensors ({str(e).splitlines()[0]})") from None
    sae = SAE(cfg)
    for name, want in ((n, getattr(sae, n).shape) for n in TENSORS):
        t = raw.get(name)
        if t is None or t.shape != want or not t.is_floating_point():
            got = "missing" if t is None else f"{t.dtype} {tuple(t.shape)}"
            raise UserError(f"{path}: tensor {name!r} is {got}, the config needs float {tuple(want)}")
        if not torch.isfinite(t).all():
            raise UserError(f"{path}: tensor {name!r} contains NaN or infinite values; the SAE is broken")
        getattr(sae, name).data.copy_(t.float())
    sae.metrics = metrics
    if not torch.allclose(sae.W_dec.norm(dim=1), torch.ones(cfg.d_sae), atol=1e-3):
        raise UserError(f"{path}: decoder directions are not unit length; the file is not a trained llmcore SAE")
    return sae.eval().requires_grad_(False), {**meta, "config": cfg.to_dict(), "metrics": metrics}


# ---------------------------------------------------------------------------
# An SAE for a run directory
# ---------------------------------------------------------------------------


def as_run(run_or_path):
    """A loaded `Run` from a Run, a run directory or a shipped run's name."""
    from llmcore.run import Run, load_run

    return run_or_path if isinstance(run_or_path, Run) else load_run(run_or_path)


def train_sae_for_run(run_or_path, cfg: SAEConfig | None = None, *, layer: int | None = None, callbacks=(),
                      out=None, label: bool = True, **overrides):
    """Train an SAE on the run's own training text and write `sae.safetensors` into the run; returns its path.

    `layer` moves the config's hook to another block (`blocks.{layer}.hook_attn_out` with
    the default config); other keywords override SAEConfig fields (d_sae, k, steps, seed, ...).
    Events: "collect", "step"..., "eval", ["label", "steer"], "done". With `label` and a
    story-world run, the best feature for every planted concept (`label_features`) and
    the best steering feature and strength for STEER_CONCEPTS (`find_steering`) are stored
    in the file's metadata, so `steer --feature golden_gate_bridge` needs no search.
    """
    import contextlib
    import time
    from pathlib import Path

    from llmcore.files import check_output_path, lock_folder
    from llmcore.run import SAE_FILE

    t0 = time.perf_counter()
    run = as_run(run_or_path)
    path = check_output_path(Path(out) if out else run.path / SAE_FILE)  # refused now, not after training
    # Into its own run folder, an SAE is written under the run's lock: never while a run trains there.
    own_folder = path.parent.resolve() == run.path.resolve()
    with lock_folder(path.parent, "writing an SAE") if own_folder else contextlib.nullcontext():
        return _train_sae(run, path, cfg, layer, callbacks, label, overrides, t0)


def _train_sae(run, path, cfg, layer, callbacks, label, overrides, t0):
    """train_sae_for_run's work: collect activations, train, measure, label, save to `path`."""
    import time

    from llmcore.corpus import load_corpus
    from llmcore.interpret.activations import check_hook, collect, resid_hook, windows

    model, n_ctx = run.model, run.model.cfg.n_ctx
    base = (cfg or SAEConfig(d_model=model.cfg.d_model)).to_dict()
    if layer is not None:  # the same hook in another block
        resid_hook(model, layer)  # (a UserError for a block the model does not have)
        base["hook_name"] = f"blocks.{layer}." + base["hook_name"].split(".", 2)[-1]
    cfg = SAEConfig.from_dict({**base, **overrides})
    check_hook(model, cfg.hook_name)
    if cfg.d_model != model.cfg.d_model or not cfg.hook_name.endswith(RESID_HOOKS):
        raise UserError(f"an SAE reads a residual-stream hook ({', '.join(RESID_HOOKS)}) of width "
                        f"d_model={model.cfg.d_model}; got {cfg.hook_name} with d_model={cfg.d_model}")

    # Memory for the SAE's weights, gradients and Adam moments (16 bytes per number) and a
    # batch of feature activations, refused before anything is collected or allocated.
    need = 16 * (2 * cfg.d_model * cfg.d_sae) + 4 * 3 * cfg.batch_size * cfg.d_sae + 4 * cfg.n_tokens * cfg.d_model
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else need
    if need > have:
        raise UserError(f"an SAE with d_sae={cfg.d_sae:,} and batch_size={cfg.batch_size:,} needs about "
                        f"{need / 2**30:,.1f} GiB of memory, more than this machine's {have / 2**30:,.1f} GiB; "
                        "use a smaller --d-sae")

    def emit(ev):
        for cb in callbacks:
            cb(ev)

    # 1. Windows of the run's training text, a random sample of them: [n_windows, n_ctx].
    corpus = run.provenance.get("corpus") or "storyworld"
    emit(SAEEvent("collect", 0, cfg.steps, elapsed=time.perf_counter() - t0, info={"corpus": corpus, "hook": cfg.hook_name}))
    all_windows = windows(run.tokenizer.encode(load_corpus(corpus, "train").text), n_ctx)
    n_windows = min(len(all_windows), math.ceil(cfg.n_tokens / n_ctx))
    pick = torch.randperm(len(all_windows), generator=torch.Generator().manual_seed(cfg.seed))[:n_windows]
    acts = collect(model, all_windows[pick.sort().values], cfg.hook_name).flatten(0, 1)  # [n_tokens, d_model]
    log.info("collected %d activations at %s in %.1fs", len(acts), cfg.hook_name, time.perf_counter() - t0)

    # 2. Train, then 3. measure on held-out text (the validation split).
    sae = train_sae(acts, cfg, callbacks=callbacks, start=t0)
    del acts
    emit(SAEEvent("eval", cfg.steps, cfg.steps, elapsed=time.perf_counter() - t0))
    val = windows(run.tokenizer.encode(load_corpus(corpus, "val").text), n_ctx)[:256]
    metrics = evaluate_sae(model, sae, val)
    concepts, steering = {}, {}
    if label and corpus == "storyworld":  # 4. name the planted concepts' features, find the steering pick
        from llmcore.interpret.features import label_features
        from llmcore.interpret.steer import find_steering

        emit(SAEEvent("label", cfg.steps, cfg.steps, elapsed=time.perf_counter() - t0))
        concepts = {c: m.to_dict() for c, m in label_features(run, sae).items()}
        sae.metrics = {"concepts": concepts}
        emit(SAEEvent("steer", cfg.steps, cfg.steps, elapsed=time.perf_counter() - t0))
        steering = {c: find_steering(run, sae, c) for c in STEER_CONCEPTS}
    sae.metrics = metrics | {"train_seconds": round(time.perf_counter() - t0, 1), "concepts": concepts,
                             "steering": steering}
    save_sae(sae, path, model_sha256=run.params_sha256.hex())
    emit(SAEEvent("done", cfg.steps, cfg.steps, elapsed=time.perf_counter() - t0, info=sae.metrics))
    return path


def search_steering_for_run(run_or_path, **search) -> dict:
    """Search steering again for a run's saved SAE (`find_steering`) and store the picks in its file.

    The weights, config, concept labels and model fingerprint stay as they are: only
    metrics["steering"] is replaced. For when the steering search improves and retraining
    the SAE (minutes) is not needed. `search` goes to `find_steering`. Returns the new {concept: pick}.
    """
    from llmcore.files import lock_folder
    from llmcore.interpret.steer import find_steering
    from llmcore.run import SAE_FILE

    run = as_run(run_or_path)
    sae = load_sae(run)
    with lock_folder(run.path, "writing an SAE"):
        steering = {c: find_steering(run, sae, c, **search) for c in STEER_CONCEPTS}
        sae.metrics = sae.metrics | {"steering": steering}
        save_sae(sae, run.path / SAE_FILE, model_sha256=run.params_sha256.hex())
    return steering


def load_sae(run_or_path) -> SAE:
    """The SAE saved in a run directory (`sae.safetensors`), checked against that run's model.

    Its metrics (quality, each planted concept's best feature, the steering picks) are in `sae.metrics`.
    """
    from llmcore.files import sha256
    from llmcore.params import read_header
    from llmcore.run import MODEL_FILE, SAE_FILE, Run, resolve_run

    folder = run_or_path.path if isinstance(run_or_path, Run) else resolve_run(run_or_path)
    path = folder / SAE_FILE
    if not path.is_file():
        raise UserError(f"{folder}: the run has no {SAE_FILE} yet; train one with `llmcore sae train {folder}`")
    sae, meta = load_sae_file(path)
    model_cfg = json.loads(read_header(folder / MODEL_FILE)[1].get("config") or "{}")
    layer = sae.cfg.hook_name.split(".")[1] if sae.cfg.hook_name.startswith("blocks.") else "0"
    if model_cfg.get("d_model") != sae.cfg.d_model or not layer.isdigit() or int(layer) >= model_cfg.get("n_layers", 0):
        raise UserError(f"{path}: the SAE ({sae.cfg.hook_name}, d_model={sae.cfg.d_model}) does not fit this run's model")
    if meta.get("model_sha256") and meta["model_sha256"] != sha256(folder / MODEL_FILE).hex():
        raise UserError(f"{path}: the SAE was trained on a different {MODEL_FILE}; retrain it with `llmcore sae train {folder}`")
    return sae
