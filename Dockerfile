# syntax=docker/dockerfile:1
#
# textmend: the gRPC repair service in a small, non-root image.
#
#   docker build -t textmend:0.1.0 .
#   docker run --rm -p 50051:50051 --cpus 2 -e TEXTMEND_WORKERS=2 textmend:0.1.0
#
# The builder stage turns the project and its dependencies into wheels and installs only those
# wheels into a virtual environment, /opt/textmend; the final stage copies that environment
# (no compilers, no build tools, no wheels, no dev extras, no source tree).

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: wheels of textmend and of every runtime dependency, installed into a venv --------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY client ./client

RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/textmend \
 && pip --python /opt/textmend/bin/python install --no-index --find-links=/wheels textmend

# --- runtime -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""

LABEL org.opencontainers.image.title="textmend" \
      org.opencontainers.image.description="Detect and repair corrupted text (mojibake, CJK byte-phase slips, leaked markup and annotations), served over gRPC with a diff of every edit." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# Server configuration; each variable is the twin of a textmend-server flag (flags win).
# TEXTMEND_WORKERS is set explicitly because os.cpu_count() inside a container reports the
# host's cores, not the container's CPU limit: keep it equal to the CPUs the container gets.
# TEXTMEND_GRACE must stay below the orchestrator's stop timeout (docker stop -t, compose
# stop_grace_period, Kubernetes terminationGracePeriodSeconds) minus about 10 s.
ENV TEXTMEND_HOST="[::]" \
    TEXTMEND_PORT=50051 \
    TEXTMEND_WORKERS=2 \
    TEXTMEND_MAX_MESSAGE_MB=64 \
    TEXTMEND_LOG_LEVEL=INFO \
    TEXTMEND_GRACE=10

RUN groupadd --system --gid 10001 textmend \
 && useradd --system --uid 10001 --gid textmend --create-home --home-dir /home/textmend \
      --shell /usr/sbin/nologin textmend

# Only the installed environment is copied, so the wheels never become a layer of this image.
# (Not `RUN --mount=type=bind,from=builder`: buildah 1.28, podman build's, fails to mount a
# stage that came whole from its cache, so a rebuild after a new commit broke.) Both stages
# are the same image, so the venv's python link points at this stage's interpreter.
COPY --from=builder /opt/textmend /opt/textmend
ENV PATH=/opt/textmend/bin:$PATH
RUN textmend-server --version \
 && textmend --version

USER textmend:textmend
WORKDIR /home/textmend

EXPOSE 50051

# The bundled client asks grpc.health.v1; it exits 0 only when the server reports SERVING (and
# the server reports NOT_SERVING while it drains on SIGTERM). If TEXTMEND_PORT is changed,
# override this check with the same port. No --start-interval: Docker before 25.0 and buildah
# (podman build) reject the option, so the image would not build there; docker-compose.yml
# sets start_interval where Docker supports it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["textmend", "health", "--server", "127.0.0.1:50051", "--timeout", "3"]

# textmend-server is PID 1 (exec form, no shell): SIGTERM reaches it directly, it passes it on
# to its workers, lets calls in flight finish for TEXTMEND_GRACE seconds, and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["textmend-server"]
