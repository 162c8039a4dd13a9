"""The gRPC service: `textmend.v1.TextMend` in front of the engine, plus health and reflection.

The servicer is deliberately thin. Each call goes request -> `RepairPolicy` -> `repair_bytes`
-> response, and every conversion between engine objects and protobuf messages is a small pure
function here (`policy_from_request`, `to_response`, `error_response`, ...) that can be tested
without a server. The engine knows nothing about gRPC.

Failures a caller can act on leave as a status code with an English message: `InputError` ->
INVALID_ARGUMENT, `TooLargeError` and `LimitError` -> RESOURCE_EXHAUSTED. Anything else is a bug
in textmend: it is logged with its traceback (never the document) and reported as INTERNAL, and
the worker keeps serving. In `RepairStream` the same failures become `RepairResponse.error` for
that document only, so one bad document never costs the others.

Limits (all in `ServerConfig`): content bytes (`max_message_mb`, checked by the engine), the
longest line (`max_line_kb`, checked here on the bytes before decoding), edits and findings per
document (`max_edits`, checked on the engine's result before it becomes a message) and
documents per stream (`max_stream_documents`: the stream then ends with RESOURCE_EXHAUSTED and
the `textmend-stream-limit` trailer, and a caller resends what was not answered on a new one).

Security, off by default: TLS or mutual TLS (`tls_cert`, `tls_key`, `tls_client_ca`) and a
bearer token that every `textmend.v1.TextMend` call must carry (`auth_token`, checked in
constant time by `_AuthInterceptor`); health checks and reflection stay open so probes work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import heapq
import hmac
import logging
import math
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

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
from textmend_server.config import ServerConfig
from textmend_server.decoding import DecodedText, sniff_binary
from textmend_server.edits import Edit
from textmend_server.engine import Repaired
from textmend_server.errors import UnknownPolicyError, shown
from textmend_server.policy import Category

_LOGGER = logging.getLogger(__name__)

#: Full name of the repair service, as health checks and reflection know it.
SERVICE_NAME: str = textmend_pb2.DESCRIPTOR.services_by_name["TextMend"].full_name

_POLICY_NAMES: Mapping[int, str] = {
    textmend_pb2.POLICY_FIX: "fix",
    textmend_pb2.POLICY_FLAG: "flag",
    textmend_pb2.POLICY_OFF: "off",
}

#: Trailing metadata key set when `RepairStream` ends because it carried the most documents a
#: stream may; its value is the limit. A caller resends the unanswered documents on a new stream.
STREAM_LIMIT_METADATA = "textmend-stream-limit"
#: Trailing metadata key of a call refused because its worker runs as many calls of its kind as
#: it may (UNAVAILABLE); its value is the flag that sets the limit (`--max-calls`, ...).
BUSY_METADATA = "textmend-busy"
#: Trailing metadata key of a stream ended because it sent nothing for `--stream-idle-seconds`
#: (UNAVAILABLE); its value is that limit. Every request it had sent was answered.
STREAM_IDLE_METADATA = "textmend-stream-idle"
#: Trailing metadata key of a call refused because its worker is still starting (UNAVAILABLE,
#: health NOT_SERVING); nothing was done, and another worker or a moment later will serve it.
STARTING_METADATA = "textmend-starting"

#: Longest `RepairRequest.id`, in characters (code points), as the proto documents: a long URL
#: fits (the sitemaps protocol caps URLs at 2,048 characters), and a response echoes the id up
#: to three times (the field and both diff headers), so a 1 MB id cannot make a 3 MB response.
MAX_ID_CHARS = 2048
#: Longest `declared_encoding` and `content_type`, in characters: IANA charset names are at
#: most 40 characters and a content type with its parameters fits easily; both are echoed in
#: responses and messages.
MAX_LABEL_CHARS = 100
#: Most characters of an id a log line shows (it is quoted with repr, so escapes included).
LOG_ID_CHARS = 100

_INTERNAL_MESSAGE = (
    "internal error while repairing the document; the server logged the details "
    "(please report it with the request id)"
)


# --- request -> engine -----------------------------------------------------------------------


def is_html(content_type: str) -> bool:
    """Whether a request's content type is HTML (its markup is then the document's own).

    >>> is_html("text/html; charset=utf-8"), is_html(""), is_html("text/plain")
    (True, False, False)
    """
    return content_type.split(";", 1)[0].strip().lower() in {"text/html", "application/xhtml+xml"}


def policy_from_request(request: textmend_pb2.RepairRequest) -> RepairPolicy:
    """Build the engine's policy from a request's `policy` map and content type.

    Keys are category names exactly as the proto spells them, in lower case: another case is
    refused with the name to use, so that `"mojibake"` and `"MOJIBAKE"` in one map cannot
    disagree. POLICY_UNSPECIFIED keeps the category's default; an unknown category name or
    policy value raises `UnknownPolicyError` (an `InputError`), quoting at most 100
    characters of the name.

    >>> req = textmend_pb2.RepairRequest(policy={"mojibake": textmend_pb2.POLICY_FLAG})
    >>> policy_from_request(req).action(Category.MOJIBAKE).value
    'flag'
    >>> policy_from_request(textmend_pb2.RepairRequest(policy={"Mojibake": 2}))
    Traceback (most recent call last):
    ...
    textmend_server.errors.UnknownPolicyError: unknown category 'Mojibake' in policy: ...
    """
    mapping: dict[str, str] = {}
    for name, value in request.policy.items():
        if name not in _CATEGORY_NAMES:
            hint = (
                f"policy keys are lower case, use {name.lower()!r}"
                if name.lower() in _CATEGORY_NAMES
                else f"known: {', '.join(sorted(_CATEGORY_NAMES))}"
            )
            raise UnknownPolicyError(f"unknown category {shown(name)} in policy: {hint}")
        if value == textmend_pb2.POLICY_UNSPECIFIED:
            continue
        mapping[name] = _POLICY_NAMES.get(value, f"policy value {value}")
    return RepairPolicy.from_mapping(mapping, html=is_html(request.content_type))


_CATEGORY_NAMES = frozenset(category.value for category in Category)


def check_request(request: textmend_pb2.RepairRequest) -> None:
    """Refuse fields longer than the contract allows (`InputError`), quoting none of them.

    >>> check_request(textmend_pb2.RepairRequest(id="x" * 3000))
    Traceback (most recent call last):
    ...
    textmend_server.errors.InputError: id is 3000 characters, over the limit of 2048: ...
    """
    if len(request.id) > MAX_ID_CHARS:
        raise InputError(
            f"id is {len(request.id)} characters, over the limit of {MAX_ID_CHARS}: send a "
            "shorter id (a hash of a long name, for example) and keep the name on your side"
        )
    for field in ("declared_encoding", "content_type"):
        value = getattr(request, field)
        if len(value) > MAX_LABEL_CHARS:
            raise InputError(
                f"{field} is {len(value)} characters, over the limit of {MAX_LABEL_CHARS}: "
                "send the bare name (such as 'utf-8' or 'text/html'), or leave it empty"
            )


def shown_id(request_id: str) -> str:
    r"""A request id for a log line: repr (so a newline cannot forge a line), at most
    `LOG_ID_CHARS` characters of it.

    >>> print(shown_id("doc\n1"))
    'doc\n1'
    >>> shown_id("x" * 200).endswith("' (first 100 of 200 characters)")
    True
    """
    return shown(request_id, LOG_ID_CHARS)


class LimitError(InputError):
    """A document exceeds one of the server's limits other than its size in bytes (which is
    the engine's `TooLargeError`); RESOURCE_EXHAUSTED, with the flag to raise in the message."""


