"""One prompt through the model, step by step, with its real numbers (the Model stage).

A GPT turns a text into a guess for the next token in three acts:

1. **In**: the text becomes tokens, each token a row of `W_E` (its embedding), plus a
   row of `W_pos` for its position. Their sum is the *residual stream*: one vector of
   d_model numbers per token, the thread that runs through the whole model.
2. **Blocks**, n_layers times: attention lets every token read from earlier tokens
   (queries meet keys, a softmax makes the pattern, the pattern mixes values); then the
   MLP works on each token alone (expand to d_mlp, GELU, project back). Each adds its
   result back onto the residual stream.
3. **Out**: a last LayerNorm, then the unembedding (`W_E` again, transposed) gives one
   score, a *logit*, per vocabulary token; a softmax turns scores into probabilities.

`walk(model, tokenizer, prompt, layer=0, head=0)` runs the model once with
`run_with_cache` and returns a `Walk`: one `Step` per stage of that story, in order,
each holding the real tensor read from the model's hook points (one layer and one head
in full detail, the other blocks one step each), its axis names, the tensors of the
parameter file it used, and one plain sentence. The notebook (04_model) and the
dashboard's Model page draw it with `llmcore.viz.model`; nothing there recomputes it.

    >>> w = walk(run.model, run.tokenizer, "Mia went to the")
    >>> [s.key for s in w.steps][:4]
    ['tokens', 'embed', 'pos_embed', 'resid']
    >>> w.step("pattern").values.shape      # [query_pos, key_pos] for the chosen head
    torch.Size([5, 5])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from llmcore.errors import UserError

MAX_WALK_TOKENS = 32  # a [pos, pos] picture with more rows stops being readable
TOP_K = 10  # how many of the most likely next tokens a walk keeps by name


@dataclass
class Step:
    """One stage of the forward pass, with the real numbers it produced."""

    key: str  # a short id: "embed", "q", "pattern", "mlp_post", "probs", ...
    title: str  # what it is called on screen
    part: str  # the box of the architecture picture it belongs to ("embed", "block 0 attention", ...)
    values: torch.Tensor  # the tensor, for the one prompt: [pos, ...] (batch dimension dropped)
    axes: tuple[str, ...]  # a name per dimension, TransformerLens style: ("pos", "d_model")
    text: str  # one plain sentence: what these numbers are
    hook: str | None = None  # the hook point the values were read from (None: derived from hooks)
    params: tuple[str, ...] = ()  # tensors of the parameter file this step used

    @property
    def shape(self) -> str:
        """'[5 pos, 128 d_model]': the shape with the name of every axis."""
        return "[" + ", ".join(f"{n} {a}" for n, a in zip(self.values.shape, self.axes)) + "]"


@dataclass
class Walk:
    """The forward pass of one prompt: its tokens, every step, and the next-token guess."""

    prompt: str
    token_ids: list[int]
    pieces: list[str]  # each token's text
    layer: int  # the block shown in detail
    head: int  # the attention head shown in detail
    steps: list[Step]
    probs: torch.Tensor  # [d_vocab]: the probabilities for the token after the prompt
    top: list[tuple[int, str]]  # the TOP_K most likely next tokens, (id, text), most likely first
    cfg: object  # the model's GPTConfig
    param_counts: dict[str, int] = field(default_factory=dict)  # parameter tensor -> how many numbers
    added: dict[str, float] = field(default_factory=dict)  # part -> size (norm) of what it adds, last token

    def step(self, key: str) -> Step:
        """The step called `key` ('pattern', 'mlp_out', ...)."""
        for s in self.steps:
            if s.key == key:
                return s
        raise UserError(f"no step {key!r}; the steps are {', '.join(s.key for s in self.steps)}")

    @property
    def next_token(self) -> str:
        """The most likely next token, as text."""
        return self.top[0][1]

    def n_params(self, step: Step) -> int:
        """How many numbers of the parameter file a step used."""
        return sum(self.param_counts[p] for p in step.params)


def _check_index(name: str, value, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
        raise UserError(f"{name} must be a whole number from 0 to {limit - 1}, got {value!r}")
    return value


def encode_walk_prompt(tokenizer, prompt: str, n_ctx: int) -> list[int]:
    """The prompt's token ids, refused (one line) when empty or too long to draw."""
    if not isinstance(prompt, str):
        raise UserError(f"the prompt must be text, got {type(prompt).__name__}")
    if not prompt.strip():
        raise UserError("the prompt is empty: type a few words for the model to read")
    limit = min(MAX_WALK_TOKENS, n_ctx)
    if len(prompt) > 40 * limit:  # no tokenizer makes fewer than 1 token per 40 characters here
        raise UserError(f"the prompt has {len(prompt):,} characters; the walk-through shows at most "
                        f"{limit} tokens: shorten it to a sentence")
    ids = tokenizer.encode(prompt)
    if len(ids) > limit:
        raise UserError(f"the prompt is {len(ids)} tokens; the walk-through shows at most {limit}: shorten it")
    return ids


