"""A bounded load test: callers hammer a real `textmend-server` for a fixed time; report what
was served, errors by code, latency per kind of document and the memory of every worker.

    .venv/bin/python bench/load.py --seconds 60 --callers 32                # hostile mix
    .venv/bin/python bench/load.py --mix real --seconds 300 --callers 64    # issue 16's load

It starts its own server (`--workers 2` by default, `--max-message-mb 4` so that oversized
documents are cheap to send) on a free loopback port and stops it with SIGTERM at the end.

Mixes (`--mix`):

* `hostile`: one document per kind, clean, corrupted and hostile (binary, empty, oversized,
  unknown charsets, bidi controls, huge lines);
* `real`: issue 16's mixed load of real documents, about 5 KB each: English news prose
  (`clean 5k`, the kind whose p99 issue 16 bounds at 1 s), Chinese/Japanese/Korean prose,
  the same prose with injected damage, 10% heavily corrupted Chinese (GBK bytes cut before
  misaligned punctuation and annotated with pinyin by the byte model of `tests/corruptors.py`,
  a different document each time so no cache hides the cost, plus the sample article cut into
  5 KB pieces), and a few hostile inputs. It needs the prose corpora of `bench/cjk_bench.py`.

Each input kind has the status codes it may get (clean text: OK; a PNG: INVALID_ARGUMENT; ...);
any other outcome, a deadline or UNKNOWN/INTERNAL included, is counted as an error, and the exit
code is 1 when there was one, or when a worker died, or when a worker's RSS at the end was more
than `--max-growth` times its RSS after warm-up. Memory is read from `/proc/PID/smaps_rollup`:
RSS, PSS (shared pages divided among the processes sharing them) and USS (pages only this
process has: what one more worker costs). Not part of the test run.
"""

from __future__ import annotations

import argparse
import dataclasses
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

from throughput import ROOT, Server, start_server, textmend_command

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


# Size of the real mix's documents: issue 16's "5 KB clean document".
DOC_BYTES = 5_000
# Distinct heavily corrupted Chinese documents made for the real mix: enough that the engine's
# memos cannot hold every answer (the sample article alone repairs 3-10x faster the second
# time), few enough to build in a few seconds.
HEAVY_DOCUMENTS = 300
SAMPLE_ARTICLE = ROOT / "tests" / "fixtures" / "fortune-openai-departures.txt"


@dataclass(frozen=True)
class Kind:
    """One kind of input: its weight in the mix, the documents to pick from, and the codes it
    may get."""

    weight: int
    contents: tuple[bytes, ...]
    expected: frozenset[str]
    declared: str = ""

    @classmethod
    def one(cls, weight: int, content: bytes, expected: frozenset[str], declared: str = "") -> Kind:
        """A kind with a single document."""
        return cls(weight, (content,), expected, declared)


def _cut(data: bytes, start: int, size: int = DOC_BYTES) -> bytes:
    """size bytes of UTF-8 data from start, both ends moved to character boundaries."""
    while start < len(data) and data[start] & 0xC0 == 0x80:
        start += 1
    end = min(len(data), start + size)
    while end < len(data) and data[end] & 0xC0 == 0x80:
        end -= 1
    return data[start:end]


def _heavy_cjk(count: int, seed: int) -> tuple[bytes, ...]:
    """count heavily corrupted Chinese documents of about DOC_BYTES, and the sample article's
    Chinese in DOC_BYTES pieces at every 1 KB offset."""
    import cjk_bench
    from corruptors import corrupt_document

    paragraphs = cjk_bench.traditional(cjk_bench.people_daily())
    rng = random.Random(seed)
    documents = []
    for k in range(count):
        start = rng.randrange(len(paragraphs))
        chosen: list[str] = []
        while sum(len(p.encode()) for p in chosen) < DOC_BYTES * 1.1:
            chosen.append(paragraphs[(start + len(chosen)) % len(paragraphs)])
        hans = sorted({c for p in chosen for c in p if "\u4e00" <= c <= "\u9fff"})
        corrupted = corrupt_document(
            chosen, seed=seed * 7919 + k, pinyin_chars=rng.sample(hans, min(len(hans), 40))
        )
        documents.append(_cut(corrupted.text.encode(), 0))
    article = SAMPLE_ARTICLE.read_bytes()
    pieces = [_cut(article, at) for at in range(0, len(article), 1000)]
    # The article is Chinese, then English: keep the pieces that are mostly Chinese.
    documents += [
        p for p in pieces if len(p) > DOC_BYTES // 2 and sum(b >= 0x80 for b in p) > len(p) / 2
    ]
    return tuple(documents)


