"""Entry point for Streamlit hosts that expect streamlit_app.py at the repository root."""
import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).parent / "dashboard" / "streamlit_app.py"), run_name="__main__")
