"""Pre-training: replay how the shipped model learned, or train a tiny one live (capped)."""

import html

import live
import state
import streamlit as st

from llmcore.viz.common import MONO_FAMILY
from llmcore.viz.training import embedding_figure, loss_figure, timeline_figure


def sample_html(prompt: str, text: str) -> str:
    """A prompt (grey) and what the model wrote (bold), escaped; new lines shown as \u21b5."""
    def show(s):
        return html.escape(s).replace("\n", "\u21b5\n")

    return (f'<div style="font-family:{MONO_FAMILY};font-size:0.9em;border-left:3px solid #0072B2;'
            f'padding:2px 8px;margin:4px 0;white-space:pre-wrap;overflow-wrap:anywhere">'
            f'<span style="color:#888">{show(prompt)}</span><b>{show(text)}</b></div>')


st.title("Pre-training")
st.markdown("Training shows the model windows of text and asks it, at every position, for the next token. "
            "Each wrong guess nudges all the parameters a little. Loss = how surprised it was (lower is better).")
run = state.current_run()
P = state.projector()

st.header("Watch it learn")
timeline, metrics = state.run_timeline(run), state.run_metrics(run)
if not timeline:
    st.info("This run has no timeline.jsonl to replay; train a new run to record one.")
else:
    steps = [r["step"] for r in timeline]
    step = st.select_slider("Step", options=steps, value=steps[-1], help="Slide back to the random start")
    row = next(r for r in timeline if r["step"] == step)
    left, right = st.columns([1, 1])
    with left:
        st.markdown(f"**What it writes at step {step:,}** (greedy, after each prompt):")
        for prompt, text in (row.get("samples") or {}).items():
            st.html(sample_html(prompt, text[:400]))
    with right:
        fig = loss_figure(metrics, projector=P)
        fig.add_vline(x=step, line_dash="dash", line_color="#888")
        state.chart(fig, key="replay_loss")
    with st.expander("Play it as an animation"), state.guard():
        state.chart(timeline_figure(timeline, metrics, projector=P), key="replay_timeline")
    if any("embedding_2d" in r for r in timeline):
        with st.expander("How the token embeddings arrange themselves"), state.guard():
            state.chart(embedding_figure(timeline, projector=P), key="replay_embeddings")

st.header("Train your own, here and now")
st.caption(f"Caps that keep a shared server healthy: presets {' / '.join(live.PRESETS)}, at most "
           f"{live.MAX_STEPS} steps and {live.MAX_SECONDS} seconds, one training at a time. "
           "The result is yours for this session only.")
job = state.live_job()
with st.form("train"):
    c1, c2, c3 = st.columns(3)
    preset = c1.radio("Model size", live.PRESETS, horizontal=True)
    tokenizer = c2.radio("Tokenizer", ("char", "bpe"), horizontal=True)
    source = c3.radio("Text", ("story world", "my own text"), horizontal=True)
    n_steps = st.slider("Steps", 10, live.MAX_STEPS, 150, step=10)
    n_chars = st.slider("Characters of the story world", 20_000, live.MAX_CHARS, 100_000, step=20_000)
    own = st.text_area(f"Your own text ({live.MIN_OWN_CHARS:,} to {live.MAX_OWN_CHARS:,} characters)",
                       max_chars=live.MAX_OWN_CHARS, height=100)
    start = st.form_submit_button("Train", type="primary")
if start:
    with state.guard():
        if job is not None and job.running:
            st.warning("Your model is still training: stop it first.")
        else:
            new = live.LiveJob(preset=preset, steps=n_steps, n_chars=n_chars, tokenizer=tokenizer,
                               own_text=own if source == "my own text" else None)
            if job is not None:
                job.close()  # one trained run per session: the old one's folder goes
            st.session_state["live_job"] = job = new


@st.fragment(run_every=1.0 if job is not None and job.running else None)
def progress(polling: bool):
    job = state.live_job()
    if job is None:
        return
    st.progress(min(1.0, job.step / job.steps), text=f"step {job.step} of {job.steps}: {job.status}")
    if job.running and st.button("Stop", key="stop_training"):
        job.cancel()
    state.chart(loss_figure(job.rows, projector=state.projector()), key="live_loss")
    for prompt, text in job.samples.items():
        st.html(sample_html(prompt, text[:400]))
    if job.status == "error":
        st.error(job.error)
    elif not job.running:
        info = job.run.meta.get("provenance", {}) if job.run else {}
        st.success(f"Trained: {info.get('steps', job.step)} steps, held-out loss {info.get('val_loss', 0):.3f} "
                   f"({info.get('val_bpb', 0):.3f} bits per byte). Switch it on in the sidebar "
                   "(\u201cUse my trained model\u201d) to generate with it and look inside it.")
        if polling:
            st.rerun()  # a full rerun: the sidebar offers the model, the polling stops


progress(job is not None and job.running)
