"""`textmend-server`: serve the repair engine over gRPC from one or more worker processes.

Repair is CPU-bound Python, so one process cannot use two cores. Following gRPC's
multiprocessing example, the parent reserves the port with an SO_REUSEPORT socket (which is how
`--port 0` picks one free port for every worker), forks the workers before any gRPC object
exists in it, and each worker runs its own server on that port; the kernel spreads incoming
connections over them. The parent then only supervises: a worker that dies is restarted, and
SIGTERM or SIGINT is passed on as SIGTERM so that every worker stops gracefully (new calls are
refused, calls in flight get `--grace` seconds to finish) before the parent exits 0.

Memory and recovery (issue 16): the parent builds the engine's models and tables once
(`warm_up`) and imports gRPC's modules, creating no gRPC object, before it forks; then
`gc.freeze()` moves every object it holds out of the collector's sight, so that collections in
the workers do not write to the shared pages and copy them. A worker therefore starts with the
models in memory it shares with the parent and its siblings, and a replacement for a worker that
died reports SERVING within a second instead of rebuilding them. `--cache-mb` caps each
worker's memoised results (`textmend_server.cache`).

The command line (every flag with its `TEXTMEND_*` environment twin, and the TLS and token
files the parent reads once, before it forks) is `textmend_server.options`; this module runs
the processes.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType

from textmend_server import __version__, cache, metrics, options
from textmend_server.options import Settings, build_parser

_LOGGER = logging.getLogger(__name__)

_LOG_FORMAT = "%(asctime)s %(levelname)s [pid %(process)d] %(name)s: %(message)s"

# A worker that dies before it reports SERVING did not start properly, and is restarted after
# a growing delay (1, 2, 4 ... s, at most _MAX_RESTART_DELAY), so a worker that cannot start
# does not spin the machine; after three such failures in a row at startup the server gives
# up. A worker that died after serving is replaced at once: a fork of the warm parent costs
# milliseconds of CPU, and issue 16 asks for a replacement SERVING within 3 s.
_MAX_RESTART_DELAY = 30.0
# glibc malloc arenas per process, unless MALLOC_ARENA_MAX says otherwise. glibc gives threads
# up to 8 arenas per core, and a worker's gRPC threads (one per admitted call) spread their
# requests and responses over them, each arena keeping its own freed memory: under issue 16's
# 64-caller mixed load a worker's RSS went from 421 MiB after warm-up to 620 MiB in 5 minutes
# with glibc's default, and to 484-493 MiB with 2 arenas (bench/load.py --mix real). The engine
# runs one document at a time per lane under the GIL, so two arenas cost no contention.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number for the arena limit (glibc malloc.h)
# Bytes from which glibc's malloc maps an allocation of its own and unmaps it when freed,
# unless MALLOC_MMAP_THRESHOLD_ says otherwise, held fixed. By default glibc raises the
# threshold to the size of each mapped block freed (up to 32 MiB), so after the warm-up's large
# temporaries and the first requests' buffers, blocks of that size come from the heap and their
# freed space stays there, where a forked worker's own allocations then land and copy the
# parent's pages. Held at glibc's starting value, 128 KiB, under issue 16's 64-caller mixed load
# (bench/load.py --mix real --callers 64 --seconds 150, one run before and one after), the
# parent's RSS after warm-up fell from 414 to 371 MiB and each worker's USS at the end from
# 238-242 to 209-210 MiB, with as many documents served (10,581 and 10,470). At 32 KiB, which
# the receive buffers of large messages exceed, the mixed load's large hostile inputs leave no
# space in the heap either (worker USS 179-185 against 193-205 MiB in 120 s runs); with
# `--cache-mb 24`, over 30 minutes of that load, each worker's USS stayed at 129-160 MiB and
# its RSS within 1.09 times its value after warm-up (docs/reliability.md).
MALLOC_MMAP_THRESHOLD = 32 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number for it (glibc malloc.h)
# Seconds between a serving process's calls to glibc's malloc_trim(0), which gives the free
# pages inside malloc's heaps back to the kernel. Freed memory otherwise stays in the heaps of
# the arena that freed it, and a worker's unique memory (USS) follows the most it ever held at
# once: under issue 16's mixed load one worker of two sat at 152-160 MiB for 30 minutes, the
# other at 130-150 (docs/reliability.md). Trimming a loaded worker (tried through gdb) gave back
# 7-14 MiB for 10 ms of CPU; every 5 s that is 0.2% of a core (chosen: often enough that what
# a burst of large documents leaves behind goes within seconds, rarely enough to cost nothing).
# With it, over 30 minutes of that load, both workers stayed at 137-150 MiB.
HEAP_TRIM_INTERVAL = 5.0
# Failures in a row of a worker that never reported SERVING after which the server gives up
# (see _MAX_RESTART_DELAY): chosen, three is enough to tell a worker that cannot start from
# one that lost a race once.
_START_ATTEMPTS = 3
# Extra seconds, beyond --grace, that stopping workers get before they are killed: a margin
# for closing the server after its grace, chosen rather than measured (an orchestrator must
# wait at least --grace plus this before it kills the parent).
_STOP_SLACK = 10.0
# Seconds the parent and a worker wait between looks at their stop flag and at the workers: a
# stop or a dead worker is acted on within this long (chosen: well inside issue 16's 3 s for a
# replacement to report SERVING).
_POLL = 0.5
# Seconds a worker's signal watcher sleeps between looks at whether SIGTERM came (`_worker_main`):
# a stop starts within this long, a small share of `_POLL`.
_SIGNAL_POLL = 0.1


# --- one server ------------------------------------------------------------------------------


def _serve(settings: Settings, stop: threading.Event, ready: Connection | None) -> int:
    """Run one gRPC server until stop is set, then stop it gracefully; returns an exit code.

    Sends the bound port through ready once the server reports SERVING. Imports gRPC here,
    so that a parent which forks workers never creates a gRPC object itself.
    """
    from grpc_health.v1 import health

    from textmend_server.service import create_server

    config = settings.config
    health_servicer = health.HealthServicer()
    server, port = create_server(settings.address, config, health_servicer)
    _LOGGER.info("worker serving on port %d (%s)", port, config.security_summary)
    if ready is not None:
        ready.send(port)
        ready.close()
    trim = _heap_trimmer()
    next_trim = time.monotonic() + HEAP_TRIM_INTERVAL
    while not stop.wait(_POLL):
        if trim is not None and time.monotonic() >= next_trim:
            trim(0)
            next_trim = time.monotonic() + HEAP_TRIM_INTERVAL
    _LOGGER.info("worker stopping: refusing new calls, %.0f s for calls in flight", config.grace)
    health_servicer.enter_graceful_shutdown()
    server.stop(config.grace).wait()
    _LOGGER.info("worker stopped")
    return 0


def _heap_trimmer() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (see `HEAP_TRIM_INTERVAL`).

    ctypes releases the GIL for the call, so the engine's threads run on while it trims."""
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def tune_malloc(
    arenas: int = MALLOC_ARENAS, mmap_threshold: int = MALLOC_MMAP_THRESHOLD
) -> dict[str, bool]:
    """Hold glibc's malloc, in this process and the workers it forks, to arenas arenas (see
    `MALLOC_ARENAS`) and to a fixed mmap_threshold (see `MALLOC_MMAP_THRESHOLD`); says which
    setting was applied. A setting is left alone when its environment variable is set (the
    operator's choice stands) or the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        mallopt = None
    applied = {}
    for variable, parameter, value in (
        ("MALLOC_ARENA_MAX", _M_ARENA_MAX, arenas),
        ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, mmap_threshold),
    ):
        applied[variable] = (
            mallopt is not None and not os.environ.get(variable) and bool(mallopt(parameter, value))
        )
    return applied


def prepare_parent(cache_mb: int) -> None:
    """Make this process worth forking: configure the engine's cache, import the gRPC modules
    the workers use (importing creates no gRPC object, so forking stays safe: grpc/grpc#16001),
    build the engine's models and tables once, and freeze the result for the collector. Also
    tunes glibc's malloc (`tune_malloc`) before any worker thread exists.

    With the collector off during the warm-up, the objects it builds sit together in memory
    without freed holes between them that a worker's allocations would later fill (and so
    copy); `gc.freeze()` then keeps the workers' collections from writing to them.
    """
    started = time.perf_counter()
    tune_malloc()
    cache.configure(cache_mb)
    gc.disable()
    try:
        from textmend_server import service

        service.warm_up()
    finally:
        gc.freeze()
        gc.enable()
    _LOGGER.info(
        "engine warmed up in %.1f s, once, in the parent; %d objects frozen for the workers",
        time.perf_counter() - started,
        gc.get_freeze_count(),
    )


def _worker_main(settings: Settings, ready: Connection) -> None:
    """Entry point of a forked worker: SIGTERM stops it; SIGINT is the parent's to handle."""
    stop = threading.Event()
    # The handler runs in the main thread, which `_serve` keeps in `stop.wait`: an `Event.set`
    # there can find the event's lock held by the very code it interrupted, and wait for it
    # forever (a worker that never stopped and was killed after the grace period, once in many
    # test runs). The handler only records the signal, taking no lock; a thread sets the event.
    signalled: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: signalled.append(signum))
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while not signalled:
            time.sleep(_SIGNAL_POLL)
        stop.set()

    threading.Thread(target=watch, name="signal-watch", daemon=True).start()
    sys.exit(_serve(settings, stop, ready))


