"""Pre-training: replay how the shipped model learned, or train a tiny one live (capped)."""

import live
import state
import streamlit as st

from llmcore.viz.common import MONO_FAMILY, continuation_html
from llmcore.viz.training import embedding_figure, loss_figure, timeline_figure


def sample_html(prompt: str, text: str) -> str:
    """A prompt (grey) and what the model wrote (bold), escaped, on as few lines as it needs.

    New lines show as \u21b5 without breaking the line: an early model writes little but
    new lines, and drawn as breaks its samples made the page thousands of pixels tall.
    """
    return (f'<div class="llmcore-sample" style="font-family:{MONO_FAMILY};font-size:0.9em;'
            f'border-left:3px solid #0072B2;padding:2px 8px;margin:4px 0;white-space:pre-wrap;'
            f'overflow-wrap:anywhere;max-height:7.5em;overflow-y:auto">'
            f'{continuation_html(prompt, text, newlines="mark")}</div>')


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
    # On a projector the chart gets the whole width (half of it made a thumbnail), the samples above it.
    left, right = (st.container(), st.container()) if P else st.columns([1, 1])
    with left:
        st.markdown(f"**What it writes at step {step:,}** (greedy, after each prompt):")
        for prompt, text in (row.get("samples") or {}).items():
            st.html(sample_html(prompt, text[:400]))
    with right:
        fig = loss_figure(metrics, projector=P)
        fig.add_vline(x=step, line_dash="dash", line_color="#888")
        state.chart(fig, key="replay_loss")
    # Toggles, not expanders: a plotly table drawn inside a closed expander measured its rows at
    # zero width, and they overlapped once opened. Drawn only when asked for, each is laid out visible.
    if st.toggle("Play it as an animation", key="show_timeline"):
        with state.guard():
            state.chart_by_width(lambda wrap: timeline_figure(timeline, metrics, projector=P, wrap=wrap),
                                 key="replay_timeline")
    if any("embedding_2d" in r for r in timeline) and st.toggle("How the token embeddings arrange themselves",
                                                                 key="show_embeddings"):
        with state.guard():
            state.chart(embedding_figure(timeline, projector=P), key="replay_embeddings")

st.header("Train your own, here and now")
st.caption(f"Caps that keep a shared server healthy: presets {' / '.join(live.PRESETS)}, at most "
           f"{live.MAX_STEPS} steps and {live.MAX_SECONDS} seconds. One model trains at a time on this server; "
           "the others wait in line, first come, first served. The result is yours for this session only.")
job = state.live_job()
with st.form("train"):
    c1, c2, c3 = st.columns(3)
    preset = c1.radio("Model size", live.PRESETS, horizontal=True)
    tokenizer = c2.radio("Tokenizer", ("char", "bpe"), horizontal=True)
    source = c3.radio("Text", ("story world", "my own text"), horizontal=True)
    n_steps = st.slider("Steps", 10, live.MAX_STEPS, 150, step=10)
    n_chars = st.slider("Characters of the story world", 20_000, live.MAX_CHARS, 100_000, step=20_000)
    # No max_chars: the browser would drop a longer paste without a word; Train refuses it with one.
    own = st.text_area(f"Your own text ({live.MIN_OWN_CHARS:,} to {live.MAX_OWN_CHARS:,} characters)", height=100)
    start = st.form_submit_button("Train", type="primary")
if start:
    with state.guard():
        if job is not None and job.running:  # one place in the line per visitor
            st.warning("Your model is already training or waiting its turn: stop or cancel it first.")
        else:  # joins the line; deleted once this session ends or sits unused
            new = live.LiveJob(session_id=state.session_id(), preset=preset, steps=n_steps, n_chars=n_chars,
                               tokenizer=tokenizer, own_text=own if source == "my own text" else None)
            if job is not None:
                job.close()  # one trained run per session: the old one's folder goes
            st.session_state["live_job"] = job = new


@st.fragment(run_every=1.0 if job is not None and job.running else None)
def progress(polling: bool):
    job = state.live_job()
    if job is None:
        return
    st.progress(min(1.0, job.step / job.steps), text=job.describe())
    if job.status == "queued" and st.button("Cancel", key="cancel_training", help="Leave the line"):
        job.cancel()
    if job.status == "running" and st.button("Stop", key="stop_training"):
        job.cancel()
    if job.status == "cancelled":
        st.info("You left the line; press Train to join it again.")
        if polling:
            st.rerun()  # a full rerun stops the polling
        return
    if job.status == "queued":  # nothing to draw yet but the place in the line
        return
    state.chart(loss_figure(job.rows, projector=state.projector()), key="live_loss")
    for prompt, text in job.samples.items():
        st.html(sample_html(prompt, text[:400]))
    if job.status == "error":
        st.error(job.error)
    elif job.status == "expired":
        st.info("Your trained model was deleted after the session sat unused; press Train to make a new one.")
    elif not job.running:
        info = job.run.meta.get("provenance", {}) if job.run else {}
        if job.status == "time_up":
            st.warning(f"Time's up: training stops after {live.MAX_SECONDS} seconds on this shared server, so it "
                       f"ran {info.get('steps', job.step)} of the {job.steps} steps you asked for. "
                       "The model is saved as it was at that point.")
        st.success(f"Trained: {info.get('steps', job.step)} steps, held-out loss {info.get('val_loss', 0):.3f} "
                   f"({info.get('val_bpb', 0):.3f} bits per byte). Switch it on in the sidebar "
                   "(\u201cUse my trained model\u201d) to generate with it and look inside it.")
        if polling:
            st.rerun()  # a full rerun: the sidebar offers the model, the polling stops


progress(job is not None and job.running)
