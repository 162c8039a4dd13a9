"""Admission: how many calls of each kind a worker runs, and how long a stream may stay idle.

Both are counted per worker process, never by blocking: a call that finds its kind full is
refused at once, and a stream that sends nothing for `--stream-idle-seconds` is ended (issue
16: idle streams used to hold every thread of a worker). A unary call is counted from its
arrival too, not once its request has come: gRPC's threaded server reads a unary request on
a pool thread, so calls that sent their headers and never their message used to hold every
thread of a worker (health included) for as long as their connection stayed open. Such a call
now waits for its request under its kind's limit and the same idle limit (`read_request`).
The gRPC side of both, the interceptor that applies them to every call, is
`interceptors.AdmissionInterceptor`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import grpc

from textmend_server.config import MIB, ServerConfig
from textmend_server.convert import SERVICE_NAME

# What each method counts against; every other call is `admin` when it streams and `short`
# when it does not (health `Check`).
_REPAIR_METHOD = f"/{SERVICE_NAME}/Repair"
_STREAM_METHOD = f"/{SERVICE_NAME}/RepairStream"


class Admission:
    """How many calls of each kind a worker runs, against the limits `ServerConfig` sets.

    Never blocks: a call that finds its kind full is refused at once (UNAVAILABLE, see
    `busy_message`), because one that waited would hold a thread, and threads are what idle
    streams used to exhaust (issue 16). Kinds: `repair` (`Repair`, `--max-calls`), `stream`
    (`RepairStream`, `--max-streams`), `admin` (health `Watch` and reflection streams,
    `--max-admin-streams`) and `short` (health `Check` and any other unary call, held to
    `--threads`, the threads the pool keeps for them: a `Check` that never sends its request
    holds one until `--stream-idle-seconds`).

    >>> admission = Admission(ServerConfig(max_calls=1))
    >>> admission.enter("repair"), admission.enter("repair"), admission.running("repair")
    (True, False, 1)
    >>> admission.leave("repair"); admission.enter("repair")
    True
    """

    #: kind -> (config attribute, flag, what the calls are)
    KINDS: Mapping[str, tuple[str, str, str]] = {
        "repair": ("max_calls", "--max-calls", "Repair calls"),
        "stream": ("max_streams", "--max-streams", "open RepairStream calls"),
        "admin": ("max_admin_streams", "--max-admin-streams", "health Watch and reflection calls"),
        "short": ("threads", "--threads", "health Check and other short calls"),
    }

    def __init__(self, config: ServerConfig) -> None:
        self._limits = {kind: getattr(config, attr) for kind, (attr, _, _) in self.KINDS.items()}
        self._running = dict.fromkeys(self.KINDS, 0)
        self._lock = threading.Lock()

    def enter(self, kind: str) -> bool:
        """Count one more call of kind and return True, or return False when it is full."""
        with self._lock:
            if self._running[kind] >= self._limits[kind]:
                return False
            self._running[kind] += 1
            return True

    def leave(self, kind: str) -> None:
        """Count one call of kind fewer."""
        with self._lock:
            self._running[kind] -= 1

    def running(self, kind: str) -> int:
        """Calls of kind running now."""
        with self._lock:
            return self._running[kind]

    def busy_message(self, kind: str) -> str:
        """What a refused caller reads: why, and what to do."""
        _, flag, what = self.KINDS[kind]
        return (
            f"this server worker is busy: it is already running {self._limits[kind]} {what}, "
            f"its limit ({flag}): retry after a short backoff (the textmend client does so by "
            f"itself within its deadline), spread the calls over more workers or replicas, or "
            f"raise the server's {flag}"
        )


class InFlight:
    """The bytes of document content a worker is repairing, against `--max-inflight-mb`: the
    call limits count calls, not bytes, and a few large documents (or small requests that
    inflate into large ones) filled a worker's memory.

    A document is always taken when nothing else is in progress, so that the largest one
    accepted runs alone.

    >>> budget = InFlight(100)
    >>> budget.take(60), budget.take(60), budget.take(40)
    (True, False, True)
    >>> budget.give(60); budget.give(40); budget.take(150)
    True
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        """Count size bytes in progress and return True, or return False when they would not
        fit beside what is."""
        with self._lock:
            if self._held and self._held + size > self.limit:
                return False
            self._held += size
            return True

    def give(self, size: int) -> None:
        """Count size bytes in progress fewer."""
        with self._lock:
            self._held -= size

    def held(self) -> int:
        """Bytes in progress now."""
        with self._lock:
            return self._held

    def busy_message(self, size: int) -> str:
        """What a refused caller reads: why, and what to do."""
        return (
            f"this server worker is busy: it is already repairing {self.held() / MIB:.0f} MiB "
            f"of documents, and this one's {size / MIB:.1f} MiB would pass its limit of "
            f"{self.limit / MIB:.0f} MiB (--max-inflight-mb): retry after a short backoff (the "
            "textmend client does so by itself within its deadline), or raise the server's "
            "--max-inflight-mb"
        )


