"""The model: a GPT-2 style transformer with TransformerLens hook points.

It follows GPT-2 (Radford et al., 2019) and nanoGPT's model.py: learned token and
position embeddings, pre-LayerNorm blocks (attention, then a GELU MLP, each added
to the residual stream), a final LayerNorm, and an unembedding tied to the token
embedding. The maths is the same as Hugging Face's `GPT2LMHeadModel`, which is how
`llmcore.hf` can export and import with identical logits.

Names follow TransformerLens (d_model, n_layers, n_heads, d_head, d_mlp, d_vocab,
n_ctx, W_E, W_pos, W_Q...). Every interesting activation passes through a
`HookPoint`, so `model.run_with_cache(tokens)` and `model.run_with_hooks(...)`
work as on any TransformerLens model:

    hook_embed, hook_pos_embed                      [batch, pos, d_model]
    blocks.{i}.hook_resid_pre / hook_resid_mid / hook_resid_post
    blocks.{i}.attn.hook_q / hook_k / hook_v / hook_z   [batch, pos, head, d_head]
    blocks.{i}.attn.hook_attn_scores / hook_pattern     [batch, head, query_pos, key_pos]
    blocks.{i}.hook_attn_out, blocks.{i}.hook_mlp_out  [batch, pos, d_model]
    blocks.{i}.mlp.hook_pre / hook_post                [batch, pos, d_mlp]
    ln_final.hook_normalized                            [batch, pos, d_model]

Two paths compute attention. The fast path calls `scaled_dot_product_attention`
(a fused kernel) and is what training and plain generation use. The glass path
writes the softmax out by hand; it runs whenever something hooks the attention
scores or pattern (for example `run_with_cache`), so a learner can see the
pattern. tests/test_model.py holds the two paths equal.
"""

from __future__ import annotations

import math
import threading
import weakref
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from llmcore.errors import UserError
from llmcore.hooks import HookedRootModule, HookPoint  # TransformerLens's API, without its imports


class Hook(HookPoint):
    """A TransformerLens HookPoint that is free when nothing is attached.

    An idle HookPoint is an identity function, but calling any nn.Module costs a few
    microseconds; at ~40 hook points per forward that is ~8% of a decode step for the
    shipped model (benchmarks/bench_decode.py). With a hook attached it behaves exactly
    like TransformerLens's HookPoint.
    """

    @property
    def active(self) -> bool:
        """True when something is attached (a forward, pre-forward or backward hook)."""
        return bool(self._forward_hooks or self._forward_pre_hooks or self._backward_hooks or self._backward_pre_hooks)

    def __call__(self, x):
        return super().__call__(x) if self.active else x


def _dropout(x, p: float, training: bool):
    return F.dropout(x, p, training) if training and p > 0 else x


# The largest shape this library builds: past these a model is not a CPU toy, and a file
# claiming more is refused before anything is allocated. GPT-2 XL (1.5B) fits: 48 layers,
# d_model 1600, n_ctx 1024, d_vocab 50,257. A parameter file's config is also held to the
# bytes the file really has (llmcore.params).
LIMITS = {"d_vocab": 300_000, "n_ctx": 16_384, "d_model": 8_192, "n_layers": 128, "n_heads": 256, "d_mlp": 32_768}
MAX_PARAMS = 2_000_000_000  # 8 GB in fp32


