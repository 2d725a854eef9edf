"""Export to and import from a Hugging Face GPT-2 folder, with identical logits.

llmcore's GPT is GPT-2's architecture, so the only differences are names and one
transpose. This is the one place that maps TransformerLens-style names to GPT-2's:

    llmcore                      Hugging Face GPT2LMHeadModel
    W_E                          transformer.wte.weight        (also lm_head, tied)
    W_pos                        transformer.wpe.weight
    blocks.i.ln1.w / .b          transformer.h.i.ln_1.weight / .bias
    blocks.i.attn.qkv            transformer.h.i.attn.c_attn   (Conv1D: weight stored [in, out])
    blocks.i.attn.out            transformer.h.i.attn.c_proj
    blocks.i.ln2.w / .b          transformer.h.i.ln_2.weight / .bias
    blocks.i.mlp.fc_in           transformer.h.i.mlp.c_fc
    blocks.i.mlp.fc_out          transformer.h.i.mlp.c_proj
    ln_final.w / .b              transformer.ln_f.weight / .bias

Neither direction needs the `transformers` package: the folder is a config.json and
a model.safetensors (plus the tokenizer files), which `transformers` loads with
`AutoModelForCausalLM.from_pretrained(folder)`. Import reads safetensors only; a
folder with just `pytorch_model.bin` (a pickle) is refused.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llmcore.errors import UserError

if TYPE_CHECKING:
    from llmcore.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

_LINEAR = {"attn.qkv": "attn.c_attn", "attn.out": "attn.c_proj", "mlp.fc_in": "mlp.c_fc", "mlp.fc_out": "mlp.c_proj"}
_NORMS = {"ln1": "ln_1", "ln2": "ln_2"}


def to_hf_state(model) -> dict[str, torch.Tensor]:
    """llmcore state dict -> GPT-2 names (Conv1D weights transposed)."""
    hf = {"transformer.wte.weight": model.W_E, "transformer.wpe.weight": model.W_pos,
          "transformer.ln_f.weight": model.ln_final.w, "transformer.ln_f.bias": model.ln_final.b}
    for i, block in enumerate(model.blocks):
        pre = f"transformer.h.{i}."
        for ours, theirs in _NORMS.items():
            norm = getattr(block, ours)
            hf[pre + theirs + ".weight"], hf[pre + theirs + ".bias"] = norm.w, norm.b
        for ours, theirs in _LINEAR.items():
            lin = block.get_submodule(ours)
            hf[pre + theirs + ".weight"] = lin.weight.T  # nn.Linear [out, in] -> Conv1D [in, out]
            hf[pre + theirs + ".bias"] = lin.bias
    return {k: v.detach().float().contiguous().clone() for k, v in hf.items()}


def hf_config(cfg) -> dict:
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.d_vocab,
        "n_positions": cfg.n_ctx,
        "n_ctx": cfg.n_ctx,
        "n_embd": cfg.d_model,
        "n_layer": cfg.n_layers,
        "n_head": cfg.n_heads,
        "n_inner": cfg.d_mlp,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": cfg.ln_eps,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "tie_word_embeddings": True,
        "scale_attn_weights": True,
        "torch_dtype": "float32",
    }


HF_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def export_hf(run, out_dir) -> Path:
    """Write a Hugging Face GPT-2 folder for an opened run (`llmcore.run.load_run`).

    Everything is checked before the first byte is written: OUT may be new, empty, or an
    earlier export (its four files are replaced); never the run itself, a folder inside
    it, or any folder holding an llmcore run.
    """
    from safetensors.torch import save_file

    from llmcore.files import atomic_write, check_output_folder, check_output_path
    from llmcore.run import run_evidence

    out = check_output_folder(out_dir)
    src, dst = Path(run.path).resolve(), out.resolve()
    if dst == src or src in dst.parents:
        raise UserError(f"{out} is the run {run.path} itself or a folder inside it; export to a new folder")
    if out.is_dir():
        for name in HF_FILES:  # each must be absent or a regular file: no FIFO, device or symlink
            check_output_path(out / name)
    evidence = run_evidence(out)
    if evidence:
        raise UserError(f"{out} holds an llmcore run ({evidence}); export to a new folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "config.json", json.dumps(hf_config(run.model.cfg), indent=2))
    state = to_hf_state(run.model)
    atomic_write(out / "model.safetensors", lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    save_hf(run.tokenizer, out)
    return out


def import_hf(folder, out_dir) -> Path:
    """Read a Hugging Face GPT-2 folder (safetensors) and write an llmcore run directory."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from llmcore.files import check_output_folder
    from llmcore.model import GPT, GPTConfig
    from llmcore.params import read_header, save_params
    from llmcore.run import TOKENIZER_FILE, run_evidence

    folder, out = Path(folder), check_output_folder(out_dir)
    # The output is checked first, before anything is read or written: never the input folder,
    # never over another model (a Hugging Face folder or an llmcore run).
    if out.resolve() == folder.resolve():
        raise UserError(f"{out} is the folder being imported; import into a new folder")
    evidence = run_evidence(out) or next((n for n in HF_FILES if os.path.lexists(out / n)), None)
    if evidence:
        raise UserError(f"{out} already holds a model ({evidence}); import into a new folder")
    cfg_path, weights = folder / "config.json", folder / "model.safetensors"
    if not cfg_path.is_file():
        raise UserError(f"{folder}: no config.json; is this a Hugging Face model folder?")
    if not weights.is_file():
        hint = " (only pytorch_model.bin, a pickle: llmcore never loads pickles)" if (folder / "pytorch_model.bin").exists() else ""
        raise UserError(f"{folder}: no model.safetensors{hint}")
    try:
        c = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{cfg_path}: not valid JSON") from None
    if not isinstance(c, dict) or c.get("model_type") != "gpt2":
        raise UserError(f"{cfg_path}: model_type is {c.get('model_type') if isinstance(c, dict) else None!r}; only gpt2 is supported")
    if c.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise UserError(f"{cfg_path}: activation {c['activation_function']!r} is not GPT-2's gelu_new")
    # Variants whose maths differs from GPT-2's (and from ours) would import with wrong logits.
    if c.get("tie_word_embeddings", True) is not True or c.get("scale_attn_weights", True) is not True \
            or c.get("scale_attn_by_inverse_layer_idx", False) is not False:
        raise UserError(f"{cfg_path}: untied embeddings or non-standard attention scaling; only plain GPT-2 imports")
    try:
        cfg = GPTConfig(d_vocab=c["vocab_size"], n_ctx=c.get("n_positions", c.get("n_ctx", 1024)), d_model=c["n_embd"],
                        n_layers=c["n_layer"], n_heads=c["n_head"], d_mlp=c.get("n_inner") or 0,
                        ln_eps=c.get("layer_norm_epsilon", 1e-5))
    except KeyError as e:
        raise UserError(f"{cfg_path}: missing {e.args[0]!r}; not a complete GPT-2 config") from None
    read_header(weights)
    try:
        hf = load_file(str(weights))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise UserError(f"{weights}: cannot read ({str(e).splitlines()[0]})") from None
    hf = {k if k.startswith(("transformer.", "lm_head.")) else "transformer." + k: v for k, v in hf.items()}

    model = GPT(cfg)
    want = to_hf_state(model)
    missing = [k for k in want if k not in hf]
    if missing:
        raise UserError(f"{weights}: missing {len(missing)} GPT-2 tensors, e.g. {missing[0]!r}")
    for k, v in want.items():
        if hf[k].shape != v.shape:
            raise UserError(f"{weights}: {k} has shape {tuple(hf[k].shape)}, config needs {tuple(v.shape)}")
    if "lm_head.weight" in hf and not torch.equal(hf["lm_head.weight"], hf["transformer.wte.weight"]):
        raise UserError(f"{weights}: lm_head differs from the token embedding; llmcore ties them, as GPT-2 does")
    # walk the same mapping backwards
    state = {}
    state["W_E"], state["W_pos"] = hf["transformer.wte.weight"], hf["transformer.wpe.weight"]
    state["ln_final.w"], state["ln_final.b"] = hf["transformer.ln_f.weight"], hf["transformer.ln_f.bias"]
    for i in range(cfg.n_layers):
        pre = f"transformer.h.{i}."
        for ours, theirs in _NORMS.items():
            state[f"blocks.{i}.{ours}.w"], state[f"blocks.{i}.{ours}.b"] = hf[pre + theirs + ".weight"], hf[pre + theirs + ".bias"]
        for ours, theirs in _LINEAR.items():
            state[f"blocks.{i}.{ours}.weight"] = hf[pre + theirs + ".weight"].T
            state[f"blocks.{i}.{ours}.bias"] = hf[pre + theirs + ".bias"]
    model.load_state_dict({k: v.float().contiguous() for k, v in state.items()})

    tok = load_hf(folder)
    if tok.vocab_size != cfg.d_vocab:
        raise UserError(f"{folder}: the tokenizer has {tok.vocab_size} tokens but the model {cfg.d_vocab}; they must match")
    out.mkdir(parents=True, exist_ok=True)
    tok.save(out / TOKENIZER_FILE)
    save_params(model, out / "model.safetensors", tokenizer_kind=tok.kind, provenance={"imported_from": str(folder)})
    return out


