"""Home: the tour. The explainer's flowchart with one stage lit, a sentence to read aloud, and that
stage's live artifact, moving: tokens cut one by one, training replayed, a prompt walked through the
model, a distribution per drawn token, text appearing token by token, a feature lighting up."""

import time

import state
import streamlit as st

from llmcore.diagrams import STAGE_TITLES, flowchart, stage_sequence
from llmcore.viz.common import token_html
from llmcore.viz.inference import next_token_figure
from llmcore.viz.model import architecture_figure, step_figure
from llmcore.viz.params import raw_bytes_html
from llmcore.viz.training import loss_figure

STAGES = stage_sequence()
PROMPT = "Once upon a time"
WALK_PROMPT = "Mia went to the"  # the Model page's own default
BRIDGE_TEXT = "Mia looked up at the tall towers of the Golden Gate Bridge. The fog rolled in from the bay."
TICK = 1.0  # seconds between animation frames
PACES = (10, 20, 30, 45, 60)  # seconds per stage while playing
# One or two sentences per stage, for a teacher to read out while the stage plays.
NARRATION = {
    "data": "A language model learns from text and nothing else. First the text is cut into tokens, short "
            "pieces with a number each, and those numbers are all the model ever sees.",
    "pretraining": "Training shows the model a window of text and asks it, at every position, for the next token; "
                   "every wrong guess nudges all its numbers a little. Watch its writing turn from noise into stories.",
    "parameters": "Everything it learned is this one file of numbers. Its size is simply the count of numbers times "
                  "the bytes per number: for Llama 2 70B, 70 billion times 2 bytes, about 140 gigabytes.",
    "model": "The numbers fill the shape of a GPT. Follow a prompt through it: tokens become vectors, each block's "
             "attention and MLP add to them, and the last step scores every token it could write next.",
    "inference": "The inference engine asks the model one question, again and again: which token comes next? "
                 "It draws one from these probabilities, appends it, and asks again.",
    "text": "Token after token, the draws become text. The shading shows how sure the model was of each piece.",
    "interpretability": "And we can look inside. A sparse autoencoder splits the model's activity into features; "
                        "this one lights up around the Golden Gate Bridge, and holding it on makes the model "
                        "talk about the bridge.",
}

st.title("How a large language model works, as software you can run")
st.markdown("Data \u2192 pre-training \u2192 a file of parameters \u2192 a model \u2192 text, and a look inside. "
            "Every picture below comes from the small GPT that ships with this app.")
P = state.projector()

st.session_state.setdefault("tour", 0)
st.session_state.setdefault("tour_since", time.monotonic())
st.session_state.setdefault("tour_playing", False)


def go(by: int):
    """Back / Next: move to another stage and start its animation from the beginning."""
    st.session_state.tour = (st.session_state.tour + by) % len(STAGES)
    st.session_state.tour_since = time.monotonic()
    st.session_state.tour_done = False


def play():
    st.session_state.tour_playing = not st.session_state.tour_playing
    st.session_state.tour_since = time.monotonic()
    st.session_state.tour_done = False


playing = st.session_state.tour_playing
# A row that wraps instead of squeezing: on a projector or a phone no label is cut short.
with st.container(horizontal=True, vertical_alignment="bottom", key="tour_controls"):
    st.button("\u25c0 Back", on_click=go, args=(-1,), key="tour_back", shortcut="Left",
              help="The stage before (key: \u2190)")
    st.button("\u23f8 Pause" if playing else "\u25b6 Play the tour", on_click=play, key="tour_play",
              type="primary", shortcut="P", help="Move on by itself, one stage at the pace chosen (key: P)")
    st.button("Next \u25b6", on_click=go, args=(1,), key="tour_next", shortcut="Right",
              help="The next stage (key: \u2192)")
    pace = st.select_slider("Seconds per stage", PACES, value=30, key="tour_pace", width=260,
                            help="How long Play stays on each stage: long enough to read the sentence out")