def find_long_line(content: bytes, limit: int) -> int | None:
    r"""The byte offset where a run of more than limit bytes without LF or CR starts, or None.

    Runs at C speed without copying: each step asks `rfind` for the last line break in the
    next limit + 1 bytes and resumes after it, so each byte is looked at a few times at most.
    Counting bytes, not code points, is what makes it cheap before decoding; UTF-16 text may
    show a few extra breaks (a 0x0A byte inside a character), which only errs towards accepting.

    >>> find_long_line(b"ab\ncdef\rgh", 4), find_long_line(b"ab\ncdefg\nh", 4)
    (None, 3)
    """
    end = len(content)
    start = 0
    while end - start > limit:
        stop = start + limit + 1
        brk = max(content.rfind(b"\n", start, stop), content.rfind(b"\r", start, stop))
        if brk == -1:
            return start
        start = brk + 1
    return None


def check_limits(content: bytes, config: ServerConfig) -> None:
    """Refuse content with a line longer than the server allows (`LimitError`).

    Content over the byte limit, empty or binary is left for the engine to refuse with its
    own, more specific message.
    """
    if len(content) > config.max_content_bytes:
        return
    start = find_long_line(content, config.max_line_bytes)
    if start is not None and sniff_binary(content) is None:
        raise LimitError(
            f"content has a line longer than {config.max_line_kb} KiB (starting at byte "
            f"{start}): insert line breaks, split the document, or raise the server's "
            "--max-line-kb"
        )


def check_result(repaired: Repaired, config: ServerConfig) -> None:
    """Refuse a result with more edits and findings than the server sends (`LimitError`)."""
    count = len(repaired.edits) + len(repaired.findings)
    if count > config.max_edits:
        raise LimitError(
            f"repairing this document takes {len(repaired.edits)} edits and "
            f"{len(repaired.findings)} findings, over the limit of {config.max_edits} per "
            "document: split the document, turn off the noisiest categories in `policy`, or "
            "raise the server's --max-edits"
        )


def repair_request(
    request: textmend_pb2.RepairRequest,
    config: ServerConfig,
    cancelled: Callable[[], bool] | None = None,
) -> Repaired:
    """Run the engine on one request within the server's limits.

    Raises the engine's `InputError`s and `Cancelled`, and `LimitError`.
    """
    check_request(request)
    # Each read of a bytes field copies it: read once (a document may be 64 MB).
    content = request.content
    check_limits(content, config)
    repaired = repair_bytes(
        content,
        declared_encoding=request.declared_encoding or None,
        content_type=request.content_type,  # empty: the engine decides from the bytes
        policy=policy_from_request(request),
        include_diff=not request.omit_diff,
        label=request.id or "document",
        max_bytes=config.max_content_bytes,
        cancelled=cancelled,
    )
    check_result(repaired, config)
    return repaired


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


