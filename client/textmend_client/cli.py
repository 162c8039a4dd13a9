"""`textmend`: repair documents with a textmend server from the command line.

    textmend repair article.txt                  # the cleaned text, exactly
    textmend repair --format diff article.txt    # what changed, for a person
    textmend repair --format json - < page.html  # the full response
    textmend repair --jsonl < docs.jsonl > out.jsonl
    textmend repair corpus/ --output-dir cleaned/  # a backfill: progress, resumable, summary
    textmend check docs/                         # lint: PATH:LINE:COL: CATEGORY: MESSAGE
    textmend report docs/ -o report.html         # side-by-side HTML with every edit
    textmend health

This module parses the arguments and hands them to the command's body in
`textmend_client.commands`, which reads the input, calls the server through
`textmend_client.TextMendClient` and writes the output. Exit codes: 0 success, 1 usage (bad
arguments, bad JSON Lines input; for `check`: something needs repair), 2 I/O (a file that
cannot be read or written), 3 the server refused a document, failed, or could not be reached.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import sys
from typing import Any, NoReturn

from textmend_client import __version__, jsonl
from textmend_client.backfill import DEFAULT_PARTITION_ROWS
from textmend_client.client import (
    DEFAULT_CHANNELS,
    DEFAULT_MAX_MESSAGE_MB,
    DEFAULT_STREAM_TIMEOUT,
    DEFAULT_TIMEOUT,
    MAX_MESSAGE_MB_LIMIT,
)
from textmend_client.commands import (
    EXIT_USAGE,
    PROG,
    UsageError,
    cmd_backfill,
    cmd_check,
    cmd_health,
    cmd_repair,
    cmd_report,
    error,
    in_input_order,
    read_jsonl,
    to_json,
)
from textmend_client.diff_view import render_diff
from textmend_client.errors import TextMendError
from textmend_client.files import EXIT_IO, EXIT_OK, EXIT_SERVER

# What this module has always offered besides the parser and `main`; the commands' bodies
# live in `textmend_client.commands`, the diff view in `textmend_client.diff_view`.
__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_IO",
    "EXIT_OK",
    "EXIT_SERVER",
    "EXIT_USAGE",
    "PROG",
    "UsageError",
    "build_parser",
    "in_input_order",
    "main",
    "read_jsonl",
    "render_diff",
    "to_json",
]

#: Exit code after Ctrl-C: 128 plus SIGINT's number, as a shell reports a command it
#: interrupted.
EXIT_INTERRUPTED = 128 + signal.SIGINT


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
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive, finite number, not {text}")
    return value


#: Longest media type the server takes (`textmend_server.limits`: 100 characters).
MAX_CONTENT_TYPE_CHARS = 100
_MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(?:\s*;.*)?")


def _media_type(text: str) -> str:
    """A `--content-type` value: any media type (`text/html`, `application/rss+xml`), or ""
    (the default, which argparse passes here too): the server decides."""
    if not text:
        return ""
    if len(text) > MAX_CONTENT_TYPE_CHARS or not _MEDIA_TYPE.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(
            f"expected a media type such as text/plain, text/html or application/xml, not {text!r}"
        )
    return text.strip()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _message_mb(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_MESSAGE_MB_LIMIT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_MESSAGE_MB_LIMIT}, not {text}")
    return value


def _fields(text: str) -> tuple[str, ...]:
    try:
        return jsonl.parse_fields(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, not {text}")
    return value


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
    parser.add_argument(
        "--min-confidence",
        type=_confidence,
        default=0.0,
        metavar="P",
        help="report edits rated less than P (0 to 1) likely to be right as findings, with the "
        "repair as their suggestion, instead of making them (default 0: each repair's own "
        "floor)",
    )


# The connection options that name a file, each with the environment variable that is its
# default and its help.
_FILE_OPTIONS = (
    (
        "--tls-ca",
        "TEXTMEND_TLS_CA",
        "PEM CA that signed the server's certificate; connects with TLS (TEXTMEND_TLS_CA)",
    ),
    (
        "--tls-cert",
        "TEXTMEND_CLIENT_CERT",
        "PEM client certificate, for a server that requires one (mutual TLS); needs "
        "--tls-key (TEXTMEND_CLIENT_CERT: not TEXTMEND_TLS_CERT, which is the server's own)",
    ),
    ("--tls-key", "TEXTMEND_CLIENT_KEY", "PEM private key of --tls-cert (TEXTMEND_CLIENT_KEY)"),
    (
        "--token-file",
        "TEXTMEND_TOKEN_FILE",
        "file holding the server's bearer token, sent as 'authorization: Bearer <token>' "
        "(TEXTMEND_TOKEN_FILE); health checks need none",
    ),
)


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=os.environ.get("TEXTMEND_SERVER", "localhost:50051"),
        metavar="HOST:PORT",
        help="server address (a host alone means port 50051); dns:///name:port spreads calls "
        "over every address of name (TEXTMEND_SERVER; default: localhost:50051)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help=f"deadline of the call (default: {DEFAULT_TIMEOUT:.0f}; "
        f"{DEFAULT_STREAM_TIMEOUT:.0f} for a whole --jsonl stream)",
    )
    parser.add_argument(
        "--max-message-mb",
        type=_message_mb,
        default=os.environ.get("TEXTMEND_MAX_MESSAGE_MB", str(DEFAULT_MAX_MESSAGE_MB)),
        metavar="MB",
        help="largest request and response, in MiB: set it to the server's --max-message-mb "
        f"(TEXTMEND_MAX_MESSAGE_MB, as the server's; default: {DEFAULT_MAX_MESSAGE_MB})",
    )
    env = os.environ.get
    parser.add_argument(
        "--tls",
        action="store_true",
        default=env("TEXTMEND_TLS", "").lower() in {"1", "true", "yes"},
        help="connect with TLS, trusting the system's CAs; implied by --tls-ca and --tls-cert "
        "(TEXTMEND_TLS=1)",
    )
    for flag, variable, help in _FILE_OPTIONS:
        parser.add_argument(flag, default=env(variable), metavar="PATH", help=help)


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
        type=_media_type,
        metavar="TYPE",
        help="text/plain, or text/html or an XML type (text/xml, application/xml, any +xml), "
        "which leave the document's markup alone; any other type lets the bytes decide "
        "(default: text/html for files named .html, .htm, .xhtml, .xml or .svg, and for "
        "content starting as an HTML or XML document does; text/plain otherwise)",
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
    repair.set_defaults(handler=cmd_repair)

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
    health.set_defaults(handler=cmd_health)

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
    report.set_defaults(handler=cmd_report, channels=4)

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
    check.set_defaults(handler=cmd_check, channels=4)
    _add_backfill_command(commands)
    return parser


def _add_backfill_command(commands: Any) -> None:
    """`textmend backfill`: a stored corpus repaired on Ray (`textmend_client.backfill`)."""
    backfill = commands.add_parser(
        "backfill",
        help="repair a stored corpus (JSON Lines or Parquet) on Ray, resumably",
        description="Repair every row of JSON Lines or Parquet files with the engine in a Ray "
        "actor pool (or, with --server, a running service) into partitioned Parquet or JSON "
        "Lines with id, content_bytes, text, encoding, verdict, edits, findings and error. "
        "Finished partitions are skipped, so a rerun resumes. Needs the ray extra "
        "(pip install -e '.[ray]').",
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
        type=_media_type,
        metavar="TYPE",
        help="for rows without one, as repair's (default: the server's rule, from the bytes)",
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
    backfill.set_defaults(handler=cmd_backfill)


# --- entry point -----------------------------------------------------------------------------


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
        error(str(exc))
        return EXIT_USAGE
    except TextMendError as exc:
        error(str(exc))
        return EXIT_SERVER
    except BrokenPipeError:
        return EXIT_IO
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        error(f"{where}{exc.strerror or exc}")
        return EXIT_IO
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