@dataclass
class GPTConfig:
    """The shape of a GPT. Every number here fixes how many parameters it has."""

    d_vocab: int  # how many different tokens exist (the tokenizer's vocabulary size)
    n_ctx: int = 128  # the longest text the model reads at once, in tokens
    d_model: int = 128  # width of the residual stream: numbers per token position
    n_layers: int = 4  # how many transformer blocks are stacked
    n_heads: int = 4  # attention heads per block; each reads d_head = d_model / n_heads numbers
    d_mlp: int = 0  # hidden width of each MLP; 0 means the GPT-2 default 4 * d_model
    ln_eps: float = 1e-5  # LayerNorm's epsilon, as GPT-2
    dropout: float = 0.0  # dropout probability while training (0 for small, short CPU runs)

    def __post_init__(self):
        if type(self.d_mlp) is int and self.d_mlp == 0 and isinstance(self.d_model, int):  # checked below
            self.d_mlp = 4 * self.d_model
        for name in ("d_vocab", "n_ctx", "d_model", "n_layers", "n_heads", "d_mlp"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"model config: {name} must be a positive integer, got {value!r}")
            if value > LIMITS[name]:
                raise UserError(f"model config: {name}={value:,} is over this library's limit of {LIMITS[name]:,}")
        if self.d_model % self.n_heads:
            raise UserError(
                f"model config: d_model ({self.d_model}) must divide evenly into n_heads ({self.n_heads})"
            )
        for name in ("dropout", "ln_eps"):  # a string here would otherwise fail as a TypeError below
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"model config: {name} must be a number, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model config: dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.ln_eps < 1.0:
            raise UserError(f"model config: ln_eps must be in (0, 1), got {self.ln_eps}")
        if self.n_params() > MAX_PARAMS:  # arithmetic only: nothing is allocated yet
            raise UserError(f"model config: {self.n_params():,} parameters is over this library's limit of "
                            f"{MAX_PARAMS:,}; choose a smaller shape")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        """Build from a dict, ignoring unknown keys (files from newer versions still load)."""
        if not isinstance(d, dict):
            raise UserError("model config must be a JSON object")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except TypeError as e:
            raise UserError(f"model config is incomplete: {e}") from None

    def n_params(self) -> int:
        """Parameter count from the shape alone (tied embeddings, so W_E is counted once)."""
        return sum(parameter_breakdown(self).values())


# Named shapes, from a toy you can read in full to GPT-2 small. d_vocab is filled in
# from the tokenizer when a model is built (GPT-2 small's is its own 50,257).
PRESETS: dict[str, dict] = {
    "nano": dict(d_model=32, n_layers=2, n_heads=2, n_ctx=64),  # ~0.06M with a 1k vocabulary
    "micro": dict(d_model=64, n_layers=4, n_heads=4, n_ctx=128),  # ~0.3M
    "storyworld": dict(d_model=128, n_layers=4, n_heads=4, n_ctx=128),  # ~0.9M, the shipped run
    "small-10m": dict(d_model=384, n_layers=6, n_heads=6, n_ctx=256),  # ~11M
    "medium-100m": dict(d_model=768, n_layers=14, n_heads=12, n_ctx=512),  # ~100M
    "gpt2-124m": dict(d_model=768, n_layers=12, n_heads=12, n_ctx=1024, d_vocab=50257),
}


