"""The dashboard, page by page, with Streamlit's AppTest: what each page shows and how it answers input.

The pages run on a run directory built here (a tiny random GPT with a metrics and a
timeline file, and a random SAE whose feature 3 is labelled the Golden Gate Bridge),
pointed to by LLMCORE_DASHBOARD_RUN, so nothing depends on the shipped run except the
two tests that open it. Assertions are on what a visitor sees: text, charts, errors.
"""

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from llmcore.corpus import mentions
from llmcore.errors import UserError

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard" / "streamlit_app.py")
TIMEOUT = 60
sys.path.insert(0, str(ROOT / "dashboard"))  # the pages' helpers: `import state`, `import live`
PAGES = ["app_pages/data.py", "app_pages/pretraining.py", "app_pages/parameters.py", "app_pages/model.py",
         "app_pages/inference.py", "app_pages/interpretability.py", "app_pages/scale.py"]


@pytest.fixture(scope="module")
def dash_run(tmp_path_factory, tiny_bpe_run):
    """A run folder with everything the pages read: model, tokenizer, metrics, timeline, SAE."""
    import torch

    from llmcore.files import sha256
    from llmcore.interpret.sae import save_sae
    from llmcore.interpret.sae_model import SAE, SAEConfig
    from llmcore.run import METRICS_FILE, MODEL_FILE, SAE_FILE, TIMELINE_FILE

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("dash") / "run"
    shutil.copytree(tiny_bpe_run, folder)
    metrics = [{"step": s, "loss": 6 - s / 10} | ({"val_loss": 6.1 - s / 10, "val_bpb": 3 - s / 20} if s % 10 == 0 else {})
               for s in range(1, 31)]
    (folder / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in metrics))
    timeline = [{"step": s, "tokens_seen": 100 * s, "samples": {"Once upon a time": f" the end {s} <b>bold</b>"},
                 "embedding_2d": {"tokens": [" the", "ed", "."], "xy": [[s, 1], [0, s], [1, -s]]}} for s in (0, 10, 30)]
    (folder / TIMELINE_FILE).write_text("".join(json.dumps(r) + "\n" for r in timeline))
    sae = SAE(SAEConfig(hook_name="blocks.1.hook_resid_post", d_model=32, d_sae=64, k=4), seed=0)
    match = {"concept": "golden_gate_bridge", "feature": 3, "threshold": 0.1, "precision": 0.9, "recall": 0.8,
             "f1": 0.85, "label_f1": 0.9, "n_positive": 10}
    save_sae(sae, folder / SAE_FILE, metrics={"concepts": {"golden_gate_bridge": match}},
             model_sha256=sha256(folder / MODEL_FILE).hex())
    old = os.environ.get("LLMCORE_DASHBOARD_RUN")
    os.environ["LLMCORE_DASHBOARD_RUN"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("LLMCORE_DASHBOARD_RUN", None)
    else:
        os.environ["LLMCORE_DASHBOARD_RUN"] = old


def app(page: str | None = None) -> AppTest:
    """A fresh session (its own session state) on `page`, or on the home page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if page:
        at.switch_page(page)
    at.run()
    return at


def ok(at: AppTest):
    """No traceback and no error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def chart_title(c: dict) -> str:
    """A chart's title: in the figure, or moved above it (state.chart keeps it in layout.meta)."""
    return (c["layout"].get("title") or {}).get("text") or (c["layout"].get("meta") or {}).get("title", "")


def titles(at: AppTest) -> list[str]:
    return [chart_title(c) for c in charts(at)]


def html(at: AppTest) -> str:
    return "\n".join(h.proto.body for h in at.get("html"))


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def texts(at: AppTest) -> str:
    return "\n".join([t.value for t in at.text] + [m.value for m in at.markdown])


# --- every page ---------------------------------------------------------------------------


def test_every_page_opens_with_its_charts(dash_run, tmp_path, monkeypatch):
    import state

    monkeypatch.setattr(state, "RESULTS", tmp_path)  # no benchmark results: the page says how to make them
    at = app()
    ok(at)
    assert "How a large language model works" in at.title[0].value
    # pretraining: the loss, then (toggled on) the timeline drawn for a wide and a narrow screen, the embeddings
    expected = {"data": 1, "pretraining": 4, "parameters": 2, "model": 4, "inference": 1, "interpretability": 5, "scale": 0}
    for page in PAGES:
        at.switch_page(page)
        at.run()
        ok(at)
        name = Path(page).stem
        if name == "pretraining":
            assert len(at.get("plotly_chart")) == 1  # the animations wait for their toggles
            at.toggle(key="show_timeline").set_value(True).run()
            at.toggle(key="show_embeddings").set_value(True).run()
            ok(at)
        assert len(at.get("plotly_chart")) >= expected[name], (name, titles(at))
    # the scale page without benchmark results says how to produce them
    assert any("bench_ladder.py" in i.value for i in at.info) and any("bench_compress.py" in i.value for i in at.info)


def test_home_tour_steps_through_the_stages(dash_run):
    at = app()
    ok(at)
    chart = next(m.value for m in at.markdown if "mermaid" in m.value)
    assert "class data lit" in chart
    assert at.subheader[0].value == "Stage 1 of 7: Pre-Training Data"
    assert "llmcore-token" in html(at)  # a line of data as tokens
    assert len(at.get("page_link")) >= 7  # one per stage below the chart, plus the stage's own

    button(at, "Next \u25b6").click().run()
    ok(at)
    assert at.subheader[0].value.endswith("Pre-Training")
    assert "class pretraining lit" in next(m.value for m in at.markdown if "mermaid" in m.value)
    assert any(t.startswith("Loss while training") for t in titles(at))

    button(at, "Next \u25b6").click().run()  # parameters: the file's bytes
    assert "8-byte header length" in html(at)
    button(at, "Next \u25b6").click().run()  # model: the architecture drawn from the config
    ok(at)
    assert at.subheader[0].value.endswith("Model")
    assert any(t.startswith("A GPT with") for t in titles(at))
    button(at, "\u25c0 Back").click().run()
    button(at, "\u25c0 Back").click().run()
    button(at, "\u25c0 Back").click().run()
    button(at, "\u25c0 Back").click().run()  # wraps round to the last stage: a feature lighting up
    ok(at)
    assert at.subheader[0].value.endswith("Interpretability")
    assert "Feature **3**" in texts(at) and "background:#" in html(at)
    assert "feature absorption" in "\n".join(c.value for c in at.caption)  # why it is pale on the name


def test_tour_narrates_plays_at_a_chosen_pace_and_animates(dash_run):
    at = app()
    ok(at)
    said = "\n".join(m.value for m in at.markdown if m.value.startswith("> "))
    assert "cut into tokens" in said  # one or two sentences to read aloud
    assert at.select_slider[0].label == "Seconds per stage" and at.select_slider[0].value == 30
    play = button(at, "\u25b6 Play the tour")
    assert play.proto.shortcut.lower() == "p"  # keys for a clicker or a keyboard: P, → and ←
    assert button(at, "Next \u25b6").proto.shortcut.lower() == "right"
    assert button(at, "\u25c0 Back").proto.shortcut.lower() == "left"
    play.click().run()
    ok(at)
    assert at.session_state["tour_playing"] and button(at, "\u23f8 Pause")
    at.session_state["tour_since"] -= 31  # the pace has passed: the next run moves on by itself
    at.run()
    assert at.subheader[0].value.endswith("Pre-Training") and "noise into stories" in texts(at)
    at.session_state["tour_since"] -= 3  # a few ticks later, a later snapshot of training is replayed
    at.run()
    assert any(m.value.startswith("**Step 10**") or m.value.startswith("**Step 30**") for m in at.markdown)
    button(at, "\u23f8 Pause").click().run()
    button(at, "Next \u25b6").click().run()
    button(at, "Next \u25b6").click().run()  # the Model stage: the Model page's step-through
    ok(at)
    assert any(m.value.startswith("*Mia went to the*, step 1 of") for m in at.markdown)
    at.session_state["tour_since"] -= 2
    at.run()
    assert any(", step 3 of" in m.value for m in at.markdown)
    assert any(t.startswith("A GPT with") for t in titles(at))
    button(at, "Next \u25b6").click().run()
    button(at, "Next \u25b6").click().run()  # text: tokens appear a few at a time
    first = html(at).count("llmcore-token")
    at.session_state["tour_since"] -= 4
    at.run()
    assert html(at).count("llmcore-token") > first


def test_projector_mode_from_the_address(dash_run):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["projector"] = "1"
    at.run()
    ok(at)
    assert at.sidebar.toggle[0].value is True and "font-size: 22px" in html(at)


def test_interpretability_tabs_have_their_own_text(dash_run):
    at = app("app_pages/interpretability.py")
    ok(at)
    assert [t.key for t in at.text_area] == ["attn_text", "lens_text"]
    at.text_area(key="lens_text").input("Tom ran home").run()
    ok(at)
    assert at.text_area(key="attn_text").value != "Tom ran home"


def test_projector_mode_enlarges_type_and_charts(dash_run):
    at = app("app_pages/scale.py")
    at.sidebar.toggle[0].set_value(True).run()
    ok(at)
    assert "font-size: 22px" in html(at)
    at.switch_page("app_pages/inference.py")
    at.run()
    assert charts(at)[0]["layout"]["font"]["size"] == 24
    at.switch_page("app_pages/data.py")  # tables are HTML, so they grow with projector mode's type
    at.run()
    ok(at)
    assert html(at).count('class="llmcore-table"') == 1 and not at.dataframe and not at.table
    assert ".llmcore-table td, .llmcore-table th { font-size: 1.1rem" in html(at)
    at.sidebar.toggle[0].set_value(False).run()
    assert html(at).count('class="llmcore-table"') == 1 and "font-size: 22px" not in html(at)


# --- data -----------------------------------------------------------------------------------


def test_data_page_tokenizes_the_learners_text_safely(dash_run):
    at = app("app_pages/data.py")
    ok(at)
    assert titles(at)[0].startswith("How much text?")
    assert html(at).count('class="llmcore-table"') == 1 and "years" in texts(at)
    at.text_area[0].input("<script>alert('x')</script> & <b>").run()
    ok(at)
    chips = html(at)
    assert "&lt;" in chips and "<script>" not in chips
    assert int(at.metric[2].value) > 5  # tokens
    at.text_area[0].input("").run()
    ok(at)
    assert any("Type something" in i.value for i in at.info)
    at.text_area[0].input("\u00e9\u6f22\u5b57\U0001f600 \x00\x07 " * 400).run()  # past max_chars, odd characters
    ok(at)


# --- pre-training ----------------------------------------------------------------------------


def test_pretraining_replays_the_timeline(dash_run):
    at = app("app_pages/pretraining.py")
    ok(at)
    assert at.select_slider[0].value == 30
    assert "&lt;b&gt;bold" in html(at) and "end 30" in html(at)
    at.select_slider[0].set_value(10).run()
    ok(at)
    assert "end 10" in html(at)
    assert not any(t.startswith(("Watch it learn", "Token embeddings")) for t in titles(at))  # until asked for
    at.toggle(key="show_timeline").set_value(True).run()
    at.toggle(key="show_embeddings").set_value(True).run()
    ok(at)
    assert sum(t.startswith("Watch it learn") for t in titles(at)) == 2  # a wide and a narrow drawing
    assert any(t.startswith("Token embeddings") for t in titles(at))


@pytest.mark.slow
def test_live_training_runs_capped_and_is_this_sessions_only(dash_run):
    import live
    import state

    at = app("app_pages/pretraining.py")
    at.radio[1].set_value("char")  # tokenizer
    at.slider[0].set_value(10)  # steps: the smallest
    at.slider[1].set_value(20_000)  # characters
    button(at, "Train").click().run()
    ok(at)
    job = at.session_state["live_job"]
    assert isinstance(job, live.LiveJob) and job.cfg.steps == 10 and job.cfg.max_seconds <= live.MAX_SECONDS
    deadline = time.time() + 120
    while job.running and time.time() < deadline:
        time.sleep(0.5)
    at.run()
    ok(at)
    assert job.status == "done", job.error
    assert any("Trained: 10 steps" in s.value for s in at.success)
    assert at.get("progress")[0].proto.value == 100
    # the trained model is offered in the sidebar, and the other pages use it when chosen
    toggle = next(t for t in at.sidebar.toggle if t.label == "Use my trained model")
    toggle.set_value(True).run()
    at.switch_page("app_pages/inference.py")
    at.run()
    button(at, "Generate").click().run()
    ok(at)
    assert state.shipped_name() == str(dash_run)
    assert job.run.tokenizer.kind == "char" and at.text[0].value.startswith("Mia and Tom went to the")
    # a second training replaces the first, whose folder is deleted
    folder = job.dir
    job.close()
    assert not folder.exists()


def test_live_training_refuses_bad_settings(dash_run):
    at = app("app_pages/pretraining.py")
    at.radio[2].set_value("my own text")
    at.text_area[0].input("too short")
    button(at, "Train").click().run()
    assert not at.exception
    assert "paste at least" in at.error[0].value
    assert "live_job" not in at.session_state
    with pytest.raises(Exception, match="steps"):
        import live

        live.make_config(preset="nano", steps=5000, n_chars=1, tokenizer="char", own_text=None, folder=dash_run)


# --- parameters -----------------------------------------------------------------------------


def test_parameters_page_shows_the_file(dash_run):
    from llmcore.run import load_run

    run = load_run(dash_run)
    at = app("app_pages/parameters.py")
    ok(at)
    assert at.metric[0].value == f"{run.model.n_params():,}"
    assert any("holds exactly" in m.value for m in at.markdown)
    assert "8-byte header length" in html(at)
    at.slider[0].set_value(1024).run()
    assert "000003f0" in html(at)  # 1024 bytes: 64 lines of 16
    assert {"Where the", "All "} <= {t[:9] if t.startswith("Where the") else t[:4] for t in titles(at)}
    button(at, "Compare fp32 / bf16 / fp16 / int8").click().run()
    ok(at)
    assert any(t.startswith("Fewer bytes per number") for t in titles(at))


# --- model ----------------------------------------------------------------------------------


def walk_of(dash_run, prompt="Mia went to the", layer=0, head=0):
    from llmcore.forward import walk
    from llmcore.run import load_run

    run = load_run(dash_run)
    return walk(run.model, run.tokenizer, prompt, layer=layer, head=head)


def shown_step(at: AppTest) -> str:
    """The step's heading as shown (markdown escapes removed)."""
    return next(m.value for m in at.markdown if m.value.startswith("**Step ")).replace("\\", "")


def test_model_page_steps_through_the_forward_pass(dash_run):
    w = walk_of(dash_run)
    at = app("app_pages/model.py")
    ok(at)
    assert at.title[0].value == "Model"
    # the numbers shown are the walk's: the next token, its tokens, the step count
    assert at.metric[0].value == repr(w.next_token)
    assert at.metric[1].value == f"{float(w.probs[w.top[0][0]]):.1%}"
    assert f"**{len(w.token_ids)} tokens**" in texts(at) and "llmcore-token" in html(at)
    assert shown_step(at).startswith(f"**Step 1 of {len(w.steps)}: Token ids**")
    t = titles(at)
    assert t[0].startswith("A GPT with") and t[1].startswith(f"<b>1/{len(w.steps)}")
    # titles wrapped for a half-width column: the architecture's on two lines, the step's name and shape only
    assert t[0].count("<br>") == 1 and t[1] == f"<b>1/{len(w.steps)} \u00b7 Token ids</b><br>{w.steps[0].shape}"
    assert "The top 10 next tokens" in t and any(x.startswith("What each part adds") for x in t)
    bars = next(c for c in charts(at) if chart_title(c) == "The top 10 next tokens")
    assert bars["data"][0]["x"] == pytest.approx([float(w.probs[i]) for i, _ in w.top], abs=1e-6)
    # Next, Next, Back: the step, the lit box and the numbers move together
    button(at, "Next \u25b6").click().run()
    button(at, "Next \u25b6").click().run()
    ok(at)
    assert at.select_slider(key="model_step").value == 2
    step = w.steps[2]
    assert shown_step(at).startswith(f"**Step 3 of {len(w.steps)}: Position embeddings**")
    assert f"`{step.hook}`" in texts(at) and f"`W_pos` ({w.param_counts['W_pos']:,})" in texts(at)
    numbers = charts(at)[1]
    assert numbers["data"][0]["z"][0][:3] == pytest.approx(step.values[0, :3].tolist(), abs=0.01)  # 2 decimals shown
    button(at, "\u25c0 Back").click().run()
    assert at.select_slider(key="model_step").value == 1
    button(at, "\u25c0 Back").click().run()
    button(at, "\u25c0 Back").click().run()  # wraps round to the last step: the probabilities
    assert shown_step(at).startswith(f"**Step {len(w.steps)} of {len(w.steps)}: Probabilities**")
    # the slider jumps to any step; the architecture lights that step's part
    pattern = [s.key for s in w.steps].index("pattern")
    at.select_slider(key="model_step").set_value(pattern).run()
    ok(at)
    assert "Attention pattern (head 0)" in shown_step(at)
    lit = charts(at)[0]["data"][-1]
    assert lit["fill"] == "toself" and any(y is not None for y in lit["y"])


def test_model_page_layer_and_head_pickers(dash_run):
    w = walk_of(dash_run, layer=1, head=1)
    at = app("app_pages/model.py")
    pattern = [s.key for s in w.steps].index("pattern")
    at.selectbox(key="model_layer").set_value(1)
    at.selectbox(key="model_head").set_value(1).run()
    at.select_slider(key="model_step").set_value(pattern).run()
    ok(at)
    step = w.step("pattern")
    assert "Attention pattern (head 1)" in shown_step(at) and "*block 1 attention*" in shown_step(at)
    assert f"`{step.hook}`" in texts(at) and step.hook == "blocks.1.attn.hook_pattern"
    z = charts(at)[1]["data"][0]["z"]
    assert z[-1] == pytest.approx(step.values[-1].tolist(), abs=1e-3)


def test_model_page_plays_the_steps(dash_run):
    at = app("app_pages/model.py")
    at.toggle(key="model_play").set_value(True).run()
    ok(at)
    first = at.select_slider(key="model_step").value
    at.run()  # what the fragment's timer does every 2 s
    assert at.select_slider(key="model_step").value == first + 1
    at.toggle(key="model_play").set_value(False).run()
    at.run()
    assert at.select_slider(key="model_step").value == first + 1


def test_model_page_refuses_bad_prompts_with_a_message(dash_run, monkeypatch):
    at = app("app_pages/model.py")
    for prompt, says in [("", "prompt is empty"), ("   \n ", "prompt is empty"),
                         ("x" * 10_000, "10,000 characters"), ("Mia went " * 30, "at most")]:
        at.text_input(key="model_prompt").input(prompt).run()
        assert not at.exception, prompt[:20]
        assert len(at.error) == 1 and says in at.error[0].value, (prompt[:20], [e.value for e in at.error])
        assert at.text_input(key="model_prompt").value == prompt  # the box keeps what was typed
        assert at.title[0].value == "Model"
    for prompt in ["<script>alert(1)</script>", "[x](javascript:1) **b**", "\ufffd\u2603\U0001f600\x00"]:
        at.text_input(key="model_prompt").input(prompt).run()
        ok(at)
        assert at.metric[0].value == repr(walk_of(dash_run, prompt).next_token)
        assert "<script>" not in html(at)
        assert not any("](javascript" in m.value for m in at.markdown)
    # A browser cannot send a lone surrogate (it arrives as \ufffd) and AppTest cannot carry one;
    # handed one anyway, the page says what is wrong.
    from streamlit.delta_generator import DeltaGenerator

    real = DeltaGenerator.text_input
    monkeypatch.setattr(DeltaGenerator, "text_input",
                        lambda self, label, *a, **k: "Mia\ud800" if label == "Prompt" else real(self, label, *a, **k))
    at = app("app_pages/model.py")
    assert not at.exception
    assert "lone surrogate" in at.error[0].value


# --- inference ------------------------------------------------------------------------------


def test_inference_generates_with_the_knobs(dash_run):
    at = app("app_pages/inference.py")
    ok(at)
    at.text_area[0].input("Once upon a time")
    at.slider[0].set_value(0.0)  # temperature: greedy
    at.slider[3].set_value(8)  # max tokens
    button(at, "Generate").click().run()
    ok(at)
    text = at.text[0].value
    assert text.startswith("Once upon a time") and len(text) > len("Once upon a time")
    assert any(t.startswith("Token 1:") for t in titles(at))  # the animated generation
    assert any("temperature 0," in t for t in titles(at))
    gen = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("Token 1:"))
    assert len(gen["frames"]) == 8
    # same settings, same text (greedy and seeded)
    button(at, "Generate").click().run()
    assert at.text[0].value == text
    at.slider[1].set_value(3).run()  # top-k 3: the sampled distribution keeps three tokens
    sampled = next(c for c in charts(at) if chart_title(c).startswith("How the knobs"))
    assert sum(p > 0 for p in sampled["data"][1]["y"]) == 1  # temperature 0 still wins: one token