# Enum values by engine name, worked out once rather than by a descriptor lookup per message.
_VERDICTS: dict[str, textmend_pb2.Verdict.ValueType] = {}
_SOURCES: dict[str, textmend_pb2.EncodingInfo.Source.ValueType] = {}


def to_response(repaired: Repaired, request_id: str) -> textmend_pb2.RepairResponse:
    """Convert the engine's result for one document to a `RepairResponse`.

    Every message is built once, in place inside the response (a submessage passed to a
    constructor is copied into it); a document with nothing to report (the usual case) builds
    no edit, finding or diff at all. Returns exactly what `to_response_full` returns (tests
    compare them over the case files and the real corpus).
    """
    response = textmend_pb2.RepairResponse(
        id=request_id,
        text=repaired.text,
        diff=repaired.diff,
        original_length=len(repaired.original),
    )
    verdict = _VERDICTS.get(repaired.verdict.value)
    if verdict is None:
        verdict = _VERDICTS[repaired.verdict.value] = to_verdict(repaired.verdict.value)
    response.verdict = verdict
    decoded = repaired.decoded
    info = response.encoding
    if decoded is None:
        info.SetInParent()
    else:
        response.content_bytes = decoded.content_bytes
        info.name = decoded.encoding
        info.confidence = decoded.confidence
        source = _SOURCES.get(decoded.source.value)
        if source is None:
            source = _SOURCES[decoded.source.value] = to_source(decoded.source.value)
        info.source = source
        for name, confidence in decoded.runners_up:
            info.runners_up.add(name=name, confidence=confidence)
        info.declared = decoded.declared or ""
        for c in decoded.candidates:
            info.candidates.add(
                name=c.name,
                confidence=c.confidence,
                source=c.source,
                decodes=c.decodes,
                implausibility=c.implausibility if c.decodes else 0.0,
                quality=c.quality,
                same_as=c.same_as or "",
                chosen=c.chosen,
            )
        for r in decoded.regions:
            info.regions.add(
                byte_start=r.byte_start,
                byte_end=r.byte_end,
                start=r.char_start,
                end=r.char_end,
                encoding=r.encoding,
            )
        info.overruled = decoded.overruled or ""
    if repaired.edits:
        response.edits.extend(to_edit(edit) for edit in repaired.edits)
    if repaired.findings:
        response.findings.extend(to_edit(finding, finding=True) for finding in repaired.findings)
    timings = repaired.timings
    times = response.timings
    times.SetInParent()
    for key, name in _TIMING_FIELDS:
        value = timings.get(key)
        if value:
            setattr(times, name, max(0, round(value * 1_000_000)))
    return response


# Engine timing keys and the `Timings` fields they fill, in microseconds.
_TIMING_FIELDS = (
    ("decode", "decode_us"),
    ("detect", "detect_us"),
    ("repair", "repair_us"),
    ("diff", "diff_us"),
    ("total", "total_us"),
)


