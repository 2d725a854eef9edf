"""A sparse autoencoder (SAE): the residual stream, rewritten as a few active features.

One residual-stream vector (d_model numbers) mixes many things the model tracks at
once. An SAE (Bricken et al. 2023, "Towards Monosemanticity"; Templeton et al. 2024,
"Scaling Monosemanticity") learns a wider dictionary of d_sae directions and writes
each vector as a *sparse* sum of them:

    f     = sparsify((x - b_dec) @ W_enc + b_enc)     [..., d_sae]   feature activations, mostly 0
    x_hat = f @ W_dec + b_dec                         [..., d_model] the reconstruction

`sparsify` is TopK (keep the k largest pre-activations, ReLU them; Gao et al. 2024)
or a plain ReLU trained with an L1 penalty on f. Each feature's decoder direction
W_dec[f] (a row here; a column in the papers' d_model x d_sae layout) has unit norm,
so f's value *is* how far along that direction the residual stream moved.

Training reads one hook's activations over the run's training text (scaled so their
mean norm is sqrt(d_model), which makes one learning rate fit every model; the scale is
folded back into the weights at the end, so a saved SAE reads raw activations).
Quality is measured as SAELens reports it: L0 (features on per token), variance
explained, dead features (never fire on the eval set) and loss recovered, with the SAE's
reconstruction spliced into the forward pass in place of the real activation.

Saving it in a run directory, and training one for a run, live in `llmcore.interpret.sae`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from llmcore.errors import UserError

log = logging.getLogger(__name__)

ACTIVATIONS = ("topk", "relu")


@dataclass
class SAEConfig:
    """What an SAE reads, its shape, and how it is trained. Same config + seed = same SAE."""

    hook_name: str = "blocks.0.hook_attn_out"  # what it reads: what block 0's attention gathers (measured best)
    d_model: int = 128  # width of that activation
    d_sae: int = 384  # number of features (the dictionary), here 3 x d_model
    activation: str = "topk"  # "topk" (exactly k features on) or "relu" (L1 decides how many)
    k: int = 8  # topk: features active per token
    l1_coeff: float = 0.0  # relu: weight of the L1 sparsity penalty (0 with topk)
    lr: float = 2e-3  # Adam learning rate
    steps: int = 4000  # optimizer steps
    batch_size: int = 1024  # activation vectors per step
    n_tokens: int = 600_000  # activation vectors collected from the training text
    seed: int = 0  # initialisation and batch order

    def __post_init__(self):
        if not isinstance(self.hook_name, str) or not self.hook_name:
            raise UserError(f"sae config: hook_name must be a hook's name, got {self.hook_name!r}")
        if self.activation not in ACTIVATIONS:
            raise UserError(f"sae config: activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        for name in ("d_model", "d_sae", "k", "steps", "batch_size", "n_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10_000_000:
                raise UserError(f"sae config: {name} must be a whole number from 1 to 10,000,000, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise UserError(f"sae config: seed must be a whole number, got {self.seed!r}")
        if self.k > self.d_sae:
            raise UserError(f"sae config: k ({self.k}) cannot exceed the number of features d_sae ({self.d_sae})")
        for name, lo, hi in (("lr", 0.0, 1.0), ("l1_coeff", 0.0, 1e6)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v < hi) or (name == "lr" and v == 0):
                raise UserError(f"sae config: {name} must be a number in [{lo}, {hi}), got {v!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SAEConfig:
        if not isinstance(d, dict):
            raise UserError("sae config must be a JSON object")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except TypeError as e:
            raise UserError(f"sae config is incomplete: {e}") from None


class SAE(nn.Module):
    """x [..., d_model] -> features f [..., d_sae] (sparse) -> x_hat [..., d_model]."""

    def __init__(self, cfg: SAEConfig, seed: int | None = None):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.seed if seed is None else seed)
        W_dec = torch.randn(cfg.d_sae, cfg.d_model, generator=gen)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)  # [d_sae, d_model], unit rows: feature directions
        self.W_enc = nn.Parameter(W_dec.T.contiguous())  # [d_model, d_sae], starts as the transpose
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))  # [d_sae]
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_model))  # [d_model]
        # What was measured about it (saved in the file's header): l0, variance_explained, ...,
        # "concepts" {concept: best detector feature} and "steering" {concept: feature, strength, mode}.
        self.metrics: dict = {}

    def pre_acts(self, x):  # [..., d_model] -> [..., d_sae]
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def encode(self, x):
        """Feature activations, [..., d_sae]: >= 0, and with topk at most k non-zero."""
        pre = self.pre_acts(x)
        if self.cfg.activation == "relu":
            return F.relu(pre)
        top = pre.topk(self.cfg.k, dim=-1)  # keep the k largest, zero the rest
        return torch.zeros_like(pre).scatter(-1, top.indices, F.relu(top.values))

    def decode(self, f):  # [..., d_sae] -> [..., d_model]
        return f @ self.W_dec + self.b_dec

    def forward(self, x):
        return self.decode(self.encode(x))

    @torch.no_grad()
    def normalize_decoder(self):
        """Give every feature direction W_dec[f] unit length again (after an optimizer step)."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp(min=1e-8)

    @torch.no_grad()
    def fold_scale(self, scale: float):
        """Trained on x * scale; make it read raw x. ReLU and TopK commute with a positive
        scale, so f_raw = f / scale: divide the biases, keep W_enc and the unit W_dec."""
        self.b_enc /= scale
        self.b_dec /= scale


# ---------------------------------------------------------------------------
# Training on a matrix of activations
# ---------------------------------------------------------------------------


