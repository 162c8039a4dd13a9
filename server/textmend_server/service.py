"""The gRPC service: `textmend.v1.TextMend` in front of the engine, plus health and reflection.

The servicer is deliberately thin. Each call goes request -> `RepairPolicy` -> `repair_bytes`
-> response, and every conversion between engine objects and protobuf messages is a small pure
function here (`policy_from_request`, `to_response`, `error_response`, ...) that can be tested
without a server. The engine knows nothing about gRPC.

Failures a caller can act on leave as a status code with an English message: `InputError` ->
INVALID_ARGUMENT, `TooLargeError` -> RESOURCE_EXHAUSTED. Anything else is a bug in textmend: it
is logged with its traceback (never the document) and reported as INTERNAL, and the worker keeps
serving. In `RepairStream` the same failures become `RepairResponse.error` for that document
only, so one bad document never costs the others.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from textmend.v1 import textmend_pb2, textmend_pb2_grpc
from textmend_server import (
    Cancelled,
    InputError,
    RepairPolicy,
    TooLargeError,
    __version__,
    engine,
    metrics,
    repair_bytes,
)
from textmend_server.decoding import DecodedText
from textmend_server.edits import Edit
from textmend_server.engine import Repaired

_LOGGER = logging.getLogger(__name__)

MIB = 1024 * 1024

#: Full name of the repair service, as health checks and reflection know it.
SERVICE_NAME: str = textmend_pb2.DESCRIPTOR.services_by_name["TextMend"].full_name

# gRPC's limit on a received message is the content limit plus this much, so that a document
# slightly over the limit reaches the engine and gets its explanatory RESOURCE_EXHAUSTED (and,
# in RepairStream, a per-document error instead of a failed stream).
_ENVELOPE_BYTES = 1 * MIB

# A response carries the text, the diff (original and cleaned lines) and every edit, so it can
# be several times larger than the content (UTF-16 or GBK content grows when sent as UTF-8).
RESPONSE_SIZE_FACTOR = 4

_POLICY_NAMES: Mapping[int, str] = {
    textmend_pb2.POLICY_FIX: "fix",
    textmend_pb2.POLICY_FLAG: "flag",
    textmend_pb2.POLICY_OFF: "off",
}

_INTERNAL_MESSAGE = (
    "internal error while repairing the document; the server logged the details "
    "(please report it with the request id)"
)


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one server process.

    max_message_mb: largest accepted content, in MiB (gRPC's receive limit is this plus 1 MiB
        for the rest of the request; its send limit is `RESPONSE_SIZE_FACTOR` times as much).
    threads: threads serving calls in this process. The work is CPU-bound Python, so more
        threads do not add throughput (add worker processes for that); they keep health checks
        and long-lived streams from queueing behind each other.
    grace: seconds in-flight calls get to finish when the server stops.
    reuse_port: let several processes bind the same port (SO_REUSEPORT).
    warm_up: run one small repair before reporting SERVING, so that the engine's tables are
        loaded before the first real request arrives.
    """

    max_message_mb: int = 64
    threads: int = 8
    grace: float = 10.0
    reuse_port: bool = False
    warm_up: bool = True

    @property
    def max_content_bytes(self) -> int:
        """The largest content the engine accepts, in bytes."""
        return self.max_message_mb * MIB

    @property
    def max_receive_bytes(self) -> int:
        """gRPC's limit on one received message, in bytes."""
        return self.max_content_bytes + _ENVELOPE_BYTES

    @property
    def max_send_bytes(self) -> int:
        """gRPC's limit on one sent message, in bytes."""
        return self.max_receive_bytes * RESPONSE_SIZE_FACTOR


# --- request -> engine -----------------------------------------------------------------------


def is_html(content_type: str) -> bool:
    """Whether a request's content type is HTML (its markup is then the document's own).

    >>> is_html("text/html; charset=utf-8"), is_html(""), is_html("text/plain")
    (True, False, False)
    """
    return content_type.split(";", 1)[0].strip().lower() in {"text/html", "application/xhtml+xml"}


def policy_from_request(request: textmend_pb2.RepairRequest) -> RepairPolicy:
    """Build the engine's policy from a request's `policy` map and content type.

    POLICY_UNSPECIFIED keeps the category's default; an unknown category name or policy value
    raises `UnknownPolicyError` (an `InputError`).

    >>> from textmend_server import Category
    >>> req = textmend_pb2.RepairRequest(policy={"mojibake": textmend_pb2.POLICY_FLAG})
    >>> policy_from_request(req).action(Category.MOJIBAKE).value
    'flag'
    """
    mapping: dict[str, str] = {}
    for name, value in request.policy.items():
        if value == textmend_pb2.POLICY_UNSPECIFIED:
            continue
        mapping[name] = _POLICY_NAMES.get(value, f"policy value {value}")
    return RepairPolicy.from_mapping(mapping, html=is_html(request.content_type))


