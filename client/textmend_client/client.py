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

import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Unpack

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from textmend.v1 import textmend_pb2, textmend_pb2_grpc
from textmend_client.channels import (
    DEFAULT_CHANNELS,
    channel_credentials,
    channel_options,
    is_valid_token,
)
from textmend_client.channels import MIB as MIB
from textmend_client.errors import (
    DeadlineExceeded,
    ServerBrokeContract,
    TextMendError,
    Unavailable,
    error_from_rpc,
    is_call_error,
)
from textmend_client.errors import InvalidInput as InvalidInput
from textmend_client.errors import TooLarge as TooLarge
from textmend_client.errors import Unauthenticated as Unauthenticated
from textmend_client.request import MAX_ID_CHARS as MAX_ID_CHARS
from textmend_client.request import RequestFields, as_request, make_request
from textmend_client.request import policy_map as policy_map
from textmend_client.retry import (
    RETRY_PAUSE,
    RETRY_PAUSE_MAX,
    doubling_pause,
    is_busy_refusal,
    is_resumable,
    jittered,
)
from textmend_client.retry import is_idle_close as is_idle_close
from textmend_client.streams import (
    DEFAULT_WINDOW,
    BackgroundLoop,
    StreamBroken,
    UnexpectedResponse,
    fan_out,
)
from textmend_client.streams import STREAM_MAX_ATTEMPTS as STREAM_MAX_ATTEMPTS
from textmend_client.streams import STREAM_RETRY_SECONDS as STREAM_RETRY_SECONDS

# The names imported as themselves (`MIB as MIB`) are not used here: this module offered them
# before they moved to modules of their own, and offers them still.

#: The port a target without one means: the server's default (`--port`). gRPC's own default
#: is 443, so `--server 127.0.0.1` reached no textmend server.
DEFAULT_PORT = 50051
# Targets in gRPC's URI forms, whose port rules are gRPC's own.
_URI_TARGET = ("dns:", "unix:", "unix-abstract:", "ipv4:", "ipv6:", "vsock:")


def with_default_port(target: str) -> str:
    """target with `DEFAULT_PORT` when it names a host and no port.

    >>> with_default_port("127.0.0.1"), with_default_port("[::1]"), with_default_port("h:9")
    ('127.0.0.1:50051', '[::1]:50051', 'h:9')
    >>> with_default_port("dns:///textmend"), with_default_port("unix:/run/t.sock")
    ('dns:///textmend', 'unix:/run/t.sock')
    """
    if target.startswith(_URI_TARGET) or ":" in target.rsplit("]", 1)[-1]:
        return target
    return f"{target}:{DEFAULT_PORT}"


#: Default deadline of one `repair` or `health` call, in seconds.
DEFAULT_TIMEOUT = 30.0
#: Default deadline of a whole `repair_stream` call, in seconds.
DEFAULT_STREAM_TIMEOUT = 3600.0
#: Default of `max_message_mb`: the server's own default `--max-message-mb`, so that a client
#: and a server both left at their defaults agree.
DEFAULT_MAX_MESSAGE_MB = 64
#: The largest `max_message_mb`: gRPC counts a message's bytes in a signed 32-bit integer.
MAX_MESSAGE_MB_LIMIT = 2047
# The shortest timeout a call is given, in seconds, once its deadline has (nearly) passed:
# gRPC wants a positive one, and the call then fails at once with DEADLINE_EXCEEDED.
_MIN_CALL_SECONDS = 0.001


def _seconds(timeout: float | None, default: float) -> float:
    """A call's timeout: default when None, else timeout, which must be positive and finite
    (`timeout=0` had meant the default, silently).

    >>> _seconds(None, 30.0), _seconds(2.5, 30.0)
    (30.0, 2.5)
    """
    if timeout is None:
        return default
    if not 0 < timeout < math.inf:
        raise ValueError(f"timeout must be a positive, finite number of seconds, not {timeout}")
    return timeout


