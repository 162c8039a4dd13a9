"""The settings of one server process.

Kept apart from the gRPC service so that the parent process, which forks the workers and must
not create a gRPC object before it does, can build and check them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MIB = 1024 * 1024
# The largest `max_message_mb`: gRPC's receive limit, this plus 1 MiB, must fit in a signed
# 32-bit count of bytes.
MAX_MESSAGE_MB_LIMIT = 2046

# The longest of the server's times that gRPC counts in milliseconds in a signed 32-bit
# integer (about 24.8 days), in seconds.
MAX_CONNECTION_SECONDS = (2**31 - 1) // 1000

# gRPC's limit on a received message is the content limit plus this much, so that a document
# slightly over the limit reaches the engine and gets its explanatory RESOURCE_EXHAUSTED (and,
# in RepairStream, a per-document error instead of a failed stream).
ENVELOPE_BYTES = 1 * MIB

# A response carries the text, the diff (original and cleaned lines) and every edit, so it can
# be several times larger than the content (UTF-16 or GBK content grows when sent as UTF-8).
RESPONSE_SIZE_FACTOR = 4

# Default admission limits, per worker process (issue 16: 16 idle streams used to take every
# thread of a worker, and health checks and other callers' calls queued behind them).
#
# `Repair` calls one worker admits at once: the heaviest load measured on this service is issue
# 16's 64 callers on 2 workers, and the kernel hands connections to workers by a hash, so one
# worker often gets more than half of them (36 of 64 is a coin toss away). In that closed loop
# the callers pile up in the long CJK searches (each caller's short documents come back at
# once), so with 32 a worker could be full of searches and refuse every short document sent to
# it, making the short ones' p99 the client's backoff (reasoned, not measured). An admitted call
# waiting for its turn at the engine (see `DEFAULT_TIME_SLICE`) holds a thread and its
# request, not the CPU, so admitting the whole 64-caller load on one worker costs little;
# beyond it a call is refused with UNAVAILABLE and the client retries after a backoff instead
# of queueing without bound.
DEFAULT_MAX_CALLS = 64
# Content of the documents a worker repairs at once, in MiB (`--max-inflight-mb`): the limits
# above count calls, not bytes, and 20 gzip-compressed requests of 137 KB each, each inflating
# to a 63 MiB document, took one worker to 3 GB. A worker's peak above idle is at most about
# 4 times the document it repairs (issue 19's bound), so 256 MiB of documents in progress is
# about a GiB at worst, what a 2-worker container of a few GiB holds (reasoned, not
# measured). Never less than `--max-message-mb`: a document of the largest size accepted
# always runs alone.
DEFAULT_MAX_INFLIGHT_MB = 256
# Open `RepairStream` calls per worker: the bundled client opens 8 streams per batch (its
# `--channels` default), so 32 admits four batch jobs even when the kernel hands every one of
# their connections to the same worker.
DEFAULT_MAX_STREAMS = 32
# Open health `Watch` and reflection streams per worker: grpcurl opens one reflection stream
# per command and probes use the unary `Check`, counted against `threads` instead; a few tools
# at once.
DEFAULT_MAX_ADMIN_STREAMS = 8
# Seconds a stream may send nothing while none of its documents is being repaired. The bundled
# client keeps documents in flight, so its streams are idle only when its input pauses (and it
# reopens a stream closed for idleness by itself); a minute outlasts a producer's ordinary
# pauses and frees a hostile caller's idle streams' slots within a minute.
DEFAULT_STREAM_IDLE_SECONDS = 60.0
# Seconds a connection lives before the server asks its client to go (HTTP/2 GOAWAY) and
# open another (`--connection-age-seconds`). The kernel hands each new connection to a worker
# by a hash, so a long-lived caller's connections stay wherever they first landed (with 4
# connections, all on one of 2 workers one time in 8): an age spreads them again. It also ends
# what a connection holds that no limit frees sooner, such as responses its client never reads
# (400 unread 1 MiB responses held 800 MiB of a worker until the connection closed). Half an
# hour: a batch stream is reopened a few times in a long job, and the bundled client resends
# only what was not answered.
DEFAULT_CONNECTION_AGE_SECONDS = 1800.0
# Seconds the calls open on a connection told to go may still take before it is closed: the
# longest one document may take (`max_seconds`' default, 120 s) and a little more, so that a
# document being repaired at the GOAWAY finishes.
DEFAULT_CONNECTION_AGE_GRACE_SECONDS = 130.0
# Seconds a connection with no call open is kept (`--connection-idle-seconds`): a caller's
# next call reopens it, a few milliseconds on a network; ten minutes keeps the connections of
# callers that send now and then, and closes those of callers that opened many and left them.
DEFAULT_CONNECTION_IDLE_SECONDS = 600.0
# Seconds a connection with calls open may be silent before the server pings it, and seconds
# the ping's answer may take before the connection is closed as dead (gRPC's own default
# timeout): a peer that vanished without closing its TCP connection (a host that died, a
# network that dropped) frees its calls' places within about 80 s, not the tens of minutes
# TCP takes to give up.
DEFAULT_KEEPALIVE_SECONDS = 60.0
KEEPALIVE_TIMEOUT_SECONDS = 20.0
# Health checks and other short unary calls at once, and as many threads again for refusals (a
# few microseconds each), beyond one thread per admitted call. Probes send one Check every
# few seconds; eight at once is room for several probers and a burst, chosen rather than
# measured.
DEFAULT_THREADS = 8
# CPU seconds of engine time a document has in the light lane before it moves to the heavy one
# (`textmend_server.turns.Turns`; issue 16: a 5 KB clean document waited seconds behind CJK
# searches). Each worker runs at most one light and one heavy document at a time; the engine
# asks between blocks, stages and phase-slip searches whether to go on, and that is where a
# document past its slice moves. 50 ms is well above what a light 5 KB document costs (English
# and CJK prose 0.4-0.7 ms median and 12 ms at most, the same prose with injected damage 3.5 ms
# median and 20 ms at most, in-process on the corpora of bench/load.py --mix real), so light
# documents finish in their lane, and short beside issue 16's 1 s bound on their p99.
DEFAULT_TIME_SLICE = 0.05
# MiB of memoised engine results each worker may keep (`--cache-mb`), passed to the engine's
# process-wide cache (`textmend_server.cache.configure`) before the workers are forked. Issue 16
# asks for at most 150 MiB of memory unique to each extra worker: a worker forked from the warm
# parent starts with 12 MiB of its own, and under the 64-caller mixed load its own allocations
# land in pages of the parent's heap, copying them (bench/cow_pages.py: 75 MiB copied after 400
# documents, 12 MiB of them model tables), so the memos get what is left of that budget. With
# 24 MiB and a 32 KiB mmap threshold (`main.MALLOC_MMAP_THRESHOLD`), over 30 minutes of that
# load each worker's USS stayed at 129-160 MiB, and at 137-150 MiB once the workers trimmed
# their heaps (`main.HEAP_TRIM_INTERVAL`; docs/reliability.md); 64 MiB served 10-18%
# more documents in 30 minutes (99,525 against 84,314-90,263) with each worker's USS at
# 221-236 MiB, and 16 MiB did not lower the USS. 0 made the heavy CJK documents miss
# 60 s deadlines under that load (the sample article's working set is about 14 MB).
DEFAULT_CACHE_MB = 24


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one server process.

    max_message_mb: largest accepted content, in MiB (gRPC's receive limit is this plus 1 MiB
        for the rest of the request; its send limit is `RESPONSE_SIZE_FACTOR` times as much).
    threads: most health checks and other short unary calls at once (`--threads`; a `Check`
        is counted from its arrival, so ones that never send their request hold at most this
        many threads), and as many threads again for refusals, on top of one thread per call
        the limits below admit. The server's pool is `pool_threads`, and gRPC refuses a call
        beyond that many (RESOURCE_EXHAUSTED) rather than queue it, so a health check never
        waits behind repairs or streams. The work is CPU-bound Python: more threads do not
        add throughput (add worker processes for that).
    max_calls: most `Repair` calls this process runs at once; the next is refused at once
        with UNAVAILABLE and a message naming `--max-calls` (see `DEFAULT_MAX_CALLS`).
    max_streams: most open `RepairStream` calls; the next is refused the same way, naming
        `--max-streams` (see `DEFAULT_MAX_STREAMS`).
    max_admin_streams: most open health `Watch` and reflection streams, likewise
        (`--max-admin-streams`, see `DEFAULT_MAX_ADMIN_STREAMS`).
    stream_idle_seconds: a stream that sends no request for this long while none of its
        documents is being repaired is ended with UNAVAILABLE and the `textmend-stream-idle`
        trailer; every request it sent was answered (see `DEFAULT_STREAM_IDLE_SECONDS`).
    max_inflight_mb: most MiB of document content this process repairs at once, and never less
        than `max_message_mb`: a `Repair` past it is refused with UNAVAILABLE (the
        `textmend-busy: --max-inflight-mb` trailer; the client retries after a backoff), and a
        stream's next document waits for room (see `DEFAULT_MAX_INFLIGHT_MB`).
    grace: seconds in-flight calls get to finish when the server stops.
    reuse_port: let several processes bind the same port (SO_REUSEPORT).
    warm_up: run one small repair before reporting SERVING, so that the engine's tables are
        loaded before the first real request arrives.
    max_line_kb: longest run of content bytes without a line break (LF or CR), in KiB; longer
        is RESOURCE_EXHAUSTED. The engine checks the caller's deadline between lines, so one
        line is work that cannot be stopped (about 2 s per MiB); a byte bound also bounds the
        code points, as each takes at least one byte. Default 1024 (1 MiB).
    max_edits: most edits plus findings one document may produce; more is RESOURCE_EXHAUSTED
        (never a silently shortened list). Default 1,000,000: a 6 MB article dense with
        mojibake makes about 130,000, and 1,000,000 edits are about 70 MB of response.
    max_seconds: most seconds one document may take, whatever the caller's deadline; the
        engine asks between blocks of work, and past the limit the document gets
        RESOURCE_EXHAUSTED. Default 120: a 64 MB clean document takes about 5 s; hostile
        input (walls of CJK-looking garbage, each block searched to its budget) runs at
        about 30 µs a byte, half an hour for 64 MB.
    max_stream_documents: most documents one `RepairStream` call carries; the next one ends the
        stream with RESOURCE_EXHAUSTED (see `STREAM_LIMIT_METADATA`). Default 1,000,000.
    tls_cert, tls_key: PEM certificate chain and private key; with them the server speaks TLS
        only. Default None: plaintext.
    tls_client_ca: PEM CA bundle; with it every client must present a certificate it signed
        (mutual TLS). Needs tls_cert. Default None.
    auth_token: when set, every `textmend.v1.TextMend` call must carry the metadata
        `authorization: Bearer <auth_token>`, else UNAUTHENTICATED. Health checks and
        reflection stay open. Default None.
    log_content: include the first 200 bytes of each document in its DEBUG log line. Off by
        default: documents may be private, and logs travel further than responses.
    time_slice: seconds of engine time a document runs before it yields the worker to a
        document that has had less (see `DEFAULT_TIME_SLICE`); more than 0.
    cache_mb: MiB of memoised engine results per worker (see `DEFAULT_CACHE_MB`); 0 keeps
        none. The server passes it to the engine's cache before forking its workers.
    connection_age_seconds: a connection this old is asked to go (GOAWAY): its client opens
        another for new calls (see `DEFAULT_CONNECTION_AGE_SECONDS`); 0 never.
    connection_age_grace_seconds: how long the calls open on a connection asked to go may
        still take before it is closed under them (see `DEFAULT_CONNECTION_AGE_GRACE_SECONDS`).
    connection_idle_seconds: a connection with no call open for this long is closed (see
        `DEFAULT_CONNECTION_IDLE_SECONDS`); 0 never.
    keepalive_seconds: a connection with calls open and silent this long is pinged, and closed
        if the ping is not answered within `KEEPALIVE_TIMEOUT_SECONDS` (see
        `DEFAULT_KEEPALIVE_SECONDS`); 0 never pings.
    """

    max_message_mb: int = 64
    threads: int = DEFAULT_THREADS
    max_calls: int = DEFAULT_MAX_CALLS
    max_inflight_mb: int = DEFAULT_MAX_INFLIGHT_MB
    max_streams: int = DEFAULT_MAX_STREAMS
    max_admin_streams: int = DEFAULT_MAX_ADMIN_STREAMS
    stream_idle_seconds: float = DEFAULT_STREAM_IDLE_SECONDS
    grace: float = 10.0
    reuse_port: bool = False
    warm_up: bool = True
    max_line_kb: int = 1024
    max_edits: int = 1_000_000
    max_seconds: float = 120.0
    max_stream_documents: int = 1_000_000
    tls_cert: bytes | None = field(default=None, repr=False)
    tls_key: bytes | None = field(default=None, repr=False)
    tls_client_ca: bytes | None = field(default=None, repr=False)
    auth_token: str | None = field(default=None, repr=False)
    log_content: bool = False
    time_slice: float = DEFAULT_TIME_SLICE
    cache_mb: int = DEFAULT_CACHE_MB
    connection_age_seconds: float = DEFAULT_CONNECTION_AGE_SECONDS
    connection_age_grace_seconds: float = DEFAULT_CONNECTION_AGE_GRACE_SECONDS
    connection_idle_seconds: float = DEFAULT_CONNECTION_IDLE_SECONDS
    keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS

    def __post_init__(self) -> None:
        for name in ("threads", "max_calls", "max_streams", "max_admin_streams", "max_inflight_mb"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.cache_mb < 0:
            raise ValueError("cache_mb must not be negative")
        for name in ("stream_idle_seconds", "time_slice"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a finite number more than 0")
        if not 0 <= self.grace < math.inf:
            raise ValueError("grace must be a finite number of seconds, 0 or more")
        for name in (
            "connection_age_seconds",
            "connection_age_grace_seconds",
            "connection_idle_seconds",
            "keepalive_seconds",
        ):
            if not 0 <= getattr(self, name) <= MAX_CONNECTION_SECONDS:
                raise ValueError(
                    f"{name} must be 0 to {MAX_CONNECTION_SECONDS:,} seconds, not "
                    f"{getattr(self, name)}"
                )
        if not 1 <= self.max_message_mb <= MAX_MESSAGE_MB_LIMIT:
            # gRPC counts a message's bytes (the content and 1 MiB for the rest) in a signed
            # 32-bit integer.
            raise ValueError(f"max_message_mb must be 1 to {MAX_MESSAGE_MB_LIMIT}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and its private key")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("verifying client certificates needs a server certificate too")
        if self.auth_token is not None and not is_token(self.auth_token):
            raise ValueError(
                "the auth token must be 1 to 4096 printable ASCII characters without spaces"
            )

    @property
    def pool_threads(self) -> int:
        """Threads of the server's pool, and the most calls gRPC lets in at once: one per
        call the admission limits allow (`threads` of them short calls), plus `threads` more
        for refusals, which take microseconds each."""
        return self.max_calls + self.max_streams + self.max_admin_streams + 2 * self.threads

    @property
    def max_line_bytes(self) -> int:
        """The longest accepted line, in bytes."""
        return self.max_line_kb * 1024

    @property
    def max_inflight_bytes(self) -> int:
        """The most bytes of document content repaired at once: `max_inflight_mb`, and never
        less than the largest document accepted."""
        return max(self.max_inflight_mb * MIB, self.max_content_bytes)

    @property
    def max_content_bytes(self) -> int:
        """The largest content the engine accepts, in bytes."""
        return self.max_message_mb * MIB

    @property
    def max_receive_bytes(self) -> int:
        """gRPC's limit on one received message, in bytes."""
        return self.max_content_bytes + ENVELOPE_BYTES

    @property
    def max_send_bytes(self) -> int:
        """gRPC's limit on one sent message, in bytes."""
        return self.max_receive_bytes * RESPONSE_SIZE_FACTOR

    @property
    def security_summary(self) -> str:
        """What is on, for the log: `mutual TLS, bearer token`."""
        parts = []
        if self.tls_cert is not None:
            parts.append("mutual TLS" if self.tls_client_ca is not None else "TLS")
        if self.auth_token is not None:
            parts.append("bearer token")
        return ", ".join(parts) or "plaintext, no token"


def is_token(token: str) -> bool:
    """Whether token can travel in an HTTP/2 header: printable ASCII, no spaces.

    >>> is_token("s3cr3t-Token_1"), is_token("two words"), is_token("")
    (True, False, False)
    """
    return 0 < len(token) <= 4096 and all(33 <= ord(ch) <= 126 for ch in token)
