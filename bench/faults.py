"""Workers killed under load: is any accepted request lost?

    .venv/bin/python bench/faults.py --seconds 60 --interval 3

Starts `textmend-server` with two workers. Unary callers (threads, one connection each) and one
streaming caller send documents dense with mojibake, each tagged so that no two are alike; every
`--interval` seconds a worker is killed with SIGKILL, and the server starts another. Repair is
idempotent, so the client retries what a dead worker dropped. Each response is checked against
the in-process engine's repair of the same document. Reports requests sent, answered
correctly, failed (by status) and wrong, workers killed and replaced; exits 1 if any request
was lost or answered wrongly. Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from throughput import Server, start_server, textmend_command

from textmend_client import TextMendClient, TextMendError
from textmend_server import repair_bytes

_LINE = "Grüße aus München — cafÃ© crème, itâ€™s déjà vu, naÃ¯ve faÃ§ade.\n"


def document(tag: str, lines: int) -> bytes:
    """A document dense with mojibake, unique by its tag."""
    return "".join(f"{tag} {i}: {_LINE}" for i in range(lines)).encode()


class Tally:
    """Outcomes of every request, shared by the callers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()

    def add(self, outcome: str, count: int = 1) -> None:
        with self.lock:
            self.outcomes[outcome] += count


def unary_caller(target: str, index: int, stop: float, lines: int, tally: Tally) -> None:
    with TextMendClient(target, timeout=120, channels=1) as client:
        n = 0
        while time.monotonic() < stop:
            tag = f"u{index}-{n}"
            n += 1
            content = document(tag, lines)
            try:
                response = client.repair(content, id=tag, omit_diff=True)
            except TextMendError as error:
                tally.add(f"unary {error.code.name}")
                continue
            expected = repair_bytes(content, include_diff=False).text
            tally.add("unary ok" if response.text == expected else "unary WRONG")


def stream_caller(target: str, stop: float, lines: int, tally: Tally) -> None:
    with TextMendClient(target, stream_timeout=600, channels=2) as client:
        batch = 0
        while time.monotonic() < stop:
            docs = {f"s{batch}-{k}": document(f"s{batch}-{k}", lines) for k in range(20)}
            batch += 1
            answered = set()
            try:
                requests = [{"id": i, "content": c, "omit_diff": True} for i, c in docs.items()]
                for response in client.repair_stream(requests):
                    answered.add(response.id)
                    if response.error.code:
                        tally.add(f"stream error {response.error.code}")
                        continue
                    expected = repair_bytes(docs[response.id], include_diff=False).text
                    tally.add("stream ok" if response.text == expected else "stream WRONG")
            except TextMendError as error:
                tally.add(f"stream {error.code.name}")
            tally.add("stream LOST", len(set(docs) - answered))


def killer(server: Server, stop: float, interval: float, kills: list[int]) -> None:
    rng = random.Random(1)
    while time.monotonic() + interval < stop:
        time.sleep(interval)
        workers = server.workers()
        if len(workers) < 2:
            continue  # a replacement is still starting
        victim = rng.choice(workers)
        os.kill(victim, signal.SIGKILL)
        kills.append(victim)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between kills")
    parser.add_argument("--callers", type=int, default=6, help="unary callers")
    parser.add_argument("--lines", type=int, default=400, help="lines per document (~30 KB)")
    args = parser.parse_args(argv)

    tally = Tally()
    kills: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        command = textmend_command(2, "--log-level", "INFO")
        with start_server(command, "textmend-server", log_dir=Path(tmp)) as server:
            first = server.workers()
            stop = time.monotonic() + args.seconds
            threads = [
                threading.Thread(
                    target=unary_caller, args=(server.target, i, stop, args.lines, tally)
                )
                for i in range(args.callers)
            ]
            threads.append(
                threading.Thread(
                    target=stream_caller, args=(server.target, stop, args.lines, tally)
                )
            )
            threads.append(
                threading.Thread(target=killer, args=(server, stop, args.interval, kills))
            )
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            # The last kill may be a moment old: give its replacement time to start.
            until = time.monotonic() + 120
            while time.monotonic() < until:
                last = server.workers()
                if len(last) == len(first) and not set(last) & set(kills):
                    break
                time.sleep(0.2)

    outcomes = tally.outcomes
    sent = sum(outcomes.values())
    bad = {k: n for k, n in outcomes.items() if n and not k.endswith(" ok")}
    print(f"requests: {sent}; " + ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items())))
    print(f"workers killed: {len(kills)}; workers at start {first}, at the end {last}")
    replaced = not set(last) & set(kills) and len(last) == len(first)
    if bad or not replaced:
        print(f"FAILED: {bad or ''} {'' if replaced else 'workers not replaced'}")
        return 1
    print("no request lost or answered wrongly; every killed worker replaced")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
