"""Fixtures that run the real `textmend-server` on a loopback port picked by the kernel.

The server runs as a subprocess (`python -m textmend_server.main --port 0 --port-file ...`,
started by `textmend_server.testing.launch`), exactly as it is deployed, so the service tests
cover the worker processes, the port reservation, health checking and graceful shutdown too.
Each fixture stops its server with SIGTERM and checks that it exited 0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from textmend_client import TextMendClient
from textmend_server.testing import (
    STARTUP_LIMIT,
    LaunchedServer,
    LaunchError,
    launch,
    server_command,
)

#: A running `textmend-server`: its target (`127.0.0.1:PORT`), process and log file.
ServerProcess = LaunchedServer


@contextlib.contextmanager
def run_server(directory: Path, *options: str) -> Iterator[ServerProcess]:
    """Start `textmend-server` on 127.0.0.1, port 0; yield it once it is SERVING; stop it, and
    fail unless it stopped on SIGTERM and exited 0."""
    try:
        with launch(server_command(*options), directory) as server:
            with TextMendClient(server.target, timeout=10) as client:
                assert client.health(), "the server wrote its port file before it was SERVING"
            yield server
    except LaunchError as exc:
        pytest.fail(str(exc))
    if server.killed:
        pytest.fail("textmend-server did not stop on SIGTERM:\n" + server.log_text())
    assert server.process.returncode == 0, (
        f"textmend-server exited with {server.process.returncode}:\n" + server.log_text()
    )


__all__ = ["STARTUP_LIMIT", "ServerProcess", "run_server"]


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
