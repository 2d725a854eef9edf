"""Two first looks inside: attention patterns and the logit lens.

Attention. In every block each head decides, for every token (the query), how much
to read from each earlier token (the keys). That decision is the pattern
`blocks.{i}.attn.hook_pattern`: [head, query_pos, key_pos], each row a probability
distribution over the tokens so far (the upper triangle is 0: no peeking ahead).

Logit lens (nostalgebraist, 2020). The residual stream is one vector per token that
every block adds to; only at the end does `unembed` (ln_final, then W_U) turn it into
next-token logits. Nothing stops us from unembedding it *early*: apply the same last
step to the residual stream after block 0, 1, ... and read off what the model would
predict if it stopped there. Early layers often guess the obvious; later layers
settle on the answer. The last row equals the model's real prediction exactly.

    stage:  embed  -> after block 0 -> ... -> after block n-1 (= the model's output)
    resid:  blocks.0.hook_resid_pre, blocks.{i}.hook_resid_post     [pos, d_model]
    logits: model.unembed(resid)                                      [pos, d_vocab]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmcore.errors import UserError
from llmcore.interpret.activations import cache_text


@dataclass
class Attention:
    """Attention patterns of one text: patterns[layer, head, query, key]."""

    pieces: list[tuple[str, int]]  # [pos] (token text, id)
    patterns: torch.Tensor  # [n_layers, n_heads, pos, pos], rows sum to 1

    def head(self, layer: int, head: int) -> torch.Tensor:
        """One head's pattern, [query, key]; a UserError if the layer or head does not exist."""
        n_layers, n_heads = self.patterns.shape[:2]
        if not (isinstance(layer, int) and 0 <= layer < n_layers and isinstance(head, int) and 0 <= head < n_heads):
            raise UserError(f"layer must be 0..{n_layers - 1} and head 0..{n_heads - 1}, got layer={layer!r} head={head!r}")
        return self.patterns[layer, head]


@torch.no_grad()
def attention_patterns(model, tokenizer, text: str) -> Attention:
    """Every layer's and head's attention pattern for `text` (its last n_ctx tokens)."""
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(model.cfg.n_layers)]
    pieces, _, cache = cache_text(model, tokenizer, text, names)
    patterns = torch.stack([cache[n] for n in names]).float().cpu()  # [n_layers, n_heads, pos, pos]
    return Attention(pieces, patterns)


@dataclass
class LogitLens:
    """What the model would predict after each stage, at every position."""

    pieces: list[tuple[str, int]]  # [pos] the input tokens
    stages: list[str]  # [n_stages] "embed", "block 0", ..., "block n-1"
    logits: torch.Tensor  # [n_stages, pos, d_vocab]
    top_ids: torch.Tensor  # [n_stages, pos, k] the k likeliest next tokens
    top_probs: torch.Tensor  # [n_stages, pos, k] their probabilities
    top_strs: list[list[list[str]]]  # [n_stages][pos][k] those tokens as text
    next_probs: torch.Tensor  # [n_stages, pos - 1] probability given to the token that really came next

    def at(self, position: int = -1) -> list[dict]:
        """One position's story, stage by stage: [{"stage", "top": [(token, prob), ...]}, ...]."""
        n = len(self.pieces)
        if not isinstance(position, int) or not -n <= position < n:
            raise UserError(f"position must be between {-n} and {n - 1} (the text has {n} tokens), got {position!r}")
        return [
            {"stage": s, "top": [(t, round(float(p), 4)) for t, p in zip(self.top_strs[i][position], self.top_probs[i, position])]}
            for i, s in enumerate(self.stages)
        ]


@torch.no_grad()
def logit_lens(model, tokenizer, text: str, k: int = 5) -> LogitLens:
    """Unembed the residual stream after every block (and the embedding) of `text`."""
    n = model.cfg.n_layers
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(n)]
    pieces, _, cache = cache_text(model, tokenizer, text, names)
    resid = torch.stack([cache[name] for name in names])  # [n_stages, pos, d_model]
    logits = model.unembed(resid).float().cpu()  # [n_stages, pos, d_vocab]
    probs = logits.softmax(-1)
    k = max(1, min(int(k), logits.shape[-1]))
    top = probs.topk(k, dim=-1)  # values, indices: [n_stages, pos, k]
    ids = torch.tensor([i for _, i in pieces])
    next_probs = probs[:, :-1].gather(-1, ids[1:].expand(len(names), -1)[..., None])[..., 0]  # [n_stages, pos - 1]
    strs = [[[tokenizer.token_str(int(t)) for t in row] for row in stage] for stage in top.indices]
    stages = ["embed"] + [f"block {i}" for i in range(n)]
    return LogitLens(pieces, stages, logits, top.indices, top.values, strs, next_probs)
