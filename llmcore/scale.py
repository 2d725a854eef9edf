"""The arithmetic of scale: from our toy GPT to Llama-2-70B, computed and checked.

The explainer (Karpathy, "Intro to Large Language Models", 2023) says Llama 2 70B
was trained on "a chunk of the internet, say 10TB of data; 6,000 GPUs for 12
days, about $2M", that the result is "a ~140GB file", and that a 70B model runs
about 10x slower than a 7B one. Each of those is a few lines of arithmetic:

    file size      = n_params x bytes per parameter          70e9 x 2 B = 140 GB
    training FLOPs = 6 x n_params x n_tokens                 (Kaplan et al. 2020)
    GPU-hours      = FLOPs / (peak FLOP/s x MFU x 3600)
    days           = GPU-hours / n_gpus / 24
    cost           = GPU-hours x price per GPU-hour
    decode tok/s  <= memory bandwidth / bytes of weights read per token

This module computes them for real model shapes (`PRESETS`) on real accelerators
(`ACCELERATORS`, plus this machine, measured), and `llama2_70b_check` holds the
explainer's numbers against the Llama 2 paper. Pure Python: no torch; numpy is
imported only to measure this machine.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, fields

from llmcore.errors import UserError

log = logging.getLogger(__name__)

# Where every number below comes from, with the numbers themselves.
SOURCES = {
    "explainer": "Karpathy 2023, 'Intro to Large Language Models' (talk): Llama 2 70B is "
    "'a ~140GB file'; trained on 'a chunk of the internet, ~10TB of text', "
    "'~6,000 GPUs for 12 days, ~$2M'; a 70B model runs ~10x slower than a 7B one.",
    "llama2": "Touvron et al. 2023, 'Llama 2: Open Foundation and Fine-Tuned Chat Models', "
    "arXiv:2307.09288, section 2.2 and Table 2: 2.0T pre-training tokens; A100-80GB "
    "GPU-hours 7B 184,320, 13B 368,640, 34B 1,038,336, 70B 1,720,320 (total 3,311,616) "
    "at 350-400 W per GPU. Models named 7B/13B/70B; their exact parameter counts from the "
    "released shapes are 6,738,415,616 / 13,015,864,320 / 68,976,648,192.",
    "llama2_shapes": "Llama-2-{7b,13b,70b}-hf config.json: hidden_size 4096/5120/8192, "
    "num_hidden_layers 32/40/80, num_attention_heads 32/40/64, num_key_value_heads "
    "32/40/8, intermediate_size 11008/13824/28672, vocab_size 32000, max_position 4096.",
    "kaplan": "Kaplan et al. 2020, 'Scaling Laws for Neural Language Models', "
    "arXiv:2001.08361, section 2.1: training compute C = 6 N D "
    "(forward pass 2N FLOPs per token, backward pass 4N).",
    "gpt3": "Brown et al. 2020, 'Language Models are Few-Shot Learners', arXiv:2005.14165, "
    "Table 2.1: 175.0B parameters, n_layers 96, d_model 12288, n_heads 96, n_ctx 2048; "
    "trained on 300B tokens.",
    "gpt2": "Radford et al. 2019, 'Language Models are Unsupervised Multitask Learners'; "
    "Hugging Face gpt2 config.json: n_layer 12, n_embd 768, n_head 12, vocab_size 50257, "
    "n_ctx 1024 (124,439,808 parameters; the paper's table says 117M).",
    "a100": "NVIDIA A100 Tensor Core GPU datasheet: BF16 Tensor Core 312 TFLOP/s dense "
    "(624 with sparsity); A100 80GB SXM: 80 GB HBM2e at 2,039 GB/s.",
    "h100": "NVIDIA H100 Tensor Core GPU datasheet: H100 SXM BF16 Tensor Core 989 TFLOP/s "
    "dense (1,979 with sparsity); 80 GB HBM3 at 3.35 TB/s.",
    "mfu": "Model FLOPs utilisation. Meta did not publish Llama 2's; 6ND over the paper's "
    "GPU-hours implies 0.43 on A100. Meta reports 38-43% BF16 MFU for Llama 3 405B on "
    "H100 (Dubey et al. 2024, 'The Llama 3 Herd of Models', Table 4).",
    "price": "An assumption, not a quote: 2023 cloud A100-80GB prices ran from about "
    "$1/GPU-hour (reserved, smaller clouds) to $4 (on-demand, large clouds). $1.15 is "
    "the low end a buyer of 1.7M GPU-hours would get; the paper's hours at $2M imply $1.16.",
    "bytes_per_token": "An approximation: English BPE text runs about 4 characters per "
    "token (OpenAI, 'What are tokens and how to count them'). LLaMA 1 (Touvron et al. "
    "2023, Table 1) lists 4.75 TB on disk for ~1.26T unique tokens of its 1.4T: 3.8 B/token. "
    "Pass your own tokenizer's measured bytes/token instead.",
    "run_c": "Karpathy 2023, 'Intro to Large Language Models' (talk): a model is two files, the "
    "parameters (140GB for Llama 2 70B) and run.c, '~500 lines of C code' that run them.",
    "groq": "Groq press release, November 2023 (groq.com/news): 'Groq Sets New Large Language Model "
    "Performance Record of 300 Tokens per Second per User on Meta AI Foundational LLM, Llama-2 70B'.",
    "reading": "Reading speed: about 250 words a minute for adult prose (Brysbaert 2019, 'How many words "
    "do we read per minute?', Journal of Memory and Language 109, 104047: silent reading runs 238 words "
    "a minute for non-fiction, 260 for fiction).",
    "chinchilla": "Hoffmann et al. 2022, 'Training Compute-Optimal Large Language Models': "
    "about 20 training tokens per parameter is compute-optimal. Used when a model's "
    "token count is unknown.",
}

# Bytes per parameter in the parameter file (int4 packs two parameters per byte).
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1, "int4": 0.5}

DEFAULT_MFU = 0.43  # implied by Llama 2 70B's reported hours (0.428); see SOURCES["mfu"]
DEFAULT_GPUS = 6_000  # the explainer's cluster
DEFAULT_BYTES_PER_TOKEN = 4.0  # see SOURCES["bytes_per_token"]
CHINCHILLA_TOKENS_PER_PARAM = 20  # see SOURCES["chinchilla"]
ARCHES = ("gpt2", "llama")

# Upper limits beyond which an input is a typo, not a model (a human brain has ~1e14 synapses).
_MAX_PARAMS = 1e15
_MAX_DIM = 10_000_000


def _check_number(name: str, value, *, low: float = 0.0, high: float = math.inf,
                  low_ok: bool = False, integer: bool = False) -> None:
    """Raise UserError unless `value` is a real number in (low, high] (or [low, high])."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{name} must be a number, got {value!r}.")
    if integer and int(value) != value:
        raise UserError(f"{name} must be a whole number, got {value!r}.")
    if not math.isfinite(value) or value > high or value < low or (value == low and not low_ok):
        bound = "at least" if low_ok else "above"
        raise UserError(f"{name} must be {bound} {low:g} and at most {high:g}, got {value!r}.")


