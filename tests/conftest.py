"""Shared fixtures: a seed for every test, and tiny run directories built in-process.

Nothing here downloads: a run directory is a randomly initialised tiny GPT saved with
`llmcore.params.save_params` beside a tokenizer trained on a few storyworld sentences.
Only `trained_run` trains (30 steps of the nano preset, a few seconds), for the tests
that need a model which has learned something and a run with real records. The tests
that train their own runs start from `tiny_train_config` on the corpus file `text_file`.
"""

import random

import pytest
import torch

TINY = dict(n_ctx=32, d_model=32, n_layers=2, n_heads=2)  # the tiny GPT every fixture builds

# Tiny models gain nothing from intra-op threads, and on a shared 2-core machine the
# threads fight: one thread makes a 30-token generation ~10x faster here.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def seed():
    """Same random numbers in every test, whatever ran before it."""
    torch.manual_seed(0)
    random.seed(0)


@pytest.fixture(scope="session")
def story_text() -> str:
    from llmcore.corpus import storyworld

    return storyworld(seed=0, n_chars=5000).text


def make_run(folder, tok, seed: int = 0):
    """Write a run directory (model.safetensors + tokenizer.json) for a random tiny GPT."""
    from llmcore.model import GPT, GPTConfig
    from llmcore.params import save_params
    from llmcore.run import MODEL_FILE, TOKENIZER_FILE

    folder.mkdir(parents=True, exist_ok=True)
    model = GPT(GPTConfig(d_vocab=tok.vocab_size, **TINY), seed=seed)
    save_params(model, folder / MODEL_FILE, tokenizer_kind=tok.kind, provenance={"made_by": "tests/conftest.py"})
    tok.save(folder / TOKENIZER_FILE)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, story_text):
    """Path of a run directory: a random tiny GPT with a character tokenizer."""
    from llmcore.tokenizer import CharTokenizer

    return make_run(tmp_path_factory.mktemp("runs") / "tiny-char", CharTokenizer.train(story_text))


@pytest.fixture(scope="session")
def tiny_bpe_run(tmp_path_factory, story_text):
    """Path of a run directory: a random tiny GPT with a 300-token byte-level BPE tokenizer."""
    from llmcore.tokenizer import BPETokenizer

    return make_run(tmp_path_factory.mktemp("runs") / "tiny-bpe", BPETokenizer.train(story_text, vocab_size=300), seed=1)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """Path of a run that really trained: 30 steps of the nano preset on 20k characters (~5 s)."""
    from llmcore.train import TrainConfig, train

    cfg = TrainConfig(
        corpus="storyworld", n_chars=20_000, tokenizer="char", preset="nano", steps=30, batch_size=8, warmup=5,
        eval_every=10, eval_batches=1, sample_every=30, checkpoint_every=0, device="cpu", seed=0,
    )
    return train(cfg, tmp_path_factory.mktemp("runs") / "trained")


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """Path of a 30,000-character storyworld corpus file, for the tests that train."""
    from llmcore.corpus import storyworld

    path = tmp_path_factory.mktemp("corpus") / "stories.txt"
    path.write_text(storyworld(seed=3, n_chars=30_000).text)
    return path


@pytest.fixture(scope="module")
def tiny_train_config(text_file):
    """`tiny_train_config(**changes)` -> TrainConfig: 12 steps of the nano GPT on `text_file`'s
    characters, checkpoints at steps 4 and 8; keywords change any setting (`steps=4`)."""
    from llmcore.train import TrainConfig

    base = dict(corpus=str(text_file), tokenizer="char", preset="nano", steps=12, batch_size=4,
                eval_every=4, eval_batches=1, sample_every=6, checkpoint_every=4, save_dtype="fp32", warmup=2)
    return lambda **changes: TrainConfig(**(base | changes))
