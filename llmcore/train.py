"""Pre-training: turn a corpus into a file of parameters by predicting the next token.

The loop is nanoGPT's, told step by step:

    1. cut the corpus into tokens, once
    2. draw a batch of random windows; the target of each token is the token after it
    3. forward, cross-entropy loss, backward; clip the gradient; AdamW step
    4. the learning rate warms up, then decays along a cosine: over the steps, or over a
       time budget by the wall clock (llmcore/schedule.py)
    5. now and then: measure loss on held-out text (in nats/token and bits per byte),
       write a sample to the timeline, and checkpoint everything needed to resume

Progress leaves as `TrainEvent`s to callbacks (a tqdm bar in the CLI, a chart in the
dashboard). A checkpoint holds the weights, the optimizer's moments, the data
sampler's random state, the step and the seconds trained, in one safetensors file
written atomically, so a killed run resumes to exactly the losses it would have had (a
run by steps; a run on a time budget resumes its schedule at the time it had reached). Under `torchrun` the same
loop trains data-parallel: each process takes its slice of the global batch and
DistributedDataParallel averages the gradients (see docs/architecture.md).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from llmcore.errors import UserError
from llmcore.files import (
    append_line,
    atomic_write,
    check_output_folder,
    check_output_path,
    lock_folder,
    remove_stale_temps,
)
from llmcore.model import GPT, PRESETS, config_from_preset, loss_fn
from llmcore.params import DTYPES, save_params
from llmcore.run import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    MODEL_FILE,
    SAE_FILE,
    TIMELINE_FILE,
    TOKENIZER_FILE,
    read_jsonl,
)
from llmcore.schedule import BudgetClock, lr_at

log = logging.getLogger(__name__)
TIMELINE_PROMPTS = ("Once upon a time", "Mia went to the", "\n")  # the story world's; other texts give their own
EARLY_SAMPLES = (10, 25, 50, 100)  # extra timeline points where the model changes fastest
TIMELINE_TOKENS = 60  # how many frequent tokens the timeline's embedding map follows
TOKENIZERS = ("bpe", "char")  # the kinds llmcore.tokenizer.train_tokenizer learns from the text
DEVICES = ("auto", "cpu", "cuda", "mps")
WARMUP = 50  # warm-up steps of a run of 500 steps or more (a shorter run warms up for a tenth of it)


def _opt(default, help: str):
    """A config field with its help sentence: one text for the dataclass and `llmcore train --help`."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything that decides a training run. Same config + same seed = same weights (by steps).

    Each field's `metadata["help"]` says its unit, what it changes and (with its default)
    is the `llmcore train --<field>` help text.
    """

    corpus: str = _opt("storyworld", "the text to learn from: storyworld (the built-in story world), python-docs, "
                       "or a path to a .txt file or a folder of them")
    n_chars: int | None = _opt(None, "characters of training text to keep, from the start (None: all of it); "
                               "less text trains the tokenizer faster and repeats sooner")
    tokenizer: str = _opt("bpe", "bpe (learned subwords), char (one token per character: best for a small text), "
                          "or the path of an existing tokenizer.json")  # TOKENIZERS, or a path
    vocab_size: int = _opt(1024, "tokens in a learned BPE vocabulary (ignored by char); larger means shorter "
                           "sequences but a bigger embedding to learn")
    preset: str = _opt("storyworld", "the model's shape (layers, width, heads, context): " + ", ".join(PRESETS))
    n_ctx: int | None = _opt(None, "context length in tokens, overriding the preset's: how far back the model "
                             "can look (None: the preset's)")
    steps: int = _opt(4000, "optimizer steps: the length of the learning-rate schedule, or its cap when "
                      "--max-seconds sets a time budget")
    batch_size: int = _opt(12, "windows of text per step (the global batch); small batches and many steps "
                           "win on a CPU (benchmarks/bench_recipe.py)")
    grad_accum: int = _opt(1, "split each batch into this many micro-batches run one after another: the same "
                           "maths in less memory, slower")
    lr: float = _opt(5e-3, "peak learning rate, reached after warm-up (chosen with --batch-size by "
                     "benchmarks/bench_recipe.py); too high diverges, too low learns slowly")
    min_lr: float = _opt(3e-4, "the learning rate's floor: the cosine decays to it at the last step or as the "
                         "time budget runs out")
    warmup: int | None = _opt(None, "steps of linear warm-up from near 0 to --lr (with a time budget: the same "
                              "share of the budget, warmup/steps, if that comes first); None: 50, or a tenth of "
                              "--steps when that is less")
    weight_decay: float = _opt(0.1, "AdamW's decay on weight matrices (not on biases, norms or positions); "
                               "pulls unused weights towards 0")
    grad_clip: float = _opt(1.0, "largest global gradient norm a step may use (0: no clipping); guards "
                            "against a spike throwing the model off")
    eval_every: int = _opt(200, "steps between measurements of held-out loss (metrics.jsonl's val_loss, "
                           "val_bpb); each costs --eval-batches forward passes")
    eval_batches: int = _opt(4, "batches of held-out windows averaged per measurement; more is steadier "
                             "and slower")
    sample_every: int = _opt(500, "steps between samples written to the timeline (timeline.jsonl), besides "
                             "steps 10, 25, 50, 100 and the last")
    checkpoint_every: int = _opt(500, "steps between checkpoints that --resume continues from (0: none "
                                 "until the end)")
    seed: int = _opt(0, "one seed for the weights, the data order and the samples: same seed and settings, "
                     "same weights (runs by steps)")
    device: str = _opt("auto", "where to train: auto (a GPU if there is one), " + ", ".join(DEVICES[1:]))
    save_dtype: str = _opt("fp16", "number format of the final model.safetensors, with its bytes per parameter: "
                           + ", ".join(f"{k} {v.itemsize}" for k, v in DTYPES.items()) + " (int8 is quantised)")
    max_seconds: float | None = _opt(None, "a time budget in seconds for the whole run: the learning rate warms "
                                     "up and decays over it, reaching --min-lr as time runs out (None: train "
                                     "--steps steps)")

    def __post_init__(self):
        """Refuse impossible settings here, before any data is read or memory taken (CLI, notebooks, dashboard)."""
        from llmcore.corpus import CORPORA, MAX_CHARS
        from llmcore.model import LIMITS

        def whole(name, lo, hi, none_ok=False):
            v = getattr(self, name)
            if v is None and none_ok:
                return
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise UserError(f"{_flag(name)} must be a whole number from {lo:,} to {hi:,}, got {v!r}")

        def number(name, lo, hi, none_ok=False, lo_open=False):
            v = getattr(self, name)
            if v is None and none_ok:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi \
                    or (lo_open and v == lo):
                side = "(" if lo_open else "["
                raise UserError(f"{_flag(name)} must be a number in {side}{lo:g}, {hi:g}], got {v!r}")

        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_batches", "sample_every"):
            whole(name, 1, 10_000_000 if name == "steps" else 100_000)
        if self.warmup is None:  # the default: a short run warms up for a tenth of it
            self.warmup = min(WARMUP, self.steps // 10)
        whole("warmup", 0, 10_000_000)
        whole("checkpoint_every", 0, 10_000_000)
        whole("seed", 0, 2**63 - 1)
        whole("n_chars", 1, MAX_CHARS, none_ok=True)
        whole("n_ctx", 1, LIMITS["n_ctx"], none_ok=True)
        whole("vocab_size", 257, 100_000)
        number("lr", 0.0, 1.0, lo_open=True)
        number("min_lr", 0.0, self.lr if isinstance(self.lr, (int, float)) else 1.0)
        number("weight_decay", 0.0, 10.0)
        number("grad_clip", 0.0, 1e6)
        number("max_seconds", 0.0, 10 * 365 * 24 * 3600, none_ok=True, lo_open=True)
        if self.batch_size % self.grad_accum:
            raise UserError(f"--batch-size ({self.batch_size}) must be a multiple of --grad-accum ({self.grad_accum})")
        for name in ("corpus", "tokenizer"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise UserError(f"{_flag(name)} must name a corpus or file, got {getattr(self, name)!r}")
        if self.warmup > self.steps:
            raise UserError(f"--warmup ({self.warmup:,} steps) is longer than --steps ({self.steps:,}): the learning "
                            "rate would never reach --lr; use a shorter --warmup or more --steps")
        if self.corpus not in CORPORA and not Path(self.corpus).expanduser().exists():
            raise UserError(f"--corpus {self.corpus!r:.60} is neither a built-in corpus ({', '.join(CORPORA)}) "
                            "nor an existing file or folder")
        if self.tokenizer not in TOKENIZERS and not Path(self.tokenizer).expanduser().is_file():
            raise UserError(f"--tokenizer {self.tokenizer!r:.60} is neither bpe, char nor an existing tokenizer.json file")
        if self.preset not in PRESETS:
            raise UserError(f"unknown --preset {self.preset!r:.40}; choose one of: {', '.join(PRESETS)}")
        if self.save_dtype not in DTYPES:
            raise UserError(f"unknown --save-dtype {self.save_dtype!r:.40}; choose one of: {', '.join(DTYPES)}")
        pick_device(self.device)  # an unknown device, or cuda/mps this machine lacks

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TrainEvent:
    """One report from the loop. `kind` is "start", "step", "eval", "sample" or "done"."""

    kind: str
    step: int
    steps: int
    loss: float | None = None  # training loss of this step, nats per token
    lr: float | None = None
    tokens_per_s: float | None = None
    elapsed: float = 0.0  # seconds since this process started training
    seconds: float | None = None  # seconds of the time budget used, a resume's earlier parts included (None: by steps)
    val_loss: float | None = None  # nats per token on held-out text
    val_bpb: float | None = None  # bits per byte on held-out text
    samples: dict = field(default_factory=dict)  # prompt -> text, for "sample" events
    info: dict = field(default_factory=dict)


def _flag(name: str) -> str:
    """A TrainConfig field as the CLI flag that sets it: "grad_clip" -> "--grad-clip"."""
    return "--" + name.replace("_", "-")


def pick_device(name: str) -> torch.device:
    """"auto" picks CUDA, then Apple's MPS, then the CPU; a device this machine lacks is refused."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in DEVICES:
        raise UserError(f"unknown --device {name!r:.40}; use {', '.join(DEVICES[:-1])} or {DEVICES[-1]}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda, but this torch sees no CUDA GPU (a CPU-only build, or no GPU); "
                        "use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps, but this machine has no Apple GPU; use --device cpu or auto")
    return torch.device(name)


