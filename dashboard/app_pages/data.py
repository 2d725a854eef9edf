"""Data: the text a model learns from, cut into tokens, and how small it is next to Llama 2's."""

import state
import streamlit as st

from llmcore.corpus import CORPORA
from llmcore.scale import reading_equivalents
from llmcore.viz.common import token_html
from llmcore.viz.data import corpus_sizes_figure

st.title("Pre-training data")
st.markdown("A language model learns from text only. Ours reads a generated world of short stories; "
            "Llama 2 read about 10 TB of the internet (Karpathy's estimate). First the text is cut into **tokens**.")
tok = state.current_tokenizer()

st.header("Your text, as tokens")
with state.guard():
    text = state.capped_text(st.text_area, "Type or paste some text",
                             "Once upon a time, Mia walked to the Golden Gate Bridge.", state.TEXT_CHARS, height=100)
    pieces = tok.pieces(text)
    n_bytes = len(text.encode("utf-8"))
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("characters", f"{len(text):,}")
    c2.metric("bytes (UTF-8)", f"{n_bytes:,}")
    c3.metric("tokens", f"{len(pieces):,}")
    c4.metric("bytes per token", f"{n_bytes / len(pieces):.2f}" if pieces else "-")
    if pieces:
        st.html(token_html(pieces))
        st.caption(f"The {tok.kind} tokenizer of this model knows {tok.vocab_size:,} tokens. "
                   "\u00b7 is a space, \u21b5 a new line; the small number is the token's id, all the model sees.")
    else:
        st.info("Type something above to see its tokens.")

st.header("The corpora")
stats = {}
with st.spinner("Counting the corpora\u2026"):
    for name in CORPORA:
        with state.guard():
            stats[name] = state.corpus_stats(name, tok, state.tokenizer_key(tok))
state.table([{"corpus": n, **{k: round(v, 2) if isinstance(v, float) else v for k, v in s.items()}}
             for n, s in stats.items()])
which = st.selectbox("Read the start of a corpus", list(CORPORA))
st.text(state.corpus_head(which, 600))

st.header("How big is that? Against Llama 2's ~10 TB")
if stats:
    state.chart(corpus_sizes_figure(stats, projector=state.projector()), key="sizes")
r = reading_equivalents(10e12)
st.markdown(f"10 TB of text is about **{r['books']:,.0f} books**, or **{r['reading_years']:,.0f} years** of "
            f"reading for a person who does nothing else. Assumptions: {r['assumptions']['text']}.")
