"""`textmend`: repair documents with a textmend server from the command line.

    textmend repair article.txt                  # the cleaned text, exactly
    textmend repair --format diff article.txt    # what changed, for a person
    textmend repair --format json - < page.html  # the full response
    textmend repair --jsonl < docs.jsonl > out.jsonl
    textmend repair corpus/ --output-dir cleaned/  # a backfill: progress, resumable, summary
    textmend check docs/                         # lint: PATH:LINE:COL: CATEGORY: MESSAGE
    textmend report docs/ -o report.html         # side-by-side HTML with every edit
    textmend health

This module only parses arguments, reads input and formats output; the calls are
`textmend_client.TextMendClient`'s. Exit codes: 0 success, 1 usage (bad arguments, bad JSON
Lines input; for `check`: something needs repair), 2 I/O (a file that cannot be read or
written), 3 the server refused a document, failed, or could not be reached.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, NoReturn

import grpc
import orjson
from google.protobuf import json_format

from textmend.v1 import textmend_pb2
from textmend_client import __version__, jsonl
from textmend_client.backfill import DEFAULT_PARTITION_ROWS
from textmend_client.batch import Progress, run_batch
from textmend_client.check import run_check
from textmend_client.client import (
    DEFAULT_CHANNELS,
    DEFAULT_STREAM_TIMEOUT,
    DEFAULT_TIMEOUT,
    TextMendClient,
    TextMendError,
    as_request,
)
from textmend_client.content import content_type_for
from textmend_client.files import EXIT_IO, EXIT_OK, EXIT_SERVER
from textmend_client.report import run_report
from textmend_client.visible import escape, escaped

EXIT_USAGE = 1

PROG = "textmend"


class UsageError(Exception):
    """Bad arguments or bad input; reported as one line, exit code 1."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors return exit code 1 instead of exiting with 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


# --- arguments -------------------------------------------------------------------------------


def _policy_item(text: str) -> tuple[str, str]:
    name, sep, action = text.partition("=")
    if not sep or not name or action.lower() not in {"fix", "flag", "off"}:
        raise argparse.ArgumentTypeError(
            f"expected CATEGORY=fix|flag|off (for example mojibake=flag), not {text!r}"
        )
    return name.strip(), action.lower()


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _fields(text: str) -> tuple[str, ...]:
    try:
        return jsonl.parse_fields(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_policy_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        type=_policy_item,
        action="append",
        default=[],
        metavar="CATEGORY=ACTION",
        help="override a category's policy: fix, flag or off; repeatable "
        "(for example --policy mojibake=flag)",
    )


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=os.environ.get("TEXTMEND_SERVER", "localhost:50051"),
        metavar="HOST:PORT",
        help="server address; dns:///name:port spreads calls over every address of name "
        "(TEXTMEND_SERVER; default: localhost:50051)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help=f"deadline of the call (default: {DEFAULT_TIMEOUT:.0f}; "
        f"{DEFAULT_STREAM_TIMEOUT:.0f} for a whole --jsonl stream)",
    )
    env = os.environ.get
    parser.add_argument(
        "--tls",
        action="store_true",
        default=env("TEXTMEND_TLS", "").lower() in {"1", "true", "yes"},
        help="connect with TLS, trusting the system's CAs; implied by --tls-ca and --tls-cert "
        "(TEXTMEND_TLS=1)",
    )
    parser.add_argument(
        "--tls-ca",
        default=env("TEXTMEND_TLS_CA"),
        metavar="PATH",
        help="PEM CA that signed the server's certificate; connects with TLS (TEXTMEND_TLS_CA)",
    )
    parser.add_argument(
        "--tls-cert",
        default=env("TEXTMEND_CLIENT_CERT"),
        metavar="PATH",
        help="PEM client certificate, for a server that requires one (mutual TLS); needs "
        "--tls-key (TEXTMEND_CLIENT_CERT: not TEXTMEND_TLS_CERT, which is the server's own)",
    )
    parser.add_argument(
        "--tls-key",
        default=env("TEXTMEND_CLIENT_KEY"),
        metavar="PATH",
        help="PEM private key of --tls-cert (TEXTMEND_CLIENT_KEY)",
    )
    parser.add_argument(
        "--token-file",
        default=env("TEXTMEND_TOKEN_FILE"),
        metavar="PATH",
        help="file holding the server's bearer token, sent as 'authorization: Bearer <token>' "
        "(TEXTMEND_TOKEN_FILE); health checks need none",
    )


