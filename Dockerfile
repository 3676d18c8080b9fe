# syntax=docker/dockerfile:1
# Salonbot: web + bot + cron in one process (`salonbot serve`). compose.yaml runs it with
# PostgreSQL, Redis and WAHA; alone it runs the embedded default (SQLite in /app/data).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# /app is the source tree AND the working directory. core/i18n.py finds the catalogs at
# Path(core/__file__).parent.parent / "locales", so core/ must be imported from /app/core,
# next to /app/locales: hence the editable install below (`pip install -e .`). A plain
# `pip install .` would copy core/ into site-packages, where no locales/ sits beside it.
# The working directory also makes the relative defaults (DATA_DIR, .env) land in /app.
WORKDIR /app

# DejaVu Sans: the printable poster draws salon names, usually Cyrillic (core/poster.py).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, in their own layer: rebuilt only when pyproject.toml changes.
# (README.md* is optional: pyproject names it as the readme, the build only warns without it.)
COPY pyproject.toml README.md* ./
RUN python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); print('\n'.join(d['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The source tree (copied one by one so that .venv, .git, data/ or a .env never enter the image).
COPY core ./core
COPY bot ./bot
COPY web ./web
COPY locales ./locales

# The project itself (editable, see above; dependencies are already in), then the gettext
# catalogs: the .mo files are build output, not in git (`make locales` does the same locally).
RUN pip install --no-deps -e . \
    && pybabel compile -d locales -D messages

# Run as an unprivileged user; it owns only the data directory.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin salonbot \
    && mkdir -p /app/data \
    && chown salonbot:salonbot /app/data

# A container must listen beyond its own loopback; DATA_DIR is the volume below.
ENV HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    DATA_DIR=/app/data

VOLUME ["/app/data"]
USER salonbot
EXPOSE 8080

# No curl in the slim image: ask /health with Python (503 or no answer -> unhealthy).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HTTP_PORT', '8080'), timeout=4)" || exit 1

# Migrations explicitly first (serve would apply them too), then serve; `exec` makes serve
# PID 1 so SIGTERM from `docker stop` reaches it and shuts it down gracefully.
# Other commands replace this one: `docker compose run --rm app salonbot check`.
CMD ["/bin/sh", "-c", "salonbot migrate && exec salonbot serve"]
