"""What a server design costs around the work it does, per streamed 5 KB document.

Issue 19 asks the service stream to move clean text at 70% of a bare echo's rate. This
measures where the rest goes, as CPU per document in the server's worker and in the client,
streaming the same clean English documents over the client's `fan_out` (the bundled client's
streams: `DEFAULT_CHANNELS` connections, `DEFAULT_WINDOW` documents in flight on each):

* `threaded echo`, `aio echo`: the bare echo (`bench/echo_server.py`) with the threaded
  server `textmend-server` uses, and with `grpc.aio` (`--aio`), each spending `--busy-us` of
  CPU in Python on every message, as the engine would;
* `textmend-server`: the service itself, next to the CPU its engine and servicer spend on
  the same documents in process (`TextMendServicer._repair`, no transport);
* `aio worker`: the same servicer code on a `grpc.aio` event loop (`bench/aio_worker.py`, a
  prototype without the server's admission, idle limit or turns).

"work" is the CPU the handler itself spends on a document (the busy loop; the servicer in
process), "around" the worker's CPU beyond the work: what the design costs. One worker by
default, so that every stream shares one interpreter, as four of them do on each of two
workers with the client's defaults.

    .venv/bin/python bench/transport_cost.py [--docs 3000] [--workers 1] [--busy-us 0 100 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

#: Rounds of each measurement; the median is reported.
ROUNDS = 3


def _cpu_seconds(pid: int) -> float:
    from profile_path import _cpu_seconds as cpu

    return cpu(pid)


def measure(pids: Sequence[int], run: Callable[[], None], count: int) -> tuple[float, ...]:
    """Median over ROUNDS of (wall µs, client CPU µs, server CPU µs) per document of run()."""
    rows = []
    for _ in range(ROUNDS):
        before = sum(_cpu_seconds(p) for p in pids)
        cpu, wall = time.process_time(), time.perf_counter()
        run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server = sum(_cpu_seconds(p) for p in pids) - before
        rows.append((wall / count * 1e6, cpu / count * 1e6, server / count * 1e6))
    return tuple(statistics.median(column) for column in zip(*rows, strict=True))


def stream_echo(target: str, pids: Sequence[int], docs: list[bytes]) -> tuple[float, ...]:
    """`measure` for the echo at target, streamed as the bundled client streams."""
    import grpc
    from echo_server import STREAM_METHOD

    from textmend_client.client import (
        DEFAULT_CHANNELS,
        DEFAULT_WINDOW,
        BackgroundLoop,
        channel_options,
        fan_out,
    )

    background = BackgroundLoop()

    async def open_channels() -> list[grpc.aio.Channel]:
        options = channel_options(64)
        return [grpc.aio.insecure_channel(target, options=options) for _ in range(DEFAULT_CHANNELS)]

    channels = background.run(open_channels()).result()
    streams = [channel.stream_stream(STREAM_METHOD) for channel in channels]

    def run() -> None:
        openers = [lambda s=s: s(timeout=600) for s in streams]
        replies = fan_out(
            background,
            openers,
            enumerate(docs),
            lambda pair: pair[0].to_bytes(8, "big") + pair[1],
            window=DEFAULT_WINDOW,
            key=lambda message: message[:8],
        )
        for _ in replies:
            pass

    async def close() -> None:
        for channel in channels:
            await channel.close()

    try:
        run()  # warm up
        return measure(pids, run, len(docs))
    finally:
        background.run(close()).result(5)
        background.close()


def echo_rows(docs: list[bytes], workers: int, busy: Sequence[float]) -> list[tuple]:
    """The echo, threaded and aio, at each busy value."""
    from throughput import start_server

    rows = []
    for aio in (False, True):
        for us in busy:
            command = [sys.executable, str(BENCH / "echo_server.py"), "--workers", str(workers)]
            command += ["--busy-us", str(us)] + (["--aio"] if aio else [])
            with start_server(command, "echo server") as server:
                figures = stream_echo(server.target, server.serving_pids(), docs)
            rows.append(("aio echo" if aio else "threaded echo", us, *figures))
    return rows


def service_rows(docs: list[bytes], workers: int) -> list[tuple]:
    """textmend-server and the aio worker, with the servicer's own CPU per document in
    process as their work."""
    from throughput import start_server, textmend_command

    from textmend.v1 import textmend_pb2
    from textmend_server.engine import warm_up
    from textmend_server.service import ServerConfig, TextMendServicer
    from textmend_server.wire import parse_request

    warm_up()
    servicer = TextMendServicer(ServerConfig())

    class Context:
        """What `_repair` asks of a call's context, for a call that stays."""

        def is_active(self) -> bool:
            return True

    wires = [
        textmend_pb2.RepairRequest(id=str(i), content=doc).SerializeToString()
        for i, doc in enumerate(docs)
    ]
    context = Context()

    def in_process() -> None:
        for wire in wires:
            servicer._repair(parse_request(wire), context, "RepairStream", None)  # type: ignore[arg-type]

    work = statistics.median(_thread_cpu(in_process) / len(docs) * 1e6 for _ in range(ROUNDS))
    rows = []
    aio = [sys.executable, str(BENCH / "aio_worker.py"), "--workers", str(workers)]
    for name, command in (("textmend-server", textmend_command(workers)), ("aio worker", aio)):
        with start_server(command, name) as server:
            figures = _stream_service(server.target, server.serving_pids(), docs)
        rows.append((name, work, *figures))
    return rows


def _stream_service(target: str, pids: Sequence[int], docs: list[bytes]) -> tuple[float, ...]:
    """`measure` for a TextMend server at target, through the bundled client's stream."""
    from textmend_client import TextMendClient

    with TextMendClient(target, timeout=600) as client:
        deadline = time.monotonic() + 120
        while not client.health() and time.monotonic() < deadline:
            time.sleep(0.2)

        def run() -> None:
            requests = ({"id": str(i), "content": doc} for i, doc in enumerate(docs))
            for response in client.repair_stream(requests):
                if response.HasField("error"):
                    raise RuntimeError(response.error.message)

        run()
        return measure(pids, run, len(docs))


def _thread_cpu(step: Callable[[], None]) -> float:
    started = time.thread_time()
    step()
    return time.thread_time() - started


def main(argv: list[str] | None = None) -> int:
    """Print one row per design and work: µs per document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--busy-us", type=float, nargs="+", default=[0.0, 100.0, 200.0])
    args = parser.parse_args(argv)
    from throughput import build_corpora

    docs = [d.encode("utf-8") for d in build_corpora(args.docs, corrupted=False)["english"]]
    size = statistics.mean(map(len, docs))
    print(
        f"{args.docs} clean English documents of {size / 1000:.1f} KB, {args.workers} server "
        f"worker(s), {os.cpu_count()} cores shared with the client; load average at the start "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    rows = echo_rows(docs, args.workers, args.busy_us) + service_rows(docs, args.workers)
    print()
    print("| server | work µs | MB/s | wall µs/doc | client CPU µs | worker CPU µs | around µs |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for name, work, wall, client, server in rows:
        print(
            f"| {name} | {work:.0f} | {size / wall:.1f} | {wall:.0f} | {client:.0f} "
            f"| {server:.0f} | {server - work:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