def build_parser() -> argparse.ArgumentParser:
    """The `textmend` argument parser, with one subparser per command."""
    parser = _Parser(
        prog=PROG,
        description="Detect and repair corrupted text (mojibake, wrong encodings, CJK "
        "byte-phase slips, leaked markup) with a textmend server.",
        epilog="Exit codes: 0 success, 1 usage, 2 I/O error, 3 server error or unreachable.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="what to do; COMMAND --help for its options"
    )

    repair = commands.add_parser(
        "repair",
        help="repair a document, a directory of them, or JSON Lines of documents",
        description="Send a document's bytes to the server and print the repaired text, a "
        "diff of what changed, or the whole response as JSON. With --output-dir, repair every "
        "file under the PATHs into that directory, with progress and a summary.",
    )
    repair.add_argument(
        "path",
        nargs="*",
        metavar="PATH",
        help="file to repair, or - for standard input (with --jsonl: the JSON Lines file; "
        "default: standard input); with --output-dir, any number of files and directories",
    )
    repair.add_argument(
        "--output-dir",
        metavar="DIR",
        help="write each repaired file under DIR, keeping relative paths; outputs that already "
        "exist are skipped, so an interrupted run can be resumed; binary files are skipped "
        "with a warning",
    )
    _add_connection_options(repair)
    repair.add_argument(
        "--encoding",
        default="",
        metavar="NAME",
        help="charset the document claims (an HTTP header or <meta> tag); used only if the "
        "bytes agree",
    )
    repair.add_argument(
        "--content-type",
        default="",
        choices=["text/plain", "text/html"],
        help="text/html leaves the document's markup alone (default: text/html for files "
        "named .html, .htm, .xhtml, .xml or .svg and for content starting with <!DOCTYPE html "
        "or <html; text/plain otherwise)",
    )
    _add_policy_option(repair)
    repair.add_argument(
        "--format",
        choices=["text", "diff", "json"],
        help="text: the repaired text only, exactly; diff: a unified diff and one line per "
        "edit; json: the full response (default: text)",
    )
    repair.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour the diff: auto colours when writing to a terminal (default: auto)",
    )
    repair.add_argument(
        "--jsonl",
        action="store_true",
        help='read JSON Lines ({"id": ..., "text": ...} or {"id": ..., "content_b64": ...}, '
        'optional "declared_encoding"), repair them over one stream per connection, and write '
        "one JSON response per line, in input order",
    )
    repair.add_argument(
        "--fields",
        type=_fields,
        metavar="NAME,...",
        help="with --jsonl, the response fields to write (id and error always are): any of "
        f"{', '.join(jsonl.RESPONSE_FIELDS)} (default: all but diff; the server then makes no "
        "diff)",
    )
    repair.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        metavar="N",
        help="with --jsonl, spread the client's own work (requests, responses, JSON) over N "
        "processes, each with its own --channels connections, when one core is not enough "
        "(default: 1)",
    )
    repair.add_argument(
        "--channels",
        type=_positive_int,
        default=os.environ.get("TEXTMEND_CHANNELS", str(DEFAULT_CHANNELS)),
        metavar="N",
        help="with --jsonl, connections to stream over at once; each reaches one server worker, "
        f"so use at least twice the worker count (TEXTMEND_CHANNELS; default: {DEFAULT_CHANNELS})",
    )
    repair.set_defaults(handler=_cmd_repair)

    health = commands.add_parser(
        "health",
        help="check that the server is serving",
        description="Ask the server's grpc.health.v1 service; exit 0 when it is SERVING, "
        "3 otherwise.",
    )
    _add_connection_options(health)
    health.add_argument(
        "--service",
        default="",
        help='service to ask about (default: "", the whole server; or textmend.v1.TextMend)',
    )
    health.set_defaults(handler=_cmd_health)

    report = commands.add_parser(
        "report",
        help="write an HTML report of what repairing files would change",
        description="Repair files (directories recursively) and write one self-contained HTML "
        "page: a summary, then each document's original and cleaned text side by side with "
        "every edit and finding highlighted. Binary files are skipped with a warning.",
    )
    report.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to repair")
    _add_connection_options(report)
    report.add_argument(
        "--output",
        "-o",
        default="textmend-report.html",
        metavar="FILE",
        help="where to write the report (default: textmend-report.html)",
    )
    report.add_argument(
        "--title", default="textmend report", help="the page's title (default: textmend report)"
    )
    _add_policy_option(report)
    report.set_defaults(handler=_cmd_report, channels=4)

    check = commands.add_parser(
        "check",
        help="list what repairing files would change, like a linter (for CI and pre-commit)",
        description="Repair files (directories recursively) without changing them and print "
        "one PATH:LINE:COL: CATEGORY: MESSAGE line per edit and finding. Exit 0 when nothing "
        "needs repair, 1 when something does, 2 on a file that cannot be read, 3 on a server "
        "error. Binary files are skipped with a warning.",
    )
    check.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to check")
    _add_connection_options(check)
    check.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="text: one line per problem; json: one JSON object for all files (default: text)",
    )
    _add_policy_option(check)
    check.set_defaults(handler=_cmd_check, channels=4)
    _add_backfill_command(commands)
    return parser