@dataclass
class SAEEvent:
    """A report from SAE training; `kind` is "collect", "step", "eval", "label", "steer" or "done"."""

    kind: str
    step: int
    steps: int
    loss: float | None = None  # training loss (normalised MSE, plus L1 for relu)
    fvu: float | None = None  # fraction of variance unexplained on this batch
    l0: float | None = None  # features on per token, this batch
    elapsed: float = 0.0
    info: dict | None = None


def train_sae(acts: torch.Tensor, cfg: SAEConfig, *, callbacks=(), start=None) -> SAE:
    """Fit an SAE to `acts` [n_tokens, d_model] for cfg.steps Adam steps; deterministic for cfg.seed."""
    import time

    t0 = start or time.perf_counter()
    if acts.ndim != 2 or acts.shape[1] != cfg.d_model or len(acts) < 2:
        raise UserError(f"train_sae wants activations [n_tokens, {cfg.d_model}], got {tuple(acts.shape)}")
    acts = acts.float()
    scale = math.sqrt(cfg.d_model) / float(acts.norm(dim=1).mean().clamp(min=1e-8))  # mean norm -> sqrt(d_model)
    x_all = acts * scale
    sae = SAE(cfg)
    with torch.no_grad():
        sae.b_dec.copy_(x_all.mean(0))  # start the decoder bias at the data's centre
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # the batch order
    order, at = torch.randperm(len(x_all), generator=gen), 0
    var = x_all.var(0).sum()  # total variance per token, for the FVU readout
    every = max(1, cfg.steps // 50)
    for step in range(1, cfg.steps + 1):
        if at + cfg.batch_size > len(order):  # a fresh shuffle each pass over the data
            order, at = torch.randperm(len(x_all), generator=gen), 0
        x = x_all[order[at : at + cfg.batch_size]]  # [batch, d_model]
        at += cfg.batch_size
        lr_scale = min(1.0, 10 * (cfg.steps - step + 1) / cfg.steps)  # linear decay over the last 10%
        for g in opt.param_groups:
            g["lr"] = cfg.lr * lr_scale
        f = sae.encode(x)  # [batch, d_sae]
        err = (sae.decode(f) - x).pow(2).sum(-1).mean()  # squared error per token
        loss = err / cfg.d_model + cfg.l1_coeff * f.sum(-1).mean() / cfg.d_model
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sae.normalize_decoder()
        if step % every == 0 or step == cfg.steps:
            l0 = float((f > 0).float().sum(-1).mean())
            for cb in callbacks:
                cb(SAEEvent("step", step, cfg.steps, float(loss.detach()), float(err.detach() / var), l0, time.perf_counter() - t0))
    sae.fold_scale(scale)
    return sae.eval().requires_grad_(False)


# ---------------------------------------------------------------------------
# Metrics, as SAELens reports them
# ---------------------------------------------------------------------------


@torch.no_grad()
def evaluate_sae(model, sae: SAE, tokens: torch.Tensor, *, batch_size: int = 32) -> dict:
    """Quality of `sae` at its hook on eval windows `tokens` [n, pos].

    l0: mean number of features on per token. variance_explained: 1 - |x - x_hat|^2 / |x - mean|^2
    summed over tokens. dead_fraction: features that never fire on these tokens.
    loss_recovered = (L_zero - L_spliced) / (L_zero - L_clean), where L_spliced is the model's
    loss with x_hat in place of x at the hook, and L_zero with zeros there (1 = perfect, 0 = useless).
    """
    from llmcore.model import loss_fn

    hook = sae.cfg.hook_name
    device = next(model.parameters()).device
    sae = sae.to(device)
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=device)
    sums = dict(err=0.0, total=0.0, l0=0.0, n=0, clean=0.0, spliced=0.0, zero=0.0)
    x_sum = x_sq = 0.0

    def splice(x, hook):  # x: [batch, pos, d_model]
        nonlocal x_sum, x_sq
        f = sae.encode(x)
        fired.logical_or_(f.flatten(0, -2).gt(0).any(0))
        x_hat = sae.decode(f)
        sums["err"] += float((x - x_hat).pow(2).sum())
        x_sum, x_sq = x_sum + x.flatten(0, -2).sum(0), x_sq + float(x.pow(2).sum())
        sums["l0"] += float((f > 0).sum())
        sums["n"] += x.shape[0] * x.shape[1]
        return x_hat

    for i in range(0, len(tokens), batch_size):
        t = tokens[i : i + batch_size].to(device)
        x, y = t[:, :-1], t[:, 1:]
        with model.hooked([]):
            sums["clean"] += float(loss_fn(model(x), y)) * len(t)
        with model.hooked([(hook, splice)]):
            sums["spliced"] += float(loss_fn(model(x), y)) * len(t)
        with model.hooked([(hook, lambda act, hook: torch.zeros_like(act))]):
            sums["zero"] += float(loss_fn(model(x), y)) * len(t)
    n = sums["n"]
    total = x_sq - float((x_sum * x_sum).sum()) / n  # sum of |x - mean|^2
    clean, spliced, zero = (sums[k] / len(tokens) for k in ("clean", "spliced", "zero"))
    return {
        "l0": sums["l0"] / n,
        "variance_explained": 1.0 - sums["err"] / max(total, 1e-12),
        "dead_fraction": 1.0 - float(fired.float().mean()),
        "loss_clean": clean,
        "loss_spliced": spliced,
        "loss_zero_ablation": zero,
        "loss_recovered": (zero - spliced) / (zero - clean) if zero != clean else float("nan"),
        "n_tokens": n,
    }
