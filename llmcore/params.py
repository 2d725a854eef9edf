"""The parameter file: every number the model learned, in one safetensors file.

A trained model *is* this file. Its layout (safetensors, by Hugging Face) is simple
enough to read by hand:

    [8 bytes: header length N][N bytes: JSON header][raw numbers, tensor after tensor]

The JSON header names each tensor with its dtype, shape and byte range, and carries
our metadata: the format version, the model config, the tokenizer kind and where
the weights came from. So the file's size is an identity a learner can check:

    bytes on disk = 8 + header + sum over tensors of (numbers x bytes per number)

which for a file in one dtype is `bytes per parameter x parameters + header`
(4 for fp32, 2 for bf16/fp16, 1 for int8 plus a little for its scales).

Nothing here unpickles: a parameter file can come from a stranger, and safetensors
holds only numbers. Every way a file can be wrong (not safetensors, truncated,
lying header, wrong shapes, NaN) ends in a one-line `UserError`.
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path

import torch

from llmcore.errors import UserError
from llmcore.files import atomic_write

FORMAT = "llmcore"
FORMAT_VERSION = 1
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.int8}
MAX_HEADER_BYTES = 8 * 2**20  # GPT-2 XL's header is ~60 KB (safetensors itself allows 100 MB)
_ST_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
SCALE_SUFFIX = ".scale"  # int8 files keep one fp32 scale per output row beside each matrix


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row symmetric int8: w ~ q * scale, q in [-127, 127], one scale per output row.

    [[0.25, -1.0], [0.04, 0.01]] -> q [[32, -127], [127, 32]], scale [1/127, 0.04/127]
    """
    scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0  # [rows, 1]
    q = torch.round(w / scale).clamp(-127, 127).to(torch.int8)
    return q, scale.squeeze(1).float()


def save_sorted(tensors: dict, path, metadata: dict) -> None:
    """safetensors' save_file, then the header's keys put in sorted order: same tensors, same bytes.

    The safetensors library keeps metadata in a hash map, so its key order (and the
    file's hash, which the compressor and the SAE key on) changes from run to run.
    Re-writing the header in place with sorted keys, padded with spaces to the length
    the library chose, changes no offset: two identical trainings give identical files.
    """
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) <= n:  # always, in practice: the library writes compact JSON too
            f.seek(8)
            f.write(text + b" " * (n - len(text)))


def save_params(model, path, *, dtype: str = "fp32", tokenizer_kind: str = "", provenance: dict | None = None):
    """Write `model`'s parameters to `path` (atomically) in one of fp32/bf16/fp16/int8."""
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
    tensors = {}
    for name, p in model.state_dict().items():
        p = p.detach().float().cpu()
        if dtype == "int8" and p.ndim == 2:
            tensors[name], tensors[name + SCALE_SUFFIX] = quantize_int8(p)
        elif dtype == "int8":
            tensors[name] = p.contiguous()  # vectors (biases, norms) stay fp32: tiny and sensitive
        else:
            tensors[name] = p.to(DTYPES[dtype]).contiguous()
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "dtype": dtype,
        "config": json.dumps(model.cfg.to_dict()),
        "tokenizer_kind": tokenizer_kind,
        "provenance": json.dumps(provenance or {}),
    }
    atomic_write(Path(path), lambda tmp: save_sorted(tensors, tmp, metadata))


MAX_TENSORS = 4096  # GPT-2 XL has 580 tensors; a checkpoint holds 3 per parameter tensor
MAX_JSON_DEPTH = 16  # a safetensors header is an object of objects of lists: depth 3
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.]{1,200}")  # tensor names: "blocks.0.attn.qkv.weight", "rng.torch"


def json_depth(raw: bytes) -> int:
    """How deeply brackets nest in JSON text, counted without parsing it (strings skipped).

    b'{"a": [[1], "]]"]}' -> 3. A header nested 100,000 deep is refused before json.loads
    (whose recursion it would exhaust) ever sees it.
    """
    import numpy as np

    bare = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", raw)  # drop strings: brackets inside them do not count
    b = np.frombuffer(bare, dtype=np.uint8)
    step = np.isin(b, (ord("["), ord("{"))).astype(np.int64) - np.isin(b, (ord("]"), ord("}")))
    return int(np.cumsum(step).max(initial=0))