@dataclass
class Data:
    """The corpus as token tensors, plus what bits-per-byte needs."""

    tokenizer: object
    train: torch.Tensor  # [n_train_tokens] int64
    val: torch.Tensor  # [n_val_tokens]
    val_bytes_per_token: float
    corpus_name: str
    prompts: tuple = TIMELINE_PROMPTS  # what the timeline asks the model to continue as it learns


def prepare_data(cfg: TrainConfig) -> Data:
    """Corpus -> tokenizer -> token tensors (the "pre-training data" stage)."""
    from llmcore.corpus import load_corpus
    from llmcore.tokenizer import load_tokenizer, train_tokenizer

    train_text = load_corpus(cfg.corpus, "train", n_chars=cfg.n_chars).text
    val_text = load_corpus(cfg.corpus, "val").text
    if cfg.tokenizer in TOKENIZERS:
        tok = train_tokenizer(cfg.tokenizer, train_text, vocab_size=cfg.vocab_size)
    else:
        tok = load_tokenizer(cfg.tokenizer)
    train_ids = torch.tensor(tok.encode(train_text), dtype=torch.long)
    val_ids = torch.tensor(tok.encode(val_text), dtype=torch.long)
    prompts = TIMELINE_PROMPTS if cfg.corpus == "storyworld" else text_prompts(train_text)
    return Data(tok, train_ids, val_ids, len(val_text.encode("utf-8")) / max(1, len(val_ids)), cfg.corpus, prompts)


