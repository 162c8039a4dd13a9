"""Planning a backfill (`textmend_client.backfill`): which input files there are
(`list_inputs`), cut into numbered partitions of rows (`plan_partitions`), and reading one
partition's rows back as an actor repairs it (`read_partition`).

A partition is the unit of work, of resumption and of progress: its rows are found again from
its description alone (a file, a first row and a count; for JSON Lines also a byte range), so
that any actor on any machine can redo it.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow.fs

#: Rows per partition by default: the unit of work, of resumption and of the progress bar. A
#: thousand 50 KB web pages are 50 MB in one actor's memory, and a partition lost to an
#: interruption is a minute or two of one core's work (documents take 10-100 ms each, see the
#: README's Performance section); a million documents make a thousand partitions to share.
DEFAULT_PARTITION_ROWS = 1000
#: Input file name endings read as JSON Lines and as Parquet when a directory is given.
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Columns looked for, in this order, when no content column is named: raw bytes, base64 of
#: raw bytes (the CLI's JSON Lines field), text (sent as UTF-8, as the client sends str).
CONTENT_COLUMNS = ("content", "content_b64", "text")
#: Bytes read at a time while scanning a JSON Lines file for its partitions' offsets: 1 MiB,
#: a few hundred typical lines, large enough that an object store's per-read latency does not
#: dominate, small enough to hold per actor without thought.
READ_CHUNK_BYTES = 1 << 20


class BackfillError(Exception):
    """A backfill cannot start or go on: bad options, unreadable input, a different plan in
    the output directory. Reported as one line by the command."""


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


def filesystem_of(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
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
        filesystem, path = filesystem_of(source)
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
        filesystem, path = filesystem_of(uri)
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


def _lines(stream: Any, chunk: int = READ_CHUNK_BYTES) -> Iterator[bytes]:
    """The lines of a binary stream, each with its line feed (the last may lack one).

    An unfinished line is kept in pieces and joined once it ends, so a line of any length
    costs its length, not its square.

    >>> import io
    >>> list(_lines(io.BytesIO(b"ab\\ncd" + b"e" * 5 + b"\\nf"), chunk=3))
    [b'ab\\n', b'cdeeeee\\n', b'f']
    """
    pieces: list[bytes] = []
    while data := stream.read(chunk):
        *lines, tail = data.split(b"\n")
        if lines:
            lines[0] = b"".join(pieces) + lines[0]
            pieces = []
            for line in lines:
                yield line + b"\n"
        pieces.append(tail)
    if rest := b"".join(pieces):
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
    # Edits rated lower are reported instead of made (`RepairRequest.min_confidence`).
    min_confidence: float = 0.0


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
    filesystem, path = filesystem_of(partition.path)
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
