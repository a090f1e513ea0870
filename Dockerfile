# syntax=docker/dockerfile:1
# One image for every salesflow process; the command picks the role: api (default), worker, migrate.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir uv==0.13.8

WORKDIR /app

# Third-party dependencies in their own layer, rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then our code (.dockerignore keeps tests, local venvs and data out) and the project itself.
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# Code and venv stay owned by root: the process can read them but not change them.
RUN groupadd --system --gid 10001 salesflow \
    && useradd --system --uid 10001 --gid salesflow --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin salesflow
USER salesflow

EXPOSE 8000
ENTRYPOINT ["/app/.venv/bin/salesflow"]
CMD ["api"]