def text_prompts(text: str, n: int = 3, n_words: int = 3) -> tuple[str, ...]:
    """Timeline prompts from a text's own openings: the first words of `n` lines spread through it.

    A line qualifies when it has at least `n_words` words and starts with a capital
    (a sentence or a verse, not a page number); the first, the middle and the last such
    line give the prompts, so a title page does not give them all. Example:
    "THE TEMPEST\n\nAct I\nOn a ship at sea, a storm\n...\nFull fathom five thy father lies"
    -> ("On a ship", ..., "Full fathom five").
    """
    lines = [ln.split() for ln in text.splitlines()]
    lines = [w for w in lines if len(w) >= n_words and w[0][:1].isupper() and not w[0].isupper()] \
        or [w for w in lines if w]
    if not lines:
        return (text[:20] or "\n",)
    picks = [lines[round(i * (len(lines) - 1) / max(1, n - 1))] for i in range(n)]
    return tuple(dict.fromkeys(" ".join(w[:n_words])[:40] for w in picks))  # in order, no repeats; short


def get_batch(data: torch.Tensor, batch: int, n_ctx: int, gen: torch.Generator):
    """`batch` random windows: x [batch, n_ctx] and the next tokens y [batch, n_ctx]."""
    starts = torch.randint(len(data) - n_ctx - 1, (batch,), generator=gen)
    x = torch.stack([data[s : s + n_ctx] for s in starts.tolist()])
    y = torch.stack([data[s + 1 : s + 1 + n_ctx] for s in starts.tolist()])
    return x, y


