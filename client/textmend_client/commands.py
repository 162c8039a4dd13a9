"""What each `textmend` command does once its arguments are parsed (`textmend_client.cli`):
read the input, call the server through `TextMendClient`, write the output, return the exit
code. Exit codes: 0 success, 1 usage (`UsageError`), 2 I/O, 3 the server refused a document,
failed, or could not be reached.
"""

from __future__ import annotations

import argparse
import array
import collections
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

import grpc
import orjson
from google.protobuf import json_format

from textmend.v1 import textmend_pb2
from textmend_client import jsonl
from textmend_client.batch import Progress, run_batch
from textmend_client.channels import is_valid_token
from textmend_client.check import run_check
from textmend_client.client import TextMendClient
from textmend_client.content import content_type_for
from textmend_client.diff_view import render_diff
from textmend_client.errors import TextMendError
from textmend_client.files import EXIT_OK, EXIT_SERVER
from textmend_client.report import run_report
from textmend_client.request import as_request
from textmend_client.visible import visible_text

EXIT_USAGE = 1

PROG = "textmend"


class UsageError(Exception):
    """Bad arguments or bad input; reported as one line, exit code 1."""


# --- input and output ------------------------------------------------------------------------


def _read_input(path: str | None) -> bytes:
    """The bytes of path, or of standard input for None or '-'."""
    if path in (None, "-"):
        stream = sys.stdin
        buffer = getattr(stream, "buffer", None)
        return buffer.read() if buffer is not None else stream.read().encode("utf-8")
    with open(path, "rb") as handle:
        return handle.read()


def write(text: str, stream: IO[str] | None = None) -> None:
    """Write text as UTF-8 whatever the locale, so that repaired text is never mangled."""
    stream = stream or sys.stdout
    buffer = getattr(stream, "buffer", None)
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
    if buffer is not None and encoding not in {"utf-8", "utf8"}:
        stream.flush()
        buffer.write(text.encode("utf-8"))
        buffer.flush()
    else:
        stream.write(text)
    stream.flush()


def _use_color(choice: str) -> bool:
    """Whether `--color` asks for colour: auto colours a terminal, unless NO_COLOR is set or
    TERM is dumb."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def to_json(response: textmend_pb2.RepairResponse) -> str:
    """A response as JSON with the proto's field names (`original_start`, not camelCase)."""
    return json_format.MessageToJson(response, preserving_proto_field_name=True, ensure_ascii=False)


# --- commands ---------------------------------------------------------------------------------