@torch.inference_mode()
def walk(model, tokenizer, prompt: str, *, layer: int = 0, head: int = 0) -> Walk:
    """Run `prompt` through `model` once and return every step with its real numbers.

    `layer` and `head` choose the block and the attention head shown in full; the
    other blocks appear as one step each (what they add to the residual stream).
    """
    c = model.cfg
    layer = _check_index("layer", layer, c.n_layers)
    head = _check_index("head", head, c.n_heads)
    ids = encode_walk_prompt(tokenizer, prompt, c.n_ctx)
    device = next(model.parameters()).device
    logits, cache = model.run_with_cache(torch.tensor([ids], device=device))
    T, n = len(ids), f"{len(ids)} tokens"

    def get(name):  # a cached activation for the one prompt, as float32 on the CPU
        return cache[name][0].detach().float().cpu()

    b = f"blocks.{layer}"
    attn, mlp = f"block {layer} attention", f"block {layer} MLP"
    steps = [
        Step("tokens", "Token ids", "tokens", torch.tensor(ids), ("pos",),
             f"The tokenizer cuts the text into {n}; the model only ever sees their ids."),
        Step("embed", "Token embeddings", "embed", get("hook_embed"), ("pos", "d_model"),
             f"Each token id picks its row of W_E: {c.d_model} numbers that training chose for that token.",
             "hook_embed", ("W_E",)),
        Step("pos_embed", "Position embeddings", "embed", get("hook_pos_embed"), ("pos", "d_model"),
             f"Each position 0 to {T - 1} picks its row of W_pos, so the model knows the order of the words.",
             "hook_pos_embed", ("W_pos",)),
        Step("resid", "The residual stream", "embed", get("blocks.0.hook_resid_pre"), ("pos", "d_model"),
             "Token + position: one vector per token. Every block reads this stream and adds to it.",
             "blocks.0.hook_resid_pre"),
    ]
    for i in range(c.n_layers):
        if i != layer:
            bi = f"blocks.{i}"
            steps.append(Step(
                f"block{i}", f"Block {i}", f"block {i}", get(f"{bi}.hook_resid_post"), ("pos", "d_model"),
                f"Block {i} does the same as the block shown in detail, with its own numbers, and adds its "
                "attention and MLP outputs to the stream.",
                f"{bi}.hook_resid_post", tuple(n for n in model.state_dict() if n.startswith(f"{bi}."))))
            continue
        q, k = get(f"{b}.attn.hook_q")[:, head], get(f"{b}.attn.hook_k")[:, head]  # [pos, d_head]
        dh = c.d_head
        steps += [
            Step("ln1", "LayerNorm", attn, get(f"{b}.ln1.hook_normalized"), ("pos", "d_model"),
                 "LayerNorm rescales each token's vector to mean 0 and spread 1 (then by ln1.w, ln1.b), "
                 "so no token shouts louder than another.",
                 f"{b}.ln1.hook_normalized", (f"{b}.ln1.w", f"{b}.ln1.b")),
            Step("q", f"Queries (head {head})", attn, q, ("pos", "d_head"),
                 f"Each token asks a question: its query, {dh} numbers (W_Q times the normalised vector).",
                 f"{b}.attn.hook_q", (f"{b}.attn.qkv.weight", f"{b}.attn.qkv.bias")),
            Step("k", f"Keys (head {head})", attn, k, ("pos", "d_head"),
                 f"Each token also offers a key, {dh} numbers saying what it can answer (W_K).",
                 f"{b}.attn.hook_k", (f"{b}.attn.qkv.weight", f"{b}.attn.qkv.bias")),
            Step("v", f"Values (head {head})", attn, get(f"{b}.attn.hook_v")[:, head], ("pos", "d_head"),
                 f"And a value, {dh} numbers: what it passes on to a token that reads it (W_V).",
                 f"{b}.attn.hook_v", (f"{b}.attn.qkv.weight", f"{b}.attn.qkv.bias")),
            Step("scores", f"Scores q\u00b7k/\u221a{dh} (head {head})", attn, q @ k.T / math.sqrt(dh),
                 ("query_pos", "key_pos"),
                 f"Every query meets every key: a dot product, divided by \u221a{dh} = {math.sqrt(dh):.2f} to "
                 "keep the numbers small. A high score means 'this token is what I am looking for'."),
            Step("masked", f"Causal mask (head {head})", attn, get(f"{b}.attn.hook_attn_scores")[head],
                 ("query_pos", "key_pos"),
                 "No token may read the future: scores above the diagonal become -\u221e, so they get "
                 "probability 0.", f"{b}.attn.hook_attn_scores"),
            Step("pattern", f"Attention pattern (head {head})", attn, get(f"{b}.attn.hook_pattern")[head],
                 ("query_pos", "key_pos"),
                 "A softmax along each row turns scores into weights that add up to 1: how much each token "
                 "reads from each earlier one.", f"{b}.attn.hook_pattern"),
            Step("z", f"Weighted sum of values (head {head})", attn, get(f"{b}.attn.hook_z")[:, head],
                 ("pos", "d_head"),
                 "Each token takes the values of the tokens it reads, mixed by those weights.",
                 f"{b}.attn.hook_z"),
            Step("attn_out", "Attention output", attn, get(f"{b}.hook_attn_out"), ("pos", "d_model"),
                 f"The {c.n_heads} heads' results side by side, projected back to {c.d_model} numbers (W_O).",
                 f"{b}.hook_attn_out", (f"{b}.attn.out.weight", f"{b}.attn.out.bias")),
            Step("resid_mid", "Added to the stream", attn, get(f"{b}.hook_resid_mid"), ("pos", "d_model"),
                 "The attention output is added to the residual stream: the stream now carries what "
                 "each token read from the others.", f"{b}.hook_resid_mid"),
            Step("ln2", "LayerNorm", mlp, get(f"{b}.ln2.hook_normalized"), ("pos", "d_model"),
                 "Another LayerNorm, before the MLP.",
                 f"{b}.ln2.hook_normalized", (f"{b}.ln2.w", f"{b}.ln2.b")),
            Step("mlp_pre", "MLP: expand", mlp, get(f"{b}.mlp.hook_pre"), ("pos", "d_mlp"),
                 f"The MLP widens each token's vector from {c.d_model} to {c.d_mlp} numbers (W_in), "
                 "each token on its own.",
                 f"{b}.mlp.hook_pre", (f"{b}.mlp.fc_in.weight", f"{b}.mlp.fc_in.bias")),
            Step("mlp_post", "MLP: GELU", mlp, get(f"{b}.mlp.hook_post"), ("pos", "d_mlp"),
                 "GELU keeps positive numbers and squashes negative ones towards 0: the bend that lets "
                 "the network compute more than sums.", f"{b}.mlp.hook_post"),
            Step("mlp_out", "MLP: project back", mlp, get(f"{b}.hook_mlp_out"), ("pos", "d_model"),
                 f"Back from {c.d_mlp} to {c.d_model} numbers (W_out).",
                 f"{b}.hook_mlp_out", (f"{b}.mlp.fc_out.weight", f"{b}.mlp.fc_out.bias")),
            Step("resid_post", f"Block {layer}'s result", mlp, get(f"{b}.hook_resid_post"), ("pos", "d_model"),
                 "The MLP output is added to the stream too. That is one whole block.",
                 f"{b}.hook_resid_post"),
        ]
    probs = logits[0, -1].float().softmax(-1).cpu()
    top = [(int(i), tokenizer.token_str(int(i))) for i in probs.topk(min(TOP_K, c.d_vocab)).indices]
    (best, next_token) = top[0]
    steps += [
        Step("ln_final", "Final LayerNorm", "unembed", get("ln_final.hook_normalized"), ("pos", "d_model"),
             "After the last block, one more LayerNorm.", "ln_final.hook_normalized",
             ("ln_final.w", "ln_final.b")),
        Step("logits", "Logits", "unembed", logits[0].detach().float().cpu(), ("pos", "d_vocab"),
             f"The unembedding (W_E turned around) scores every one of the {c.d_vocab:,} tokens of the "
             "vocabulary: one logit each, at every position. The last position's scores are the guess "
             "for the next token.", None, ("W_E",)),
        Step("probs", "Probabilities", "softmax", probs, ("d_vocab",),
             f"A softmax turns the last position's logits into probabilities that add up to 1. The most "
             f"likely next token: {next_token!r} ({probs[best]:.0%})."),
    ]
    counts = {name: p.numel() for name, p in model.state_dict().items()}
    # The residual stream as a thread: how big a vector each part adds to the last token's stream.
    added = {"embed": float(get("blocks.0.hook_resid_pre")[-1].norm())}
    for i in range(c.n_layers):
        added[f"block {i} attention"] = float(get(f"blocks.{i}.hook_attn_out")[-1].norm())
        added[f"block {i} MLP"] = float(get(f"blocks.{i}.hook_mlp_out")[-1].norm())
    pieces = [tokenizer.token_str(i) for i in ids]
    return Walk(prompt, ids, pieces, layer, head, steps, probs, top, c, counts, added)


def parts(cfg) -> list[str]:
    """The boxes of the architecture picture, in the order the numbers flow through them."""
    blocks = [p for i in range(cfg.n_layers) for p in (f"block {i} attention", f"block {i} MLP")]
    return ["tokens", "embed", *blocks, "unembed", "softmax"]