def to_response_full(repaired: Repaired, request_id: str) -> textmend_pb2.RepairResponse:
    """The reference conversion `to_response` must agree with: every submessage built on its
    own and copied in, every list built, whether or not it is empty."""
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
    if isinstance(exc, TooLargeError | LimitError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, Cancelled):
        return grpc.StatusCode.CANCELLED, str(exc)
    if isinstance(exc, InputError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    return grpc.StatusCode.INTERNAL, _INTERNAL_MESSAGE


def error_response(
    request_id: str, code: grpc.StatusCode, message: str
) -> textmend_pb2.RepairResponse:
    """A `RepairStream` response reporting that one document failed; an id over the limit
    is echoed cut to its first `MAX_ID_CHARS` characters.

    >>> error_response("a", grpc.StatusCode.INVALID_ARGUMENT, "content is empty").error.code
    'INVALID_ARGUMENT'
    """
    return textmend_pb2.RepairResponse(
        id=request_id[:MAX_ID_CHARS], error=textmend_pb2.Error(code=code.name, message=message)
    )


def _log_unexpected(exc: BaseException, request: textmend_pb2.RepairRequest) -> None:
    """Log a bug with its traceback but without the exception's message, which may quote text."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    _LOGGER.error(
        "unexpected %s while repairing id=%s (%d bytes); traceback:\n%s",
        type(exc).__name__,
        shown_id(request.id),
        len(request.content),
        frames.rstrip(),
    )


def _log_done(
    request: textmend_pb2.RepairRequest,
    response: textmend_pb2.RepairResponse,
    started: float,
    content: bool = False,
) -> None:
    """One DEBUG line per document: id, size and outcome; the text only when asked for
    (`--log-content`). Nothing is worked out when DEBUG is off."""
    if _LOGGER.isEnabledFor(logging.DEBUG):
        _LOGGER.debug(
            "repair id=%s bytes=%d declared=%s -> %s in %.1f ms%s",
            shown_id(request.id),
            len(request.content),
            shown(request.declared_encoding),
            _outcome(response),
            (time.perf_counter() - started) * 1000,
            f" content={request.content[:200]!r}" if content else "",
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


# --- taking turns at the engine ----------------------------------------------------------------

# How often a document waiting for its turn checks that its caller is still there (and that it
# is within --max-seconds), in seconds: a caller that left frees its place within this long.
_TURN_POLL = 0.25
# Classes of engine time above the first slice (`Turns`): 1 to 2 slices, then everything
# longer in order of arrival. More classes (up to 2**9 slices) were measured first: under issue
# 16's 64-caller load the longest CJK documents then yielded to every younger one and missed
# 60 s deadlines; in arrival order they finish in turn, while a document that needed a little
# more than a slice (a corrupted 5 KB page, 50-100 ms) still goes before them.
_TURN_CLASSES = 2


@dataclasses.dataclass(eq=False)
class Turn:
    """One document's place at the engine of a worker (see `Turns`)."""

    #: Arrival order: among documents that have had about as much engine time, the oldest
    #: goes first.
    seq: int
    #: CPU seconds the document's thread spent in the engine in earlier turns.
    attained: float = 0.0
    #: `time.thread_time()` when its current turn began (the turn is taken, used and given
    #: back on the call's own thread).
    granted: float = 0.0
    #: The lane it holds or waits for: `Turns.LIGHT` until it has had a slice, then `HEAVY`.
    lane: int = 0
    holding: bool = False
    abandoned: bool = False
    event: threading.Event = dataclasses.field(default_factory=threading.Event)


class Turns:
    """Which admitted documents run the engine in this worker, so that heavy documents do not
    starve light ones (issue 16: a 5 KB clean document waited seconds behind CJK searches).

    The engine is CPU-bound Python, so a worker's admitted calls would otherwise share its core
    through the GIL, each slowed by all the others. Here two lanes hold one document each:

    * the light lane takes documents as they arrive, in order, and keeps each until it has had
      `slice_seconds` of engine time; light documents (a few milliseconds) finish there;
    * a document that has had its slice moves to the heavy lane at the engine's next check
      (the engine asks whether to go on between blocks, stages and phase-slip searches: its
      `cancelled` callback calls `checkpoint`), freeing the light lane for the next arrival.
      Heavy documents are ranked by the engine time they have had, in classes (one to two
      slices, then more, see `_TURN_CLASSES`), the oldest first within a class; the running one
      yields at a check to a waiting one of a lower class, so one that needed a little more
      than a slice goes before the long CJK searches, and the searches finish in the order they
      came instead of all slowing down together.

    So at most two documents share the worker's core: a light one never waits for a heavy one
    to reach its next check, only for the light ones before it. Engine time is the thread's CPU
    time (`time.thread_time`), so neither waiting for the GIL nor a busy machine makes a light
    document look heavy. A waiting document checks every `_TURN_POLL` seconds whether its caller
    is still there (gone is the engine's own callback, which may raise `LimitError` past
    --max-seconds) and gives its place up when not. Nothing blocks while holding the lock.

    >>> turns = Turns(slice_seconds=0.05)
    >>> first, second = turns.new_turn(), turns.new_turn()
    >>> turns.acquire(first, lambda: False), turns.waiting()
    (True, 0)
    >>> turns.release(first); turns.acquire(second, lambda: False)
    True
    """

    LIGHT = 0
    HEAVY = 1

    def __init__(self, slice_seconds: float) -> None:
        self._slice = slice_seconds
        self._lock = threading.Lock()
        self._free = [True, True]  # per lane
        # Per lane, waiting turns as (class, arrival, turn): the light lane's class is always 0.
        self._queues: list[list[tuple[int, int, Turn]]] = [[], []]
        self._seq = 0

    def new_turn(self) -> Turn:
        """A place for one more document, behind every document that came before it."""
        with self._lock:
            self._seq += 1
            return Turn(self._seq)

    def waiting(self) -> int:
        """Documents waiting for their turn now."""
        with self._lock:
            return sum(not t.abandoned for queue in self._queues for _, _, t in queue)

    def _class(self, attained: float) -> int:
        """0 below one slice, then 1, 2, ... as attained doubles (at most `_TURN_CLASSES`)."""
        level = 0
        bound = self._slice
        while attained >= bound and level < _TURN_CLASSES:
            level += 1
            bound *= 2
        return level

    def _best(self, lane: int) -> tuple[int, int, Turn] | None:
        """The waiting document of lane to run next (dropping places given up), or None."""
        queue = self._queues[lane]
        while queue and queue[0][2].abandoned:
            heapq.heappop(queue)
        return queue[0] if queue else None

    def _pass_on(self, lane: int) -> None:
        """Give lane's free turn to its best waiting document, or keep it free."""
        best = self._best(lane)
        if best is None:
            self._free[lane] = True
            return
        heapq.heappop(self._queues[lane])
        best[2].holding = True
        best[2].event.set()

    def _take_or_queue(self, turn: Turn, lane: int, attained: float) -> bool:
        """Take lane's turn now (True) or join its queue (False); the lock is held."""
        turn.lane = lane
        if self._free[lane] and self._best(lane) is None:
            self._free[lane] = False
            turn.holding = True
            turn.granted = time.thread_time()
            return True
        turn.event.clear()
        heapq.heappush(self._queues[lane], (self._class(attained), turn.seq, turn))
        return False

    def acquire(self, turn: Turn, gone: Callable[[], bool]) -> bool:
        """Wait for turn in the light lane; False when the caller left first (the place is
        given up)."""
        with self._lock:
            if self._take_or_queue(turn, self.LIGHT, 0.0):
                return True
        return self._wait(turn, gone)

    def checkpoint(self, turn: Turn, gone: Callable[[], bool]) -> bool:
        """Called where the engine may stop: move a document that has had its slice to the
        heavy lane, or let a heavy one yield to one that has had less, and wait for the turn
        when it must. False when the caller left while waiting."""
        if not turn.holding:
            return True
        attained = turn.attained + time.thread_time() - turn.granted
        if attained < self._slice:
            return True
        with self._lock:
            if turn.lane == self.HEAVY:
                best = self._best(self.HEAVY)
                if best is None or best[:2] >= (self._class(attained), turn.seq):
                    return True
            turn.holding = False
            turn.attained = attained
            self._pass_on(turn.lane)
            if self._take_or_queue(turn, self.HEAVY, attained):
                return True
        return self._wait(turn, gone)

    def release(self, turn: Turn) -> None:
        """The document is done with the engine (or gave up): the next one's turn."""
        with self._lock:
            if turn.holding:
                turn.holding = False
                turn.attained += time.thread_time() - turn.granted
                self._pass_on(turn.lane)
            turn.abandoned = True

    def _wait(self, turn: Turn, gone: Callable[[], bool]) -> bool:
        try:
            while not turn.event.wait(_TURN_POLL):
                if gone():
                    with self._lock:
                        if not turn.holding:
                            turn.abandoned = True
                            return False
                    break  # granted meanwhile: the engine's own check stops it
        except BaseException:
            self.release(turn)
            raise
        turn.granted = time.thread_time()
        return True


class TextMendServicer(textmend_pb2_grpc.TextMendServicer):
    """`textmend.v1.TextMend`: each method is request -> engine -> response; documents take
    turns at the engine (`Turns`)."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._turns = Turns(config.time_slice)

    def _repair(
        self,
        request: textmend_pb2.RepairRequest,
        context: grpc.ServicerContext,
        method: str,
        deadline: float | None,
    ) -> textmend_pb2.RepairResponse:
        """Repair one document, or return an error response saying why it could not be.

        The engine asks between blocks of work whether the caller is still there, so a call
        whose deadline passed or that was cancelled stops using the CPU. deadline is the
        call's, on the `time.perf_counter` clock (None without one), for the log.
        """
        started = time.perf_counter()
        turn = self._turns.new_turn()
        try:
            watch = _gone(context, started, self._config.max_seconds)

            def cancelled() -> bool:
                return not self._turns.checkpoint(turn, watch) or watch()

            try:
                if not self._turns.acquire(turn, watch):
                    raise Cancelled()
                repaired = repair_request(request, self._config, cancelled)
            finally:
                self._turns.release(turn)
            response = to_response(repaired, request.id)
        except Exception as exc:
            code, message = classify_error(exc)
            if code is grpc.StatusCode.INTERNAL:
                _log_unexpected(exc, request)
            if code is grpc.StatusCode.CANCELLED:
                now = time.perf_counter()
                _LOGGER.info(
                    "repair id=%s abandoned after %.2f s (%s): the caller cancelled or its "
                    "deadline passed",
                    shown_id(request.id),
                    now - started,
                    "no deadline" if deadline is None else f"{now - deadline:.2f} s past deadline",
                )
            response = error_response(request.id, code, message)
        _log_done(request, response, started, self._config.log_content)
        _observe(method, request, response, time.perf_counter() - started)
        return response

    def Repair(
        self, request: textmend_pb2.RepairRequest, context: grpc.ServicerContext
    ) -> textmend_pb2.RepairResponse:
        """Repair one document; failures leave as the status code the proto documents."""
        deadline = _abort_if_expired(context)
        response = self._repair(request, context, "Repair", deadline)
        if response.HasField("error"):
            context.abort(grpc.StatusCode[response.error.code], response.error.message)
        if not context.is_active():
            _LOGGER.debug("repair id=%s finished after the caller gave up", shown_id(request.id))
        return response

    def RepairStream(
        self,
        request_iterator: Iterable[textmend_pb2.RepairRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[textmend_pb2.RepairResponse]:
        """Repair documents as they arrive, one response per request, errors per document.

        A document beyond `max_stream_documents` ends the stream with RESOURCE_EXHAUSTED and
        the `textmend-stream-limit` trailer; the caller resends it, and any other document not
        yet answered, on a new stream.
        """
        count = 0
        deadline = _abort_if_expired(context)
        checked = time.perf_counter()
        for request in request_iterator:
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
                limit = self._config.max_stream_documents
                _LOGGER.info("stream ended at its limit of %d documents", limit)
                context.set_trailing_metadata(
                    (*VERSION_METADATA, (STREAM_LIMIT_METADATA, str(limit)))
                )
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"this stream has carried {limit} documents, the server's limit per "
                    "stream: open a new stream for the rest (documents without a response were "
                    "not repaired), or raise the server's --max-stream-documents",
                )
            response = self._repair(request, context, "RepairStream", deadline)
            if response.error.code == grpc.StatusCode.CANCELLED.name:
                return
            yield response
            count += 1
        _LOGGER.debug("stream finished: %d documents", count)


# How long a call runs before the engine starts asking whether its caller is still there:
# asking costs a lock in gRPC, and the engine asks at every stage of every block.
CANCEL_CHECK_AFTER = 0.02


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


def _abort_if_expired(context: grpc.ServicerContext) -> float | None:
    """Abort with DEADLINE_EXCEEDED when the caller's deadline has already passed; else the
    deadline on the `time.perf_counter` clock, or None when the call has none."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the caller's deadline passed")
    return None if remaining is None else time.perf_counter() + remaining