def repair_request(
    request: textmend_pb2.RepairRequest,
    config: ServerConfig,
    cancelled: Callable[[], bool] | None = None,
) -> Repaired:
    """Run the engine on one request; raises the engine's `InputError`s and `Cancelled`."""
    return repair_bytes(
        request.content,
        declared_encoding=request.declared_encoding or None,
        content_type=request.content_type or "text/plain",
        policy=policy_from_request(request),
        include_diff=not request.omit_diff,
        label=request.id or "document",
        max_bytes=config.max_content_bytes,
        cancelled=cancelled,
    )


# --- engine -> response ----------------------------------------------------------------------


# Engine enum values are the proto names in lower case without the prefix, so each converts
# by name; a value the contract does not know yet becomes *_UNSPECIFIED rather than an error.


def to_category(name: str) -> textmend_pb2.Category.ValueType:
    """`"mojibake"` -> CATEGORY_MOJIBAKE.

    >>> to_category("ruby_leak") == textmend_pb2.CATEGORY_RUBY_LEAK
    True
    """
    try:
        return textmend_pb2.Category.Value(f"CATEGORY_{name.upper()}")
    except ValueError:
        return textmend_pb2.CATEGORY_UNSPECIFIED


def to_source(name: str) -> textmend_pb2.EncodingInfo.Source.ValueType:
    """`"bom"` -> SOURCE_BOM."""
    try:
        return textmend_pb2.EncodingInfo.Source.Value(f"SOURCE_{name.upper()}")
    except ValueError:
        return textmend_pb2.EncodingInfo.SOURCE_UNSPECIFIED


def to_verdict(name: str) -> textmend_pb2.Verdict.ValueType:
    """`"clean"` -> VERDICT_CLEAN."""
    try:
        return textmend_pb2.Verdict.Value(f"VERDICT_{name.upper()}")
    except ValueError:
        return textmend_pb2.VERDICT_UNSPECIFIED


def to_edit(edit: Edit, *, finding: bool = False) -> textmend_pb2.Edit:
    """Convert an engine edit (or, with finding=True, a finding) to its message.

    For a finding nothing changed, so `replacement` is the original text and the engine's
    proposed repair, if it has one, goes to `suggestion`.
    """
    message = textmend_pb2.Edit(
        category=to_category(edit.category.value),
        original_start=edit.original_start,
        original_end=edit.original_end,
        cleaned_start=edit.cleaned_start,
        cleaned_end=edit.cleaned_end,
        original=edit.original,
        replacement=edit.original if finding else edit.replacement,
        reason=edit.reason,
        confidence=edit.confidence,
    )
    if finding and edit.replacement != edit.original:
        message.suggestion = edit.replacement
    if edit.byte_span is not None:
        message.original_start_byte, message.original_end_byte = edit.byte_span
    return message


def to_encoding_info(decoded: DecodedText | None) -> textmend_pb2.EncodingInfo:
    """Convert how the content was decoded to an `EncodingInfo` (empty when unknown)."""
    if decoded is None:
        return textmend_pb2.EncodingInfo()
    return textmend_pb2.EncodingInfo(
        name=decoded.encoding,
        confidence=decoded.confidence,
        source=to_source(decoded.source.value),
        runners_up=[
            textmend_pb2.EncodingCandidate(name=name, confidence=confidence)
            for name, confidence in decoded.runners_up
        ],
        declared=decoded.declared or "",
        candidates=[
            textmend_pb2.EncodingCandidate(
                name=c.name,
                confidence=c.confidence,
                source=c.source,
                decodes=c.decodes,
                implausibility=c.implausibility if c.decodes else 0.0,
                quality=c.quality,
                same_as=c.same_as or "",
                chosen=c.chosen,
            )
            for c in decoded.candidates
        ],
        regions=[
            textmend_pb2.EncodingRegion(
                byte_start=r.byte_start,
                byte_end=r.byte_end,
                start=r.char_start,
                end=r.char_end,
                encoding=r.encoding,
            )
            for r in decoded.regions
        ],
        overruled=decoded.overruled or "",
    )


def to_timings(timings: Mapping[str, float]) -> textmend_pb2.Timings:
    """Convert the engine's seconds per stage to whole microseconds.

    >>> to_timings({"decode": 0.0015, "total": 0.01}).total_us
    10000
    """

    def us(key: str) -> int:
        return max(0, round(timings.get(key, 0.0) * 1_000_000))

    return textmend_pb2.Timings(
        decode_us=us("decode"),
        detect_us=us("detect"),
        repair_us=us("repair"),
        diff_us=us("diff"),
        total_us=us("total"),
    )


