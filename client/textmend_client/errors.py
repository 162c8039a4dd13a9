"""What a failed call raises: `TextMendError` and its subclasses, one per gRPC status code
a caller acts on, made from a `grpc.RpcError` by `error_from_rpc`.

Callers of `TextMendClient` never see a bare `grpc.RpcError`: the status code and the
server's message travel in the `TextMendError`, and the subclass says what to do (fix the
input, split the document, retry later, send a token).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeGuard

import grpc

from textmend_client.visible import code_point, mark_invisible

# Trailing metadata the server sets on a call it refused at its `--max-calls` or
# `--max-streams` (textmend_server's interceptors): busy, not unreachable.
BUSY_METADATA = "textmend-busy"
# Trailing metadata of a stream the server ended at its --max-stream-documents.
STREAM_LIMIT_METADATA = "textmend-stream-limit"
# Trailing metadata of a stream the server ended after --stream-idle-seconds without a request.
STREAM_IDLE_METADATA = "textmend-stream-idle"
# Trailing metadata of a call refused because its worker had not finished starting (NOT_SERVING).
STARTING_METADATA = "textmend-starting"
# What the server says, with INVALID_ARGUMENT, of content that is a binary file
# (`textmend_server.errors.BinaryContentError`): a file a walk met that is not text, skipped.
# Any other INVALID_ARGUMENT (a policy name the server does not know) is the request's fault,
# and would refuse every file alike.
BINARY_REFUSAL = "looks like a binary file"
# What gRPC says when a message exceeds a side's size limit, before textmend can say which flag.
SIZE_REFUSALS = ("Sent message larger than max", "Received message larger than max")


class TextMendError(Exception):
    """A call failed; `code` is the gRPC status code and `details` the server's message.

    `str(error)` reads `INVALID_ARGUMENT: content is empty: ...`.
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.details = details
        super().__init__(f"{code.name}: {details}")


class InvalidInput(TextMendError):
    """INVALID_ARGUMENT: empty or binary content, an unknown charset or policy name."""


class InvalidRequest(InvalidInput, ValueError):
    """A request this client refused before sending it, for what the server would refuse with
    INVALID_ARGUMENT (an unknown policy action, a `min_confidence` outside 0..1, an id over
    the server's limit, a JSON Lines field of the wrong type). An `InvalidInput`, so one
    `except TextMendError` catches both sides' refusals; and a `ValueError`, as it was.

    `str(error)` is the reason alone: nothing was sent, so there is no status to show.
    """

    def __init__(self, details: str) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, details)
        self.args = (details,)


class ServerBrokeContract(TextMendError):
    """The server's answer cannot be used as the answer to what was sent: a response for
    another document, an empty one, edits outside the document, a stream that answered a
    document twice, or went on ending with documents unanswered. Raised with the status
    INTERNAL; the answer that broke the contract is never used."""

    def __init__(self, details: str) -> None:
        super().__init__(grpc.StatusCode.INTERNAL, details)


class TooLarge(TextMendError):
    """RESOURCE_EXHAUSTED: the document is larger than the server (or this client) accepts."""


class Unavailable(TextMendError):
    """UNAVAILABLE: no server could be reached, it is shutting down, it stayed busy (at its
    `--max-calls`, `--max-streams` or `--max-inflight-mb`) until the deadline, or the
    connection dropped the call before a server answered; safe to retry."""


class DeadlineExceeded(TextMendError):
    """DEADLINE_EXCEEDED: the call took longer than its timeout."""


class Unauthenticated(TextMendError):
    """UNAUTHENTICATED: the server wants a bearer token, and none or a wrong one was sent."""