def _read_token(path: str) -> str:
    """The token in the file at path: its first line, without surrounding whitespace."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        token = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the token must be printable ASCII") from None
    if not is_valid_token(token):
        raise UsageError(f"{path}: expected one token of printable ASCII without spaces")
    return token


def _client(args: argparse.Namespace) -> TextMendClient:
    """The client the connection options (`--server`, `--timeout`, TLS, token) ask for."""
    options: dict[str, Any] = {"channels": getattr(args, "channels", 1)}
    options["max_message_mb"] = args.max_message_mb
    if args.timeout is not None:
        options.update(timeout=args.timeout, stream_timeout=args.timeout)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    options.update(tls=args.tls or None, tls_ca=args.tls_ca, tls_cert=args.tls_cert)
    options.update(tls_key=args.tls_key)
    if args.token_file is not None:
        options["token"] = _read_token(args.token_file)
    return TextMendClient(args.server, **options)


def cmd_repair(args: argparse.Namespace) -> int:
    """`textmend repair`: one document (text, diff or JSON out), JSON Lines over streams
    (`--jsonl`), or files into a directory (`--output-dir`); the exit code."""
    paths: list[str] = args.path
    if args.output_dir is not None:
        if args.jsonl or args.format is not None or not paths or "-" in paths:
            raise UsageError("--output-dir takes files and directories, without --jsonl/--format")
        with _client(args) as client:
            return run_batch(
                paths,
                client,
                args.output_dir,
                policy=dict(args.policy),
                min_confidence=args.min_confidence,
                content_type=args.content_type,
            )
    if len(paths) > 1:
        raise UsageError("to repair several files, give an --output-dir to write them to")
    args.path = paths[0] if paths else None
    if args.jsonl:
        if args.format not in (None, "json"):
            raise UsageError("--jsonl always writes JSON; leave out --format")
        return _repair_jsonl(args)
    if args.fields is not None or args.processes != 1:
        raise UsageError("--fields and --processes go with --jsonl")
    if args.path is None:
        raise UsageError("give a PATH to repair, or - for standard input")
    if args.path != "-" and os.path.isdir(args.path):
        raise UsageError(
            f"{visible_text(args.path)} is a directory: give an --output-dir to write its "
            "repaired files to, or run `textmend check` on it"
        )
    content = _read_input(args.path)
    with _client(args) as client:
        response = client.repair(
            content,
            id=os.path.basename(args.path) if args.path != "-" else "stdin",
            declared_encoding=args.encoding,
            content_type=content_type_for(args.path, args.content_type),
            policy=dict(args.policy),
            omit_diff=args.format in (None, "text"),
            min_confidence=args.min_confidence,
        )
    output_format = args.format or "text"
    if output_format == "text":
        write(response.text)
    elif output_format == "json":
        write(to_json(response) + "\n")
    else:
        write(render_diff(response, content, color=_use_color(args.color)))
    return EXIT_OK


def read_jsonl(lines: Sequence[str] | IO[str], defaults: dict[str, Any]) -> list[dict[str, Any]]:
    """Parse and check JSON Lines input before anything is sent; blank lines are skipped.

    Each object gets an `id` (its line number when it has none or null); ids must be strings
    or integers, and unique. Raises `UsageError` naming the line of the first problem.
    """
    return [item for item, _ in _read_requests(lines, defaults)]


def _read_requests(
    lines: Iterable[str | bytes], defaults: dict[str, Any]
) -> Iterator[tuple[dict[str, Any], textmend_pb2.RepairRequest]]:
    """`read_jsonl`'s items, each with its request, built once (orjson parses the lines), one
    at a time: a caller keeping only the requests never holds every item beside them."""
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item, request = _line_request(number, line, defaults)
        if item["id"] in seen:
            raise UsageError(
                f"line {number}: duplicate id {item['id']!r} (first on line {seen[item['id']]})"
            )
        seen[item["id"]] = number
        yield item, request


def _line_request(
    number: int, line: str | bytes, defaults: dict[str, Any]
) -> tuple[dict[str, Any], textmend_pb2.RepairRequest]:
    """The item and request of one non-blank JSON Lines line; `UsageError` names the line."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"line {number}: not valid JSON: {exc}") from None
    if not isinstance(item, dict):
        raise UsageError(f"line {number}: expected a JSON object, got {type(item).__name__}")
    if defaults:
        item = {**defaults, **item}
    ident = item.get("id")
    if ident is None:  # absent or null: the line number
        ident = number
    elif isinstance(ident, bool) or not isinstance(ident, str | int):
        raise UsageError(
            f"line {number}: id must be a string or an integer, not {type(ident).__name__}"
        )
    item["id"] = str(ident)
    try:
        request = as_request(item)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"line {number}: {exc}") from None
    return item, request


#: Bytes read from a JSON Lines input at a time when it is read the second time, to send.
JSONL_READ_BYTES = 1 << 20
#: Requests of an input this large at most (content plus `REQUEST_OVERHEAD_BYTES` each) are
#: kept from the check and sent as built, not built again from a second reading: most inputs,
#: without the second parse (about a fifth more of the client's CPU), within a fixed memory
#: budget. A first-version choice.
JSONL_HOLD_BYTES = 64 << 20
#: What a request costs in memory beyond its content (measured: half a million small
#: documents held took the client to 570 MB, about 1.1 KB each).
REQUEST_OVERHEAD_BYTES = 1100


