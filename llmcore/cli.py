"""`llmcore ...`: every stage of the journey from a terminal.

    llmcore corpus storyworld --out story.txt      the pre-training data, with its sizes
    llmcore train --out runs/mine                  pre-train a GPT (tqdm bar with loss, tokens/s)
    llmcore generate storyworld --prompt "Mia"     the inference engine
    llmcore serve storyworld                       the engine behind an OpenAI-compatible HTTP API
    llmcore inspect storyworld --json              the parameter file, number by number
    llmcore export-hf RUN OUT / import-hf DIR OUT  to and from Hugging Face's GPT-2 format
    llmcore scale --preset llama-2-70b             the toy's numbers at Llama-2-70B scale

Each command is a thin wrapper over the library; data outputs take --json. `main` is
the one error boundary: every failure prints one line to stderr and exits with a
documented code (0 done, 1 a bug, 2 bad input, 3 out of memory or disk, 130 interrupted).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from dataclasses import fields
from pathlib import Path

from llmcore.errors import EXIT_BUG, EXIT_CODES, EXIT_INTERRUPTED, EXIT_OK, UserError, explain


def _emit(data, as_json: bool, text: str):
    print(json.dumps(data, indent=2) if as_json else text)


# --- data ---------------------------------------------------------------------------


def cmd_corpus(a):
    from llmcore.corpus import load_corpus
    from llmcore.files import atomic_write, check_output_path
    from llmcore.tokenizer import load_tokenizer

    if a.out:
        check_output_path(a.out)
    corpus = load_corpus(a.name, a.split, n_chars=a.n_chars)
    tok = load_tokenizer(a.tokenizer) if a.tokenizer else None
    if a.out:
        atomic_write(a.out, corpus.text)
    stats = {"corpus": corpus.name, "split": a.split, "source": corpus.source, **corpus.stats(tok)}
    if a.out:
        stats["written_to"] = a.out
    _emit(stats, a.json, "\n".join(f"{k:>16}: {v:,}" if isinstance(v, int) else f"{k:>16}: {v}" for k, v in stats.items()))


# --- pre-training -------------------------------------------------------------------


def cmd_train(a):
    from llmcore.progress import ProgressBar
    from llmcore.recipe import configure
    from llmcore.train import TrainConfig, train

    given = {f.name: getattr(a, f.name) for f in fields(TrainConfig) if getattr(a, f.name, None) is not None}
    cfg, choice = configure(given, resume_from=a.out if a.resume else None)  # flags win; pick() fills the rest
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun, only rank 0 reports
    bar = ProgressBar(disable=a.quiet or not main_process, samples=not a.quiet)

    def announce(ev):  # what was picked and why, once training starts (a refusal before it stays one line)
        if ev.kind == "start" and choice is not None:
            print(choice.reason, file=sys.stderr, flush=True)

    try:
        out = train(cfg, a.out, callbacks=(announce, bar), resume=a.resume, force=a.force)
    finally:
        bar.close()
    if main_process:
        from llmcore.run import load_run

        print(json.dumps(load_run(out).provenance | {"run": str(out)}, indent=2))


# --- inference ----------------------------------------------------------------------


def cmd_generate(a):
    from llmcore.generate import Sampling, steps
    from llmcore.run import load_run

    run = load_run(a.run)
    s = Sampling(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p, max_new_tokens=a.max_new_tokens,
                 seed=a.seed, stop=tuple(a.stop or ()))
    if a.json:
        rows = [vars(step) for step in steps(run.model, run.tokenizer, a.prompt, s)]
        print(json.dumps({"prompt": a.prompt, "steps": rows, "text": run.tokenizer.decode([r["token_id"] for r in rows])}, indent=2))
        return
    sys.stdout.write(a.prompt)
    ids = []
    for step in steps(run.model, run.tokenizer, a.prompt, s):
        if step.notice:
            print(f"\n[{step.notice}]", file=sys.stderr)
        ids.append(step.token_id)
        sys.stdout.write(step.text if run.tokenizer.kind == "char" else "")
        sys.stdout.flush()
    if run.tokenizer.kind != "char":
        sys.stdout.write(run.tokenizer.decode(ids))
    sys.stdout.write("\n")


def cmd_serve(a):
    from llmcore.serve import serve

    print(f"llmcore serve: {a.run} at http://{a.host}:{a.port}/v1 (OpenAI-compatible; Ctrl+C stops)", file=sys.stderr)
    serve(a.run, host=a.host, port=a.port, max_batch=a.max_batch)


# --- parameters ---------------------------------------------------------------------


def cmd_inspect(a):
    from llmcore.params import inspect_file
    from llmcore.run import MODEL_FILE, resolve_run

    path = Path(a.file)
    if not path.is_file():
        path = resolve_run(a.file) / MODEL_FILE
    info = inspect_file(path, n_values=a.values)
    if a.json:
        print(json.dumps(info, indent=2))
        return
    print(f"{info['file']}\n  {info['n_params']:,} parameters stored as {info['dtype']} "
          f"({info['bytes_per_param']:.3g} bytes each)\n  {info['identity']}")
    print("  first numbers of", info["first_values"]["tensor"], ":", ", ".join(f"{v:.4f}" for v in info["first_values"]["values"]))
    for t in info["tensors"]:
        print(f"  {t['name']:<32} {t['dtype']:>5} {str(t['shape']):>14} {t['bytes']:>10,} bytes")


def cmd_export_hf(a):
    from llmcore.hf import export_hf
    from llmcore.run import load_run

    print(export_hf(load_run(a.run), a.out))


def cmd_import_hf(a):
    from llmcore.hf import import_hf

    print(import_hf(a.folder, a.out))


# --- scale --------------------------------------------------------------------------


def cmd_scale(a):
    from llmcore import scale

    if a.check:
        check = scale.llama2_70b_check()
        _emit(check, a.json, scale.format_check(check))
        return
    est = scale.estimate(a.preset, params=a.params, tokens=a.tokens, gpus=a.gpus, price=a.price, mfu=a.mfu,
                         accelerator=a.accelerator, dtype=a.dtype)
    _emit(est, a.json, scale.format_estimate(est))


# --- the model as a compressor --------------------------------------------------------


def _read_file(path, what: str) -> bytes:
    """A regular input file, refused (never read) if it is a FIFO, a device or over the 64 MB limit."""
    from llmcore.compress import MAX_INPUT_BYTES
    from llmcore.files import read_bytes

    return read_bytes(path, what, limit=MAX_INPUT_BYTES)


def _token_bar(quiet: bool):
    """A progress(done, total) callback drawing a tqdm bar, and a function to close it."""
    from tqdm import tqdm

    bar = None

    def progress(done, total):
        nonlocal bar
        bar = bar or tqdm(total=total, unit="token", disable=quiet)
        bar.update(done - bar.n)

    return progress, lambda: bar and bar.close()


def _code(a, fn, verb):
    from llmcore.files import atomic_write, check_output_path
    from llmcore.run import load_run

    check_output_path(a.output)  # a device, FIFO or symlink as output is refused before any work
    run, data = load_run(a.run), _read_file(a.input, "input file")
    progress, close = _token_bar(a.quiet)
    out = fn(run, data, progress=progress)
    close()
    atomic_write(a.output, out)
    print(f"{verb} {a.input} ({len(data):,} bytes) -> {a.output} ({len(out):,} bytes)")


def cmd_compress(a):
    from llmcore.compress import compress

    _code(a, compress, "compressed")


def cmd_decompress(a):
    from llmcore.compress import decompress

    _code(a, decompress, "decompressed (checksum verified)")


def cmd_compare_compressors(a):
    from llmcore.compress import compare_compressors
    from llmcore.corpus import load_corpus
    from llmcore.run import load_run

    run = load_run(a.run)
    try:
        text = _read_file(a.text, "text file").decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{a.text} is not UTF-8 text (byte offset {e.start})") from None
    train = load_corpus(a.train, "train").text if a.train else None
    progress, close = _token_bar(a.quiet or a.json)
    r = compare_compressors(run, text, train_text=train, progress=progress)
    close()
    rows = [f"{'method':<24}{'bytes':>12}{'bits/byte':>11}{'given train':>13}{'bits/byte':>11}"]
    for name, m in r["methods"].items():
        g = m.get("given_train_bytes")
        rows.append(f"{name:<24}{m['bytes']:>12,}{m['bits_per_byte']:>11.3f}"
                    + (f"{g:>13,}{m['given_train_bits_per_byte']:>11.3f}" if g is not None else ""))
    _emit(r, a.json, "\n".join(rows))


# --- interpretability -----------------------------------------------------------------


def cmd_sae_train(a):
    from tqdm import tqdm

    from llmcore.interpret.sae import train_sae_for_run

    overrides = {k: v for k, v in (("d_sae", a.d_sae), ("k", a.k), ("steps", a.steps), ("seed", a.seed)) if v is not None}
    bar = None  # drawn at the first step, so a refusal before it stays one line

    def progress(ev):
        nonlocal bar
        bar = bar or tqdm(unit="step", disable=a.quiet)
        if ev.kind == "step":
            bar.total = ev.steps
            bar.update(ev.step - bar.n)
        elif ev.kind in ("label", "steer") and not a.quiet:
            bar.set_description({"label": "labelling features", "steer": "testing steering"}[ev.kind])

    try:
        path = train_sae_for_run(a.run, layer=a.layer, callbacks=(progress,), **overrides)
    finally:
        if bar is not None:
            bar.close()
    from llmcore.interpret.sae import load_sae_file

    m = load_sae_file(path)[1]["metrics"]
    print(", ".join(f"{k} {m[k]:.3f}" for k in ("l0", "variance_explained", "dead_fraction", "loss_recovered") if k in m))
    print(path)


def cmd_features(a):
    from llmcore.interpret.features import format_report, report
    from llmcore.interpret.sae import load_sae
    from llmcore.run import load_run

    run = load_run(a.run)
    r = report(run, load_sae(run.path), concept=a.concept, feature=a.feature, top=a.top)
    _emit(r, a.json, format_report(r))


def cmd_steer(a):
    from llmcore.generate import Sampling
    from llmcore.interpret.features import default_strength
    from llmcore.interpret.sae import load_sae
    from llmcore.interpret.steer import steer_side_by_side
    from llmcore.run import load_run

    run = load_run(a.run)
    sae = load_sae(run.path)
    rule = default_strength(run, sae, a.feature) if a.strength is None or a.mode is None else {}
    strength = rule["strength"] if a.strength is None else a.strength
    mode = rule["mode"] if a.mode is None else a.mode
    s = Sampling(temperature=a.temperature, max_new_tokens=a.max_new_tokens, seed=a.seed)
    plain, steered = steer_side_by_side(run, sae, a.feature, strength, a.prompt, s, mode=mode)
    r = {"prompt": a.prompt, "feature": a.feature, "strength": strength, "mode": mode,
         "strength_rule": rule.get("why") if a.strength is None else None, "plain": plain, "steered": steered}
    how = f"{a.feature} ({mode} at {strength:g}" + (f": {rule['why']})" if a.strength is None else ")")
    _emit(r, a.json, f"without steering: {a.prompt}{plain}\n\nwith {how}: {a.prompt}{steered}")


# --- the parser ---------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with a malformed command line reported like every other error: one line, exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


TRAIN_EXAMPLES = """\
The model's shape, context, batch, lr and steps not given are picked for the size of
the text and the budget (llmcore.recipe.pick), and the choice is printed with its reason.

