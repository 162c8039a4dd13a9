"""Where the time goes for one clean 5 KB document, step by step, through the whole path.

For each clean corpus of `bench/throughput.py` (English, CJK), on the same documents, this
prints the CPU time per document (µs, `time.thread_time`, so that other processes on a shared
machine count less than they would in wall time) of every step from a JSON Lines input line to
a JSON output line:

* client: the request built from a JSON Lines item (`as_request`) and serialised;
* transport: the bare gRPC bytes echo (`bench/echo_server.py`, one worker) streaming the same
  documents over the client's `fan_out`: CPU per message in the client process and in the
  echo worker (`/proc` times), what moving the bytes costs each side with no protobuf at all;
* servicer conversion: the request parsed and checked, its policy built;
* engine: `repair_bytes` without a diff (clean text passes each stage on its cheap gate);
* diff: the engine's `diff` timing when a diff is asked for (none is made without edits);
* response building: `to_response` (in place) against `to_response_full` (the reference), and
  the response serialised;
* client: the response parsed; JSON output with `json_format` (the CLI before issue 19)
  against `textmend_client.jsonl` (orjson).

    .venv/bin/python bench/profile_path.py [--docs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

#: Clock ticks per second of /proc/<pid>/stat's CPU times.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Rounds over the documents per step; the median round is reported (noise from the shared
#: machine's other work lands in single rounds).
ROUNDS = 5


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def per_doc(step: Callable[[int], object], count: int) -> float:
    """Median over ROUNDS of the CPU µs per call of step(i) for i in range(count)."""
    rounds = []
    for _ in range(ROUNDS):
        started = time.thread_time()
        for i in range(count):
            step(i)
        rounds.append((time.thread_time() - started) / count * 1e6)
    return statistics.median(rounds)


def transport(docs: list[bytes]) -> tuple[float, float, float]:
    """Client CPU µs, echo-worker CPU µs and wall µs per document over the bare echo stream."""
    import grpc
    from echo_server import STREAM_METHOD
    from throughput import STARTUP_LIMIT, echo_command, start_server

    from textmend_client.client import (
        DEFAULT_CHANNELS,
        DEFAULT_WINDOW,
        BackgroundLoop,
        channel_options,
        fan_out,
    )

    with start_server(echo_command(1), "echo server") as echo:
        background = BackgroundLoop()
        options = channel_options(64)

        async def open_channels() -> list[grpc.aio.Channel]:
            return [
                grpc.aio.insecure_channel(echo.target, options=options)
                for _ in range(DEFAULT_CHANNELS)
            ]

        channels = background.run(open_channels()).result()

        async def ready() -> None:
            # The echo server writes its port file before its workers serve: wait for them.
            for channel in channels:
                await asyncio.wait_for(channel.channel_ready(), STARTUP_LIMIT)

        background.run(ready()).result()
        streams = [channel.stream_stream(STREAM_METHOD) for channel in channels]
        openers = [lambda s=s: s(timeout=600) for s in streams]

        def run(pairs: Iterator[tuple[int, bytes]]) -> int:
            replies = fan_out(
                background,
                openers,
                pairs,
                lambda p: p[0].to_bytes(8, "big") + p[1],
                window=DEFAULT_WINDOW,
                key=lambda m: m[:8],
            )
            return sum(1 for _ in replies)

        run(iter(enumerate(docs[:50])))
        workers = echo.serving_pids()
        client_before = time.process_time()
        server_before = sum(_cpu_seconds(pid) for pid in workers)
        wall = time.perf_counter()
        total = 0
        for _ in range(ROUNDS):
            total += run(iter(enumerate(docs)))
        wall = time.perf_counter() - wall
        client = time.process_time() - client_before
        server = sum(_cpu_seconds(pid) for pid in workers) - server_before

        async def close() -> None:
            for channel in channels:
                await channel.close()

        background.run(close()).result(5)
        background.close()
    return client / total * 1e6, server / total * 1e6, wall / total * 1e6


def main(argv: list[str] | None = None) -> int:
    """Print the per-step table for the clean English and CJK corpora."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300, help="documents per corpus (300)")
    args = parser.parse_args(argv)

    from google.protobuf import json_format
    from throughput import build_corpora

    from textmend.v1 import textmend_pb2
    from textmend_client import jsonl
    from textmend_client.client import as_request
    from textmend_server import repair_bytes
    from textmend_server.config import ServerConfig
    from textmend_server.engine import warm_up
    from textmend_server.service import (
        check_limits,
        check_request,
        policy_from_request,
        to_response,
        to_response_full,
    )

    warm_up()
    config = ServerConfig()
    corpora = build_corpora(args.docs, corrupted=False)
    encoder = jsonl.ResponseEncoder()
    rows: dict[str, dict[str, float]] = {}

    def measure(texts: list[str]) -> dict[str, float]:
        """The row of one corpus."""
        n = len(texts)
        items = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
        requests = [as_request({**item, "omit_diff": True}) for item in items]
        wires = [r.SerializeToString() for r in requests]
        repaired = [repair_bytes(r.content, include_diff=False) for r in requests]
        responses = [to_response(r, str(i)) for i, r in enumerate(repaired)]
        reply_wires = [r.SerializeToString() for r in responses]

        def servicer(i: int) -> object:
            request = textmend_pb2.RepairRequest.FromString(wires[i])
            check_request(request)
            content = request.content
            check_limits(content, config)
            return policy_from_request(request)

        def diff_us(i: int) -> float:
            return repair_bytes(requests[i].content).timings.get("diff", 0.0)

        def old_json(i: int) -> str:
            message = textmend_pb2.RepairResponse.FromString(reply_wires[i])
            value = json_format.MessageToDict(message, preserving_proto_field_name=True)
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

        client_cpu, server_cpu, wall = transport([t.encode() for t in texts])
        row = {
            "client: request built and serialised": per_doc(
                lambda i: as_request(items[i]).SerializeToString(), n
            ),
            "transport: bare echo, client CPU": client_cpu,
            "transport: bare echo, server CPU": server_cpu,
            "servicer: request parsed, checked, policy": per_doc(servicer, n),
            "engine: repair_bytes (no diff)": per_doc(
                lambda i: repair_bytes(requests[i].content, include_diff=False), n
            ),
            "diff (engine's timing; no edits, none made)": statistics.mean(
                diff_us(i) for i in range(n)
            )
            * 1e6,
            "response: to_response_full (reference)": per_doc(
                lambda i: to_response_full(repaired[i], str(i)), n
            ),
            "response: to_response (in place)": per_doc(
                lambda i: to_response(repaired[i], str(i)), n
            ),
            "response: serialised": per_doc(lambda i: responses[i].SerializeToString(), n),
            "client: response parsed": per_doc(
                lambda i: textmend_pb2.RepairResponse.FromString(reply_wires[i]), n
            ),
            "JSON: json_format + json.dumps (before)": per_doc(lambda i: old_json(i), n)
            - per_doc(lambda i: textmend_pb2.RepairResponse.FromString(reply_wires[i]), n),
            "JSON: textmend_client.jsonl (orjson)": per_doc(
                lambda i: encoder.encode(responses[i]), n
            ),
        }
        row["(echo stream wall per document)"] = wall
        sizes = statistics.mean(len(w) for w in wires)
        print(f"{n} documents, mean request {sizes:.0f} bytes")
        return row

    for name, texts in corpora.items():
        print(f"{name}: ", end="")
        rows[name] = measure(texts)
    names = list(rows)
    print()
    print("| step (µs per document, CPU) | " + " | ".join(names) + " |")
    print("|---|" + "--:|" * len(names))
    for step in rows[names[0]]:
        print(f"| {step} | " + " | ".join(f"{rows[c][step]:.1f}" for c in names) + " |")
    print()
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