def config_from_preset(preset: str, d_vocab: int, **overrides) -> GPTConfig:
    if preset not in PRESETS:
        raise UserError(f"unknown model preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    kw = {"d_vocab": d_vocab, **PRESETS[preset], **overrides}
    return GPTConfig(**kw)


def param_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in `GPT(cfg).state_dict()`, computed without building it.

    A parameter file is checked against this before a single tensor is allocated.
    {'W_E': (d_vocab, d_model), 'W_pos': (n_ctx, d_model), 'blocks.0.ln1.w': (d_model,), ...}
    """
    d, m = cfg.d_model, cfg.d_mlp
    shapes = {"W_E": (cfg.d_vocab, d), "W_pos": (cfg.n_ctx, d)}
    for i in range(cfg.n_layers):
        b = f"blocks.{i}."
        shapes |= {b + "ln1.w": (d,), b + "ln1.b": (d,), b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
                   b + "attn.out.weight": (d, d), b + "attn.out.bias": (d,), b + "ln2.w": (d,), b + "ln2.b": (d,),
                   b + "mlp.fc_in.weight": (m, d), b + "mlp.fc_in.bias": (m,), b + "mlp.fc_out.weight": (d, m),
                   b + "mlp.fc_out.bias": (d,)}
    return shapes | {"ln_final.w": (d,), "ln_final.b": (d,)}


def parameter_breakdown(cfg: GPTConfig) -> dict[str, int]:
    """Where the parameters live, by component. Sums to the model's parameter count.

    For the storyworld preset with a 1,024-token vocabulary:
    {'embeddings': 147456, 'attention': 264192, 'mlp': 526848, 'norms': 2304}
    """
    d, L = cfg.d_model, cfg.n_layers
    return {
        "embeddings": cfg.d_vocab * d + cfg.n_ctx * d,  # W_E (shared with the unembedding) + W_pos
        "attention": L * (3 * d * d + 3 * d + d * d + d),  # W_Q, W_K, W_V, W_O and their biases
        "mlp": L * (d * cfg.d_mlp + cfg.d_mlp + cfg.d_mlp * d + d),  # W_in, b_in, W_out, b_out
        "norms": (2 * L + 1) * 2 * d,  # a scale and a shift per LayerNorm
    }


class LayerNorm(nn.Module):
    """LayerNorm with TransformerLens's parameter names (w, b) and output hook."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.eps = cfg.ln_eps
        self.w = nn.Parameter(torch.ones(cfg.d_model))
        self.b = nn.Parameter(torch.zeros(cfg.d_model))
        self.hook_normalized = Hook()  # [batch, pos, d_model]

    def forward(self, x):
        return self.hook_normalized(F.layer_norm(x, x.shape[-1:], self.w, self.b, self.eps))


class KVCache:
    """Keys and values of every position seen so far, so each new token costs one step.

    Without a cache, producing token t re-reads all t previous tokens through every
    layer; with it, only the new token passes through, attending to stored keys and
    values. Buffers are allocated once for the whole context: [batch, head, n_ctx, d_head].

    Usually every row of the batch is at the same position (`pos` is an int). A server
    batches different requests, each at its own position: `per_row=True` makes `pos` a
    tensor [batch] of lengths, and each row's new tokens go to its own next positions
    (llmcore.batching runs one request per row).
    """

    def __init__(self, cfg: GPTConfig, batch: int, device=None, dtype=torch.float32, *, per_row: bool = False):
        shape = (batch, cfg.n_heads, cfg.n_ctx, cfg.d_head)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)]
        # how many positions are filled: one int, or one per row ([batch], per_row)
        self.pos = torch.zeros(batch, dtype=torch.long, device=device) if per_row else 0

    @property
    def per_row(self) -> bool:
        return isinstance(self.pos, torch.Tensor)

    def rows(self, start: int, stop: int) -> KVCache:
        """Rows start..stop-1 as a cache of their own that shares this one's memory:
        a forward pass through the view fills these rows and advances their lengths."""
        view = object.__new__(KVCache)
        view.k = [k[start:stop] for k in self.k]
        view.v = [v[start:stop] for v in self.v]
        view.pos = self.pos[start:stop] if self.per_row else self.pos  # a tensor slice is a view
        return view

    def __len__(self):
        return int(self.pos.max()) if self.per_row else self.pos


