"""Scale: from the toy to Llama-2-70B. The calculator, the explainer's numbers checked, the race between
model sizes, measured speed."""

import state
import streamlit as st

from llmcore.scale import ACCELERATORS, DEFAULT_GPUS, DEFAULT_MFU, DTYPE_BYTES, PRESETS, estimate, llama2_70b_check
from llmcore.viz.scale import headline_numbers, ladder_figure, sizes_figure

st.title("Scale: from our toy to Llama-2-70B")
st.markdown("Same recipe, bigger numbers. Each figure here is a few lines of arithmetic: "
            "file size = parameters \u00d7 bytes; training FLOPs = 6 \u00d7 parameters \u00d7 tokens; "
            "GPU-hours = FLOPs / (peak speed \u00d7 utilisation).")
P = state.projector()

st.header("The calculator")
names = list(PRESETS)
c1, c2, c3 = st.columns(3)
preset = c1.selectbox("Model", names, index=names.index("llama-2-70b"))
accel = c2.selectbox("Accelerator", list(ACCELERATORS))
dtype = c3.selectbox("Number format", list(DTYPE_BYTES), index=list(DTYPE_BYTES).index("bf16"))
c4, c5, c6 = st.columns(3)
gpus = c4.slider("GPUs", 8, 20_000, DEFAULT_GPUS, step=8)
mfu = c5.slider("Utilisation (MFU)", 0.05, 0.8, DEFAULT_MFU, 0.01, help="Fraction of peak FLOP/s really used")
price = c6.slider("Price per GPU-hour ($)", 0.5, 6.0, float(ACCELERATORS[accel].price_per_hour), 0.05)
with state.guard():
    est = estimate(preset, gpus=gpus, mfu=mfu, price=price, accelerator=accel, dtype=dtype)
    st.subheader(f"{preset} on {accel}: what it takes")
    # Numbers as text, not a figure: they wrap and stack on a phone, and grow on a projector.
    cells = headline_numbers(est)
    per_row = 2 if P else 4
    for row in range(0, len(cells), per_row):
        for col, cell in zip(st.columns(per_row), cells[row : row + per_row]):
            col.metric(cell["label"], cell["text"], cell["delta"], delta_color="off", help=cell["help"])
    st.caption(" ".join(c["help"] for c in cells if c["key"] in ("n_params", "file_size")))
    with st.expander("Inputs, their sources, and every result"):
        state.table([{"quantity": k, "value": f"{q['value']:,.4g}" if isinstance(q["value"], (int, float)) else str(q["value"]),
                       "unit": q["unit"], "basis": q.get("basis", "")}
                     for k, q in {**est["inputs"], **est["results"]}.items()])
        for key, source in est["sources"].items():
            st.caption(f"**{key}**: {source}")

st.header("The explainer's numbers, reproduced")
check = llama2_70b_check()
claims = [{"claim": c["claim"], "computed": f"{c['computed']:,.4g}", "reported": f"{c['reported']:,.4g}",
           "unit": c["unit"], "off by": f"{c['rel_error']:.1%}", "ok": "\u2714" if c["ok"] else "\u2718",
           "how": c["how"]} for c in check["claims"]]
state.table(claims)
imp = check["implied"]
st.caption(f"Implied by the paper: MFU {imp['mfu']:.3f}, ${imp['price_per_gpu_hour']:.2f} per GPU-hour, "
           f"{imp['bytes_per_token']:.1f} bytes per token.")

st.header("Bigger is better, but slower")


@st.cache_data(max_entries=1, show_spinner="Reading the three model sizes\u2026")
def race() -> list[dict]:
    from llmcore import sizes

    return sizes.compare()


with state.guard():
    rows = race()
    state.chart(sizes_figure(rows, projector=P), key="sizes")
    small, big = rows[0], rows[-1]
    budget = small["steps"] * small["flops_per_step"]
    st.caption(f"The same stories and recipe at {len(rows)} sizes. After {small['steps']} steps the biggest wins "
               f"(held-out loss {big['final_val_loss']:.2f} against {small['final_val_loss']:.2f}); with the compute "
               f"{small['name']} used, {big['name']} has taken only {budget / big['flops_per_step']:.0f} steps and the "
               f"smallest wins. Each of {big['name']}'s steps took {small['train_tokens_per_s'] / big['train_tokens_per_s']:.1f}x "
               f"as long as {small['name']}'s on the computer that trained them.")

st.header("Measured: speed against size")
with state.guard():
    ladder = state.benchmark_result("ladder")
    if ladder is None:
        st.info("Not measured on this server yet. On a local install of llmcore, "
                "`python benchmarks/bench_ladder.py` measures it and this chart appears.")
    else:
        rungs = ladder.get("ladder") or ladder.get("rungs") if isinstance(ladder, dict) else ladder
        bandwidth = ladder.get("bandwidth_bytes_per_s") if isinstance(ladder, dict) else None
        state.chart(ladder_figure(rungs or [], bandwidth, projector=P), key="ladder")

st.header("The parameters compress the data")
with state.guard():
    comp = state.benchmark_result("compress")
    if comp is None:
        st.info("Not measured on this server yet. On a local install of llmcore, "
                "`python benchmarks/bench_compress.py` compares the model with gzip, bz2 and xz, and the chart appears.")
    else:
        from llmcore.viz.compress import compression_figure

        state.chart(compression_figure(comp, projector=P), key="compress")
        rows = [{"method": k, "bytes": v.get("bytes"), "bits per byte": round(v.get("bits_per_byte", 0), 3)}
                for k, v in comp.get("methods", {}).items()]
        state.table(rows)