# ---------------------------------------------------------------------------------
# Shapes: what a model is, and how many parameters that makes.
# ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelShape:
    """A model's published shape and training facts, enough to count its parameters."""

    name: str  # preset key, e.g. "llama-2-70b"
    n_params: float | None = None  # the reported (often rounded) count, e.g. 70e9
    d_model: int | None = None  # width of the residual stream
    n_layers: int | None = None  # transformer blocks
    n_heads: int | None = None  # attention (query) heads per block
    n_kv_heads: int | None = None  # key/value heads (grouped-query attention); None = n_heads
    d_mlp: int | None = None  # hidden width of the MLP (SwiGLU for llama)
    d_vocab: int | None = None  # tokens in the vocabulary
    n_ctx: int | None = None  # longest context (learned positions only for gpt2)
    arch: str = "gpt2"  # "gpt2": LayerNorm, learned positions, GELU MLP, tied embeddings;
    # "llama": RMSNorm, rotary positions (no parameters), SwiGLU MLP, untied unembedding
    train_tokens: float | None = None  # tokens seen in pre-training, as reported
    reported_gpu_hours: float | None = None  # as reported (A100-80GB for Llama 2)
    source: str = ""  # paper / model card the numbers come from

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise UserError("A model shape needs a name, e.g. 'my-model'.")
        if self.arch not in ARCHES:
            raise UserError(f"arch must be one of {', '.join(ARCHES)}, got {self.arch!r}.")
        for f in ("d_model", "n_layers", "n_heads", "n_kv_heads", "d_mlp", "d_vocab", "n_ctx"):
            if getattr(self, f) is not None:
                _check_number(f, getattr(self, f), low=1, low_ok=True, high=_MAX_DIM, integer=True)
        for f, high in (("n_params", _MAX_PARAMS), ("train_tokens", 1e18),
                        ("reported_gpu_hours", 1e12)):
            if getattr(self, f) is not None:
                _check_number(f, getattr(self, f), high=high)
        if self.n_heads and self.d_model and self.d_model % self.n_heads:
            raise UserError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}.")
        if self.n_kv_heads and not self.n_heads:
            raise UserError("n_kv_heads needs n_heads too.")
        if self.n_kv_heads and self.n_heads % self.n_kv_heads:
            raise UserError(f"n_heads {self.n_heads} must be divisible by "
                            f"n_kv_heads {self.n_kv_heads}.")
        if self.n_params is None and self.computed_params() is None:
            raise UserError(f"Model {self.name!r} needs n_params or a full shape "
                            "(d_model, n_layers, d_mlp, d_vocab, and n_ctx for gpt2).")

    def computed_params(self) -> int | None:
        """Count parameters from the shape; None if the shape is incomplete.

        gpt2 (per block: attention W_QKV + biases 4*d^2 + 4d, MLP 2*d*d_mlp + d_mlp + d,
        two LayerNorms 4d; plus token + position embeddings and a final LayerNorm 2d;
        the unembedding is tied to the token embedding):
            d_vocab*d + n_ctx*d + n_layers*(4d^2 + 4d + 2*d*d_mlp + d_mlp + d + 4d) + 2d
            GPT-2 small: 38,597,376 + 786,432 + 12*7,087,872 + 1,536 = 124,439,808
        llama (no biases; W_Q, W_O d x d; W_K, W_V d x (n_kv_heads*d_head); SwiGLU has
        three d x d_mlp matrices; two RMSNorm gains per block and one final;
        embedding and unembedding are separate; rotary positions have no parameters):
            2*d_vocab*d + n_layers*(2d^2 + 2*d*kv + 3*d*d_mlp + 2d) + d
            Llama-2-70B: 524,288,000 + 80*855,654,400 + 8,192 = 68,976,648,192
        """
        d, n_layers, d_mlp, d_vocab = self.d_model, self.n_layers, self.d_mlp, self.d_vocab
        if None in (d, n_layers, d_mlp, d_vocab):
            return None
        if self.arch == "gpt2":
            if self.n_ctx is None:
                return None
            block = 4 * d * d + 4 * d + 2 * d * d_mlp + d_mlp + d + 4 * d
            return d_vocab * d + self.n_ctx * d + n_layers * block + 2 * d
        # llama: grouped-query attention shrinks K and V to n_kv_heads heads of d_head.
        kv = d if not self.n_kv_heads else self.n_kv_heads * (d // self.n_heads)
        block = 2 * d * d + 2 * d * kv + 3 * d * d_mlp + 2 * d
        return 2 * d_vocab * d + n_layers * block + d

    def param_count(self) -> float:
        """The count the calculator uses: exact from the shape when known, else reported."""
        computed = self.computed_params()
        return float(computed) if computed is not None else float(self.n_params)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelShape:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"Unknown model shape keys {unknown}; "
                            f"expected some of {sorted(known)}.")
        return cls(**d)


