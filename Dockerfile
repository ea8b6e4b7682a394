# dabba operator image: `docker build -t dabba:0.1.0 .`
#
# Stage 1 builds wheels for dabba and every dependency; stage 2 installs them into a virtualenv
# on a clean copy of the same base image, so no compiler, build backend or source tree ships.
# Both stages use the same pinned base: the virtualenv's interpreter is the base's python3.11.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Only what the wheel is built from (README.md is the package's long description).
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip wheel --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/dabba \
 && pip --python /opt/dabba/bin/python install --no-index --find-links /wheels /wheels/dabba-*.whl

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="dabba" \
      org.opencontainers.image.description="Kubernetes operator: progressive delivery (Canary) and workload certificate rotation (MeshCertificate)" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric non-root user, so Kubernetes can verify runAsNonRoot (the chart runs as 65532).
RUN groupadd --system --gid 65532 dabba \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin dabba
COPY --from=build /opt/dabba /opt/dabba
# Read-only root filesystem: bytecode was compiled at install time and nothing writes it now;
# HOME and temporary files live in /tmp (an emptyDir in the chart).
ENV PATH=/opt/dabba/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["dabba", "run"]