# --- the parent ------------------------------------------------------------------------------


def _bare_host(host: str) -> str:
    """`[::]` -> `::`; an empty host or `*` means every interface."""
    bare = host.strip()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    return "::" if bare in {"", "*"} else bare


def _address(host: str, port: int) -> str:
    """The gRPC address for host and port, bracketing IPv6 literals.

    >>> _address("[::]", 5), _address("::1", 5), _address("127.0.0.1", 5)
    ('[::]:5', '[::1]:5', '127.0.0.1:5')
    """
    bare = _bare_host(host)
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"


@contextlib.contextmanager
def _reserve_port(host: str, port: int) -> Iterator[int]:
    """Bind (without listening) an SO_REUSEPORT socket on host:port and yield its port.

    While it stays open the port belongs to this process tree: workers bind it too (with
    SO_REUSEPORT), and a restarted worker finds it still free for it.
    """
    infos = socket.getaddrinfo(
        _bare_host(host), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0:
            raise OSError("SO_REUSEPORT is not available; run with --workers 1")
        sock.bind(sockaddr)
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _write_port_file(path: Path, port: int) -> None:
    """Write the port atomically, so that a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)


def _check_port_file(path: Path) -> None:
    """Raise ValueError when the port file cannot be written: found at start, as a usage
    error, not once the workers serve (they served on, with no file for the caller to read)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text("")
        tmp.unlink()
    except OSError as exc:
        raise ValueError(f"--port-file {path}: cannot write it: {exc.strerror or exc}") from None


@dataclass
class _Worker:
    """One supervised worker slot."""

    slot: int
    process: multiprocessing.process.BaseProcess
    ready: Connection | None
    started: float
    quick_failures: int = 0
    serving: bool = False
    #: `time.monotonic()` when the worker this one replaces was found dead (None: first start).
    replaces_death: float | None = None


@dataclass
class _Supervisor:
    """Starts workers, restarts the ones that die, and stops them all on request."""

    settings: Settings
    count: int
    stop_requested: threading.Event = field(default_factory=threading.Event)
    workers: dict[int, _Worker] = field(default_factory=dict)
    # slot -> (monotonic time to restart at, quick failures so far, when its worker died)
    pending: dict[int, tuple[float, int, float]] = field(default_factory=dict)
    #: Seconds from a worker's death to its replacement reporting SERVING, for each one so far.

    def __post_init__(self) -> None:
        # Fork, not spawn or forkserver: the workers must inherit the warm parent's memory.
        self._context = multiprocessing.get_context("fork")

    def start(
        self, slot: int, quick_failures: int = 0, replaces_death: float | None = None
    ) -> None:
        """Fork the worker for slot."""
        # Objects made since the last fork (the supervisor's own) join the frozen generation too.
        gc.freeze()
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main,
            args=(self.settings, writer),
            name=f"textmend-worker-{slot}",
            daemon=False,
        )
        process.start()
        writer.close()
        self.workers[slot] = _Worker(
            slot, process, reader, time.monotonic(), quick_failures, replaces_death=replaces_death
        )
        _LOGGER.info("started worker %d (pid %d)", slot, process.pid)

    def _objects(self) -> list[Connection | int]:
        objects: list[Connection | int] = [w.process.sentinel for w in self.workers.values()]
        objects += [w.ready for w in self.workers.values() if w.ready is not None]
        return objects

    def poll(self) -> None:
        """Wait briefly; note workers that became ready; restart the ones that died."""
        multiprocessing.connection.wait(self._objects(), timeout=_POLL)
        for worker in list(self.workers.values()):
            if worker.ready is not None and worker.ready.poll():
                with contextlib.suppress(EOFError, OSError):
                    worker.ready.recv()
                    worker.serving = True
                    self._note_serving(worker)
                worker.ready.close()
                worker.ready = None
            if worker.process.is_alive():
                continue
            worker.process.join()
            if worker.ready is not None:
                worker.ready.close()
            metrics.process_exited(worker.process.pid)
            del self.workers[worker.slot]
            if self.stop_requested.is_set():
                continue
            failures = 0 if worker.serving else worker.quick_failures + 1
            delay = min(_MAX_RESTART_DELAY, 2.0 ** (failures - 1)) if failures else 0.0
            _LOGGER.error(
                "worker %d (pid %d) died unexpectedly with exit code %s; restarting it%s",
                worker.slot,
                worker.process.pid,
                worker.process.exitcode,
                f" in {delay:.0f} s" if delay else "",
            )
            died = time.monotonic() if worker.serving else worker.replaces_death
            self.pending[worker.slot] = (time.monotonic() + delay, failures, died or 0.0)
        for slot, (when, failures, died) in list(self.pending.items()):
            if time.monotonic() >= when and not self.stop_requested.is_set():
                del self.pending[slot]
                self.start(slot, failures, died or None)

    def _note_serving(self, worker: _Worker) -> None:
        """Log a worker that reported SERVING; for a replacement, how long after its
        predecessor's death (the figure issue 16 bounds at 3 s)."""
        if worker.replaces_death is None:
            _LOGGER.debug("worker %d (pid %d) is serving", worker.slot, worker.process.pid)
            return
        seconds = time.monotonic() - worker.replaces_death
        _LOGGER.info(
            "worker %d (pid %d) serving %.3f s after its predecessor died",
            worker.slot,
            worker.process.pid,
            seconds,
        )

    def all_serving(self) -> bool:
        """Whether every slot has a worker that reported SERVING."""
        return len(self.workers) == self.count and all(w.serving for w in self.workers.values())

    def stop(self, grace: float) -> int:
        """SIGTERM every worker, wait for them, kill stragglers; 0 when all stopped cleanly."""
        self.pending.clear()
        for worker in self.workers.values():
            if worker.process.is_alive() and worker.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace + _STOP_SLACK
        status = 0
        for worker in self.workers.values():
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                _LOGGER.error("worker %d did not stop in time; killing it", worker.slot)
                worker.process.kill()
                worker.process.join()
                status = 1
            elif worker.process.exitcode != 0:
                _LOGGER.error("worker %d exited with code %s", worker.slot, worker.process.exitcode)
                status = 1
            if worker.ready is not None:
                worker.ready.close()
        self.workers.clear()
        return status