# --- the server ------------------------------------------------------------------------------

VERSION_METADATA = (("textmend-version", __version__),)

_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


class _VersionInterceptor(grpc.ServerInterceptor):
    """Sends `textmend-version` as initial metadata on every call, health and reflection
    included, so a caller or a proxy can tell which release answered.

    The headers go out with the first response, not when the call starts: a client may retry
    a call only until it has received headers, so a worker that dies mid-repair leaves the
    call retryable (`Repair` is retried on UNAVAILABLE by the client's service config). A call
    that fails carries the version in its trailers instead.
    """

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        for kind in _KINDS:
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                wrap = _with_version if kind.endswith("unary") else _with_version_streaming
                return handler._replace(**{kind: wrap(behaviour)})
        return handler


def _with_version(behaviour: Callable[..., object]) -> Callable[..., object]:
    def wrapped(request_or_iterator: object, context: grpc.ServicerContext) -> object:
        context.set_trailing_metadata(VERSION_METADATA)  # for a call that fails
        response = behaviour(request_or_iterator, context)
        context.send_initial_metadata(VERSION_METADATA)
        return response

    return wrapped


def _with_version_streaming(
    behaviour: Callable[..., Iterator[object]],
) -> Callable[..., Iterator[object]]:
    def wrapped(request_or_iterator: object, context: grpc.ServicerContext) -> Iterator[object]:
        context.set_trailing_metadata(VERSION_METADATA)  # for a call that fails
        sent = False
        for response in behaviour(request_or_iterator, context):
            if not sent:
                context.send_initial_metadata(VERSION_METADATA)
                sent = True
            yield response

    return wrapped


