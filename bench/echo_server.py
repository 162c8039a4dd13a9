"""A bare gRPC bytes echo, served like `textmend-server`: the transport's ceiling.

`bench.Echo/Echo` (unary) and `bench.Echo/EchoStream` (bidirectional) return each message's
bytes unchanged. They are registered with `grpc.method_handlers_generic_handler` and no
serializers, so no protobuf code runs on either side: what remains is exactly the cost of
moving bytes through Python gRPC. The server forks worker processes on one SO_REUSEPORT port,
as `textmend-server` does, with the same thread count and message limits, so the two differ
only in the work done per message.

Two options serve `bench/transport_cost.py`, which asks what a server design costs around the
work it does: `--busy-us N` spends N µs of CPU in Python on each message before answering it
(the engine's place), and `--aio` serves with `grpc.aio` (one event loop per worker, the work
done on the loop) instead of the threaded server.

    .venv/bin/python bench/echo_server.py --workers 2 --port-file /tmp/echo.port
    .venv/bin/python bench/echo_server.py --workers 1 --aio --busy-us 100 --port-file /tmp/p
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

SERVICE = "bench.Echo"
UNARY_METHOD = f"/{SERVICE}/Echo"
STREAM_METHOD = f"/{SERVICE}/EchoStream"

_MIB = 1024 * 1024
# Seconds a worker may take to start serving: a bound so that a broken one fails the bench
# instead of hanging it (a worker starts in well under a second).
_READY_SECONDS = 60.0


def busy(seconds: float) -> None:
    """Spend seconds of this thread's CPU time in the interpreter, as the engine would."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _handlers(echo: Callable[..., Any], echo_stream: Callable[..., Any]) -> Any:
    """The echo service's two methods, with no serializers: bytes in, bytes out."""
    import grpc

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "EchoStream": grpc.stream_stream_rpc_method_handler(echo_stream),
        },
    )


def _options(max_message_mb: int) -> list[tuple[str, int]]:
    limit = (max_message_mb + 1) * _MIB
    return [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.so_reuseport", 1),
    ]


def _serve(
    port: int,
    threads: int,
    max_message_mb: int,
    stop: threading.Event,
    ready: Any,
    busy_seconds: float = 0.0,
) -> None:
    """Run one echo server on port (SO_REUSEPORT) until stop is set; put its pid on ready
    once it serves."""
    from concurrent import futures

    import grpc

    def echo(request: bytes, _context: grpc.ServicerContext) -> bytes:
        if busy_seconds:
            busy(busy_seconds)
        return request

    def echo_stream(requests: Iterator[bytes], _context: grpc.ServicerContext) -> Iterator[bytes]:
        for request in requests:
            if busy_seconds:
                busy(busy_seconds)
            yield request

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads),
        handlers=[_handlers(echo, echo_stream)],
        options=_options(max_message_mb),
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    ready.put(os.getpid())
    stop.wait()
    server.stop(1).wait()


async def _serve_aio(port: int, max_message_mb: int, ready: Any, busy_seconds: float) -> None:
    """Run one `grpc.aio` echo server on port (SO_REUSEPORT) until SIGTERM; the busy work runs
    on the event loop, between messages."""

    async def echo(request: bytes, _context: Any) -> bytes:
        if busy_seconds:
            busy(busy_seconds)
        return request

    async def echo_stream(requests: AsyncIterator[bytes], _context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            if busy_seconds:
                busy(busy_seconds)
            yield request

    handlers = [_handlers(echo, echo_stream)]
    await serve_aio_until_term(handlers, _options(max_message_mb), port, ready)


async def serve_aio_until_term(
    handlers: list[Any], options: list[tuple[str, int]], port: int, ready: Any
) -> None:
    """Serve handlers with `grpc.aio` on port (SO_REUSEPORT, in options) until SIGTERM; put this
    process's pid on ready once it serves. Also serves `bench/aio_worker.py`."""
    import grpc

    server = grpc.aio.server(handlers=handlers, options=options)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    ready.put(os.getpid())
    await stop.wait()
    await server.stop(1)


def _worker(
    port: int, ready: Any, threads: int, max_message_mb: int, busy_seconds: float, aio: bool
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if aio:
        asyncio.run(_serve_aio(port, max_message_mb, ready, busy_seconds))
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    _serve(port, threads, max_message_mb, stop, ready, busy_seconds)


def main(argv: list[str] | None = None) -> int:
    """Reserve a port, fork the echo workers, write the port file once every one serves,
    wait for SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--max-message-mb", type=int, default=64)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument(
        "--busy-us", type=float, default=0.0, help="CPU µs spent on each message (default 0)"
    )
    parser.add_argument(
        "--aio", action="store_true", help="serve with grpc.aio instead of the threaded server"
    )
    args = parser.parse_args(argv)

    work = (args.threads, args.max_message_mb, args.busy_us / 1e6, args.aio)
    return run_workers(_worker, work, args.workers, args.port_file)


def run_workers(
    target: Callable[..., None], work: tuple[Any, ...], count: int, port_file: Path
) -> int:
    """Reserve a port, fork count processes running target(port, ready, *work), write the port
    to port_file once each has put its pid on ready, and stop them on SIGTERM (or when one
    dies); returns 0. Also serves `bench/aio_worker.py`."""
    reserve = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserve.bind(("127.0.0.1", 0))
    port = reserve.getsockname()[1]
    context = multiprocessing.get_context("fork")
    ready = context.Queue()
    # Forked before this process creates any gRPC object.
    workers = [context.Process(target=target, args=(port, ready, *work)) for _ in range(count)]
    for worker in workers:
        worker.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    signal.signal(signal.SIGINT, lambda _s, _f: stop.set())
    # The port file says the whole server serves (a caller's first connections may reach any
    # worker), as `textmend-server`'s does.
    for _ in workers:
        ready.get(timeout=_READY_SECONDS)
    tmp = port_file.with_name(port_file.name + ".tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, port_file)
    while not stop.wait(0.5):
        if not all(worker.is_alive() for worker in workers):
            break
    for worker in workers:
        if worker.pid is not None and worker.is_alive():
            os.kill(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.join(5)
    reserve.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
