# inferq image (the same image runs the API and the workers). The torch wheel from PyPI carries its own
# CUDA and cuDNN libraries, so the base is plain Python; GPU hosts need only the NVIDIA container toolkit.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# torch first (TORCH_SPEC picks the build: the PyPI default is CUDA on Linux), then the project.
ARG TORCH_SPEC=torch==2.13.0
RUN pip install "$TORCH_SPEC"
COPY pyproject.toml README.md ./
COPY inferq inferq
COPY api api
COPY shared shared
COPY worker worker
COPY migrations migrations
RUN pip install ".[worker]"
EXPOSE 8000
CMD ["inferq", "serve", "--host", "0.0.0.0", "--port", "8000"]