def _remaining(deadline: float) -> float:
    """Seconds left until deadline (a `time.monotonic()` value), at least `_MIN_CALL_SECONDS`."""
    return max(_MIN_CALL_SECONDS, deadline - time.monotonic())


def _answering(
    response: textmend_pb2.RepairResponse, id: str, target: str
) -> textmend_pb2.RepairResponse:
    """response, if it can be the answer to the request with that id: it carries the id, a
    verdict or an error, and edits within the document. An empty response (a proxy's, a
    server's fault) would otherwise be taken for a document repaired into nothing, and written
    over its output."""
    if response.id != id:
        raise ServerBrokeContract(
            f"the server at {target} answered a request with id {id[:100]!r} with the response "
            f"for id {response.id[:100]!r}"
        )
    if response.verdict == textmend_pb2.VERDICT_UNSPECIFIED and not response.HasField("error"):
        raise ServerBrokeContract(
            f"the server at {target} answered id {id[:100]!r} with a response that has neither "
            "a verdict nor an error"
        )
    length = response.original_length
    for item in (*response.edits, *response.findings):
        # Spans are checked against the original's length, not the text's: reading `text`
        # would copy a large document once more.
        if not (
            item.original_start <= item.original_end <= length
            and item.cleaned_start <= item.cleaned_end
            and 0.0 <= item.confidence <= 1.0
        ):
            raise ServerBrokeContract(
                f"the server at {target} answered id {id[:100]!r} with an edit outside the "
                f"document or rated outside 0..1 (at {item.original_start}, of {length})"
            )
    return response