class Attention(nn.Module):
    """Multi-head causal self-attention.

    Q, K and V come from one fused matrix (fast on a CPU); `W_Q`, `W_K`, `W_V`, `W_O`
    present it in TransformerLens's per-head shapes for interpretability work.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)  # [d_model] -> [q | k | v]
        self.out = nn.Linear(cfg.d_model, cfg.d_model)  # heads, concatenated -> residual
        self.dropout = cfg.dropout
        self.hook_q = Hook()  # [batch, pos, head, d_head]
        self.hook_k = Hook()
        self.hook_v = Hook()
        self.hook_attn_scores = Hook()  # [batch, head, query_pos, key_pos], before softmax
        self.hook_pattern = Hook()  # [batch, head, query_pos, key_pos], rows sum to 1
        self.hook_z = Hook()  # [batch, pos, head, d_head], the heads' outputs

    def _per_head(self, W):  # [d_model out, d_model in] -> [head, d_model, d_head]
        c = self.cfg
        return W.T.reshape(c.d_model, c.n_heads, c.d_head).permute(1, 0, 2)

    @property
    def W_Q(self):
        return self._per_head(self.qkv.weight[: self.cfg.d_model])

    @property
    def W_K(self):
        return self._per_head(self.qkv.weight[self.cfg.d_model : 2 * self.cfg.d_model])

    @property
    def W_V(self):
        return self._per_head(self.qkv.weight[2 * self.cfg.d_model :])

    @property
    def W_O(self):  # [head, d_head, d_model]
        c = self.cfg
        return self.out.weight.T.reshape(c.n_heads, c.d_head, c.d_model)

    def _glass(self) -> bool:
        """True when any hook (forward or backward) watches the scores or pattern: then write softmax out."""
        return self.hook_attn_scores.active or self.hook_pattern.active

    def forward(self, x, cache: KVCache | None = None, layer: int = 0):
        B, T, _ = x.shape
        c = self.cfg
        qkv = self.qkv(x).view(B, T, 3, c.n_heads, c.d_head)  # [batch, pos, q|k|v, head, d_head]
        if self.hook_q.active or self.hook_k.active or self.hook_v.active:
            q, k, v = (h(t) for h, t in zip((self.hook_q, self.hook_k, self.hook_v), qkv.unbind(2)))
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [batch, head, pos, d_head]
        else:  # nothing watches q, k, v: one permute instead of three transposes
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x [batch, head, pos, d_head]

        past, mask = 0, None
        if cache is not None and cache.per_row:  # each row writes at its own positions
            where = cache.pos[:, None] + torch.arange(T, device=x.device)  # [batch, pos]: absolute positions
            rows = torch.arange(B, device=x.device)[:, None]  # [batch, 1]
            cache.k[layer][rows, :, where] = k.transpose(1, 2)  # [batch, pos, head, d_head] into [batch, head, n_ctx, d_head]
            cache.v[layer][rows, :, where] = v.transpose(1, 2)
            S = int(where.max()) + 1  # keys up to the longest row; shorter rows mask the rest
            k, v = cache.k[layer][:, :, :S], cache.v[layer][:, :, :S]
            # row b's query t (at position where[b, t]) may look at keys 0 .. where[b, t]
            mask = (torch.arange(S, device=x.device) <= where[:, :, None])[:, None]  # [batch, 1, query_pos, key_pos]
        elif cache is not None:  # store this chunk's keys/values, then attend over all so far
            past = cache.pos
            cache.k[layer][:, :, past : past + T] = k
            cache.v[layer][:, :, past : past + T] = v
            k = cache.k[layer][:, :, : past + T]
            v = cache.v[layer][:, :, : past + T]
        S = k.shape[2]  # key positions

        if self._glass():
            scores = q @ k.transpose(-2, -1) / math.sqrt(c.d_head)  # [batch, head, query_pos, key_pos]
            # query i (at absolute position past + i) may look at keys 0 .. past + i
            if mask is None:
                mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=past)
            scores = self.hook_attn_scores(scores.masked_fill(~mask, float("-inf")))
            pattern = self.hook_pattern(scores.softmax(dim=-1))
            pattern = _dropout(pattern, self.dropout, self.training)
            z = pattern @ v  # [batch, head, pos, d_head]
        else:
            p = self.dropout if self.training else 0.0
            if mask is not None:  # per-row lengths
                z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            elif T == 1:  # one new query sees every stored key: no mask needed
                z = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
            elif past == 0:
                z = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
            else:
                mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=past)
                z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        z = self.hook_z(z.transpose(1, 2))  # [batch, pos, head, d_head]
        return self.out(z.reshape(B, T, c.d_model))


class MLP(nn.Module):
    """Two linear maps with a GELU between: d_model -> d_mlp -> d_model."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc_in = nn.Linear(cfg.d_model, cfg.d_mlp)
        self.fc_out = nn.Linear(cfg.d_mlp, cfg.d_model)
        self.hook_pre = Hook()  # [batch, pos, d_mlp]
        self.hook_post = Hook()  # [batch, pos, d_mlp]

    # TransformerLens's names and shapes for the two matrices (views of fc_in / fc_out):
    # the MLP computes gelu(x @ W_in + b_in) @ W_out + b_out.
    @property
    def W_in(self):  # [d_model, d_mlp]
        return self.fc_in.weight.T

    @property
    def b_in(self):  # [d_mlp]
        return self.fc_in.bias

    @property
    def W_out(self):  # [d_mlp, d_model]
        return self.fc_out.weight.T

    @property
    def b_out(self):  # [d_model]
        return self.fc_out.bias

    def forward(self, x):
        # GPT-2's GELU is the tanh approximation ("gelu_new" in Hugging Face)
        h = self.hook_post(F.gelu(self.hook_pre(self.fc_in(x)), approximate="tanh"))
        return self.fc_out(h)


