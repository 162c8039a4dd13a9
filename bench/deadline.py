"""How soon the server stops working for a caller whose deadline passed.

    .venv/bin/python bench/deadline.py                 # 1, 8 and 32 MB documents, 3 deadlines

Starts `textmend-server` with one worker, sends documents far too heavy to finish in time
(pages of CJK byte-phase slips and pinyin leaks, minutes of work each) with deadlines of 0.5,
1 and 2 s, and reads from the server's log how long after each deadline the work was
abandoned (the server logs "N s past deadline" when it gives up). After every abandoned call
a small request must still be served. Not part of the test run.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

from throughput import ROOT, start_server, textmend_command

from textmend_client import DeadlineExceeded, TextMendClient

_ABANDONED = re.compile(
    r"repair id='(?P<id>[^']+)' abandoned after [0-9.]+ s \((?P<past>[-0-9.]+) s"
)


def heavy_document(size: int) -> bytes:
    """size bytes of the sample article's Chinese paragraphs, repeated: slow to repair."""
    article = (ROOT / "tests" / "fixtures" / "fortune-openai-departures.txt").read_bytes()
    chinese = b"\n".join(article.split(b"\n")[:52]) + b"\n"
    return (chinese * (size // len(chinese) + 1))[:size]


def _past_deadline(log: Path, request_id: str, wait: float = 120.0) -> float | None:
    """Seconds past its deadline at which the server abandoned request_id, from its log."""
    until = time.monotonic() + wait
    while time.monotonic() < until:
        for match in _ABANDONED.finditer(log.read_text(errors="replace")):
            if match["id"] == request_id:
                return float(match["past"])
        time.sleep(0.05)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--deadlines", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    args = parser.parse_args(argv)

    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        limit = str(max(args.sizes_mb) + 8)
        command = textmend_command(1, "--log-level", "INFO", "--max-message-mb", limit)
        with start_server(command, "textmend-server", log_dir=Path(tmp)) as server:
            print(f"{'document':>9} {'deadline':>9} {'stopped past it':>16}  still serving")
            for size in args.sizes_mb:
                content = heavy_document(size * 1024 * 1024)
                for deadline in args.deadlines:
                    request_id = f"heavy-{size}mb-{deadline}s"
                    with TextMendClient(
                        server.target, timeout=deadline, channels=1, max_message_mb=int(limit)
                    ) as client:
                        try:
                            client.repair(content, id=request_id)
                            outcome = "finished in time"
                        except DeadlineExceeded:
                            outcome = None
                    past = _past_deadline(log, request_id) if outcome is None else None
                    with TextMendClient(server.target, timeout=60, channels=1) as client:
                        serving = client.repair(b"still serving").text == "still serving"
                    shown = outcome or (f"{past:.2f} s" if past is not None else "never")
                    failures += (past is None and outcome is None) or not serving
                    print(f"{size:>6} MB {deadline:>7.1f} s {shown:>16}  {serving}", flush=True)
    if failures:
        print(f"{failures} call(s) not abandoned, or the server stopped serving", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
