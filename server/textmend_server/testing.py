"""Launch a real server on a loopback port for the tests and the benches, and stop it.

`launch` runs a command that takes `--port-file PATH` and writes its port there once it serves:
`textmend-server` (`server_command`) writes it once every worker reports SERVING, and the
benches' echo server and asyncio front do the same. The server runs as a subprocess, exactly as
it is deployed, with its output in a log file; leaving the block stops it with SIGTERM.

    with launch(server_command("--workers", "2"), directory) as server:
        TextMendClient(server.target).repair(b"...")
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

#: The address the launched servers listen on: loopback only, so a test opens nothing to the
#: network.
LOOPBACK = "127.0.0.1"
#: Seconds a server may take to load the engine and report SERVING. Not a claim about speed,
#: only a bound so that a broken server fails a test or bench instead of hanging it: the test
#: fixtures' bound from the start, generous for a machine busy with other tests.
STARTUP_LIMIT = 180.0
#: Seconds a server may take to stop after SIGTERM before it is killed: its `--grace` (10 s by
#: default) plus the parent's slack for stopping workers (10 s), with room to spare.
SHUTDOWN_LIMIT = 60.0
# How often the port file is looked for while a server starts.
_POLL_SECONDS = 0.1


class LaunchError(RuntimeError):
    """A launched server did not start, or did not stop on SIGTERM; the message ends with its
    log."""


@dataclass
class LaunchedServer:
    """A running server: its process, the port it serves on and its log file."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    #: Set when it had to be killed because it did not stop on SIGTERM in time.
    killed: bool = False

    @property
    def target(self) -> str:
        """`127.0.0.1:PORT`, what a client connects to."""
        return f"{LOOPBACK}:{self.port}"

    def log_text(self) -> str:
        """Everything the server has logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def worker_pids(self) -> set[int]:
        """Process ids of the server's worker processes (its children)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        return {int(p) for p in children.read_text().split()} if children.exists() else set()

    def serving_pids(self) -> list[int]:
        """The processes that answer calls, in order: the workers, or the server process itself
        when it forks none (`--workers 1`)."""
        return sorted(self.worker_pids()) or [self.process.pid]


def server_command(*options: str) -> list[str]:
    """`textmend-server` on the loopback address and a port the kernel picks, with options
    added, run by this Python (so the same environment and `PYTHONPATH`)."""
    return [
        sys.executable,
        "-m",
        "textmend_server.main",
        "--host",
        LOOPBACK,
        "--port",
        "0",
        *options,
    ]


@contextlib.contextmanager
def launch(
    command: Sequence[str],
    directory: Path,
    *,
    startup_limit: float = STARTUP_LIMIT,
    shutdown_limit: float = SHUTDOWN_LIMIT,
    cwd: Path | None = None,
    name: str = "textmend-server",
) -> Iterator[LaunchedServer]:
    """Start command with `--port-file directory/port`, its output in `directory/server.log`;
    yield it once it has written its port; stop it with SIGTERM (if it still runs).

    Raises `LaunchError` (calling the server name) when it exits or takes more than
    startup_limit seconds before it serves. One that does not stop within shutdown_limit
    seconds is killed and marked `killed`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port_file = directory / "port"
    log = directory / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--port-file", str(port_file)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
        )
    server = LaunchedServer(process, 0, log)
    try:
        server.port = _wait_for_port(server, name, port_file, startup_limit)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(shutdown_limit)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                server.killed = True


def _wait_for_port(server: LaunchedServer, name: str, port_file: Path, limit: float) -> int:
    """The port server writes to port_file; `LaunchError` if it exits or takes too long."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise LaunchError(
                f"{name} exited with {server.process.returncode} before serving:\n"
                + server.log_text()
            )
        if port_file.exists():
            return int(port_file.read_text())
        time.sleep(_POLL_SECONDS)
    raise LaunchError(f"{name} did not write its port file:\n" + server.log_text())


__all__ = [
    "LOOPBACK",
    "SHUTDOWN_LIMIT",
    "STARTUP_LIMIT",
    "LaunchError",
    "LaunchedServer",
    "launch",
    "server_command",
]
