"""Every number in the prose of chapters 00-03, 05 and 07, the stage pages, the teacher's guide and the
README comes from the run, the library or a cited source, and a test fails when one drifts.

Markdown cannot compute, so each document's numbers are listed here as phrases rendered from the shipped
run and from `llmcore.scale` (whose SOURCES cite every outside figure): retrain the asset, or change a
source, and the stale sentence fails. Then every number left in the prose must belong to one of those
phrases: a number that nothing ties fails too. What is not a quoted number is set aside first: code
(fenced blocks and `inline code`), model names (Llama-2-70B, 7B, GPT-3), chapter and exercise ids, and the
year of a citation. (Chapter 04's and the Model page's numbers: tests/test_notebook_prose.py.)
"""

import json
import math
import re
from pathlib import Path

import pytest

from llmcore.run import load_run, shipped_runs

ROOT = Path(__file__).parent.parent
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?<![,.])")
NOT_QUOTED = [
    re.compile(r"```.*?```", re.S),  # code blocks, mermaid charts
    re.compile(r"`[^`]*`"),  # inline code
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"Llama[- ]?2(-\d+B)?|Llama 3|GPT-\d|\b\d+B\b|[Tt]able \d|[Ss]ection \d(\.\d)?|arXiv:\S+|UTF-8"),  # names
    re.compile(r"#+ \d\.|(?<=[;:] )\d\. "),  # numbered headings and steps
    re.compile(r"\b0\d(\.\d)?\b|\b0\d-0\d\b|Stage \d"),  # chapters 00-07, exercises 07.1, stage pages
    re.compile(r"(et al\.|Karpathy|Kaplan|Hoffmann|Touvron),? (\d{4})|\((19|20)\d\d\)"),  # a citation's year
]

pytestmark = pytest.mark.skipif("storyworld" not in shipped_runs(), reason="the shipped run is not built yet")


