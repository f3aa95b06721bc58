# inferq image for CUDA hosts (the same image runs the API and the workers).
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The CUDA build of torch from PyPI first, then the project (which accepts any torch >= 2.2).
ARG TORCH_SPEC=torch==2.13.0
RUN pip install "$TORCH_SPEC"
COPY pyproject.toml README.md ./
COPY api api
COPY shared shared
COPY worker worker
COPY migrations migrations
RUN pip install -e . gunicorn
EXPOSE 8000
CMD ["inferq", "serve", "--host", "0.0.0.0", "--port", "8000"]
