"""`textmend.v1.TextMend`: each call goes request -> engine (within the limits, taking turns)
-> response, and is logged and counted.

Failures a caller can act on leave as a status code with an English message: `InputError` ->
INVALID_ARGUMENT, `TooLargeError` and `LimitError` -> RESOURCE_EXHAUSTED. Anything else is a bug
in textmend: it is logged with its traceback (never the document) and reported as INTERNAL, and
the worker keeps serving. A document that fails raises `RepairFailed` with its code and message:
`Repair` aborts the call with them, and `RepairStream` answers that document with an
`error` instead, so one bad document never costs the others.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable, Iterable, Iterator

import grpc

from textmend.v1 import textmend_pb2, textmend_pb2_grpc
from textmend_server import Cancelled, InputError, TooLargeError, metrics
from textmend_server.admission import InFlight
from textmend_server.config import ServerConfig
from textmend_server.convert import (
    CATEGORIES,
    SERVICE_NAME,
    SOURCES,
    VERDICTS,
    error_response,
    set_text,
    to_response,
)
from textmend_server.engine import Repaired
from textmend_server.errors import MAX_QUOTED_CHARS, shown
from textmend_server.interceptors import BUSY_METADATA, abort_with
from textmend_server.limits import LimitError, repair_request
from textmend_server.turns import Turns
from textmend_server.wire import Received, parse_request

_LOGGER = logging.getLogger(__name__)

#: Trailing metadata key set when `RepairStream` ends because it carried the most documents a
#: stream may; its value is the limit. A caller resends the unanswered documents on a new stream.
STREAM_LIMIT_METADATA = "textmend-stream-limit"

#: Most characters of an id a log line shows (it is quoted with repr, so escapes included): as
#: many as an error message quotes of a request (`errors.MAX_QUOTED_CHARS`, 100).
LOG_ID_CHARS = MAX_QUOTED_CHARS
#: Bytes of a document a DEBUG line shows with `--log-content`, as that flag's help says.
LOG_CONTENT_BYTES = 200

# How long a call runs before the engine starts asking whether its caller is still there:
# asking costs a lock in gRPC, and the engine asks at every stage of every block. Chosen so
# that light documents never ask (a 5 KB document takes 0.4-20 ms, see
# `config.DEFAULT_TIME_SLICE`), while a heavy one past it stops at the engine's next check
# after its caller leaves.
CANCEL_CHECK_AFTER = 0.02

_INTERNAL_MESSAGE = (
    "internal error while repairing the document; the server logged the details "
    "(please report it with the request id)"
)

# What a failed document reports to the metrics: nothing decoded, no edit, no verdict.
_NOTHING = textmend_pb2.RepairResponse()


class RepairFailed(Exception):
    """A document could not be repaired: the status code and the message its caller gets."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Busy(Exception):
    """The worker's budget of document bytes in progress (`--max-inflight-mb`) has no room
    for a `Repair`'s document: UNAVAILABLE, and the caller retries."""


# The flag a caller refused for want of room in the budget of bytes in progress reads in the
# `textmend-busy` trailer.
INFLIGHT_FLAG = "--max-inflight-mb"
# How often a stream's document waiting for room in the worker's budget of bytes in progress
# looks again (and checks that its caller is still there); chosen, as `turns._TURN_POLL`.
INFLIGHT_POLL = 0.05