class TextMendClient:
    """A connection to a textmend server (or, with a `dns:///` target, to all its replicas).

    Use it as a context manager, or call `close()`. `timeout` is the deadline of each unary
    call in seconds; `max_message_mb` should match the server's `--max-message-mb`.
    `channels` is how many connections to open (lazily, on first use), at least twice the
    server's worker count to keep every worker busy; `window` is how many documents each
    stream of `repair_stream` keeps in flight, and `stream_retry_seconds` how long it keeps
    reopening a broken stream that no worker takes. Safe to share between threads.

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
        max_message_mb: int = DEFAULT_MAX_MESSAGE_MB,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
        stream_retry_seconds: float = STREAM_RETRY_SECONDS,
        channels: int = DEFAULT_CHANNELS,
        window: int = DEFAULT_WINDOW,
        tls: bool | None = None,
        tls_ca: bytes | str | os.PathLike[str] | None = None,
        tls_cert: bytes | str | os.PathLike[str] | None = None,
        tls_key: bytes | str | os.PathLike[str] | None = None,
        token: str | None = None,
    ) -> None:
        for seconds in (timeout, stream_timeout, stream_retry_seconds):
            _seconds(seconds, seconds)  # each must be positive and finite
        if not 1 <= max_message_mb <= MAX_MESSAGE_MB_LIMIT:
            raise ValueError(f"max_message_mb must be 1 to {MAX_MESSAGE_MB_LIMIT}")
        if channels < 1 or window < 1:
            raise ValueError("channels and window must be at least 1")
        if token is not None and not is_valid_token(token):
            raise ValueError("token must be printable ASCII without spaces (one line)")
        self.target = with_default_port(target)
        self.timeout = timeout
        #: The most bytes one document may have: what `max_message_mb` lets a request carry.
        self.max_message_bytes = max_message_mb << 20
        self.stream_timeout = stream_timeout
        self.stream_retry_seconds = stream_retry_seconds
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
        timeout: float | None = None,
        **fields: Unpack[RequestFields],
    ) -> textmend_pb2.RepairResponse:
        """Repair one document: bytes as fetched (or str, sent as UTF-8).

        `fields` are the request's other fields, as `make_request` takes them: `id`,
        `declared_encoding`, `content_type`, `policy` (`{"mojibake": "flag"}`), `omit_diff`
        and `min_confidence` (edits rated lower are reported as findings instead). Raises
        `InvalidInput`, `TooLarge`, `Unavailable`, `DeadlineExceeded` or `TextMendError`.
        """
        request = make_request(content, **fields)
        # gRPC retries UNAVAILABLE itself (see the service config), but only on the same
        # connection; when a worker dies mid-call or refuses it as busy, the next attempt takes
        # whichever connection is least busy, after a growing, jittered pause, while the
        # deadline allows. Safe: repair is idempotent. Not when no connection could be made at
        # all (gRPC has already tried to connect): that answer is final, and comes quickly.
        deadline = time.monotonic() + _seconds(timeout, self.timeout)
        first: TextMendError | None = None
        attempt = 0
        while True:
            index = self._acquire_channel()
            try:
                response = self._stubs[index].Repair(
                    request, timeout=_remaining(deadline), metadata=self._metadata
                )
                return _answering(response, request.id, self.target)
            except grpc.RpcError as err:
                error = error_from_rpc(err, self.target)
                if first is not None and isinstance(error, DeadlineExceeded):
                    raise first from err  # retried until the deadline: report the cause
                wait = jittered(doubling_pause(attempt, RETRY_PAUSE, RETRY_PAUSE_MAX))
                if not is_busy_refusal(err) or deadline - time.monotonic() <= wait:
                    # A retry that found no server at all reports why the first attempt failed.
                    cause = first if first is not None and isinstance(error, Unavailable) else error
                    raise cause from err
                first = first or error
            finally:
                self._release_channel(index)
            time.sleep(wait)
            attempt += 1

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
        are sent again, so every document still gets exactly one response (see `fan_out`). It
        gives up when no worker takes a reopened stream for `stream_retry_seconds`, or when a
        document has been sent on `STREAM_MAX_ATTEMPTS` streams that each broke first.
        """
        deadline = time.monotonic() + _seconds(timeout, self.stream_timeout)
        background, stubs = self._streams()
        metadata = self._metadata

        def opener(stub: textmend_pb2_grpc.TextMendStub) -> Callable[[], Any]:
            return lambda: stub.RepairStream(timeout=_remaining(deadline), metadata=metadata)

        openers = [opener(stub) for stub in stubs]
        try:
            for response in fan_out(
                background,
                openers,
                requests,
                as_request,
                window=self.window,
                resumable=is_resumable,
                retry_seconds=self.stream_retry_seconds,
                deadline=deadline,
            ):
                yield _answering(response, response.id, self.target)
        except grpc.RpcError as err:
            raise error_from_rpc(err, self.target) from err
        except (StreamBroken, UnexpectedResponse) as err:
            raise ServerBrokeContract(f"{err} ({self.target})") from err

    def health_status(self, service: str = "", *, timeout: float | None = None) -> str:
        """The `grpc.health.v1` status name of service ("" = the whole server).

        Returns `SERVING`, `NOT_SERVING`, ...; raises `TextMendError` when the check itself
        fails (`Unavailable` when no server answers).
        """
        try:
            reply = self._health.Check(
                health_pb2.HealthCheckRequest(service=service),
                timeout=_seconds(timeout, self.timeout),
                metadata=self._metadata,
            )
        except grpc.RpcError as err:
            if is_call_error(err) and err.code() is grpc.StatusCode.NOT_FOUND:
                raise TextMendError(
                    grpc.StatusCode.NOT_FOUND,
                    f"the server at {self.target} has no service named {service!r} to check "
                    '("" is the whole server)',
                ) from err
            raise error_from_rpc(err, self.target) from err
        statuses = health_pb2.HealthCheckResponse.ServingStatus
        if reply.status not in statuses.values():
            return f"UNKNOWN_STATUS_{reply.status}"  # a status newer than these stubs
        return statuses.Name(reply.status)

    def health(self, service: str = "", *, timeout: float | None = None) -> bool:
        """Whether the server reports SERVING; False when it does not or cannot be reached."""
        try:
            return self.health_status(service, timeout=timeout) == "SERVING"
        except TextMendError:
            return False
