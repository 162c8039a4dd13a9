"""Fixtures that run the real `textmend-server` on a loopback port picked by the kernel.

The server runs as a subprocess (`python -m textmend_server.main --port 0 --port-file ...`),
exactly as it is deployed, so the service tests cover the worker processes, the port
reservation, health checking and graceful shutdown too. Each fixture stops its server with
SIGTERM and checks that it exited 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from textmend_client import TextMendClient

# How long a server may take to load the engine and report SERVING. Not an assertion about
# speed: only a bound so that a broken server fails the tests instead of hanging them.
STARTUP_LIMIT = 180.0
SHUTDOWN_LIMIT = 60.0


@dataclass(frozen=True)
class ServerProcess:
    """A running `textmend-server`: its target (`127.0.0.1:PORT`), process and log file."""

    target: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        """Everything the server has logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def worker_pids(self) -> set[int]:
        """Process ids of the server's worker processes (its children)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        return {int(p) for p in children.read_text().split()} if children.exists() else set()


def _wait_for_port(port_file: Path, process: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"textmend-server exited with {process.returncode} before serving:\n"
                + log.read_text(errors="replace")
            )
        if port_file.exists():
            return int(port_file.read_text())
        time.sleep(0.1)
    pytest.fail("textmend-server did not write its port file:\n" + log.read_text(errors="replace"))


@contextlib.contextmanager
def run_server(directory: Path, *options: str) -> Iterator[ServerProcess]:
    """Start `textmend-server` on 127.0.0.1, port 0; yield it once it is SERVING; stop it."""
    directory.mkdir(parents=True, exist_ok=True)
    port_file = directory / "port"
    log = directory / "server.log"
    command = [
        sys.executable,
        "-m",
        "textmend_server.main",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        *options,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as log_handle:
        process = subprocess.Popen(command, stdout=log_handle, stderr=subprocess.STDOUT, env=env)
    try:
        port = _wait_for_port(port_file, process, log)
        server = ServerProcess(f"127.0.0.1:{port}", process, log)
        with TextMendClient(server.target, timeout=10) as client:
            assert client.health(), "the server wrote its port file before it was SERVING"
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(SHUTDOWN_LIMIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail("textmend-server did not stop on SIGTERM:\n" + log.read_text())
    assert process.returncode == 0, (
        f"textmend-server exited with {process.returncode}:\n" + log.read_text(errors="replace")
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The shared server: two worker processes, default limits."""
    with run_server(tmp_path_factory.mktemp("server"), "--workers", "2") as running:
        yield running


@pytest.fixture(scope="session")
def target(server: ServerProcess) -> str:
    """`127.0.0.1:PORT` of the shared server."""
    return server.target


@pytest.fixture(scope="session")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A single-process server that accepts at most 1 MiB and logs at DEBUG."""
    with run_server(
        tmp_path_factory.mktemp("small-server"),
        "--workers",
        "1",
        "--max-message-mb",
        "1",
        "--log-level",
        "DEBUG",
    ) as running:
        yield running


@pytest.fixture
def client(target: str) -> Iterator[TextMendClient]:
    """A client of the shared server."""
    with TextMendClient(target, timeout=60) as connected:
        yield connected