def test_inference_survives_odd_prompts(dash_run):
    at = app("app_pages/inference.py")
    at.slider[3].set_value(4)
    for prompt in ["", "<script>alert(1)</script>", "\u2603\U0001f600\x00", "x" * 500]:
        at.text_area[0].input(prompt)
        button(at, "Generate").click().run()
        ok(at)
        assert at.text[0].value.startswith(prompt)
        if "<script>" in prompt:
            assert "<script>" not in html(at) and "&lt;" in html(at)
        if prompt == "":
            assert any("empty prompt" in i.value for i in at.info)


def test_guess_compares_whole_words(dash_run):
    """The real next word and the model's guess are whole words, the model's finished greedily."""
    from llmcore.guess import first_word, same_word

    assert first_word(" bridge. The") == "bridge" and first_word(", and") == ","
    assert same_word(" Bridge!", "bridge") and not same_word("  ", "") and not same_word("bridges", "bridge")
    at = app("app_pages/inference.py")
    button(at, "Reveal").click().run()
    ok(at)
    game = at.session_state["game"]
    assert game["word"] == first_word(game["word"]) and game["word"].startswith(game["piece"].strip())
    said = next(m.value for m in at.markdown if "What really came next" in m.value)
    assert game["word"] in said.replace("\\", "")


