"""Backfill throughput next to the CLI batch, on the same corpus, on this machine.

    .venv/bin/python bench/backfill.py                 # the test corpus once (2,733 documents)
    .venv/bin/python bench/backfill.py --repeat 3 --cpus 2

The corpus is `tests/test_backfill.py`'s (the case files, the sample article and the vendored
real files cut into pieces, the same text damaged in several encodings), without declared
charsets, since files on disk carry none: each document is written once as a file (`.html`
for text/html, `.txt` otherwise, so that the CLI's content-type rule gives the same content
type) and once as a row of a Parquet file. Three runs, each timed from its command to its
last output written:

* `textmend repair DIR --output-dir OUT` against a local `textmend-server --workers CPUS`
  (started and warmed up before the clock starts);
* `textmend_client.backfill.repair_dataset` (`PARTITION_ROWS` rows a partition) with the
  engine in a Ray actor pool of CPUS actors (Ray started before the clock; the actors' start
  and model loading are inside the time);
* the same with `server=` a local server (`--server`), started afresh (the engine memoises).

Prints documents/s and MB/s (content bytes) for each.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from textmend_server.testing import LaunchError, launch, server_command

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

#: Rows per partition: the backfill's default.
PARTITION_ROWS = 1000


def build(repeat: int, directory: Path) -> tuple[list[dict[str, Any]], Path, Path]:
    """The corpus as files under directory/files and as directory/corpus.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from test_backfill import build_corpus

    docs = []
    for round_ in range(repeat):
        for doc in build_corpus():
            docs.append({**doc, "id": f"{round_}-{doc['id']}", "declared_encoding": ""})
    files = directory / "files"
    files.mkdir()
    for doc in docs:
        suffix = ".html" if doc["content_type"] == "text/html" else ".txt"
        (files / (doc["id"] + suffix)).write_bytes(doc["content"])
    table = pa.table(
        {
            "id": [doc["id"] for doc in docs],
            "content": pa.array([doc["content"] for doc in docs], pa.binary()),
            "content_type": [doc["content_type"] or None for doc in docs],
        }
    )
    parquet = directory / "corpus.parquet"
    pq.write_table(table, parquet)
    return docs, files, parquet


@contextlib.contextmanager
def running_server(directory: Path, workers: int) -> Iterator[str]:
    """A local `textmend-server` (its target) from SERVING until the block ends."""
    directory.mkdir()
    try:
        with launch(server_command("--workers", str(workers)), directory) as server:
            yield server.target
    except LaunchError:
        raise SystemExit(
            "textmend-server did not start; see " + str(directory / "server.log")
        ) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="copies of the corpus (default 1)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    import ray

    from textmend_client.backfill import repair_dataset

    work = Path(tempfile.mkdtemp(prefix="textmend-bench-backfill-"))
    try:
        docs, files, parquet = build(args.repeat, work)
        size = sum(len(doc["content"]) for doc in docs)
        print(f"corpus: {len(docs)} documents, {size / 1e6:.2f} MB; {args.cpus} CPUs")
        results: list[tuple[str, float]] = []
        # A fresh server for each run that uses one: the engine memoises results, and the
        # second run over the same documents would find them cached.
        with running_server(work / "server-cli", args.cpus) as target:
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "textmend_client.cli", "repair", str(files),
                 "--output-dir", str(work / "cli-out"), "--server", target],
                check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            results.append(("CLI batch (repair --output-dir)", time.perf_counter() - started))
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            started = time.perf_counter()
            repair_dataset(str(parquet), str(work / "ray-out"), partition_rows=PARTITION_ROWS)
            results.append(("backfill, engine in Ray actors", time.perf_counter() - started))
            with running_server(work / "server-ray", args.cpus) as target:
                started = time.perf_counter()
                repair_dataset(
                    str(parquet), str(work / "ray-server-out"), server=target,
                    partition_rows=PARTITION_ROWS,
                )  # fmt: skip
                results.append(("backfill --server", time.perf_counter() - started))
        finally:
            ray.shutdown()
        print(f"{'':34} {'seconds':>8} {'docs/s':>8} {'MB/s':>6}")
        for name, seconds in results:
            print(
                f"{name:34} {seconds:8.1f} {len(docs) / seconds:8.1f} {size / seconds / 1e6:6.2f}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
