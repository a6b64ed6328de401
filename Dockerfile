# syntax=docker/dockerfile:1
# One image for every salesops role: `serve <service>`, `migrate`, `topics create`.
# Build: docker build -t salesops:local .

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- build stage: the project wheel plus wheels of all its pinned dependencies -------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# .dockerignore lets through only pyproject.toml, README/LICENSE and the three packages.
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- runtime stage: a venv installed offline from those wheels, run as a non-root user ---
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 salesops \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin salesops
# The wheels are bind-mounted, not copied, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links=/wheels /wheels/salesops-*.whl
WORKDIR /app
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["salesops"]
CMD ["serve", "planning", "--host", "0.0.0.0", "--port", "8000"]
