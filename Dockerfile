# syntax=docker/dockerfile:1
# tactful's HTTP API (`tactful serve`) in a container, the embedded shape: SQLite on a volume.
# The same image runs every other command (`docker run IMAGE tactful worker ...`).
# docs/deploy.md: building, the first API key, upgrading, the scale-out shape.
#
#   docker build -t tactful .
#   docker run --rm -v tactful-data:/var/lib/tactful tactful \
#       tactful keys create --name ops --scope admin --db /var/lib/tactful/tactful.db
#   docker run -d --init -p 8000:8000 -v tactful-data:/var/lib/tactful tactful
#
# Environment (all optional):
#   TACTFUL_SESSION_SECRET   signs the dashboard's session cookie; set it when several
#                            containers serve the dashboard (default: one per process)
#   TACTFUL_STORE_WAIT       seconds to wait for the store (PostgreSQL) at start (10)
#   TACTFUL_BROKER_WAIT      seconds to wait for NATS at start (10)
#   TACTFUL_ZENDESK_WEBHOOK_SECRET, TACTFUL_INTERCOM_CLIENT_SECRET,
#   TACTFUL_FRESHDESK_WEBHOOK_SECRET   the helpdesk webhooks' secrets (docs/helpdesks.md)
#   anything a channels file names as ${VAR} (Slack tokens, webhook secrets; pass the
#   file with --channels, e.g. mounted at /etc/tactful/channels.yaml)
#   PGPASSWORD and the other libpq variables, for a postgresql:// store
# `serve` refuses to listen beyond loopback while the store has no API key: create one
# first (above), or the container exits 2 and says so.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: the wheel, then a venv with it and its pinned dependencies ----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY src/ src/
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
 && python -m venv /opt/tactful \
 && /opt/tactful/bin/pip install -c constraints.txt /dist/tactful-*.whl \
 && /opt/tactful/bin/tactful --help >/dev/null

# --- runtime: the venv only, run by an unprivileged user -----------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="tactful" \
      org.opencontainers.image.description="Sentiment-aware orchestration for customer support" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 tactful \
 && useradd --system --uid 10001 --gid tactful --home-dir /var/lib/tactful \
            --shell /usr/sbin/nologin tactful \
 && mkdir -p /var/lib/tactful /etc/tactful \
 && chown tactful:tactful /var/lib/tactful
COPY --from=build /opt/tactful /opt/tactful
ENV PATH=/opt/tactful/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/lib/tactful
# The SQLite database (with its -wal/-shm files), the log channel's actions file and the
# demo's files live here. Keep it on a volume; back it up with `tactful backup`.
VOLUME ["/var/lib/tactful"]
USER tactful:tactful
EXPOSE 8000
# /healthz needs no API key. Change the port here too if you change it in CMD.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["tactful", "serve", "--host", "0.0.0.0", "--port", "8000", \
     "--db", "/var/lib/tactful/tactful.db", \
     "--actions-log", "/var/lib/tactful/tactful-actions.jsonl"]
