# syntax=docker/dockerfile:1
# opsgate: the HTTP API, web inbox, Slack and email channels, worker and outbox (`opsgate serve`), or only the
# worker (`opsgate worker`), or the migrations (`opsgate db upgrade`). See "Containers" in README.md.

# --- build: install opsgate and its dependencies into a virtual environment --------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/opsgate
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY bot ./bot
COPY channels ./channels
COPY agents ./agents
COPY storage ./storage
RUN /opt/opsgate/bin/pip install . && /opt/opsgate/bin/python -m compileall -q /opt/opsgate

# --- runtime: the environment only, no compiler, no pip cache, no sources, an unprivileged user ------------------
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/opsgate/bin:$PATH
COPY --from=build /opt/opsgate /opt/opsgate
RUN useradd --create-home --uid 10001 opsgate && mkdir -p /data && chown opsgate /data
USER 10001
WORKDIR /data
# SQLite in the /data volume unless DATABASE_URL says otherwise; listen beyond the container's loopback.
ENV DATABASE_URL=sqlite+aiosqlite:////data/opsgate.db OPSGATE_HOST=0.0.0.0 PORT=8080
EXPOSE 8080
VOLUME ["/data"]
# Liveness only: /readyz (database writable) is for a load balancer's or orchestrator's readiness probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8080\")}/healthz', timeout=4)"
CMD ["opsgate", "serve"]