class JsonlInput:
    """A JSON Lines input, checked whole before anything is sent and then read again, line
    by line, as its requests are sent.

    Checking first means a bad line near the end stops the run before any document is
    repaired, so a caller never has to work out which half of a file went through. The
    requests the check built are kept while they fit `JSONL_HOLD_BYTES`; past that, the input
    is read again as it is sent, which keeps the client's memory to each document's size and
    the ids the duplicate check needs (about 130 bytes a line), whatever the input's length: a
    file of half a million small documents had taken the client to 570 MB. Input that cannot
    be read twice (a pipe) is copied to a temporary file as it is checked, so it needs that
    much free disk. Parts are read with `os.pread`, so processes forked after the check each
    read their share without moving a shared file offset.
    """

    def __init__(self, handle: IO[bytes], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self._spool: IO[bytes] | None = None
        fd = _regular_file_fd(handle)
        if fd is not None:
            self._fd, self._start = fd, handle.tell()
            lines: Iterable[bytes] = handle
        else:
            self._spool = tempfile.TemporaryFile()
            self._fd, self._start = self._spool.fileno(), 0
            lines = _copied(handle, self._spool)
        #: Content bytes of each document, in input order (the progress line's MB/s).
        self.sizes = array.array("Q")
        self._held: list[textmend_pb2.RepairRequest] | None = []
        held_bytes = 0
        try:
            for _, request in _read_requests(lines, defaults):
                self.sizes.append(len(request.content))
                if self._held is not None:
                    held_bytes += len(request.content) + REQUEST_OVERHEAD_BYTES
                    self._held.append(request)
                    if held_bytes > JSONL_HOLD_BYTES:
                        self._held = None  # read again as it is sent
            if self._spool is not None:
                self._spool.flush()
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self.sizes)

    def requests(self, part: int = 0, parts: int = 1) -> Iterator[textmend_pb2.RepairRequest]:
        """The requests of documents part, part + parts, part + 2 × parts... in input order:
        those the check kept, or built again from the input; documents beyond those the check
        counted (a file written to meanwhile) are not sent."""
        if self._held is not None:
            yield from self._held[part::parts]
            return
        index = -1
        for number, line in enumerate(_pread_lines(self._fd, self._start), start=1):
            if not line.strip():
                continue
            index += 1
            if index >= len(self.sizes):
                return
            if index % parts == part:
                yield _line_request(number, line, self.defaults)[1]

    def close(self) -> None:
        """Remove the temporary copy of a piped input."""
        if self._spool is not None:
            self._spool.close()


def _regular_file_fd(handle: IO[bytes]) -> int | None:
    """handle's descriptor when it is a regular file, which can be read a second time."""
    try:
        fd = handle.fileno()
        handle.tell()
    except (AttributeError, OSError, ValueError):
        return None
    return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None


def _copied(lines: Iterable[bytes | str], sink: IO[bytes]) -> Iterator[bytes | str]:
    """lines, each written to sink as UTF-8 as it passes."""
    for line in lines:
        sink.write(line.encode("utf-8") if isinstance(line, str) else line)
        yield line


def _pread_lines(fd: int, offset: int) -> Iterator[bytes]:
    """The lines of the file behind fd from offset on, read without moving its file offset.
    A line longer than a read is gathered in pieces and joined once: a line of many reads
    costs its length, not its length times the reads.

    >>> import tempfile
    >>> with tempfile.TemporaryFile() as f:
    ...     _ = f.write(b"a\\n" + b"b" * (3 * JSONL_READ_BYTES) + b"\\nc")
    ...     [len(line) for line in _pread_lines(f.fileno(), 0)]
    [1, 3145728, 1]
    """
    pieces: list[bytes] = []
    while True:
        chunk = os.pread(fd, JSONL_READ_BYTES, offset)
        if not chunk:
            break
        offset += len(chunk)
        lines = chunk.split(b"\n")
        if len(lines) > 1:
            yield b"".join([*pieces, lines[0]])
            yield from lines[1:-1]
            pieces = []
        pieces.append(lines[-1])
    rest = b"".join(pieces)
    if rest:
        yield rest


