"""Tests for llmcore.params: round trips in every dtype, the size identity, hostile files.

A parameter file can come from a stranger, so most of this file feeds `load_params`
things that are not llmcore parameter files (empty, random, a pickle with a payload,
truncated, bit-flipped, lying headers, absurd configs, NaN) and checks that each one
ends in a one-line `UserError` and executes nothing.
"""

import json
import pickle
import random
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmcore.errors import UserError
from llmcore.files import atomic_write
from llmcore.model import GPT, GPTConfig
from llmcore.params import (
    DTYPES,
    SCALE_SUFFIX,
    inspect_file,
    load_model,
    load_params,
    quantize_int8,
    read_header,
    save_params,
)

CFG = dict(d_vocab=50, n_ctx=16, d_model=32, n_layers=2, n_heads=2)
SMALL = dict(d_vocab=5, n_ctx=4, d_model=4, n_layers=1, n_heads=1)  # a file of ~2.6 KB
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BYTES_PER_PARAM = {"fp32": 4, "fp16": 2, "bf16": 2}


@pytest.fixture(scope="module")
def model():
    return GPT(GPTConfig(**CFG), seed=0).eval()


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("params") / "small.safetensors"
    save_params(GPT(GPTConfig(**SMALL), seed=1), path, tokenizer_kind="char", provenance={"note": "small"})
    return path


