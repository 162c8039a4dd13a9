"""Prototype of the other server design: one asyncio gRPC front, a pool of repair processes.

The front (`grpc.aio`, one process) never parses a document: `Repair` and `RepairStream` are
registered with generic handlers and no serializers, so it hands each request's raw bytes to
a `ProcessPoolExecutor` worker, which parses it, runs the same servicer code as
`textmend-server` (`TextMendServicer._repair`) and returns the serialized response. One
connection therefore reaches every worker, and a stream keeps up to `4 × workers` documents
in flight. Health answers SERVING once the pool is warm. Only what the benchmark needs:

    .venv/bin/python bench/asyncio_front.py --workers 2 --port-file /tmp/front.port

`bench/throughput.py --front both` measures it next to `textmend-server`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

_SERVICER = None


def _start_worker() -> None:
    """Pool initializer: load the engine's tables and build the servicer once per process."""
    global _SERVICER
    from textmend_server.engine import warm_up
    from textmend_server.service import ServerConfig, TextMendServicer

    warm_up()
    _SERVICER = TextMendServicer(ServerConfig())


def _ping(seconds: float) -> int:
    """Occupy a pool worker briefly, so that warming the pool starts every process."""
    time.sleep(seconds)
    return os.getpid()


class _Stays:
    """A call context for the servicer whose caller never leaves (the front does not forward
    cancellation to the pool)."""

    def is_active(self) -> bool:
        return True


def repair_raw(data: bytes) -> tuple[bytes, str, str]:
    """Repair one serialized `RepairRequest`: (serialized response, error code, message); a
    document that failed gets a stream's error response and its code."""
    from textmend_server.convert import error_response
    from textmend_server.servicer import RepairFailed
    from textmend_server.wire import parse_request

    assert _SERVICER is not None
    received = parse_request(data)
    request_id = received.fields.id
    try:
        response = _SERVICER._repair(received, _Stays(), "Repair", None)  # type: ignore[arg-type]
    except RepairFailed as failed:
        response = error_response(request_id, failed.code, failed.message)
        return response.SerializeToString(), failed.code.name, failed.message
    return response.SerializeToString(), "", ""


async def serve(workers: int, port_file: Path) -> None:
    """Warm the pool, then serve until SIGTERM."""
    import grpc
    from grpc_health.v1 import health_pb2

    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
    )
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(pool, _ping, 0.5) for _ in range(workers)))
    in_flight = 4 * workers

    async def repair(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        data, code, message = await loop.run_in_executor(pool, repair_raw, request)
        if code:
            await context.abort(grpc.StatusCode[code], message)
        return data

    async def repair_stream(
        requests: AsyncIterator[bytes], _context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        done: asyncio.Queue[bytes | None] = asyncio.Queue()
        free = asyncio.Semaphore(in_flight)
        tasks: set[asyncio.Future[None]] = set()

        async def one(request: bytes) -> None:
            data, _, _ = await loop.run_in_executor(pool, repair_raw, request)
            free.release()
            await done.put(data)

        async def read() -> None:
            async for request in requests:
                await free.acquire()
                task = asyncio.ensure_future(one(request))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*list(tasks))
            await done.put(None)

        reader = asyncio.ensure_future(read())
        try:
            while (data := await done.get()) is not None:
                yield data
        finally:
            reader.cancel()

    serving = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    async def check(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        return serving.SerializeToString()

    handlers = [
        grpc.method_handlers_generic_handler(
            "textmend.v1.TextMend",
            {
                "Repair": grpc.unary_unary_rpc_method_handler(repair),
                "RepairStream": grpc.stream_stream_rpc_method_handler(repair_stream),
            },
        ),
        grpc.method_handlers_generic_handler(
            "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}
        ),
    ]
    limit = 65 * 1024 * 1024
    server = grpc.aio.server(
        handlers=handlers,
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", 4 * limit),
        ],
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(f"{port}\n")
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await server.stop(1)
    pool.shutdown(cancel_futures=True)


def main(argv: list[str] | None = None) -> int:
    """Run the front; writes the bound port to --port-file once the pool is warm."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.workers, args.port_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