def in_input_order(
    ids: Iterable[str],
    responses: Iterable[textmend_pb2.RepairResponse],
    total: int | None = None,
) -> Iterator[textmend_pb2.RepairResponse]:
    """Yield responses in the order of ids, each as soon as every earlier one has arrived.

    ids may be a `collections.deque` the sender appends to as it sends (another thread may):
    only the ids sent and not yet written are then held. total is how many responses are
    due (by default, how many ids there are).

    >>> got = [textmend_pb2.RepairResponse(id=i) for i in "bca"]
    >>> [r.id for r in in_input_order(["a", "b", "c"], got)]
    ['a', 'b', 'c']

    When the responses end in a `TextMendError`, every id not yet yielded is yielded, with
    its response if it came, or with the error, before the error is raised.
    """
    order = ids if isinstance(ids, collections.deque) else collections.deque(ids)
    due = len(order) if total is None else total
    waiting: dict[str, textmend_pb2.RepairResponse] = {}
    written = 0
    try:
        for response in responses:
            waiting[response.id] = response
            while order and order[0] in waiting:
                yield waiting.pop(order.popleft())
                written += 1
    except TextMendError as exc:
        # The call failed: every document sent still gets its line, the answered ones with
        # their response (held for an earlier one's), the others with the failure, so that
        # none is lost without a word and a rerun can pick out the failed lines. Then the
        # failure itself is raised, for the documents never sent.
        message = f"no response before the call failed: {exc.details}"
        while order:
            id = order.popleft()
            response = waiting.pop(id, None)
            if response is None:
                error = textmend_pb2.Error(code=exc.code.name, message=message)
                response = textmend_pb2.RepairResponse(id=id, error=error)
            yield response
        raise
    if written < due:
        first = f"id {order[0]!r}" if order else f"document {written + 1}"
        raise TextMendError(
            grpc.StatusCode.UNKNOWN,
            f"the stream ended without a response for {due - written} of {due} "
            f"documents (first missing: {first})",
        )


def _repair_jsonl(args: argparse.Namespace) -> int:
    """`repair --jsonl`: the input checked whole (`JsonlInput`: the requests kept within a
    budget, or built again from the input as they are sent), sent over the client's streams;
    each response written (orjson, only the wanted fields) as soon as every earlier line's has
    been, without a flush per line; over `--processes` processes when asked."""
    fields = args.fields if args.fields is not None else jsonl.DEFAULT_FIELDS
    # No diff unless it is asked for: it is derived from the edits, and costs the server.
    defaults: dict[str, Any] = {"omit_diff": "diff" not in fields}
    if args.encoding:
        defaults["declared_encoding"] = args.encoding
    if args.content_type:
        defaults["content_type"] = args.content_type
    if args.policy:
        defaults["policy"] = dict(args.policy)
    if args.min_confidence:
        defaults["min_confidence"] = args.min_confidence
    if args.path in (None, "-"):
        source = JsonlInput(getattr(sys.stdin, "buffer", sys.stdin), defaults)
    else:
        with open(args.path, "rb") as handle:
            source = JsonlInput(handle, defaults)
            return _send_jsonl(args, source, fields)
    try:
        return _send_jsonl(args, source, fields)
    finally:
        source.close()