def classify_error(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and caller-facing message for an exception raised by a repair.

    `TooLargeError` is checked before `InputError`, of which it is a subclass. Anything
    unexpected is INTERNAL with a fixed message: its own text may quote the document.

    >>> from textmend_server import EmptyContentError
    >>> classify_error(EmptyContentError())[0].name
    'INVALID_ARGUMENT'
    """
    if isinstance(exc, TooLargeError | LimitError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, Cancelled):
        return grpc.StatusCode.CANCELLED, str(exc)
    if isinstance(exc, Busy):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, InputError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    return grpc.StatusCode.INTERNAL, _INTERNAL_MESSAGE


def shown_id(request_id: str) -> str:
    r"""A request id for a log line: repr (so a newline cannot forge a line), at most
    `LOG_ID_CHARS` characters of it.

    >>> print(shown_id("doc\n1"))
    'doc\n1'
    >>> shown_id("x" * 200).endswith("' (first 100 of 200 characters)")
    True
    """
    return shown(request_id, LOG_ID_CHARS)


class TextMendServicer(textmend_pb2_grpc.TextMendServicer):
    """`textmend.v1.TextMend`: each method is request -> engine -> response; documents take
    turns at the engine (`Turns`)."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._turns = Turns(config.time_slice)
        self._inflight = InFlight(config.max_inflight_bytes)

    def _run(
        self,
        request: textmend_pb2.RepairRequest,
        content: bytes,
        context: grpc.ServicerContext,
        started: float,
        deadline: float | None,
        waits: bool = False,
    ) -> Repaired:
        """Run the engine on one document when there is room for it in the worker's budget of
        bytes in progress (`InFlight`: with waits, it waits for room; else `Busy` is raised)
        and its turn comes.

        The engine asks between blocks of work whether the caller is still there, so a call
        whose deadline passed or that was cancelled stops using the CPU (`Cancelled`).
        """
        watch = _gone(context, started, self._config.max_seconds)
        size = len(content)
        if not self._inflight.take(size):
            if not waits:
                raise Busy(self._inflight.busy_message(size))
            while not self._inflight.take(size):
                if watch():
                    raise Cancelled()
                time.sleep(INFLIGHT_POLL)
        turn = self._turns.new_turn(math.inf if deadline is None else deadline)

        def cancelled() -> bool:
            return not self._turns.checkpoint(turn, watch) or watch()

        try:
            if not self._turns.acquire(turn, watch):
                raise Cancelled()
            return repair_request(request, self._config, cancelled, content=content)
        finally:
            self._turns.release(turn)
            self._inflight.give(size)

    def _repair(
        self,
        received: Received | textmend_pb2.RepairRequest,
        context: grpc.ServicerContext,
        method: str,
        deadline: float | None,
    ) -> textmend_pb2.RepairResponse:
        """Repair one document, log it and count it; raise `RepairFailed` when it could not
        be repaired. Its content is held here alone, and let go of before the response is
        built (`_unpack`). deadline is the call's, on the `time.perf_counter` clock (None
        without one), for its place among heavy documents (`Turns`) and the log; asked of gRPC
        once a call, not once a document, since each question takes a lock its threads
        contend for."""
        started = time.perf_counter()
        request, content = _unpack(received)
        size = len(content)
        head = content[:LOG_CONTENT_BYTES] if self._config.log_content else None
        try:
            # A stream's document waits for room in the budget of bytes; a call is refused.
            waits = method == "RepairStream"
            repaired = self._run(request, content, context, started, deadline, waits)
            del content  # before the response, which holds the text again
            response = to_response(repaired, request.id, with_text=False)
            text = repaired.text.encode("utf-8")
            del repaired  # the text as a str, before protobuf copies its UTF-8
            set_text(response, text)
            del text
        except Exception as exc:
            failure = RepairFailed(*classify_error(exc))
            if failure.code is grpc.StatusCode.INTERNAL:
                _log_unexpected(exc, request, size)
            if failure.code is grpc.StatusCode.CANCELLED:
                _log_abandoned(request, started, deadline)
            _log_done(request, size, failure.code.name, started, head)
            _observe(method, size, _NOTHING, failure.code.name, started)
            try:
                raise failure from exc
            finally:
                # The failure's traceback holds this frame, and this frame the failure: a
                # cycle that kept the refused request's content (up to --max-message-mb) until
                # the cyclic collector happened to run, minutes on a quiet worker.
                del failure
        _log_done(request, size, response, started, head)
        _observe(method, size, response, "OK", started)
        return response

    def Repair(
        self, received: Received | textmend_pb2.RepairRequest, context: grpc.ServicerContext
    ) -> textmend_pb2.RepairResponse:
        """Repair one document; failures leave as the status code the proto documents."""
        deadline = _abort_if_expired(context)
        try:
            response = self._repair(received, context, "Repair", deadline)
        except RepairFailed as failed:
            if failed.code is grpc.StatusCode.UNAVAILABLE:
                abort_with(context, failed.code, failed.message, (BUSY_METADATA, INFLIGHT_FLAG))
            context.abort(failed.code, failed.message)
        if not context.is_active():
            _LOGGER.debug("repair id=%s finished after the caller gave up", shown_id(response.id))
        return response

    def RepairStream(
        self,
        request_iterator: Iterable[Received | textmend_pb2.RepairRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[textmend_pb2.RepairResponse]:
        """Repair documents as they arrive, one response per request, errors per document.

        The response headers go out as soon as the stream is admitted. A document beyond
        `max_stream_documents` ends the stream with RESOURCE_EXHAUSTED and the
        `textmend-stream-limit` trailer; the caller resends it, and any other document not
        yet answered, on a new stream.
        """
        count = 0
        deadline = _abort_if_expired(context)
        # Headers now, not with the first response: they tell the caller that a worker took
        # the stream, so a stream that breaks later (its worker killed while the documents
        # waited their turn) is reopened at once rather than counted as one no worker would
        # take. No retry policy covers streams, so sending them early costs no retry.
        context.send_initial_metadata(())
        checked = time.perf_counter()
        for received in request_iterator:
            # Asking gRPC about the call takes a lock its threads contend for; a cancelled
            # stream also ends the request iterator, so asking every CANCEL_CHECK_AFTER is
            # enough (documents arrive far more often than that on a busy stream).
            now = time.perf_counter()
            if now - checked >= CANCEL_CHECK_AFTER:
                checked = now
                if not context.is_active():
                    _LOGGER.debug("stream cancelled by the caller after %d documents", count)
                    return
                if deadline is not None and now >= deadline:
                    context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the caller's deadline passed")
            if count >= self._config.max_stream_documents:
                self._end_stream_at_limit(context)
            try:
                response = self._repair(received, context, "RepairStream", deadline)
            except RepairFailed as failed:
                if failed.code is grpc.StatusCode.CANCELLED:
                    return
                response = error_response(_fields(received).id, failed.code, failed.message)
            yield response
            count += 1
        _LOGGER.debug("stream finished: %d documents", count)

    def _end_stream_at_limit(self, context: grpc.ServicerContext) -> None:
        """End a stream that has carried `max_stream_documents` (RESOURCE_EXHAUSTED)."""
        limit = self._config.max_stream_documents
        _LOGGER.info("stream ended at its limit of %d documents", limit)
        abort_with(
            context,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"this stream has carried {limit} documents, the server's limit per "
            "stream: open a new stream for the rest (documents without a response were "
            "not repaired), or raise the server's --max-stream-documents",
            (STREAM_LIMIT_METADATA, str(limit)),
        )


def _gone(
    context: grpc.ServicerContext, started: float, max_seconds: float = math.inf
) -> Callable[[], bool]:
    """The engine's `cancelled` callback for one document: whether the caller cancelled or its
    deadline passed, asked only once the work has run CANCEL_CHECK_AFTER seconds. Past
    max_seconds it raises `LimitError`, which ends the work as RESOURCE_EXHAUSTED."""

    def cancelled() -> bool:
        elapsed = time.perf_counter() - started
        if elapsed < CANCEL_CHECK_AFTER:
            return False
        if elapsed > max_seconds:
            raise LimitError(
                f"repairing this document took more than {max_seconds:g} s, the server's "
                "limit per document: split the document, turn off the CJK categories in "
                "`policy` if it is not CJK text, or raise the server's --max-seconds"
            )
        return not context.is_active()

    return cancelled


# A call without a deadline reports the time left to gRPC's infinite one (about 2**63 ns, 292
# years); anything past a year is no deadline.
NO_DEADLINE_SECONDS = 365 * 24 * 3600


def _abort_if_expired(context: grpc.ServicerContext) -> float | None:
    """Abort with DEADLINE_EXCEEDED when the caller's deadline has already passed; else the
    deadline on the `time.perf_counter` clock, or None when the call has none."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the caller's deadline passed")
    if remaining is None or remaining > NO_DEADLINE_SECONDS:
        return None
    return time.perf_counter() + remaining


# --- logs and metrics --------------------------------------------------------------------------


def add_servicer(servicer: TextMendServicer, server: grpc.Server) -> None:
    """Serve servicer's methods on server, as the generated `add_TextMendServicer_to_server`
    does, but with requests parsed by `wire.parse_request`: a document's content is held once,
    apart from the request's other fields."""
    serialize = textmend_pb2.RepairResponse.SerializeToString
    handlers = {
        "Repair": grpc.unary_unary_rpc_method_handler(
            servicer.Repair, request_deserializer=parse_request, response_serializer=serialize
        ),
        "RepairStream": grpc.stream_stream_rpc_method_handler(
            servicer.RepairStream,
            request_deserializer=parse_request,
            response_serializer=serialize,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))


def _fields(received: Received | textmend_pb2.RepairRequest) -> textmend_pb2.RepairRequest:
    """The request's fields (its content may have been taken)."""
    return received.fields if isinstance(received, Received) else received


def _unpack(
    received: Received | textmend_pb2.RepairRequest,
) -> tuple[textmend_pb2.RepairRequest, bytes]:
    """A request's fields and its content, which the caller then holds alone: a `Received`
    gives its content up, and a plain `RepairRequest` (a caller that parsed it with protobuf
    itself) is read once."""
    if isinstance(received, Received):
        return received.fields, received.take_content()
    return received, received.content


def _log_unexpected(exc: BaseException, request: textmend_pb2.RepairRequest, size: int) -> None:
    """Log a bug with its traceback but without the exception's message, which may quote text."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    _LOGGER.error(
        "unexpected %s while repairing id=%s (%d bytes); traceback:\n%s",
        type(exc).__name__,
        shown_id(request.id),
        size,
        frames.rstrip(),
    )


def _log_abandoned(
    request: textmend_pb2.RepairRequest, started: float, deadline: float | None
) -> None:
    """Log a document whose caller cancelled or whose deadline passed while it was worked on."""
    now = time.perf_counter()
    if deadline is None:
        why = "the caller, which set no deadline, cancelled"
    elif now < deadline:
        why = f"the caller cancelled {deadline - now:.2f} s before its deadline"
    else:
        why = f"the caller's deadline passed {now - deadline:.2f} s ago"
    _LOGGER.info(
        "repair id=%s abandoned after %.2f s: %s", shown_id(request.id), now - started, why
    )


def _log_done(
    request: textmend_pb2.RepairRequest,
    size: int,
    outcome: str | textmend_pb2.RepairResponse,
    started: float,
    head: bytes | None = None,
) -> None:
    """One DEBUG line per document: id, size and outcome (a failure's code, or the response
    summed up); the content's head only when asked for (`--log-content`). Nothing is worked
    out when DEBUG is off."""
    if _LOGGER.isEnabledFor(logging.DEBUG):
        if not isinstance(outcome, str):
            outcome = _outcome(outcome)
        _LOGGER.debug(
            "repair id=%s bytes=%d declared=%s -> %s in %.1f ms%s",
            shown_id(request.id),
            size,
            shown(request.declared_encoding),
            outcome,
            (time.perf_counter() - started) * 1000,
            f" content={head!r}" if head is not None else "",
        )


def _outcome(response: textmend_pb2.RepairResponse) -> str:
    """A short summary of a repaired document's response for the log."""
    return (
        f"{textmend_pb2.Verdict.Name(response.verdict)} encoding={response.encoding.name} "
        f"edits={len(response.edits)} findings={len(response.findings)}"
    )


def _observe(
    method: str,
    size: int,
    response: textmend_pb2.RepairResponse,
    code: str,
    started: float,
) -> None:
    """Count one document of size bytes in the Prometheus metrics (when the server exports
    them), by the engine's names of its categories, encoding source and verdict."""
    if not metrics.enabled():
        return
    metrics.observe(
        method,
        code,
        time.perf_counter() - started,
        size,
        edits=[CATEGORIES.name(e.category) for e in response.edits],
        findings=[CATEGORIES.name(f.category) for f in response.findings],
        encoding=response.encoding.name,
        source=SOURCES.name(response.encoding.source),
        # A document that failed has no verdict: its status code says what happened.
        verdict=VERDICTS.name(response.verdict) if response.verdict else "",
    )


__all__ = [
    "CANCEL_CHECK_AFTER",
    "LOG_ID_CHARS",
    "STREAM_LIMIT_METADATA",
    "RepairFailed",
    "TextMendServicer",
    "add_servicer",
    "classify_error",
    "shown_id",
]