def frames_of(stage: str, run) -> list:
    """The frames of a stage's animation (each drawn for one TICK); one frame is a still picture."""
    if stage == "data":
        tok = state.current_tokenizer()
        line = state.corpus_head("storyworld", 400).split(". ")[0] + "."
        pieces = tok.pieces(line)
        return [(line, pieces, n) for n in range(1, len(pieces) + 1, 2)] + [(line, pieces, len(pieces))]
    if stage == "pretraining":
        timeline = state.run_timeline(run)
        every = max(1, len(timeline) // 8)  # about 8 snapshots, from the random start to the end
        return timeline[::every] + ([timeline[-1]] if timeline and (len(timeline) - 1) % every else []) or [None]
    if stage == "model":
        w = state.forward_walk(run, state.run_key(run), WALK_PROMPT, 0, 0)
        return [(w, step) for step in w.steps]
    if stage in ("inference", "text"):
        steps = state.generation(run, state.run_key(run), PROMPT, 0.8, 0, 1.0, 24, 0)
        if stage == "inference":
            return [(steps, i) for i in range(min(8, len(steps)))]
        return [(steps, n) for n in range(2, len(steps) + 2, 2)]
    return [None]


def artifact(stage: str, frame, n_frames: int, i: int):
    """Draw frame `i` of the stage's live thing, from the run the pages show."""
    if stage == "data":
        line, pieces, n = frame
        st.markdown(f"A line of the training text, **{len(line)} characters**, cut into **{len(pieces)} tokens** "
                    "(the number beside each is its id):")
        st.html(token_html(pieces[:n]))
        return
    run = state.current_run()
    if stage == "pretraining":
        metrics = state.run_metrics(run)
        fig = loss_figure(metrics, projector=P)
        if frame is None:
            st.markdown("Training predicts the next token, again and again: the loss (how surprised it is) falls.")
        else:
            st.markdown(f"**Step {frame['step']:,}**: after *Once upon a time* it writes:")
            text = (frame.get("samples") or {}).get(PROMPT) or next(iter((frame.get("samples") or {"": ""}).values()))
            st.html(token_html([(PROMPT, -1), (text[:160].replace("\n", " "), -1)], highlight=[0.0, 0.6],
                               show_ids=False))
            fig.add_vline(x=max(frame["step"], 1), line_dash="dash", line_color="#888")
        state.chart(fig, key="tour_loss")
    elif stage == "parameters":
        info = state.run_info(run)
        st.markdown(f"Everything it learned is one file: **{info['n_params']:,} numbers** in "
                    f"**{info['bytes_on_disk']:,} bytes** ({info['identity']}). Its first bytes:")
        st.html(raw_bytes_html(run.params_file, 64))
    elif stage == "model":
        w, step = frame
        st.markdown(f"*{state.md_escape(WALK_PROMPT)}*, step {i + 1} of {n_frames}: "
                    f"**{state.md_escape(step.title)}** ({state.md_escape(step.text)})")
        left, right = (st.container(), st.container()) if P else st.columns([2, 3])
        with left:
            state.chart(architecture_figure(w.cfg, lit=step.part, projector=P, width=30), key="tour_model")
        with right:
            state.chart(step_figure(w, step.key, projector=P, width=34, brief=True), key="tour_step")
    elif stage == "inference":
        steps, k = frame
        so_far = PROMPT + "".join(s.text for s in steps[:k])
        st.markdown(f"Token {k + 1}: after *{state.md_escape(so_far)}* the model offers these; "
                    f"the engine drew **{state.md_escape(steps[k].text)}**.")
        state.chart(next_token_figure(steps[k].alternatives, steps[k].text, projector=P), key="tour_next_token")
    elif stage == "text":
        steps, n = frame
        shown = steps[:n]
        st.markdown("Token after token becomes text (shaded by how sure the model was of each):")
        st.html(token_html([(PROMPT, -1)] + [(s.text, s.token_id) for s in shown],
                           highlight=[0.0] + [s.prob for s in shown], show_ids=False))
    elif stage == "interpretability":
        sae = state.sae_for(run)
        concepts = sae.metrics.get("concepts", {}) if sae is not None else {}
        if "golden_gate_bridge" in concepts:
            state.bridge_feature(run, sae, concepts["golden_gate_bridge"], BRIDGE_TEXT)
        else:
            from llmcore.interpret.lens import attention_patterns
            from llmcore.viz.interpret import attention_figure

            st.markdown("Looking inside: where each token looks (layer 0, head 0's attention).")
            attn = attention_patterns(run.model, run.tokenizer, BRIDGE_TEXT)
            state.chart(attention_figure(attn, 0, 0, projector=P), key="tour_attn")


animating = not st.session_state.get("tour_done", False)


@st.fragment(run_every=TICK if playing or animating else None)
def tour():
    """The lit flowchart, the narration and the artifact; reruns alone every TICK while something moves."""
    elapsed = time.monotonic() - st.session_state.tour_since
    if playing and elapsed >= pace:
        go(1)
        elapsed = 0.0
    stage = STAGES[st.session_state.tour]
    st.subheader(f"Stage {st.session_state.tour + 1} of {len(STAGES)}: {STAGE_TITLES[stage]}")
    # Two drawings of the flowchart, one shown by the screen's width (CSS in state.BASE_CSS):
    # left to right on a wide screen, top to bottom on a phone, where a wide one shrinks to specks.
    with st.container(key="wide_flow"):
        st.mermaid_chart(flowchart(highlight=stage), alt=f"The flowchart, {STAGE_TITLES[stage]} lit")
    with st.container(key="narrow_flow"):
        st.mermaid_chart(flowchart(highlight=stage, direction="TD"), alt=f"The flowchart, {STAGE_TITLES[stage]} lit")
    st.markdown(f"> {NARRATION[stage]}")
    with state.guard():
        run = None if stage == "data" else state.current_run()  # the data stage needs no model (or torch)
        frames = frames_of(stage, run)
        i = min(int(elapsed / TICK), len(frames) - 1)
        artifact(stage, frames[i], len(frames), i)
        state.page_link(stage, label=f"Open the {STAGE_TITLES[stage]} page \u2192")
        if not playing and i == len(frames) - 1 and not st.session_state.get("tour_done"):
            st.session_state.tour_done = True  # the animation is over: a full run stops the timer
            st.rerun()


tour()

st.divider()
st.markdown("**Every stage has its own page** (the chart's boxes are not clickable here):")
LINKS = ("data", "pretraining", "parameters", "model", "inference", "interpretability", "scale")
per_row = 2 if P else 4
for row in range(0, len(LINKS), per_row):  # one st.columns per row: on a phone they stack in reading order
    for col, stage in zip(st.columns(per_row), LINKS[row : row + per_row]):
        with col:
            state.page_link(stage, label=STAGE_TITLES[stage])