def _add_backfill_command(commands: Any) -> None:
    """`textmend backfill`: a stored corpus repaired on Ray (`textmend_client.backfill`)."""
    backfill = commands.add_parser(
        "backfill",
        help="repair a stored corpus (JSON Lines or Parquet) on Ray, resumably",
        description="Repair every row of JSON Lines or Parquet files with the engine in a Ray "
        "actor pool (or, with --server, a running service) into partitioned Parquet or JSON "
        "Lines with id, text, encoding, verdict, edits, findings and error. Finished "
        "partitions are skipped, so a rerun resumes. Needs textmend[ray].",
    )
    backfill.add_argument(
        "sources",
        nargs="+",
        metavar="PATH",
        help="files or directories (or URIs such as s3://bucket/raw/)",
    )
    backfill.add_argument(
        "--output", "-o", required=True, metavar="DIR", help="output directory or URI"
    )
    backfill.add_argument(
        "--input-format", choices=["jsonl", "parquet"], help="default: by file name"
    )
    backfill.add_argument(
        "--output-format",
        choices=["parquet", "jsonl"],
        default="parquet",
        help="format of the output partitions (default: parquet)",
    )
    backfill.add_argument(
        "--column",
        metavar="NAME",
        help="content column: binary (raw bytes), *_b64 (base64) or text "
        "(default: content, content_b64 or text)",
    )
    backfill.add_argument(
        "--id-column", default="id", metavar="NAME", help="the rows' ids (default: id)"
    )
    backfill.add_argument(
        "--encoding-column",
        default="declared_encoding",
        metavar="NAME",
        help="declared charset, when present",
    )
    backfill.add_argument(
        "--content-type-column",
        default="content_type",
        metavar="NAME",
        help="content type, when present",
    )
    backfill.add_argument(
        "--content-type",
        default="",
        choices=["text/plain", "text/html"],
        help="for rows without one (default: the server's rule, from the bytes)",
    )
    _add_policy_option(backfill)
    backfill.add_argument(
        "--server",
        metavar="HOST:PORT",
        help="call this textmend service instead of embedding the engine",
    )
    backfill.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="with --server, the deadline of each partition's stream",
    )
    backfill.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS"),
        help="Ray cluster to join (RAY_ADDRESS; default: start Ray on this machine)",
    )
    backfill.add_argument(
        "--actors",
        type=_positive_int,
        metavar="N",
        help="actor pool size (default: the cluster's CPUs; 2 with --server)",
    )
    backfill.add_argument(
        "--partition-rows",
        type=_positive_int,
        default=DEFAULT_PARTITION_ROWS,
        metavar="N",
        help="rows per output partition, the unit of resumption (default: "
        f"{DEFAULT_PARTITION_ROWS})",
    )
    backfill.set_defaults(handler=_cmd_backfill)


def _cmd_backfill(args: argparse.Namespace) -> int:
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
            server=args.server,
            timeout=args.timeout,
            address=args.address,
            actors=args.actors,
            partition_rows=args.partition_rows,
        )
    except ImportError as exc:
        raise UsageError(f"backfill needs Ray: pip install 'textmend[ray]' ({exc})") from None
    except backfill.BackfillError as exc:
        raise UsageError(str(exc)) from None
    _write(backfill.summary(result))
    return EXIT_OK


# --- input and output ------------------------------------------------------------------------


def _read_input(path: str | None) -> bytes:
    """The bytes of path, or of standard input for None or '-'."""
    if path in (None, "-"):
        stream = sys.stdin
        buffer = getattr(stream, "buffer", None)
        return buffer.read() if buffer is not None else stream.read().encode("utf-8")
    with open(path, "rb") as handle:
        return handle.read()


