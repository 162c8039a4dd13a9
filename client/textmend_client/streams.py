"""Streams over several connections at once: `fan_out` keeps a window of documents in flight
on every stream and resends what a broken stream left unanswered; `BackgroundLoop` is the
asyncio thread they run on.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import operator
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import grpc

from textmend_client.retry import RETRY_PAUSE_MAX, STREAM_RETRY_PAUSE, doubling_pause, is_idle_close

#: Default number of documents each stream of `repair_stream` keeps in flight: enough to hide
#: the network round trip, few enough that a slow worker does not hoard documents.
DEFAULT_WINDOW = 4

#: How long `repair_stream` keeps reopening a broken stream while no worker takes it, in
#: seconds, before it gives up: long enough for a worker to be restarted.
STREAM_RETRY_SECONDS = 30.0

#: How many streams one document may be sent on, the first included, when each is taken by a
#: worker and breaks before answering it: a document that takes its worker down every time (or
#: workers killed that often) ends the call instead of being resent until the deadline. 5 is
#: the most attempts gRPC's own retry policy allows a call.
STREAM_MAX_ATTEMPTS = 5

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


async def _written(operation: Awaitable[None]) -> bool:
    """Await a write (or the half-close) of a call; False when the transport refused it, which
    reading the call reports. Requests are built before they are written, so what a write
    raises is the call's end: `RpcError`, or gRPC's own `ExecuteBatchError` for a call whose
    channel failed before any status came (a stopped server and fewer requests than channels
    gave a traceback in place of the one-line error)."""
    try:
        await operation
    except Exception:  # any refusal of the transport: reading the call reports it
        return False
    return True


class StreamBroken(Exception):
    """A stream call ended, with OK, while requests it had been sent were still unanswered:
    the server broke the stream's contract (one response per request). Its requests are
    resent, as a stream that broke with UNAVAILABLE's are."""

    def __init__(self, unanswered: int) -> None:
        super().__init__(f"the server ended a stream with {unanswered} of its documents unanswered")
        self.unanswered = unanswered


class UnexpectedResponse(Exception):
    """A stream answered a request it was not sent, or one it had already answered: the
    server (or a proxy) broke the stream's contract, and no response of it can be trusted to
    be the one for its id. Ends the whole call."""


class _Progress:
    """What one stream call got before it ended: headers from a worker that took it, and how
    many responses."""

    __slots__ = ("answered", "taken")

    def __init__(self) -> None:
        self.taken = False
        self.answered = 0


def fan_out(
    background: BackgroundLoop,
    openers: Sequence[Callable[[], Any]],
    items: Iterable[Any],
    convert: Callable[[Any], _Request],
    *,
    window: int = DEFAULT_WINDOW,
    resumable: Callable[[BaseException], bool] | None = None,
    retry_seconds: float = STREAM_RETRY_SECONDS,
    max_attempts: int = STREAM_MAX_ATTEMPTS,
    key: Callable[[Any], Any] = operator.attrgetter("id"),
    deadline: float | None = None,
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
    still gets exactly one response. It gives up, raising the stream's last error, when for
    `retry_seconds` no call it opened was taken by a worker (response headers) or answered
    anything, or when a document has been sent on `max_attempts` streams that each broke
    before answering it, or when `deadline` (a `time.monotonic()` value) has passed. A stream
    the server ends with OK while requests are unanswered broke too (`StreamBroken`). A
    reopened stream that answers nothing waits longer each time, whatever its trailers say.
    How long a taken stream waits for its answers only the caller's deadline bounds. A
    response to a request the stream was not sent, or already answered, ends the whole call
    (`UnexpectedResponse`): it cannot be matched. Stopping iteration early, or any other
    failure, cancels every stream; a stream's `grpc.RpcError` is raised here.
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

    attempts: collections.Counter[Any] = collections.Counter()

    async def one_call(
        call: Any, outstanding: dict[Any, collections.deque[Any]], progress: _Progress
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
                if not await _written(call.write(request)):
                    return  # the call ended; reading it reports why
            await _written(call.done_writing())

        def stop_if_failed(task: asyncio.Future[None]) -> None:
            # A request that cannot be built ends the call, which would otherwise wait for
            # more requests forever.
            if not task.cancelled() and task.exception() is not None:
                call.cancel()

        sender = asyncio.ensure_future(send())
        sender.add_done_callback(stop_if_failed)
        try:
            # Headers on a call still running: a worker took the stream (a textmend server
            # sends them when it admits one; another server may send them with its first
            # response). A refused call ends with trailers alone.
            headers = await call.initial_metadata()
            progress.taken = bool(headers) or not call.done()
            async for response in call:
                waiting = outstanding.get(key(response))
                if not waiting:
                    raise UnexpectedResponse(
                        f"the server answered a document this stream did not send or had "
                        f"already answered (id {str(key(response))[:100]!r})"
                    )
                waiting.popleft()
                if not waiting:
                    del outstanding[key(response)]
                free.release()
                attempts.pop(key(response), None)  # answered: only its failures counted
                progress.answered += 1
                arrivals.put(response)
            if outstanding:
                # Ended with OK, owing answers: the sender may be waiting for room in the
                # window that no response will make.
                raise StreamBroken(sum(len(waiting) for waiting in outstanding.values()))
            await sender
        except (asyncio.CancelledError, grpc.RpcError, StreamBroken):
            if sender.done() and not sender.cancelled() and sender.exception() is not None:
                raise sender.exception() from None  # type: ignore[misc]
            raise
        finally:
            sender.cancel()
            call.cancel()

    async def one_stream(opener: Callable[[], Any]) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        failing_since: float | None = None
        while True:
            outstanding: dict[Any, collections.deque[Any]] = {}
            progress = _Progress()
            try:
                await one_call(opener(), outstanding, progress)
                return
            except (grpc.RpcError, StreamBroken) as exc:
                now = loop.time()
                owed = any(outstanding.values())
                if progress.answered or (progress.taken and is_idle_close(exc) and not owed):
                    # The stream worked until now (or closed idle, owing nothing): the time
                    # it spent waiting for answers is the caller's deadline's business, not a
                    # failure to reopen.
                    failures, failing_since = 0, now
                elif progress.taken:
                    # A worker took it and it answered nothing: the window to reopen starts
                    # again, the pause before the next one still grows (a server that takes
                    # and drops every stream would otherwise be reopened ten times a second).
                    failing_since = now
                elif failing_since is None:
                    failing_since = now
                broken = isinstance(exc, StreamBroken)
                if not broken and (resumable is None or not resumable(exc)):
                    raise
                if now - failing_since > retry_seconds:
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    raise  # each reopened call would get gRPC's least deadline, and fail
                # Only a stream a worker took counts as an attempt at its documents: one refused
                # before its headers (a worker starting, a connection to a killed worker's
                # port) did nothing with them, and the retry window bounds those.
                taken = progress.answered or progress.taken
                for waiting in outstanding.values():
                    for request in waiting if taken else ():
                        attempts[key(request)] += 1
                        if attempts[key(request)] >= max_attempts:
                            raise
                    resend.extendleft(reversed(waiting))
                failures += 1
                await asyncio.sleep(doubling_pause(failures, STREAM_RETRY_PAUSE, RETRY_PAUSE_MAX))

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
