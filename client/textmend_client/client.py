"""A small, typed client for the textmend gRPC service.

    >>> with TextMendClient("localhost:50051") as client:     # doctest: +SKIP
    ...     response = client.repair("cafÃ© â€” itâ€™s")
    ...     response.text
    'café — it’s'

Every call carries a deadline (`timeout`, in seconds). RPC failures surface as `TextMendError`
subclasses with the status code and the server's message, never as bare `grpc.RpcError`. The
client uses only gRPC and the generated stubs; it does not need the engine installed.

Load balancing: gRPC keeps one long-lived HTTP/2 connection per channel, and a
`textmend-server` with several workers hands each connection to one worker (SO_REUSEPORT), as
does a plain TCP balancer in front of replicas. So the client opens `channels` connections
(default `DEFAULT_CHANNELS`): `repair` sends each call over the channel with the fewest calls
in flight, and `repair_stream` runs one stream per channel, each holding at most `window`
documents in flight and taking the next document when one comes back, so a busy worker is
simply given fewer documents. Give a `dns:///host:port` target whose name resolves to every
replica (a headless Kubernetes Service, a compose service name) and each channel also spreads
its calls over all of them (`round_robin`, set in the channel's service config).

Failures that are safe to retry are retried, since repair is idempotent: `repair` on
UNAVAILABLE (a worker that died, a replica going away, or a worker refusing a call because it
runs as many as its `--max-calls` allows) and on gRPC's own concurrency refusal, after a
growing, jittered pause, for as long as the call's deadline allows; `repair_stream` resends the
documents a broken stream had not answered on a new stream, when the stream failed
UNAVAILABLE, was refused as busy, was closed for idleness, or reached the server's
`--max-stream-documents`. Each document still gets exactly one response.

Security: `tls_ca` (and, for mutual TLS, `tls_cert` and `tls_key`) switch the connections to
TLS; `token` is sent as `authorization: Bearer <token>` on every call.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import json
import operator
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from textmend.v1 import textmend_pb2, textmend_pb2_grpc

MIB = 1024 * 1024

#: Default deadline of one `repair` or `health` call, in seconds.
DEFAULT_TIMEOUT = 30.0
#: Default deadline of a whole `repair_stream` call, in seconds.
DEFAULT_STREAM_TIMEOUT = 3600.0
#: Default number of connections. The kernel spreads connections over a server's workers by a
#: hash, so more connections than workers are needed for every worker to get one: with 2
#: workers, 4 connections all land on the same one 1 time in 8, 8 connections 1 in 128.
DEFAULT_CHANNELS = 8
#: Default number of documents each stream of `repair_stream` keeps in flight: enough to hide
#: the network round trip, few enough that a slow worker does not hoard documents.
DEFAULT_WINDOW = 4

#: How long `repair_stream` keeps reopening a broken stream without getting any response, in
#: seconds, before it gives up: long enough for a worker to be restarted.
STREAM_RETRY_SECONDS = 30.0

_SERVICE = "textmend.v1.TextMend"
# Trailing metadata of a stream the server ended at its --max-stream-documents.
_STREAM_LIMIT_METADATA = "textmend-stream-limit"
# Trailing metadata of a stream the server ended after --stream-idle-seconds without a request.
_STREAM_IDLE_METADATA = "textmend-stream-idle"
# Trailing metadata of a call refused because its worker had not finished starting (NOT_SERVING).
_STARTING_METADATA = "textmend-starting"
# What gRPC's server says when a call exceeds its `maximum_concurrent_rpcs` (the server's
# backstop behind its own limits): a refusal to retry, not a document too large.
_CONCURRENCY_REFUSAL = "Concurrent RPC limit exceeded!"
# What gRPC says when a message exceeds a side's size limit, before textmend can say which flag.
_SIZE_REFUSALS = ("Sent message larger than max", "Received message larger than max")
#: Longest `RepairRequest.id` the server accepts, in characters (the proto's limit).
MAX_ID_CHARS = 2048
# Room for the request's other fields next to its content, as the server allows.
_ENVELOPE_BYTES = MIB
# A response (text, diff, edits) can be several times larger than its content.
_RESPONSE_SIZE_FACTOR = 4

_ACTIONS: Mapping[str, textmend_pb2.Policy.ValueType] = {
    "fix": textmend_pb2.POLICY_FIX,
    "flag": textmend_pb2.POLICY_FLAG,
    "off": textmend_pb2.POLICY_OFF,
}


# --- errors ----------------------------------------------------------------------------------


# The first pause before retrying a refused or dropped `repair`, doubling up to the longest;
# each pause is drawn between half and all of that, so refused callers do not return together.
# 0.25 s spans a worker restart's first moments; 2 s is gRPC's own maxBackoff in the service
# config below. Retries go on while the call's deadline allows.
_RETRY_PAUSE = 0.25
_RETRY_PAUSE_MAX = 2.0
# What gRPC says when it could open no connection at all (refused, TLS handshake failed).
_NO_CONNECTION = "connections to all backends failing"


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


class TooLarge(TextMendError):
    """RESOURCE_EXHAUSTED: the document is larger than the server (or this client) accepts."""


class Unavailable(TextMendError):
    """UNAVAILABLE: no server could be reached, it is shutting down, or it stayed busy (at its
    `--max-calls` or `--max-streams`) until the deadline; safe to retry."""


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


def error_from_rpc(error: grpc.RpcError, target: str = "") -> TextMendError:
    """Translate a `grpc.RpcError` (threaded or asyncio) into its `TextMendError` subclass."""
    # Threaded calls are `grpc.Call`s; asyncio calls raise `grpc.aio.AioRpcError`.
    is_call = isinstance(error, grpc.Call | grpc.aio.AioRpcError)
    code = error.code() if is_call else grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
    details = (error.details() if is_call else None) or str(error)  # type: ignore[attr-defined]
    trailers = (error.trailing_metadata() if is_call else None) or ()  # type: ignore[attr-defined]
    refused_busy = any(
        key in {"textmend-busy", _STREAM_IDLE_METADATA, _STARTING_METADATA} for key, _ in trailers
    )
    if code is grpc.StatusCode.UNAVAILABLE and target and not refused_busy:
        details = f"cannot reach the textmend server at {target}: {details}"
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and any(r in details for r in _SIZE_REFUSALS):
        side = "this client's max_message_mb" if _SIZE_REFUSALS[0] in details else "the server's"
        details = (
            f"{details}: the request is larger than {side} limit allows (the document plus 1 MiB "
            "for the other fields): split the document, or raise the server's --max-message-mb "
            "and the client's max_message_mb together"
        )
    return _ERRORS.get(code, TextMendError)(code, details)


def is_busy_refusal(error: grpc.RpcError) -> bool:
    """Whether a call was refused without being worked on, so that retrying it later may
    succeed: UNAVAILABLE (a worker at its `--max-calls`, still starting (NOT_SERVING), dead or
    going away; not when no connection could be made, which gRPC has already retried), or
    gRPC's own concurrency refusal (RESOURCE_EXHAUSTED, which otherwise means a document too
    large to retry)."""
    if not isinstance(error, grpc.aio.AioRpcError | grpc.Call):
        return False
    code, details = error.code(), error.details() or ""
    if code is grpc.StatusCode.UNAVAILABLE:
        return _NO_CONNECTION not in details
    return code is grpc.StatusCode.RESOURCE_EXHAUSTED and details == _CONCURRENCY_REFUSAL


# --- requests --------------------------------------------------------------------------------


def policy_map(policy: Mapping[str, str] | None) -> dict[str, textmend_pb2.Policy.ValueType]:
    """Turn `{"mojibake": "flag"}` into the request's `policy` map of `Policy` values.

    Category names are checked by the server, which takes them in lower case only; this
    function lowers them, so `--policy MOJIBAKE=flag` works. Actions must be fix, flag or off.

    >>> policy_map({"Mojibake": "FLAG"}) == {"mojibake": textmend_pb2.POLICY_FLAG}
    True
    """
    result: dict[str, textmend_pb2.Policy.ValueType] = {}
    for name, action in (policy or {}).items():
        try:
            result[str(name).lower()] = _ACTIONS[str(action).lower()]
        except KeyError:
            raise ValueError(
                f"unknown action {action!r} for {name!r} in policy; use fix, flag or off"
            ) from None
    return result


def _content_bytes(content: bytes | bytearray | memoryview | str) -> bytes:
    """Bytes are sent as they are; text is sent as UTF-8."""
    if isinstance(content, str):
        return content.encode("utf-8")
    if isinstance(content, bytes | bytearray | memoryview):
        return bytes(content)
    raise TypeError(
        f"content must be bytes (the document as fetched) or str, not {type(content).__name__}"
    )


def make_request(
    content: bytes | str,
    *,
    id: str = "",
    declared_encoding: str = "",
    content_type: str = "",
    policy: Mapping[str, str] | None = None,
    omit_diff: bool = False,
) -> textmend_pb2.RepairRequest:
    """Build a `RepairRequest`; str content is sent as UTF-8.

    An id longer than the server accepts (`MAX_ID_CHARS`) raises ValueError here rather than
    travelling to be refused.
    """
    if len(id) > MAX_ID_CHARS:
        raise ValueError(
            f"id is {len(id)} characters, over the server's limit of {MAX_ID_CHARS}: use a "
            "shorter id (a hash of a long name, for example)"
        )
    return textmend_pb2.RepairRequest(
        id=id,
        content=_content_bytes(content),
        declared_encoding=declared_encoding,
        content_type=content_type,
        policy=policy_map(policy),
        omit_diff=omit_diff,
    )


def as_request(item: textmend_pb2.RepairRequest | Mapping[str, Any]) -> textmend_pb2.RepairRequest:
    """Accept a `RepairRequest`, or a mapping as in JSON Lines input.

    The mapping holds `id` and one of `text` (str), `content` (bytes or str) or `content_b64`,
    plus optional `declared_encoding`, `content_type`, `policy` and `omit_diff`.

    >>> as_request({"id": 7, "content_b64": "aGk="}).content
    b'hi'
    """
    if isinstance(item, textmend_pb2.RepairRequest):
        return item
    if not isinstance(item, Mapping):
        raise TypeError(f"expected a RepairRequest or a mapping, not {type(item).__name__}")
    sources = [key for key in ("text", "content", "content_b64") if key in item]
    if len(sources) != 1:
        raise ValueError('give exactly one of "text", "content" or "content_b64"')
    if sources == ["content_b64"]:
        try:
            content: bytes | str = base64.b64decode(item["content_b64"], validate=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f'"content_b64" is not valid base64: {exc}') from None
    else:
        content = item[sources[0]]
        if sources == ["text"] and not isinstance(content, str):
            raise ValueError('"text" must be a string')
    return make_request(
        content,
        id=str(item.get("id", "")),
        declared_encoding=str(item.get("declared_encoding") or ""),
        content_type=str(item.get("content_type") or ""),
        policy=item.get("policy"),
        omit_diff=bool(item.get("omit_diff", False)),
    )


# --- the client ------------------------------------------------------------------------------


def channel_options(max_message_mb: int) -> list[tuple[str, Any]]:
    """Channel arguments: message limits matching the server's, round_robin, retries.

    `Repair` is retried on UNAVAILABLE (a worker that died, a replica going away mid-rollout);
    it is idempotent. A retry is possible only until the response's headers arrive, which the
    server sends with the response, and for requests within the per-call retry buffer, set to
    the largest request.
    Each channel gets its own subchannel pool: otherwise gRPC shares one connection among
    channels with the same target and arguments, and every call would reach one worker.
    """
    send_limit = max_message_mb * MIB + _ENVELOPE_BYTES
    service_config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": _SERVICE, "method": "Repair"}],
                # 5 is gRPC's most; the waits (random up to 0.2, 0.4, 0.8, 1.6 s) span a
                # reconnection to another worker or replica.
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
    return [
        ("grpc.max_send_message_length", send_limit),
        ("grpc.max_receive_message_length", send_limit * _RESPONSE_SIZE_FACTOR),
        ("grpc.service_config", json.dumps(service_config)),
        ("grpc.enable_retries", 1),
        # gRPC keeps a call's request for retrying only up to this size (256 KiB by default),
        # and commits larger ones to their first attempt: documents are larger.
        ("grpc.per_rpc_retry_buffer_size", send_limit),
        ("grpc.use_local_subchannel_pool", 1),
    ]


def _pem(source: bytes | str | os.PathLike[str] | None) -> bytes | None:
    """PEM data: bytes as they are, a str or path read from that file."""
    if source is None or isinstance(source, bytes):
        return source
    with open(source, "rb") as handle:
        return handle.read()


def channel_credentials(
    tls_ca: bytes | str | os.PathLike[str] | None = None,
    tls_cert: bytes | str | os.PathLike[str] | None = None,
    tls_key: bytes | str | os.PathLike[str] | None = None,
) -> grpc.ChannelCredentials:
    """TLS credentials: trust tls_ca (PEM bytes or a file; None for the system's roots) and,
    for mutual TLS, present tls_cert with its tls_key."""
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("a client certificate needs its private key: give tls_cert and tls_key")
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(tls_ca),
        private_key=_pem(tls_key),
        certificate_chain=_pem(tls_cert),
    )


def is_resumable(error: BaseException) -> bool:
    """Whether a failed stream's unanswered documents may be resent on a new stream.

    UNAVAILABLE (the connection or the worker went away, the worker was at its `--max-streams`,
    or the stream was closed after `--stream-idle-seconds` without a request), INTERNAL raised
    by gRPC's own core rather than by the server (a stream torn down while a write was in
    flight), RESOURCE_EXHAUSTED with the server's stream-limit trailer, or gRPC's own
    concurrency refusal; any other RESOURCE_EXHAUSTED is a document too large to send, which
    resending would only repeat. Resending is safe: repair is idempotent.
    """
    if not isinstance(error, grpc.aio.AioRpcError | grpc.Call):
        return False
    code = error.code()
    if code is grpc.StatusCode.UNAVAILABLE:
        return True
    if code is grpc.StatusCode.INTERNAL:
        return (error.details() or "") == "Internal error from Core"
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        trailers = error.trailing_metadata() or ()
        return (error.details() or "") == _CONCURRENCY_REFUSAL or any(
            key == _STREAM_LIMIT_METADATA for key, _ in trailers
        )
    return False


def is_idle_close(error: BaseException) -> bool:
    """Whether the server closed a stream because it sent nothing for `--stream-idle-seconds`
    (every request it had sent was answered): not a failure, just a stream to open again."""
    if not isinstance(error, grpc.aio.AioRpcError | grpc.Call):
        return False
    trailers = error.trailing_metadata() or ()
    return any(key == _STREAM_IDLE_METADATA for key, _ in trailers)


# --- streams over several connections ------------------------------------------------------

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")

_DONE = object()


class BackgroundLoop:
    """An asyncio event loop on a daemon thread, where a client's streams run.

    All streams of a client share this one thread: gRPC's asyncio API moves a message with
    far fewer thread switches than its threaded API, which spends a thread per stream and per
    direction and makes them take turns at the GIL.
    """

    def __init__(self, name: str = "textmend-io") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(
        self, coroutine: Coroutine[Any, Any, _Response]
    ) -> concurrent.futures.Future[_Response]:
        """Schedule coroutine on the loop; the returned future can be waited on or cancelled."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        """Stop the loop and its thread (streams still running are abandoned)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