def _supervise(args: argparse.Namespace) -> int:
    """Reserve the port, fork the workers, supervise them until SIGTERM/SIGINT."""
    with _reserve_port(args.host, args.port) as port:
        settings = options.settings(args, _address(args.host, port), reuse_port=True)
        supervisor = _Supervisor(settings, args.workers)

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            _LOGGER.info("received %s; stopping workers", signal.Signals(signum).name)
            supervisor.stop_requested.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        prepare_parent(args.cache_mb)
        if supervisor.stop_requested.is_set():
            return 0
        for slot in range(args.workers):
            # Fork before any gRPC object exists in this process (grpc/grpc#16001).
            supervisor.start(slot)
        while not supervisor.all_serving() and not supervisor.stop_requested.is_set():
            supervisor.poll()
            failed = [
                slot for slot, (_, n, _) in supervisor.pending.items() if n >= _START_ATTEMPTS
            ]
            if failed:
                _LOGGER.error("workers cannot start (see the errors above); giving up")
                supervisor.stop_requested.set()
                supervisor.stop(args.grace)
                return 1
        if not supervisor.stop_requested.is_set():
            if args.port_file is not None:
                try:
                    _write_port_file(args.port_file, port)
                except OSError as exc:
                    _LOGGER.error("cannot write the port file %s: %s", args.port_file, exc)
                    supervisor.stop_requested.set()
                    supervisor.stop(args.grace)
                    return 1
            _LOGGER.info(
                "textmend %s serving on %s with %d workers",
                __version__,
                settings.address,
                args.workers,
            )
        while not supervisor.stop_requested.is_set():
            supervisor.poll()
        status = supervisor.stop(args.grace)
    _LOGGER.info("stopped")
    return status


