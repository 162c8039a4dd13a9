"""The server's interceptors, outermost first: the version every answer carries, the bearer
token a `textmend.v1.TextMend` call must present, and admission (limits and start-up).

Each wraps the one behaviour of the handler gRPC found for a call (`_HandlerInterceptor`), so
it runs on the call's own thread, and answers a refusal with a status code and a trailer a
caller can act on; the trailer keys are named here.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from typing import Any, NoReturn

import grpc

from textmend_server import __version__
from textmend_server.admission import (
    Admission,
    IdleLimitedRequests,
    Malformed,
    NoRequest,
    StreamIdle,
    call_kind,
    read_request,
    tolerant,
)
from textmend_server.config import ServerConfig
from textmend_server.convert import SERVICE_NAME

_LOGGER = logging.getLogger(__name__)

#: Metadata every answer carries: initial metadata with the first response, trailing metadata
#: on a call that fails.
VERSION_METADATA = (("textmend-version", __version__),)
#: Trailing metadata key of a call refused because its worker runs as many calls of its kind as
#: it may (UNAVAILABLE); its value is the flag that sets the limit (`--max-calls`, ...).
BUSY_METADATA = "textmend-busy"
#: How long a short call (a health `Check`, reflection's unary calls) may take to send its
#: one request, in seconds: a few bytes, sent with the call's headers by every client seen. One
#: that sends none holds one of its worker's `--threads` places meanwhile; under
#: `--stream-idle-seconds` (60 s) a caller with no token needed to open only eight such calls a
#: minute per worker to keep its health checks refused, and Kubernetes's probes failing. It
#: must now open them four times a second. A first-version choice: about seven times the
#: slowest health answer seen while the server was under hostile traffic on a loaded 2-core
#: machine (0.29 s).
SHORT_REQUEST_SECONDS = 2.0
#: Trailing metadata key of a stream ended because it sent nothing for `--stream-idle-seconds`
#: (UNAVAILABLE); its value is that limit. Every request it had sent was answered.
STREAM_IDLE_METADATA = "textmend-stream-idle"
#: Trailing metadata key of a call refused because its worker is still starting (UNAVAILABLE,
#: health NOT_SERVING); nothing was done, and another worker or a moment later will serve it.
STARTING_METADATA = "textmend-starting"


def abort_with(
    context: grpc.ServicerContext, code: grpc.StatusCode, message: str, trailer: tuple[str, str]
) -> NoReturn:
    """End the call with code and message, its trailers carrying the version and trailer (the
    key a caller acts on, and its value)."""
    context.set_trailing_metadata((*VERSION_METADATA, trailer))
    context.abort(code, message)
    raise AssertionError("context.abort returned")  # it always raises


# The attributes of `grpc.RpcMethodHandler` that hold its behaviour; exactly one is set.
_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")

#: A handler's behaviour: (request or request iterator, context) -> response or responses.
Behaviour = Callable[..., Any]


class _HandlerInterceptor(grpc.ServerInterceptor):
    """An interceptor that may replace the behaviour of each handler gRPC finds (`_intercept`);
    a call to an unknown method (no handler) passes untouched."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return self._intercept(handler, handler_call_details)

    def _intercept(
        self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        raise NotImplementedError


def _replace_behaviour(
    handler: grpc.RpcMethodHandler, wrap: Callable[[Behaviour, bool], Behaviour]
) -> grpc.RpcMethodHandler:
    """handler with its behaviour replaced by wrap(behaviour, response_streaming)."""
    for kind in _KINDS:
        behaviour = getattr(handler, kind)
        if behaviour is not None:
            return handler._replace(**{kind: wrap(behaviour, handler.response_streaming)})
    return handler


# --- version ---------------------------------------------------------------------------------


class VersionInterceptor(_HandlerInterceptor):
    """Sends `textmend-version` as initial metadata on every call, health and reflection
    included, so a caller or a proxy can tell which release answered.

    The headers go out with the first response, not when the call starts: a client may retry
    a call only until it has received headers, so a worker that dies mid-repair leaves the
    call retryable (`Repair` is retried on UNAVAILABLE by the client's service config). A call
    that fails carries the version in its trailers instead. A streaming behaviour may send
    them sooner (`RepairStream` does once it is admitted, so that its caller can tell a stream
    a worker took from one no worker would take); they go out once either way.
    """

    def _intercept(
        self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        return _replace_behaviour(handler, _with_version)


def _with_version(behaviour: Behaviour, streaming: bool) -> Behaviour:
    """behaviour, sending `VERSION_METADATA` with its first response (or its trailers)."""
    return _with_version_streaming(behaviour) if streaming else _with_version_unary(behaviour)


def _with_version_unary(behaviour: Behaviour) -> Behaviour:
    def wrapped(request_or_iterator: object, context: grpc.ServicerContext) -> object:
        context.set_trailing_metadata(VERSION_METADATA)  # for a call that fails
        response = behaviour(request_or_iterator, context)
        context.send_initial_metadata(VERSION_METADATA)
        return response

    return wrapped


class _HeadersOnce:
    """A call's context whose initial metadata carries the version and goes out once: when the
    behaviour asks (`send_initial_metadata`) or with the first response, whichever is first.
    Everything else is the call's own context."""

    def __init__(self, context: grpc.ServicerContext) -> None:
        self._context = context
        self.sent = False

    def send_initial_metadata(self, initial_metadata: Iterable[tuple[str, str]] = ()) -> None:
        if not self.sent:
            self.sent = True
            self._context.send_initial_metadata((*VERSION_METADATA, *initial_metadata))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _with_version_streaming(behaviour: Callable[..., Iterator[object]]) -> Behaviour:
    def wrapped(request_or_iterator: object, context: grpc.ServicerContext) -> Iterator[object]:
        context.set_trailing_metadata(VERSION_METADATA)  # for a call that fails
        headers = _HeadersOnce(context)
        for response in behaviour(request_or_iterator, headers):
            headers.send_initial_metadata()
            yield response

    return wrapped


# --- bearer token ----------------------------------------------------------------------------

_UNAUTHENTICATED_MESSAGE = (
    "this server requires a bearer token: send the metadata 'authorization: Bearer <token>' "
    "(textmend --token-file PATH, or TextMendClient(token=...))"
)
_WRONG_TOKEN_MESSAGE = "the bearer token is not valid for this server"


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class AuthInterceptor(_HandlerInterceptor):
    """Refuses `textmend.v1.TextMend` calls without `authorization: Bearer <token>`.

    The presented and expected tokens are compared as SHA-256 digests with
    `hmac.compare_digest`, so neither the time taken nor the length reveals the token. Health
    checks and reflection are not checked: probes carry no secrets.
    """

    def __init__(self, token: str) -> None:
        self._expected = _digest(token.encode("ascii"))
        self._prefix = f"/{SERVICE_NAME}/"

    def _intercept(
        self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        if not details.method.startswith(self._prefix):
            return handler
        message = self._refusal(details.invocation_metadata or ())
        if message is None:
            return handler
        return _replace_behaviour(handler, lambda _behaviour, _streaming: _refuse(message))

    def _refusal(self, metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
        """None when the metadata carries the right token, else why the call is refused."""
        values = [value for key, value in metadata if key == "authorization"]
        if not values:
            return _UNAUTHENTICATED_MESSAGE
        value = values[0] if isinstance(values[0], bytes) else _header_bytes(values[0])
        scheme, _, token = value.partition(b" ")
        if scheme.lower() != b"bearer":
            return _UNAUTHENTICATED_MESSAGE
        if not hmac.compare_digest(_digest(token.strip()), self._expected):
            return _WRONG_TOKEN_MESSAGE
        return None


def _header_bytes(value: str) -> bytes:
    """A metadata value as the bytes that were sent: gRPC hands text headers over as str, read
    as Latin-1, but a client may send UTF-8 (`Bearer €`), which no Latin-1 token equals."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _refuse(message: str) -> Behaviour:
    def refused(_request_or_iterator: object, context: grpc.ServicerContext) -> object:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return refused


# --- admission -------------------------------------------------------------------------------


class AdmissionInterceptor(_HandlerInterceptor):
    """Applies `Admission` to every call, and the idle limit to every request stream.

    A refused call gets UNAVAILABLE with `busy_message` and the `textmend-busy` trailer, before
    any response header, so gRPC clients with a retry policy (the bundled one, Envoy) may retry
    it. A stream idle for `stream_idle_seconds` ends with UNAVAILABLE and the
    `textmend-stream-idle` trailer. The count is taken and given back on the call's own thread,
    so a handler that never runs (an interceptor outside this one refused the call) holds
    nothing.

    A unary method is served as a request stream of one message (`_unary_request_first`), so
    that the call is counted, or refused, before its request is read, and a request that does
    not come within the idle limit ends the call: gRPC would otherwise wait for it on a pool
    thread for as long as the connection lives. Callers see no difference on the wire.
    """

    def __init__(self, config: ServerConfig) -> None:
        self._admission = Admission(config)
        self._idle = config.stream_idle_seconds
        self._ready = threading.Event()
        # One reader per unary call that can be waiting for its request: never more than the
        # calls gRPC lets in at once.
        self._readers = futures.ThreadPoolExecutor(
            max_workers=config.pool_threads, thread_name_prefix="textmend-read"
        )

    def ready(self) -> None:
        """The engine is warm: admit `textmend.v1.TextMend` calls from now on (until then they
        are refused with UNAVAILABLE and the `textmend-starting` trailer)."""
        self._ready.set()

    def _intercept(
        self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        kind = call_kind(details.method, handler)
        handler = handler._replace(request_deserializer=tolerant(handler.request_deserializer))
        if not handler.request_streaming:
            return self._unary_request_first(handler, kind)

        def wrap(behaviour: Behaviour, streaming: bool) -> Behaviour:
            return (self._streaming if streaming else self._unary)(behaviour, kind, True)

        return _replace_behaviour(handler, wrap)

    def _unary_request_first(
        self, handler: grpc.RpcMethodHandler, kind: str
    ) -> grpc.RpcMethodHandler:
        """handler, served as a request stream whose call is admitted before its one request
        is read (`read_request`); what the behaviour sees is unchanged."""
        if handler.response_streaming:
            return handler._replace(
                request_streaming=True,
                unary_stream=None,
                stream_stream=self._streaming(handler.unary_stream, kind, False),
            )
        return handler._replace(
            request_streaming=True,
            unary_unary=None,
            stream_unary=self._unary(handler.unary_unary, kind, False),
        )

    def _refuse_starting(self, context: grpc.ServicerContext) -> None:
        abort_with(
            context,
            grpc.StatusCode.UNAVAILABLE,
            "this server worker is starting and reports NOT_SERVING: nothing was done; retry "
            "after a short backoff or on another connection (the textmend client does so by "
            "itself within its deadline)",
            (STARTING_METADATA, "1"),
        )

    def _refuse(self, kind: str, context: grpc.ServicerContext) -> None:
        flag = Admission.KINDS[kind][1]
        _LOGGER.debug(
            "refused a call: %d %s calls running (%s)", self._admission.running(kind), kind, flag
        )
        abort_with(
            context,
            grpc.StatusCode.UNAVAILABLE,
            self._admission.busy_message(kind),
            (BUSY_METADATA, flag),
        )

    def _idle_ended(self, context: grpc.ServicerContext, unary: bool, seconds: float) -> None:
        if unary and seconds < self._idle:
            message = (
                f"this call sent no request for {seconds:g} s, the server's limit for a "
                "health check or another short call: nothing was done; send the request with "
                "the call's headers"
            )
        elif unary:
            message = (
                f"this call sent no request for {self._idle:g} s, the server's limit "
                "(--stream-idle-seconds): nothing was done; send the request with the call's "
                "headers, or raise the server's --stream-idle-seconds"
            )
        else:
            message = (
                f"this stream sent no request for {self._idle:g} s while none of its documents "
                "was being repaired, the server's limit (--stream-idle-seconds); every request "
                "it sent was answered: open a new stream when there is more to send, or raise "
                "the server's --stream-idle-seconds"
            )
        abort_with(
            context,
            grpc.StatusCode.UNAVAILABLE,
            message,
            (STREAM_IDLE_METADATA, f"{seconds:g}"),
        )

    def _well_formed(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        """requests, ending the call at the first that did not parse."""
        for number, request in enumerate(requests, 1):
            if isinstance(request, Malformed):
                self._malformed(context, request, number)
            yield request

    def _malformed(self, context: grpc.ServicerContext, request: Malformed, number: int) -> None:
        """End the call with INVALID_ARGUMENT: request number (0: a unary call's only one)
        did not parse."""
        if number == 0:
            message = f"the request is not a valid message of this method's type ({request.error})"
        else:
            message = (
                f"request {number} of this stream is not a valid message of this method's type "
                f"({request.error}): the stream ends here; every request before it was answered"
            )
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)

    @contextlib.contextmanager
    def _admitted(
        self, kind: str, request_streaming: bool, request_or_iterator: Any, context: Any
    ) -> Iterator[Any]:
        """Admit one call of kind (or refuse it), yield what its behaviour reads (a request
        stream under the idle limit, or a unary call's one request), and give its place back
        however it ends."""
        if kind not in ("admin", "short") and not self._ready.is_set():
            self._refuse_starting(context)
        if not self._admission.enter(kind):
            self._refuse(kind, context)
        requests = (
            IdleLimitedRequests(request_or_iterator, self._idle) if request_streaming else None
        )
        wait = min(self._idle, SHORT_REQUEST_SECONDS) if kind == "short" else self._idle
        try:
            if requests is None:
                request = read_request(request_or_iterator, wait, self._readers)
                if isinstance(request, Malformed):
                    self._malformed(context, request, 0)
                yield request
            else:
                yield self._well_formed(requests, context)
        except StreamIdle:
            self._idle_ended(context, unary=requests is None, seconds=wait)
        except NoRequest:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "this call ended its request stream without a request: a unary method takes "
                "exactly one",
            )
        finally:
            if requests is not None:
                requests.close()
            self._admission.leave(kind)

    def _unary(self, behaviour: Behaviour, kind: str, request_streaming: bool) -> Behaviour:
        def admitted(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
            with self._admitted(kind, request_streaming, request_or_iterator, context) as reads:
                return behaviour(reads, context)

        return admitted

    def _streaming(self, behaviour: Behaviour, kind: str, request_streaming: bool) -> Behaviour:
        def admitted(request_or_iterator: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with self._admitted(kind, request_streaming, request_or_iterator, context) as reads:
                yield from behaviour(reads, context)

        return admitted


__all__ = [
    "BUSY_METADATA",
    "STARTING_METADATA",
    "STREAM_IDLE_METADATA",
    "VERSION_METADATA",
    "AdmissionInterceptor",
    "AuthInterceptor",
    "VersionInterceptor",
    "abort_with",
]