class Block(nn.Module):
    """One transformer block: the residual stream reads, attends, thinks, and adds back."""

    def __init__(self, cfg: GPTConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.dropout = cfg.dropout
        self.ln1 = LayerNorm(cfg)
        self.attn = Attention(cfg)
        self.ln2 = LayerNorm(cfg)
        self.mlp = MLP(cfg)
        self.hook_resid_pre = Hook()  # [batch, pos, d_model]
        self.hook_attn_out = Hook()
        self.hook_resid_mid = Hook()
        self.hook_mlp_out = Hook()
        self.hook_resid_post = Hook()

    def forward(self, x, cache: KVCache | None = None):
        x = self.hook_resid_pre(x)
        attn_out = self.hook_attn_out(self.attn(self.ln1(x), cache, self.layer))
        x = self.hook_resid_mid(x + _dropout(attn_out, self.dropout, self.training))
        mlp_out = self.hook_mlp_out(self.mlp(self.ln2(x)))
        return self.hook_resid_post(x + _dropout(mlp_out, self.dropout, self.training))


class GPT(HookedRootModule):
    """A GPT whose every activation can be cached, read and changed by name.

    >>> model = GPT(GPTConfig(d_vocab=100, n_ctx=16, d_model=32, n_layers=2, n_heads=2))
    >>> logits = model(torch.tensor([[1, 2, 3]]))           # [batch, pos, d_vocab]
    >>> logits, cache = model.run_with_cache(torch.tensor([[1, 2, 3]]))
    >>> cache["blocks.0.attn.hook_pattern"].shape            # [batch, head, query, key]
    torch.Size([1, 2, 3, 3])
    """

    def __init__(self, cfg: GPTConfig, seed: int | None = None):
        super().__init__()
        self.cfg = cfg
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))  # token embedding
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))  # position embedding
        self.hook_embed = Hook()  # [batch, pos, d_model]
        self.hook_pos_embed = Hook()
        self.blocks = nn.ModuleList([Block(cfg, i) for i in range(cfg.n_layers)])
        self.ln_final = LayerNorm(cfg)
        self.init_weights(seed)
        self.setup()  # TransformerLens: index every HookPoint by its name

    @torch.no_grad()
    def init_weights(self, seed: int | None = None):
        """GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layers)."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith((".w",)):
                p.fill_(1.0)
            elif name.endswith((".b", ".bias")):
                p.zero_()
            else:
                s = std / math.sqrt(2 * self.cfg.n_layers) if name.endswith(("out.weight",)) else std
                p.copy_(torch.randn(p.shape, generator=gen) * s)

    @property
    def W_U(self):  # the unembedding is the token embedding, transposed: [d_model, d_vocab]
        return self.W_E.T

    def forward(self, tokens, cache: KVCache | None = None, *, stop_at_layer: int | None = None):
        """tokens [batch, pos] -> logits [batch, pos, d_vocab].

        With a `cache`, `tokens` are the next positions after those already cached.
        `stop_at_layer=i` returns the residual stream entering block i instead of logits.
        """
        B, T = tokens.shape
        start = cache.pos if cache is not None else 0  # an int, or [batch] lengths (a per-row cache)
        end = (int(start.max()) if B else 0) + T if isinstance(start, torch.Tensor) else start + T
        if end > self.cfg.n_ctx:
            raise UserError(
                f"{end} tokens do not fit the model's context of {self.cfg.n_ctx}; "
                "crop the input (llmcore.generate slides the window for you)"
            )
        if isinstance(start, torch.Tensor):  # each row at its own positions
            pos_embed = self.W_pos[start[:, None] + torch.arange(T, device=start.device)]  # [batch, pos, d_model]
        else:
            pos_embed = self.W_pos[start : start + T].expand(B, T, self.cfg.d_model)  # [batch, pos, d_model], as documented
        x = self.hook_embed(self.W_E[tokens]) + self.hook_pos_embed(pos_embed)
        x = _dropout(x, self.cfg.dropout, self.training)  # [batch, pos, d_model]
        if cache is not None and stop_at_layer is not None:
            raise UserError("stop_at_layer cannot be used with a KV cache (the later layers would miss this step)")
        for block in self.blocks if stop_at_layer is None else self.blocks[:stop_at_layer]:
            x = block(x, cache)
        if cache is not None:
            cache.pos += T
        if stop_at_layer is not None:
            return x
        return self.ln_final(x) @ self.W_E.T  # [batch, pos, d_vocab]

    def unembed(self, resid):
        """The last step on its own: residual stream -> logits (used by the logit lens)."""
        return self.ln_final(resid) @ self.W_E.T

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --- Sharing one model between threads (a hosted dashboard) ------------------------
    # Hooks live on the modules, so two users hooking one shared model at once would see
    # each other's hooks and activations. Every hooked use therefore holds the model's
    # lock for as long as its hooks are attached.

    @contextmanager
    def hooked(self, fwd_hooks=()):
        """Hold the model's lock and attach `fwd_hooks` [(hook name, fn)] for the block."""
        with model_lock(self):
            with self.hooks(fwd_hooks=list(fwd_hooks)):
                yield self

    def run_with_cache(self, *args, **kwargs):
        with model_lock(self):
            return super().run_with_cache(*args, **kwargs)

    def run_with_hooks(self, *args, **kwargs):
        with model_lock(self):
            return super().run_with_hooks(*args, **kwargs)