def _send_jsonl(args: argparse.Namespace, source: JsonlInput, fields: Sequence[str]) -> int:
    """Send the checked input's requests and write their responses (`_repair_jsonl`)."""
    encoder = jsonl.ResponseEncoder(fields)
    out = getattr(sys.stdout, "buffer", None)
    if out is None:  # a text stream without a buffer (a test's StringIO)
        out = _TextAsBytes(sys.stdout)
    sys.stdout.flush()
    count = len(source)
    progress = Progress(count, sys.stderr)
    failed = 0

    def run(part: int, parts: int, sink: IO[bytes]) -> int:
        """Send this part of the input over this process's streams, writing each response's
        line to sink."""
        failures = 0
        sent: collections.deque[str] = collections.deque()

        def feed() -> Iterator[textmend_pb2.RepairRequest]:
            for request in source.requests(part, parts):
                sent.append(request.id)
                yield request

        due = len(range(part, count, parts))
        try:
            with _client(args) as client:
                for response in in_input_order(sent, client.repair_stream(feed()), due):
                    failures += response.HasField("error")
                    sink.write(encoder.encode(response))
                    if sink is out:
                        progress.advance(response.content_bytes)
        finally:
            sink.flush()  # the lines written before a failure, too
        return failures

    if args.processes == 1 or count < 2:
        failed = run(0, 1, out)
        code = EXIT_OK
    else:

        def copied(index: int, line: bytes) -> None:
            nonlocal failed
            if b'"error":' in line and "error" in orjson.loads(line):
                failed += 1
            progress.advance(source.sizes[index])

        parts = min(args.processes, count)
        code = jsonl.run_parallel(
            count,
            parts,
            lambda part, sink: EXIT_SERVER if run(part, parts, sink) else EXIT_OK,
            out,
            copied,
        )
        out.flush()
    if failed:
        error(f'{failed} of {count} documents failed; see their "error" field')
        return EXIT_SERVER
    return code


class _TextAsBytes:
    """A bytes sink writing UTF-8 into a text stream."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, data: bytes) -> int:
        self.stream.write(data.decode("utf-8"))
        return len(data)

    def flush(self) -> None:
        self.stream.flush()


def cmd_health(args: argparse.Namespace) -> int:
    """`textmend health`: print the server's health status; 0 when it is SERVING."""
    with _client(args) as client:
        status = client.health_status(args.service)
    write(status + "\n")
    return EXIT_OK if status == "SERVING" else EXIT_SERVER


def cmd_report(args: argparse.Namespace) -> int:
    """`textmend report`: repair the files and write the HTML report (`run_report`)."""
    with _client(args) as client:
        return run_report(
            args.paths,
            client,
            args.output,
            title=args.title,
            policy=dict(args.policy),
            min_confidence=args.min_confidence,
        )


def cmd_check(args: argparse.Namespace) -> int:
    """`textmend check`: list what repairing the files would change (`run_check`)."""
    with _client(args) as client:
        return run_check(
            args.paths,
            client,
            format=args.format,
            policy=dict(args.policy),
            min_confidence=args.min_confidence,
        )


def cmd_backfill(args: argparse.Namespace) -> int:
    """`textmend backfill`: a stored corpus repaired on Ray (`repair_dataset`); a missing
    Ray or a bad option is a usage error."""
    from textmend_client import backfill  # Ray and pyarrow are imported when the job starts

    try:
        result = backfill.repair_dataset(
            args.sources,
            args.output,
            input_format=args.input_format,
            output_format=args.output_format,
            columns=backfill.Columns(
                args.column, args.id_column, args.encoding_column, args.content_type_column
            ),
            content_type=args.content_type,
            policy=dict(args.policy),
            min_confidence=args.min_confidence,
            server=args.server,
            timeout=args.timeout,
            address=args.address,
            actors=args.actors,
            partition_rows=args.partition_rows,
        )
    except ImportError as exc:
        hint = "pip install -e '.[ray]' from a checkout"
        raise UsageError(f"backfill needs Ray: {hint} ({exc})") from None
    except backfill.BackfillError as exc:
        raise UsageError(str(exc)) from None
    write(backfill.summary(result))
    return EXIT_OK


def error(message: str) -> None:
    """Say on standard error what stopped the command, as `textmend: error: ...`."""
    write(f"{PROG}: error: {message}\n", sys.stderr)