def split_file(path):
    """(header dict incl. __metadata__, data bytes) of a safetensors file."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def write_raw(path, header: dict, data: bytes = b""):
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)
    return path


def rewrite(src, dst, mutate):
    """Copy a parameter file, letting `mutate(header, metadata)` change its header."""
    header, data = split_file(src)
    mutate(header, header["__metadata__"])
    return write_raw(dst, header, data)


def refuses(path, match=None):
    with pytest.raises(UserError, match=match) as e:
        load_params(path)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400, msg  # one line that says what is wrong
    return msg


# --- round trips ---------------------------------------------------------------------


def test_fp32_round_trip_is_exact(model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_params(model, path, tokenizer_kind="bpe", provenance={"steps": 3})
    cfg, state, meta = load_params(path)
    assert cfg == model.cfg
    want = model.state_dict()
    assert state.keys() == want.keys()
    assert all(torch.equal(state[k], want[k]) for k in want)
    assert meta["dtype"] == "fp32" and meta["tokenizer_kind"] == "bpe" and meta["provenance"] == {"steps": 3}
    assert meta["config"] == model.cfg.to_dict()
    loaded, _ = load_model(path)
    assert not loaded.training
    t = torch.randint(0, CFG["d_vocab"], (1, 8))
    assert torch.equal(loaded(t), model(t))


@pytest.mark.parametrize("dtype, rtol", [("fp16", 1e-3), ("bf16", 8e-3)])
def test_half_precision_round_trip_is_close(model, tmp_path, dtype, rtol):
    path = tmp_path / f"m-{dtype}.safetensors"
    save_params(model, path, dtype=dtype)
    _, state, meta = load_params(path)
    assert meta["dtype"] == dtype
    for k, v in model.state_dict().items():
        assert state[k].dtype == torch.float32
        assert torch.allclose(state[k], v, rtol=rtol, atol=1e-6), k
    loaded, _ = load_model(path)
    t = torch.randint(0, CFG["d_vocab"], (1, 8))
    assert torch.allclose(loaded(t), model(t), atol=5e-3)


def test_int8_round_trip_is_close_per_row(model, tmp_path):
    path = tmp_path / "m-int8.safetensors"
    save_params(model, path, dtype="int8")
    header, _, _ = read_header(path)
    _, state, _ = load_params(path)
    for k, v in model.state_dict().items():
        if v.ndim == 2:  # int8 with one fp32 scale per row: error at most half a step of that row
            assert header[k]["dtype"] == "I8" and header[k + SCALE_SUFFIX]["shape"] == [v.shape[0]]
            step = v.abs().amax(dim=1, keepdim=True) / 127
            assert ((state[k] - v).abs() <= step / 2 + 1e-7).all(), k
        else:  # vectors stay fp32, exactly
            assert header[k]["dtype"] == "F32" and torch.equal(state[k], v), k
    loaded, _ = load_model(path)
    t = torch.randint(0, CFG["d_vocab"], (1, 8))
    assert torch.allclose(loaded(t), model(t), atol=0.05)


def test_quantize_int8_docstring_example():
    q, scale = quantize_int8(torch.tensor([[0.25, -1.0], [0.04, 0.01]]))
    assert q.tolist() == [[32, -127], [127, 32]]
    assert torch.allclose(scale, torch.tensor([1 / 127, 0.04 / 127]))
    q, scale = quantize_int8(torch.zeros(2, 3))  # an all-zero row does not divide by zero
    assert (q == 0).all() and torch.isfinite(scale).all()


def test_unknown_dtype_is_user_error(model, tmp_path):
    with pytest.raises(UserError, match="fp32"):
        save_params(model, tmp_path / "x.safetensors", dtype="fp8")
    assert not (tmp_path / "x.safetensors").exists()


# --- the size identity ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_inspect_file_size_identity(model, tmp_path, dtype):
    path = tmp_path / f"m-{dtype}.safetensors"
    save_params(model, path, dtype=dtype)
    info = inspect_file(path)
    n = model.n_params()
    assert info["identity_holds"]
    assert info["bytes_on_disk"] == path.stat().st_size == info["header_bytes"] + info["data_bytes"]
    assert info["n_params"] == n and info["dtype"] == dtype and info["format_version"] == 1
    assert info["data_bytes"] == sum(t["bytes"] for t in info["tensors"])
    if dtype in BYTES_PER_PARAM:
        assert info["data_bytes"] == BYTES_PER_PARAM[dtype] * n
        assert info["bytes_per_param"] == BYTES_PER_PARAM[dtype]
    else:  # int8: 1 byte per matrix entry, 4 per vector entry and per row scale
        sd = model.state_dict()
        matrices = sum(v.numel() for v in sd.values() if v.ndim == 2)
        rows = sum(v.shape[0] for v in sd.values() if v.ndim == 2)
        assert info["data_bytes"] == matrices + 4 * (n - matrices) + 4 * rows
        assert 1 < info["bytes_per_param"] < 2
    assert sum(info["histogram"]["counts"]) == n
    assert len(info["first_values"]["values"]) == 8
    json.dumps(info)  # JSON-able, for the dashboard


# --- atomic writes -------------------------------------------------------------------


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def half_then_crash(tmp):
        tmp.write_bytes(b"half of a new fi")
        raise OSError("disk full")

    with pytest.raises(UserError, match="disk full.*previous version is intact"):
        atomic_write(path, half_then_crash)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]  # no temporary left over
    atomic_write(path, lambda tmp: tmp.write_bytes(b"new"))
    assert path.read_bytes() == b"new"


# --- hostile files -------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"abc", b"\x00" * 8, b"\xff" * 8, b"\x02\x00\x00\x00\x00\x00\x00\x00{}"])
def test_tiny_and_empty_files_are_refused(tmp_path, content):
    refuses(write_bytes(tmp_path / "m.safetensors", content))


def write_bytes(path, content):
    path.write_bytes(content)
    return path


def test_missing_file_and_folder_are_refused(tmp_path):
    refuses(tmp_path / "nope.safetensors", "no such")
    refuses(tmp_path, "a folder, not a parameter file")


def test_random_bytes_are_refused(tmp_path):
    rng = random.Random(0)
    for i in range(50):
        refuses(write_bytes(tmp_path / f"r{i}", rng.randbytes(rng.randint(1, 3000))))


class Payload:
    """Unpickling this creates a marker file: the proof that a loader executed the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "PWNED"
    data = pickle.dumps({"W_E": Payload(marker)})
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Payload(probe))).close()  # the payload is real: unpickling runs it
    assert probe.exists()
    for name in ("model.safetensors", "pytorch_model.bin"):
        path = write_bytes(tmp_path / name, data)
        msg = refuses(path)
        assert "pickle" in msg or "safetensors" in msg
        with pytest.raises(UserError):
            inspect_file(path)
        with pytest.raises(UserError):
            load_model(path)
    assert not marker.exists()


def test_a_torch_save_zip_is_refused(tmp_path, model):
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    refuses(path, "never pickle")


def test_every_truncation_is_refused(small_file, tmp_path):
    raw = small_file.read_bytes()
    cut_file = tmp_path / "cut.safetensors"
    (n,) = struct.unpack("<Q", raw[:8])
    cuts = list(range(0, 8 + n + 8)) + list(range(8 + n + 8, len(raw), 7)) + [len(raw) - 1]
    for cut in cuts:
        cut_file.write_bytes(raw[:cut])
        refuses(cut_file)
    load_params(small_file)  # the whole file is fine