@torch.no_grad()
def evaluate(model, data: Data, n_ctx: int, batch: int, n_batches: int, device) -> tuple[float, float]:
    """(loss in nats per token, bits per byte) on evenly spaced windows of the val split.

    Bits per byte = loss / ln 2 * tokens per byte: it does not depend on the tokenizer,
    so runs with different tokenizers (and gzip) can be compared on one scale.
    """
    was_training = model.training
    model.eval()
    n = batch * n_batches
    span = len(data.val) - n_ctx - 1
    if span < 1:
        raise UserError(f"the validation text is shorter than one context window ({n_ctx} tokens)")
    starts = torch.linspace(0, span - 1, n).long().tolist()
    losses = []
    for i in range(0, n, batch):
        chunk = starts[i : i + batch]
        x = torch.stack([data.val[s : s + n_ctx] for s in chunk]).to(device)
        y = torch.stack([data.val[s + 1 : s + 1 + n_ctx] for s in chunk]).to(device)
        losses.append(float(loss_fn(model(x), y)))
    model.train(was_training)
    loss = sum(losses) / len(losses)
    return loss, loss / math.log(2) / data.val_bytes_per_token


def make_optimizer(model, cfg: TrainConfig):
    """AdamW; weight decay only on matrices (nanoGPT's rule), not on W_pos, biases or norms.

    The fused kernel (one pass over all parameters) where torch has one for the device:
    1.28x the whole training step of the tiny preset on a CPU (benchmarks/bench_speed.py).
    """
    decay = [p for n, p in model.named_parameters() if p.ndim == 2 and n != "W_pos"]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim == 2 and n != "W_pos")]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=fused)


# --- checkpoints: one safetensors file, no pickle -------------------------------------


def save_checkpoint(path: Path, model, opt, gen: torch.Generator, step: int, extra: dict):
    from llmcore.params import save_sorted

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    names = [n for n, _ in model.named_parameters()]
    params = [p for g in opt.param_groups for p in g["params"]]
    index = {id(p): n for n, p in model.named_parameters()}
    opt_steps = {}
    for p in params:
        st = opt.state.get(p)
        if st:
            n = index[id(p)]
            tensors[f"opt.exp_avg.{n}"] = st["exp_avg"].cpu().contiguous()
            tensors[f"opt.exp_avg_sq.{n}"] = st["exp_avg_sq"].cpu().contiguous()
            opt_steps[n] = float(st["step"])
    tensors["rng.data"] = gen.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"step": step, "opt_steps": opt_steps, "param_names": names, **extra}
    atomic_write(path, lambda tmp: save_sorted(tensors, tmp, {"llmcore_checkpoint": json.dumps(meta, sort_keys=True)}))


_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.uint8: "U8"}


def _checkpoint_plan(path: Path, model, gen: torch.Generator) -> dict:
    """Check a checkpoint's header against this run's model before reading a tensor; returns its metadata.

    Names, dtypes and shapes must be exactly what `save_checkpoint` writes for this model:
    the weights, the optimizer's two moments per trained parameter, and the two random
    number generator states (uint8 vectors of torch's own sizes). Anything else is a
    checkpoint from another run (or no checkpoint at all), refused in one line.
    """
    from llmcore.params import read_header

    header, meta, _ = read_header(path)  # refuses a FIFO, a truncated or lying file
    not_ours = f"{path}: this checkpoint is not from this run"
    try:
        info = json.loads(meta["llmcore_checkpoint"])
        ok = (isinstance(info, dict) and type(info.get("step")) is int and info["step"] >= 0
              and isinstance(info.get("opt_steps"), dict) and type(info.get("tokens_seen")) is int
              and isinstance(info.get("train_config", {}), dict)
              and _schedule_ok(info.get("schedule", {"planned_seconds": None, "used_seconds": 0.0}))
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in info["opt_steps"].values()))
    except (KeyError, ValueError, TypeError, RecursionError):
        ok = False
    if not ok:
        raise UserError(f"{not_ours} (its metadata is missing or malformed); start again without --resume")
    want = {f"model.{k}": (_ST_DTYPES.get(v.dtype), tuple(v.shape)) for k, v in model.state_dict().items()}
    params = dict(model.named_parameters())
    unknown = set(info["opt_steps"]) - set(params)
    if unknown:
        raise UserError(f"{not_ours} (its optimizer state names {sorted(unknown)[0]!r:.60})")
    for n in info["opt_steps"]:
        shape = (_ST_DTYPES.get(params[n].dtype), tuple(params[n].shape))
        want |= {f"opt.exp_avg.{n}": shape, f"opt.exp_avg_sq.{n}": shape}
    want |= {"rng.data": ("U8", tuple(gen.get_state().shape)), "rng.torch": ("U8", tuple(torch.get_rng_state().shape))}
    for name in sorted(set(header) | set(want)):
        got = (header[name]["dtype"], tuple(header[name]["shape"])) if name in header else None
        if got != want.get(name):
            what = "has no" if got is None else "has an unexpected" if name not in want else "has a different"
            raise UserError(f"{not_ours}: it {what} tensor {name!r:.60} ({got} vs {want.get(name)}); "
                            "resume only the run that wrote it, or start again without --resume")
    return info