_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model) -> threading.RLock:
    """The re-entrant lock that serialises hooked runs of one model object."""
    with _LOCKS_GUARD:
        if model not in _LOCKS:
            _LOCKS[model] = threading.RLock()
        return _LOCKS[model]


def loss_fn(logits, targets):
    """Mean next-token cross-entropy in nats: logits [batch, pos, d_vocab], targets [batch, pos]."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


@torch.no_grad()
def text_loss(model, tok, text: str, max_tokens: int = 20_000) -> dict:
    """Loss of `model` on `text`: nats per token and bits per byte, over consecutive windows.

    `tok` is the model's tokenizer; at most `max_tokens` are read, each predicted once.
    """
    ids = torch.tensor(tok.encode(text)[:max_tokens], dtype=torch.long)
    n_ctx = model.cfg.n_ctx
    if len(ids) < 2:
        raise UserError("the text is too short to measure a loss (it needs at least two tokens)")
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, n_ctx):  # non-overlapping windows, every token predicted once
        x, y = ids[start : start + n_ctx], ids[start + 1 : start + 1 + n_ctx]
        x = x[: len(y)]
        logits = model(x[None])
        total += float(F.cross_entropy(logits[0], y, reduction="sum"))
        count += len(y)
    loss = total / count
    n_bytes = len(tok.decode(ids[1 : count + 1].tolist()).encode("utf-8"))
    return {"loss": loss, "bpb": total / math.log(2) / max(1, n_bytes), "tokens": count}
