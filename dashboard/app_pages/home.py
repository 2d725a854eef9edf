"""Home: the tour. The explainer's flowchart with one stage lit, and that stage's live artifact."""

import state
import streamlit as st

from llmcore.diagrams import STAGE_TITLES, flowchart, stage_sequence
from llmcore.viz.common import token_html
from llmcore.viz.inference import next_token_figure
from llmcore.viz.model import architecture_figure
from llmcore.viz.params import raw_bytes_html
from llmcore.viz.training import loss_figure

STAGES = stage_sequence()
PROMPT = "Once upon a time"
BRIDGE_TEXT = "Mia looked up at the tall towers of the Golden Gate Bridge. The fog rolled in from the bay."

st.title("How a large language model works, as software you can run")
st.markdown("Data \u2192 pre-training \u2192 a file of parameters \u2192 a model \u2192 text, and a look inside. "
            "Every picture below comes from the small GPT that ships with this app.")

st.session_state.setdefault("tour", 0)
back, play, nxt, _ = st.columns([1, 1.3, 1, 4])
if back.button("\u25c0 Back", use_container_width=True):
    st.session_state.tour = (st.session_state.tour - 1) % len(STAGES)
if nxt.button("Next \u25b6", use_container_width=True):
    st.session_state.tour = (st.session_state.tour + 1) % len(STAGES)
playing = play.toggle("Play the tour", key="tour_play", help="Step through the stages every few seconds")


def artifact(stage: str):
    """The live thing each stage shows, from the shipped run."""
    if stage == "data":  # the tokenizer alone: the first page appears before torch has loaded
        tok = state.current_tokenizer()
        line = state.corpus_head("storyworld", 400).split(". ")[0] + "."
        st.markdown(f"A line of the training text, **{len(line)} characters**, cut into "
                    f"**{len(tok.encode(line))} tokens** (the number beside each is its id):")
        st.html(token_html(tok.pieces(line)))
        state.page_link(stage, label=f"Open the {STAGE_TITLES[stage]} page \u2192")
        return
    run = state.current_run()
    if stage == "pretraining":
        rows = state.run_metrics(run)
        st.markdown("Training predicts the next token, again and again: the loss (how surprised it is) falls.")
        state.chart(loss_figure(rows, projector=state.projector()), key="tour_loss")
    elif stage == "parameters":
        info = state.run_info(run)
        st.markdown(f"Everything it learned is one file: **{info['n_params']:,} numbers** in "
                    f"**{info['bytes_on_disk']:,} bytes** ({info['identity']}). Its first bytes:")
        st.html(raw_bytes_html(run.params_file, 64))
    elif stage == "model":
        st.markdown("The parameters fill the shape of a GPT: tokens become vectors, blocks of attention and MLP "
                    "add to them, and the last one becomes a probability for every next token.")
        state.chart(architecture_figure(run.model.cfg, projector=state.projector()), key="tour_model")
    elif stage in ("inference", "text"):
        steps = state.generation(run, state.run_key(run), PROMPT, 0.8, 0, 1.0, 24, 0)
        if stage == "inference":
            mid = steps[len(steps) // 2]
            so_far = PROMPT + "".join(s.text for s in steps[: mid.index])
            st.markdown(f"The engine asks the model for the next token, one at a time. After "
                        f"*{state.md_escape(so_far)}* it considered:")
            state.chart(next_token_figure(mid.alternatives, mid.text, projector=state.projector()), key="tour_next")
        else:
            st.markdown("Token after token becomes text (shaded by how sure the model was of each):")
            st.html(token_html([(PROMPT, -1)] + [(s.text, s.token_id) for s in steps],
                               highlight=[0.0] + [s.prob for s in steps], show_ids=False))
    elif stage == "interpretability":
        sae = state.sae_for(run)
        concepts = (getattr(sae, "metrics", None) or {}).get("concepts", {}) if sae is not None else {}
        if "golden_gate_bridge" in concepts:
            match = concepts["golden_gate_bridge"]
            feature = match["feature"]
            pieces, acts = state.feature_text(run, sae, state.run_key(run), BRIDGE_TEXT, feature)
            st.markdown(f"Looking inside: feature **{feature}** of the sparse autoencoder is its best match for "
                        f"the Golden Gate Bridge (F1 {match.get('f1', 0):.2f} on held-out stories). "
                        "Where it lights up (orange = strongly on):")
            st.html(token_html(pieces, highlight=acts))
        else:
            from llmcore.interpret.lens import attention_patterns
            from llmcore.viz.interpret import attention_figure

            st.markdown("Looking inside: where each token looks (layer 0, head 0's attention).")
            attn = attention_patterns(run.model, run.tokenizer, BRIDGE_TEXT)
            state.chart(attention_figure(attn, 0, 0, projector=state.projector()), key="tour_attn")
    state.page_link(stage, label=f"Open the {STAGE_TITLES[stage]} page \u2192")


@st.fragment(run_every=5 if playing else None)
def tour():
    if playing and st.session_state.get("_tour_ticked"):
        st.session_state.tour = (st.session_state.tour + 1) % len(STAGES)
    st.session_state["_tour_ticked"] = playing
    stage = STAGES[st.session_state.tour]
    st.subheader(f"Stage {st.session_state.tour + 1} of {len(STAGES)}: {STAGE_TITLES[stage]}")
    st.mermaid_chart(flowchart(highlight=stage))
    with state.guard():
        artifact(stage)


tour()

st.divider()
st.markdown("**Every stage has its own page** (the chart's boxes are not clickable here):")
cols = st.columns(4)
for i, stage in enumerate(("data", "pretraining", "parameters", "model", "inference", "interpretability", "scale")):
    with cols[i % 4]:
        state.page_link(stage, label=STAGE_TITLES[stage])