def _write(text: str, stream: IO[str] | None = None) -> None:
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
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def to_json(response: textmend_pb2.RepairResponse, *, compact: bool = False) -> str:
    """A response as JSON with the proto's field names (`original_start`, not camelCase)."""
    if not compact:
        return json_format.MessageToJson(
            response, preserving_proto_field_name=True, ensure_ascii=False
        )
    return json.dumps(
        json_format.MessageToDict(response, preserving_proto_field_name=True),
        ensure_ascii=False,
        separators=(",", ":"),
    )


# --- the diff view ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Palette:
    """ANSI escapes, or empty strings when colour is off."""

    on: bool

    def __call__(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.on and text else text


def _visible(text: str) -> str:
    r"""Text with invisible characters (`textmend_client.visible`) shown as escapes, so that a
    terminal neither hides them nor obeys them. Tabs stay.

    >>> print(_visible("zero\u200bwidth, bell\x07"))
    zero\u200bwidth, bell\u0007
    """
    return escaped(text)


def _show(text: str, limit: int = 40) -> str:
    r"""A short, quoted, visible rendering of a span: invisible characters as \u escapes.

    >>> print(_show("a\u200bb"), _show("x" * 50)[-3:])
    'a\u200bb' x…'
    """
    shown = "".join(ch if ch.isprintable() or ch == " " else escape(ch) for ch in text)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return f"'{shown}'"


def _original_text(content: bytes, response: textmend_pb2.RepairResponse) -> str | None:
    """Re-decode the content as the server did, to turn offsets into lines and columns.

    Returns None when the result does not match the server's length (a fallback decode, say).
    """
    try:
        text = content.decode(response.encoding.name or "utf-8", errors="replace")
    except LookupError:
        return None
    if len(text) != response.original_length and text.startswith("\ufeff"):
        text = text[1:]
    return text if len(text) == response.original_length else None


def _position(original: str | None, offset: int) -> str:
    """`line:column` (1-based) of a code point offset, or the offset when unknown."""
    if original is None:
        return str(offset)
    line = original.count("\n", 0, offset) + 1
    column = offset - (original.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{column}"


def _highlight_pair(old: str, new: str, paint: _Palette) -> tuple[str, str]:
    """Mark the changed characters inside a removed/added line pair (reverse video)."""
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    old_out: list[str] = []
    new_out: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            old_out.append(paint("31", _visible(old[i1:i2])))
            new_out.append(paint("32", _visible(new[j1:j2])))
        else:
            old_out.append(paint("7;31", _visible(old[i1:i2])))
            new_out.append(paint("7;32", _visible(new[j1:j2])))
    return "".join(old_out), "".join(new_out)


def _color_diff(diff: str, paint: _Palette) -> list[str]:
    """Colour a unified diff; paired -/+ lines get their changed characters highlighted.

    Invisible characters are shown as escapes (see `_visible`), coloured or not.
    """
    lines = diff.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(("---", "+++")):
            out.append(paint("1", _visible(line)))
        elif line.startswith("@@"):
            out.append(paint("36", line))
        elif line.startswith("-"):
            removed = []
            while i < len(lines) and lines[i].startswith("-"):
                removed.append(lines[i][1:])
                i += 1
            added = []
            while i < len(lines) and lines[i].startswith("+") and not lines[i].startswith("+++"):
                added.append(lines[i][1:])
                i += 1
            if paint.on and len(removed) == len(added):
                pairs = [_highlight_pair(a, b, paint) for a, b in zip(removed, added, strict=True)]
                out += [paint("31", "-") + old for old, _ in pairs]
                out += [paint("32", "+") + new for _, new in pairs]
            else:
                out += [paint("31", "-" + _visible(text)) for text in removed]
                out += [paint("32", "+" + _visible(text)) for text in added]
            continue
        elif line.startswith("+"):
            out.append(paint("32", _visible(line)))
        else:
            out.append(_visible(line))
        i += 1
    return out


def _category(value: textmend_pb2.Category.ValueType) -> str:
    name = textmend_pb2.Category.Name(value) if value in textmend_pb2.Category.values() else "?"
    return name.removeprefix("CATEGORY_").lower()


def render_diff(
    response: textmend_pb2.RepairResponse, content: bytes, *, color: bool = False
) -> str:
    """The human view: a unified diff, a summary line, then one line per edit and finding."""
    paint = _Palette(color)
    original = _original_text(content, response)
    out = _color_diff(response.diff, paint) if response.diff else []
    if response.diff:
        out.append("")
    encoding = response.encoding
    source = textmend_pb2.EncodingInfo.Source.Name(encoding.source).removeprefix("SOURCE_")
    verdict = textmend_pb2.Verdict.Name(response.verdict).removeprefix("VERDICT_").lower()
    edits, findings = len(response.edits), len(response.findings)
    out.append(
        paint("1", verdict)
        + f" · {encoding.name or '?'} ({source.lower()}, {encoding.confidence:.2f})"
        + f" · {edits} edit{'s' * (edits != 1)} · {findings} finding{'s' * (findings != 1)}"
    )
    rows = [("fixed", edit, edit.replacement) for edit in response.edits]
    rows += [("flagged", finding, finding.suggestion) for finding in response.findings]
    rows.sort(key=lambda row: (row[1].original_start, row[0]))
    cells = []
    for kind, edit, proposed in rows:
        # Spans read as first–last character, 1-based, like an editor's cursor position.
        span = _position(original, edit.original_start)
        if edit.original_end > edit.original_start + 1:
            span += "–" + _position(original, edit.original_end - 1)
        change = _show(edit.original)
        if kind == "fixed" or (proposed and proposed != edit.original):
            change += " → " + _show(proposed)
        cells.append((kind, _category(edit.category), span, change, edit))
    span_width = max((len(cell[2]) for cell in cells), default=0)
    change_width = min(40, max((len(cell[3]) for cell in cells), default=0))
    for kind, category, span, change, edit in cells:
        label = paint("32" if kind == "fixed" else "33", f"{kind:<7}")
        out.append(
            f"  {label} {category:<16} {span:<{span_width}}  {change:<{change_width}}  "
            + paint("2", f"{edit.reason} ({edit.confidence:.2f})")
        )
    return "\n".join(out) + "\n"


# --- commands --------------------------------------------------------------------------------


def _read_token(path: str) -> str:
    """The token in the file at path: its first line, without surrounding whitespace."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        token = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the token must be printable ASCII") from None
    if not token or any(not 33 <= ord(ch) <= 126 for ch in token):
        raise UsageError(f"{path}: expected one token of printable ASCII without spaces")
    return token


def _client(args: argparse.Namespace) -> TextMendClient:
    options: dict[str, Any] = {"channels": getattr(args, "channels", 1)}
    if args.timeout is not None:
        options.update(timeout=args.timeout, stream_timeout=args.timeout)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    options.update(tls=args.tls or None, tls_ca=args.tls_ca, tls_cert=args.tls_cert)
    options.update(tls_key=args.tls_key)
    if args.token_file is not None:
        options["token"] = _read_token(args.token_file)
    return TextMendClient(args.server, **options)


def _cmd_repair(args: argparse.Namespace) -> int:
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
    content = _read_input(args.path)
    with _client(args) as client:
        response = client.repair(
            content,
            id=os.path.basename(args.path) if args.path != "-" else "stdin",
            declared_encoding=args.encoding,
            content_type=content_type_for(args.path, args.content_type),
            policy=dict(args.policy),
            omit_diff=args.format in (None, "text"),
        )
    output_format = args.format or "text"
    if output_format == "text":
        _write(response.text)
    elif output_format == "json":
        _write(to_json(response) + "\n")
    else:
        _write(render_diff(response, content, color=_use_color(args.color)))
    return EXIT_OK


def read_jsonl(lines: Sequence[str] | IO[str], defaults: dict[str, Any]) -> list[dict[str, Any]]:
    """Parse and check JSON Lines input before anything is sent; blank lines are skipped.

    Each object gets an `id` (its line number when it has none); ids must be unique. Raises
    `UsageError` naming the line of the first problem.
    """
    return [item for item, _ in _read_requests(lines, defaults)]


def _read_requests(
    lines: Iterable[str | bytes], defaults: dict[str, Any]
) -> list[tuple[dict[str, Any], textmend_pb2.RepairRequest]]:
    """`read_jsonl`'s items, each with its request, built once (orjson parses the lines)."""
    items: list[tuple[dict[str, Any], textmend_pb2.RepairRequest]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"line {number}: not valid JSON: {exc}") from None
        if not isinstance(item, dict):
            raise UsageError(f"line {number}: expected a JSON object, got {type(item).__name__}")
        if defaults:
            item = {**defaults, **item}
        item["id"] = str(item.get("id", number))
        if item["id"] in seen:
            raise UsageError(
                f"line {number}: duplicate id {item['id']!r} (first on line {seen[item['id']]})"
            )
        seen[item["id"]] = number
        try:
            request = as_request(item)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"line {number}: {exc}") from None
        items.append((item, request))
    return items


def in_input_order(
    ids: Sequence[str], responses: Iterable[textmend_pb2.RepairResponse]
) -> Iterator[textmend_pb2.RepairResponse]:
    """Yield responses in the order of ids, each as soon as every earlier one has arrived.

    >>> got = [textmend_pb2.RepairResponse(id=i) for i in "bca"]
    >>> [r.id for r in in_input_order(["a", "b", "c"], got)]
    ['a', 'b', 'c']
    """
    waiting: dict[str, textmend_pb2.RepairResponse] = {}
    position = 0
    for response in responses:
        waiting[response.id] = response
        while position < len(ids) and ids[position] in waiting:
            yield waiting.pop(ids[position])
            position += 1
    if position < len(ids):
        raise TextMendError(
            grpc.StatusCode.UNKNOWN,
            f"the stream ended without a response for {len(ids) - position} of {len(ids)} "
            f"documents (first missing: id {ids[position]!r})",
        )


def _repair_jsonl(args: argparse.Namespace) -> int:
    """`repair --jsonl`: every line's request built once, sent over the client's streams;
    each response written (orjson, only the wanted fields) as soon as every earlier line's
    has been, without a flush per line; over `--processes` processes when asked."""
    fields = args.fields if args.fields is not None else jsonl.DEFAULT_FIELDS
    # No diff unless it is asked for: it is derived from the edits, and costs the server.
    defaults: dict[str, Any] = {"omit_diff": "diff" not in fields}
    if args.encoding:
        defaults["declared_encoding"] = args.encoding
    if args.content_type:
        defaults["content_type"] = args.content_type
    if args.policy:
        defaults["policy"] = dict(args.policy)
    if args.path in (None, "-"):
        stdin = getattr(sys.stdin, "buffer", sys.stdin)
        requests = [request for _, request in _read_requests(stdin, defaults)]
    else:
        with open(args.path, "rb") as handle:
            requests = [request for _, request in _read_requests(handle, defaults)]
    encoder = jsonl.ResponseEncoder(fields)
    out = getattr(sys.stdout, "buffer", None)
    if out is None:  # a text stream without a buffer (a test's StringIO)
        out = _TextAsBytes(sys.stdout)
    sys.stdout.flush()
    progress = Progress(len(requests), sys.stderr)
    failed = 0

    def run(share: Sequence[textmend_pb2.RepairRequest], sink: IO[bytes]) -> int:
        """Send share over this process's streams, writing each response's line to sink."""
        failures = 0
        ids = [request.id for request in share]
        with _client(args) as client:
            for response in in_input_order(ids, client.repair_stream(share)):
                failures += response.HasField("error")
                sink.write(encoder.encode(response))
                if sink is out:
                    progress.advance(response.content_bytes)
        sink.flush()
        return failures

    if args.processes == 1 or len(requests) < 2:
        failed = run(requests, out)
        code = EXIT_OK
    else:

        def copied(index: int, line: bytes) -> None:
            nonlocal failed
            if b'"error":' in line and "error" in orjson.loads(line):
                failed += 1
            progress.advance(len(requests[index].content))

        code = jsonl.run_parallel(
            requests,
            min(args.processes, len(requests)),
            lambda share, sink: EXIT_SERVER if run(share, sink) else EXIT_OK,
            out,
            copied,
        )
        out.flush()
    if failed:
        _error(f'{failed} of {len(requests)} documents failed; see their "error" field')
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


def _cmd_health(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.health_status(args.service)
    _write(status + "\n")
    return EXIT_OK if status == "SERVING" else EXIT_SERVER


def _cmd_report(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return run_report(
            args.paths, client, args.output, title=args.title, policy=dict(args.policy)
        )


def _cmd_check(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return run_check(args.paths, client, format=args.format, policy=dict(args.policy))


# --- entry point -----------------------------------------------------------------------------


def _error(message: str) -> None:
    _write(f"{PROG}: error: {message}\n", sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the `textmend` command; returns its exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return args.handler(args)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except TextMendError as exc:
        _error(str(exc))
        return EXIT_SERVER
    except BrokenPipeError:
        return EXIT_IO
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror or exc}")
        return EXIT_IO
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