def _serve_in_process(args: argparse.Namespace) -> int:
    """Run a single server in this process (`--workers 1`): no fork, no supervisor."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        _LOGGER.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    tune_malloc()
    cache.configure(args.cache_mb)
    reader, writer = multiprocessing.Pipe(duplex=False)
    settings = options.settings(args, _address(args.host, args.port), reuse_port=False)
    server_thread_result: list[int] = []

    def run() -> None:
        try:
            server_thread_result.append(_serve(settings, stop, writer))
        except OSError as exc:
            _LOGGER.error("%s", exc)
        except Exception:
            _LOGGER.exception("the server failed")

    # The server runs on a thread so that this (main) thread stays free to receive signals.
    thread = threading.Thread(target=run, name="textmend-server")
    thread.start()
    while thread.is_alive() and not reader.poll(_POLL):
        pass
    if reader.poll():
        port = reader.recv()
        if args.port_file is not None:
            try:
                _write_port_file(args.port_file, port)
            except OSError as exc:
                _LOGGER.error("cannot write the port file %s: %s", args.port_file, exc)
                stop.set()
                thread.join()
                return 1
        _LOGGER.info("textmend %s serving on %s", __version__, _address(args.host, port))
    while thread.is_alive():
        thread.join(_POLL)
    return server_thread_result[0] if server_thread_result else 1


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time, level, process, logger, message (and traceback).

    Document text never reaches the log in the first place (see `service`), so nothing here
    needs redacting.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _configure_logging(level: str, style: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if style == "json" else logging.Formatter(_LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])


def _start_metrics(args: argparse.Namespace) -> str | None:
    """Collect metrics from every worker into a private directory and serve their sum; the
    directory, which the caller removes on exit, or None when metrics are off."""
    if not args.metrics_port:
        return None
    directory = tempfile.mkdtemp(prefix="textmend-metrics-")
    try:
        metrics.configure(directory)
        metrics.serve(args.metrics_port, _bare_host(args.host))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    _LOGGER.info("metrics on port %d at /metrics", args.metrics_port)
    return directory


def main(argv: list[str] | None = None) -> int:
    """Run `textmend-server`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.security = options.read_security(args)
        # Every limit checked here, once, as a usage error: not later, in a worker.
        options.settings(args, _address(args.host, args.port), reuse_port=False)
        if args.port_file is not None:
            _check_port_file(args.port_file)
    except ValueError as exc:
        parser.error(str(exc))
    _configure_logging(args.log_level, args.log_format)
    metrics_dir = None
    try:
        metrics_dir = _start_metrics(args)
        if args.workers == 1:
            return _serve_in_process(args)
        return _supervise(args)
    except OSError as exc:
        _LOGGER.error("cannot serve on %s: %s", _address(args.host, args.port), exc)
        return 1
    finally:
        # Each worker's counters live in files there: a server restarted a thousand times
        # would otherwise leave a thousand directories in the temporary directory.
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
