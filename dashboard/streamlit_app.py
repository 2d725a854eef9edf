"""The llmcore dashboard: one page per stage of the explainer's flow, routed here.

    streamlit run dashboard/streamlit_app.py

The entry file only sets the process up, draws the sidebar and routes; the pages in
app_pages/ read top to bottom and call llmcore for every number and figure.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parent):  # `import state` from pages; llmcore from a checkout without install
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import state  # noqa: E402
import streamlit as st  # noqa: E402

st.set_page_config(page_title="llmcore: how an LLM works", layout="wide")

pages = {
    "home": st.Page(HERE / "app_pages" / "home.py", title="Home: the tour", default=True),
    "data": st.Page(HERE / "app_pages" / "data.py", title="Data"),
    "pretraining": st.Page(HERE / "app_pages" / "pretraining.py", title="Pre-training"),
    "parameters": st.Page(HERE / "app_pages" / "parameters.py", title="Parameters"),
    "model": st.Page(HERE / "app_pages" / "model.py", title="Model"),
    "inference": st.Page(HERE / "app_pages" / "inference.py", title="Inference"),
    "interpretability": st.Page(HERE / "app_pages" / "interpretability.py", title="Interpretability"),
    "scale": st.Page(HERE / "app_pages" / "scale.py", title="Scale"),
}
# Pages link to each other by stage (the flowchart's nodes).
state.PAGES.update({"home": pages["home"], "data": pages["data"], "pretraining": pages["pretraining"],
                    "parameters": pages["parameters"], "model": pages["model"],
                    "inference": pages["inference"], "text": pages["inference"],
                    "interpretability": pages["interpretability"], "features": pages["interpretability"],
                    "steering": pages["interpretability"], "scale": pages["scale"]})

# ?projector=1 in the address opens in projector mode: a teacher can bookmark it.
if "projector" not in st.session_state and st.query_params.get("projector") in ("1", "on", "true"):
    st.session_state["projector"] = True
with st.sidebar:
    st.toggle("Projector mode", key="projector", help="Large type and high contrast, for a classroom "
              "(or open the address with ?projector=1)")
    job = state.live_job()
    if job is not None and job.run is not None:
        st.toggle("Use my trained model", key="use_live",
                  help="Show the model you trained on the Pre-training page (this session only)")
    else:
        st.session_state["use_live"] = False
    st.caption("Every number and chart is computed by `llmcore`, on this machine.")
st.html(state.BASE_CSS)
if state.projector():
    st.html(state.PROJECTOR_CSS)

# A page whose run cannot open (a missing or broken run directory) shows one line, not a traceback.
with state.guard():
    st.navigation(list(pages.values())).run()

# Once the first page is drawn, import torch and the model code in the background (seconds
# on a busy machine), so the pages that need a model find them ready. Starting it earlier
# would compete with the first page for the CPU. (state sets torch.set_num_threads(1).)
state.warm_up()
state.release_memory()  # what this run freed goes back to the system (a hosted server has 690 MB)
