"""`textmend check`: report what a repair would change, like a linter, without changing it.

For pipelines and pre-commit hooks. Each edit the server would make and each finding is one
line, ``path:line:column: category: message``, with line and column counting from 1 in the
decoded original (columns count code points, a tab as one)::

    notes.txt:2:4: mojibake: UTF-8 text read as latin-1: 'Ã©' -> 'é'
    notes.txt:5:9: bidi_control: bidirectional override or isolate: ...: '\\u202e'

Invisible characters in the quoted text are written as ``\\uXXXX`` escapes, so a terminal
neither hides nor obeys them. A clean document prints nothing.

Exit codes (`run_check`): 0 nothing needs repair; 1 some document has edits, or findings
other than informational ones (`INFORMATIONAL`: an overruled encoding declaration, a
repeated block), or is unreadable; 2 a file or directory could not be read; 3 the server
failed or could not be reached. When several apply, the highest wins. Files the server
refuses (binary ones) are skipped with a warning on standard error; empty files are clean.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

from textmend.v1 import textmend_pb2
from textmend_client.client import TextMendClient
from textmend_client.files import EXIT_IO, EXIT_OK, EXIT_SERVER, repair_files, report_outcome
from textmend_client.responses import LineIndex, category_name, reconstruct_original, verdict_name
from textmend_client.visible import escaped

__all__ = [
    "EXIT_CLEAN",
    "EXIT_IO",
    "EXIT_NEEDS_REPAIR",
    "EXIT_SERVER",
    "INFORMATIONAL",
    "check_json",
    "check_lines",
    "needs_repair",
    "problems",
    "run_check",
]

EXIT_CLEAN = EXIT_OK
EXIT_NEEDS_REPAIR = 1

#: Finding categories that describe a document without saying it is damaged: they are
#: printed, but do not make `run_check` fail. Bidi controls are not among them: in a
#: repository they are how source code is made to read differently from what it does.
INFORMATIONAL = frozenset({textmend_pb2.CATEGORY_ENCODING, textmend_pb2.CATEGORY_REPEATED_BLOCK})

#: Characters of a span quoted at most in a message.
QUOTE_LIMIT = 60


def _quote(text: str) -> str:
    """A quoted, escaped, shortened span for a message: `'Ã©'`."""
    shown = escaped(text[: QUOTE_LIMIT * 2], breaks=True)
    if len(shown) > QUOTE_LIMIT or len(text) > QUOTE_LIMIT * 2:
        shown = shown[: QUOTE_LIMIT - 1] + "…"
    return f"'{shown}'"


def problems(response: textmend_pb2.RepairResponse) -> list[dict[str, Any]]:
    """Every edit and finding of a response as a dict, in text order.

    Keys: `line`, `column`, `end_line`, `end_column` (1-based, end inclusive: the last
    character), `kind` (`edit` or `finding`), `category`, `message`, `reason`,
    `confidence`, `original`, `replacement` (for a finding: its suggestion, or null),
    `informational` (whether it alone would not fail a check). Positions are those of the
    decoded original; when the edits do not fit the text they are null and `offset` holds the
    code point offset.
    """
    try:
        lines: LineIndex | None = LineIndex(reconstruct_original(response))
    except ValueError:
        lines = None
    items = [(e.original_start, 0, e) for e in response.edits]
    items += [(f.original_start, 1, f) for f in response.findings]
    items.sort(key=lambda item: (item[0], item[1]))
    result = []
    for _, is_finding, item in items:
        proposed: str | None = item.replacement
        if is_finding:
            proposed = item.suggestion or None
        message = f"{escaped(item.reason, breaks=True)}: {_quote(item.original)}"
        if proposed is not None:
            message += f" -> {_quote(proposed)}"
        entry: dict[str, Any] = {
            "line": None,
            "column": None,
            "end_line": None,
            "end_column": None,
            "offset": item.original_start,
            "kind": "finding" if is_finding else "edit",
            "category": category_name(item.category),
            "message": message,
            "reason": item.reason,
            "confidence": round(item.confidence, 4),
            "original": item.original,
            "replacement": proposed,
            "informational": bool(is_finding and item.category in INFORMATIONAL),
        }
        if lines is not None:
            entry["line"], entry["column"] = lines.position(item.original_start)
            last = max(item.original_start, item.original_end - 1)
            entry["end_line"], entry["end_column"] = lines.position(last)
        result.append(entry)
    return result


def needs_repair(response: textmend_pb2.RepairResponse) -> bool:
    """Whether a response calls for action: edits, findings that are not informational, or
    an unreadable document."""
    return bool(
        response.edits
        or any(f.category not in INFORMATIONAL for f in response.findings)
        or response.verdict == textmend_pb2.VERDICT_UNREADABLE
        or response.HasField("error")
    )


def check_lines(name: str, response: textmend_pb2.RepairResponse) -> list[str]:
    """One linter line per edit and finding: `name:line:col: category: message`.

    >>> edit = textmend_pb2.Edit(category=textmend_pb2.CATEGORY_MOJIBAKE, original_start=6,
    ...     original_end=8, cleaned_start=6, cleaned_end=7, original="Ã©", replacement="é",
    ...     reason="UTF-8 text read as latin-1")
    >>> response = textmend_pb2.RepairResponse(text="hi\\ncafé\\n", edits=[edit])
    >>> check_lines("notes.txt", response)
    ["notes.txt:2:4: mojibake: UTF-8 text read as latin-1: 'Ã©' -> 'é'"]
    """
    shown = escaped(name, breaks=True)
    lines = []
    for entry in problems(response):
        where = (
            f"{entry['line']}:{entry['column']}"
            if entry["line"] is not None
            else f"@{entry['offset']}"
        )
        lines.append(f"{shown}:{where}: {entry['category']}: {entry['message']}")
    if response.HasField("error"):
        lines.append(
            f"{shown}: error: {response.error.code}: {escaped(response.error.message, breaks=True)}"
        )
    elif response.verdict == textmend_pb2.VERDICT_UNREADABLE:
        lines.append(f"{shown}: unreadable: no encoding decodes it without substantial loss")
    return lines


def check_json(name: str, response: textmend_pb2.RepairResponse) -> dict[str, Any]:
    """One document's check as JSON-ready data.

    `{"path", "verdict", "encoding", "needs_repair", "problems": [...]}`, the problems as
    given by `problems`.
    """
    return {
        "path": name,
        "verdict": verdict_name(response),
        "encoding": response.encoding.name,
        "needs_repair": needs_repair(response),
        "problems": problems(response),
    }


def run_check(
    paths: Sequence[str],
    client: TextMendClient,
    *,
    format: str = "text",
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    policy: Mapping[str, str] | None = None,
    content_type: str = "",
    workers: int = 4,
    min_confidence: float = 0.0,
) -> int:
    """Check every file under paths (directories recursively); return the exit code.

    `format="text"` writes `check_lines` output to out as each file is done, in path order;
    `format="json"` writes one JSON object at the end, `{"documents": [check_json, ...],
    "skipped": [{"path", "reason"}], "errors": [{"path", "error"}]}`, documents including
    the clean ones. Warnings (a file skipped, a file unreadable, a server error) go to err.
    `policy`, `content_type` and `min_confidence` are sent with every file (see
    `repair_files`). Exit codes are listed in the module docstring.
    """
    if format not in ("text", "json"):
        raise ValueError(f"format must be 'text' or 'json', not {format!r}")
    out = out or sys.stdout
    err = err or sys.stderr
    worst = EXIT_CLEAN
    documents: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    errors: list[dict[str, str]] = []
    for outcome in repair_files(
        paths,
        client,
        policy=policy,
        content_type=content_type,
        workers=workers,
        min_confidence=min_confidence,
    ):
        code = report_outcome(outcome, err)
        worst = max(worst, code)
        if outcome.status in ("refused", "too_large"):
            skipped.append({"path": outcome.path, "reason": str(outcome.error)})
        elif code != EXIT_OK:
            errors.append({"path": outcome.path, "error": str(outcome.error)})
        if outcome.status == "empty":
            documents.append(
                {
                    "path": outcome.path,
                    "verdict": "clean",
                    "encoding": "",
                    "needs_repair": False,
                    "problems": [],
                }
            )
        response = outcome.response
        if response is None:
            continue
        if needs_repair(response):
            worst = max(worst, EXIT_NEEDS_REPAIR)
        if format == "json":
            documents.append(check_json(outcome.path, response))
            continue
        lines = check_lines(outcome.path, response)
        if lines:
            out.write("\n".join(lines) + "\n")
            out.flush()
    if format == "json":
        report = {"documents": documents, "skipped": skipped, "errors": errors}
        out.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        out.flush()
    return worst
