"""One document through the engine within the server's limits.

Limits (all in `ServerConfig`): content bytes (`max_message_mb`, checked by the engine), the
longest line (`max_line_kb`, checked here on the bytes before decoding), edits and findings per
document (`max_edits`, checked on the engine's result before it becomes a message), and the
lengths of the request's id and labels (fixed by the contract). The time a document may take
(`max_seconds`) is the servicer's, which asks between blocks of work. A document over a limit
raises `LimitError`, whose message names the flag that raises the limit.
"""

from __future__ import annotations

from collections.abc import Callable

from textmend.v1 import textmend_pb2
from textmend_server import InputError, repair_bytes
from textmend_server.config import ServerConfig
from textmend_server.convert import MAX_ID_CHARS, policy_from_request
from textmend_server.decoding import sniff_binary
from textmend_server.engine import Repaired

#: Longest `declared_encoding` and `content_type`, in characters: IANA charset names are at
#: most 40 characters and a content type with its parameters fits easily; both are echoed in
#: responses and messages.
MAX_LABEL_CHARS = 100


class LimitError(InputError):
    """A document exceeds one of the server's limits other than its size in bytes (which is
    the engine's `TooLargeError`); RESOURCE_EXHAUSTED, with the flag to raise in the message."""


def check_request(request: textmend_pb2.RepairRequest) -> None:
    """Refuse fields longer than the contract allows (`InputError`), quoting none of them.

    >>> check_request(textmend_pb2.RepairRequest(id="x" * 3000))
    Traceback (most recent call last):
    ...
    textmend_server.errors.InputError: id is 3000 characters, over the limit of 2048: ...
    """
    if len(request.id) > MAX_ID_CHARS:
        raise InputError(
            f"id is {len(request.id)} characters, over the limit of {MAX_ID_CHARS}: send a "
            "shorter id (a hash of a long name, for example) and keep the name on your side"
        )
    for field in ("declared_encoding", "content_type"):
        value = getattr(request, field)
        if len(value) > MAX_LABEL_CHARS:
            raise InputError(
                f"{field} is {len(value)} characters, over the limit of {MAX_LABEL_CHARS}: "
                "send the bare name (such as 'utf-8' or 'text/html'), or leave it empty"
            )


def find_long_line(content: bytes, limit: int) -> int | None:
    r"""The byte offset where a run of more than limit bytes without LF or CR starts, or None.

    Runs at C speed without copying: each step asks `rfind` for the last line break in the
    next limit + 1 bytes and resumes after it, so each byte is looked at a few times at most.
    Counting bytes, not code points, is what makes it cheap before decoding; UTF-16 text may
    show a few extra breaks (a 0x0A byte inside a character), which only errs towards accepting.

    >>> find_long_line(b"ab\ncdef\rgh", 4), find_long_line(b"ab\ncdefg\nh", 4)
    (None, 3)
    """
    end = len(content)
    start = 0
    while end - start > limit:
        stop = start + limit + 1
        brk = max(content.rfind(b"\n", start, stop), content.rfind(b"\r", start, stop))
        if brk == -1:
            return start
        start = brk + 1
    return None


def check_limits(content: bytes, config: ServerConfig) -> None:
    """Refuse content with a line longer than the server allows (`LimitError`).

    Content over the byte limit, empty or binary is left for the engine to refuse with its
    own, more specific message.
    """
    if len(content) > config.max_content_bytes:
        return
    start = find_long_line(content, config.max_line_bytes)
    if start is not None and sniff_binary(content) is None:
        raise LimitError(
            f"content has a line longer than {config.max_line_kb} KiB (starting at byte "
            f"{start}): insert line breaks, split the document, or raise the server's "
            "--max-line-kb"
        )


def check_result(repaired: Repaired, config: ServerConfig) -> None:
    """Refuse a result with more edits and findings than the server sends (`LimitError`)."""
    count = len(repaired.edits) + len(repaired.findings)
    if count > config.max_edits:
        raise LimitError(
            f"repairing this document takes {len(repaired.edits)} edits and "
            f"{len(repaired.findings)} findings, over the limit of {config.max_edits} per "
            "document: split the document, turn off the noisiest categories in `policy`, or "
            "raise the server's --max-edits"
        )


def repair_request(
    request: textmend_pb2.RepairRequest,
    config: ServerConfig,
    cancelled: Callable[[], bool] | None = None,
    *,
    content: bytes | None = None,
) -> Repaired:
    """Run the engine on one request within the server's limits.

    content, when given, is the request's content, which the caller has taken out of it (the
    server does, so that a large document is held once rather than by the request as well).
    Raises the engine's `InputError`s and `Cancelled`, and `LimitError`.
    """
    check_request(request)
    if content is None:
        # Each read of a bytes field copies it: read once (a document may be 64 MB).
        content = request.content
    check_limits(content, config)
    repaired = repair_bytes(
        content,
        declared_encoding=request.declared_encoding or None,
        content_type=request.content_type,  # the engine decides HTML from this and the bytes
        policy=policy_from_request(request),
        include_diff=not request.omit_diff,
        label=request.id or "document",
        max_bytes=config.max_content_bytes,
        cancelled=cancelled,
    )
    check_result(repaired, config)
    return repaired


__all__ = [
    "MAX_LABEL_CHARS",
    "LimitError",
    "check_limits",
    "check_request",
    "check_result",
    "find_long_line",
    "repair_request",
]