examples:
  the story world with the shipped recipe (4,000 steps):
    llmcore train --out runs/mine
  your own text, one token per character (a novel, a play, song lyrics):
    llmcore train --corpus my.txt --tokenizer char --out runs/my-text
  in the time you have: warm-up and decay fit 2 minutes, ending on --min-lr:
    llmcore train --corpus my.txt --tokenizer char --max-seconds 120 --out runs/two-minutes
  your choice wins over the picked one (here the model's shape):
    llmcore train --corpus my.txt --tokenizer char --max-seconds 120 --preset micro --out runs/mine
  resume a run that was stopped or killed, from its last checkpoint (its settings come with it):
    llmcore train --out runs/mine --resume
  data-parallel over 2 processes (each takes half of every batch):
    torchrun --standalone --nproc_per_node 2 -m llmcore.cli train --out runs/ddp
"""


def build_parser() -> argparse.ArgumentParser:
    from llmcore.model import PRESETS
    from llmcore.params import DTYPES
    from llmcore.recipe import PICKED
    from llmcore.train import DEVICES, TrainConfig

    epilog = "exit codes:\n" + "\n".join(f"  {code:<4} {what}" for code, what in EXIT_CODES.items())
    p = _Parser(prog="llmcore", description="Learn how an LLM works by running one.", epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="log what the library is doing; show tracebacks of bugs")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, fn, help):
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    c = command("corpus", cmd_corpus, "write a corpus (or one split) to a file and print its sizes")
    c.add_argument("name", help="storyworld, python-docs, or a path to a .txt file or folder")
    c.add_argument("--split", default="train", choices=["train", "val", "all"], help="which part")
    c.add_argument("--n-chars", type=int, default=None, help="limit the size (characters)")
    c.add_argument("--out", help="write the text here")
    c.add_argument("--tokenizer", help="a tokenizer.json, to count tokens too")
    c.add_argument("--json", action="store_true", help="print JSON")

    t = command("train", cmd_train, "pre-train a GPT and write a run directory")
    t.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the examples' lines
    t.epilog = TRAIN_EXAMPLES
    t.add_argument("--out", required=True, help="the run directory to write (required)")
    t.add_argument("--resume", action="store_true", help="continue the unfinished run in --out from its last "
                   "checkpoint; its settings come from the checkpoint (flags given must match them; a time "
                   "budget keeps its schedule)")
    t.add_argument("--force", action="store_true", help="start over in an --out that holds a run: its model, SAE "
                   "and checkpoint are deleted once the new run is ready to start, then replaced")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    defaults = TrainConfig()
    choices = {"preset": list(PRESETS), "save_dtype": list(DTYPES), "device": list(DEVICES)}  # the library's lists
    for f in fields(TrainConfig):  # one flag per config field; its help is the field's own sentence
        kind = type(getattr(defaults, f.name))
        kind = {type(None): float if f.name == "max_seconds" else int}.get(kind, kind)
        default = "picked for the text and budget" if f.name in PICKED else getattr(defaults, f.name)
        t.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind, default=None,
                       choices=choices.get(f.name), metavar=f.name.upper(),
                       help=f"{f.metadata['help']} (default: {default})")

    g = command("generate", cmd_generate, "continue a prompt with a trained model")
    g.add_argument("run", help="a run directory or a shipped run name (e.g. storyworld)")
    g.add_argument("--prompt", default="Once upon a time", help="the text to continue")
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy; higher = more surprising")
    g.add_argument("--top-k", type=int, default=0, help="sample only from the k most likely tokens (0 = all)")
    g.add_argument("--top-p", type=float, default=1.0, help="sample from the smallest set with this total probability")
    g.add_argument("--max-new-tokens", type=int, default=100, help="how many tokens to add")
    g.add_argument("--seed", type=int, default=0, help="same seed, same text")
    g.add_argument("--stop", action="append", help="stop at this string (repeatable)")
    g.add_argument("--json", action="store_true", help="print every step with its probabilities")

    v = command("serve", cmd_serve, "serve a run over HTTP with the OpenAI API (completions, chat, streaming), batched")
    v.add_argument("run", help="a run directory or a shipped run name (e.g. storyworld)")
    v.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: this machine only)")
    v.add_argument("--port", type=int, default=8000, help="the port to listen on")
    v.add_argument("--max-batch", type=int, default=16, help="requests computed together in one forward pass")

    i = command("inspect", cmd_inspect, "look inside a parameter file: sizes, tensors, raw numbers")
    i.add_argument("file", help="a .safetensors file, a run directory or a shipped run name")
    i.add_argument("--values", type=int, default=8, help="how many raw numbers to show")
    i.add_argument("--json", action="store_true", help="print JSON")

    e = command("export-hf", cmd_export_hf, "write a run as a Hugging Face GPT-2 folder")
    e.add_argument("run", help="a run directory or shipped run name")
    e.add_argument("out", help="the folder to write")

    m = command("import-hf", cmd_import_hf, "turn a Hugging Face GPT-2 folder (safetensors) into a run")
    m.add_argument("folder", help="a folder with config.json, model.safetensors, tokenizer.json")
    m.add_argument("out", help="the run directory to write")

    s = command("scale", cmd_scale, "parameters, file size, training compute, cost and speed at scale")
    s.add_argument("--preset", default="llama-2-70b", help="gpt2-124m, llama-2-7b, llama-2-13b, llama-2-70b, gpt-3-175b")
    s.add_argument("--params", type=float, help="override the parameter count")
    s.add_argument("--tokens", type=float, help="training tokens")
    s.add_argument("--gpus", type=int, help="number of GPUs")
    s.add_argument("--price", type=float, help="dollars per GPU-hour")
    s.add_argument("--mfu", type=float, help="model FLOPs utilisation, 0..1")
    s.add_argument("--accelerator", default="a100-80gb", help="a100-80gb, h100-sxm or this-machine")
    s.add_argument("--dtype", default="bf16", help="fp32, bf16, fp16, int8 or int4")
    s.add_argument("--check", action="store_true", help="check the explainer's Llama 2 70B claims")
    s.add_argument("--json", action="store_true", help="print JSON")
    for name, fn, what in (("compress", cmd_compress, "compress a UTF-8 text file with a model (arithmetic coding)"),
                           ("decompress", cmd_decompress, "decompress a file made by `llmcore compress`, with the same run")):
        z = command(name, fn, what)
        z.add_argument("run", help="a run directory or a shipped run name (the same for both directions)")
        z.add_argument("input", help="the file to read")
        z.add_argument("output", help="the file to write")
        z.add_argument("--quiet", action="store_true", help="no progress bar")

    k = command("compare-compressors", cmd_compare_compressors, "the model's compressed size against gzip, bz2 and xz")
    k.add_argument("run", help="a run directory or a shipped run name")
    k.add_argument("text", help="a UTF-8 text file (held-out text: `llmcore corpus storyworld --split val --out val.txt`)")
    k.add_argument("--train", help="also compare given the training text: a corpus name or file (e.g. storyworld)")
    k.add_argument("--quiet", action="store_true", help="no progress bar")
    k.add_argument("--json", action="store_true", help="print JSON")
    sae = command("sae", None, "sparse autoencoders on a run's activations")
    sae_sub = sae.add_subparsers(dest="sae_command", required=True, metavar="ACTION")
    st = sae_sub.add_parser("train", help="train an SAE and save sae.safetensors in the run", description="train an SAE and save sae.safetensors in the run")
    st.set_defaults(fn=cmd_sae_train)
    st.add_argument("run", help="a run directory (the shipped runs are read-only: copy one first)")
    st.add_argument("--layer", type=int, help="which block to read (default: block 0's attention output, the measured choice)")
    st.add_argument("--d-sae", type=int, help="number of features")
    st.add_argument("--k", type=int, help="features active per token (TopK)")
    st.add_argument("--steps", type=int, help="optimizer steps")
    st.add_argument("--seed", type=int, help="seed for initialisation and batch order")
    st.add_argument("--quiet", action="store_true", help="no progress bar")

    f = command("features", cmd_features, "the SAE's features: concept matches, top contexts, pushed tokens")
    f.add_argument("run", help="a run directory with sae.safetensors, or a shipped run name")
    f.add_argument("--concept", help="show the best feature for this planted concept (e.g. golden_gate_bridge)")
    f.add_argument("--feature", type=int, help="show this feature up close")
    f.add_argument("--top", type=int, default=8, help="how many top contexts")
    f.add_argument("--json", action="store_true", help="print JSON")

    from llmcore.interpret.features import STRENGTH_FACTOR
    from llmcore.interpret.steer import MODES

    sr = command("steer", cmd_steer, "generate with and without a feature steered, side by side")
    sr.add_argument("run", help="a run directory with sae.safetensors, or a shipped run name")
    sr.add_argument("--feature", default="golden_gate_bridge", help="a feature index or a concept name")
    sr.add_argument("--strength", type=float, help="how hard to steer (default: the strength stored for the concept "
                    f"whose steering feature it is, else {STRENGTH_FACTOR:g} x the most the feature fires in held-out stories)")
    sr.add_argument("--mode", choices=MODES, help="raise the feature to at least the strength, clamp it to exactly "
                    "that, or add its direction that many times (default: the stored mode, else raise)")
    sr.add_argument("--prompt", default="Once upon a time", help="the text to continue")
    sr.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    sr.add_argument("--max-new-tokens", type=int, default=60, help="how many tokens to add")
    sr.add_argument("--seed", type=int, default=0, help="same seed, same text")
    sr.add_argument("--json", action="store_true", help="print JSON")
    return p


# Arguments that name files or folders: any bytes the OS allows, even ones that are not UTF-8.
# Every other string argument is text the model reads or a name, and must be real text.
PATH_ARGS = frozenset({"run", "input", "output", "file", "folder", "out", "name", "text", "train", "corpus", "tokenizer"})


def _check_text_args(a) -> None:
    """Refuse text arguments that are not UTF-8 (they reach Python as lone surrogates) by flag name."""
    for name, value in vars(a).items():
        for v in value if isinstance(value, list) else [value]:
            if not isinstance(v, str) or name in PATH_ARGS:
                continue
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as e:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} is not UTF-8 text (a stray byte at character {e.start}); "
                                "pass it as UTF-8") from None


def main(argv=None) -> int:
    """Run one command; returns its exit code (see EXIT_CODES in llmcore.errors and `llmcore --help`).

    The one error boundary: every exception ends here as one line on stderr. Expected
    failures (bad input, special files, permissions, a full disk, memory) say what to
    do; anything else is reported as a bug, with the traceback under --verbose.
    """
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if hasattr(sys.stdout, "reconfigure"):  # a path with non-UTF-8 bytes must never fail to print
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        _check_text_args(a)
        a.fn(a)
    except (Exception, KeyboardInterrupt) as e:
        code, line = explain(e)
        if code == EXIT_BUG and a.verbose:
            traceback.print_exc()
        if code == EXIT_INTERRUPTED:
            print(f"llmcore {a.command}: interrupted", file=sys.stderr)
        else:
            print(f"llmcore {a.command}: error: {line}", file=sys.stderr)
        return code
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