def _schedule_ok(sched) -> bool:
    """A checkpoint's schedule record: seconds planned (None for a run by steps) and used so far.

    Checkpoints written before time budgets were schedules lack it: they resume by steps.
    """
    def seconds(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v < 1e9

    return (isinstance(sched, dict) and seconds(sched.get("used_seconds"))
            and (sched.get("planned_seconds") is None or seconds(sched["planned_seconds"]) and sched["planned_seconds"] > 0))


def checkpoint_config(out_dir) -> dict | None:
    """The settings (TrainConfig as a dict) the checkpoint in run folder `out_dir` was made with; None if none.

    What `llmcore train --resume` starts from, so a resume needs no flag but --out.
    A checkpoint that cannot be read gives None here; `train` then says what is wrong.
    """
    from llmcore.params import read_header

    path = Path(out_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(read_header(path)[1]["llmcore_checkpoint"]).get("train_config")
    except (UserError, KeyError, ValueError, TypeError, AttributeError, RecursionError):
        return None
    return saved if isinstance(saved, dict) else None


def load_checkpoint(path: Path, model, opt, gen: torch.Generator) -> dict:
    """Restore model, optimizer and data-order state from a checkpoint checked by `_checkpoint_plan`."""
    from safetensors import SafetensorError, safe_open

    meta = _checkpoint_plan(path, model, gen)
    try:
        with safe_open(str(path), "pt") as f:
            t = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise UserError(f"{path}: cannot read the checkpoint ({str(e).splitlines()[0]})") from None
    for k, v in t.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise UserError(f"{path}: tensor {k!r} holds NaN or infinite values; the checkpoint is broken")
    model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    params = dict(model.named_parameters())
    for n, s in meta["opt_steps"].items():
        opt.state[params[n]] = {
            "step": torch.tensor(float(s)),
            "exp_avg": t[f"opt.exp_avg.{n}"].to(params[n].device),
            "exp_avg_sq": t[f"opt.exp_avg_sq.{n}"].to(params[n].device),
        }
    try:
        gen.set_state(t["rng.data"])
        torch.set_rng_state(t["rng.torch"])
    except RuntimeError:  # the right size, but bytes torch does not accept as a generator state
        raise UserError(f"{path}: its random-number state is invalid; the checkpoint is not from this run") from None
    return meta


def _truncate_jsonl(path: Path, step: int):
    """Drop records past `step` (written after the checkpoint a resumed run starts from)."""
    rows = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))


def _append_jsonl(path: Path, row: dict):
    append_line(path, json.dumps(row))  # never through a symlink planted in the run folder


# --- the loop -------------------------------------------------------------------------


def _distributed():
    """(rank, world size) under torchrun, after joining the process group; (0, 1) otherwise."""
    import torch.distributed as dist

    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _check_out(out: Path, resume: bool, force: bool) -> None:
    """Refuse an output folder whose run this training would destroy (nothing written yet)."""
    if resume and force:
        raise UserError("--resume continues a run and --force starts it over; choose one")
    check_output_folder(out)  # not a file, not a symlink, not inside the installed package
    if out.is_dir():  # every file training writes: absent or regular, never a planted symlink or FIFO
        for name in (TOKENIZER_FILE, METRICS_FILE, TIMELINE_FILE, CHECKPOINT_FILE, MODEL_FILE):
            check_output_path(out / name)
    ckpt = out / CHECKPOINT_FILE
    if resume and not ckpt.is_file():
        raise UserError(f"{out}: nothing to resume (no {CHECKPOINT_FILE}); start without --resume")
    if resume or force:
        return
    if ckpt.exists():
        raise UserError(f"{out} holds an unfinished run; pass --resume to continue it, --force to start it over, "
                        f"or choose another folder")
    if (out / MODEL_FILE).exists():
        raise UserError(f"{out} holds a finished run ({MODEL_FILE}); choose another --out, "
                        f"or pass --force to replace it")