def read_header(path) -> tuple[dict, dict, int]:
    """Read and check a safetensors header without loading any numbers.

    Returns (tensor entries, metadata, header length). Catches the hostile cases
    before any library sees them: a FIFO or device, too short, header length beyond
    the file, not JSON, nested too deep, not an object, too many tensors, odd names,
    metadata that is not text, tensors claiming bytes the file does not have, tensors
    that overlap or leave bytes unaccounted for (junk appended).
    """
    from llmcore.files import open_input

    path = Path(path)
    f, st = open_input(path, "parameter file")
    size = st.st_size
    with f:
        head = f.read(8)
        if len(head) < 8:
            raise UserError(f"{path}: {size} bytes is too short to be a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if MAX_HEADER_BYTES < n <= size - 8:
            raise UserError(f"{path}: its header is {n:,} bytes, over the limit of {MAX_HEADER_BYTES:,}; "
                            "not a parameter file llmcore reads")
        if n > size - 8:
            raise UserError(
                f"{path}: not a safetensors file (its first 8 bytes claim a {n:,}-byte header "
                f"in a {size:,}-byte file); llmcore loads only safetensors, never pickle"
            )
        raw = f.read(n)
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise UserError(f"{path}: header JSON is nested more than {MAX_JSON_DEPTH} deep; not a safetensors file")
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):  # bad UTF-8 or JSON, a 5000-digit number
        raise UserError(f"{path}: header is not valid JSON; the file is corrupt or not safetensors") from None
    if not isinstance(header, dict):
        raise UserError(f"{path}: header is not a JSON object; not a safetensors file")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise UserError(f"{path}: header metadata is not an object of text values; not a safetensors file")
    if len(header) > MAX_TENSORS:
        raise UserError(f"{path}: header lists {len(header):,} tensors, more than the limit of {MAX_TENSORS:,}")
    data_bytes = size - 8 - n
    spans = []
    for name, entry in header.items():
        if not _NAME_CHARS.fullmatch(name):
            raise UserError(f"{path}: tensor name {name!r:.60} is not a plain name (letters, digits, _ and .)")
        try:
            if set(entry) - {"dtype", "shape", "data_offsets"}:
                raise KeyError
            start, end = entry["data_offsets"]
            numel = 1
            for s in [start, end, *entry["shape"]]:  # whole numbers only: no text, floats or bools
                if type(s) is not int or s < 0:
                    raise TypeError
            for s in entry["shape"]:
                numel *= s
            want = numel * _ST_DTYPE_BYTES[entry["dtype"]]
        except (TypeError, KeyError, ValueError, AttributeError):
            raise UserError(f"{path}: header entry {name!r:.60} is malformed") from None
        if not (0 <= start <= end <= data_bytes) or end - start != want:
            raise UserError(
                f"{path}: tensor {name!r} claims bytes {start}..{end} ({want:,} needed) but the file "
                f"holds {data_bytes:,} data bytes; the file is truncated or its header lies"
            )
        spans.append((start, end))
    # The tensors tile the data exactly, as safetensors writes them: no overlap, no gap, no junk after.
    covered = 0
    for start, end in sorted(spans):
        if start != covered:
            raise UserError(f"{path}: tensors overlap or leave a gap at byte {covered:,}; the header lies")
        covered = end
    if covered != data_bytes:
        raise UserError(f"{path}: {data_bytes - covered:,} bytes after the last tensor; the file has junk appended")
    return header, metadata, n


