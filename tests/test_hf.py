"""Tests for llmcore.hf: export to and import from Hugging Face GPT-2 folders.

The reference is `transformers` itself: an exported run must give the same logits in
`GPT2LMHeadModel`, and a randomly initialised `GPT2LMHeadModel` built here must give
the same logits once imported. Every weight (biases and LayerNorms included) is
randomised first, so a swapped or transposed tensor cannot hide behind zeros and ones.
"""

import json
import shutil

import pytest
import torch

from llmcore.errors import UserError
from llmcore.hf import export_hf, import_hf, save_hf, to_hf_state
from llmcore.params import save_params
from llmcore.run import MODEL_FILE, TOKENIZER_FILE, load_run
from llmcore.tokenizer import BPETokenizer

transformers = pytest.importorskip("transformers")

TEXT = "Once upon a time, Mia went to the river. The fox said hello to the owl.\n" * 20


def randomise(module, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2 + (1.0 if p.ndim == 1 else 0.0) * 0.5)
    return module


@pytest.fixture(scope="module", params=["tiny_run", "tiny_bpe_run"])
def random_run(request, tmp_path_factory):
    """A run directory (char or BPE tokenizer) whose every weight is random and non-trivial."""
    src = request.getfixturevalue(request.param)
    run = load_run(src)
    randomise(run.model, seed=1)
    dst = tmp_path_factory.mktemp("hf") / request.param
    dst.mkdir()
    save_params(run.model, dst / MODEL_FILE, tokenizer_kind=run.tokenizer.kind)
    shutil.copy(src / TOKENIZER_FILE, dst / TOKENIZER_FILE)
    return dst


def ids_for(tok, n_ctx):
    ids = tok.encode("Mia went to the river and the fox")[: n_ctx]
    return torch.tensor([ids, list(reversed(ids))])