@FUZZ
@given(data=st.data())
def test_bit_flips_give_user_error_or_a_valid_model(small_file, tmp_path, data):
    raw = bytearray(small_file.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    region = data.draw(st.sampled_from(["length", "header", "numbers"]))
    lo, hi = {"length": (0, 8), "header": (8, 8 + n), "numbers": (8 + n, len(raw))}[region]
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(lo, hi - 1))] ^= 1 << data.draw(st.integers(0, 7))
    path = tmp_path / "flipped.safetensors"
    path.write_bytes(bytes(raw))
    try:
        cfg, state, _ = load_params(path)
    except UserError as e:
        assert "\n" not in str(e)
        return
    assert all(torch.isfinite(t).all() for t in state.values())  # a harmless flip: still a usable model
    GPT(cfg).load_state_dict(state)


@FUZZ
@given(junk=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
), field=st.sampled_from(["dtype", "shape", "data_offsets", "entry", "metadata", "config", "format_version", "provenance"]))
def test_junk_in_any_header_field_gives_user_error(small_file, tmp_path, junk, field):
    def mutate(header, meta):
        if field == "entry":
            header["W_E"] = junk
        elif field == "metadata":
            header["__metadata__"] = junk
        elif field in ("dtype", "shape", "data_offsets"):
            header["W_E"][field] = junk
        else:
            meta[field] = junk

    path = rewrite(small_file, tmp_path / "junk.safetensors", mutate)
    try:
        load_params(path)
    except UserError:
        pass


def test_deeply_nested_or_huge_number_header_is_refused(tmp_path):
    refuses(write_bytes(tmp_path / "deep", struct.pack("<Q", 200_000) + b"[" * 200_000))
    big = b'{"a": ' + b"9" * 5000 + b"}"
    refuses(write_bytes(tmp_path / "big", struct.pack("<Q", len(big)) + big))


def test_header_length_beyond_the_file_is_refused(small_file, tmp_path):
    raw = small_file.read_bytes()
    path = write_bytes(tmp_path / "m", struct.pack("<Q", len(raw)) + raw[8:])
    refuses(path, "not a safetensors file")


def test_lying_data_offsets_are_refused(small_file, tmp_path):
    size = small_file.stat().st_size

    def beyond(header, meta):
        header["W_E"]["data_offsets"] = [size, size + 80]

    refuses(rewrite(small_file, tmp_path / "a", beyond), "truncated or its header lies")

    def backwards(header, meta):
        s, e = header["W_E"]["data_offsets"]
        header["W_E"]["data_offsets"] = [e, s]

    refuses(rewrite(small_file, tmp_path / "b", backwards))

    def as_text(header, meta):
        header["W_E"]["data_offsets"] = [str(x) for x in header["W_E"]["data_offsets"]]

    refuses(rewrite(small_file, tmp_path / "c", as_text))

    def wrong_length(header, meta):
        header["W_E"]["shape"] = [5, 5]

    refuses(rewrite(small_file, tmp_path / "d", wrong_length))


def test_ten_gigabyte_tensor_in_a_one_kilobyte_file_is_refused(tmp_path):
    header = {
        "__metadata__": {"format": "llmcore", "format_version": "1", "config": json.dumps(SMALL)},
        "W_E": {"dtype": "F32", "shape": [50_000, 50_000], "data_offsets": [0, 10_000_000_000]},
    }
    path = write_raw(tmp_path / "huge.safetensors", header, b"\x00" * 1000)
    refuses(path, "truncated or its header lies")
    with pytest.raises(UserError):
        read_header(path)


def test_a_config_far_bigger_than_the_file_is_refused_before_building_it(small_file, tmp_path):
    """A 2 KB file must not make the loader allocate a model of a trillion parameters."""

    def absurd(header, meta):
        meta["config"] = json.dumps(dict(d_vocab=1_000_000, n_ctx=100_000, d_model=100_000, n_layers=1000, n_heads=1))

    refuses(rewrite(small_file, tmp_path / "absurd", absurd), "limit")


