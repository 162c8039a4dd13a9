"""JSON Lines output of `textmend repair --jsonl`: responses as JSON, fast, field by field.

`ResponseEncoder` turns a `RepairResponse` into one line of JSON with orjson, writing exactly
what `google.protobuf.json_format.MessageToDict(response, preserving_proto_field_name=True)`
would (enum names, 64-bit integers as strings, float32 values at their shortest, defaults left
out), but an order of magnitude faster: the field plan of each message type is worked out once
from its descriptor, not per message (`json_format` spends about 50-70 µs on a clean 5 KB
response, the encoder a few; see docs/performance.md). It can leave out
top-level fields the caller does not want (`--fields text,encoding,edits`); `id` and `error`
are always written, since a caller matches lines by the one and must see the other.

`run_parallel` spreads the client's own work (building requests, parsing responses, encoding
JSON) over several processes, each with its own connections, when one core is not enough; the
parent copies their lines to the output in input order.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal.type_checkers import ToShortestFloat
from google.protobuf.message import Message

from textmend.v1 import textmend_pb2

#: Top-level fields of a response, in the proto's order: what `--fields` may name.
RESPONSE_FIELDS: tuple[str, ...] = tuple(
    field.name for field in textmend_pb2.RepairResponse.DESCRIPTOR.fields
)
#: Written whatever `--fields` says: the line's key, and why a document has no result.
ALWAYS_FIELDS = frozenset({"id", "error"})
#: What `--jsonl` writes by default: everything but the diff, which is derived from the edits
#: and costs the server a diff per document (ask for it with `--fields ...,diff`).
DEFAULT_FIELDS: tuple[str, ...] = tuple(name for name in RESPONSE_FIELDS if name != "diff")

_INT64 = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
# Kinds of field in a plan.
_SCALAR, _INT64_KIND, _FLOAT, _ENUM, _MESSAGE = range(5)


def parse_fields(text: str) -> tuple[str, ...]:
    """The response fields a `--fields` value names, checked, in the proto's order.

    >>> parse_fields("text, encoding,edits")
    ('text', 'encoding', 'edits')
    >>> parse_fields("txt")
    Traceback (most recent call last):
    ...
    ValueError: unknown field 'txt' in --fields; choose from id, text, encoding, edits, ...
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in RESPONSE_FIELDS:
            shown = ", ".join(RESPONSE_FIELDS[:4])
            raise ValueError(f"unknown field {name!r} in --fields; choose from {shown}, ...")
    wanted = set(names)
    return tuple(name for name in RESPONSE_FIELDS if name in wanted)


class _Plan:
    """How to write one message type: per field, its name, kind and what its kind needs."""

    __slots__ = ("fields",)

    def __init__(self, fields: list[tuple[str, int, bool, Any]]) -> None:
        self.fields = fields


_PLANS: dict[str, _Plan] = {}


def _plan(descriptor: Descriptor, only: Iterable[str] | None = None) -> _Plan:
    """The field plan of a message type (cached unless only some fields are wanted)."""
    if only is None and descriptor.full_name in _PLANS:
        return _PLANS[descriptor.full_name]
    wanted = None if only is None else set(only)
    fields: list[tuple[str, int, bool, Any]] = []
    for field in descriptor.fields:
        if wanted is not None and field.name not in wanted:
            continue
        repeated = field.is_repeated
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                raise NotImplementedError(f"{field.full_name}: map fields are not written")
            fields.append((field.name, _MESSAGE, repeated, _plan(field.message_type)))
        elif field.enum_type is not None:
            names = {value.number: value.name for value in field.enum_type.values}
            fields.append((field.name, _ENUM, repeated, names))
        elif field.type in _INT64:
            fields.append((field.name, _INT64_KIND, repeated, None))
        elif field.type == FieldDescriptor.TYPE_FLOAT:
            fields.append((field.name, _FLOAT, repeated, None))
        elif field.type == FieldDescriptor.TYPE_BYTES:
            raise NotImplementedError(f"{field.full_name}: bytes fields are not written")
        else:
            fields.append((field.name, _SCALAR, repeated, None))
    plan = _Plan(fields)
    if only is None:
        _PLANS[descriptor.full_name] = plan
    return plan


# float32 values as json_format writes them (the shortest decimal that reads back as the same
# float32); confidences and qualities take few distinct values, so each is worked out once.
_SHORTEST: dict[float, float | str] = {}
# Most distinct float32 values remembered; past it they are worked out each time.
_SHORTEST_MAX = 4096


def _float32(value: float) -> float | str:
    shortest = _SHORTEST.get(value)
    if shortest is None:
        if math.isnan(value):
            shortest = "NaN"
        elif math.isinf(value):
            shortest = "Infinity" if value > 0 else "-Infinity"
        else:
            shortest = ToShortestFloat(value)
        if len(_SHORTEST) < _SHORTEST_MAX:
            _SHORTEST[value] = shortest
    return shortest


