"""Backfill: repair a stored corpus (JSON Lines or Parquet) on Ray, once, resumably.

    textmend backfill corpus/ --output repaired/                  # a local Ray, the engine inside
    textmend backfill s3://bucket/raw/ --output s3://bucket/fixed/ --address ray://head:10001
    textmend backfill docs.jsonl --output out/ --server textmend:50051  # a running service

Ingestion calls the service one document at a time; a backlog of millions of stored documents
is a batch job, and Ray runs the same job on a laptop and on a cluster (KubeRay). This module
plans the input as numbered partitions (`Partition`: a range of rows of one input file), and
Ray Data hands the partitions not yet done to a pool of actors. Each actor loads the engine's
models once (`textmend_server.engine.warm_up` in its constructor) — or, with `server`, opens
one `TextMendClient` — and for each partition reads its rows, repairs them and writes
`part-NNNNNN.parquet` (or `.jsonl`) under the output directory: first to a temporary name,
then moved into place, with its counts in `_stats/part-NNNNNN.json` written before it. So a
partition's file exists exactly when it is complete, and:

* a rerun skips the partitions whose file exists (an interrupted job resumes);
* an actor that dies mid-partition is restarted by Ray and its partition is redone from its
  first row (Ray Data's actor pools restart actors and retry their tasks by default), so no
  row is lost and none is written twice;
* the summary counts every partition's `_stats` file, the ones done by earlier runs too.

The engine's result for a row is exactly what the service returns for the same bytes: the
row is built as the service builds a request (`make_request`), run through the service's own
`repair_request` (with the server's default limits, `ServerConfig()`) and `to_response`, and
both modes turn the `RepairResponse` into a row with the same function (`response_row`).

A row that cannot be repaired (no content, binary, an unknown charset, over a limit, a bad
JSON line) is written with its `error` set (`{code, message}`, the gRPC status name and the
server's message) and counted; it never stops the job. Only an unreachable server (`server`
mode) or an unreadable input file fails the job, which then resumes on a rerun.

Needs the `ray` extra (`pip install -e '.[ray]'` from a checkout: Ray Data and pyarrow),
imported only when a backfill runs.

This module runs the job on Ray (`repair_dataset`) and sums it up (`summary`); planning and
reading partitions is `textmend_client.backfill_plan`'s job, the actors'
`textmend_client.backfill_actor`'s, and what is written `textmend_client.backfill_output`'s.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from textmend_client.backfill_actor import (
    EngineRepairer,
    PartitionActor,
    ServerRepairer,
    run_partition,
)
from textmend_client.backfill_output import (
    PLAN_FILE,
    STATS_DIR,
    TMP_DIR,
    Stats,
    clean_tmp,
    collect_stats,
    error_row,
    output_schema,
    prepare_output,
    response_row,
    total_stats,
    write_partition,
)
from textmend_client.backfill_plan import (
    CONTENT_COLUMNS,
    DEFAULT_PARTITION_ROWS,
    JSONL_SUFFIXES,
    PARQUET_SUFFIXES,
    BackfillError,
    Columns,
    Job,
    Partition,
    Row,
    list_inputs,
    plan_partitions,
    read_partition,
)
from textmend_client.batch import count_table
from textmend_client.request import check_min_confidence
from textmend_client.responses import VERDICTS

# What this module has always offered, now defined by job in the modules above.
__all__ = [
    "CONTENT_COLUMNS",
    "DEFAULT_PARTITION_ROWS",
    "DEFAULT_SERVER_ACTORS",
    "ENGINE_ACTOR_CPUS",
    "JSONL_SUFFIXES",
    "PARQUET_SUFFIXES",
    "PARTITION_RETRIES",
    "PLAN_FILE",
    "SERVER_ACTOR_CPUS",
    "STATS_DIR",
    "TMP_DIR",
    "VERDICTS",
    "BackfillError",
    "BackfillResult",
    "Columns",
    "EngineRepairer",
    "Job",
    "Partition",
    "PartitionActor",
    "Row",
    "ServerRepairer",
    "Stats",
    "error_row",
    "list_inputs",
    "output_schema",
    "plan_partitions",
    "read_partition",
    "repair_dataset",
    "response_row",
    "run_partition",
    "summary",
    "write_partition",
]

#: CPUs Ray reserves for one actor with the embedded engine: the engine is CPU-bound Python
#: (one core per process, as the server's workers are).
ENGINE_ACTOR_CPUS = 1.0
#: CPUs Ray reserves for one actor in `server` mode, which mostly waits for the service: its
#: own work is reading rows, building requests and writing the partition.
SERVER_ACTOR_CPUS = 0.25
#: Times Ray is asked to try a partition again after its actor died repairing it (a killed or
#: preempted node; the kill test needs one). Ray Data's own default is to retry without end,
#: which a document that kills every actor reading it would turn into a hung job; with a
#: limit the job should stop with that partition unwritten, for a rerun to try again (the
#: limit is passed as Ray's `max_task_retries`; not yet tried with such a document).
PARTITION_RETRIES = 3
#: Actors in `server` mode by default: each streams one partition at a time over
#: `DEFAULT_CHANNELS` connections, so two keep the service busy while one writes its output.
DEFAULT_SERVER_ACTORS = 2


@dataclass
class BackfillResult:
    """What a backfill did: totals over every finished partition (`stats`, this run's and
    earlier runs'), this run's share (`run`), and how many partitions it skipped as done."""

    stats: Stats
    run: Stats
    partitions: int
    skipped: int
    seconds: float
    output: str


def _start_ray(address: str | None) -> None:
    """Join the cluster at address (or RAY_ADDRESS), or start Ray on this machine; an
    already-initialised Ray (a notebook's, a test's) is used as it is."""
    import ray

    if ray.is_initialized():
        return
    ray.init(address=address or os.environ.get("RAY_ADDRESS") or None, log_to_driver=True)


def repair_dataset(
    sources: str | Sequence[str],
    output: str,
    *,
    input_format: str | None = None,
    output_format: str = "parquet",
    columns: Columns | None = None,
    content_type: str = "",
    policy: Mapping[str, str] | None = None,
    server: str | None = None,
    timeout: float | None = None,
    address: str | None = None,
    min_confidence: float = 0.0,
    actors: int | None = None,
    partition_rows: int = DEFAULT_PARTITION_ROWS,
) -> BackfillResult:
    """Repair every row of the JSON Lines or Parquet files under sources into output
    (a directory or URI of `part-NNNNNN.parquet` or `.jsonl` files); see the module's
    docstring. Partitions already in output are skipped, so a rerun resumes.

    `actors` is the size of the Ray actor pool (default: the cluster's CPUs with the engine,
    `DEFAULT_SERVER_ACTORS` with `server`). Raises `BackfillError` for bad inputs or options,
    `TextMendError` when `server` cannot be reached.
    """
    started = time.monotonic()
    if output_format not in ("parquet", "jsonl"):
        raise BackfillError(f"output format must be parquet or jsonl, not {output_format!r}")
    if input_format not in (None, "parquet", "jsonl"):
        raise BackfillError(f"input format must be parquet or jsonl, not {input_format!r}")
    try:
        check_min_confidence(min_confidence)
    except ValueError as exc:
        raise BackfillError(str(exc)) from None
    if isinstance(sources, str):
        sources = [sources]
    columns = columns or Columns()
    job = Job(
        output=output if "://" in output else os.path.abspath(output),
        output_format=output_format,
        columns=columns,
        content_type=content_type,
        policy=dict(policy or {}),
        server=server,
        timeout=timeout,
        min_confidence=min_confidence,
    )
    inputs = list_inputs(sources, input_format)
    partitions = plan_partitions(inputs, partition_rows)
    plan = {
        "inputs": [[uri, kind, size] for uri, kind, size in inputs],
        "partition_rows": partition_rows,
        "partitions": len(partitions),
        "output_format": output_format,
        "columns": dataclasses.asdict(columns),
        "content_type": content_type,
        "policy": job.policy,
        # Only when set: a backfill begun before the option existed resumes as it was.
        **({"min_confidence": job.min_confidence} if job.min_confidence else {}),
    }
    done = prepare_output(job, plan)
    todo = [p for p in partitions if p.name not in done]
    if todo:
        import ray

        _start_ray(address)
        if actors is None:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            actors = DEFAULT_SERVER_ACTORS if server else max(1, min(cpus, len(todo)))
        dataset = ray.data.from_items(
            [{"partition": json.dumps(dataclasses.asdict(p))} for p in todo],
            override_num_blocks=len(todo),
        ).map_batches(
            PartitionActor,
            fn_constructor_args=(job,),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(actors, len(todo))),
            num_cpus=SERVER_ACTOR_CPUS if server else ENGINE_ACTOR_CPUS,
            max_task_retries=PARTITION_RETRIES,
        )
        for _ in dataset.iter_rows():
            pass
        clean_tmp(job)
    counts = collect_stats(job, partitions)
    return BackfillResult(
        total_stats(counts.values()),
        total_stats(counts[partition.name] for partition in todo),
        len(partitions),
        len(partitions) - len(todo),
        time.monotonic() - started,
        output,
    )


def summary(result: BackfillResult) -> str:
    """The end-of-run table, laid out as the CLI batch's: documents by verdict, errors,
    partitions, edits by category, and the rate of this run.

    >>> from collections import Counter
    >>> s = Stats(3, 3000, Counter(clean=2), Counter(mojibake=4), Counter(INVALID_ARGUMENT=1))
    >>> print(summary(BackfillResult(s, s, 2, 1, 2.0, "out")), end="")
    documents            3
      clean              2
      repaired           0
      suspect            0
      unreadable         0
    errors               1
      INVALID_ARGUMENT   1
    partitions           2
      already done       1
    edits                4
      mojibake           4
    this run: 3 documents in 2.0 s, 1.5 documents/s, 0.00 MB/s
    """
    stats = result.stats
    rows: list[tuple[str, int]] = [("documents", stats.documents)]
    rows += [(f"  {verdict}", stats.verdicts[verdict]) for verdict in VERDICTS]
    rows += [("errors", sum(stats.errors.values()))]
    rows += [(f"  {code}", count) for code, count in stats.errors.most_common()]
    rows += [("partitions", result.partitions), ("  already done", result.skipped)]
    rows += [("edits", sum(stats.edits.values()))]
    rows += [(f"  {name}", count) for name, count in stats.edits.most_common()]
    text = count_table(rows)
    run, seconds = result.run, max(result.seconds, 1e-9)
    return text + (
        f"this run: {run.documents} documents in {result.seconds:.1f} s, "
        f"{run.documents / seconds:.1f} documents/s, {run.bytes / seconds / 1e6:.2f} MB/s\n"
    )
