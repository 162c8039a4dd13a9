"""Repair many files into an output directory, with progress and a summary: a backfill.

    textmend repair corpus/ more.txt --output-dir cleaned/

Relative paths are kept (`corpus/a/b.txt` -> `cleaned/a/b.txt`; a file named on the command
line lands at the top of the output directory). The run is resumable: an output that already
exists is skipped, and each output is written to a temporary name and renamed into place, so
an interrupted run never leaves a half-written file that a rerun would trust. Binary files the
server refuses are skipped with a warning; nothing is ever written over an input.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from textmend.v1 import textmend_pb2
from textmend_client.client import TextMendClient
from textmend_client.errors import Unavailable
from textmend_client.files import (
    EXIT_IO,
    EXIT_OK,
    EXIT_SERVER,
    Skipped,
    iter_files,
    repair_files,
)
from textmend_client.responses import VERDICTS, category_name, verdict_name
from textmend_client.visible import visible_text

#: Width of a summary's label column, in characters: every label of a batch run's summary
#: fits (the longest, `skipped (links, pipes)`, has 22); a longer one, such as an error code
#: in a backfill's summary, widens its own row.
SUMMARY_LABEL_WIDTH = 22
#: Width of a summary's count column: counts up to 9,999 line up; larger ones widen their row.
SUMMARY_COUNT_WIDTH = 4


@dataclass
class Tally:
    """What a batch run did, for its summary and its exit code."""

    verdicts: Counter[str] = field(default_factory=Counter)
    edits: Counter[str] = field(default_factory=Counter)
    skipped_existing: int = 0
    refused: int = 0
    too_large: int = 0
    not_files: int = 0
    io_errors: int = 0
    failed: int = 0
    documents: int = 0
    bytes_in: int = 0

    def add(self, response: textmend_pb2.RepairResponse, size: int) -> None:
        """Count one repaired document of size bytes: its verdict and its edits."""
        self.documents += 1
        self.bytes_in += size
        self.verdicts[verdict_name(response)] += 1
        self.edits.update(category_name(edit.category) for edit in response.edits)


class Progress:
    """A one-line progress bar on a terminal (documents/s, MB/s, ETA); on anything else, a
    plain line every few seconds, so logs of long runs show that work goes on (and runs
    shorter than that leave no line at all)."""

    def __init__(self, total: int, stream: IO[str], *, interval: float = 5.0) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = 0.1 if self.tty else interval
        self.started = self.last = time.monotonic()
        self.done = 0
        self.bytes = 0
        self.drawn = False

    def advance(self, size: int) -> None:
        """One more document of size bytes done; redraw when the interval has passed, and
        at the end when a line was drawn before."""
        self.done += 1
        self.bytes += size
        now = time.monotonic()
        finished = self.done == self.total and (self.tty or self.drawn)
        if now - self.last >= self.interval or finished:
            self.last = now
            self.drawn = True
            self._draw(now)

    def line(self, now: float) -> str:
        """The progress line: count, bar, rates and time left."""
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate else 0.0
        width = 24
        filled = width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (width - filled)
        return (
            f"[{bar}] {self.done}/{self.total} documents  {rate:6.1f} docs/s  "
            f"{self.bytes / elapsed / 1e6:6.2f} MB/s  ETA {_clock(left)}"
        )

    def _draw(self, now: float) -> None:
        if self.tty:
            self.stream.write("\r" + self.line(now))
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(self.line(now) + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def plan(
    paths: Iterable[str], output_dir: Path
) -> tuple[list[tuple[str, Path]], list[tuple[str, Skipped]]]:
    """Every input file with the output path it maps to, in a stable order, and what the
    walks met and do not read (`files.Skipped`: links, pipes, devices). The output directory
    itself is not walked when it lies inside an input (a rerun would read the outputs of the
    first run as inputs).

    >>> plan([], Path("out"))
    ([], [])
    """
    pairs: list[tuple[str, Path]] = []
    skipped: list[tuple[str, Skipped]] = []
    for root in paths:
        base = root if os.path.isdir(root) else os.path.dirname(root)
        for path, error in iter_files([root], exclude=output_dir):
            if isinstance(error, Skipped):
                skipped.append((path, error))
            else:
                pairs.append((path, output_dir / os.path.relpath(path, base or ".")))
    return pairs, skipped


def clash(pairs: Sequence[tuple[str, Path]]) -> str | None:
    """Why pairs cannot all be written (two inputs mapped to one output, or an output over an
    input), or None. The same input named twice is one input.

    >>> clash([("a/x.txt", Path("out/x.txt")), ("b/x.txt", Path("out/x.txt"))])
    'a/x.txt and b/x.txt would both be written to out/x.txt: repair them in separate runs'
    """
    inputs = {os.path.realpath(path) for path, _ in pairs}
    claimed: dict[str, str] = {}
    for path, target in pairs:
        where = os.path.realpath(target)
        if where in inputs:
            return (
                f"{visible_text(str(target))} would overwrite an input; choose another --output-dir"
            )
        other = claimed.setdefault(where, path)
        if os.path.realpath(other) != os.path.realpath(path):
            return (
                f"{visible_text(other)} and {visible_text(path)} would both be written to "
                f"{visible_text(str(target))}: repair them in separate runs"
            )
    return None


def run_batch(
    paths: Iterable[str],
    client: TextMendClient,
    output_dir: str | Path,
    *,
    policy: Mapping[str, str] | None = None,
    content_type: str = "",
    workers: int = 4,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    min_confidence: float = 0.0,
) -> int:
    """Repair every file under paths into output_dir; returns the exit code.

    0 when every file was repaired or skipped as already done (or binary), 2 when a file could
    not be read or written, 3 when the server failed or could not be reached.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    output_dir = Path(output_dir)
    pairs, skipped = plan(paths, output_dir)
    problem = clash(pairs)
    if problem is not None:
        err.write(f"textmend: error: {problem}\n")
        return EXIT_IO
    tally = Tally()
    for path, why in skipped:
        err.write(f"textmend: warning: skipped {visible_text(path)}: {why}\n")
        tally.not_files += 1
    todo: dict[str, Path] = {}
    for path, target in pairs:
        if target.exists():
            tally.skipped_existing += 1
        else:
            todo[path] = target
    progress = Progress(len(todo), err)
    done = 0
    for outcome in repair_files(
        list(todo),
        client,
        policy=policy,
        content_type=content_type,
        workers=workers,
        min_confidence=min_confidence,
    ):
        progress.advance(len(outcome.content))
        done += 1
        if outcome.status == "ok" and outcome.response is not None:
            try:
                _write_atomically(todo[outcome.path], outcome.response.text)
            except OSError as exc:
                shown = visible_text(str(todo[outcome.path]))
                err.write(f"textmend: error: {shown}: {exc.strerror or exc}\n")
                tally.io_errors += 1
                continue
            tally.add(outcome.response, len(outcome.content))
        elif outcome.status == "empty":
            _write_atomically(todo[outcome.path], "")
            tally.verdicts["clean"] += 1
        elif outcome.status in ("refused", "too_large"):
            err.write(f"textmend: warning: skipped {visible_text(outcome.path)}: {outcome.error}\n")
            if outcome.status == "refused":
                tally.refused += 1
            else:
                tally.too_large += 1
        elif outcome.status == "io":
            err.write(f"textmend: error: {visible_text(outcome.path)}: {outcome.error}\n")
            tally.io_errors += 1
        else:
            err.write(f"textmend: error: {visible_text(outcome.path)}: {outcome.error}\n")
            tally.failed += 1
            if isinstance(outcome.error, Unavailable):
                break
    if done < len(todo):
        err.write(
            f"textmend: error: {len(todo) - done} of {len(todo)} files were not tried; "
            "run the same command again to resume\n"
        )
    out.write(summary(tally))
    if tally.failed:
        return EXIT_SERVER
    return EXIT_IO if tally.io_errors else EXIT_OK


