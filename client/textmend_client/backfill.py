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

Needs the `ray` extra (`pip install 'textmend[ray]'`: Ray Data and pyarrow), imported only
when a backfill runs.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import posixpath
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from textmend.v1 import textmend_pb2
from textmend_client.client import DEFAULT_CHANNELS, TextMendClient, TextMendError, make_request
from textmend_client.responses import category_name

if TYPE_CHECKING:
    import pyarrow
    import pyarrow.fs

#: Rows per partition by default: the unit of work, of resumption and of the progress bar. A
#: thousand 50 KB web pages are 50 MB in one actor's memory, and a partition lost to an
#: interruption is a minute or two of one core's work (documents take 10-100 ms each, see the
#: README's Performance section); a million documents make a thousand partitions to share.
DEFAULT_PARTITION_ROWS = 1000
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
#: Input file name endings read as JSON Lines and as Parquet when a directory is given.
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Columns looked for, in this order, when no content column is named: raw bytes, base64 of
#: raw bytes (the CLI's JSON Lines field), text (sent as UTF-8, as the client sends str).
CONTENT_COLUMNS = ("content", "content_b64", "text")
#: The file of the output directory that records the plan, so that a rerun with other inputs
#: or partitioning cannot mix its partitions with these.
PLAN_FILE = "_plan.json"
STATS_DIR = "_stats"
TMP_DIR = "_tmp"
#: Verdicts in the order the summary lists them (the proto's, as the CLI batch lists them).
VERDICTS = ("clean", "repaired", "suspect", "unreadable")


class BackfillError(Exception):
    """A backfill cannot start or go on: bad options, unreadable input, a different plan in
    the output directory. Reported as one line by the command."""


# --- rows ------------------------------------------------------------------------------------


def _edit_type(pa: Any) -> Any:
    return pa.struct(
        [
            ("category", pa.string()),
            ("original_start", pa.int64()),
            ("original_end", pa.int64()),
            ("cleaned_start", pa.int64()),
            ("cleaned_end", pa.int64()),
            ("original", pa.string()),
            ("replacement", pa.string()),
            ("suggestion", pa.string()),
            ("reason", pa.string()),
            ("confidence", pa.float32()),
            ("original_start_byte", pa.int64()),
            ("original_end_byte", pa.int64()),
        ]
    )


def output_schema() -> pyarrow.Schema:
    """The schema of every output partition: id, text, encoding, verdict, edits, findings
    (nested columns, as the proto's messages), content_bytes and error."""
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            (
                "encoding",
                pa.struct(
                    [
                        ("name", pa.string()),
                        ("confidence", pa.float32()),
                        ("source", pa.string()),
                        ("declared", pa.string()),
                        ("overruled", pa.string()),
                    ]
                ),
            ),
            ("verdict", pa.string()),
            ("edits", pa.list_(_edit_type(pa))),
            ("findings", pa.list_(_edit_type(pa))),
            ("content_bytes", pa.int64()),
            ("error", pa.struct([("code", pa.string()), ("message", pa.string())])),
        ]
    )


def _edit_row(edit: textmend_pb2.Edit) -> dict[str, Any]:
    return {
        "category": category_name(edit.category),
        "original_start": edit.original_start,
        "original_end": edit.original_end,
        "cleaned_start": edit.cleaned_start,
        "cleaned_end": edit.cleaned_end,
        "original": edit.original,
        "replacement": edit.replacement,
        "suggestion": edit.suggestion or None,
        "reason": edit.reason,
        "confidence": edit.confidence,
        "original_start_byte": edit.original_start_byte,
        "original_end_byte": edit.original_end_byte,
    }