def _one(kind: int, extra: Any, value: Any) -> Any:
    if kind == _SCALAR:
        return value
    if kind == _INT64_KIND:
        return str(value)
    if kind == _FLOAT:
        return _float32(value)
    if kind == _ENUM:
        return extra.get(value, value)
    return _to_dict(value, extra)


def _to_dict(message: Message, plan: _Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind, repeated, extra in plan.fields:
        if kind == _MESSAGE and not repeated:
            if message.HasField(name):
                out[name] = _to_dict(getattr(message, name), extra)
            continue
        value = getattr(message, name)
        if not value:  # proto3 defaults (0, "", False, an empty list) are left out
            continue
        if repeated:
            out[name] = [_one(kind, extra, item) for item in value]
        else:
            out[name] = _one(kind, extra, value)
    return out


def message_to_dict(message: Message) -> dict[str, Any]:
    """What `json_format.MessageToDict(message, preserving_proto_field_name=True)` returns,
    for messages without map or bytes fields.

    >>> r = textmend_pb2.RepairResponse(id="a", verdict=1, original_length=3)
    >>> message_to_dict(r)
    {'id': 'a', 'verdict': 'VERDICT_CLEAN', 'original_length': '3'}
    """
    return _to_dict(message, _plan(message.DESCRIPTOR))


class ResponseEncoder:
    """Responses to lines of JSON (bytes, newline included), with only the fields wanted.

    >>> encoder = ResponseEncoder(("text",))
    >>> encoder.encode(textmend_pb2.RepairResponse(id="7", text="café", verdict=1))
    b'{"id":"7","text":"caf\\xc3\\xa9"}\\n'
    """

    def __init__(self, fields: Sequence[str] = DEFAULT_FIELDS) -> None:
        unknown = set(fields) - set(RESPONSE_FIELDS)
        if unknown:
            raise ValueError(f"unknown response fields: {', '.join(sorted(unknown))}")
        self.fields = tuple(fields)
        self._plan = _plan(textmend_pb2.RepairResponse.DESCRIPTOR, {*fields, *ALWAYS_FIELDS})

    def to_dict(self, response: textmend_pb2.RepairResponse) -> dict[str, Any]:
        """The response's wanted fields as `json_format` would write them."""
        return _to_dict(response, self._plan)

    def encode(self, response: textmend_pb2.RepairResponse) -> bytes:
        """One line of JSON: UTF-8, no spaces, ending in a newline."""
        return orjson.dumps(_to_dict(response, self._plan), option=orjson.OPT_APPEND_NEWLINE)


# --- several processes -----------------------------------------------------------------------

#: Bytes each worker process's pipe is read in: large enough that a 5 KB line rarely spans
#: two reads, small enough to write lines out as they come.
PIPE_READ_BYTES = 1 << 16


def _worker(
    part: int,
    parts: int,
    write_fd: int,
    run: Callable[[int, IO[bytes]], int],
) -> None:
    """A worker process: run its part of the input, writing lines to its pipe."""
    code = 1
    try:
        with os.fdopen(write_fd, "wb", buffering=PIPE_READ_BYTES) as out:
            code = run(part, out)
    except BrokenPipeError:
        code = 2
    except BaseException as exc:  # the parent reports the missing lines; say why here
        sys.stderr.write(f"textmend: error: {exc}\n")
        sys.stderr.flush()
        code = getattr(exc, "exit_code", 3)
    finally:
        os._exit(code)


def _lines(read_fd: int) -> Iterator[bytes]:
    """The lines a worker writes to its pipe, as they come."""
    with os.fdopen(read_fd, "rb", buffering=PIPE_READ_BYTES) as pipe:
        yield from pipe


def run_parallel(
    count: int,
    processes: int,
    run: Callable[[int, IO[bytes]], int],
    out: IO[bytes],
    on_line: Callable[[int, bytes], None] | None = None,
) -> int:
    """Run `run(part, pipe)` in `processes` forked processes, part k answering documents
    k, k + processes, k + 2 × processes... of count, and copy their lines to out in input
    order. Returns the worst exit code.

    Each process finds its part by the fork itself (nothing is pickled) and must write one
    line per document of its part, in order. The caller must not have created any gRPC
    channel before: a forked child cannot use its parent's. on_line(i, line) is called for
    each line copied (progress, failures).
    """
    context = multiprocessing.get_context("fork")
    readers: list[Iterator[bytes]] = []
    children = []
    for k in range(processes):
        read_fd, write_fd = os.pipe()
        child = context.Process(target=_worker, args=(k, processes, write_fd, run))
        child.start()
        os.close(write_fd)
        children.append(child)
        readers.append(_lines(read_fd))
    copied = 0
    try:
        for index in range(count):
            line = next(readers[index % processes], None)
            if line is None:
                break
            out.write(line)
            if on_line is not None:
                on_line(index, line)
            copied += 1
    finally:
        for reader in readers:
            reader.close()  # type: ignore[attr-defined]
        for child in children:
            child.join()
    codes = [child.exitcode or 0 for child in children]
    worst = max(codes, default=0)
    if copied < count and worst == 0:
        worst = 3
    return worst
