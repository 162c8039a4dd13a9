"""Which failed calls may be tried again, and how long to wait before each try.

Repair is idempotent, so a document may be sent again whenever the server did not work on
it: `repair` retries a call refused as busy or dropped by a worker that went away
(`is_busy_refusal`), and `repair_stream` resends a broken stream's unanswered documents on a
new stream (`is_resumable`, `is_idle_close`). Pauses double from a first one up to a most
(`doubling_pause`), so that callers refused together do not come back together.
"""

from __future__ import annotations

import random

import grpc

from textmend_client.errors import STREAM_IDLE_METADATA, STREAM_LIMIT_METADATA, is_call_error

# The first pause before retrying a refused or dropped `repair`, doubling up to the longest;
# each pause is drawn between half and all of that (`jittered`), so refused callers do not
# return together. 0.25 s spans a worker restart's first moments; 2 s is gRPC's own
# maxBackoff in the channels' service config (`textmend_client.channels`). Retries go on
# while the call's deadline allows.
RETRY_PAUSE = 0.25
RETRY_PAUSE_MAX = 2.0
# The base of the pauses before reopening a broken stream: the first reopening waits twice
# this (0.1 s), and the pauses double up to `RETRY_PAUSE_MAX` as a unary retry's do. Chosen
# by hand when streams learnt to reopen, with no measurement behind it; a stream's unanswered
# documents wait in the client meanwhile, not its caller.
STREAM_RETRY_PAUSE = 0.05
# What gRPC's server says when a call exceeds its `maximum_concurrent_rpcs` (the server's
# backstop behind its own limits): a refusal to retry, not a document too large.
CONCURRENCY_REFUSAL = "Concurrent RPC limit exceeded!"
# What gRPC says when it could open no connection at all (refused, TLS handshake failed).
NO_CONNECTION = "connections to all backends failing"
# What gRPC's core says of a stream it tore down while a write was in flight.
CORE_INTERNAL_ERROR = "Internal error from Core"
# How gRPC's core begins the INTERNAL it reports for a call whose HTTP/2 stream the other end
# reset without a status (`Stream removed (RST_STREAM …)`): a proxy such as Envoy does so when
# the replica behind it dies after the call's headers went out (tests/test_containers.py lost
# 2 of 18,069 calls that way when a replica was killed). No answer came, so the call is
# retried like one a dying worker dropped. The server's own INTERNAL never says this.
STREAM_REMOVED = "Stream removed"


def dropped_by_transport(code: grpc.StatusCode, details: str) -> bool:
    """Whether a call's INTERNAL status is gRPC's core reporting a stream torn down under it
    (`CORE_INTERNAL_ERROR`, `STREAM_REMOVED`), not a failure of the server's own."""
    return code is grpc.StatusCode.INTERNAL and (
        details == CORE_INTERNAL_ERROR or details.startswith(STREAM_REMOVED)
    )


def doubling_pause(attempt: int, first: float, most: float) -> float:
    """The pause before retry `attempt` (0 for the first): `first` doubled each time, at most
    `most`.

    >>> [doubling_pause(n, RETRY_PAUSE, RETRY_PAUSE_MAX) for n in range(5)]
    [0.25, 0.5, 1.0, 2.0, 2.0]
    """
    return min(most, first * 2**attempt)


def jittered(pause: float) -> float:
    """A pause drawn between half and all of `pause`, so that callers refused at the same
    moment spread out."""
    return pause * random.uniform(0.5, 1.0)


def is_busy_refusal(error: grpc.RpcError) -> bool:
    """Whether a call was refused without being worked on, so that retrying it later may
    succeed: UNAVAILABLE (a worker at its `--max-calls`, still starting (NOT_SERVING), dead or
    going away; not when no connection could be made, which gRPC has already retried), a
    stream torn down under the call with no answer (`dropped_by_transport`), or gRPC's own
    concurrency refusal (RESOURCE_EXHAUSTED, which otherwise means a document too large to
    retry).

    >>> from grpc.aio import AioRpcError, Metadata
    >>> def error(code, details):
    ...     return AioRpcError(code, Metadata(), Metadata(), details)
    >>> is_busy_refusal(error(grpc.StatusCode.INTERNAL, "Stream removed (RST_STREAM)"))
    True
    >>> is_busy_refusal(error(grpc.StatusCode.INTERNAL, "internal error while repairing"))
    False
    """
    if not is_call_error(error):
        return False
    code, details = error.code(), error.details() or ""
    if dropped_by_transport(code, details):
        return True
    if code is grpc.StatusCode.UNAVAILABLE:
        return NO_CONNECTION not in details
    return code is grpc.StatusCode.RESOURCE_EXHAUSTED and details == CONCURRENCY_REFUSAL


def is_resumable(error: BaseException) -> bool:
    """Whether a failed stream's unanswered documents may be resent on a new stream.

    UNAVAILABLE (the connection or the worker went away, the worker was at its `--max-streams`,
    or the stream was closed after `--stream-idle-seconds` without a request), INTERNAL raised
    by gRPC's own core rather than by the server (a stream torn down while a write was in
    flight, or reset by a proxy), RESOURCE_EXHAUSTED with the server's stream-limit trailer,
    or gRPC's own concurrency refusal; any other RESOURCE_EXHAUSTED is a document too large to
    send, which resending would only repeat. Resending is safe: repair is idempotent.
    """
    if not is_call_error(error):
        return False
    code = error.code()
    details = error.details() or ""
    if code is grpc.StatusCode.UNAVAILABLE:
        return True
    if code is grpc.StatusCode.INTERNAL:
        return dropped_by_transport(code, details)
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        trailers = error.trailing_metadata() or ()
        return details == CONCURRENCY_REFUSAL or any(
            key == STREAM_LIMIT_METADATA for key, _ in trailers
        )
    return False


def is_idle_close(error: BaseException) -> bool:
    """Whether the server closed a stream because it sent nothing for `--stream-idle-seconds`
    (every request it had sent was answered): not a failure, just a stream to open again."""
    if not is_call_error(error):
        return False
    trailers = error.trailing_metadata() or ()
    return any(key == STREAM_IDLE_METADATA for key, _ in trailers)