def load_params(path) -> tuple[object, dict, dict]:
    """Load a parameter file -> (GPTConfig, fp32 state dict, metadata). Executes nothing.

    Everything is checked against the header before a tensor is read: the config
    (known keys only, within the model limits, no more parameters than the file has
    bytes), and the tensor names (exactly the model's, plus int8 scales) and shapes.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from llmcore.model import GPTConfig, param_shapes

    path = Path(path)
    header, meta, header_bytes = read_header(path)
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}: a safetensors file, but not an llmcore parameter file (no llmcore metadata)")
    try:
        version = int(meta.get("format_version", "0"))
    except (ValueError, TypeError):
        version = -1
    if not 1 <= version <= FORMAT_VERSION:
        raise UserError(f"{path}: format version {meta.get('format_version')!r} is not one this llmcore reads")
    try:
        cfg_dict, provenance = json.loads(meta.get("config", "")), json.loads(meta.get("provenance") or "{}")
    except (ValueError, TypeError, RecursionError):  # not JSON, or not text at all
        raise UserError(f"{path}: the config or provenance in the header is not valid JSON text") from None
    if not isinstance(cfg_dict, dict) or not isinstance(provenance, dict):
        raise UserError(f"{path}: the config and provenance in the header must be JSON objects")
    unknown = sorted(set(cfg_dict) - set(GPTConfig.__dataclass_fields__))
    if unknown:
        raise UserError(f"{path}: the model config has an unknown key {unknown[0]!r:.60}; not a file this llmcore wrote")
    try:
        cfg = GPTConfig.from_dict(cfg_dict)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    meta = {**meta, "config": cfg.to_dict(), "provenance": provenance}
    # Every parameter takes at least one byte (int8), so a config bigger than the file is a lie;
    # refuse it before building a model of that size.
    data_bytes = path.stat().st_size - 8 - header_bytes
    if cfg.n_params() > data_bytes:
        raise UserError(
            f"{path}: the config describes {cfg.n_params():,} parameters but the file holds only "
            f"{data_bytes:,} bytes of numbers; the header lies"
        )
    # The tensors the config needs, by name and shape, before any is read.
    expected = param_shapes(cfg)
    for name in header:
        base = name.removesuffix(SCALE_SUFFIX)
        if base not in expected:
            raise UserError(f"{path}: tensor {name!r:.60} is not part of this model; the file does not match its config")
    try:
        raw = load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise UserError(f"{path}: cannot read tensors ({str(e).splitlines()[0]})") from None

    # Rebuild fp32 tensors (int8 matrices: q * scale per row) and check them against the config.
    state = {}
    for name, shape in expected.items():
        if name not in raw:
            raise UserError(f"{path}: tensor {name!r} is missing; the file does not match its config")
        t = raw[name]
        if t.dtype == torch.int8:
            scale = raw.get(name + SCALE_SUFFIX)
            if scale is None or t.ndim != 2 or scale.shape != (t.shape[0],):
                raise UserError(f"{path}: int8 tensor {name!r} has no valid per-row scale")
            t = t.float() * scale.float()[:, None]
        if not t.is_floating_point():
            raise UserError(f"{path}: tensor {name!r} holds {t.dtype} numbers, not weights (float or int8 + scale)")
        t = t.float()
        if tuple(t.shape) != shape:
            raise UserError(f"{path}: tensor {name!r} has shape {tuple(t.shape)}, the config needs {shape}")
        if not torch.isfinite(t).all():
            raise UserError(f"{path}: tensor {name!r} contains NaN or infinite values; the weights are broken")
        state[name] = t
    return cfg, state, meta


def load_model(path):
    """A ready GPT (eval mode) from a parameter file, plus its metadata."""
    from llmcore.model import GPT

    cfg, state, meta = load_params(path)
    model = GPT(cfg)
    model.load_state_dict(state)
    return model.eval(), meta


def inspect_file(path, *, n_values: int = 8, bins: int = 40) -> dict:
    """Everything a learner wants to know about a parameter file, as JSON-able data.

    The size identity is exact: bytes_on_disk == 8 + header_bytes + data_bytes, and
    data_bytes == sum(numel x bytes per number) over the tensors.
    """
    import numpy as np

    path = Path(path)
    cfg, state, meta = load_params(path)
    header, _, header_bytes = read_header(path)
    tensors, data_bytes = [], 0
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        numel = int(np.prod(e["shape"])) if e["shape"] else 1
        nbytes = e["data_offsets"][1] - e["data_offsets"][0]
        data_bytes += nbytes
        tensors.append({"name": name, "dtype": e["dtype"], "shape": e["shape"], "numel": numel, "bytes": nbytes})
    n_params = sum(t.numel() for t in state.values())
    all_values = torch.cat([t.flatten() for t in state.values()]).numpy()
    counts, edges = np.histogram(all_values, bins=bins)
    first_name = next(t["name"].removesuffix(SCALE_SUFFIX) for t in tensors if t["name"].removesuffix(SCALE_SUFFIX) in state)
    first = state[first_name].flatten()[:n_values]
    bytes_on_disk = path.stat().st_size
    return {
        "file": str(path),
        "dtype": meta.get("dtype"),
        "n_params": n_params,
        "bytes_on_disk": bytes_on_disk,
        "header_bytes": 8 + header_bytes,
        "data_bytes": data_bytes,
        "bytes_per_param": data_bytes / n_params,
        "identity": f"{bytes_on_disk:,} = 8 + {header_bytes:,} (header) + {data_bytes:,} (numbers)",
        "identity_holds": bytes_on_disk == 8 + header_bytes + data_bytes,
        "config": meta["config"],
        "tokenizer_kind": meta.get("tokenizer_kind"),
        "provenance": meta["provenance"],
        "format_version": int(meta["format_version"]),
        "first_values": {"tensor": first_name, "values": [float(v) for v in first]},
        "histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
        "tensors": tensors,
    }


def compare_dtypes(run, text: str, folder, dtypes=("fp32", "bf16", "fp16", "int8")) -> list[dict]:
    """Save `run`'s model in each dtype, reload it, and measure file size and loss on `text`.

    What each saving in bytes costs in quality: the rows behind "fp32 vs bf16 vs int8".
    """
    from llmcore.model import text_loss

    rows = []
    for dtype in dtypes:
        path = Path(folder) / f"model-{dtype}.safetensors"
        save_params(run.model, path, dtype=dtype, tokenizer_kind=run.tokenizer.kind)
        model, _ = load_model(path)
        rows.append({"dtype": dtype, "bytes": path.stat().st_size, **text_loss(model, run.tokenizer, text)})
    return rows


def dtype_differences(run, text: str, folder, dtypes=("fp32", "bf16", "fp16", "int8")) -> list[dict]:
    """`compare_dtypes`'s rows plus each format's change in quality against fp32, with its uncertainty.

    Saves and reloads the model in each format (as `llmcore.params.compare_dtypes`), scores
    every token of `text` with each, and compares them token by token with the first format:
    delta_bpb = the mean change in bits per byte, delta_se its standard error over tokens.
    A change smaller than about two standard errors is noise of this text, not a better model.
    Each row: {"dtype", "bytes", "loss", "bpb", "tokens", "delta_bpb", "delta_se"}.
    """
    ids = torch.tensor(run.tokenizer.encode(text), dtype=torch.long)
    if len(ids) < 2:
        raise UserError("the text is too short to compare formats (it needs at least two tokens)")
    n_ctx = run.model.cfg.n_ctx
    rows, base = [], None
    for dtype in dtypes:
        path = Path(folder) / f"model-{dtype}.safetensors"
        save_params(run.model, path, dtype=dtype, tokenizer_kind=run.tokenizer.kind)
        model, _ = load_model(path)
        nll = []  # [n_tokens]: nats to predict each token, non-overlapping windows
        with torch.no_grad():
            for at in range(0, len(ids) - 1, n_ctx):
                x, y = ids[at : at + n_ctx], ids[at + 1 : at + 1 + n_ctx]
                logits = model(x[: len(y)][None])[0]  # [pos, d_vocab]
                nll.append(torch.nn.functional.cross_entropy(logits.float(), y, reduction="none"))
        nll = torch.cat(nll).double()
        n_bytes = len(run.tokenizer.decode(ids[1 : len(nll) + 1].tolist()).encode("utf-8"))
        bits = 1 / math.log(2) / max(1, n_bytes)  # nats of the whole text -> bits per byte
        base = nll if base is None else base
        diff = nll - base  # [n_tokens], paired: the same tokens scored by both
        rows.append({"dtype": dtype, "bytes": path.stat().st_size, "loss": float(nll.mean()),
                     "bpb": float(nll.sum()) * bits, "tokens": len(nll), "delta_bpb": float(diff.sum()) * bits,
                     "delta_se": float(diff.std()) * math.sqrt(len(diff)) * bits if len(diff) > 1 else 0.0})
    return rows