def _lock_out(out: Path, resume: bool, force: bool, rank: int, world: int, device) -> lock_folder | None:
    """Rank 0 locks the run folder (it alone writes there); every process learns if that failed."""
    lock, error = None, None
    if rank == 0:
        try:
            out.mkdir(parents=True, exist_ok=True)
            lock = lock_folder(out)
            _check_out(out, resume, force)  # again: the folder cannot change under the lock
            remove_stale_temps(out)  # left by a writer killed mid-write; ours alone, under the lock
        except UserError as e:
            if lock:
                lock.close()
            error = e
    if world > 1:  # under torchrun: the other processes must not train on alone
        import torch.distributed as dist

        ok = torch.tensor([error is None], dtype=torch.int32, device=device)
        dist.broadcast(ok, src=0)
        if not int(ok) and rank != 0:
            raise UserError(f"{out}: the first process refused to train here (see its message)")
    if error:
        raise error
    return lock


def train(
    cfg: TrainConfig,
    out_dir,
    *,
    callbacks: tuple[Callable[[TrainEvent], None], ...] = (),
    resume: bool = False,
    force: bool = False,
    data: Data | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Train a model as `cfg` says and write a run directory at `out_dir`; returns its path.

    `out_dir` is new, empty, or a start killed before its first checkpoint. An unfinished
    run (it holds a checkpoint) continues with `resume`. A finished run (it holds a model)
    or an unfinished one is started over only with `force`: once the data and model are
    ready, its model, SAE and checkpoint are deleted first, then the new tokenizer and
    empty logs written, so a killed start never leaves the old model beside a new
    tokenizer. The folder is locked while training: a second process is refused.

    `cfg.max_seconds` is a budget for the whole call, tokenizer training included.
    """
    t_begin = time.perf_counter()
    if not str(out_dir).strip():
        raise UserError("--out is empty; name the folder to write the run to (e.g. runs/mine)")
    out = Path(out_dir)
    rank, world = _distributed()
    if cfg.batch_size % (world * cfg.grad_accum):
        raise UserError(f"batch_size {cfg.batch_size} must divide evenly over {world} processes x {cfg.grad_accum} micro-batches")
    device = pick_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", rank % torch.cuda.device_count())
    _check_out(out, resume, force)  # before anything is written, in every process
    lock = _lock_out(out, resume, force, rank, world, device)
    try:
        return _train_locked(cfg, out, rank, world, device, callbacks, resume, force, data, should_stop, t_begin)
    finally:
        if lock:
            lock.close()


def _train_locked(cfg, out, rank, world, device, callbacks, resume, force, data, should_stop, t_begin) -> Path:
    """The loop itself, run while this process holds the run folder's lock; `t_begin` starts the time budget."""
    ckpt = out / CHECKPOINT_FILE
    data = data or prepare_data(cfg)
    tok = data.tokenizer
    overrides = {"n_ctx": cfg.n_ctx} if cfg.n_ctx else {}
    mcfg = config_from_preset(cfg.preset, tok.vocab_size, **overrides)
    if len(data.train) < mcfg.n_ctx + 2:
        raise UserError(f"the training text has {len(data.train)} tokens, fewer than one context window ({mcfg.n_ctx})")
    check_memory(mcfg, cfg.batch_size // (world * cfg.grad_accum))
    torch.manual_seed(cfg.seed)
    model = GPT(mcfg, seed=cfg.seed).to(device).train()
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # the data order

    start_step, tokens_seen = 0, 0
    planned, used_before = None, 0.0  # the time budget's schedule (None: by steps) and seconds trained
    if resume:
        meta = load_checkpoint(ckpt, model, opt, gen)
        if meta.get("train_config", {}) | {"max_seconds": None} != cfg.to_dict() | {"max_seconds": None}:
            raise UserError(f"{out}: the checkpoint was made with different settings; resume with the same ones")
        start_step, tokens_seen = meta["step"], meta["tokens_seen"]
        sched = meta.get("schedule", {})  # the schedule the run started with, whatever --max-seconds says now
        planned, used_before = sched.get("planned_seconds"), float(sched.get("used_seconds", 0.0))
        if rank == 0:
            _truncate_jsonl(out / METRICS_FILE, start_step)
            _truncate_jsonl(out / TIMELINE_FILE, start_step)
    elif rank == 0:
        if force:  # the old run's weights go first, before anything of the new run is written
            for name in (MODEL_FILE, SAE_FILE, CHECKPOINT_FILE):
                (out / name).unlink(missing_ok=True)
        tok.save(out / TOKENIZER_FILE)
        for name in (METRICS_FILE, TIMELINE_FILE):
            atomic_write(out / name, "")  # replaces a regular file only, never a symlink's target

    ddp_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def emit(ev: TrainEvent):
        if rank == 0:
            for cb in callbacks:
                cb(ev)

    def checkpoint(step):
        if rank == 0:
            extra = {"tokens_seen": tokens_seen, "train_config": cfg.to_dict(),
                     "schedule": {"planned_seconds": clock.planned, "used_seconds": clock.used()}}
            save_checkpoint(ckpt, model, opt, gen, step, extra)

    frequent = torch.bincount(data.train, minlength=tok.vocab_size).argsort(descending=True)[:TIMELINE_TOKENS].tolist()

    def record_sample(step):
        samples = timeline_samples(model, tok, data.prompts)
        if rank == 0:
            row = {"step": step, "tokens_seen": tokens_seen, "samples": samples,
                   "embedding_2d": embedding_map(model, tok, frequent)}
            _append_jsonl(out / TIMELINE_FILE, row)
        emit(TrainEvent("sample", step, cfg.steps, samples=samples, elapsed=time.perf_counter() - t0))

    micro = cfg.batch_size // (world * cfg.grad_accum)  # windows per micro-batch on this process
    t0 = time.perf_counter()

    def spent():  # seconds of the time budget used: since train() was called, or the checkpoint's and this part's
        if not cfg.max_seconds:
            return None
        return used_before + time.perf_counter() - (t0 if resume else t_begin)

    emit(TrainEvent("start", start_step, cfg.steps, seconds=spent(), info={
        "n_params": model.n_params(), "device": str(device), "world_size": world, "max_seconds": cfg.max_seconds}))
    if start_step == 0:
        record_sample(0)
    if cfg.max_seconds and not resume:
        # A time budget is a schedule: it spans what is left of the budget after the set-up
        # (corpus, tokenizer, the first sample), less what finishing takes (a last
        # evaluation and sample, timed here once), so the run ends on the floor, in time.
        t_finish = time.perf_counter()
        evaluate(model, data, mcfg.n_ctx, micro * cfg.grad_accum, cfg.eval_batches, device)
        finish = 2 * (time.perf_counter() - t_finish) + (t_finish - t0)  # + the sample just taken
        planned = max(1e-3, cfg.max_seconds - (time.perf_counter() - t_begin) - finish)
        planned = _agree([planned], world, device)[0]  # every process walks rank 0's schedule
    clock = BudgetClock(planned, used_before)  # seconds trained, and the budget's share used
    step = start_step
    val_loss = val_bpb = None
    lr, ended_by = None, "steps"
    while step < cfg.steps:
        t_step = time.perf_counter()
        progress = None if clock.planned is None else _agree([clock.progress()], world, device)[0]
        lr = lr_at(step, cfg, progress)
        for g in opt.param_groups:
            g["lr"] = lr
        # Every process draws the same global batch, then keeps its own slice of it:
        # the union over processes is exactly the single-process batch.
        x, y = get_batch(data.train, cfg.batch_size, mcfg.n_ctx, gen)
        x, y = x[rank::world].to(device), y[rank::world].to(device)
        loss_sum = 0.0
        for m in range(cfg.grad_accum):
            xb, yb = x[m * micro : (m + 1) * micro], y[m * micro : (m + 1) * micro]
            loss = loss_fn(ddp_model(xb), yb) / cfg.grad_accum
            loss.backward()
            loss_sum += loss.item()
        if world > 1:  # report the global mean loss, identical on every process
            import torch.distributed as dist

            t = torch.tensor([loss_sum], device=device)
            dist.all_reduce(t)
            loss_sum = float(t) / world
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        tokens_seen += cfg.batch_size * mcfg.n_ctx
        tps = cfg.batch_size * mcfg.n_ctx / max(1e-9, time.perf_counter() - t_step)
        row = {"step": step, "loss": round(loss_sum, 5), "lr": lr, "tokens_seen": tokens_seen, "tokens_per_s": round(tps, 1)}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            val_loss, val_bpb = evaluate(model, data, mcfg.n_ctx, micro * cfg.grad_accum, cfg.eval_batches, device)
            row |= {"val_loss": round(val_loss, 5), "val_bpb": round(val_bpb, 5)}
        row["elapsed"] = round(time.perf_counter() - t0, 3)
        if rank == 0:
            _append_jsonl(out / METRICS_FILE, row)
        emit(TrainEvent("step", step, cfg.steps, loss=loss_sum, lr=lr, tokens_per_s=tps, elapsed=row["elapsed"],
                        val_loss=row.get("val_loss"), val_bpb=row.get("val_bpb"), seconds=spent()))
        clock.last_step = time.perf_counter() - t_step
        if clock.planned is not None:  # the next step would end past the budget: stop on the floor
            out_of_time = not _agree([clock.next_step_fits()], world, device)[0]
        else:  # a run by steps resumed with --max-seconds: this call's time only
            out_of_time = bool(cfg.max_seconds and time.perf_counter() - t_begin > cfg.max_seconds)
        stopped = bool(should_stop and should_stop())
        stop = out_of_time or stopped
        if step % cfg.sample_every == 0 or step in EARLY_SAMPLES or step == cfg.steps or (stop and step < cfg.steps):
            record_sample(step)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps and not stop:
            checkpoint(step)
        if stop:
            ended_by = "stopped" if stopped else "budget"
            log.info("stopping early at step %d (%s)", step, ended_by)
            break

    trained = clock.used()  # seconds of training steps, all parts of a resumed run together
    if val_loss is None or step % cfg.eval_every:
        val_loss, val_bpb = evaluate(model, data, mcfg.n_ctx, micro * cfg.grad_accum, cfg.eval_batches, device)
    provenance = {
        "corpus": data.corpus_name,
        "steps": step,
        "tokens_seen": tokens_seen,
        "val_loss": round(val_loss, 5),
        "val_bpb": round(val_bpb, 5),
        "seed": cfg.seed,
        "train_config": cfg.to_dict(),
        "world_size": world,
        "schedule": {  # what was planned, and what happened
            "planned": {"by": "steps" if clock.planned is None else "time", "steps": cfg.steps,
                        "max_seconds": cfg.max_seconds,
                        "schedule_seconds": None if clock.planned is None else round(clock.planned, 3),
                        "lr": cfg.lr, "min_lr": cfg.min_lr, "warmup": cfg.warmup},
            "done": {"steps": step, "seconds": round(trained, 3), "final_lr": lr, "ended_by": ended_by},
        },
    }
    if rank == 0:
        save_params(model, out / MODEL_FILE, dtype=cfg.save_dtype, tokenizer_kind=tok.kind, provenance=provenance)
        ckpt.unlink(missing_ok=True)
    emit(TrainEvent("done", step, cfg.steps, val_loss=val_loss, val_bpb=val_bpb, elapsed=time.perf_counter() - t0, info=provenance))
    return out


def _agree(values: list, world: int, device) -> list:
    """Rank 0's `values` (floats or bools) on every process: one clock for the schedule and the stop."""
    if world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return [type(v)(x) for v, x in zip(values, t.tolist())]


def training_memory(mcfg, micro_batch: int) -> int:
    """Bytes a training step needs, estimated from the shapes alone (fp32).

    Parameters, gradients and AdamW's two moments: 16 bytes per parameter. Activations
    kept for the backward pass, per window position: about 16 d_model + 2 d_mlp numbers
    per block, and 3 x d_vocab for the logits, their softmax and its gradient.
    """
    per_position = mcfg.n_layers * (16 * mcfg.d_model + 2 * mcfg.d_mlp) + 3 * mcfg.d_vocab
    return 16 * mcfg.n_params() + 4 * micro_batch * mcfg.n_ctx * per_position


def check_memory(mcfg, micro_batch: int) -> None:
    """Refuse a model and batch whose training would need more memory than this machine has."""
    need = training_memory(mcfg, micro_batch)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not Linux or macOS: no limit we can know
        return
    if need > have:
        raise UserError(f"training this model with {micro_batch:,} windows of {mcfg.n_ctx:,} tokens at once needs "
                        f"about {need / 2**30:,.1f} GiB of memory, more than this machine's {have / 2**30:,.1f} GiB; "
                        "use a smaller --batch-size (or a larger --grad-accum), --n-ctx or --preset")


@torch.no_grad()
def timeline_samples(model, tok, prompts: tuple = TIMELINE_PROMPTS, n_tokens: int = 40) -> dict:
    """Greedy continuations of a few fixed prompts: what the model 'says' at this step."""
    from llmcore.generate import Sampling, generate

    was_training = model.training
    model.eval()
    out = {p: generate(model, tok, p, Sampling(temperature=0, max_new_tokens=n_tokens)) for p in prompts}
    model.train(was_training)
    return out


@torch.no_grad()
def embedding_map(model, tok, token_ids: list[int]) -> dict:
    """2-D coordinates of some token embeddings (their top two principal components).

    Signs are fixed (largest coordinate positive) so the map does not flip between steps.
    """
    E = model.W_E[token_ids].float().cpu()  # [n, d_model]
    E = E - E.mean(0)
    _, _, V = torch.linalg.svd(E, full_matrices=False)
    xy = E @ V[:2].T  # [n, 2]
    xy *= torch.sign(xy.gather(0, xy.abs().argmax(0, keepdim=True)))
    return {"tokens": [tok.token_str(i) for i in token_ids], "xy": [[round(float(a), 4), round(float(b), 4)] for a, b in xy]}