def _real_kinds(max_message_mb: int, max_line_kb: int, seed: int) -> dict[str, Kind]:
    """Issue 16's mixed load: real documents of about 5 KB, 10% heavily corrupted Chinese."""
    from throughput import build_corpora

    ok = frozenset({"OK"})
    corpora = build_corpora(60, seed=seed)
    encoded = {name: tuple(d.encode() for d in docs) for name, docs in corpora.items()}
    hostile = _kinds(max_message_mb, max_line_kb)
    return {
        "clean 5k": Kind(40, encoded["english"], ok),
        "clean cjk 5k": Kind(15, encoded["cjk"], ok),
        "corrupted 5k": Kind(25, encoded["corrupted"], ok),
        "heavy cjk 5k": Kind(10, _heavy_cjk(HEAVY_DOCUMENTS, seed), ok),
        **{
            name: dataclasses.replace(hostile[name], weight=weight)
            for name, weight in (
                ("binary png", 3),
                ("empty", 2),
                ("unknown charset", 2),
                ("oversized", 1),
                ("huge line", 2),
            )
        },
    }


def _kinds(max_message_mb: int, max_line_kb: int) -> dict[str, Kind]:
    ok = frozenset({"OK"})
    invalid = frozenset({"INVALID_ARGUMENT"})
    exhausted = frozenset({"RESOURCE_EXHAUSTED"})
    mojibake = _PROSE.encode().decode("cp1252", errors="replace").encode()
    return {
        "clean": Kind.one(30, (_PROSE * 40).encode(), ok),
        "clean gbk": Kind.one(10, (_CHINESE * 40).encode("gbk"), ok),
        "mojibake": Kind.one(25, mojibake * 40, ok),
        "bidi": Kind.one(5, ("price \u202e01$ total\u202c, " * 200).encode(), ok),
        "long line": Kind.one(2, ("word " * (100 * KIB // 5)).encode(), ok),
        "huge line": Kind.one(3, b"x" * ((max_line_kb + 1) * KIB), exhausted),
        "oversized": Kind.one(2, b"a" * (max_message_mb * MIB + 1), exhausted),
        "binary png": Kind.one(5, b"\x89PNG\r\n\x1a\n" + os.urandom(4096), invalid),
        "binary nul": Kind.one(5, b"text\x00" * 1000, invalid),
        "empty": Kind.one(5, b"", invalid),
        "unknown charset": Kind.one(5, b"plain words", invalid, declared="x-klingon"),
        "random bytes": Kind.one(3, os.urandom(8192), ok | invalid),
    }


@dataclass(frozen=True)
class Memory:
    """One process's memory, MiB, from `/proc/PID/smaps_rollup`."""

    rss: float
    pss: float
    uss: float

    def __str__(self) -> str:
        return f"{self.rss:.0f}/{self.pss:.0f}/{self.uss:.0f}"


def memory(pid: int) -> Memory | None:
    """RSS, PSS and USS (private clean + private dirty) of pid, or None when it is gone."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    except OSError:
        return None
    kib = {}
    for line in lines:
        key, _, value = line.partition(":")
        kib[key] = int(value.split()[0])
    uss = kib.get("Private_Clean", 0) + kib.get("Private_Dirty", 0)
    return Memory(kib["Rss"] / 1024, kib["Pss"] / 1024, uss / 1024)


def _memory(server: Server) -> dict[int, Memory]:
    """Memory of every worker, and of the parent under its pid."""
    found = {pid: memory(pid) for pid in [server.process.pid, *server.serving_pids()]}
    return {pid: m for pid, m in found.items() if m is not None}


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
        "--max-growth",
        type=float,
        default=1.2,
        help="most a worker's RSS at the end may be, as a multiple of its RSS after warm-up "
        "(1.2, issue 16's bound)",
    )
    parser.add_argument(
        "--mix", choices=["hostile", "real"], default="hostile", help="what to send (hostile)"
    )
    parser.add_argument(
        "--sample", type=float, default=60.0, help="seconds between memory samples (60)"
    )
    parser.add_argument(
        "--server-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="pass OPTION to textmend-server (repeat; e.g. --server-option=--cache-mb=32)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="KIND",
        help="leave this kind of input out of the mix (repeat; e.g. --without 'binary png')",
    )
    args = parser.parse_args(argv)

    max_message_mb, max_line_kb = 4, 1024
    if args.mix == "real":
        kinds = _real_kinds(max_message_mb, max_line_kb, args.seed)
    else:
        kinds = _kinds(max_message_mb, max_line_kb)
    unknown = sorted(set(args.without) - set(kinds))
    if unknown:
        parser.error(f"no such kind in the {args.mix} mix: {', '.join(unknown)}")
    kinds = {name: kind for name, kind in kinds.items() if name not in args.without}
    names = list(kinds)
    weights = [kinds[name].weight for name in names]
    directory = Path(tempfile.mkdtemp(prefix="textmend-load-"))
    command = textmend_command(
        args.workers, "--max-message-mb", str(max_message_mb), *args.server_option
    )
    with start_server(command, "textmend-server", log_dir=directory) as server:
        pids_at_start = server.serving_pids()
        samples: list[tuple[float, dict[int, Memory]]] = [(0.0, _memory(server))]
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
                            rng.choice(kind.contents),
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
        while any(thread.is_alive() for thread in threads):
            time.sleep(0.5)
            if time.monotonic() - started >= samples[-1][0] + args.sample:
                samples.append((time.monotonic() - started, _memory(server)))
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        samples.append((elapsed, _memory(server)))
        pids_at_end = server.serving_pids()
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
    print(f"\n{'kind':<16} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  codes")
    for name in names:
        values = latencies.get(name, [])
        codes = ", ".join(f"{c} {n}" for (k, c), n in sorted(outcomes.items()) if k == name)
        print(
            f"{name:<16} {len(values):>6} {_percentile(values, 0.5) * 1000:>8.0f} "
            f"{_percentile(values, 0.99) * 1000:>8.0f} {max(values, default=0) * 1000:>8.0f}  "
            f"{codes}"
        )
    parent = server.process.pid
    print("\nmemory, MiB, RSS/PSS/USS (the parent first, then each worker):")
    for at, memories in samples:
        values = ", ".join(
            f"{'parent' if pid == parent else 'pid ' + str(pid)} {m}" for pid, m in memories.items()
        )
        print(f"  {at:6.0f} s  {values}")
    problems = []
    if unexpected:
        problems.append(
            "unexpected outcomes: "
            + ", ".join(f"{name} -> {code} x{n}" for (name, code), n in unexpected.items())
        )
    if pids_at_end != pids_at_start:
        problems.append(f"workers changed: {pids_at_start} -> {pids_at_end}")
    first, last = samples[0][1], samples[-1][1]
    for pid in pids_at_start:
        if pid in first and pid in last and last[pid].rss > first[pid].rss * args.max_growth:
            problems.append(
                f"worker {pid}'s RSS grew from {first[pid].rss:.0f} MiB after warm-up to "
                f"{last[pid].rss:.0f} MiB, over {args.max_growth:g}x"
            )
    if exit_code != 0:
        problems.append(f"the server exited with {exit_code} on SIGTERM")
    if problems:
        print("\nFAILED:\n  " + "\n  ".join(problems))
        return 1
    print(f"\nno unexpected outcomes; workers unchanged; server exited 0 (log: {directory})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
