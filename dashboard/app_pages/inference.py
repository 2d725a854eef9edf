"""Inference: a prompt becomes text one token at a time, each drawn from a distribution."""

import json
import time

import state
import streamlit as st

from llmcore.errors import UserError
from llmcore.generate import Sampling, next_token_probs, sampling_data, steps
from llmcore.guess import first_word, same_word
from llmcore.serve import complete
from llmcore.viz.common import token_html
from llmcore.viz.inference import generation_figure, next_token_figure, sampling_figure

st.title("The inference engine")
st.markdown("The model only ever answers one question: *which token comes next, with what probability?* "
            "Generating is a loop: draw a token, append it, ask again.")
run = state.current_run()
P = state.projector()


@state.visitor_cache(max_entries=8)
def served(_run, key: str, request: str) -> dict:
    """The server's answer to a request (JSON text), once per request: every slider move reruns the page."""
    return complete(_run, json.loads(request))


# A prompt where the next token is open (" town" 8%, " farm" 6%, ...), so every knob visibly reshapes it.
prompt = state.capped_text(st.text_area, "Prompt", "Mia and Tom went to the", state.PROMPT_CHARS, height=80)
# Five knobs in a row; on a projector two rows of three, so no label breaks mid-word.
c1, c2, c3, c4, c5 = [*st.columns(3), *st.columns(3)[:2]] if P else st.columns(5)
temperature = c1.slider("Temperature", 0.0, 2.0, 0.8, 0.05, help="0 = always the most likely token")
top_k = c2.slider("Top-k", 0, 100, 0, help="Keep only the k most likely tokens (0 = all)")
top_p = c3.slider("Top-p", 0.05, 1.0, 1.0, 0.05, help="Keep the most likely tokens up to this total probability")
max_tokens = c4.slider("Max tokens", 1, 200, 60)
seed = state.seed_input(c5.number_input)

with state.guard():
    sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=max_tokens, seed=seed or 0)
    if st.button("Generate", type="primary", disabled=seed is None):
        text_box, bars_box = st.empty(), st.empty()
        done, drawn, cut, deadline = [], 0.0, False, time.monotonic() + state.GENERATE_SECONDS
        for step in steps(run.model, run.tokenizer, prompt, sampling):  # stream: one token at a time
            done.append(step)
            if time.monotonic() > deadline:  # a shared server bounds every request in time, as in length
                cut = True
                break
            text_box.html(token_html([(prompt, -1)] + [(s.text, s.token_id) for s in done],
                                     highlight=[0.0] + [s.prob for s in done], show_ids=False))
            # The bars at most 5 times a second: a figure costs ~50x a token's CPU, and on a shared
            # server one visitor's 200-token stream of figures slowed every other visitor.
            if time.monotonic() - drawn >= 0.2:
                bars_box.plotly_chart(next_token_figure(step.alternatives, step.text, projector=P), theme=None,
                                      key=f"stream_{len(done)}")
                drawn = time.monotonic()
            time.sleep(0.02)
        text_box.empty()
        bars_box.empty()
        st.session_state["generated"] = (prompt, done, sampling)  # the settings that made it, for the request
        if cut:
            st.info(f"Stopped after {state.GENERATE_SECONDS} seconds ({len(done)} tokens): this server is shared, "
                    "so each generation has a time limit.")
    if "generated" in st.session_state:
        gen_prompt, done, made_with = st.session_state["generated"]
        for notice in dict.fromkeys(s.notice for s in done if s.notice):
            st.info(notice)
        st.markdown("**The text** (shaded by the probability the model gave each token it drew):")
        st.html(token_html([(gen_prompt, -1)] + [(s.text, s.token_id) for s in done],
                           highlight=[0.0] + [s.prob for s in done], show_ids=False))
        st.text(gen_prompt + "".join(s.text for s in done))
        state.chart_by_width(lambda wrap: generation_figure(done, gen_prompt, projector=P, wrap=wrap),
                             key="generation")

        st.subheader("Text in, text out")
        st.markdown("Every inference engine you will meet (llama.cpp, vLLM, Ollama, Groq, OpenAI) takes a request "
                    "like the one on the left and answers like the one on the right; `llmcore serve` does it for "
                    "this model over HTTP. The `logprobs` are the probabilities above, as natural logarithms: the "
                    "same tokens, the same numbers.")
        request = {"model": run.name, "prompt": gen_prompt, "max_tokens": min(len(done), 20),
                   "temperature": made_with.temperature, "top_k": made_with.top_k, "top_p": made_with.top_p,
                   "seed": made_with.seed, "logprobs": 5}
        try:
            response = served(run, state.run_key(run), json.dumps(request, sort_keys=True))
        except UserError as e:  # a server refuses a prompt longer than the context; generate slides instead
            st.info(f"A server would answer this request with an error: {e}. (The page slides the window instead.)")
        else:
            left, right = st.columns(2)
            left.caption("POST /v1/completions")
            left.json(request)
            right.caption("200 OK")
            right.json(response, expanded=3)