def test_wrong_shape_dtype_or_missing_tensor_for_the_config(small_file, tmp_path):
    def other_config(header, meta):
        meta["config"] = json.dumps({**SMALL, "d_vocab": 6})

    refuses(rewrite(small_file, tmp_path / "a", other_config), "shape")

    def as_int32(header, meta):
        header["W_E"]["dtype"] = "I32"

    refuses(rewrite(small_file, tmp_path / "b", as_int32), "W_E")

    from safetensors.torch import save_file

    _, meta = read_header(small_file)[:2]
    state = load_params(small_file)[1]
    for name, tensors in [
        ("e", {**state, "W_pos": torch.ones(4, 4, dtype=torch.int8)}),  # int8 without its scale
        ("f", {**state, "W_pos": torch.ones(4, 4, dtype=torch.int8), "W_pos.scale": torch.ones(3)}),
        ("g", {**state, "W_pos": torch.tensor(1, dtype=torch.int8), "W_pos.scale": torch.ones(1)}),
        ("h", {**state, "ln_final.b": torch.ones(4, dtype=torch.int8), "ln_final.b.scale": torch.ones(4)}),
    ]:
        save_file(tensors, str(tmp_path / name), metadata=meta)
        refuses(tmp_path / name, "scale")
    save_file({**state, "W_pos": torch.ones(4, 4, dtype=torch.bool)}, str(tmp_path / "i"), metadata=meta)
    refuses(tmp_path / "i", "W_pos")
    save_file({**state, "W_pos": state["W_pos"].double()}, str(tmp_path / "j"), metadata=meta)
    assert torch.equal(load_params(tmp_path / "j")[1]["W_pos"], state["W_pos"])  # any float dtype is fine

    save_file({k: v for k, v in state.items() if k != "ln_final.b"}, str(tmp_path / "k"), metadata=meta)
    refuses(tmp_path / "k", "missing")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_non_finite_weights_are_refused(tmp_path, bad, dtype):
    m = GPT(GPTConfig(**SMALL))
    with torch.no_grad():
        m.blocks[0].ln1.b[1] = bad  # a vector: kept as it is even in int8 files
        if dtype != "int8":
            m.W_pos[0, 0] = bad
    path = tmp_path / "nan.safetensors"
    save_params(m, path, dtype=dtype)
    refuses(path, "NaN or infinite")


def test_plain_safetensors_without_llmcore_metadata_is_refused(tmp_path, model):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    refuses(path, "not an llmcore parameter file")
    save_file({"x": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    refuses(path, "not an llmcore parameter file")


@pytest.mark.parametrize("version", ["99", "2", "0", "-1", "one", "1.0", ""])
def test_unknown_format_versions_are_refused(small_file, tmp_path, version):
    def set_version(header, meta):
        meta["format_version"] = version

    refuses(rewrite(small_file, tmp_path / "v", set_version), "format version")


@pytest.mark.parametrize(
    "config", ["", "{", "[]", "null", json.dumps({"d_vocab": 5}), json.dumps({**SMALL, "n_heads": 3}), json.dumps({**SMALL, "ln_eps": "x"})]
)
def test_bad_config_in_the_header_is_refused(small_file, tmp_path, config):
    def set_config(header, meta):
        meta["config"] = config

    refuses(rewrite(small_file, tmp_path / "c", set_config))


def test_non_string_metadata_is_refused(small_file, tmp_path):
    for key, value in [("config", SMALL), ("format_version", [1]), ("provenance", {"a": 1}), ("provenance", "{")]:

        def set_value(header, meta, key=key, value=value):
            meta[key] = value

        refuses(rewrite(small_file, tmp_path / "m", set_value))


def test_extra_tensors_are_refused_by_name(small_file, tmp_path):
    """Tensor names are an allow-list: one the config does not need is refused, naming it.

    (A newer layout would bump format_version, which this llmcore refuses with its own message.)
    """
    header, data = split_file(small_file)
    for name, entry in header.items():  # make room for the extra tensor at the front of the data
        if name != "__metadata__":
            entry["data_offsets"] = [x + 4 for x in entry["data_offsets"]]
    header["AAA_extra"] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
    path = write_raw(tmp_path / "extra.safetensors", header, struct.pack("<f", 1.0) + data)
    refuses(path, "'AAA_extra' is not part of this model")


def test_same_model_same_bytes(tmp_path):
    """Identical saves give byte-identical files: the header's keys are written in sorted order.

    (safetensors keeps metadata in a hash map whose order changes between saves; the
    compressor and the SAE key on the file's hash.)
    """
    from llmcore.model import GPT, GPTConfig

    model = GPT(GPTConfig(**SMALL), seed=0)
    provenance = {f"key{i}": i for i in range(20)}
    blobs = set()
    for i in range(6):
        save_params(model, tmp_path / f"m{i}.safetensors", tokenizer_kind="char", provenance=provenance)
        blobs.add((tmp_path / f"m{i}.safetensors").read_bytes())
    assert len(blobs) == 1
    header, meta, _ = read_header(tmp_path / "m0.safetensors")
    raw = json.loads(blobs.pop()[8 : 8 + _])
    assert list(raw) == sorted(raw) and list(raw["__metadata__"]) == sorted(raw["__metadata__"])
    assert load_params(tmp_path / "m0.safetensors")[2]["provenance"] == provenance