def response_row(response: textmend_pb2.RepairResponse, id: str | None) -> dict[str, Any]:
    """One output row from a `RepairResponse` (the service's, or the embedded engine's made
    by the service's own conversion), with the row's own id.

    >>> response_row(textmend_pb2.RepairResponse(text="ok", verdict=1), "a")["verdict"]
    'clean'
    """
    if response.HasField("error"):
        return error_row(id, response.error.code, response.error.message)
    source = textmend_pb2.EncodingInfo.Source.Name(response.encoding.source)
    verdict = textmend_pb2.Verdict.Name(response.verdict)
    return {
        "id": id,
        "text": response.text,
        "encoding": {
            "name": response.encoding.name,
            "confidence": response.encoding.confidence,
            "source": source.removeprefix("SOURCE_").lower(),
            "declared": response.encoding.declared or None,
            "overruled": response.encoding.overruled or None,
        },
        "verdict": verdict.removeprefix("VERDICT_").lower(),
        "edits": [_edit_row(edit) for edit in response.edits],
        "findings": [_edit_row(finding) for finding in response.findings],
        "content_bytes": response.content_bytes,
        "error": None,
    }


def error_row(id: str | None, code: str, message: str) -> dict[str, Any]:
    """The row of a document that could not be repaired: its id and why (`error`).

    >>> error_row("a", "INVALID_ARGUMENT", "content is empty")["error"]["code"]
    'INVALID_ARGUMENT'
    """
    return {
        "id": id,
        "text": None,
        "encoding": None,
        "verdict": None,
        "edits": [],
        "findings": [],
        "content_bytes": None,
        "error": {"code": code, "message": message},
    }


# --- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """Which input columns hold what. `content` None picks the first of `CONTENT_COLUMNS`
    present; a column named `*_b64` holds base64, a binary column raw bytes, a string column
    text (sent as UTF-8). `encoding` and `content_type` are used when the rows have them."""

    content: str | None = None
    id: str = "id"
    encoding: str = "declared_encoding"
    content_type: str = "content_type"


@dataclass(frozen=True)
class Partition:
    """Rows `[first_row, first_row + rows)` of one input file; for JSON Lines also the byte
    range of those lines, found while planning, so that reading a partition seeks to it."""

    index: int
    path: str
    format: str
    first_row: int
    rows: int
    byte_start: int = 0
    byte_end: int = 0

    @property
    def name(self) -> str:
        """`part-000042`: the stem of the partition's output and stats files."""
        return f"part-{self.index:06d}"