st.header("How the knobs reshape the distribution")
with state.guard():
    before, after, labels = sampling_data(run.model, run.tokenizer, prompt, sampling, k=15)
    settings = f"temperature {temperature:g}, top-k {top_k or 'off'}, top-p {top_p:g}"
    state.chart(sampling_figure(before, after, labels, settings=settings, projector=P), key="sampling")

st.header("Guess the next word")
st.markdown("A game for the class: read the text, guess the next word, then see what the model expected "
            "and what really came next. The model writes a word a piece (a token) at a time, so its guess "
            "is its most likely first piece, finished the way it would finish it.")
game = st.session_state.setdefault("game", {"round": 0, "you": 0, "model": 0, "played": 0, "revealed": -1})
with state.guard():
    context, actual = state.guess_round(run.tokenizer, state.tokenizer_key(run.tokenizer),
                                        state.corpus_head("storyworld", 20_000), game["round"])
    st.text("\u2026" + context)
    guess = st.text_input("Your guess (one word)", max_chars=40, key=f"guess_{game['round']}")
    b1, b2, score = st.columns([1.4, 1.4, 3] if P else [1, 1, 3])
    if b1.button("Reveal", type="primary") and game["revealed"] != game["round"]:
        top = next_token_probs(run.model, run.tokenizer, context, k=10)
        piece, word, _ = state.model_word(run, state.run_key(run), context)
        game["revealed"], game["played"] = game["round"], game["played"] + 1
        game["you"] += int(same_word(guess, actual))
        game["model"] += int(same_word(word, actual))
        game["top"], game["piece"], game["word"] = top, piece, word
    if b2.button("Next round"):
        game["round"] += 1
        st.rerun()
    score.metric("Score: you vs the model", f"{game['you']} : {game['model']}", help=f"{game['played']} rounds")
    if game["revealed"] == game["round"]:
        esc = state.md_escape
        piece, word = game.get("piece", ""), game.get("word", "")
        how = (f" (its first piece **{esc(piece.strip() or repr(piece))}**, finished as it would finish it)"
               if piece.strip() != word else "")
        st.markdown(f"What really came next: **{esc(actual)}**; you guessed "
                    f"**{esc(first_word(guess)) if guess.strip() else '(nothing)'}**; the model's first choice: "
                    f"**{esc(word)}**{how}.")
        start = next((t for t, _ in game["top"] if t.strip() and actual.startswith(t.strip())), None)
        state.chart(next_token_figure(game["top"], start, title="The model's first pieces (orange: how the real "
                                      "word starts)", projector=P), key="guess")

st.header("Why the engine keeps a KV cache")
st.markdown("Without a cache, every new token re-reads the whole text so far through every layer; with one, "
            "the keys and values of earlier tokens are kept and only the new token is computed.")
with state.guard():
    if st.button("Measure it on this machine"):
        from llmcore.scale import measure_kv_cache

        with st.spinner("Generating with and without the cache\u2026"):
            st.session_state["kv_rows"] = measure_kv_cache(run.model, run.tokenizer, (16, 32, 64, 96))
    if "kv_rows" in st.session_state:
        from llmcore.viz.inference import kv_cache_figure

        state.chart(kv_cache_figure(st.session_state["kv_rows"], projector=P), key="kv")