# ----------------------------------------------------------------------------
# Tokenizers: export to, and import from, Hugging Face transformers

HF_UNK_TOKEN = "<unk>"  # the char tokenizer's unknown token in an export: 5 chars, so never a real char


def save_hf(tok: Tokenizer, folder: str | os.PathLike) -> Path:
    """Write ``tokenizer.json`` + ``tokenizer_config.json`` for Hugging Face ``transformers``.

    Afterwards ``AutoTokenizer.from_pretrained(folder)`` encodes ordinary text to
    the same ids as ``tok`` (mapping: our BPE *is* a tokenizers JSON; our char
    tokenizer becomes a WordLevel model over single characters, split one
    character at a time, with unknown token "<unk>" at ``tok.unk_id``).
    """
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    from llmcore.files import atomic_write, check_output_folder
    from llmcore.tokenizer import FILE_NAME, UNK_STR, BPETokenizer, CharTokenizer

    folder = Path(folder)
    target = folder / FILE_NAME
    if target.is_file():
        try:
            existing = json.loads(target.read_text(encoding="utf-8"))
            ours = isinstance(existing, dict) and "kind" in existing
        except (OSError, ValueError, RecursionError, TypeError):
            ours = False
        if ours:
            raise UserError(f"{target} is an llmcore tokenizer (a run directory?); export to another folder")
    if isinstance(tok, BPETokenizer):
        text = tok._tk.to_str()
    elif isinstance(tok, CharTokenizer):
        vocab = {**tok.stoi, HF_UNK_TOKEN: tok.unk_id}
        hf = HFTokenizer(models.WordLevel(vocab, unk_token=HF_UNK_TOKEN))
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one piece per character
        # Decode: show "<unk>" as our visible unknown token, then join the pieces.
        hf.decoder = decoders.Sequence([decoders.Replace(HF_UNK_TOKEN, UNK_STR), decoders.Fuse()])
        text = hf.to_str()
    else:
        raise UserError(f"save_hf needs a CharTokenizer or BPETokenizer, not {type(tok).__name__}")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
    check_output_folder(folder).mkdir(parents=True, exist_ok=True)
    atomic_write(target, text)
    atomic_write(folder / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")
    logger.info("exported %s tokenizer to %s for Hugging Face transformers", tok.kind, folder)
    return folder


def load_hf(folder: str | os.PathLike) -> Tokenizer:
    """Read a Hugging Face ``tokenizer.json`` (a folder or the file) as an llmcore tokenizer.

    Supported: byte-level BPE (GPT-2 style, checked as in ``BPETokenizer``) and
    the char export of ``save_hf``. Anything else is a ``UserError``.
    """
    from llmcore.byte_level import model_type
    from llmcore.tokenizer import FILE_NAME, BPETokenizer, CharTokenizer, _read_json, load_tokenizer

    path = Path(folder)
    path = path / FILE_NAME if path.is_dir() else path
    data = _read_json(path)
    source = str(path)
    if isinstance(data, dict) and "kind" in data:  # an llmcore file, e.g. a run directory
        return load_tokenizer(data)
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise UserError(f"{source}: not a Hugging Face tokenizer.json (no 'model' object)")
    model_type = model_type(data["model"])
    if model_type == "BPE":
        return BPETokenizer(data, source=source)
    if model_type == "WordLevel":
        return CharTokenizer(_chars_from_word_level(data, source))
    raise UserError(
        f"{source}: model type {model_type!r:.40} is not supported; use byte-level BPE or an llmcore char export"
    )


def _chars_from_word_level(data: dict[str, Any], source: str) -> list[str]:
    # Accept exactly what save_hf writes for a CharTokenizer: chars at 0..n-1, "<unk>" at n.
    from llmcore.tokenizer import MAX_LOAD_VOCAB, _check_chars

    pre = data.get("pre_tokenizer")
    model = data["model"]
    vocab, unk = model.get("vocab"), model.get("unk_token")
    ok = (
        isinstance(pre, dict)
        and pre.get("type") == "Split"
        and pre.get("pattern") == {"Regex": r"[\s\S]"}
        and pre.get("behavior") == "Isolated"
        and not pre.get("invert")
        and data.get("normalizer") is None
        and not data.get("added_tokens")
        and isinstance(vocab, dict)
        and 1 < len(vocab) <= MAX_LOAD_VOCAB
        and isinstance(unk, str)
        and vocab.get(unk) == len(vocab) - 1
    )
    if not ok:
        raise UserError(f"{source}: a WordLevel tokenizer that is not an llmcore char export; not supported")
    chars = sorted((i, c) for c, i in vocab.items() if c != unk and type(i) is int)
    if [i for i, _ in chars] != list(range(len(vocab) - 1)):
        raise UserError(f"{source}: character ids must run 0..n-1 with the unknown token last")
    try:
        _check_chars([c for _, c in chars])
    except UserError as e:
        raise UserError(f"{source}: {e}") from None
    return [c for _, c in chars]