def _filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The pyarrow filesystem of a path or URI (local, s3://, gs://, hdfs://) and its path
    within it; relative local paths become absolute, so that every Ray worker on this
    machine reads the same file."""
    import pyarrow.fs as pafs

    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    filesystem, path = pafs.FileSystem.from_uri(uri)
    return filesystem, path


def _format_of(path: str, given: str | None) -> str | None:
    if given:
        return given
    lower = path.lower()
    if lower.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def list_inputs(sources: Sequence[str], input_format: str | None) -> list[tuple[str, str, int]]:
    """Every input file as (uri, format, size), in a stable order: files as given,
    directories walked recursively for `JSONL_SUFFIXES` and `PARQUET_SUFFIXES` (or every
    file, with `input_format`). Raises `BackfillError` for a missing path or no input."""
    import pyarrow.fs as pafs

    found: list[tuple[str, str, int]] = []
    for source in sources:
        filesystem, path = _filesystem(source)
        prefix = source[: len(source) - len(path)] if "://" in source else ""
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise BackfillError(f"{source}: no such file or directory")
        if info.type == pafs.FileType.File:
            kind = _format_of(path, input_format)
            if kind is None:
                raise BackfillError(
                    f"{source}: cannot tell JSON Lines from Parquet by its name; give "
                    "--input-format"
                )
            found.append((prefix + path if prefix else path, kind, info.size))
            continue
        selector = pafs.FileSelector(path, recursive=True)
        for entry in sorted(filesystem.get_file_info(selector), key=lambda e: e.path):
            name = posixpath.basename(entry.path)
            if entry.type != pafs.FileType.File or name.startswith((".", "_")):
                continue
            kind = _format_of(entry.path, input_format)
            if kind is not None:
                found.append((prefix + entry.path if prefix else entry.path, kind, entry.size))
    if not found:
        raise BackfillError(f"no JSON Lines or Parquet files in {', '.join(sources)}")
    return found


def plan_partitions(
    inputs: Sequence[tuple[str, str, int]], partition_rows: int = DEFAULT_PARTITION_ROWS
) -> list[Partition]:
    """Cut every input file into partitions of `partition_rows` rows (the last of each file
    may be shorter), numbered across files in order. Parquet row counts come from the files'
    footers; JSON Lines files are scanned once for the byte offset of every partition's
    first line (blank lines count as rows and are skipped when read)."""
    if partition_rows < 1:
        raise BackfillError(f"partition rows must be at least 1, not {partition_rows}")
    import pyarrow.parquet as pq

    partitions: list[Partition] = []
    for uri, kind, _size in inputs:
        filesystem, path = _filesystem(uri)
        if kind == "parquet":
            with filesystem.open_input_file(path) as handle:
                total = pq.ParquetFile(handle).metadata.num_rows
            for first in range(0, total, partition_rows):
                rows = min(partition_rows, total - first)
                partitions.append(Partition(len(partitions), uri, kind, first, rows))
            continue
        with filesystem.open_input_stream(path) as stream:
            offset = start = 0
            row = first = 0
            for line in _lines(stream):
                offset += len(line)
                row += 1
                if row - first == partition_rows:
                    partitions.append(
                        Partition(len(partitions), uri, kind, first, row - first, start, offset)
                    )
                    first, start = row, offset
            if row > first:
                partitions.append(
                    Partition(len(partitions), uri, kind, first, row - first, start, offset)
                )
    return partitions


def _lines(stream: Any, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The lines of a binary stream, each with its line feed (the last may lack one)."""
    rest = b""
    while True:
        data = stream.read(chunk)
        if not data:
            break
        data = rest + data
        lines = data.split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line + b"\n"
    if rest:
        yield rest


# --- reading a partition ---------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """Everything an actor needs, sent to it once (small and picklable)."""

    output: str
    output_format: str
    columns: Columns
    content_type: str
    policy: dict[str, str]
    server: str | None
    timeout: float | None


@dataclass
class Row:
    """One input row, ready to repair, or the error that stops it being repaired."""

    id: str | None
    content: bytes = b""
    declared_encoding: str = ""
    content_type: str = ""
    error: tuple[str, str] | None = None


def _content_of(column: str, value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if not isinstance(value, str):
        raise ValueError(f"column {column!r} holds {type(value).__name__}, not bytes or text")
    if column.endswith("_b64"):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise ValueError(f"column {column!r} is not valid base64: {exc}") from None
    return value.encode("utf-8")


def _row(record: Mapping[str, Any], job: Job, where: str) -> Row:
    """A `Row` from one input record (a dict); problems become the row's error."""
    columns = job.columns
    raw_id = record.get(columns.id)
    row_id = None if raw_id is None else str(raw_id)
    content_column = columns.content or next((c for c in CONTENT_COLUMNS if c in record), None)
    if row_id is None:
        return Row(None, error=("INVALID_ARGUMENT", f"{where}: no {columns.id!r} column value"))
    if content_column is None or content_column not in record:
        wanted = columns.content or " or ".join(CONTENT_COLUMNS)
        return Row(row_id, error=("INVALID_ARGUMENT", f"{where}: no {wanted!r} column"))
    try:
        content = _content_of(content_column, record[content_column])
    except ValueError as exc:
        return Row(row_id, error=("INVALID_ARGUMENT", f"{where}: {exc}"))
    declared = record.get(columns.encoding)
    content_type = record.get(columns.content_type) or job.content_type
    return Row(row_id, content, str(declared or ""), str(content_type or ""))


def read_partition(partition: Partition, job: Job) -> list[Row]:
    """The rows of one partition, in order; a line that is not a JSON object becomes a row
    with its error (id None)."""
    filesystem, path = _filesystem(partition.path)
    base = posixpath.basename(path)
    if partition.format == "parquet":
        import pyarrow.parquet as pq

        with filesystem.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            groups, skip, seen = [], 0, 0
            for group in range(parquet.num_row_groups):
                size = parquet.metadata.row_group(group).num_rows
                if (
                    seen + size > partition.first_row
                    and seen < partition.first_row + partition.rows
                ):
                    if not groups:
                        skip = partition.first_row - seen
                    groups.append(group)
                seen += size
            table = parquet.read_row_groups(groups).slice(skip, partition.rows)
        records = table.to_pylist()
        return [
            _row(record, job, f"{base} row {partition.first_row + n + 1}")
            for n, record in enumerate(records)
        ]
    with filesystem.open_input_file(path) as handle:
        handle.seek(partition.byte_start)
        data = handle.read(partition.byte_end - partition.byte_start)
    rows: list[Row] = []
    for n, line in enumerate(data.split(b"\n")[: partition.rows]):
        where = f"{base} line {partition.first_row + n + 1}"
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            rows.append(Row(None, error=("INVALID_ARGUMENT", f"{where}: not valid JSON: {exc}")))
            continue
        if not isinstance(record, dict):
            message = f"{where}: expected a JSON object, got {type(record).__name__}"
            rows.append(Row(None, error=("INVALID_ARGUMENT", message)))
            continue
        rows.append(_row(record, job, where))
    return rows


# --- repairing -------------------------------------------------------------------------------


def _request(row: Row, job: Job, request_id: str) -> textmend_pb2.RepairRequest:
    """The request the service would get for a row (ValueError for an id over the limit)."""
    make_request(b"", id=row.id or "")  # the id's length is checked against the real id
    return make_request(
        row.content,
        id=request_id,
        declared_encoding=row.declared_encoding,
        content_type=row.content_type,
        policy=job.policy,
        omit_diff=True,
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


# --- writing ---------------------------------------------------------------------------------


@dataclass
class Stats:
    """What one partition (or a whole backfill) holds: rows, bytes, verdicts, edits by
    category, errors by code."""

    documents: int = 0
    bytes: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    edits: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def add_row(self, row: Mapping[str, Any], size: int) -> None:
        self.documents += 1
        self.bytes += size
        if row["error"] is not None:
            self.errors[row["error"]["code"]] += 1
            return
        self.verdicts[row["verdict"]] += 1
        self.edits.update(edit["category"] for edit in row["edits"])

    def merge(self, other: Stats) -> None:
        self.documents += other.documents
        self.bytes += other.bytes
        self.verdicts.update(other.verdicts)
        self.edits.update(other.edits)
        self.errors.update(other.errors)

    def to_json(self) -> str:
        fields = {"documents": self.documents, "bytes": self.bytes}
        counters = {"verdicts": self.verdicts, "edits": self.edits, "errors": self.errors}
        return json.dumps({**fields, **{k: dict(v) for k, v in counters.items()}}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Stats:
        data = json.loads(text)
        return cls(
            data["documents"],
            data["bytes"],
            Counter(data["verdicts"]),
            Counter(data["edits"]),
            Counter(data["errors"]),
        )


def _move_into_place(filesystem: Any, tmp: str, target: str) -> None:
    filesystem.move(tmp, target)


def write_partition(
    partition: Partition, rows: list[dict[str, Any]], stats: Stats, job: Job
) -> None:
    """Write a partition's stats, then its rows, each to a temporary name moved into place:
    the rows file exists only once it is complete (a rename on a local disk; on an object
    store the object appears whole)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    filesystem, root = _filesystem(job.output)
    suffix = ".parquet" if job.output_format == "parquet" else ".jsonl"
    unique = uuid.uuid4().hex
    tmp_stats = f"{root}/{TMP_DIR}/{partition.name}.{unique}.json"
    tmp_rows = f"{root}/{TMP_DIR}/{partition.name}.{unique}{suffix}"
    with filesystem.open_output_stream(tmp_stats) as handle:
        handle.write(stats.to_json().encode("utf-8"))
    _move_into_place(filesystem, tmp_stats, f"{root}/{STATS_DIR}/{partition.name}.json")
    if job.output_format == "parquet":
        table = pa.Table.from_pylist(rows, schema=output_schema())
        with filesystem.open_output_stream(tmp_rows) as handle:
            pq.write_table(table, handle)
    else:
        with filesystem.open_output_stream(tmp_rows) as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
    _move_into_place(filesystem, tmp_rows, f"{root}/{partition.name}{suffix}")


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


# --- the job ---------------------------------------------------------------------------------


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


def _prepare_output(job: Job, plan: dict[str, Any]) -> set[str]:
    """Create the output directory, record the plan there (or check that a rerun's plan is
    the same), and return the names of the partitions already done."""
    import pyarrow.fs as pafs

    filesystem, root = _filesystem(job.output)
    for directory in (root, f"{root}/{STATS_DIR}", f"{root}/{TMP_DIR}"):
        filesystem.create_dir(directory, recursive=True)
    plan_path = f"{root}/{PLAN_FILE}"
    text = json.dumps(plan, indent=1, sort_keys=True)
    if filesystem.get_file_info(plan_path).type == pafs.FileType.File:
        with filesystem.open_input_stream(plan_path) as handle:
            recorded = handle.read().decode("utf-8")
        if json.loads(recorded) != json.loads(text):
            raise BackfillError(
                f"{job.output} holds a backfill of other inputs or options ({PLAN_FILE} "
                "differs): give another --output, or remove it to start again"
            )
    else:
        with filesystem.open_output_stream(plan_path) as handle:
            handle.write(text.encode("utf-8"))
    suffix = ".parquet" if job.output_format == "parquet" else ".jsonl"
    done = set()
    for entry in filesystem.get_file_info(pafs.FileSelector(root)):
        name = posixpath.basename(entry.path)
        if name.startswith("part-") and name.endswith(suffix):
            done.add(name.removesuffix(suffix))
    return done


def _collect_stats(job: Job, partitions: Sequence[Partition]) -> Stats:
    filesystem, root = _filesystem(job.output)
    total = Stats()
    for partition in partitions:
        path = f"{root}/{STATS_DIR}/{partition.name}.json"
        with filesystem.open_input_stream(path) as handle:
            total.merge(Stats.from_json(handle.read().decode("utf-8")))
    return total


def _clean_tmp(job: Job) -> None:
    """Remove what partitions abandoned by a dead actor left in the temporary directory."""
    filesystem, root = _filesystem(job.output)
    filesystem.delete_dir_contents(f"{root}/{TMP_DIR}", missing_dir_ok=True)


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
    }
    done = _prepare_output(job, plan)
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
        _clean_tmp(job)
    return BackfillResult(
        _collect_stats(job, partitions),
        _collect_stats(job, todo),
        len(partitions),
        len(partitions) - len(todo),
        time.monotonic() - started,
        output,
    )


def summary(result: BackfillResult) -> str:
    """The end-of-run table, laid out as the CLI batch's: documents by verdict, errors,
    partitions, edits by category, and the rate of this run.

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
    text = "".join(f"{label:<18} {count:>4}\n" for label, count in rows)
    run, seconds = result.run, max(result.seconds, 1e-9)
    return text + (
        f"this run: {run.documents} documents in {result.seconds:.1f} s, "
        f"{run.documents / seconds:.1f} documents/s, {run.bytes / seconds / 1e6:.2f} MB/s\n"
    )