def notebook_prose(name: str) -> str:
    cells = json.loads((ROOT / "notebooks" / name).read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def check(label: str, text: str, phrases: list[str], also: tuple[str, ...] = ()):
    """Every phrase is in `text`; every number of `text` is in a phrase (or in `also`, with its reason)."""
    flat = " ".join(text.split())
    missing = [p for p in phrases if p not in flat]
    assert not missing, f"{label} no longer says what the run and the library say: {missing}"
    for p in phrases:
        flat = flat.replace(p, " ")
    for pattern in NOT_QUOTED:
        flat = pattern.sub(" ", flat)
    stray = sorted(set(NUMBER.findall(flat)) - set(also))
    assert not stray, f"numbers in {label} that nothing ties to the run or a source: {stray}"


def _llama():
    from llmcore import scale

    check_ = {c["id"]: c for c in scale.llama2_70b_check()["claims"]}
    said = {k: c["reported"] for k, c in check_.items()}  # the explainer's round numbers, cited in scale.SOURCES
    return scale, said


def test_chapter_07_and_the_scale_page():
    from llmcore import sizes
    from llmcore.exercises import _gpu_hours_cases

    scale, said = _llama()
    a100, h100 = scale.get_accelerator("a100-80gb"), scale.get_accelerator("h100-sxm")
    small, big = scale.get_preset("llama-2-7b"), scale.get_preset("llama-2-70b")
    est = scale.estimate("llama-2-70b")["results"]
    hours = est["gpu_hours"]["value"]
    gpt3 = _gpu_hours_cases()[0]
    rows = sizes.compare()
    budget = rows[0]["steps"] * rows[0]["flops_per_step"]
    claims = (f"~{said['data'] / 1e12:.0f} TB of text, 6,000 GPUs for {said['days']:.0f} days, about "
              f"${said['cost'] / 1e6:.0f}M, and a {said['file_size'] / 1e9:.0f} GB parameter file; and it writes about "
              f"{said['decode_ratio']:.0f} times slower")
    ratio = big.param_count() / small.param_count()
    phrases = [
        claims, f"writes ~{said['decode_ratio']:.0f}x slower", f"{scale.training_flops(1, 1):g} × parameters ×",
        f"utilisation × {3600}", f"A100s ({a100.peak_flops_bf16 / 1e12:.0f} TFLOP/s in bf16), with the "
        f"{big.train_tokens / 1e12:.1f} trillion tokens", f"about {scale.CHINCHILLA_TOKENS_PER_PARAM} training tokens per parameter",
        f"about {round(ratio)} times the bytes", f"it is about {round(ratio)} times slower",
        f"{hours / 1e6:.1f} million hours, about {hours / 24 / 365:.0f} years",
        f"a {said['file_size'] / 1e9:.0f} GB model does not fit in one GPU's {a100.memory_bytes / 1e9:.0f} GB",
        f"took {big.reported_gpu_hours:,.0f} GPU-hours. On 12,000 GPUs instead of 6,000",
        f"An H100 reads its memory at {h100.mem_bandwidth / 1e12:.2f} TB/s, an A100 at {a100.mem_bandwidth / 1e12:.1f} TB/s",
        f"at {a100.peak_flops_bf16 / 1e12:.0f} TFLOP/s and the calculator's utilisation (MFU {scale.DEFAULT_MFU:g})",
        f"({gpt3[0] / 1e9:.0f} billion parameters, {gpt3[1] / 1e9:.0f} billion tokens)",
        "one conversation at a time (batch 1)",
    ]
    check("chapter 07", notebook_prose("07_scale.ipynb"), phrases)
    n_small, n_big = small.param_count(), big.param_count()
    page = [
        f"| a ~{said['file_size'] / 1e9:.0f} GB file | {big.n_params / 1e9:.0f} × 10⁹ parameters × 2 bytes (bf16) | "
        f"{scale.file_size_bytes(big.n_params) / 1e9:.0f} GB | {said['file_size'] / 1e9:.0f} GB |",
        f"| 6,000 GPUs for {said['days']:.0f} days | {big.reported_gpu_hours:,.0f} GPU-hours ÷ 6,000 ÷ 24 | "
        f"{scale.wall_clock_days(big.reported_gpu_hours, 6000):.1f} days | {said['days']:.0f} days |",
        f"| about ${said['cost'] / 1e6:.0f}M | {big.reported_gpu_hours:,.0f} A100-hours × ${a100.price_per_hour:.2f} | "
        f"${scale.cost_usd(big.reported_gpu_hours, a100.price_per_hour) / 1e6:.2f}M | ~${said['cost'] / 1e6:.0f}M |",
        f"| training compute | {scale.training_flops(1, 1):g} × {n_big / 1e9:.2f} × 10⁹ parameters × "
        f"{big.train_tokens / 1e12:.1f} × 10¹² tokens (Kaplan et al., 2020) ÷ ({a100.peak_flops_bf16 / 1e12:.0f} TFLOP/s × "
        f"{scale.DEFAULT_MFU:.0%} × 3600) | {hours:,.0f} GPU-hours | {big.reported_gpu_hours:,.0f} (paper, Table 2) |",
        f"| ~{said['data'] / 1e12:.0f} TB of text | {big.train_tokens / 1e12:.1f} × 10¹² tokens × ~"
        f"{scale.DEFAULT_BYTES_PER_TOKEN:.0f} bytes per token | {scale.data_bytes(big.train_tokens) / 1e12:.0f} TB | "
        f"~{said['data'] / 1e12:.0f} TB |",
        f"| 70B runs ~{said['decode_ratio']:.0f}x slower than 7B | {n_big / 1e9:.2f} / {n_small / 1e9:.2f} billion bytes "
        f"to read per token | {n_big / n_small:.1f}x | ~{said['decode_ratio']:.0f}x |",
        f"The utilisation (MFU {scale.DEFAULT_MFU:g}) and price (${a100.price_per_hour:.2f} per A100-hour)",
        f"At one A100's bandwidth ({a100.mem_bandwidth / 1e12:.1f} TB/s): ≤ "
        f"{scale.decode_tokens_per_s(n_small, 'bf16', a100.mem_bandwidth):.0f} tokens/s for Llama-2-7B "
        f"({scale.file_size_bytes(n_small) / 1e9:.1f} GB), ≤ {scale.decode_tokens_per_s(n_big, 'bf16', a100.mem_bandwidth):.1f}"
        f" for 70B ({scale.file_size_bytes(n_big) / 1e9:.0f} GB, which needs two {a100.memory_bytes / 1e9:.0f} GB A100s",
        f"because {said['file_size'] / 1e9:.0f} GB does not fit in one {a100.memory_bytes / 1e9:.0f} GB GPU",
        "runs it with 2 processes", "(to within 1e-5)", "the arithmetic units mostly wait", "At batch 1",
        f"| held-out loss after {rows[0]['steps']} steps |", f"{scale.training_flops(1, 1):g} × parameters × tokens",
        *[f"| {r['name']} | {r['n_params']:,} | {r['final_val_loss']:.3f} | {budget / r['flops_per_step']:.0f} | "
          f"{sizes.val_loss_at_flops(r, budget):.3f} |" for r in rows],
    ]
    check("docs/stages/scale.md", (ROOT / "docs/stages/scale.md").read_text(), page)
    # The race between sizes: the prose says who wins, the runs decide.
    assert sizes.winner(rows, step=rows[0]["steps"]) == rows[-1]["name"], "with the same steps, bigger wins"
    assert sizes.winner(rows, flops=budget) == rows[0]["name"], "with the smallest's compute, the smallest wins"
    seconds = rows[-1]["seconds"] / rows[0]["seconds"]
    assert seconds < rows[-1]["flops_per_step"] / rows[0]["flops_per_step"], "the seconds differ less than the compute"


def cited(source: str, number: str) -> str:
    """`number` as an outside figure: it must be quoted in llmcore.scale.SOURCES[source]."""
    from llmcore.scale import SOURCES

    assert number in SOURCES[source], f"{number} is not in the cited source {source!r}: {SOURCES[source]}"
    return number


def _code(notebook: str) -> str:
    cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


# Numbers that are definitions, not measurements: what a byte holds, counting from 0, "adds up to 1".
DEFINITIONS = ("0", "1", "8", "16", "255", "256")


def test_chapters_00_to_03_and_05():
    from llmcore.corpus import CONCEPT_RATES, load_corpus
    from llmcore.exercises import TOP_P, TOP_P_PROBS
    from llmcore.params import inspect_file

    scale, said = _llama()
    run = load_run("storyworld")
    cfg, big = run.model.cfg, scale.get_preset("llama-2-70b")
    info = inspect_file(run.params_file)
    train = load_corpus("storyworld", "train").stats()
    karpathy = (f"~{said['data'] / 1e12:.0f} TB of text, 6,000 GPUs for {said['days']:.0f} days and about "
                f"${said['cost'] / 1e6:.0f}M")
    trillion = f"{big.train_tokens / 1e12:.0f} trillion tokens"
    slide = "0.123978487123876123"  # the parameter on Karpathy's slide (the issue quotes it), shown in 03
    books = {
        "00_big_picture.ipynb": [
            f"each a number from 0 to {cfg.d_vocab - 1:,}", f"among all {cfg.d_vocab:,} tokens has loss "
            f"ln({cfg.d_vocab}) = {math.log(cfg.d_vocab):.2f}", f"every parameter is a 16-bit number, "
            f"{info['bytes_per_param']:g} bytes", f"like the {slide[:6]}... on Karpathy's slide", f"{big.n_params / 1e9:.0f} billion parameters at "
            f"{scale.DTYPE_BYTES['bf16']} bytes each", karpathy, f"reports {trillion} and {big.reported_gpu_hours:,.0f} A100 "
            f"GPU-hours for it: {scale.wall_clock_days(big.reported_gpu_hours, 6000):.0f} days if spread over 6,000 GPUs",
        ],
        "01_data.ipynb": [
            f"Llama 2 read about {trillion}", f"\"a chunk of the internet, ~{said['data'] / 1e12:.0f} TB of text\"",
            f"Ours reads {train['bytes'] / 1e6:.1f} MB", f"say how big {said['data'] / 1e12:.0f} TB of text is",
            f"BPE tokenizer with {run.tokenizer.vocab_size:,} tokens", f"## How big is {said['data'] / 1e12:.0f} TB?",
            f"pre-trained on {trillion}; at about {scale.DEFAULT_BYTES_PER_TOKEN:.0f} bytes per token",
            f"the explainer's \"~{said['data'] / 1e12:.0f} TB of text\"", "each gridline is 10 times the one before",
            f"what Llama 2 read in {said['days']:.0f} days",
            f"about {round(scale.LLAMA2_DATA_BYTES / train['bytes'] / 1e6)} million times",
        ],
        "02_pretraining.ipynb": [f"over {trillion} on 6,000 GPUs for {said['days']:.0f} days (Karpathy, 2023; the paper "
                                 f"reports {big.reported_gpu_hours:,.0f} A100 GPU-hours)"],
        "03_parameters.ipynb": [
            f"about {said['file_size'] / 1e9:.0f} GB: {big.n_params / 1e9:.0f} billion parameters, "
            f"{scale.DTYPE_BYTES['bf16']} bytes each", f"like the \"{slide[:6]}...\"", f"as {slide}",
            f"cannot hold {len(slide) - 2} digits: 16 bits allow only {2 ** 16:,} different values",
            f"fp16 keeps 11 significant bits, about {int(11 * math.log10(2))} decimal digits; bf16 keeps 8, about "
            f"{int(8 * math.log10(2))}", f"**fp32** ({scale.DTYPE_BYTES['fp32']} bytes)",
            f"({scale.DTYPE_BYTES['bf16']} bytes, what LLMs usually", f"**int8** ({scale.DTYPE_BYTES['int8']} byte plus",
            f"ship in 16 bits, and why people run them in {8 * scale.DTYPE_BYTES['int8']} or even "
            f"{8 * scale.DTYPE_BYTES['int4']:.0f} bits", f"(the MLP is {cfg.d_mlp // cfg.d_model} ×",
            "(a vocabulary of 50,257 tokens, context 1,024, width 768, 12 blocks) 124,439,808",
            "What does the number 0.1 become", "A little above 0.1", "an 8-byte number",
            *[t.format(scale.DTYPE_BYTES["fp16"]) for t in ("## Size = {} bytes × parameters", "### What {} bytes can hold",
                                                            "A {}-byte number")],
        ],
        "05_inference.ipynb": [
            f"about {cited('run_c', '500')} lines of C",
            f"Record of {cited('groq', '300')} Tokens per Second per User", f"press release of {cited('groq', 'November 2023')}",
            f"probabilities {', '.join(TOP_P_PROBS[:-1])} and {TOP_P_PROBS[-1]}", "127.0.0.1:8000",
            "(random seeds 1 and 2: a seed fixes", "At 0 both", "At 0.7 they are sensible", "At 2.0 the long shots",
            "\"max_tokens\": 30, \"temperature\": 0",
        ],
    }
    for book, phrases in books.items():
        check(book, notebook_prose(book), phrases, also=DEFINITIONS)
    # the prose's temperatures and seeds are the cell's, and 05.3's top_p is the one its question uses
    assert "for t in (0.0, 0.7, 1.2, 2.0):" in _code("05_inference.ipynb")
    assert "for seed in (1, 2):" in _code("05_inference.ipynb")
    assert f"`top_p={TOP_P}`" in notebook_prose("05_inference.ipynb")
    assert sum(CONCEPT_RATES.values()) == pytest.approx(0.4, abs=0.02), "01: 'about two stories in five'"
    assert len(CONCEPT_RATES) == 8, "01: 'eight concepts'"
    assert slide in _code("03_parameters.ipynb")


def _outputs(notebook: str) -> str:
    """The committed text outputs of a chapter (written by running it on the shipped run)."""
    cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
    return "\n".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"])


def test_the_data_inference_and_parameters_pages():
    import torch

    from llmcore.corpus import load_corpus
    from llmcore.generate import Sampling, distribution, next_token_probs
    from llmcore.model import parameter_breakdown
    from llmcore.params import inspect_file

    scale, said = _llama()
    run = load_run("storyworld")
    cfg, tok, big = run.model.cfg, run.tokenizer, scale.get_preset("llama-2-70b")
    sentence = "Mia ate a crème brûlée by the Golden Gate Bridge 🌉"
    train, val = load_corpus("storyworld", "train").stats(tok), load_corpus("storyworld", "val").stats(tok)
    docs = load_corpus("python-docs", "all").stats()
    from llmcore.corpus import CONCEPT_RATES
    from llmcore.tokenizer import CharTokenizer

    char = CharTokenizer.train(load_corpus("storyworld", "train").text)
    ours, theirs = scale.reading_equivalents(train["bytes"]), scale.reading_equivalents(scale.LLAMA2_DATA_BYTES)
    a = ours["assumptions"]
    data = [
        f"| {len(sentence.encode())} |", f"| {len(sentence)} |",
        f"| {len(char.encode(sentence))} with the character tokenizer, {len(tok.encode(sentence))} with the shipped BPE",
        f"({char.vocab_size} for the story world)", f"The shipped tokenizer has {tok.vocab_size:,} tokens",
        f"The training split is {train['bytes']:,} bytes ({train['words']:,} words, {train['tokens']:,} BPE tokens, "
        f"{train['bytes_per_token']:.2f} bytes per token)", f"a different draw of {val['bytes']:,} bytes",
        f"about {docs['bytes'] / 1e3:.0f} KB with Python 3.11", f"pre-trained on {big.train_tokens / 1e12:.1f} trillion tokens",
        f"\"a chunk of the internet, ~{said['data'] / 1e12:.0f} TB of text\"", f"## How big is {said['data'] / 1e12:.0f} TB?",
        f"(a book ~{a['bytes_per_book'] / 1e3:.0f} KB, a word ~{a['bytes_per_word']:.0f} bytes, {a['words_per_minute']} words "
        f"a minute, {a['reading_hours_per_day']} hours a day)",
        f"| our story world | {train['bytes'] / 1e6:.1f} MB | {ours['books']:.1f} | {ours['reading_days']:.1f} days |",
        f"| Llama 2 | ~{said['data'] / 1e12:.0f} TB | {theirs['books'] / 1e6:.0f} million | "
        f"{round(theirs['reading_years'], -3):,.0f} years |",
        "1 byte per English letter, 2 for", "4 for an emoji", "the 256 bytes",
    ]
    assert len(CONCEPT_RATES) == 8
    check("docs/stages/data.md", (ROOT / "docs/stages/data.md").read_text(), data)

    ids = tok.encode("Mia went to the")
    (t1, p1), (t2, p2) = next_token_probs(run.model, tok, "Once upon a", k=2)
    probs, top_p = torch.tensor([0.4, 0.3, 0.2, 0.1]), 0.8
    kept = int((distribution(probs.log(), Sampling(temperature=1.0, top_p=top_p)) > 0).sum())
    reading = scale.WORDS_PER_MINUTE / 60 * val["tokens"] / val["words"]
    llama = scale.file_size_bytes(big.param_count(), "bf16")
    a100 = scale.get_accelerator("a100-80gb").mem_bandwidth
    inference = [
        f"`{ids}`", f"each of the {cfg.d_vocab:,} tokens", f"` {t1.strip()}` {p1:.1%}, ` {t2.strip()}` {p2:.1%}",
        f"probabilities {', '.join(f'{p:g}' for p in probs.tolist())} and top-p {top_p:g}, {['no', 'one', 'two', 'three', 'four'][kept]} tokens stay",
        f"~{cited('run_c', '500')} lines of C code", f"reads {llama / 1e9:.0f} GB per token", f"({reading:.1f} tokens per "
        f"second, at {scale.WORDS_PER_MINUTE} words a minute) takes {reading * llama / 1e12:.2f} TB/s",
        f"\"{cited('groq', '300')} Tokens per Second per User\"", f"(press release, {cited('groq', 'November 2023')})",
        f"takes {300 * llama / 1e12:.0f} TB/s, the bandwidth of {300 * llama / a100:.0f} A100s",
        "Below 1 the likely tokens", "above 1 the distribution", "0 means always the top", "go back to 2.",
    ]
    check("docs/stages/inference.md", (ROOT / "docs/stages/inference.md").read_text(), inference)

    info = inspect_file(run.params_file)
    parts = parameter_breakdown(cfg)
    first = [f"{v:.4f}".replace("-", "\u2212") for v in info["first_values"]["values"][:3]]
    out = _outputs("03_parameters.ipynb")  # compare_dtypes' sizes and bits per byte, as chapter 03 measured them
    sizes = dict(re.findall(r"^(\w+)\s+([\d,]+) bytes$", out, re.M))
    bpb = dict(re.findall(r"^(\w+)\s+loss [\d.]+ nats per token, ([\d.]+) bits per byte$", out, re.M))
    rows = [f"| {name} | {n:,} | {n / info['n_params']:.1%} |" for name, n in zip(
        ("embeddings (a vector per token and per position)", "attention (W_Q, W_K, W_V, W_O per layer)",
         f"MLP (two matrices per layer, {cfg.d_mlp // cfg.d_model} × d_model wide)", "LayerNorms"), parts.values())]
    params = [
        f"{info['n_params']:,} parameters × {info['bytes_per_param']:g} bytes (fp16) = {info['data_bytes']:,} bytes of "
        f"numbers, + 8 + {info['header_bytes'] - 8:,} bytes of header = **{info['bytes_on_disk']:,} bytes**",
        f"{big.n_params / 1e9:.0f} × 10⁹ × 2 bytes = **{said['file_size'] / 1e9:.0f} GB**", f"such as {', '.join(first)}:",
        "\"0.1239...\"", "an 8-byte length", "bytes on disk = 8 +", "with a bump at 1", *rows,
        *[f"| {d} | {scale.DTYPE_BYTES[d]:g} | {int(sizes[d].replace(',', '')) / 1e6:.2f} MB | "
          f"{scale.file_size_bytes(big.n_params, d) / 1e9:.0f} GB |" for d in ("fp32",)],
        f"| bf16 / fp16 | 2 | {info['bytes_on_disk'] / 1e6:.2f} MB | {scale.file_size_bytes(big.n_params) / 1e9:.0f} GB |",
        f"| int8 (+ one scale per row) | ~1 | {int(sizes['int8'].replace(',', '')) / 1e6:.2f} MB | "
        f"{scale.file_size_bytes(big.n_params, 'int8') / 1e9:.0f} GB |",
        f"| int4 | {scale.DTYPE_BYTES['int4']:g} | | {scale.file_size_bytes(big.n_params, 'int4') / 1e9:.0f} GB |",
        "On 40,000 characters of held-out stories: " + ", ".join(f"{d} {bpb[d]}" for d in ("fp32", "fp16", "bf16", "int8")),
    ]
    assert "n_chars=40_000" in _code("03_parameters.ipynb")
    check("docs/stages/parameters.md", (ROOT / "docs/stages/parameters.md").read_text(), params)


def test_the_teachers_guide():
    """The lesson plans, the "what to say" script and the answers to common questions."""
    from llmcore import sizes, teach
    from llmcore.corpus import load_corpus
    from llmcore.interpret.sae import load_sae
    from llmcore.params import inspect_file

    scale, said = _llama()
    run = load_run("storyworld")
    cfg, p, metrics = run.model.cfg, run.provenance, run.metrics()
    big, a100 = scale.get_preset("llama-2-70b"), scale.get_accelerator("a100-80gb")
    info = inspect_file(run.params_file)
    sentence = "Mia ate a crème brûlée by the Golden Gate Bridge 🌉"
    rows = sizes.compare()
    budget = rows[0]["steps"] * rows[0]["flops_per_step"]
    years = f"{round(scale.reading_equivalents(scale.LLAMA2_DATA_BYTES)['reading_years'], -3):,.0f} years"
    sae = load_sae(run).metrics
    bridge = sae["concepts"]["golden_gate_bridge"]
    base = bridge["n_positive"] / load_corpus("storyworld", "val").stats(run.tokenizer)["tokens"]
    compress = json.loads((ROOT / "benchmarks/results/compress.json").read_text())
    given = {k: v.get("given_train_bits_per_byte") for k, v in compress["methods"].items()}
    out02 = _outputs("02_pretraining.ipynb")  # chapter 02's compression table, from the shipped model
    model_bpb = re.search(r"^model\s+([\d.]+)", out02, re.M).group(1)
    gzip_bpb = re.search(r"^gzip -9\s+([\d.]+)", out02, re.M).group(1)
    flops = scale.estimate("llama-2-70b")["results"]["training_flops"]["value"]
    core = json.loads((ROOT / "benchmarks/results/ladder.json").read_text())["matmul_flops_per_s"]["1"]
    n_70b = big.param_count()
    built = metrics[-1]["elapsed"] + sae["train_seconds"] + sum(
        load_run(sizes.SIZES_DIR / n).metrics()[-1]["elapsed"] for n in sizes.SMALLER)
    per_chapter = [sum(e.startswith(f"0{i}.") for e in teach.ALL_EXERCISES) for i in range(8)]
    the_70b = (f"a {said['file_size'] / 1e9:.0f} GB file, {big.reported_gpu_hours:,.0f} GPU-hours "
               f"({said['days']:.0f} days on 6,000 GPUs), about ${said['cost'] / 1e6:.0f}M, ~{said['data'] / 1e12:.0f} TB of text")
    assert metrics[-1]["loss"] < 1, "'After 600 steps: under 1'"
    phrases = [
        # what the course is
        "curious 15-18 year olds", f"| {len(list((ROOT / 'notebooks').glob('0*.ipynb')))} notebooks |", "10-20 minutes each",
        f"| {min(per_chapter)}-{max(per_chapter)} per chapter", "for 3 minutes", "step 3 is the whole",
        "JupyterLab 4 or Notebook 7", "Notebook 6 does not", "JupyterLab 4.1 or later", "a factor of 2",
        # the 45-minute plan, including the scale chapter's headline numbers
        f"here are {run.model.n_params():,} numbers", f"Llama 2 read {years} of text", f"How big is {said['data'] / 1e12:.0f} TB?",
        f"× {scale.DTYPE_BYTES['bf16']} bytes = {said['file_size'] / 1e9:.0f} GB", the_70b,
        f"(held-out loss {rows[-1]['final_val_loss']:.2f} against {rows[0]['final_val_loss']:.2f})",
        f"writes ~{said['decode_ratio']:.0f}x slower", f"why 70B is {said['decode_ratio']:.0f}x slower",
        f"*Why 70B is {said['decode_ratio']:.0f}x slower*", f"Size = {scale.DTYPE_BYTES['bf16']} bytes × parameters",
        "what 0.123978487123876123 becomes in 2 bytes", "the 2-process training run",
        # what to say
        f"\"{run.model.n_params():,} numbers.", f"\"{math.log(cfg.d_vocab):.2f} is what you get by guessing blindly among "
        f"{cfg.d_vocab:,} tokens. After {p['steps']} steps: under 1.", f"{len(sentence)} characters, {len(sentence.encode())} bytes, "
        f"{len(run.tokenizer.encode(sentence))} tokens", f"\"Reading {scale.READING_HOURS_PER_DAY} hours a day, every day: {years}. "
        f"Llama 2 read it in {said['days']:.0f} days.\"", f"from step 0 to {p['steps']}",
        f"held-out stories in {float(model_bpb):.2f} bits per byte, gzip in {float(gzip_bpb):.2f}",
        f"needs the {info['bytes_on_disk'] / 1e6:.1f} MB file first", "ship in 16 bits and why people run them in 4 bits",
        f"odds for all {cfg.d_vocab:,} tokens", "\"Temperature 0: always the favourite. Temperature 2:",
        f"\"{cfg.d_model} numbers per token", f"you get {flops / (a100.peak_flops_bf16 * scale.DEFAULT_MFU * 3600) / 1e6:.1f} "
        f"million GPU-hours (the Llama 2 paper reports {big.reported_gpu_hours:,.0f}): on 6,000 GPUs, {said['days']:.0f} days.",
        f"After {rows[0]['steps']} steps the biggest wins: held-out loss {rows[-1]['final_val_loss']:.2f}, against "
        f"{rows[1]['final_val_loss']:.2f} and {rows[0]['final_val_loss']:.2f}.",
        f"has taken only {budget / rows[-1]['flops_per_step']:.0f} steps and is at {sizes.val_loss_at_flops(rows[-1], budget):.2f}.",
        # common questions
        f"a held-out loss of {p['val_loss']:.3f}", f"e^-{p['val_loss']:.3f} = {math.exp(-p['val_loss']):.0%}",
        f"its loss there ({p['val_loss']:.3f})", f"its last training loss ({metrics[-1]['loss']:.3f})",
        f"start at {math.log(cfg.d_vocab):.2f}?", f"evenly over {cfg.d_vocab:,} tokens, so the right token gets probability "
        f"1/{cfg.d_vocab} and the loss is −ln(1/{cfg.d_vocab}) = ln {cfg.d_vocab} = {math.log(cfg.d_vocab):.2f}",
        "\"Why 2 bytes per parameter?\"", "as a 16-bit number", "32-bit is twice", "8-bit and 4-bit",
        f"right {bridge['precision']:.0%} of the time", f"precision {bridge['precision']:.2f} is about "
        f"{bridge['precision'] / base:.0f} times", f"about {base:.0%} of the held-out tokens",
        f"its {info['bytes_on_disk'] / 1e6:.1f} MB parameter file", f"measured on {compress['text_bytes']:,} bytes of held-out "
        f"stories, {compress['methods']['model']['bits_per_byte']:.2f} bits per byte against {given['bz2 -9']:.2f} for bz2, "
        f"{given['xz -9e']:.2f} for xz and {given['gzip -9']:.2f} for gzip",
        f"{scale.file_size_bytes(n_70b) / 1e9:.0f} GB at {a100.mem_bandwidth / 1e12:.0f} TB/s is about "
        f"{scale.decode_tokens_per_s(n_70b, 'bf16', a100.mem_bandwidth):.0f} tokens per second",
        f"{flops / 1e23:.0f} × 10²³ operations", f"at most {core / 1e11:.1f} × 10¹¹ a second",
        f"about {round(flops / core / 3.15576e7, -3):,.0f} years", f"$2M and {said['days']:.0f} days come from",
        f"reports {big.reported_gpu_hours:,.0f} A100 GPU-hours", f"÷ 6,000 GPUs ÷ 24 = "
        f"{scale.wall_clock_days(big.reported_gpu_hours, 6000):.0f} days; × ~${a100.price_per_hour:.2f} per GPU-hour = "
        f"${scale.cost_usd(big.reported_gpu_hours, a100.price_per_hour) / 1e6:.0f}M",
        f"about {round(built / 60)} minutes of training",
    ]
    guide = (ROOT / "docs/teachers_guide.md").read_text()
    no_plans = re.sub(r"\| \d+-\d+ \||\b\d+-minute\b|\b\d\. \*\*|\bAct \d", " ", guide)  # minutes, numbered steps
    check("docs/teachers_guide.md", no_plans, phrases)


def test_the_readme_and_the_dashboards_texts():
    """The README's prose (its code blocks are commands) and every text the dashboard's pages show, except
    the Interpretability page's: numbers from the library, the benchmarks or a cited source, or definitions."""
    import ast
    import inspect

    from llmcore import errors, serve

    scale, said = _llama()
    big = scale.get_preset("llama-2-70b")
    pyproject = (ROOT / "pyproject.toml").read_text()
    oldest = re.search(r'requires-python = ">=([\d.]+)"', pyproject).group(1)
    clients = [r["clients"] for r in json.loads((ROOT / "benchmarks/results/serve.json").read_text())["rows"]]
    host = inspect.signature(serve.serve).parameters["host"].default
    readme = [
        f"({said['data'] / 1e12:.0f} TB of text, 6,000 GPUs for {said['days']:.0f} days, ~${said['cost'] / 1e6:.0f}M, "
        f"a {said['file_size'] / 1e9:.0f} GB file, in Karpathy's", f"reports {big.reported_gpu_hours:,.0f} A100 GPU-hours)",
        f"Python {oldest}+", f"It listens on {host}",
        f"with {min(clients)} to {max(clients)} clients at once",
        *[f"{code} {words}" for code, words in ((errors.EXIT_OK, "done"), (errors.EXIT_BUG, "a bug in llmcore"),
                                                (errors.EXIT_BAD_INPUT, "bad input"),
                                                (errors.EXIT_RESOURCES, "out of memory or disk space"),
                                                (errors.EXIT_INTERRUPTED, "interrupted"))],
        "(0 = greedy",
    ]
    check("README.md", (ROOT / "README.md").read_text(), readme)

    texts = []
    for page in sorted((ROOT / "dashboard/app_pages").glob("*.py")):
        if page.name == "interpretability.py":  # the steering work's page, tested with it
            continue
        for node in ast.walk(ast.parse(page.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value.strip():
                if not node.value.lstrip().startswith((";", "<", "#")):  # style sheets and markup, not prose
                    texts.append(node.value)
            elif isinstance(node, ast.JoinedStr):  # an f-string: its literal parts (the values are computed)
                literal = " ".join(v.value for v in node.values if isinstance(v, ast.Constant))
                if not literal.lstrip().startswith((";", "<", "#")):
                    texts.append(literal)
    shown = "\n".join(texts)
    captions = [
        f"{big.n_params / 1e9:.0f} billion times {scale.DTYPE_BYTES['bf16']} bytes, about {said['file_size'] / 1e9:.0f} gigabytes",
        f"Llama 2 read about {said['data'] / 1e12:.0f} TB", f"Llama 2's ~{said['data'] / 1e12:.0f} TB",
        f"training FLOPs = {scale.training_flops(1, 1):g} × parameters × tokens", "bytes = 8 + header",
        "32-bit floats, 16-bit (bf16, fp16) and 8-bit integers", "(layer 0, head 0's attention)", "(0 = all)",
        "0 = always the most likely", "every 2 seconds", f"{said['data'] / 1e12:.0f} TB of text is about",
        "The top 10 next tokens", "200 OK",  # the chart's length (model.py asks for 10), HTTP's status
    ]
    check("the dashboard's texts", shown, captions, also=("0", "1"))


def test_the_model_page_has_no_untied_number():
    """docs/stages/model.md: tests/test_notebook_prose.py checks its phrases; here, that nothing else is a number."""
    from llmcore.code_exercises import ATOL
    from llmcore.forward import walk

    run = load_run("storyworld")
    cfg, w = run.model.cfg, walk(run.model, run.tokenizer, "Mia went to the")
    T = len(w.token_ids)
    phrases = [f"| [{T} pos] |", f"[{T} pos, {cfg.d_model} d_model]", f"[{T} pos, {cfg.d_head} d_head] each",
               f"[{T} query_pos, {T} key_pos]", f"[{T} pos, {cfg.d_mlp} d_mlp]", f"| {cfg.n_layers - 1} more blocks",
               f"[{T} pos, {cfg.d_vocab} d_vocab]", f"[{cfg.d_vocab} d_vocab]", f"Every one of the {run.model.n_params():,} parameters",
               f"to within {ATOL:.4f}", "rows add up to 1", "n − 1 in the variance"]
    page = re.sub(r"\b\d\. \*\*", " ", (ROOT / "docs/stages/model.md").read_text())  # the three acts' numbers
    check("docs/stages/model.md", page, phrases)


def test_the_speed_ladder_says_what_chapter_07_says_of_it():
    """07: small models fall far short of the bandwidth bound, and the bigger the model, the larger its share."""
    ladder = json.loads((ROOT / "benchmarks/results/ladder.json").read_text())
    bw = ladder["bandwidth_bytes_per_s"]
    rungs = sorted(ladder["ladder"], key=lambda r: r["n_params"])
    share = [r["decode_tokens_per_s"] / (bw / (r["n_params"] * r["bytes_per_param"])) for r in rungs]
    assert all(s < 0.5 for s in share), "'all fall far short of the bound'"
    assert share == sorted(share), "'the bigger the model, the larger the share of the bound it reaches'"
    assert "the larger the share of the bound it reaches" in " ".join(notebook_prose("07_scale.ipynb").split())