def test_inference_knobs_matter_at_the_default_prompt():
    """The default prompt leaves the next token open: no single token above half (was ',' at 99.7%)."""
    from llmcore.generate import next_token_probs
    from llmcore.run import load_run, resolve_run, shipped_runs

    if "storyworld" not in shipped_runs():
        pytest.skip("the shipped run is not built")
    src = (ROOT / "dashboard" / "app_pages" / "inference.py").read_text()
    prompt = src.split('"Prompt", "', 1)[1].split('"', 1)[0]
    run = load_run(resolve_run("storyworld"))
    assert next_token_probs(run.model, run.tokenizer, prompt, k=1)[0][1] < 0.5


def test_long_paste_is_said_and_kept_up_to_the_limit(dash_run):
    import state

    at = app("app_pages/inference.py")
    at.slider[3].set_value(2)
    at.text_area[0].input("y" * 600)
    button(at, "Generate").click().run()
    ok(at)
    assert any("600 characters is over the limit of 500" in w.value for w in at.warning)
    assert at.text_area[0].value == "y" * 600  # the box keeps what was pasted
    assert at.text[0].value.startswith("y" * 500) and not at.text[0].value.startswith("y" * 501)
    at = app("app_pages/data.py")
    at.text_area[0].input("z" * (state.TEXT_CHARS + 1)).run()
    ok(at)
    assert any(f"over the limit of {state.TEXT_CHARS:,}" in w.value for w in at.warning)
    at = app("app_pages/pretraining.py")  # own text: no browser cap, Train says the limit
    import live

    at.radio[2].set_value("my own text")
    at.text_area[0].input("w " * (live.MAX_OWN_CHARS // 2 + 10))
    button(at, "Train").click().run()
    assert "paste at most" in at.error[0].value


def test_generation_shows_its_request_and_response_as_the_server_would(dash_run):
    """Text in, text out: the request that reproduces the generation, and the server's own answer to it."""
    import math

    from llmcore.run import load_run

    at = app("app_pages/inference.py")
    at.number_input[0].set_value(3).run()
    button(at, "Generate").click().run()
    ok(at)
    done = at.session_state["generated"][1]
    request, response = (json.loads(j.proto.body) for j in at.get("json"))
    assert request["prompt"] == "Mia and Tom went to the" and request["seed"] == 3 and request["logprobs"] == 5
    choice = response["choices"][0]
    n = request["max_tokens"]
    tokenizer = load_run(dash_run).tokenizer
    assert choice["text"] == tokenizer.decode([s.token_id for s in done[:n]])  # the same tokens as the step view
    probs = [math.exp(lp) for lp in choice["logprobs"]["token_logprobs"]]
    assert probs == pytest.approx([s.prob for s in done[:n]], abs=1e-4)  # the same probabilities
    assert response["usage"]["completion_tokens"] == n


def test_bad_seed_is_said_and_nothing_is_generated(dash_run):
    at = app("app_pages/inference.py")
    at.number_input[0].set_value(-3).run()
    ok(at)
    assert any("The seed must be a whole number from 0 to 1,000,000 (got -3)" in w.value for w in at.warning)
    assert button(at, "Generate").disabled
    at.number_input[0].set_value(7).run()
    assert not at.warning and not button(at, "Generate").disabled


def test_live_training_says_when_time_ran_out(dash_run, monkeypatch):
    import live

    monkeypatch.setattr(live, "MAX_SECONDS", 1e-6)  # stops after the first step
    at = app("app_pages/pretraining.py")
    at.radio[1].set_value("char")
    at.slider[0].set_value(30)
    at.slider[1].set_value(20_000)
    button(at, "Train").click().run()
    job = at.session_state["live_job"]
    deadline = time.time() + 120
    while job.running and time.time() < deadline:
        time.sleep(0.3)
    at.run()
    ok(at)
    assert job.status == "time_up", (job.status, job.error)
    assert "stopped at the 1e-06-second cap" in job.describe()
    assert any("Time's up" in w.value and "of the 30 steps" in w.value for w in at.warning)
    job.close()


def test_samples_full_of_new_lines_stay_short():
    src = (ROOT / "dashboard" / "app_pages" / "pretraining.py").read_text()
    ns: dict = {}
    exec(src.split("st.title(")[0], ns)  # the page's imports and helpers, not the page
    out = ns["sample_html"]("Once", "\n" * 300 + "<b>x</b>")
    assert "\n" not in out and out.count("\u21b5") == 300 and "&lt;b&gt;" in out and "max-height" in out


def test_live_folders_go_when_the_session_ends(dash_run, monkeypatch):
    """The reaper deletes a job's folder once its session has gone, or sat unused too long."""
    import weakref

    import live

    monkeypatch.setattr(live, "_JOBS", weakref.WeakValueDictionary())  # only this test's jobs
    job = live.LiveJob(session_id="no-such-session", queue=live.TrainingQueue(),
                       preset="nano", steps=10, n_chars=20_000, tokenizer="char", own_text=None)
    job.wait(120)
    monkeypatch.setattr(live, "_session_alive", lambda sid: False)
    assert live.reap(now=job.seen + 1) == 0 and job.dir.exists()  # gone only a moment: kept
    assert live.reap(now=job.seen + live.GONE_SECONDS + 2) == 1
    assert not job.dir.exists() and job.status == "expired" and job.run is None
    other = live.LiveJob(queue=live.TrainingQueue(), preset="nano", steps=10, n_chars=20_000, tokenizer="char",
                         own_text=None)
    other.wait(120)
    monkeypatch.setattr(live, "_session_alive", lambda sid: None)  # unknown (no runtime): idle time decides
    assert live.reap(now=other.seen + 60) == 0
    assert live.reap(now=other.seen + live.IDLE_SECONDS + 1) == 1 and not other.dir.exists()


class FakeJob:
    """What the training queue reads of a job: its session, status and stop event."""

    def __init__(self, session_id):
        import threading

        self.session_id, self.status, self.stop = session_id, "queued", threading.Event()

    def _start(self):
        self.status = "running"


def test_training_queue_is_first_come_first_served_one_place_per_session():
    import live

    q = live.TrainingQueue(slots=1, limit=3)
    a, b, c = FakeJob("a"), FakeJob("b"), FakeJob("c")
    for job in (a, b, c):
        q.submit(job)
    assert (a.status, b.status, c.status) == ("running", "queued", "queued")
    assert (q.ahead(a), q.ahead(b), q.ahead(c)) == (None, 1, 2)  # the training one counts as ahead
    with pytest.raises(UserError, match="one at a time"):
        q.submit(FakeJob("b"))  # pressing Train again takes no second place
    q.submit(FakeJob(None))  # (sessions unknown, as in a script, are not merged)
    with pytest.raises(UserError, match="waiting to train"):
        q.submit(FakeJob("e"))  # the line is full
    q.cancel(b)  # Cancel: out of the line, the ones behind move up
    assert b.status == "cancelled" and q.ahead(c) == 1
    q.cancel(a)  # Stop: the running job is told to stop; its slot frees when it ends
    assert a.stop.is_set() and c.status == "queued"
    q.finished(a)
    assert c.status == "running" and q.ahead(c) is None
    q.submit(FakeJob("a"))  # a session whose job ended may queue again
    assert q.ahead(q.waiting[-1]) == 2


def test_a_job_whose_visitor_leaves_gives_up_its_place(dash_run, monkeypatch):
    """Tab gone for LEAVE_SECONDS: a waiting job leaves the line; its folder goes later, like any other."""
    import weakref

    import live

    monkeypatch.setattr(live, "_JOBS", weakref.WeakValueDictionary())
    q = live.TrainingQueue(slots=0)  # nothing ever starts: the job stays in line
    job = live.LiveJob(session_id="gone", queue=q, preset="nano", steps=10, n_chars=20_000, tokenizer="char",
                       own_text=None)
    stay = live.LiveJob(session_id="here", queue=q, preset="nano", steps=10, n_chars=20_000, tokenizer="char",
                        own_text=None)
    assert job.describe() == "waiting for your turn: you are next" and stay.describe().endswith("1 ahead of you")
    monkeypatch.setattr(live, "_session_alive", lambda sid: sid == "here")
    t0 = job.seen
    assert live.reap(now=t0 + 1) == 0 and job.status == "queued"  # a moment's drop: kept
    assert live.reap(now=t0 + live.LEAVE_SECONDS + 2) == 0
    assert job.status == "cancelled" and stay.status == "queued" and q.ahead(stay) == 0 and job.dir.exists()
    assert live.reap(now=t0 + live.GONE_SECONDS + 2) == 1 and not job.dir.exists()
    stay.close()
    assert stay.status == "cancelled" and not q.waiting


def test_pretraining_page_shows_the_place_in_line_and_cancels(dash_run, monkeypatch):
    import live

    q = live.TrainingQueue(slots=1)
    for sid in ("other-1", "other-2"):  # one trains, one waits
        q.submit(FakeJob(sid))
    monkeypatch.setattr(live, "QUEUE", q)
    at = app("app_pages/pretraining.py")
    at.radio[1].set_value("char")
    at.slider[0].set_value(10)
    button(at, "Train").click().run()
    ok(at)
    job = at.session_state["live_job"]
    assert job.status == "queued" and at.get("progress")[0].proto.text == "waiting for your turn: 2 ahead of you"
    button(at, "Train").click().run()  # again: still one place
    ok(at)
    assert at.session_state["live_job"] is job and len(q.waiting) == 2
    assert "already training or waiting its turn" in at.warning[0].value
    button(at, "Cancel").click().run()
    ok(at)
    assert job.status == "cancelled" and len(q.waiting) == 1
    assert any("You left the line" in i.value for i in at.info)
    job.close()


def test_guess_the_next_token_keeps_score(dash_run):
    at = app("app_pages/inference.py")
    game = at.session_state["game"]
    assert game["round"] == 0 and game["played"] == 0
    guess = next(t for t in at.text_input if t.label.startswith("Your guess"))
    guess.input("the").run()
    button(at, "Reveal").click().run()
    ok(at)
    assert at.session_state["game"]["played"] == 1
    assert any("What really came next" in m.value for m in at.markdown)
    assert any("The model's first pieces" in t for t in titles(at))
    assert ":" in at.metric[0].value
    button(at, "Reveal").click().run()  # revealing again does not score twice
    assert at.session_state["game"]["played"] == 1
    button(at, "Next round").click().run()
    ok(at)
    assert at.session_state["game"]["round"] == 1
    assert not any("What really came next" in m.value for m in at.markdown)
    hostile = next(t for t in at.text_input if t.label.startswith("Your guess"))
    hostile.input("[x](javascript:alert(1))").run()
    button(at, "Reveal").click().run()
    ok(at)
    said = next(m.value for m in at.markdown if "What really came next" in m.value)
    assert "](javascript" not in said  # markdown from a visitor is escaped


# --- interpretability -----------------------------------------------------------------------


def test_interpretability_attention_lens_and_features(dash_run):
    at = app("app_pages/interpretability.py")
    ok(at)
    t = titles(at)
    assert any(x.startswith("Attention, layer 0 head 0") for x in t)
    assert any(x.startswith("Logit lens") for x in t)
    assert any(x.startswith("Did the SAE find") for x in t)
    assert at.subheader[0].value == "Feature 3: golden_gate_bridge"
    at.selectbox(key="attn_layer").set_value(1).run()
    at.toggle(key="attn_all").set_value(True).run()
    assert any(x.startswith("Layer 1, all heads") for x in titles(at))
    at.text_input(key="feature_query").input("7").run()
    ok(at)
    assert at.subheader[0].value == "Feature 7"
    at.text_input(key="feature_query").input("no_such_concept").run()
    assert not at.exception
    assert "no feature is labelled" in at.error[0].value
    assert any(x.startswith("Logit lens") for x in titles(at))  # the rest of the page still works


def test_steering_side_by_side(dash_run):
    at = app("app_pages/interpretability.py")
    strength = at.slider[0]
    assert 0 < strength.value < strength.max  # a default from the feature's own activations
    strength.set_value(strength.max)
    button(at, "Generate with and without it").click().run()
    ok(at)
    assert any(m.value == f"**Feature 3 lifted to at least {strength.max:g}**" for m in at.markdown)
    plain, steered = at.text[-2].value, at.text[-1].value
    assert plain.startswith("Once upon a time") and steered.startswith("Once upon a time")
    assert plain != steered  # a random SAE clamped hard changes the text
    at.text_input(key="steer_query").input("-1").run()
    assert at.error and not at.exception


def test_an_sae_of_another_model_is_explained_not_hidden(dash_run, tmp_path, monkeypatch):
    """The library's own refusal ("... retrain it with `llmcore sae train ...`") reaches the page."""
    import shutil

    from llmcore.interpret.sae import load_sae_file, save_sae
    from llmcore.run import SAE_FILE

    folder = tmp_path / "run"
    shutil.copytree(dash_run, folder)
    sae, meta = load_sae_file(folder / SAE_FILE)
    save_sae(sae, folder / SAE_FILE, model_sha256="0" * 64)  # as if trained on another model.safetensors
    monkeypatch.setenv("LLMCORE_DASHBOARD_RUN", str(folder))
    at = app("app_pages/interpretability.py")
    assert not at.exception
    assert any("retrain it with `llmcore sae train" in e.value for e in at.error), [e.value for e in at.error]


# --- scale ----------------------------------------------------------------------------------


def test_scale_calculator_and_results(dash_run, tmp_path):
    import state

    at = app("app_pages/scale.py")
    ok(at)
    assert at.subheader[0].value.startswith("llama-2-70b on a100-80gb")
    from llmcore import sizes

    if (sizes.SIZES_DIR / sizes.SPEEDS_FILE).is_file():  # the race between the shipped sizes
        assert any(x.startswith("Bigger learns more") for x in titles(at))
        assert any("the smallest wins" in c.value for c in at.caption)
    assert html(at).count('class="llmcore-table"') >= 1
    at.slider[0].set_value(2000).run()  # GPUs
    ok(at)
    assert {m.label: m.value for m in at.metric}["time on 2,000 GPUs"] == "35.7 days"
    # with benchmark results present, their charts appear
    from llmcore.compress import compare_compressors
    from llmcore.run import load_run

    comp = compare_compressors(load_run(dash_run), "Once upon a time, Mia went to the park. " * 3)
    (tmp_path / "compress.json").write_text(json.dumps(comp))
    ladder = {"bandwidth_bytes_per_s": 1e10, "ladder": [
        {"name": "nano", "n_params": 1e5, "train_tokens_per_s": 5e4, "decode_tokens_per_s": 500, "bytes_per_param": 4},
        {"name": "micro", "n_params": 1e6, "train_tokens_per_s": 2e4, "decode_tokens_per_s": 300, "bytes_per_param": 4}]}
    (tmp_path / "ladder.json").write_text(json.dumps(ladder))
    old, state.RESULTS = state.RESULTS, tmp_path
    try:
        at.run()
        ok(at)
        t = titles(at)
        assert any(x.startswith("Speed against size") for x in t) and any(x.startswith("Compressing") for x in t)
        (tmp_path / "ladder.json").write_text("{not json")
        at.run()
        assert not at.exception and "not valid JSON" in at.error[0].value
    finally:
        state.RESULTS = old


def test_scale_headline_numbers_read_right(dash_run):
    """Llama-2-70B's numbers as a class reads them: whole, with words for units, and the 140 GB explained."""
    at = app("app_pages/scale.py")
    ok(at)
    shown = {m.label: m.value for m in at.metric}
    assert shown == {"parameters": "68.977 B", "parameter file (bf16)": "138 GB",
                     "training data (2 trillion tokens)": "8 TB", "training compute (6 \u00d7 N \u00d7 D)":
                     "8.28 \u00d7 10\u00b2\u00b3 FLOP", "GPU-hours": "1.71 million", "time on 6,000 GPUs": "11.9 days",
                     "cost at $1.15 per GPU-hour": "$1.97 million", "writing speed, 1 user (at most)": "14.8 tokens/s"}
    assert next(m for m in at.metric if m.label == "GPU-hours").delta == "-0.4% vs the paper"
    why = "\n".join(c.value for c in at.caption)
    assert "137.95 GB" in why and "70 B \u00d7 2 bytes gives 140 GB" in why
    at.selectbox[0].set_value("gpt2-124m").run()  # a tiny model: cents, not "m" for milli
    ok(at)
    shown = {m.label: m.value for m in at.metric}
    assert shown["cost at $1.15 per GPU-hour"] == "$4.42" and shown["parameters"] == "124.440 M"
    assert shown["time on 6,000 GPUs"] == "2.3 seconds"


def test_scale_number_formats():
    from llmcore.viz.scale import format_bytes, format_count, format_dollars, format_flops

    assert format_dollars(0.326)["text"] == "$0.33" and format_dollars(326e6)["text"] == "$326 million"
    assert format_count(326e6)["text"] == "326 million" and format_count(1234)["text"] == "1,234"
    assert format_bytes(137.95e9)["text"] == "138 GB" and format_bytes(8e12)["text"] == "8 TB"
    assert format_flops(8.277e23)["text"] == "8.28 \u00d7 10\u00b2\u00b3 FLOP"


def test_errors_are_one_line_never_tracebacks(dash_run):
    from llmcore.errors import UserError

    at = AppTest.from_string(
        "import sys; sys.path.insert(0, {!r})\n"
        "import state, streamlit as st\n"
        "from llmcore.errors import UserError\n"
        "with state.guard():\n    raise UserError('first line\\nsecond line')\n"
        "st.write('after')\n".format(str(ROOT / "dashboard")), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert at.error[0].value == "first line" and at.markdown[0].value == "after"
    assert issubclass(UserError, ValueError)
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert 'showErrorDetails = "none"' in config and "gatherUsageStats = false" in config


@pytest.mark.parametrize("error,said", [
    ("MemoryError()", "out of memory"),
    ("OSError(28, 'No space left on device', '/tmp/x')", "no space left on the disk"),
    ("FileNotFoundError(2, 'No such file or directory', 'runs/gone')", "runs/gone"),
    ("UnicodeEncodeError('utf-8', '\\ud800', 0, 1, 'surrogates not allowed')", "not valid UTF-8"),
    ("ZeroDivisionError('division by zero')", "This is a bug; please report it"),
])
def test_the_dashboard_boundary_is_the_clis(dash_run, error, said):
    """Any failure inside a widget is one line (the CLI's wording), the page goes on, and st.stop still works."""
    at = AppTest.from_string(
        "import sys; sys.path.insert(0, {!r})\n"
        "import state, streamlit as st\n"
        "with state.guard():\n    raise {}\n"
        "st.write('after')\n"
        "with state.guard():\n    st.stop()\n"
        "st.write('never')\n".format(str(ROOT / "dashboard"), error), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and said in at.error[0].value and "\n" not in at.error[0].value
    assert [m.value for m in at.markdown] == ["after"]


def test_missing_run_says_how_to_build_it(dash_run, tmp_path):
    os.environ["LLMCORE_DASHBOARD_RUN"] = str(tmp_path / "nothing")
    try:
        at = app("app_pages/inference.py")
        assert not at.exception
        assert "build_assets.py" in at.error[0].value
    finally:
        os.environ["LLMCORE_DASHBOARD_RUN"] = str(dash_run)


def test_the_shipped_run_opens_by_default(monkeypatch):
    from llmcore.run import shipped_runs

    if "storyworld" not in shipped_runs():
        pytest.skip("the shipped run llmcore/assets/storyworld is not built yet (scripts/build_assets.py)")
    monkeypatch.delenv("LLMCORE_DASHBOARD_RUN", raising=False)
    at = app()
    ok(at)
    button(at, "Next \u25b6").click().run()
    ok(at)
    assert any(t.startswith("Loss while training") for t in titles(at))


def test_shipped_steering_defaults_to_the_stored_bridge_strength(monkeypatch):
    from llmcore.interpret.sae import load_sae
    from llmcore.run import load_run, shipped_runs

    if "storyworld" not in shipped_runs():
        pytest.skip("the shipped run llmcore/assets/storyworld is not built yet (scripts/build_assets.py)")
    monkeypatch.delenv("LLMCORE_DASHBOARD_RUN", raising=False)
    stored = load_sae(load_run("storyworld")).metrics["steering"]["golden_gate_bridge"]["strength"]
    at = app("app_pages/interpretability.py")
    ok(at)
    assert at.slider[0].value == pytest.approx(stored, abs=0.05)  # the strength find_steering chose
    button(at, "Generate with and without it").click().run()
    ok(at)
    plain, steered = at.text[-2].value, at.text[-1].value
    assert mentions(steered, "golden_gate_bridge") and not mentions(plain, "golden_gate_bridge")


def test_root_shim_runs_the_dashboard(dash_run):
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.run()
    ok(at)
    assert "How a large language model works" in at.title[0].value
    at.switch_page("dashboard/app_pages/scale.py")
    at.run()
    ok(at)


@pytest.mark.slow
def test_first_pages_while_torch_imports_in_the_background(dash_run):
    """A fresh process: the warm-up thread imports torch while the next page draws with plotly."""
    import subprocess

    code = (
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({APP!r}, default_timeout={TIMEOUT})\n"
        "at.run()\n"
        "for page in ('app_pages/scale.py', 'app_pages/data.py', 'app_pages/inference.py'):\n"
        "    at.switch_page(page); at.run()\n"
        "    assert not at.exception, (page, [e.value for e in at.exception])\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "LLMCORE_DASHBOARD_RUN": str(dash_run)})
    assert out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_a_generation_stops_at_its_time_limit(dash_run, monkeypatch):
    """A shared server bounds each generation in time (GENERATE_SECONDS) as well as in length."""
    import state

    monkeypatch.setattr(state, "GENERATE_SECONDS", -1)  # already past: one token, then the limit
    at = app("app_pages/inference.py")
    button(at, "Generate").click().run()
    ok(at)
    assert any("Stopped after -1 seconds (1 tokens)" in i.value for i in at.info)
    prompt, done, _ = at.session_state["generated"]
    assert len(done) == 1


def test_visitor_caches_are_forgotten_once_the_last_visitor_leaves(monkeypatch):
    """A class's prompts and generations do not outlive the class: tidy() clears them with no session left."""
    import state

    calls = []

    @state.visitor_cache(max_entries=4)
    def shout(text: str) -> str:
        calls.append(text)
        return text.upper()

    assert shout("mia") == "MIA" and shout("mia") == "MIA" and calls == ["mia"]  # cached
    assert state._visitors() is None  # no Streamlit runtime in this process: nothing is cleared
    assert not state.tidy() and shout("mia") == "MIA" and calls == ["mia"]
    monkeypatch.setattr(state, "_visitors", lambda: 2)  # visitors still here: kept
    assert not state.tidy() and shout("mia") == "MIA" and calls == ["mia"]
    monkeypatch.setattr(state, "_visitors", lambda: 0)  # the last one left: forgotten
    assert state.tidy() and shout("mia") == "MIA" and calls == ["mia", "mia"]
    assert any(name.endswith("<locals>.shout") for name in state._VISITOR_CACHES)
    shout.clear()
