# syntax=docker/dockerfile:1
# segment-sidecar: a multi-stage image. The build stage resolves runtime dependencies from uv.lock (hash-checked) into
# a virtualenv; the runtime stage copies only that virtualenv onto a slim Python, runs as a non-root user, and keeps
# the spool on a declared volume. Build: `docker build -t segment-sidecar .`
# It listens on loopback only: a pod's containers share it, and the API has no authentication of its own. To expose it
# deliberately, set SIDECAR_LISTEN=0.0.0.0:50051 (and SIDECAR_METRICS_LISTEN=0.0.0.0:9464 for a scraper); see README.
# The same install script runs in tests/unit/test_dockerfile.py, which also lints this file with hadolint.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never PYTHON=/usr/local/bin/python3
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY sidecar ./sidecar
COPY deploy/docker/install.sh /usr/local/bin/install-sidecar
RUN ["/usr/local/bin/install-sidecar", "/src", "/opt/segment-sidecar"]

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="segment-sidecar" \
      org.opencontainers.image.description="Local gRPC sidecar delivering a Segment partner's events within the partner rate cap"
RUN groupadd --system --gid 10001 sidecar \
 && useradd --system --uid 10001 --gid sidecar --home-dir /var/lib/segment-sidecar --no-create-home sidecar \
 && install -d -o sidecar -g sidecar -m 0750 /var/lib/segment-sidecar
COPY --from=build /opt/segment-sidecar /opt/segment-sidecar
ENV PATH=/opt/segment-sidecar/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIDECAR_LISTEN=127.0.0.1:50051 \
    SIDECAR_METRICS_LISTEN=127.0.0.1:9464 \
    SIDECAR_SPOOL_DIR=/var/lib/segment-sidecar \
    SIDECAR_LOG_FORMAT=json
VOLUME ["/var/lib/segment-sidecar"]
USER 10001:10001
WORKDIR /var/lib/segment-sidecar
EXPOSE 50051 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["segment-sidecar", "healthcheck"]
ENTRYPOINT ["segment-sidecar"]
CMD ["serve"]
