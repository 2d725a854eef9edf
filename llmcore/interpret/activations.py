"""Activations: what the model computes at one hook point, for a text or a whole corpus.

Every activation inside `llmcore.model.GPT` passes through a TransformerLens
`HookPoint` with a name such as `blocks.2.hook_resid_post` ([batch, pos, d_model]).
For one short text, `cache_text` is TransformerLens's `run_with_cache`: every hook's
activation, by name. For a corpus, caching everything would take gigabytes, so
`collect` keeps only the hook asked for, stops the forward pass after the block that
holds it, and copies float32 chunks out batch by batch:

    memory = n_tokens x d_model x 4 bytes   (e.g. 200,000 x 128 x 4 = 102 MB)

Interpretability also needs to know *which characters* each token covers, to compare
activations with the story world's labelled `Span`s: `token_offsets` gives every
token its character range in the text.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import torch

from llmcore.errors import UserError

log = logging.getLogger(__name__)


def check_hook(model, hook_name: str) -> str:
    """`hook_name` if the model has that hook point, else a UserError listing real ones."""
    if not isinstance(hook_name, str) or hook_name not in model.hook_dict:
        n = model.cfg.n_layers
        raise UserError(
            f"unknown hook {hook_name!r}; this model has e.g. blocks.0.hook_resid_post .. "
            f"blocks.{n - 1}.hook_resid_post, blocks.0.attn.hook_pattern, ln_final.hook_normalized"
        )
    return hook_name


def resid_hook(model, layer: int) -> str:
    """The residual stream after block `layer`: 'blocks.{layer}.hook_resid_post'."""
    n = model.cfg.n_layers
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n:
        raise UserError(f"layer must be a whole number from 0 to {n - 1} (the model has {n} blocks), got {layer!r}")
    return f"blocks.{layer}.hook_resid_post"


def hook_layer(hook_name: str) -> int | None:
    """The block a hook lives in ('blocks.2.attn.hook_z' -> 2); None for embed/ln_final hooks."""
    m = re.match(r"blocks\.(\d+)\.", hook_name)
    return int(m.group(1)) if m else None


def _stop_at(hook_name: str) -> int | None:
    """How many blocks the forward pass needs to reach `hook_name` (None = all, then ln_final)."""
    if hook_name in ("hook_embed", "hook_pos_embed"):
        return 0
    layer = hook_layer(hook_name)
    return None if layer is None else layer + 1


# ---------------------------------------------------------------------------
# Tokens and the characters they cover
# ---------------------------------------------------------------------------


@dataclass
class TokenizedText:
    """A text cut into tokens, with each token's character range [start, end)."""

    text: str
    ids: list[int]  # [n_tokens]
    starts: list[int]  # [n_tokens] first character of each token
    ends: list[int]  # [n_tokens] one past its last character


def token_offsets(tokenizer, text: str) -> TokenizedText:
    """Tokenize and find each token's characters: "Mia ran" -> ids, starts [0, 3], ends [3, 7].

    Byte-level BPE tokens are byte strings, so byte offsets are mapped back to
    characters (a token holding part of a multi-byte character covers that character).
    A character tokenizer has one token per character.
    """
    ids = tokenizer.encode(text)
    if not hasattr(tokenizer, "token_bytes"):  # one token per character
        return TokenizedText(text, ids, list(range(len(ids))), list(range(1, len(ids) + 1)))
    n_bytes = {i: len(tokenizer.token_bytes(i)) for i in set(ids)}
    byte_ends, pos = [], 0
    for i in ids:
        pos += n_bytes[i]
        byte_ends.append(pos)
    if text.isascii():  # one byte per character
        char_ends = byte_ends
    else:  # char_at[b] = index of the character that byte b belongs to (len = bytes + 1)
        char_at = [c for c, ch in enumerate(text) for _ in range(len(ch.encode("utf-8")))] + [len(text)]
        char_ends = [char_at[b - 1] + 1 if b else 0 for b in byte_ends]
    starts = [0] + char_ends[:-1]
    return TokenizedText(text, ids, starts, char_ends)