def to_response(repaired: Repaired, request_id: str) -> textmend_pb2.RepairResponse:
    """Convert the engine's result for one document to a `RepairResponse`."""
    decoded = repaired.decoded
    return textmend_pb2.RepairResponse(
        id=request_id,
        text=repaired.text,
        encoding=to_encoding_info(decoded),
        edits=[to_edit(edit) for edit in repaired.edits],
        findings=[to_edit(finding, finding=True) for finding in repaired.findings],
        diff=repaired.diff,
        verdict=to_verdict(repaired.verdict.value),
        timings=to_timings(repaired.timings),
        original_length=len(repaired.original),
        content_bytes=decoded.content_bytes if decoded is not None else 0,
    )


def classify_error(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and caller-facing message for an exception raised by a repair.

    `TooLargeError` is checked before `InputError`, of which it is a subclass. Anything
    unexpected is INTERNAL with a fixed message: its own text may quote the document.

    >>> from textmend_server import EmptyContentError
    >>> classify_error(EmptyContentError())[0].name
    'INVALID_ARGUMENT'
    """
    if isinstance(exc, TooLargeError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, Cancelled):
        return grpc.StatusCode.CANCELLED, str(exc)
    if isinstance(exc, InputError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    return grpc.StatusCode.INTERNAL, _INTERNAL_MESSAGE


def error_response(
    request_id: str, code: grpc.StatusCode, message: str
) -> textmend_pb2.RepairResponse:
    """A `RepairStream` response reporting that one document failed.

    >>> error_response("a", grpc.StatusCode.INVALID_ARGUMENT, "content is empty").error.code
    'INVALID_ARGUMENT'
    """
    return textmend_pb2.RepairResponse(
        id=request_id, error=textmend_pb2.Error(code=code.name, message=message)
    )


def _log_unexpected(exc: BaseException, request: textmend_pb2.RepairRequest) -> None:
    """Log a bug with its traceback but without the exception's message, which may quote text."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    _LOGGER.error(
        "unexpected %s while repairing id=%r (%d bytes); traceback:\n%s",
        type(exc).__name__,
        request.id,
        len(request.content),
        frames.rstrip(),
    )


def _log_done(request: textmend_pb2.RepairRequest, outcome: str, started: float) -> None:
    """One DEBUG line per document: id, size and outcome, never the text."""
    if _LOGGER.isEnabledFor(logging.DEBUG):
        _LOGGER.debug(
            "repair id=%r bytes=%d declared=%r -> %s in %.1f ms",
            request.id,
            len(request.content),
            request.declared_encoding,
            outcome,
            (time.perf_counter() - started) * 1000,
        )


def _observe(
    method: str,
    request: textmend_pb2.RepairRequest,
    response: textmend_pb2.RepairResponse,
    seconds: float,
) -> None:
    """Count one document in the Prometheus metrics (when the server exports them)."""
    if not metrics.enabled():
        return
    metrics.observe(
        method,
        response.error.code if response.HasField("error") else "OK",
        seconds,
        len(request.content),
        edits=[textmend_pb2.Category.Name(e.category)[9:].lower() for e in response.edits],
        findings=[textmend_pb2.Category.Name(f.category)[9:].lower() for f in response.findings],
        encoding=response.encoding.name,
        source=textmend_pb2.EncodingInfo.Source.Name(response.encoding.source)[7:].lower(),
        verdict=textmend_pb2.Verdict.Name(response.verdict)[8:].lower(),
    )


def _outcome(response: textmend_pb2.RepairResponse) -> str:
    """A short summary of a response for the log."""
    if response.HasField("error"):
        return response.error.code
    return (
        f"{textmend_pb2.Verdict.Name(response.verdict)} encoding={response.encoding.name} "
        f"edits={len(response.edits)} findings={len(response.findings)}"
    )


# --- the servicer ----------------------------------------------------------------------------


