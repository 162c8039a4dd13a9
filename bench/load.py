"""A bounded load test: callers hammer a real `textmend-server` with clean, corrupted and
hostile documents for a fixed time; report what was served, errors by code, latency and the
workers' memory.

    .venv/bin/python bench/load.py --seconds 60 --callers 32

It starts its own server (`--workers 2` by default, `--max-message-mb 4` so that oversized
documents are cheap to send) on a free loopback port and stops it with SIGTERM at the end. Each
input kind has the status codes it may get (clean text: OK; a PNG: INVALID_ARGUMENT; ...);
any other outcome, a deadline included, is counted as an error, and the exit code is 1 when
there was one, or when a worker died, or when worker memory grew by more than `--max-growth`
between the middle and the end of the run. Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from throughput import Server, rss_mb, start_server, textmend_command

from textmend_client import TextMendClient, TextMendError

KIB = 1024
MIB = 1024 * KIB

_PROSE = (
    "The conference in Zürich drew researchers from São Paulo, Kraków and Reykjavík. Speakers "
    "discussed how text moves between systems — and how easily it gets damaged on the way.\n"
)
_CHINESE = (
    "北京是中国的首都，也是一座拥有三千多年历史的古城。每年春天，游客都会到故宫和长城参观。\n"
)


@dataclass(frozen=True)
class Kind:
    """One kind of input: its weight in the mix, how to make it, and the codes it may get."""

    weight: int
    content: bytes
    expected: frozenset[str]
    declared: str = ""


def _kinds(max_message_mb: int, max_line_kb: int) -> dict[str, Kind]:
    ok = frozenset({"OK"})
    invalid = frozenset({"INVALID_ARGUMENT"})
    exhausted = frozenset({"RESOURCE_EXHAUSTED"})
    mojibake = _PROSE.encode().decode("cp1252", errors="replace").encode()
    return {
        "clean": Kind(30, (_PROSE * 40).encode(), ok),
        "clean gbk": Kind(10, (_CHINESE * 40).encode("gbk"), ok),
        "mojibake": Kind(25, mojibake * 40, ok),
        "bidi": Kind(5, ("price \u202e01$ total\u202c, " * 200).encode(), ok),
        "long line": Kind(2, ("word " * (100 * KIB // 5)).encode(), ok),
        "huge line": Kind(3, b"x" * ((max_line_kb + 1) * KIB), exhausted),
        "oversized": Kind(2, b"a" * (max_message_mb * MIB + 1), exhausted),
        "binary png": Kind(5, b"\x89PNG\r\n\x1a\n" + os.urandom(4096), invalid),
        "binary nul": Kind(5, b"text\x00" * 1000, invalid),
        "empty": Kind(5, b"", invalid),
        "unknown charset": Kind(5, b"plain words", invalid, declared="x-klingon"),
        "random bytes": Kind(3, os.urandom(8192), ok | invalid),
    }


def _memory(server: Server) -> dict[int, float]:
    return {pid: rss_mb(pid) for pid in server.workers()}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run (60)")
    parser.add_argument("--callers", type=int, default=32, help="concurrent callers (32)")
    parser.add_argument("--workers", type=int, default=2, help="server workers (2)")
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline per call (60)")
    parser.add_argument(
        "--max-growth", type=float, default=0.25, help="allowed RSS growth middle->end (0.25)"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    max_message_mb, max_line_kb = 4, 1024
    kinds = _kinds(max_message_mb, max_line_kb)
    names = list(kinds)
    weights = [kinds[name].weight for name in names]
    directory = Path(tempfile.mkdtemp(prefix="textmend-load-"))
    command = textmend_command(args.workers, "--max-message-mb", str(max_message_mb))
    with start_server(command, "textmend-server", log_dir=directory) as server:
        pids_at_start = server.workers()
        memory = {"start": _memory(server)}
        outcomes: Counter[tuple[str, str]] = Counter()
        unexpected: Counter[tuple[str, str]] = Counter()
        latencies: dict[str, list[float]] = defaultdict(list)
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds
        print(
            f"textmend load: {args.callers} callers, {args.seconds:.0f} s, {server.target}",
            flush=True,
        )

        def caller(index: int) -> None:
            rng = random.Random(args.seed * 1000 + index)
            with TextMendClient(
                server.target, timeout=args.timeout, channels=1, max_message_mb=max_message_mb + 1
            ) as client:
                n = 0
                while time.monotonic() < stop_at:
                    name = rng.choices(names, weights)[0]
                    kind = kinds[name]
                    started = time.perf_counter()
                    try:
                        client.repair(
                            kind.content,
                            id=f"c{index}-{n}",
                            declared_encoding=kind.declared,
                            omit_diff=rng.random() < 0.5,
                        )
                        code = "OK"
                    except TextMendError as error:
                        code = error.code.name
                    elapsed = time.perf_counter() - started
                    n += 1
                    with lock:
                        outcomes[(name, code)] += 1
                        latencies[name].append(elapsed)
                        if code not in kind.expected:
                            unexpected[(name, code)] += 1

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(args.callers)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(args.seconds / 2)
        memory["middle"] = _memory(server)
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        memory["end"] = _memory(server)
        pids_at_end = server.workers()
        server.process.send_signal(signal.SIGTERM)
        exit_code = server.process.wait(120)

    total = sum(outcomes.values())
    by_code: Counter[str] = Counter()
    for (_, code), count in outcomes.items():
        by_code[code] += count
    everything = [value for values in latencies.values() for value in values]
    print(f"\nrequests: {total} in {elapsed:.1f} s ({total / elapsed:.1f}/s)")
    print("by code:  " + ", ".join(f"{code} {count}" for code, count in by_code.most_common()))
    print(
        f"latency:  p50 {_percentile(everything, 0.5) * 1000:.0f} ms, "
        f"p99 {_percentile(everything, 0.99) * 1000:.0f} ms, "
        f"max {max(everything, default=0) * 1000:.0f} ms"
    )
    print(f"\n{'kind':<16} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8}  codes")
    for name in names:
        values = latencies.get(name, [])
        codes = ", ".join(f"{c} {n}" for (k, c), n in sorted(outcomes.items()) if k == name)
        print(
            f"{name:<16} {len(values):>6} {_percentile(values, 0.5) * 1000:>8.0f} "
            f"{_percentile(values, 0.99) * 1000:>8.0f}  {codes}"
        )
    print("\nworker RSS (MiB):")
    for moment in ("start", "middle", "end"):
        values = ", ".join(f"pid {pid}: {rss:.0f}" for pid, rss in memory[moment].items())
        print(f"  {moment:<6} {values}")
    problems = []
    if unexpected:
        problems.append(
            "unexpected outcomes: "
            + ", ".join(f"{name} -> {code} x{n}" for (name, code), n in unexpected.items())
        )
    if pids_at_end != pids_at_start:
        problems.append(f"workers changed: {pids_at_start} -> {pids_at_end}")
    middle, end = sum(memory["middle"].values()), sum(memory["end"].values())
    if middle and end > middle * (1 + args.max_growth):
        problems.append(f"worker memory grew from {middle:.0f} to {end:.0f} MiB")
    if exit_code != 0:
        problems.append(f"the server exited with {exit_code} on SIGTERM")
    if problems:
        print("\nFAILED:\n  " + "\n  ".join(problems))
        return 1
    print(f"\nno unexpected outcomes; workers unchanged; server exited 0 (log: {directory})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