_UNAUTHENTICATED_MESSAGE = (
    "this server requires a bearer token: send the metadata 'authorization: Bearer <token>' "
    "(textmend --token-file PATH, or TextMendClient(token=...))"
)
_WRONG_TOKEN_MESSAGE = "the bearer token is not valid for this server"


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class _AuthInterceptor(grpc.ServerInterceptor):
    """Refuses `textmend.v1.TextMend` calls without `authorization: Bearer <token>`.

    The presented and expected tokens are compared as SHA-256 digests with
    `hmac.compare_digest`, so neither the time taken nor the length reveals the token. Health
    checks and reflection are not checked: probes carry no secrets.
    """

    def __init__(self, token: str) -> None:
        self._expected = _digest(token.encode("ascii"))
        self._prefix = f"/{SERVICE_NAME}/"

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(self._prefix):
            return handler
        message = self._refusal(handler_call_details.invocation_metadata or ())
        if message is None:
            return handler
        for kind in _KINDS:
            if getattr(handler, kind) is not None:
                return handler._replace(**{kind: _refuse(message)})
        return handler

    def _refusal(self, metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
        """None when the metadata carries the right token, else why the call is refused."""
        values = [value for key, value in metadata if key == "authorization"]
        if not values:
            return _UNAUTHENTICATED_MESSAGE
        value = values[0].encode("latin-1") if isinstance(values[0], str) else values[0]
        scheme, _, token = value.partition(b" ")
        if scheme.lower() != b"bearer":
            return _UNAUTHENTICATED_MESSAGE
        if not hmac.compare_digest(_digest(token.strip()), self._expected):
            return _WRONG_TOKEN_MESSAGE
        return None


def _refuse(message: str) -> Callable[..., object]:
    def refused(_request_or_iterator: object, context: grpc.ServicerContext) -> object:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return refused


# --- admission ---------------------------------------------------------------------------------

# What each method counts against; a method not named here (health `Check`, reflection's
# and health's unknown future methods that are unary) is never limited.
_REPAIR_METHOD = f"/{SERVICE_NAME}/Repair"
_STREAM_METHOD = f"/{SERVICE_NAME}/RepairStream"


class Admission:
    """How many calls of each kind a worker runs, against the limits `ServerConfig` sets.

    Never blocks: a call that finds its kind full is refused at once (UNAVAILABLE, see
    `busy_message`), because one that waited would hold a thread, and threads are what idle
    streams used to exhaust (issue 16). Kinds: `repair` (`Repair`, `--max-calls`), `stream`
    (`RepairStream`, `--max-streams`) and `admin` (health `Watch` and reflection streams,
    `--max-admin-streams`).

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


def call_kind(method: str, handler: grpc.RpcMethodHandler) -> str | None:
    """The `Admission` kind a call to method counts against, or None when it is not limited.

    Health `Check` and every other unary call but `Repair` are never limited: they finish in
    microseconds, and the pool keeps `--threads` threads for them.
    """
    if method == _REPAIR_METHOD:
        return "repair"
    if method == _STREAM_METHOD:
        return "stream"
    if handler.request_streaming or handler.response_streaming:
        return "admin"
    return None


class StreamIdle(Exception):
    """A stream's caller sent nothing for the idle limit (raised in the handler's thread)."""


_END = object()


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
    textmend_server.service.StreamIdle
    >>> requests.close(); caller_done.set()
    """

    def __init__(self, requests: Iterator[Any], seconds: float) -> None:
        self._seconds = seconds
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._closed = threading.Event()
        self._ended = False
        self._reader = threading.Thread(
            target=self._read, args=(requests,), name="textmend-stream-reader", daemon=True
        )
        self._reader.start()

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