def windows(ids, n_ctx: int) -> torch.Tensor:
    """Cut a token stream into non-overlapping full windows: [n_windows, n_ctx] (the tail is dropped)."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    n = len(ids) // n_ctx
    if n == 0:
        raise UserError(f"the text has {len(ids)} tokens, fewer than one window of {n_ctx}; give more text")
    return ids[: n * n_ctx].view(n, n_ctx)


# ---------------------------------------------------------------------------
# Collecting one hook's activations
# ---------------------------------------------------------------------------


@torch.no_grad()
def collect(model, tokens: torch.Tensor, hook_name: str, *, batch_size: int = 32, positions=None) -> torch.Tensor:
    """Run `tokens` [n, pos] through the model in batches; keep only `hook_name`.

    Returns float32 [n, len(positions) or pos, *hook shape] on the CPU. `positions`
    (a slice or index list into dim 1, the position for every [batch, pos, ...] hook)
    keeps only some positions of each window, to bound memory.
    The forward pass stops after the block holding the hook: later blocks are not run.
    """
    check_hook(model, hook_name)
    if batch_size < 1:
        raise UserError(f"batch_size must be at least 1, got {batch_size}")
    device = next(model.parameters()).device
    stop = _stop_at(hook_name)
    keep = slice(None) if positions is None else positions
    chunks, store = [], {}

    def grab(act, hook):  # act: [batch, pos, ...]
        store["act"] = act[:, keep].detach().float().cpu()

    with model.hooked([(hook_name, grab)]):
        for i in range(0, len(tokens), batch_size):
            model(tokens[i : i + batch_size].to(device), stop_at_layer=stop)
            chunks.append(store.pop("act"))
    return torch.cat(chunks) if chunks else torch.empty(0)


@torch.no_grad()
def collect_stream(model, ids, hook_name: str, *, context: int | None = None, batch_size: int = 32) -> torch.Tensor:
    """Activations for *every* token of a long token stream: [n_tokens, *hook shape].

    Windows of n_ctx tokens overlap by `context` (default n_ctx // 2): each token's
    activation comes from a window where it has at least `context` tokens before it
    (except the stream's first tokens), so no token is judged without its sentence.
    """
    n_ctx = model.cfg.n_ctx
    context = n_ctx // 2 if context is None else context
    if not 0 <= context < n_ctx:
        raise UserError(f"context must be in [0, {n_ctx}), got {context}")
    ids = torch.as_tensor(ids, dtype=torch.long)
    if len(ids) <= n_ctx:  # fits in one window
        return collect(model, ids[None], hook_name)[0]
    step = n_ctx - context
    starts = list(range(0, len(ids) - n_ctx + 1, step))
    if starts[-1] + n_ctx < len(ids):
        starts.append(len(ids) - n_ctx)  # a last window flush with the end
    acts = collect(model, torch.stack([ids[s : s + n_ctx] for s in starts]), hook_name, batch_size=batch_size)
    out = torch.empty(len(ids), *acts.shape[2:])  # [n_tokens, ...]
    out[:n_ctx] = acts[0]
    for w, s in enumerate(starts[1:], 1):  # later windows fill in the positions they add
        new_from = max(s + context, starts[w - 1] + n_ctx)  # first token not yet written
        out[new_from : s + n_ctx] = acts[w, new_from - s :]
    return out


def cache_text(model, tokenizer, text: str, names=None):
    """One text through `run_with_cache`: (pieces [(text, id)], logits [pos, d_vocab], cache).

    `names`: hook names to keep (default all). The cache's tensors have the batch
    dimension removed: cache["blocks.0.attn.hook_pattern"] is [head, query, key].
    """
    if not isinstance(text, str) or not text:
        raise UserError("give some text to look at (an empty string has no tokens)")
    ids = tokenizer.encode(text)
    n_ctx = model.cfg.n_ctx
    if len(ids) > n_ctx:
        log.info("text is %d tokens; looking at its last %d (the model's context)", len(ids), n_ctx)
        ids = ids[-n_ctx:]
    if names is not None:
        names = [check_hook(model, n) for n in ([names] if isinstance(names, str) else names)]
    device = next(model.parameters()).device  # run_with_cache holds the model's lock itself
    logits, cache = model.run_with_cache(torch.tensor([ids], device=device), names_filter=names, remove_batch_dim=True)
    pieces = [(tokenizer.token_str(i), i) for i in ids]
    return pieces, logits[0], cache
