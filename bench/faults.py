"""Workers killed under load: is any accepted request lost, and how soon is each replaced?

    .venv/bin/python bench/faults.py --seconds 60 --interval 3
    .venv/bin/python bench/faults.py --mix real --callers 64 --seconds 120 --interval 10

Starts `textmend-server` with two workers. Unary callers (threads, one connection each) and one
streaming caller send documents; every `--interval` seconds a worker is killed with SIGKILL,
and the server starts another. Repair is idempotent, so the client retries what a dead worker
dropped. Mixes (`--mix`):

* `mojibake` (default): documents dense with mojibake, each tagged so that no two are alike;
  each response is checked against the in-process engine's repair of the same document;
* `real`: issue 16's mixed load of `bench/load.py --mix real` (5 KB English, CJK and corrupted
  prose, 10% heavily corrupted Chinese, a few hostile inputs) from the unary callers; each
  outcome is checked against the status codes its kind may get (the texts are not compared:
  repairing every document again in this process would take the cores the server needs).

Reports requests sent, answered correctly, failed (by status) and wrong, workers killed and
replaced, and how long each replacement took to report SERVING after its predecessor died (the
server logs it; issue 16's bound is 3 s). Exits 1 if any request was lost or answered wrongly,
or a killed worker was not replaced. Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

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


def mixed_caller(
    target: str, index: int, stop: float, kinds: dict[str, Any], timeout: float, tally: Tally
) -> None:
    """Send `bench/load.py`'s real mix; count each outcome as ok or by its unexpected code."""
    rng = random.Random(index)
    names = list(kinds)
    weights = [kinds[name].weight for name in names]
    with TextMendClient(target, timeout=timeout, channels=1, max_message_mb=5) as client:
        n = 0
        while time.monotonic() < stop:
            name = rng.choices(names, weights)[0]
            kind = kinds[name]
            n += 1
            try:
                client.repair(
                    rng.choice(kind.contents),
                    id=f"m{index}-{n}",
                    declared_encoding=kind.declared,
                    omit_diff=True,
                )
                code = "OK"
            except TextMendError as error:
                code = error.code.name
            tally.add("unary ok" if code in kind.expected else f"unary {code} ({name})")


# What the server logs when a replacement worker reports SERVING (textmend_server.main).
_RECOVERY = re.compile(r"serving (\d+\.\d+) s after its predecessor died")


def recoveries(log: Path) -> list[float]:
    """Seconds from each worker's death to its replacement's SERVING, from the server log."""
    return [float(m.group(1)) for m in _RECOVERY.finditer(log.read_text(errors="replace"))]


def killer(server: Server, stop: float, interval: float, kills: list[int]) -> None:
    rng = random.Random(1)
    while time.monotonic() + interval < stop:
        time.sleep(interval)
        workers = server.serving_pids()
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
    parser.add_argument(
        "--mix", choices=["mojibake", "real"], default="mojibake", help="what to send (mojibake)"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="deadline of each unary call, s (120)"
    )
    args = parser.parse_args(argv)

    tally = Tally()
    kills: list[int] = []
    kinds: dict[str, Any] = {}
    if args.mix == "real":
        from load import _real_kinds

        kinds = _real_kinds(4, 1024, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        command = textmend_command(2, "--log-level", "INFO", "--max-message-mb", "4")
        with start_server(command, "textmend-server", log_dir=Path(tmp)) as server:
            first = server.serving_pids()
            stop = time.monotonic() + args.seconds
            if kinds:
                threads = [
                    threading.Thread(
                        target=mixed_caller,
                        args=(server.target, i, stop, kinds, args.timeout, tally),
                    )
                    for i in range(args.callers)
                ]
            else:
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
                last = server.serving_pids()
                if len(last) == len(first) and not set(last) & set(kills):
                    break
                time.sleep(0.2)
            time.sleep(1.0)  # the last replacement's SERVING line
            recovered = recoveries(Path(tmp) / "server.log")

    outcomes = tally.outcomes
    sent = sum(outcomes.values())
    bad = {k: n for k, n in outcomes.items() if n and not k.endswith(" ok")}
    print(f"requests: {sent}; " + ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items())))
    print(f"workers killed: {len(kills)}; workers at start {first}, at the end {last}")
    if recovered:
        print(
            f"replacement SERVING after its predecessor died: {len(recovered)} times, "
            f"max {max(recovered):.3f} s, median {sorted(recovered)[len(recovered) // 2]:.3f} s, "
            f"{sum(r <= 3.0 for r in recovered)} within 3 s"
        )
    replaced = not set(last) & set(kills) and len(last) == len(first)
    if bad or not replaced or len(recovered) < len(kills):
        print(
            f"FAILED: {bad or ''} {'' if replaced else 'workers not replaced'} "
            f"{len(recovered)} replacements logged SERVING for {len(kills)} kills"
        )
        return 1
    print("no request lost or answered wrongly; every killed worker replaced")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
