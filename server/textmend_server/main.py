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

Every flag has an environment variable twin (`--port` / `TEXTMEND_PORT`, ...); flags win.

TLS (`--tls-cert`, `--tls-key`), mutual TLS (`--tls-client-ca`) and a bearer token
(`--auth-token-file`) are off by default. The parent reads those files once, before it forks, so
a worker restarted later needs no access to them, and the token never appears in `ps` or in the
environment.
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
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType

from textmend_server import __version__, cache, metrics
from textmend_server import config as defaults
from textmend_server.config import ServerConfig, is_token

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
# Extra seconds, beyond --grace, that stopping workers get before they are killed.
_STOP_SLACK = 10.0
_POLL = 0.5


# --- command line ----------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, not {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def _log_level(text: str) -> str:
    name = text.upper()
    if name not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise argparse.ArgumentTypeError(f"unknown log level {text!r}")
    return name


def build_parser() -> argparse.ArgumentParser:
    """The `textmend-server` argument parser; defaults come from the environment."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="textmend-server",
        description="Serve textmend (repair corrupted text) over gRPC, with health checking "
        "and reflection.",
        epilog="Each option can also be set by the environment variable shown; options win.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--host",
        default=env("TEXTMEND_HOST", "[::]"),
        help="address to listen on (TEXTMEND_HOST; default: [::], every interface)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=env("TEXTMEND_PORT", "50051"),
        help="port to listen on, 0 to pick a free one (TEXTMEND_PORT; default: 50051)",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=env("TEXTMEND_WORKERS", str(os.cpu_count() or 1)),
        help="worker processes (TEXTMEND_WORKERS; default: the number of CPUs)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=env("TEXTMEND_THREADS", str(defaults.DEFAULT_THREADS)),
        help="threads per worker kept for health checks, refusals and other short calls, on "
        "top of one per call the limits below admit; no call ever waits for a thread "
        f"(TEXTMEND_THREADS; default: {defaults.DEFAULT_THREADS})",
    )
    parser.add_argument(
        "--max-calls",
        type=_positive_int,
        default=env("TEXTMEND_MAX_CALLS", str(defaults.DEFAULT_MAX_CALLS)),
        help="most Repair calls one worker runs at once; the next gets UNAVAILABLE at once, "
        "and the textmend client retries it after a backoff (TEXTMEND_MAX_CALLS; default: "
        f"{defaults.DEFAULT_MAX_CALLS})",
    )
    parser.add_argument(
        "--max-streams",
        type=_positive_int,
        default=env("TEXTMEND_MAX_STREAMS", str(defaults.DEFAULT_MAX_STREAMS)),
        help="most open RepairStream calls per worker; the next gets UNAVAILABLE at once "
        f"(TEXTMEND_MAX_STREAMS; default: {defaults.DEFAULT_MAX_STREAMS})",
    )
    parser.add_argument(
        "--max-admin-streams",
        type=_positive_int,
        default=env("TEXTMEND_MAX_ADMIN_STREAMS", str(defaults.DEFAULT_MAX_ADMIN_STREAMS)),
        help="most open health Watch and reflection streams per worker; the next gets "
        "UNAVAILABLE; health Check is never limited (TEXTMEND_MAX_ADMIN_STREAMS; default: "
        f"{defaults.DEFAULT_MAX_ADMIN_STREAMS})",
    )
    parser.add_argument(
        "--stream-idle-seconds",
        type=_positive_seconds,
        default=env("TEXTMEND_STREAM_IDLE_SECONDS", f"{defaults.DEFAULT_STREAM_IDLE_SECONDS:g}"),
        metavar="SECONDS",
        help="a stream that sends nothing for this long while none of its documents is being "
        "repaired is ended with UNAVAILABLE; everything it sent was answered "
        f"(TEXTMEND_STREAM_IDLE_SECONDS; default: {defaults.DEFAULT_STREAM_IDLE_SECONDS:g})",
    )
    parser.add_argument(
        "--max-message-mb",
        type=_positive_int,
        default=env("TEXTMEND_MAX_MESSAGE_MB", "64"),
        help="largest document accepted, in MiB; larger ones get RESOURCE_EXHAUSTED "
        "(TEXTMEND_MAX_MESSAGE_MB; default: 64)",
    )
    parser.add_argument(
        "--log-level",
        type=_log_level,
        default=env("TEXTMEND_LOG_LEVEL", "INFO"),
        help="DEBUG logs one line per document, without its text (TEXTMEND_LOG_LEVEL; "
        "default: INFO)",
    )
    parser.add_argument(
        "--grace",
        type=_seconds,
        default=env("TEXTMEND_GRACE", "10"),
        metavar="SECONDS",
        help="on SIGTERM, how long calls in flight may take to finish (TEXTMEND_GRACE; "
        "default: 10)",
    )
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=env("TEXTMEND_METRICS_PORT", "0"),
        help="serve Prometheus metrics (summed over workers) at http://HOST:PORT/metrics; "
        "0 turns them off (TEXTMEND_METRICS_PORT; default: 0)",
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=env("TEXTMEND_LOG_FORMAT", "text"),
        help="json writes one JSON object per line, for log collectors (TEXTMEND_LOG_FORMAT; "
        "default: text)",
    )
    parser.add_argument(
        "--max-line-kb",
        type=_positive_int,
        default=env("TEXTMEND_MAX_LINE_KB", "1024"),
        help="longest line accepted, in KiB of content between line breaks; longer gets "
        "RESOURCE_EXHAUSTED. The engine checks a caller's deadline between lines, so this bounds "
        "work that cannot be stopped (TEXTMEND_MAX_LINE_KB; default: 1024)",
    )
    parser.add_argument(
        "--max-edits",
        type=_positive_int,
        default=env("TEXTMEND_MAX_EDITS", "1000000"),
        help="most edits plus findings for one document; a document needing more gets "
        "RESOURCE_EXHAUSTED, never a shortened list (TEXTMEND_MAX_EDITS; default: 1000000)",
    )
    parser.add_argument(
        "--max-seconds",
        type=_positive_seconds,
        default=env("TEXTMEND_MAX_SECONDS", "120"),
        metavar="SECONDS",
        help="most time one document may take, whatever the caller's deadline; work beyond it "
        "is abandoned with RESOURCE_EXHAUSTED, so no input can hold a worker for long "
        "(TEXTMEND_MAX_SECONDS; default: 120)",
    )
    parser.add_argument(
        "--max-stream-documents",
        type=_positive_int,
        default=env("TEXTMEND_MAX_STREAM_DOCUMENTS", "1000000"),
        help="most documents one RepairStream carries; the next one ends the stream with "
        "RESOURCE_EXHAUSTED, and the textmend client resends what was not answered on a new "
        "stream (TEXTMEND_MAX_STREAM_DOCUMENTS; default: 1000000)",
    )
    parser.add_argument(
        "--cache-mb",
        type=_non_negative_int,
        default=env("TEXTMEND_CACHE_MB", str(defaults.DEFAULT_CACHE_MB)),
        metavar="MIB",
        help="MiB of memoised engine results each worker keeps (all of the engine's memos "
        "together); 0 keeps none, which makes heavy CJK documents slower, never different "
        f"(TEXTMEND_CACHE_MB; default: {defaults.DEFAULT_CACHE_MB})",
    )
    parser.add_argument(
        "--log-content",
        action="store_true",
        default=env("TEXTMEND_LOG_CONTENT", "").lower() in {"1", "true", "yes"},
        help="with --log-level DEBUG, also log the first 200 bytes of each document; off by "
        "default, as documents may be private (TEXTMEND_LOG_CONTENT=1)",
    )
    parser.add_argument(
        "--tls-cert",
        type=Path,
        default=env("TEXTMEND_TLS_CERT"),
        metavar="PATH",
        help="PEM certificate chain; with --tls-key, serve TLS only (TEXTMEND_TLS_CERT; "
        "default: plaintext)",
    )
    parser.add_argument(
        "--tls-key",
        type=Path,
        default=env("TEXTMEND_TLS_KEY"),
        metavar="PATH",
        help="PEM private key of --tls-cert (TEXTMEND_TLS_KEY)",
    )
    parser.add_argument(
        "--tls-client-ca",
        type=Path,
        default=env("TEXTMEND_TLS_CLIENT_CA"),
        metavar="PATH",
        help="PEM CA bundle: require every client to present a certificate it signed (mutual "
        "TLS); health probes then need a client certificate too (TEXTMEND_TLS_CLIENT_CA)",
    )
    parser.add_argument(
        "--auth-token-file",
        type=Path,
        default=env("TEXTMEND_AUTH_TOKEN_FILE"),
        metavar="PATH",
        help="file holding a token; every textmend.v1.TextMend call must then carry "
        "'authorization: Bearer <token>' or gets UNAUTHENTICATED. Health checks and reflection "
        "stay open, so probes need no token. Use it with TLS: over plaintext the token can be "
        "read on the wire (TEXTMEND_AUTH_TOKEN_FILE)",
    )
    parser.add_argument(
        "--port-file",
        type=Path,
        metavar="PATH",
        help="write the bound port to PATH once every worker is serving",
    )
    return parser


# --- one server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    """What a worker needs to start its server (picklable; forked, in practice)."""

    address: str
    config: ServerConfig


@dataclass(frozen=True)
class _Security:
    """The contents of the TLS and token files, read once by the parent."""

    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    tls_client_ca: bytes | None = None
    auth_token: str | None = None


def _read_security(args: argparse.Namespace) -> _Security:
    """Read the files the TLS and token options name; ValueError says what is wrong."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together: give both to serve TLS")
    if args.tls_client_ca is not None and args.tls_cert is None:
        raise ValueError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)")

    def read(path: Path | None, option: str) -> bytes | None:
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{option} {path}: {exc.strerror or exc}") from None
        if not data.strip():
            raise ValueError(f"{option} {path}: the file is empty")
        return data

    token = read(args.auth_token_file, "--auth-token-file")
    auth_token = None
    if token is not None:
        try:
            auth_token = token.decode("ascii").strip()
        except UnicodeDecodeError:
            raise ValueError("--auth-token-file: the token must be printable ASCII") from None
        if not is_token(auth_token):
            raise ValueError(
                "--auth-token-file: the token must be one line of at most 4096 printable ASCII "
                "characters without spaces"
            )
    return _Security(
        tls_cert=read(args.tls_cert, "--tls-cert"),
        tls_key=read(args.tls_key, "--tls-key"),
        tls_client_ca=read(args.tls_client_ca, "--tls-client-ca"),
        auth_token=auth_token,
    )


