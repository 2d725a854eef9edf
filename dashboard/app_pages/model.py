"""Model: one prompt followed through the transformer, step by step, with its real numbers."""

import state
import streamlit as st

from llmcore.forward import MAX_WALK_TOKENS, encode_walk_prompt
from llmcore.viz.common import token_html
from llmcore.viz.inference import next_token_figure
from llmcore.viz.model import architecture_figure, step_figure, stream_figure

st.title("Model")
st.markdown("The file of parameters is the model's brain; here is the body it fills. Type a few words and "
            "follow them through the model: first they become lists of numbers, then each **block** lets every "
            "word look at the words before it (**attention**) and think on its own (the **MLP**), adding its "
            "result to a running total called the **residual stream**. At the end, a score for every token "
            "it knows becomes a **probability** for the next one. Every number below is the model's own, "
            "read from inside it as it runs.")
run = state.current_run()
cfg = run.model.cfg
P = state.projector()


# A run with fewer layers or heads (the visitor's own) keeps the pickers in range.
for name, n in (("model_layer", cfg.n_layers), ("model_head", cfg.n_heads)):
    if st.session_state.get(name, 0) >= n:
        st.session_state[name] = 0
c1, c2, c3 = st.columns([4, 1, 1])
# No max_chars: the browser would cut a long paste without a word. The walk refuses it with a message.
prompt = c1.text_input("Prompt", "Mia went to the", key="model_prompt",
                       help=f"At most {min(MAX_WALK_TOKENS, cfg.n_ctx)} tokens: about a sentence")
layer = c2.selectbox("Layer", list(range(cfg.n_layers)), key="model_layer",
                     help="The block shown in detail; the others are one step each")
head = c3.selectbox("Head", list(range(cfg.n_heads)), key="model_head",
                    help="The attention head shown in detail")


def move(by: int, n: int):
    st.session_state.model_step = (st.session_state.get("model_step", 0) + by) % n


with state.guard():
    encode_walk_prompt(run.tokenizer, prompt, cfg.n_ctx)  # a one-line message for empty, too long, not text
    w = state.forward_walk(run, state.run_key(run), prompt, layer, head)
    n = len(w.steps)
    st.markdown(f"Your prompt as the model sees it, **{len(w.token_ids)} tokens** (the small number is each "
                "token's id):")
    st.html(token_html(list(zip(w.pieces, w.token_ids))))

    if st.session_state.get("model_step", 0) >= n:
        st.session_state.model_step = 0
    heading, play = st.columns([3, 1], vertical_alignment="bottom")
    heading.header("Step by step")
    playing = play.toggle("Play", key="model_play", help="Move on one step every 2 seconds")

    @st.fragment(run_every=2 if playing else None)
    def stepper():
        """The controls and the current step; Back, Next and the timer rerun only this part."""
        if playing and st.session_state.get("_model_ticked"):
            move(1, n)
        st.session_state["_model_ticked"] = playing
        back, nxt, slider = st.columns([1.6, 1.6, 4] if P else [1, 1, 5], vertical_alignment="bottom")
        back.button("\u25c0 Back", on_click=move, args=(-1, n), use_container_width=True, key="model_back")
        nxt.button("Next \u25b6", on_click=move, args=(1, n), use_container_width=True, key="model_next")
        i = slider.select_slider("Step", options=list(range(n)), key="model_step",
                                 format_func=lambda j: f"{j + 1}. {w.steps[j].title}")
        step = w.steps[i]
        # On a projector the two figures stack: side by side, large type ran out of room.
        left, right = (st.container(), st.container()) if P else st.columns([2, 3])
        with left:
            state.chart(architecture_figure(cfg, lit=step.part, projector=P, width=30), key="model_arch")
        with right:
            state.chart(step_figure(w, step.key, projector=P, width=34, brief=True), key="model_numbers")
            st.markdown(f"**Step {i + 1} of {n}: {state.md_escape(step.title)}**, in *{step.part}*, "
                        f"shape `{step.shape}`")
            st.markdown(state.md_escape(step.text))
            st.markdown(f"Read from the hook `{step.hook}`." if step.hook else
                        "Computed from the hooks before it (no hook of its own).")
            if step.params:
                used = ", ".join(f"`{p}` ({w.param_counts[p]:,})" for p in step.params)
                st.markdown(f"Parameters used, **{w.n_params(step):,} numbers** of the file: {used}")
            else:
                st.markdown("No parameters of its own: it computes with the numbers of the steps before.")

    stepper()

    st.header("What comes next")
    c1, c2, c3 = st.columns(3)
    c1.metric("The most likely next token", repr(w.next_token))
    c2.metric("its probability", f"{float(w.probs[w.top[0][0]]):.1%}")
    c3.metric("tokens it chose from", f"{cfg.d_vocab:,}")
    alternatives = [(text, float(w.probs[i])) for i, text in w.top]
    state.chart(next_token_figure(alternatives, w.next_token, title="The top 10 next tokens", projector=P),
                key="model_next_tokens")
    st.markdown("The residual stream is the thread through it all: every part adds a vector to it. "
                "The Interpretability page's logit lens reads the same stream after each block.")
    state.chart(stream_figure(w, projector=P, width=40), key="model_stream")
    state.page_link("inference", label="Next: the Inference page, where the model writes text \u2192")