def call_kind(method: str, handler: grpc.RpcMethodHandler) -> str:
    """The `Admission` kind a call to method counts against.

    Health `Check` and every other unary call but `Repair` are `short`: they finish in
    microseconds once their request is there, and the pool keeps `--threads` threads for them.
    """
    if method == _REPAIR_METHOD:
        return "repair"
    if method == _STREAM_METHOD:
        return "stream"
    if handler.request_streaming or handler.response_streaming:
        return "admin"
    return "short"


# How often a stream's reader checks that its call is still wanted while its queue is full.
# Chosen, not measured: a reader left behind by a finished call ends within half a second, for
# two wake-ups a second while a handler is busy with the request before.
_POLL_SECONDS = 0.5


class StreamIdle(Exception):
    """A stream's caller sent nothing for the idle limit (raised in the handler's thread)."""


class NoRequest(Exception):
    """A unary call ended its request stream without sending its one request."""


_END = object()


# The most characters of a parser's error quoted back to the caller: protobuf's messages name
# the type and the fault, never the bytes, and are far shorter than this.
_PARSE_ERROR_CHARS = 200


class Malformed:
    """A request message that did not parse, in place of the request (`tolerant`)."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error[:_PARSE_ERROR_CHARS]


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """deserializer, returning `Malformed` where it would raise.

    gRPC answers a request that does not parse with INTERNAL and logs its traceback at ERROR,
    once per message, so any caller could fill the logs and see the server's fault where the
    fault is theirs; the admission interceptor answers `Malformed` with INVALID_ARGUMENT.

    >>> from google.protobuf import wrappers_pb2
    >>> parse = tolerant(wrappers_pb2.StringValue.FromString)
    >>> parse(b"\\x0a\\x02hi").value, type(parse(b"\\xff\\xff")).__name__
    ('hi', 'Malformed')
    """
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError, or a parser's own
            return Malformed(f"{type(exc).__name__}: {exc}")

    return parse


def read_request(requests: Iterator[Any], seconds: float, readers: Executor) -> Any:
    """The one request of a unary call, read from its request stream by one of readers;
    `StreamIdle` when none arrives within seconds, `NoRequest` when the caller half-closes
    without one.

    gRPC's iterator has no timeout, so a thread of readers (kept, not started per call: a new
    thread a call tripled the time of a 5 KB `Repair`) waits for the request while the call's
    thread waits on it with a timeout. A reader left waiting is freed when the call ends. Only
    the first message is read: gRPC's own unary handling reads no further either.

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(1) as readers:
    ...     read_request(iter(["only"]), 5, readers)
    'only'
    >>> with ThreadPoolExecutor(1) as readers:
    ...     read_request(iter([]), 5, readers)
    Traceback (most recent call last):
    ...
    textmend_server.admission.NoRequest
    """
    future = readers.submit(next, requests, _END)
    try:
        item = future.result(timeout=seconds)
    except FutureTimeout:
        raise StreamIdle() from None
    if item is _END:
        raise NoRequest()
    return item


class IdleLimitedRequests:
    """A stream's request iterator that raises `StreamIdle` when no request arrives for
    seconds while the handler waits for one.

    gRPC's iterator has no timeout, so a daemon thread reads it into a queue of one request
    (no more read-ahead than before: HTTP/2 flow control still holds the rest back) and the
    handler waits on the queue. The thread ends when the call does: gRPC's iterator then ends
    or raises, and `close` stops a reader waiting to hand over a request.

    >>> list(IdleLimitedRequests(iter(["a", "b"]), seconds=5))
    ['a', 'b']
    >>> caller_done = threading.Event()
    >>> def silent():
    ...     caller_done.wait()
    ...     yield from ()
    >>> requests = IdleLimitedRequests(silent(), seconds=0.05)
    >>> next(requests)
    Traceback (most recent call last):
    ...
    textmend_server.admission.StreamIdle
    >>> requests.close(); caller_done.set()
    """

    def __init__(self, requests: Iterator[Any], seconds: float) -> None:
        self._seconds = seconds
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._closed = threading.Event()
        self._ended = False
        threading.Thread(
            target=self._read, args=(requests,), name="textmend-stream-reader", daemon=True
        ).start()

    def _read(self, requests: Iterator[Any]) -> None:
        item: Any = _END
        try:
            for request in requests:
                if not self._put(request):
                    return
        except BaseException as exc:  # handed to the handler's thread, which raises it
            item = exc
        self._put(item)

    def _put(self, item: Any) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> IdleLimitedRequests:
        return self

    def __next__(self) -> Any:
        if self._ended:
            raise StopIteration
        try:
            item = self._queue.get(timeout=self._seconds)
        except queue.Empty:
            raise StreamIdle() from None
        if item is _END:
            self._ended = True
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the reader from handing over more requests (the call is over)."""
        self._closed.set()


__all__ = [
    "Admission",
    "IdleLimitedRequests",
    "Malformed",
    "NoRequest",
    "StreamIdle",
    "call_kind",
    "read_request",
    "tolerant",
]
