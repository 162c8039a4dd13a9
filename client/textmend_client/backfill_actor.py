"""The repairing side of a backfill (`textmend_client.backfill`): the Ray Data actor
(`PartitionActor`) that reads, repairs and writes whole partitions, with the engine in its own
process (`EngineRepairer`) or a running service (`ServerRepairer`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import grpc

from textmend.v1 import textmend_pb2
from textmend_client.backfill_output import Stats, error_row, response_row, write_partition
from textmend_client.backfill_plan import Job, Partition, Row, read_partition
from textmend_client.channels import DEFAULT_CHANNELS
from textmend_client.client import TextMendClient
from textmend_client.errors import TextMendError
from textmend_client.request import check_id, make_request


def _request(row: Row, job: Job, request_id: str) -> textmend_pb2.RepairRequest:
    """The request the service would get for a row (ValueError for an id over the limit)."""
    check_id(row.id or "")  # the row's own id (a stream sends a position as the id instead)
    return make_request(
        row.content,
        id=request_id,
        declared_encoding=row.declared_encoding,
        content_type=row.content_type,
        policy=job.policy,
        omit_diff=True,
        min_confidence=job.min_confidence,
    )


class EngineRepairer:
    """Repairs rows with the engine in this process, through the service's own request and
    response conversion, within the server's default limits (`ServerConfig()`)."""

    def __init__(self) -> None:
        from textmend_server import cache, engine
        from textmend_server.config import ServerConfig

        self.config = ServerConfig()
        cache.configure(self.config.cache_mb)
        engine.warm_up()

    def repair(self, rows: Sequence[Row], job: Job) -> list[dict[str, Any]]:
        """One output row per input row, in order."""
        from textmend_server import service

        out: list[dict[str, Any]] = []
        for row in rows:
            if row.error is not None:
                out.append(error_row(row.id, *row.error))
                continue
            try:
                request = _request(row, job, row.id or "")
            except ValueError as exc:  # from make_request: the id or policy
                out.append(error_row(row.id, "INVALID_ARGUMENT", str(exc)))
                continue
            try:
                started = time.perf_counter()
                repaired = service.repair_request(request, self.config, self._limit(started))
                response = service.to_response(repaired, request.id)
            except Exception as exc:  # as the servicer: a bad document never stops the others
                code, message = service.classify_error(exc)
                out.append(error_row(row.id, code.name, message))
                continue
            out.append(response_row(response, row.id))
        return out

    def _limit(self, started: float) -> Any:
        """The engine's `cancelled` callback: past the server's `max_seconds` it raises
        `LimitError`, as the service does; there is no caller to hang up."""
        from textmend_server import service

        limit = self.config.max_seconds

        def cancelled() -> bool:
            if time.perf_counter() - started > limit:
                raise service.LimitError(
                    f"repairing this document took more than {limit:g} s, the server's limit "
                    "per document: split the document, or turn off the CJK categories in "
                    "`policy` if it is not CJK text"
                )
            return False

        return cancelled


class ServerRepairer:
    """Repairs rows by streaming them to a running textmend service."""

    def __init__(self, target: str, timeout: float | None) -> None:
        options: dict[str, Any] = {"channels": DEFAULT_CHANNELS}
        if timeout is not None:
            options.update(timeout=timeout, stream_timeout=timeout)
        self.client = TextMendClient(target, **options)

    def repair(self, rows: Sequence[Row], job: Job) -> list[dict[str, Any]]:
        """One output row per input row, in order. Each request carries the row's position
        as its id (dataset ids need not be unique); the id only labels the diff, which is
        not asked for."""
        out: list[dict[str, Any] | None] = [None] * len(rows)
        requests = []
        for n, row in enumerate(rows):
            if row.error is not None:
                out[n] = error_row(row.id, *row.error)
                continue
            try:
                requests.append(_request(row, job, str(n)))
            except ValueError as exc:
                out[n] = error_row(row.id, "INVALID_ARGUMENT", str(exc))
        for response in self.client.repair_stream(requests):
            n = int(response.id)
            out[n] = response_row(response, rows[n].id)
        missing = [n for n, row in enumerate(out) if row is None]
        if missing:
            raise TextMendError(
                grpc.StatusCode.UNKNOWN,
                f"the service answered {len(rows) - len(missing)} of {len(rows)} documents",
            )
        return [row for row in out if row is not None]


# --- one partition ---------------------------------------------------------------------------


def run_partition(partition: Partition, job: Job, repairer: Any) -> Stats:
    """Read, repair and write one partition; its stats."""
    rows = read_partition(partition, job)
    repaired = repairer.repair(rows, job)
    stats = Stats()
    for row, out in zip(rows, repaired, strict=True):
        stats.add_row(out, len(row.content))
    write_partition(partition, repaired, stats, job)
    return stats


class PartitionActor:
    """The Ray Data actor: loads the engine (or opens a client) once, then repairs whole
    partitions; each call gets a batch of partition descriptions and returns their counts."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.repairer: Any = (
            ServerRepairer(job.server, job.timeout) if job.server else EngineRepairer()
        )

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"partition": [], "documents": []}
        for described in batch["partition"]:
            partition = Partition(**json.loads(str(described)))
            stats = run_partition(partition, self.job, self.repairer)
            out["partition"].append(partition.index)
            out["documents"].append(stats.documents)
        return out
