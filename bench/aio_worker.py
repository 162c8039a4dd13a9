"""Prototype of a `grpc.aio` worker: `textmend-server`'s own repair, run on an event loop.

`bench/transport_cost.py` found that the threaded server spends about 265 µs of a worker's
CPU around each streamed clean document, where a `grpc.aio` echo doing the same work spends
about 65. This prototype measures the design with the real work: each worker process (forked,
one SO_REUSEPORT port, as `textmend-server` does) serves `Repair` and `RepairStream` with
`grpc.aio` and runs the servicer's own `TextMendServicer._repair` (request parsed by
`wire.parse_request`, the engine, the response built in place) on the event loop, between
messages; health `Check` answers SERVING. It has none of the server's admission, idle limit,
turns between light and heavy documents, authentication or version header: only what the
benchmark needs, to say what the transport would cost.

    .venv/bin/python bench/aio_worker.py --workers 2 --port-file /tmp/aio.port

`bench/transport_cost.py` measures it next to `textmend-server`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

_MIB = 1024 * 1024


class _Context:
    """What the servicer asks of a call's context (`is_active`), from a `grpc.aio` one."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def is_active(self) -> bool:
        return not self._context.done()


async def _serve(port: int, ready: Any) -> None:
    """Serve on port (SO_REUSEPORT) until SIGTERM; put this process's pid on ready first."""
    import grpc
    from grpc_health.v1 import health_pb2

    from textmend.v1 import textmend_pb2
    from textmend_server.config import ServerConfig
    from textmend_server.engine import warm_up
    from textmend_server.servicer import RepairFailed, TextMendServicer
    from textmend_server.wire import parse_request

    warm_up()
    servicer = TextMendServicer(ServerConfig())
    serialize = textmend_pb2.RepairResponse.SerializeToString

    async def repair(received: Any, context: Any) -> Any:
        try:
            return servicer._repair(received, _Context(context), "Repair", None)
        except RepairFailed as failed:
            await context.abort(failed.code, failed.message)

    async def repair_stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        wrapped = _Context(context)
        async for received in requests:
            try:
                yield servicer._repair(received, wrapped, "RepairStream", None)
            except RepairFailed as failed:
                await context.abort(failed.code, failed.message)

    serving = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    async def check(_request: bytes, _context: Any) -> bytes:
        return serving.SerializeToString()

    handlers = [
        grpc.method_handlers_generic_handler(
            "textmend.v1.TextMend",
            {
                "Repair": grpc.unary_unary_rpc_method_handler(
                    repair, request_deserializer=parse_request, response_serializer=serialize
                ),
                "RepairStream": grpc.stream_stream_rpc_method_handler(
                    repair_stream, request_deserializer=parse_request, response_serializer=serialize
                ),
            },
        ),
        grpc.method_handlers_generic_handler(
            "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}
        ),
    ]
    from echo_server import serve_aio_until_term

    limit = 65 * _MIB
    options = [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", 4 * limit),
        ("grpc.so_reuseport", 1),
    ]
    await serve_aio_until_term(handlers, options, port, ready)


def _worker(port: int, ready: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_serve(port, ready))


def main(argv: list[str] | None = None) -> int:
    """Reserve a port, fork the workers, write the port file once every one serves, wait for
    SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args(argv)

    from echo_server import run_workers

    return run_workers(_worker, (), args.workers, args.port_file)


if __name__ == "__main__":
    sys.exit(main())