def test_export_then_transformers_gives_the_same_logits(random_run, tmp_path):
    run = load_run(random_run)
    out = export_hf(run, tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(hf).__name__ == "GPT2LMHeadModel"
    ids = ids_for(run.tokenizer, run.model.cfg.n_ctx)
    with torch.no_grad():
        ours, theirs = run.model(ids), hf(ids).logits
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() < 1e-4
    assert ours.std().item() > 0.1  # the weights were not trivial
    # the exported tokenizer cuts text into the same ids
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    text = "Mia went to the river."
    assert hf_tok(text)["input_ids"] == run.tokenizer.encode(text)


def test_export_writes_gpt2_names_and_a_plain_config(random_run, tmp_path):
    run = load_run(random_run)
    out = export_hf(run, tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    cfg = run.model.cfg
    assert config["model_type"] == "gpt2" and config["activation_function"] == "gelu_new"
    assert (config["vocab_size"], config["n_positions"], config["n_embd"], config["n_layer"], config["n_head"], config["n_inner"]) == (
        cfg.d_vocab, cfg.n_ctx, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_mlp)
    state = to_hf_state(run.model)
    assert state["transformer.h.0.attn.c_attn.weight"].shape == (cfg.d_model, 3 * cfg.d_model)  # Conv1D: [in, out]
    assert torch.equal(state["transformer.h.1.mlp.c_fc.weight"], run.model.blocks[1].mlp.fc_in.weight.T)


def test_round_trip_export_then_import_is_exact(random_run, tmp_path):
    run = load_run(random_run)
    back = load_run(import_hf(export_hf(run, tmp_path / "hf"), tmp_path / "back"))
    assert back.model.cfg == run.model.cfg
    for k, v in run.model.state_dict().items():
        assert torch.equal(back.model.state_dict()[k], v), k
    assert back.tokenizer.encode(TEXT[:50]) == run.tokenizer.encode(TEXT[:50])
    assert back.provenance["imported_from"] == str(tmp_path / "hf")


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A Hugging Face GPT-2 folder made by transformers: random weights, our BPE tokenizer."""
    tok = BPETokenizer.train(TEXT, vocab_size=280)
    config = transformers.GPT2Config(vocab_size=tok.vocab_size, n_positions=24, n_embd=24, n_layer=2, n_head=3)
    torch.manual_seed(0)
    model = randomise(transformers.GPT2LMHeadModel(config), seed=2).eval()
    folder = tmp_path_factory.mktemp("hf-made") / "gpt2-tiny"
    model.save_pretrained(folder, safe_serialization=True)
    save_hf(tok, folder)
    return folder, model, tok


def test_import_of_a_transformers_model_gives_its_logits(hf_folder, tmp_path):
    folder, hf, tok = hf_folder
    run = load_run(import_hf(folder, tmp_path / "run"))
    assert run.model.cfg.d_model == 24 and run.model.cfg.n_heads == 3 and run.model.cfg.n_ctx == 24
    assert run.tokenizer.vocab_size == tok.vocab_size and run.tokenizer.kind == "bpe"
    ids = torch.tensor([tok.encode("Mia went to the river. The fox")[:24]])
    with torch.no_grad():
        ours, theirs = run.model(ids), hf(ids).logits
    assert (ours - theirs).abs().max().item() < 1e-4
    assert ours.std().item() > 0.1


def test_import_accepts_a_headless_gpt2_model(hf_folder, tmp_path):
    """A `GPT2Model` folder (tensor names without 'transformer.') imports the same."""
    folder, hf, tok = hf_folder
    bare = tmp_path / "bare"
    hf.transformer.save_pretrained(bare, safe_serialization=True)
    save_hf(tok, bare)
    config = json.loads((bare / "config.json").read_text())
    assert config["model_type"] == "gpt2"
    run = load_run(import_hf(bare, tmp_path / "run"))
    ids = torch.tensor([tok.encode("The owl")])
    with torch.no_grad():
        assert (run.model(ids) - hf(ids).logits).abs().max().item() < 1e-4


def copy_folder(src, dst, **config_changes):
    shutil.copytree(src, dst)
    if config_changes:
        config = json.loads((dst / "config.json").read_text())
        for k, v in config_changes.items():
            if v is None:
                config.pop(k, None)
            else:
                config[k] = v
        (dst / "config.json").write_text(json.dumps(config))
    return dst


def refuses(folder, out, match):
    with pytest.raises(UserError, match=match) as e:
        import_hf(folder, out)
    assert "\n" not in str(e.value)
    assert not (out / MODEL_FILE).exists()


def test_import_refuses_a_pickle_only_folder(hf_folder, tmp_path):
    folder, hf, _ = hf_folder
    pickled = copy_folder(folder, tmp_path / "pickled")
    (pickled / "model.safetensors").unlink()
    torch.save(hf.state_dict(), pickled / "pytorch_model.bin")
    refuses(pickled, tmp_path / "out", "pickle")


def test_import_refuses_missing_or_broken_config(hf_folder, tmp_path):
    folder, _, _ = hf_folder
    missing = copy_folder(folder, tmp_path / "missing")
    (missing / "config.json").unlink()
    refuses(missing, tmp_path / "o1", "config.json")
    broken = copy_folder(folder, tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    refuses(broken, tmp_path / "o2", "JSON")
    (broken / "config.json").write_text("[1, 2]")
    refuses(broken, tmp_path / "o3", "gpt2")
    refuses(copy_folder(folder, tmp_path / "incomplete", vocab_size=None), tmp_path / "o4", "vocab_size")
    refuses(copy_folder(folder, tmp_path / "silly", n_head=5), tmp_path / "o5", "n_heads")
    refuses(tmp_path / "nowhere", tmp_path / "o6", "config.json")


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(model_type="llama"), "only gpt2"),
        (dict(activation_function="relu"), "gelu_new"),
        (dict(tie_word_embeddings=False), "untied"),
        (dict(scale_attn_by_inverse_layer_idx=True), "scaling"),
        (dict(vocab_size=281), "shape"),
        (dict(n_embd=30, n_head=3), "shape"),
    ],
)
def test_import_refuses_other_architectures(hf_folder, tmp_path, change, match):
    folder, _, _ = hf_folder
    refuses(copy_folder(folder, tmp_path / "other", **change), tmp_path / "out", match)


def test_import_refuses_broken_weights_and_mismatched_tokenizer(hf_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    folder, _, _ = hf_folder
    weights = load_file(str(folder / "model.safetensors"))
    f = copy_folder(folder, tmp_path / "a")
    save_file({k: v for k, v in weights.items() if "h.1.ln_2" not in k}, str(f / "model.safetensors"))
    refuses(f, tmp_path / "oa", "missing")
    f = copy_folder(folder, tmp_path / "b")
    save_file({**weights, "lm_head.weight": torch.zeros_like(weights["transformer.wte.weight"])}, str(f / "model.safetensors"))
    refuses(f, tmp_path / "ob", "lm_head")
    f = copy_folder(folder, tmp_path / "c")
    (f / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:500])
    refuses(f, tmp_path / "oc", "safetensors|truncated")
    f = copy_folder(folder, tmp_path / "d")
    save_hf(BPETokenizer.train(TEXT, vocab_size=270), f)
    refuses(f, tmp_path / "od", "tokenizer has 270")
    f = copy_folder(folder, tmp_path / "e")
    (f / "tokenizer.json").unlink()
    refuses(f, tmp_path / "oe", "tokenizer")