def _write_atomically(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".textmend-partial")
    partial.write_text(text, encoding="utf-8", newline="")
    partial.replace(target)


def summary(tally: Tally) -> str:
    """The end-of-run table: documents by verdict, what was skipped, edits by category.

    >>> t = Tally()
    >>> t.verdicts.update({"clean": 2, "repaired": 1}); t.edits.update({"mojibake": 3})
    >>> print(summary(t), end="")
    documents                 3
      clean                   2
      repaired                1
      suspect                 0
      unreadable              0
    already done              0
    skipped (binary)          0
    unreadable files          0
    server failures           0
    edits                     3
      mojibake                3
    """
    rows = [("documents", sum(tally.verdicts.values()))]
    rows += [(f"  {v}", tally.verdicts[v]) for v in VERDICTS]
    rows += [
        ("already done", tally.skipped_existing),
        ("skipped (binary)", tally.refused),
        *([("skipped (too large)", tally.too_large)] if tally.too_large else []),
        *([("skipped (links, pipes)", tally.not_files)] if tally.not_files else []),
        ("unreadable files", tally.io_errors),
        ("server failures", tally.failed),
        ("edits", sum(tally.edits.values())),
    ]
    rows += [(f"  {name}", count) for name, count in tally.edits.most_common()]
    return count_table(rows)


def count_table(rows: Sequence[tuple[str, int]]) -> str:
    """Labelled counts as the summaries of batch runs and backfills print them: labels in
    `SUMMARY_LABEL_WIDTH` columns, counts right-aligned in `SUMMARY_COUNT_WIDTH`.

    >>> print(count_table([("documents", 3), ("  clean", 2)]), end="")
    documents                 3
      clean                   2
    """
    return "".join(
        f"{label:<{SUMMARY_LABEL_WIDTH}} {count:>{SUMMARY_COUNT_WIDTH}}\n" for label, count in rows
    )
