"""Interpretability: where the model looks, what it would say after each layer, its features, steering."""

import state
import streamlit as st

from llmcore.generate import Sampling
from llmcore.interpret.lens import attention_patterns, logit_lens
from llmcore.viz.interpret import (
    attention_figure,
    attention_heads_figure,
    concepts_figure,
    contexts_html,
    feature_histogram_figure,
    feature_logits_figure,
    logit_lens_figure,
)

st.title("Interpretability: looking inside")
st.markdown("The model is not a black box: every activation can be read. Attention shows where each token "
            "looks; the logit lens what it would say if it stopped early; a sparse autoencoder splits its "
            "thoughts into **features**, and turning one up steers what it writes.")
run = state.current_run()
sae = state.sae_for(run)
P = state.projector()
cfg = run.model.cfg

TEXT = "Mia walked to the Golden Gate Bridge. The fog was thick, so she"
attn_tab, lens_tab, feat_tab, steer_tab = st.tabs(["Attention", "Logit lens", "Features", "Steering"])


def text_box(key: str) -> str:
    """The text a tab looks inside: each tab that reads text has its own box."""
    return state.capped_text(st.text_area, "Text to look inside", TEXT, state.PROMPT_CHARS, height=80, key=key)


with attn_tab, state.guard():
    text = text_box("attn_text")
    c1, c2, c3 = st.columns([1, 1, 2])
    layer = c1.selectbox("Layer", range(cfg.n_layers), key="attn_layer")
    head = c2.selectbox("Head", range(cfg.n_heads), key="attn_head")
    every = c3.toggle("All heads of the layer", key="attn_all")
    attn = attention_patterns(run.model, run.tokenizer, text)
    fig = attention_heads_figure(attn, layer, projector=P) if every else attention_figure(attn, layer, head, projector=P)
    state.chart(fig, key="attention")
    st.caption("Row = the token reading; column = the token it reads. Rows sum to 1; nothing reads the future.")

with lens_tab, state.guard():
    text = text_box("lens_text")
    state.chart(logit_lens_figure(logit_lens(run.model, run.tokenizer, text), projector=P), key="lens")
    st.caption("Each row unembeds the residual stream after one more block: the guess sharpens layer by layer.")


@st.cache_resource(max_entries=4, show_spinner="Running the model and the SAE over held-out text\u2026")
def encoded(_run, _sae, key: str):
    from llmcore.interpret.features import PEAK_CHARS, encode_text

    return encode_text(_run, _sae, state.corpus_head("storyworld", PEAK_CHARS))


def pick_feature(label: str, key: str) -> int:
    """A feature from a number or a planted concept's name ("golden_gate_bridge")."""
    from llmcore.interpret.features import resolve_feature

    concepts = list(sae.metrics.get("concepts", {}))
    default = "golden_gate_bridge" if "golden_gate_bridge" in concepts else "0"
    query = st.text_input(label, default, max_chars=40, key=key,
                          help="A feature number, or one of the labelled concepts: " + (", ".join(concepts) or "none"))
    return resolve_feature(sae, query.strip())


if sae is None:
    for tab in (feat_tab, steer_tab):
        tab.info("This model has no sparse autoencoder yet, so it has no features to browse or steer. "
                 + ("Turn off \u201cUse my trained model\u201d in the sidebar to explore the shipped model's "
                    "features; training an autoencoder takes minutes, so it needs a local install of llmcore "
                    "(`llmcore sae train <run>`)." if state.live_job() is not None and st.session_state.get("use_live")
                    else "On a local install of llmcore, `llmcore sae train <run>` trains one."))
else:
    with feat_tab, state.guard():
        from llmcore.interpret.features import describe_feature

        concepts = sae.metrics.get("concepts", {})
        if concepts:
            state.chart(concepts_figure(concepts, projector=P), key="concepts")
        feature = pick_feature("Find a feature: a number or a concept name", "feature_query")
        d = describe_feature(run, sae, feature, encoded(run, sae, state.run_key(run)))
        if feature == concepts.get("golden_gate_bridge", {}).get("feature"):
            with st.expander("Why is it pale on \u201cGolden Gate Bridge\u201d itself? (feature absorption)",
                             expanded=True):
                state.bridge_feature(run, sae, concepts["golden_gate_bridge"],
                                     "Mia looked up at the tall towers of the Golden Gate Bridge. "
                                     "The fog rolled in from the bay.")
        st.subheader(f"Feature {feature}" + (f": {d['label']}" if d["label"] else ""))
        st.markdown("**Where it fires hardest** in held-out stories (orange = strongly on):")
        st.html(contexts_html(d["contexts"]))
        left, right = st.columns(2)
        with left:
            state.chart(feature_histogram_figure(d["histogram"], feature, projector=P), key="feature_hist")
        with right:
            state.chart(feature_logits_figure(d["logits"], feature, projector=P), key="feature_logits")

    with steer_tab, state.guard():
        from llmcore.interpret.features import default_strength
        from llmcore.interpret.steer import steer_side_by_side

        st.markdown("Lift one feature to at least a strength at every position while the model writes. "
                    "Golden Gate Claude did this to a large model; here it is a toy story model.")
        feature = pick_feature("Feature to steer", "steer_query")
        # llmcore's one rule: the strength stored for a concept's steering feature, else half
        # the most the feature fires in held-out stories.
        rule = default_strength(run, sae, feature, encoded(run, sae, state.run_key(run)))
        step = 0.05 if rule["strength"] < 5 else 0.5
        default = round(min(max(rule["strength"], step), 500.0) / step) * step
        c1, c2, c3 = st.columns(3)
        strength = c1.slider("Strength", 0.0, float(max(2.0, round(4 * default))), float(default), step,
                             help="The feature is lifted to at least this value at every position")
        prompt = state.capped_text(c2.text_input, "Prompt", "Once upon a time", state.PROMPT_CHARS)
        seed = state.seed_input(c3.number_input, key="steer_seed")
        st.caption(f"Starts at {rule['strength']:g}: {rule['why']}.")
        if st.button("Generate with and without it", type="primary", disabled=seed is None):
            plain, steered = steer_side_by_side(run, sae, feature, strength, prompt,
                                                Sampling(max_new_tokens=60, seed=int(seed)), mode=rule["mode"])
            st.session_state["steered"] = (feature, strength, prompt, plain, steered)
        if "steered" in st.session_state:
            f, s, p, plain, steered = st.session_state["steered"]
            left, right = st.columns(2)
            left.markdown("**Without steering**")
            left.text(p + plain)
            right.markdown(f"**Feature {f} lifted to at least {s:g}**")
            right.text(p + steered)