def shape_from_llmcore(config: dict, name: str) -> ModelShape:
    """The shape of an llmcore GPT (GPT-2 architecture, tied embeddings) from its config dict.

    Extra keys (dropout, tokenizer kind, ...) are ignored; the six shape keys are required.
    shape_from_llmcore(dict(d_model=768, n_layers=12, n_heads=12, d_mlp=3072,
                            d_vocab=50257, n_ctx=1024), "gpt2").param_count() -> 124,439,808
    """
    needed = ("d_model", "n_layers", "n_heads", "d_mlp", "d_vocab", "n_ctx")
    missing = [k for k in needed if k not in config]
    if missing:
        raise UserError(f"Model config is missing {missing}; it needs {list(needed)}.")
    return ModelShape(name=name, arch="gpt2", source="llmcore model config",
                      **{k: config[k] for k in needed})


PRESETS: dict[str, ModelShape] = {
    "gpt2-124m": ModelShape(
        "gpt2-124m", n_params=124e6, d_model=768, n_layers=12, n_heads=12, d_mlp=3072,
        d_vocab=50257, n_ctx=1024, arch="gpt2", source=SOURCES["gpt2"]),
    "llama-2-7b": ModelShape(
        "llama-2-7b", n_params=7e9, d_model=4096, n_layers=32, n_heads=32, d_mlp=11008,
        d_vocab=32000, n_ctx=4096, arch="llama", train_tokens=2.0e12,
        reported_gpu_hours=184_320, source=SOURCES["llama2"]),
    "llama-2-13b": ModelShape(
        "llama-2-13b", n_params=13e9, d_model=5120, n_layers=40, n_heads=40, d_mlp=13824,
        d_vocab=32000, n_ctx=4096, arch="llama", train_tokens=2.0e12,
        reported_gpu_hours=368_640, source=SOURCES["llama2"]),
    "llama-2-70b": ModelShape(
        "llama-2-70b", n_params=70e9, d_model=8192, n_layers=80, n_heads=64, n_kv_heads=8,
        d_mlp=28672, d_vocab=32000, n_ctx=4096, arch="llama", train_tokens=2.0e12,
        reported_gpu_hours=1_720_320, source=SOURCES["llama2"]),
    "gpt-3-175b": ModelShape(
        "gpt-3-175b", n_params=175e9, d_model=12288, n_layers=96, n_heads=96, d_mlp=4 * 12288,
        d_vocab=50257, n_ctx=2048, arch="gpt2", train_tokens=300e9, source=SOURCES["gpt3"]),
}


