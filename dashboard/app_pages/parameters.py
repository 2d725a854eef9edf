"""Parameters: the one file a trained model is: its size, its raw bytes, its numbers."""

import tempfile

import state
import streamlit as st

from llmcore.params import dtype_differences
from llmcore.viz.params import dtype_figure, histogram_figure, raw_bytes_html, treemap_figure

st.title("Parameters")
st.markdown("Everything the model learned is a list of numbers in one file. "
            "Its size is no mystery: **bytes = 8 + header + numbers \u00d7 bytes per number**.")
run = state.current_run()
P = state.projector()
info = state.run_info(run)

c1, c2, c3, c4 = st.columns(4)
c1.metric("parameters", f"{info['n_params']:,}")
c2.metric("number format", str(info["dtype"]))
c3.metric("bytes per parameter", f"{info['bytes_per_param']:.2f}")
c4.metric("bytes on disk", f"{info['bytes_on_disk']:,}")
st.markdown(f"The identity: `{info['identity']}` "
            + ("\u2714 holds exactly." if info["identity_holds"] else "\u2718 does not hold!"))

st.header("The raw bytes")
n = st.slider("How many bytes to show", 64, 1024, 256, step=64)
st.html(raw_bytes_html(run.params_file, n))
first = info["first_values"]
st.markdown(f"The first numbers of `{first['tensor']}`, as the model uses them:")
st.code(", ".join(f"{v:+.5f}" for v in first["values"]), language=None)

st.header("All the numbers at once")
log_y = st.toggle("Log scale (shows the rare values far from zero)", value=True)
state.chart(histogram_figure(info, log_y=log_y, projector=P), key="hist")

st.header("Where they live")
state.chart(treemap_figure(run.model.cfg, projector=P), key="tree")
state.table(info["tensors"], height=240)


@st.cache_data(max_entries=4, show_spinner="Saving the model four ways and measuring each\u2026")
def dtype_rows(_run, key: str) -> list[dict]:
    text = state.corpus_head("storyworld", 4000)
    with tempfile.TemporaryDirectory(prefix="llmcore-dtypes-") as folder:
        return dtype_differences(_run, text, folder)


st.header("Fewer bytes per number")
st.markdown("The same model saved as 32-bit floats, 16-bit (bf16, fp16) and 8-bit integers: "
            "how much smaller, and how much worse on held-out text?")
if st.button("Compare fp32 / bf16 / fp16 / int8") or st.session_state.get("dtypes_shown"):
    st.session_state["dtypes_shown"] = True
    with state.guard():
        rows = dtype_rows(run, state.run_key(run))
        state.chart(dtype_figure(rows, projector=P), key="dtypes")
        noise = [r["dtype"] for r in rows[1:] if abs(r["delta_bpb"]) < 2 * r["delta_se"]]
        same = [r["dtype"] for r in rows[1:] if r["delta_bpb"] == 0 and r["delta_se"] == 0]
        st.markdown(f"Measured on {rows[0]['tokens']:,} tokens of held-out text. "
                    + (f"{', '.join(same)} scores every token exactly as fp32 does. " if same else "")
                    + (f"For {', '.join(noise)} the change is smaller than its error bar: on this text it is "
                       "noise, neither better nor worse than fp32. " if noise else "")
                    + "Each bar compares the same tokens, scored by both files.")
        state.table([{"format": r["dtype"], "bytes": r["bytes"], "bits per byte": round(r["bpb"], 5),
                      "change vs fp32": f"{r['delta_bpb']:+.5f} \u00b1 {2 * r['delta_se']:.5f}"} for r in rows])