_ERRORS: Mapping[grpc.StatusCode, type[TextMendError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TooLarge,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}


def is_call_error(error: BaseException) -> TypeGuard[grpc.Call | grpc.aio.AioRpcError]:
    """Whether error is a failed call with a status code: threaded calls are `grpc.Call`s,
    asyncio calls raise `grpc.aio.AioRpcError`."""
    return isinstance(error, grpc.aio.AioRpcError | grpc.Call)


#: Most characters of a server's status text an error keeps; a longer text is cut, marked.
#: The server's own messages are under 600; 2,000 leaves room for a proxy's.
MAX_DETAILS_CHARS = 2000


def shown_details(details: str) -> str:
    r"""A server's status text as an error carries it: on one line, every line break, tab and
    invisible character (`visible.is_invisible`: an escape, a bidi override) written as
    `⟨U+XXXX⟩`, as the report shows them, cut to `MAX_DETAILS_CHARS`. The text is the
    server's (or whatever answers in its place), and it reaches terminals and logs: an escape
    there could retitle a terminal or clear it, and a line break forge a line of output.

    >>> shown_details("bad\x1b[2J\r\nforged line")
    'bad⟨U+001B⟩[2J⟨U+000D⟩⟨U+000A⟩forged line'
    """
    shown = mark_invisible(details[:MAX_DETAILS_CHARS], _marked, _breaks_marked)
    return shown + ("…" if len(details) > MAX_DETAILS_CHARS else "")


def _marked(ch: str) -> str:
    return f"⟨{code_point(ch)}⟩"


def _breaks_marked(text: str) -> str:
    return text.replace("\n", _marked("\n")).replace("\t", _marked("\t"))


def error_from_rpc(error: grpc.RpcError, target: str = "") -> TextMendError:
    """Translate a `grpc.RpcError` (threaded or asyncio) into its `TextMendError` subclass.

    The message says what to do where gRPC's own does not: which server could not be
    reached (given `target`), and which size limit a message too large ran into. An INTERNAL
    that gRPC's own core raised for a call torn down under it is `Unavailable`.

    >>> from grpc.aio import AioRpcError, Metadata
    >>> def failed(code, details):
    ...     return type(error_from_rpc(AioRpcError(code, Metadata(), Metadata(), details))).__name__
    >>> failed(grpc.StatusCode.INTERNAL, "Internal error from Core")
    'Unavailable'
    >>> failed(grpc.StatusCode.INTERNAL, "internal error while repairing the document")
    'TextMendError'
    >>> big = "CLIENT: Received message larger than max (9437184 vs. 8388608)"
    >>> call = AioRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, Metadata(), Metadata(), big)
    >>> "the response is larger than this client's" in str(error_from_rpc(call))
    True
    """
    is_call = is_call_error(error)
    code = error.code() if is_call else grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
    details = error.details() if is_call else None  # type: ignore[attr-defined]
    if not details:
        # A status without details (the health service's NOT_FOUND): the code says it all,
        # where the exception's own text is a multi-line repr.
        details = "no details given" if is_call else str(error)
    details = shown_details(details)
    trailers = (error.trailing_metadata() if is_call else None) or ()  # type: ignore[attr-defined]
    refused_busy = any(
        key in {BUSY_METADATA, STREAM_IDLE_METADATA, STARTING_METADATA} for key, _ in trailers
    )
    if code is grpc.StatusCode.UNAVAILABLE and target and not refused_busy:
        details = f"cannot reach the textmend server at {target}: {details}"
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and any(r in details for r in SIZE_REFUSALS):
        if f"CLIENT: {SIZE_REFUSALS[1]}" in details:
            what = "the response is larger than this client's max_message_mb limit allows:"
        else:
            side = "this client's max_message_mb" if SIZE_REFUSALS[0] in details else "the server's"
            what = (
                f"the request is larger than {side} limit allows (the document plus 1 MiB for "
                "the other fields): split the document, or"
            )
        details = (
            f"{details}: {what} raise the server's --max-message-mb and the client's together "
            "(the `textmend` command's --max-message-mb, TEXTMEND_MAX_MESSAGE_MB; the library's "
            "max_message_mb)"
        )
    from textmend_client.retry import dropped_by_transport  # (retry imports this module)

    if dropped_by_transport(code, details):
        # gRPC's core tore the call down under it (a connection reset, a proxy's RST_STREAM,
        # a GOAWAY while the stream opened): no server answered, so it is as unavailable as a
        # server that could not be reached, and as safe to retry.
        return Unavailable(
            grpc.StatusCode.UNAVAILABLE,
            f"the connection dropped the call before a server answered it ({details})",
        )
    return _ERRORS.get(code, TextMendError)(code, details)