def get_preset(name: str) -> ModelShape:
    """The preset called `name`, or a UserError that lists the presets."""
    if name not in PRESETS:
        raise UserError(f"Unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.")
    return PRESETS[name]


# ---------------------------------------------------------------------------------
# Accelerators: how fast a chip computes, how fast it reads memory, what an hour costs.
# ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Accelerator:
    """One chip's speed limits and rental price."""

    name: str
    peak_flops_bf16: float  # dense bf16 matmul FLOP/s (a CPU: measured fp32 matmul FLOP/s)
    mem_bandwidth: float  # bytes/s between memory and compute
    memory_bytes: float | None  # how many bytes of weights fit (None: unknown)
    price_per_hour: float  # USD per device-hour (0 for a machine you own)
    source: str = ""

    def __post_init__(self):
        _check_number("peak_flops_bf16", self.peak_flops_bf16, high=1e18)
        _check_number("mem_bandwidth", self.mem_bandwidth, high=1e15)
        if self.memory_bytes is not None:
            _check_number("memory_bytes", self.memory_bytes, high=1e15)
        _check_number("price_per_hour", self.price_per_hour, low_ok=True, high=1e4)

    def to_dict(self) -> dict:
        return asdict(self)


ACCELERATORS: dict[str, Accelerator] = {
    "a100-80gb": Accelerator("a100-80gb", peak_flops_bf16=312e12, mem_bandwidth=2.039e12,
                             memory_bytes=80e9, price_per_hour=1.15,
                             source=SOURCES["a100"] + " Price: " + SOURCES["price"]),
    "h100-sxm": Accelerator("h100-sxm", peak_flops_bf16=989e12, mem_bandwidth=3.35e12,
                            memory_bytes=80e9, price_per_hour=2.50,
                            source=SOURCES["h100"] + " Price: an assumption (2024 reserved "
                            "cloud H100s ran about $2-3/GPU-hour)."),
}