def fan_out(
    background: BackgroundLoop,
    openers: Sequence[Callable[[], Any]],
    items: Iterable[Any],
    convert: Callable[[Any], _Request],
    *,
    window: int = DEFAULT_WINDOW,
    resumable: Callable[[BaseException], bool] | None = None,
    retry_seconds: float = STREAM_RETRY_SECONDS,
    key: Callable[[Any], Any] = operator.attrgetter("id"),
) -> Iterator[_Response]:
    """Send items over several bidirectional streams at once; yield every response.

    Each opener, called on the background loop, starts one `grpc.aio` stream-stream call.
    Items are taken from `items` one at a time (on the loop's thread, so the iterable should
    not block for long) by whichever stream has fewer than `window` requests awaiting a
    response, so each stream, and the worker behind its connection, gets documents as fast as
    it answers them. `convert` turns an item into a request; an exception it raises ends the
    whole call and is raised here. Responses come in the order they arrive.

    A stream that fails with an error `resumable` accepts is opened again (with the same
    opener, after a short backoff), and the requests it had sent without getting their
    responses are sent again first, matched by `key` (`id` by default), so every request
    still gets exactly one response. It gives up when a stream has had no response for
    `retry_seconds`. Stopping iteration early, or any other failure, cancels every stream;
    a stream's `grpc.RpcError` is raised here.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, not {window}")
    source = iter(items)
    resend: collections.deque[Any] = collections.deque()
    arrivals: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def take() -> Any:
        """The next request: one a broken stream left unanswered first, then a new one."""
        if resend:
            return resend.popleft()
        try:
            return convert(next(source))
        except StopIteration:
            return None

    async def one_call(
        call: Any, outstanding: dict[Any, collections.deque[Any]], answered: list[int]
    ) -> None:
        """Run one stream to its end; requests awaiting a response stay in outstanding."""
        free = asyncio.Semaphore(window)

        async def send() -> None:
            while True:
                await free.acquire()
                request = take()
                if request is None:
                    break
                outstanding.setdefault(key(request), collections.deque()).append(request)
                try:
                    await call.write(request)
                except (grpc.RpcError, asyncio.InvalidStateError):
                    return  # the call ended; reading it reports why
            with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
                await call.done_writing()

        def stop_if_failed(task: asyncio.Future[None]) -> None:
            # A request that cannot be built ends the call, which would otherwise wait for
            # more requests forever.
            if not task.cancelled() and task.exception() is not None:
                call.cancel()

        sender = asyncio.ensure_future(send())
        sender.add_done_callback(stop_if_failed)
        try:
            async for response in call:
                free.release()
                waiting = outstanding.get(key(response))
                if waiting:
                    waiting.popleft()
                    if not waiting:
                        del outstanding[key(response)]
                answered[0] += 1
                arrivals.put(response)
            await sender
        except (asyncio.CancelledError, grpc.RpcError):
            if sender.done() and not sender.cancelled() and sender.exception() is not None:
                raise sender.exception() from None  # type: ignore[misc]
            raise
        finally:
            sender.cancel()
            call.cancel()

    async def one_stream(opener: Callable[[], Any]) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        last_progress = loop.time()
        while True:
            outstanding: dict[Any, collections.deque[Any]] = {}
            answered = [0]
            try:
                await one_call(opener(), outstanding, answered)
                return
            except grpc.RpcError as exc:
                if answered[0] or is_idle_close(exc):
                    failures, last_progress = 0, loop.time()
                if resumable is None or not resumable(exc):
                    raise
                if loop.time() - last_progress > retry_seconds:
                    raise
                for waiting in outstanding.values():
                    resend.extendleft(reversed(waiting))
                failures += 1
                await asyncio.sleep(min(2.0, 0.05 * 2**failures))

    async def all_streams() -> None:
        tasks = [asyncio.ensure_future(one_stream(opener)) for opener in openers]
        try:
            await asyncio.gather(*tasks)
        except BaseException as exc:
            for task in tasks:
                task.cancel()
            arrivals.put(exc)
        finally:
            arrivals.put(_DONE)

    future = background.run(all_streams())
    try:
        while True:
            arrived = arrivals.get()
            if arrived is _DONE:
                break
            if isinstance(arrived, BaseException):
                raise arrived
            yield arrived
    finally:
        future.cancel()


class TextMendClient:
    """A connection to a textmend server (or, with a `dns:///` target, to all its replicas).

    Use it as a context manager, or call `close()`. `timeout` is the deadline of each unary
    call in seconds; `max_message_mb` should match the server's `--max-message-mb`.
    `channels` is how many connections to open (lazily, on first use), at least twice the
    server's worker count to keep every worker busy; `window` is how many documents each
    stream of `repair_stream` keeps in flight. Safe to share between threads.

    TLS is on when `tls` is True or any of `tls_ca`, `tls_cert` is given: `tls_ca` is the CA
    that signed the server's certificate (PEM bytes or a file path; None trusts the system's
    roots), and `tls_cert` with `tls_key` is this client's certificate, for a server that
    requires one (mutual TLS). `token` is sent as `authorization: Bearer <token>` on every
    call; send it over TLS only, as plaintext lets anyone on the path read it.
    """

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_message_mb: int = 64,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
        channels: int = DEFAULT_CHANNELS,
        window: int = DEFAULT_WINDOW,
        tls: bool | None = None,
        tls_ca: bytes | str | os.PathLike[str] | None = None,
        tls_cert: bytes | str | os.PathLike[str] | None = None,
        tls_key: bytes | str | os.PathLike[str] | None = None,
        token: str | None = None,
    ) -> None:
        if timeout <= 0 or stream_timeout <= 0:
            raise ValueError("timeouts must be positive numbers of seconds")
        if channels < 1 or window < 1:
            raise ValueError("channels and window must be at least 1")
        if token is not None and (not token or any(not 33 <= ord(ch) <= 126 for ch in token)):
            raise ValueError("token must be printable ASCII without spaces (one line)")
        self.target = target
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.window = window
        if tls is None:
            tls = tls_ca is not None or tls_cert is not None
        self._credentials = channel_credentials(tls_ca, tls_cert, tls_key) if tls else None
        self._metadata: tuple[tuple[str, str], ...] | None = (
            (("authorization", f"Bearer {token}"),) if token is not None else None
        )
        options = channel_options(max_message_mb)
        self._channels = [self._channel(grpc, options) for _ in range(channels)]
        self._stubs = [textmend_pb2_grpc.TextMendStub(channel) for channel in self._channels]
        self._health = health_pb2_grpc.HealthStub(self._channels[0])
        # Calls in flight per channel; `repair` picks the least busy one.
        self._in_flight = [0] * channels
        self._lock = threading.Lock()
        # Streams run on their own asyncio channels, opened on first use.
        self._options = options
        self._channel_count = channels
        self._background: BackgroundLoop | None = None
        self._aio_channels: list[grpc.aio.Channel] = []
        self._stream_stubs: list[textmend_pb2_grpc.TextMendStub] = []

    def _channel(self, module: Any, options: list[tuple[str, Any]]) -> Any:
        """A channel from module (`grpc` or `grpc.aio`), secure when TLS is on."""
        if self._credentials is None:
            return module.insecure_channel(self.target, options=options)
        return module.secure_channel(self.target, self._credentials, options=options)

    def __enter__(self) -> TextMendClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channels; calls in progress are cancelled."""
        for channel in self._channels:
            channel.close()
        with self._lock:
            background, self._background = self._background, None
            channels, self._aio_channels = self._aio_channels, []
            self._stream_stubs = []
        if background is not None:

            async def close_channels() -> None:
                for channel in channels:
                    await channel.close()

            background.run(close_channels()).result(5)
            background.close()

    def _streams(self) -> tuple[BackgroundLoop, list[textmend_pb2_grpc.TextMendStub]]:
        """The background loop and one asyncio stub per channel, created on first use."""
        with self._lock:
            if self._background is None:
                background = BackgroundLoop()

                async def open_channels() -> list[grpc.aio.Channel]:
                    return [
                        self._channel(grpc.aio, self._options) for _ in range(self._channel_count)
                    ]

                self._aio_channels = background.run(open_channels()).result()
                self._stream_stubs = [
                    textmend_pb2_grpc.TextMendStub(channel) for channel in self._aio_channels
                ]
                self._background = background
            return self._background, self._stream_stubs

    def _acquire_channel(self) -> int:
        """The index of the channel with the fewest calls in flight, now counting one more."""
        with self._lock:
            index = min(range(len(self._in_flight)), key=self._in_flight.__getitem__)
            self._in_flight[index] += 1
            return index

    def _release_channel(self, index: int) -> None:
        with self._lock:
            self._in_flight[index] -= 1

    def repair(
        self,
        content: bytes | str,
        *,
        id: str = "",
        declared_encoding: str = "",
        content_type: str = "",
        policy: dict[str, str] | None = None,
        omit_diff: bool = False,
        timeout: float | None = None,
    ) -> textmend_pb2.RepairResponse:
        """Repair one document: bytes as fetched (or str, sent as UTF-8).

        Raises `InvalidInput`, `TooLarge`, `Unavailable`, `DeadlineExceeded` or
        `TextMendError`.
        """
        request = make_request(
            content,
            id=id,
            declared_encoding=declared_encoding,
            content_type=content_type,
            policy=policy,
            omit_diff=omit_diff,
        )
        # gRPC retries UNAVAILABLE itself (see the service config), but only on the same
        # connection; when a worker dies mid-call or refuses it as busy, the next attempt takes
        # whichever connection is least busy, after a growing, jittered pause, while the
        # deadline allows. Safe: repair is idempotent. Not when no connection could be made at
        # all (gRPC has already tried to connect): that answer is final, and comes quickly.
        deadline = time.monotonic() + (timeout or self.timeout)
        pause = _RETRY_PAUSE
        first: TextMendError | None = None
        while True:
            index = self._acquire_channel()
            try:
                return self._stubs[index].Repair(
                    request,
                    timeout=max(0.001, deadline - time.monotonic()),
                    metadata=self._metadata,
                )
            except grpc.RpcError as err:
                error = error_from_rpc(err, self.target)
                if first is not None and isinstance(error, DeadlineExceeded):
                    raise first from err  # retried until the deadline: report the cause
                wait = pause * random.uniform(0.5, 1.0)
                if not is_busy_refusal(err) or deadline - time.monotonic() <= wait:
                    # A retry that found no server at all reports why the first attempt failed.
                    cause = first if first is not None and isinstance(error, Unavailable) else error
                    raise cause from err
                first = first or error
            finally:
                self._release_channel(index)
            time.sleep(wait)
            pause = min(_RETRY_PAUSE_MAX, pause * 2)

    def repair_stream(
        self,
        requests: Iterable[textmend_pb2.RepairRequest | Mapping[str, Any]],
        *,
        timeout: float | None = None,
    ) -> Iterator[textmend_pb2.RepairResponse]:
        """Repair many documents over one stream per channel; yields one response per request.

        Requests are taken from `requests` lazily, as streams have room (see `fan_out`), so
        a generator of any length works. Responses may come in a different order from the
        requests: match them by `id`. A document that fails has `response.error` set; the
        stream goes on. The deadline (`timeout`, default `stream_timeout`) covers the whole
        call. Stopping iteration early cancels it.

        A stream that breaks (UNAVAILABLE: its worker died or is shutting down) or reaches the
        server's `--max-stream-documents` is opened again and the documents it had not answered
        are sent again, so every document still gets exactly one response (see `fan_out`).
        """
        deadline = time.monotonic() + (timeout or self.stream_timeout)
        background, stubs = self._streams()
        metadata = self._metadata

        def opener(stub: textmend_pb2_grpc.TextMendStub) -> Callable[[], Any]:
            return lambda: stub.RepairStream(
                timeout=max(0.001, deadline - time.monotonic()), metadata=metadata
            )

        openers = [opener(stub) for stub in stubs]
        try:
            yield from fan_out(
                background,
                openers,
                requests,
                as_request,
                window=self.window,
                resumable=is_resumable,
            )
        except grpc.RpcError as err:
            raise error_from_rpc(err, self.target) from err

    def health_status(self, service: str = "", *, timeout: float | None = None) -> str:
        """The `grpc.health.v1` status name of service ("" = the whole server).

        Returns `SERVING`, `NOT_SERVING`, ...; raises `TextMendError` when the check itself
        fails (`Unavailable` when no server answers).
        """
        try:
            reply = self._health.Check(
                health_pb2.HealthCheckRequest(service=service),
                timeout=timeout or self.timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as err:
            raise error_from_rpc(err, self.target) from err
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def health(self, service: str = "", *, timeout: float | None = None) -> bool:
        """Whether the server reports SERVING; False when it does not or cannot be reached."""
        try:
            return self.health_status(service, timeout=timeout) == "SERVING"
        except TextMendError:
            return False