class TextMendServicer(textmend_pb2_grpc.TextMendServicer):
    """`textmend.v1.TextMend`: each method is request -> engine -> response."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config

    def _repair(
        self,
        request: textmend_pb2.RepairRequest,
        context: grpc.ServicerContext,
        method: str,
    ) -> textmend_pb2.RepairResponse:
        """Repair one document, or return an error response saying why it could not be.

        The engine asks between blocks of work whether the caller is still there, so a call
        whose deadline passed or that was cancelled stops using the CPU.
        """
        started = time.perf_counter()
        remaining = context.time_remaining()
        deadline = None if remaining is None else started + remaining
        try:
            repaired = repair_request(request, self._config, lambda: not context.is_active())
            response = to_response(repaired, request.id)
        except Exception as exc:
            code, message = classify_error(exc)
            if code is grpc.StatusCode.INTERNAL:
                _log_unexpected(exc, request)
            if code is grpc.StatusCode.CANCELLED:
                now = time.perf_counter()
                _LOGGER.info(
                    "repair id=%r abandoned after %.2f s (%s): the caller cancelled or its "
                    "deadline passed",
                    request.id,
                    now - started,
                    "no deadline" if deadline is None else f"{now - deadline:.2f} s past deadline",
                )
            response = error_response(request.id, code, message)
        _log_done(request, _outcome(response), started)
        _observe(method, request, response, time.perf_counter() - started)
        return response

    def Repair(
        self, request: textmend_pb2.RepairRequest, context: grpc.ServicerContext
    ) -> textmend_pb2.RepairResponse:
        """Repair one document; failures leave as the status code the proto documents."""
        _abort_if_expired(context)
        response = self._repair(request, context, "Repair")
        if response.HasField("error"):
            context.abort(grpc.StatusCode[response.error.code], response.error.message)
        if not context.is_active():
            _LOGGER.debug("repair id=%r finished after the caller gave up", request.id)
        return response

    def RepairStream(
        self,
        request_iterator: Iterable[textmend_pb2.RepairRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[textmend_pb2.RepairResponse]:
        """Repair documents as they arrive, one response per request, errors per document."""
        count = 0
        for request in request_iterator:
            if not context.is_active():
                _LOGGER.debug("stream cancelled by the caller after %d documents", count)
                return
            _abort_if_expired(context)
            response = self._repair(request, context, "RepairStream")
            if response.error.code == grpc.StatusCode.CANCELLED.name:
                return
            yield response
            count += 1
        _LOGGER.debug("stream finished: %d documents", count)


def _abort_if_expired(context: grpc.ServicerContext) -> None:
    """Abort with DEADLINE_EXCEEDED when the caller's deadline has already passed."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the caller's deadline passed")


# --- the server ------------------------------------------------------------------------------

VERSION_METADATA = (("textmend-version", __version__),)


class _VersionInterceptor(grpc.ServerInterceptor):
    """Sends `textmend-version` as initial metadata on every call, health and reflection
    included, so a caller or a proxy can tell which release answered."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                return handler._replace(**{kind: _with_version(behaviour)})
        return handler


def _with_version(behaviour: Callable[..., object]) -> Callable[..., object]:
    def wrapped(request_or_iterator: object, context: grpc.ServicerContext) -> object:
        context.send_initial_metadata(VERSION_METADATA)
        return behaviour(request_or_iterator, context)

    return wrapped


def server_options(config: ServerConfig) -> list[tuple[str, int]]:
    """gRPC channel arguments for a server built from config."""
    return [
        ("grpc.max_receive_message_length", config.max_receive_bytes),
        ("grpc.max_send_message_length", config.max_send_bytes),
        ("grpc.so_reuseport", 1 if config.reuse_port else 0),
    ]


def warm_up() -> None:
    """Load the engine's tables and models so that the first real request does not wait."""
    started = time.perf_counter()
    engine.warm_up()
    _LOGGER.debug("engine warmed up in %.0f ms", (time.perf_counter() - started) * 1000)


def create_server(
    address: str,
    config: ServerConfig,
    health_servicer: health.HealthServicer | None = None,
) -> tuple[grpc.Server, int]:
    """Build, bind and start a server on address; return it and the port it bound.

    Health reports NOT_SERVING until the engine has warmed up, then SERVING, for both the
    overall server ("") and `textmend.v1.TextMend`. Pass health_servicer to drive it later
    (`enter_graceful_shutdown()` before `server.stop(grace)`). Bind "127.0.0.1:0" in tests.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="textmend"),
        options=server_options(config),
        interceptors=[_VersionInterceptor()],
    )
    textmend_pb2_grpc.add_TextMendServicer_to_server(TextMendServicer(config), server)
    health_servicer = health_servicer or health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise OSError(f"cannot bind {address}: the address is in use or not available here")
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    server.start()
    if config.warm_up:
        warm_up()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port


__all__ = [
    "SERVICE_NAME",
    "ServerConfig",
    "TextMendServicer",
    "classify_error",
    "create_server",
    "error_response",
    "policy_from_request",
    "to_category",
    "to_edit",
    "to_encoding_info",
    "to_response",
    "to_source",
    "to_timings",
    "to_verdict",
]
