"""What a backfill (`textmend_client.backfill`) writes: one row per document
(`response_row`, `error_row`, in the schema `output_schema`), each partition's rows and
counts (`Stats`) moved into place whole (`write_partition`), and the output directory's record
of the plan, which lets a rerun skip finished partitions (`prepare_output`).
"""

from __future__ import annotations

import json
import posixpath
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf.internal.type_checkers import ToShortestFloat

from textmend.v1 import textmend_pb2
from textmend_client.backfill_plan import BackfillError, Job, Partition, filesystem_of
from textmend_client.responses import category_name, enum_label, source_name

if TYPE_CHECKING:
    import pyarrow

#: The file of the output directory that records the plan, so that a rerun with other inputs
#: or partitioning cannot mix its partitions with these.
PLAN_FILE = "_plan.json"
#: Where each partition's counts are kept, and where files are written before being moved
#: into place.
STATS_DIR = "_stats"
TMP_DIR = "_tmp"

# --- rows ------------------------------------------------------------------------------------

# The columns of an edit or finding and of an encoding, each with its pyarrow type's name:
# the proto's fields (categories and sources as their names), so that a row says what the
# service's JSON says.
_EDIT_COLUMNS = (
    ("category", "string"),
    ("original_start", "int64"),
    ("original_end", "int64"),
    ("cleaned_start", "int64"),
    ("cleaned_end", "int64"),
    ("original", "string"),
    ("replacement", "string"),
    ("suggestion", "string"),
    ("reason", "string"),
    ("confidence", "float32"),
    ("original_start_byte", "int64"),
    ("original_end_byte", "int64"),
)
_ENCODING_COLUMNS = (
    ("name", "string"),
    ("confidence", "float32"),
    ("source", "string"),
    ("declared", "string"),
    ("overruled", "string"),
)
_ERROR_COLUMNS = (("code", "string"), ("message", "string"))


def _struct(pa: Any, columns: Sequence[tuple[str, str]]) -> Any:
    """A pyarrow struct type of (name, type name) columns."""
    return pa.struct([(name, getattr(pa, kind)()) for name, kind in columns])


def output_schema() -> pyarrow.Schema:
    """The schema of every output partition: id, text, encoding, verdict, edits, findings
    (nested columns, as the proto's messages), content_bytes and error."""
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("encoding", _struct(pa, _ENCODING_COLUMNS)),
            ("verdict", pa.string()),
            ("edits", pa.list_(_struct(pa, _EDIT_COLUMNS))),
            ("findings", pa.list_(_struct(pa, _EDIT_COLUMNS))),
            ("content_bytes", pa.int64()),
            ("error", _struct(pa, _ERROR_COLUMNS)),
        ]
    )


def _edit_row(edit: textmend_pb2.Edit) -> dict[str, Any]:
    """An edit or finding as its nested row: every field, the category by name, no
    suggestion as null."""
    row = {name: getattr(edit, name) for name, _ in _EDIT_COLUMNS}
    row["category"] = category_name(edit.category)
    row["confidence"] = ToShortestFloat(edit.confidence)
    row["suggestion"] = edit.suggestion or None
    return row


def response_row(response: textmend_pb2.RepairResponse, id: str | None) -> dict[str, Any]:
    """One output row from a `RepairResponse` (the service's, or the embedded engine's made
    by the service's own conversion), with the row's own id.

    >>> response_row(textmend_pb2.RepairResponse(text="ok", verdict=1), "a")["verdict"]
    'clean'
    >>> encoding = textmend_pb2.EncodingInfo(name="utf-8", confidence=0.99)
    >>> response_row(textmend_pb2.RepairResponse(encoding=encoding), "a")["encoding"]["confidence"]
    0.99
    """
    if response.HasField("error"):
        return error_row(id, response.error.code, response.error.message)
    return {
        "id": id,
        "text": response.text,
        "encoding": {
            "name": response.encoding.name,
            # The shortest decimal of the float32 (0.99, not 0.9900000095367432), as the
            # CLI's JSON Lines write it; a float32 column stores the same value.
            "confidence": ToShortestFloat(response.encoding.confidence),
            "source": source_name(response.encoding),
            "declared": response.encoding.declared or None,
            "overruled": response.encoding.overruled or None,
        },
        "verdict": enum_label(textmend_pb2.Verdict, response.verdict, "VERDICT_"),
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
        """Count one output row, made from size bytes of content."""
        self.documents += 1
        self.bytes += size
        if row["error"] is not None:
            self.errors[row["error"]["code"]] += 1
            return
        self.verdicts[row["verdict"]] += 1
        self.edits.update(edit["category"] for edit in row["edits"])

    def merge(self, other: Stats) -> None:
        """Add other's counts to these (a partition's to the job's)."""
        self.documents += other.documents
        self.bytes += other.bytes
        self.verdicts.update(other.verdicts)
        self.edits.update(other.edits)
        self.errors.update(other.errors)

    def to_json(self) -> str:
        """The counts as the JSON of a partition's `_stats` file (keys sorted)."""
        fields = {"documents": self.documents, "bytes": self.bytes}
        counters = {"verdicts": self.verdicts, "edits": self.edits, "errors": self.errors}
        return json.dumps({**fields, **{k: dict(v) for k, v in counters.items()}}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Stats:
        """The counts read back from a `_stats` file's JSON."""
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

    filesystem, root = filesystem_of(job.output)
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


# --- the output directory ----------------------------------------------------------------------


def prepare_output(job: Job, plan: dict[str, Any]) -> set[str]:
    """Create the output directory, record the plan there (or check that a rerun's plan is
    the same), and return the names of the partitions already done."""
    import pyarrow.fs as pafs

    filesystem, root = filesystem_of(job.output)
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


def collect_stats(job: Job, partitions: Sequence[Partition]) -> dict[str, Stats]:
    """The counts of the given partitions, by name, read from their `_stats` files (each read
    once: a rerun's summary counts the partitions earlier runs finished too, and this run's
    from the same reading)."""
    filesystem, root = filesystem_of(job.output)
    counts = {}
    for partition in partitions:
        path = f"{root}/{STATS_DIR}/{partition.name}.json"
        with filesystem.open_input_stream(path) as handle:
            counts[partition.name] = Stats.from_json(handle.read().decode("utf-8"))
    return counts


def total_stats(counts: Iterable[Stats]) -> Stats:
    """counts summed."""
    total = Stats()
    for stats in counts:
        total.merge(stats)
    return total


def clean_tmp(job: Job) -> None:
    """Remove what partitions abandoned by a dead actor left in the temporary directory."""
    filesystem, root = filesystem_of(job.output)
    filesystem.delete_dir_contents(f"{root}/{TMP_DIR}", missing_dir_ok=True)