def _settings(args: argparse.Namespace, address: str, reuse_port: bool) -> _Settings:
    security = args.security or _Security()
    config = ServerConfig(
        max_message_mb=args.max_message_mb,
        threads=args.threads,
        max_calls=args.max_calls,
        max_streams=args.max_streams,
        max_admin_streams=args.max_admin_streams,
        stream_idle_seconds=args.stream_idle_seconds,
        grace=args.grace,
        reuse_port=reuse_port,
        max_line_kb=args.max_line_kb,
        max_edits=args.max_edits,
        max_seconds=args.max_seconds,
        max_stream_documents=args.max_stream_documents,
        log_content=args.log_content,
        cache_mb=args.cache_mb,
        tls_cert=security.tls_cert,
        tls_key=security.tls_key,
        tls_client_ca=security.tls_client_ca,
        auth_token=security.auth_token,
    )
    return _Settings(address, config)


def _serve(settings: _Settings, stop: threading.Event, ready: Connection | None) -> int:
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
    while not stop.wait(_POLL):
        pass
    _LOGGER.info("worker stopping: refusing new calls, %.0f s for calls in flight", config.grace)
    health_servicer.enter_graceful_shutdown()
    server.stop(config.grace).wait()
    _LOGGER.info("worker stopped")
    return 0


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Hold glibc's malloc to arenas arenas in this process and the workers it forks (see
    `MALLOC_ARENAS`); False when MALLOC_ARENA_MAX is set (the operator's choice stands) or the
    C library is not glibc."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


def prepare_parent(cache_mb: int) -> None:
    """Make this process worth forking: configure the engine's cache, import the gRPC modules
    the workers use (importing creates no gRPC object, so forking stays safe: grpc/grpc#16001),
    build the engine's models and tables once, and freeze the result for the collector. Also
    caps glibc's malloc arenas (`limit_malloc_arenas`) before any worker thread exists.

    With the collector off during the warm-up, the objects it builds sit together in memory
    without freed holes between them that a worker's allocations would later fill (and so
    copy); `gc.freeze()` then keeps the workers' collections from writing to them.
    """
    started = time.perf_counter()
    limit_malloc_arenas()
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


def _worker_main(settings: _Settings, ready: Connection) -> None:
    """Entry point of a forked worker: SIGTERM stops it; SIGINT is the parent's to handle."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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

    settings: _Settings
    count: int
    stop_requested: threading.Event = field(default_factory=threading.Event)
    workers: dict[int, _Worker] = field(default_factory=dict)
    # slot -> (monotonic time to restart at, quick failures so far, when its worker died)
    pending: dict[int, tuple[float, int, float]] = field(default_factory=dict)
    #: Seconds from a worker's death to its replacement reporting SERVING, for each one so far.
    recoveries: list[float] = field(default_factory=list)

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
        self.recoveries.append(seconds)
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
        settings = _settings(args, _address(args.host, port), reuse_port=True)
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
            failed = [slot for slot, (_, n, _) in supervisor.pending.items() if n >= 3]
            if failed:
                _LOGGER.error("workers cannot start (see the errors above); giving up")
                supervisor.stop_requested.set()
                supervisor.stop(args.grace)
                return 1
        if not supervisor.stop_requested.is_set():
            if args.port_file is not None:
                _write_port_file(args.port_file, port)
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
    limit_malloc_arenas()
    cache.configure(args.cache_mb)
    reader, writer = multiprocessing.Pipe(duplex=False)
    settings = _settings(args, _address(args.host, args.port), reuse_port=False)
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
            _write_port_file(args.port_file, port)
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


def _start_metrics(args: argparse.Namespace) -> None:
    """Collect metrics from every worker into a private directory and serve their sum."""
    if not args.metrics_port:
        return
    metrics.configure(tempfile.mkdtemp(prefix="textmend-metrics-"))
    metrics.serve(args.metrics_port, _bare_host(args.host))
    _LOGGER.info("metrics on port %d at /metrics", args.metrics_port)


def main(argv: list[str] | None = None) -> int:
    """Run `textmend-server`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.security = _read_security(args)
    except ValueError as exc:
        parser.error(str(exc))
    _configure_logging(args.log_level, args.log_format)
    try:
        _start_metrics(args)
        if args.workers == 1:
            return _serve_in_process(args)
        return _supervise(args)
    except OSError as exc:
        _LOGGER.error("cannot serve on %s: %s", _address(args.host, args.port), exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
