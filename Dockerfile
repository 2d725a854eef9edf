# The llmcore dashboard for a school's own server: CPU-only torch, a non-root user, the
# pretrained "storyworld" run baked in (it ships inside the llmcore package), and nothing
# fetched from the network once the image is built. docs/hosting.md explains each choice.
#   docker build -t llmcore . && docker run -d --restart unless-stopped --name llmcore -p 8501:8501 llmcore
FROM python:3.12-slim

# No bytecode files, logs straight out, no pip cache; two malloc arenas for all the server's
# threads (less memory kept per visitor; docs/hosting.md); Hugging Face libraries (tokenizers)
# never try the network; Streamlit sends no usage statistics.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 MALLOC_ARENA_MAX=2 \
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

WORKDIR /app
# The host's requirements file installs CPU torch and llmcore (with its shipped run) into
# site-packages; the dashboard, the root entry file and the server settings sit beside it.
COPY pyproject.toml README.md requirements.txt streamlit_app.py ./
COPY llmcore llmcore
COPY dashboard dashboard
COPY .streamlit .streamlit
RUN pip install --root-user-action=ignore -r requirements.txt \
 && python -c "import torch; assert torch.__version__.endswith('+cpu'), torch.__version__" \
 && useradd --create-home --uid 10001 llmcore

# Live training writes to a temporary folder; nothing under /app is written at run time.
USER llmcore
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["streamlit", "run", "streamlit_app.py", "--server.port=8501", "--server.address=0.0.0.0"]