# How often a stream's reader checks that its call is still wanted while its queue is full.
_POLL_SECONDS = 0.5


class _AdmissionInterceptor(grpc.ServerInterceptor):
    """Applies `Admission` to every call, and the idle limit to every request stream.

    A refused call gets UNAVAILABLE with `busy_message` and the `textmend-busy` trailer, before
    any response header, so gRPC clients with a retry policy (the bundled one, Envoy) may retry
    it. A stream idle for `stream_idle_seconds` ends with UNAVAILABLE and the
    `textmend-stream-idle` trailer. The count is taken and given back on the call's own thread,
    so a handler that never runs (an interceptor outside this one refused the call) holds
    nothing.
    """

    def __init__(self, config: ServerConfig) -> None:
        self._admission = Admission(config)
        self._idle = config.stream_idle_seconds
        self._ready = threading.Event()

    def ready(self) -> None:
        """The engine is warm: admit `textmend.v1.TextMend` calls from now on (until then they
        are refused with UNAVAILABLE and the `textmend-starting` trailer)."""
        self._ready.set()

    @property
    def admission(self) -> Admission:
        """The counts, for tests and logs."""
        return self._admission

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        kind = call_kind(handler_call_details.method, handler)
        if kind is None:
            return handler
        for attr in _KINDS:
            behaviour = getattr(handler, attr)
            if behaviour is not None:
                wrap = self._streaming if handler.response_streaming else self._unary
                return handler._replace(**{attr: wrap(behaviour, kind, handler.request_streaming)})
        return handler

    def _refuse_starting(self, context: grpc.ServicerContext) -> None:
        context.set_trailing_metadata((*VERSION_METADATA, (STARTING_METADATA, "1")))
        context.abort(
            grpc.StatusCode.UNAVAILABLE,
            "this server worker is starting and reports NOT_SERVING: nothing was done; retry "
            "after a short backoff or on another connection (the textmend client does so by "
            "itself within its deadline)",
        )

    def _refuse(self, kind: str, context: grpc.ServicerContext) -> None:
        flag = Admission.KINDS[kind][1]
        _LOGGER.debug(
            "refused a call: %d %s calls running (%s)", self._admission.running(kind), kind, flag
        )
        context.set_trailing_metadata((*VERSION_METADATA, (BUSY_METADATA, flag)))
        context.abort(grpc.StatusCode.UNAVAILABLE, self._admission.busy_message(kind))

    def _idle_ended(self, context: grpc.ServicerContext) -> None:
        context.set_trailing_metadata(
            (*VERSION_METADATA, (STREAM_IDLE_METADATA, f"{self._idle:g}"))
        )
        context.abort(
            grpc.StatusCode.UNAVAILABLE,
            f"this stream sent no request for {self._idle:g} s while none of its documents was "
            "being repaired, the server's limit (--stream-idle-seconds); every request it sent "
            "was answered: open a new stream when there is more to send, or raise the server's "
            "--stream-idle-seconds",
        )

    @contextlib.contextmanager
    def _admitted(
        self, kind: str, request_streaming: bool, request_or_iterator: Any, context: Any
    ) -> Iterator[Any]:
        """Admit one call of kind (or refuse it), yield what its behaviour reads (a request
        stream under the idle limit), and give its place back however it ends."""
        if kind != "admin" and not self._ready.is_set():
            self._refuse_starting(context)
        if not self._admission.enter(kind):
            self._refuse(kind, context)
        requests = (
            IdleLimitedRequests(request_or_iterator, self._idle) if request_streaming else None
        )
        try:
            yield request_or_iterator if requests is None else requests
        except StreamIdle:
            self._idle_ended(context)
        finally:
            if requests is not None:
                requests.close()
            self._admission.leave(kind)

    def _unary(
        self, behaviour: Callable[..., Any], kind: str, request_streaming: bool
    ) -> Callable[..., Any]:
        def admitted(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
            with self._admitted(kind, request_streaming, request_or_iterator, context) as reads:
                return behaviour(reads, context)

        return admitted

    def _streaming(
        self, behaviour: Callable[..., Iterator[Any]], kind: str, request_streaming: bool
    ) -> Callable[..., Iterator[Any]]:
        def admitted(request_or_iterator: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with self._admitted(kind, request_streaming, request_or_iterator, context) as reads:
                yield from behaviour(reads, context)

        return admitted


# --- reflection --------------------------------------------------------------------------------

#: The current reflection service, which grpcurl 1.9+ and Postman ask first; `v1alpha` is the
#: one grpcio-reflection implements. Their messages are the same, field for field.
REFLECTION_V1_SERVICE = "grpc.reflection.v1.ServerReflection"
_REFLECTION_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _register_reflection_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    """Add `grpc/reflection/v1/reflection.proto` to pool (once), built from v1alpha's file by
    renaming its package, so reflection can describe the v1 service it serves."""
    try:
        pool.FindFileByName(_REFLECTION_V1_FILE)
        return
    except KeyError:
        pass
    old, new = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    proto = descriptor_pb2.FileDescriptorProto.FromString(reflection_pb2.DESCRIPTOR.serialized_pb)
    proto.name = _REFLECTION_V1_FILE
    proto.package = "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    pool.AddSerializedFile(proto.SerializeToString())


def enable_reflection(server: grpc.Server, service_names: Iterable[str]) -> None:
    """Serve server reflection as `grpc.reflection.v1` and `grpc.reflection.v1alpha`, both
    listing service_names and themselves."""
    names = (*service_names, REFLECTION_V1_SERVICE, reflection.SERVICE_NAME)
    _register_reflection_v1_descriptor(descriptor_pool.Default())
    servicer = reflection.ReflectionServicer(names)
    reflection.enable_server_reflection(names, server)
    v1 = grpc.method_handlers_generic_handler(
        REFLECTION_V1_SERVICE,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((v1,))


def server_options(config: ServerConfig) -> list[tuple[str, int]]:
    """gRPC channel arguments for a server built from config."""
    return [
        ("grpc.max_receive_message_length", config.max_receive_bytes),
        ("grpc.max_send_message_length", config.max_send_bytes),
        ("grpc.so_reuseport", 1 if config.reuse_port else 0),
    ]


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials for config, requiring client certificates when it names a client CA;
    None for plaintext."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    return grpc.ssl_server_credentials(
        [(config.tls_key, config.tls_cert)],
        root_certificates=config.tls_client_ca,
        require_client_auth=config.tls_client_ca is not None,
    )


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
    overall server ("") and `textmend.v1.TextMend`; until then `TextMend` calls are refused
    with UNAVAILABLE and the `textmend-starting` trailer, which the client retries. In a worker
    forked from a parent that warmed the engine (`textmend_server.main`), the warm-up here only
    confirms it (milliseconds). Pass health_servicer to drive it later
    (`enter_graceful_shutdown()` before `server.stop(grace)`). Bind "127.0.0.1:0" in tests.
    """
    # Outermost first: every answer carries the version; a call without its token is refused
    # before it counts against a limit.
    interceptors: list[grpc.ServerInterceptor] = [_VersionInterceptor()]
    if config.auth_token is not None:
        interceptors.append(_AuthInterceptor(config.auth_token))
    admission = _AdmissionInterceptor(config)
    interceptors.append(admission)
    # One thread per call the limits admit plus --threads for the rest, and gRPC refuses a
    # call beyond that rather than queue it: nothing ever waits for a thread, so idle or slow
    # streams cannot delay a health check or another caller's Repair (issue 16).
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.pool_threads, thread_name_prefix="textmend"),
        options=server_options(config),
        interceptors=interceptors,
        maximum_concurrent_rpcs=config.pool_threads,
    )
    textmend_pb2_grpc.add_TextMendServicer_to_server(TextMendServicer(config), server)
    health_servicer = health_servicer or health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(server, (SERVICE_NAME, health.SERVICE_NAME))
    try:
        credentials = server_credentials(config)
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:
        port = 0
    if port == 0:
        raise OSError(f"cannot bind {address}: the address is in use or not available here")
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    server.start()
    if config.warm_up:
        warm_up()
    admission.ready()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port


__all__ = [
    "BUSY_METADATA",
    "MAX_ID_CHARS",
    "MAX_LABEL_CHARS",
    "REFLECTION_V1_SERVICE",
    "SERVICE_NAME",
    "STARTING_METADATA",
    "STREAM_IDLE_METADATA",
    "STREAM_LIMIT_METADATA",
    "Admission",
    "IdleLimitedRequests",
    "LimitError",
    "ServerConfig",
    "TextMendServicer",
    "Turn",
    "Turns",
    "call_kind",
    "check_limits",
    "check_request",
    "check_result",
    "classify_error",
    "create_server",
    "enable_reflection",
    "error_response",
    "find_long_line",
    "policy_from_request",
    "server_credentials",
    "shown_id",
    "to_category",
    "to_edit",
    "to_encoding_info",
    "to_response",
    "to_source",
    "to_timings",
    "to_verdict",
]