def measure_cpu_bandwidth(seconds: float = 0.5, n_bytes: int = 128 * 2**20) -> float:
    """Memory bandwidth of this machine in bytes/s: copy an array, bytes moved / time.

    Counts a read and a write per byte copied (the STREAM "copy" convention) and keeps
    the best of repeated copies for `seconds`. Use arrays far larger than the CPU cache
    (the default 128 MiB) or you measure the cache instead.
    """
    import numpy as np

    _check_number("seconds", seconds, high=600)
    _check_number("n_bytes", n_bytes, low=1024, low_ok=True, high=2**36, integer=True)
    src = np.ones(int(n_bytes) // 8, dtype=np.float64)  # [n_bytes / 8]
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch every page once so the timing excludes page faults
    best, deadline = 0.0, time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        np.copyto(dst, src)
        dt = time.perf_counter() - t0
        if dt > 0:
            best = max(best, 2 * src.nbytes / dt)
        if time.perf_counter() >= deadline and best > 0:
            return best


def measure_cpu_matmul_flops(seconds: float = 0.5, n: int = 512) -> float:
    """Matmul speed of this machine in FLOP/s: numpy fp32 (n, n) @ (n, n) = 2 n^3 FLOPs."""
    import numpy as np

    _check_number("seconds", seconds, high=600)
    _check_number("n", n, low=8, low_ok=True, high=16384, integer=True)
    a = np.ones((n, n), dtype=np.float32)  # [n, n]
    a @ a  # warm-up: thread pool start, first-touch
    best, deadline = 0.0, time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        a @ a
        dt = time.perf_counter() - t0
        if dt > 0:
            best = max(best, 2 * n**3 / dt)
        if time.perf_counter() >= deadline and best > 0:
            return best


@functools.lru_cache(maxsize=1)
def this_machine() -> Accelerator:
    """This computer as an Accelerator, measured once (about a second) and cached."""
    try:
        memory = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # not exposed on this OS
        memory = None
    accel = Accelerator("this-machine", peak_flops_bf16=measure_cpu_matmul_flops(),
                        mem_bandwidth=measure_cpu_bandwidth(), memory_bytes=memory,
                        price_per_hour=0.0,
                        source="measured here: numpy array copy (bandwidth), fp32 matmul (FLOP/s)")
    log.info("measured this machine: %.1f GB/s, %.1f GFLOP/s",
             accel.mem_bandwidth / 1e9, accel.peak_flops_bf16 / 1e9)
    return accel


def get_accelerator(name: str) -> Accelerator:
    """The accelerator called `name` ("this-machine" is measured on first use)."""
    if name == "this-machine":
        return this_machine()
    if name not in ACCELERATORS:
        raise UserError(f"Unknown accelerator {name!r}; choose one of: "
                        f"{', '.join([*ACCELERATORS, 'this-machine'])}.")
    return ACCELERATORS[name]


# ---------------------------------------------------------------------------------
# The identities, one function each.
# ---------------------------------------------------------------------------------

def _dtype_bytes(dtype: str) -> float:
    if dtype not in DTYPE_BYTES:
        raise UserError(f"Unknown dtype {dtype!r}; choose one of: {', '.join(DTYPE_BYTES)}.")
    return DTYPE_BYTES[dtype]


def file_size_bytes(n_params: float, dtype: str = "bf16") -> float:
    """Bytes in the parameter file: one number per parameter. 70e9 bf16 -> 140e9 (140 GB)."""
    _check_number("n_params", n_params, high=_MAX_PARAMS)
    return n_params * _dtype_bytes(dtype)


def training_flops(n_params: float, n_tokens: float) -> float:
    """Training compute 6 N D (Kaplan et al. 2020): per token, forward 2N + backward 4N."""
    _check_number("n_params", n_params, high=_MAX_PARAMS)
    _check_number("n_tokens", n_tokens, high=1e18)
    return 6.0 * n_params * n_tokens


def gpu_hours(flops: float, accel: Accelerator | str, mfu: float = DEFAULT_MFU) -> float:
    """Device-hours to do `flops` at a fraction `mfu` of the chip's peak FLOP/s."""
    accel = get_accelerator(accel) if isinstance(accel, str) else accel
    _check_number("flops", flops, high=1e32)
    _check_number("mfu", mfu, high=1.0)
    return flops / (accel.peak_flops_bf16 * mfu) / 3600.0


def wall_clock_days(gpu_hours: float, n_gpus: int) -> float:
    """Days on `n_gpus` GPUs working at once (their efficiency is already in the MFU)."""
    _check_number("gpu_hours", gpu_hours, high=1e12)
    _check_number("n_gpus", n_gpus, low=1, low_ok=True, high=10_000_000, integer=True)
    return gpu_hours / n_gpus / 24.0


def cost_usd(gpu_hours: float, price_per_gpu_hour: float) -> float:
    """Dollars for `gpu_hours` at `price_per_gpu_hour` (rent only: no power, staff, failed runs)."""
    _check_number("gpu_hours", gpu_hours, high=1e12)
    _check_number("price_per_gpu_hour", price_per_gpu_hour, low_ok=True, high=1e4)
    return gpu_hours * price_per_gpu_hour


def decode_tokens_per_s(n_params: float, dtype: str, bandwidth_bytes_per_s: float,
                        batch: int = 1) -> float:
    """Upper bound on generation speed: every step reads all the weights once.

    One step makes `batch` tokens (one per sequence) and must stream n_params x bytes
    from memory, so tokens/s <= batch x bandwidth / (n_params x bytes). Ignores the KV
    cache and compute, which is right at small batch. 70e9 bf16 on 2.039 TB/s -> 14.6.
    """
    _check_number("bandwidth_bytes_per_s", bandwidth_bytes_per_s, high=1e15)
    _check_number("batch", batch, low=1, low_ok=True, high=1e6, integer=True)
    return batch * bandwidth_bytes_per_s / file_size_bytes(n_params, dtype)


def data_bytes(n_tokens: float, bytes_per_token: float = DEFAULT_BYTES_PER_TOKEN) -> float:
    """Bytes of text behind `n_tokens` tokens. 2e12 tokens x 4 B/token -> 8e12 (8 TB)."""
    _check_number("n_tokens", n_tokens, high=1e18)
    _check_number("bytes_per_token", bytes_per_token, high=1000)
    return n_tokens * bytes_per_token


# ---------------------------------------------------------------------------------
# Everything at once: the calculator behind `llmcore scale`.
# ---------------------------------------------------------------------------------

def _q(value, unit: str, basis: str = "") -> dict:
    """One quantity as JSON: {"value": 140e9, "unit": "bytes", "basis": "..."}."""
    out = {"value": value, "unit": unit}
    if basis:
        out["basis"] = basis
    return out


def estimate(preset_or_shape: str | ModelShape, *, params: float | None = None,
             tokens: float | None = None, gpus: int | None = None, price: float | None = None,
             mfu: float | None = None, accelerator: str | Accelerator = "a100-80gb",
             dtype: str = "bf16", bytes_per_token: float | None = None) -> dict:
    """Size, data, compute, time, cost and decode speed of one model, as a JSON-able dict.

    Every keyword overrides one assumption (the CLI's --params, --tokens, --gpus, --price,
    --mfu, --accelerator, --dtype); what was used and why is in "inputs", what follows
    in "results", the paper's own figures in "reported", citations in "sources".
    """
    shape = get_preset(preset_or_shape) if isinstance(preset_or_shape, str) else preset_or_shape
    if not isinstance(shape, ModelShape):
        raise UserError(f"Expected a preset name or a ModelShape, got {type(shape).__name__}.")
    accel = get_accelerator(accelerator) if isinstance(accelerator, str) else accelerator
    bpp = _dtype_bytes(dtype)

    # Step 1: settle each input, remembering where it came from.
    if params is not None:
        n_params, p_basis = params, "override"
    else:
        n_params = shape.param_count()
        p_basis = "computed from shape" if shape.computed_params() is not None else "reported"
    _check_number("params", n_params, high=_MAX_PARAMS)
    if tokens is not None:
        n_tokens, t_basis = tokens, "override"
    elif shape.train_tokens is not None:
        n_tokens, t_basis = shape.train_tokens, "reported"
    else:
        n_tokens = CHINCHILLA_TOKENS_PER_PARAM * n_params
        t_basis = "20 tokens/parameter (Chinchilla)"
    n_gpus = DEFAULT_GPUS if gpus is None else gpus
    mfu_used = DEFAULT_MFU if mfu is None else mfu
    price_used = accel.price_per_hour if price is None else price
    bpt = DEFAULT_BYTES_PER_TOKEN if bytes_per_token is None else bytes_per_token
    _check_number("gpus", n_gpus, low=1, low_ok=True, high=10_000_000, integer=True)
    _check_number("mfu", mfu_used, high=1.0)
    _check_number("price", price_used, low_ok=True, high=1e4)
    _check_number("bytes_per_token", bpt, high=1000)

    # Step 2: the identities, in the order the story tells them.
    size = file_size_bytes(n_params, dtype)
    data = data_bytes(n_tokens, bpt)
    flops = training_flops(n_params, n_tokens)
    hours = gpu_hours(flops, accel, mfu_used)
    days = wall_clock_days(hours, n_gpus)
    usd = cost_usd(hours, price_used)
    decode = decode_tokens_per_s(n_params, dtype, accel.mem_bandwidth)
    hold = math.ceil(size / accel.memory_bytes) if accel.memory_bytes else None

    result = {
        "model": shape.to_dict(),
        "accelerator": accel.to_dict(),
        "inputs": {
            "n_params": _q(n_params, "parameters", p_basis),
            "train_tokens": _q(n_tokens, "tokens", t_basis),
            "n_gpus": _q(n_gpus, "GPUs",
                         "override" if gpus is not None else "the explainer's cluster"),
            "mfu": _q(mfu_used, "fraction of peak FLOP/s",
                      "override" if mfu is not None else "default"),
            "price_per_gpu_hour": _q(price_used, "USD/GPU-hour",
                                     "override" if price is not None else "accelerator default"),
            "dtype": _q(dtype, f"{bpp:g} bytes/parameter"),
            "bytes_per_token": _q(bpt, "bytes/token",
                                  "override" if bytes_per_token is not None else "approximation"),
        },
        "results": {
            "file_size": _q(size, "bytes"),
            "file_size_gb": _q(size / 1e9, "GB"),
            "train_data": _q(data, "bytes"),
            "train_data_tb": _q(data / 1e12, "TB"),
            "training_flops": _q(flops, "FLOP"),
            "gpu_hours": _q(hours, "GPU-hours"),
            "wall_clock_days": _q(days, "days"),
            "cost": _q(usd, "USD"),
            "decode_tokens_per_s": _q(decode, "tokens/s",
                                      "batch 1, memory-bandwidth bound, one device's bandwidth"),
            "gpus_to_hold_weights": _q(hold, "GPUs"),
        },
        "reported": {},
        "sources": {k: SOURCES[k] for k in ("kaplan", "mfu", "bytes_per_token", "chinchilla")},
    }
    result["sources"]["model"] = shape.source
    result["sources"]["accelerator"] = accel.source
    if shape.n_params is not None:
        result["reported"]["n_params"] = _q(shape.n_params, "parameters", shape.source)
    if shape.reported_gpu_hours is not None:
        result["reported"]["gpu_hours"] = _q(shape.reported_gpu_hours, "GPU-hours", shape.source)
    return result


def _fmt(value) -> str:
    """A number for people: 1,720,320 / 8.278e+23 / 0.43 / 11.95."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return f"{value:,.0f}"
    return f"{value:.4g}" if abs(value) >= 1e15 or abs(value) < 1 else f"{value:,.2f}"


def format_estimate(est: dict) -> str:
    """`estimate`'s dict as the lines the CLI prints without --json."""
    inputs, results = est["inputs"], est["results"]
    lines = [(f"{est['model']['name']} on {_fmt(inputs['n_gpus']['value'])} x "
             f"{est['accelerator']['name']}")]
    for key, q in [*inputs.items(), *results.items()]:
        basis = f"  ({q['basis']})" if q.get("basis") else ""
        lines.append(f"  {key:<22} {_fmt(q['value']):>18} {q['unit']}{basis}")
    for key, q in est["reported"].items():
        lines.append(f"  {'reported ' + key:<22} {_fmt(q['value']):>18} {q['unit']}")
    return "\n".join(lines)


def format_check(check: dict) -> str:
    """`llama2_70b_check`'s dict as a table: claim, computed, reported, error, ok."""
    lines = []
    for c in check["claims"]:
        mark = "ok " if c["ok"] else "OFF"
        lines.append(f"  [{mark}] {c['claim']:<45} computed {_fmt(c['computed']):>16} "
                     f"vs {_fmt(c['reported']):>12} {c['unit']:<9} "
                     f"({c['rel_error']:.1%} off, tolerance {c['tolerance']:.0%})")
    implied = check["implied"]
    lines.append(f"  implied: MFU {implied['mfu']:.3f}, ${implied['price_per_gpu_hour']:.2f}"
                 f"/GPU-hour, {implied['bytes_per_token']:.1f} bytes/token")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------
# The explainer's claims about Llama 2 70B, each held against a tolerance.
# ---------------------------------------------------------------------------------

def _claim(cid: str, claim: str, computed: float, reported: float, tolerance: float,
           unit: str, how: str) -> dict:
    error = abs(computed - reported) / reported
    return {"id": cid, "claim": claim, "computed": computed, "reported": reported,
            "unit": unit, "tolerance": tolerance, "rel_error": error,
            "ok": error <= tolerance + 1e-12, "how": how}


def llama2_70b_check(*, mfu: float = DEFAULT_MFU, price: float | None = None,
                     bytes_per_token: float = DEFAULT_BYTES_PER_TOKEN) -> dict:
    """Recompute the explainer's Llama 2 70B numbers and compare with what was reported.

    Returns {"claims": [{id, claim, computed, reported, unit, tolerance, rel_error, ok, how}],
    "implied": {the mfu, price and bytes/token that would match exactly}, "ok", "sources"}.
    """
    small, big = PRESETS["llama-2-7b"], PRESETS["llama-2-70b"]
    a100 = ACCELERATORS["a100-80gb"]
    price = a100.price_per_hour if price is None else price
    n_exact, n_named = big.param_count(), big.n_params  # 68,976,648,192 and 70e9
    tokens, paper_hours = big.train_tokens, big.reported_gpu_hours  # 2.0e12, 1,720,320
    flops = training_flops(n_exact, tokens)
    claims = [
        _claim("file_size", "a ~140GB file", file_size_bytes(n_named, "bf16"), 140e9, 0.0,
               "bytes", f"70e9 parameters x 2 bytes (bf16); the exact {n_exact:,.0f} "
               f"make {file_size_bytes(n_exact, 'bf16') / 1e9:.2f} GB"),
        _claim("gpu_hours", "1,720,320 A100-hours (Llama 2 paper, Table 2)",
               gpu_hours(flops, a100, mfu), paper_hours, 0.10, "GPU-hours",
               f"6 x {n_exact:.4g} x {tokens:.2g} tokens / (312 TFLOP/s x MFU {mfu:g})"),
        _claim("days", "6,000 GPUs for 12 days", wall_clock_days(paper_hours, 6000), 12.0, 0.05,
               "days", "the paper's 1,720,320 GPU-hours / 6,000 GPUs / 24"),
        _claim("cost", "about $2M", cost_usd(paper_hours, price), 2e6, 0.15, "USD",
               f"the paper's GPU-hours x ${price:g}/A100-hour"),
        _claim("decode_ratio", "70B runs ~10x slower than 7B",
               decode_tokens_per_s(small.param_count(), "bf16", a100.mem_bandwidth)
               / decode_tokens_per_s(n_exact, "bf16", a100.mem_bandwidth), 10.0, 0.10, "x",
               "batch-1 decode reads every weight per token: 68.98B / 6.74B bytes"),
        _claim("data", "a chunk of the internet, ~10TB", data_bytes(tokens, bytes_per_token),
               10e12, 0.25, "bytes", f"2.0T tokens x {bytes_per_token:g} bytes/token "
               "(an approximation; the explainer's 10TB is itself a round figure)"),
    ]
    return {
        "claims": claims,
        "implied": {
            "mfu": flops / (paper_hours * 3600 * a100.peak_flops_bf16),
            "price_per_gpu_hour": 2e6 / paper_hours,
            "bytes_per_token": 10e12 / tokens,
        },
        "ok": all(c["ok"] for c in claims),
        "sources": {k: SOURCES[k] for k in ("explainer", "llama2", "llama2_shapes", "kaplan",
                                             "a100", "mfu", "price", "bytes_per_token")},
    }


# ---------------------------------------------------------------------------------
# Data at human scale: how long would a person take to read it? And what a KV cache buys.
# ---------------------------------------------------------------------------------

BYTES_PER_BOOK = 500_000  # a ~90,000-word novel as plain UTF-8 text is about 500 KB
BYTES_PER_WORD = 6.0  # an English word averages ~4.7 letters, plus a space and punctuation
WORDS_PER_MINUTE = 250  # a typical adult reading speed for prose; see SOURCES["reading"]
READING_HOURS_PER_DAY = 8  # a full working day of reading, every day of the year
LLAMA2_DATA_BYTES = 10e12  # the explainer's "~10TB of text" (see llama2_70b_check)


def reading_equivalents(n_bytes: float) -> dict:
    """How much reading `n_bytes` of plain text is, under stated assumptions.

    10e12 bytes (Llama 2's ~10 TB) -> 20 million books, 1.7e12 words, ~38,000 years
    of reading 8 hours a day at 250 words a minute. The assumptions travel with the
    numbers in "assumptions", so a page can print them beside the chart.
    """
    _check_number("n_bytes", n_bytes, low_ok=True, high=1e18)
    words = n_bytes / BYTES_PER_WORD
    hours = words / WORDS_PER_MINUTE / 60
    days = hours / READING_HOURS_PER_DAY
    return {
        "bytes": n_bytes,
        "books": n_bytes / BYTES_PER_BOOK,
        "words": words,
        "reading_hours": hours,
        "reading_days": days,  # days of READING_HOURS_PER_DAY hours
        "reading_years": days / 365.25,
        "assumptions": {
            "bytes_per_book": BYTES_PER_BOOK,
            "bytes_per_word": BYTES_PER_WORD,
            "words_per_minute": WORDS_PER_MINUTE,
            "reading_hours_per_day": READING_HOURS_PER_DAY,
            "text": (f"a book is ~{BYTES_PER_BOOK / 1e3:,.0f} KB of text; a word ~{BYTES_PER_WORD:g} bytes; "
                     f"reading {WORDS_PER_MINUTE} words a minute, {READING_HOURS_PER_DAY} hours a day, every day"),
        },
    }


def reading_time_text(n_bytes: float) -> str:
    """One phrase for a chart label: '2.4 books, 3.3 hours of reading' or '38,000 years of reading'."""
    r = reading_equivalents(n_bytes)
    books = r["books"]
    book_txt = f"{books:,.0f} books" if books >= 10 else f"{books:.2g} books"
    if r["reading_years"] >= 1:
        t = f"{r['reading_years']:,.0f} years"
    elif r["reading_days"] >= 1:
        t = f"{r['reading_days']:,.1f} days"
    elif r["reading_hours"] >= 1:
        t = f"{r['reading_hours']:,.1f} hours"
    else:
        t = f"{r['reading_hours'] * 60:,.0f} minutes"
    return f"{book_txt}, {t} of reading"


def measure_kv_cache(model, tokenizer, lengths=(16, 32, 64, 128), prompt: str = "Once upon a time",
                     repeats: int = 1) -> list[dict]:
    """Time generation of each length with and without the KV cache, on this machine.

    Without a cache, every new token re-reads the whole text so far through every layer
    (cost grows with the length); with it, only the new token passes through. Returns one
    row per (length, cache): {"n_tokens", "cache", "seconds", "tokens_per_s"}; the best of
    `repeats` runs. Lengths are capped at the model's context so both paths do the same work.
    """
    from llmcore.generate import Sampling, steps

    if not lengths or len(lengths) > 20:
        raise UserError("give between 1 and 20 lengths to time")
    for n in lengths:
        _check_number("length", n, low=1, low_ok=True, high=2000, integer=True)
    _check_number("repeats", repeats, low=1, low_ok=True, high=20, integer=True)
    n_ctx = model.cfg.n_ctx
    n_prompt = len(tokenizer.encode(prompt)) if prompt else 1
    rows = []
    for n in sorted({min(int(n), max(1, n_ctx - n_prompt)) for n in lengths}):
        s = Sampling(temperature=0, max_new_tokens=n)
        for cache in (True, False):
            best = math.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _step in steps(model, tokenizer, prompt, s, use_cache=cache, n_alternatives=1):
                    pass
                best = min(best, time.perf_counter() - t0)
            rows.append({"n_tokens": n, "cache": cache, "seconds": best, "tokens_per_s": n / max(best, 1e-9)})
    return rows
