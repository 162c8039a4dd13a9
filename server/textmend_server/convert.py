"""Conversions between the engine's objects and the contract's protobuf messages.

Every function here is small and pure, so each can be tested without a server: a request's
`policy` map becomes a `RepairPolicy`, and an engine result (`Repaired`) becomes a
`RepairResponse`, either in place (`to_response`, the servicer's) or built piece by piece
(`to_response_full`, the reference the tests hold `to_response` to).

Engine enum values are the proto names in lower case without their prefix (`"ruby_leak"` is
`CATEGORY_RUBY_LEAK`), so each enum converts both ways through one table (`ProtoEnum`) built
once from the proto's descriptor; a value the contract does not know yet becomes
`*_UNSPECIFIED` rather than an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from textmend.v1 import textmend_pb2
from textmend_server import RepairPolicy
from textmend_server.decoding import DecodedText, Region
from textmend_server.detection import Candidate
from textmend_server.edits import Edit
from textmend_server.engine import Repaired
from textmend_server.errors import UnknownPolicyError, shown
from textmend_server.policy import Category

#: Full name of the repair service, as health checks, reflection and the interceptors know it.
SERVICE_NAME: str = textmend_pb2.DESCRIPTOR.services_by_name["TextMend"].full_name

#: Longest `RepairRequest.id`, in characters (code points), as the proto documents: a long URL
#: fits (the sitemaps protocol caps URLs at 2,048 characters), and a response echoes the id up
#: to three times (the field and both diff headers), so a 1 MB id cannot make a 3 MB response.
MAX_ID_CHARS = 2048

#: The name every proto3 enum here gives its zero value, after the prefix (`*_UNSPECIFIED`).
_UNSPECIFIED = "unspecified"


@dataclass(frozen=True)
class ProtoEnum:
    """One proto enum's values by engine name and back, worked out once from its descriptor
    (a lookup per message would cost a descriptor search each time).

    >>> CATEGORIES.value("ruby_leak") == textmend_pb2.CATEGORY_RUBY_LEAK
    True
    >>> CATEGORIES.value("not_yet_in_the_proto"), CATEGORIES.name(textmend_pb2.CATEGORY_MOJIBAKE)
    (0, 'mojibake')
    """

    values: Mapping[str, int]
    names: Mapping[int, str]
    unspecified: int

    @classmethod
    def of(cls, enum: EnumTypeWrapper, prefix: str) -> ProtoEnum:
        """The table of enum, whose value names all start with prefix (`"CATEGORY_"`)."""
        values = {name.removeprefix(prefix).lower(): value for name, value in enum.items()}
        names = {value: name for name, value in values.items()}
        return cls(values, names, values[_UNSPECIFIED])

    def value(self, name: str) -> Any:
        """The proto value of an engine name; `*_UNSPECIFIED` for a name the proto lacks."""
        return self.values.get(name, self.unspecified)

    def name(self, value: int) -> str:
        """The engine name of a proto value (`"unspecified"` for the zero value)."""
        return self.names[value]


CATEGORIES = ProtoEnum.of(textmend_pb2.Category, "CATEGORY_")
SOURCES = ProtoEnum.of(textmend_pb2.EncodingInfo.Source, "SOURCE_")
VERDICTS = ProtoEnum.of(textmend_pb2.Verdict, "VERDICT_")
POLICIES = ProtoEnum.of(textmend_pb2.Policy, "POLICY_")

_CATEGORY_NAMES = frozenset(category.value for category in Category)


# --- request -> engine -----------------------------------------------------------------------


# `min_confidence` travels as a 32-bit float (0.9 arrives as 0.8999999761...): rounded to
# this many decimals, a caller's 0.9 is 0.9 again. Confidences are reported to three.
MIN_CONFIDENCE_DECIMALS = 6


def policy_from_request(request: textmend_pb2.RepairRequest) -> RepairPolicy:
    """Build the engine's policy from a request's `policy` map and `min_confidence`.

    Keys are category names exactly as the proto spells them, in lower case: another case is
    refused with the name to use, so that `"mojibake"` and `"MOJIBAKE"` in one map cannot
    disagree. POLICY_UNSPECIFIED keeps the category's default; an unknown category name or
    policy value raises `UnknownPolicyError` (an `InputError`), quoting at most 100
    characters of the name. Whether the document is HTML is not decided here: the engine
    decides it once, from the content type and the bytes (`engine.is_html`).

    >>> req = textmend_pb2.RepairRequest(policy={"mojibake": textmend_pb2.POLICY_FLAG})
    >>> policy_from_request(req).action(Category.MOJIBAKE).value
    'flag'
    >>> policy_from_request(textmend_pb2.RepairRequest(policy={"Mojibake": 2}))
    Traceback (most recent call last):
    ...
    textmend_server.errors.UnknownPolicyError: unknown category 'Mojibake' in policy: ...
    >>> policy_from_request(textmend_pb2.RepairRequest(min_confidence=0.9)).min_confidence
    0.9
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
        mapping[name] = POLICIES.names.get(value, f"policy value {value}")
    floor = request.min_confidence
    if not math.isnan(floor):
        floor = round(floor, MIN_CONFIDENCE_DECIMALS)
    return RepairPolicy.from_mapping(mapping, min_confidence=floor)


# --- engine -> response ----------------------------------------------------------------------
#
# Each `*_fields` function is the one statement of which engine attribute fills which field;
# `to_response` adds messages in place with them, `to_response_full` constructs them.


def _edit_fields(edit: Edit, finding: bool) -> dict[str, Any]:
    """The fields of an `Edit` message for an engine edit or, with finding, a finding.

    For a finding nothing changed, so `replacement` is the original text and the engine's
    proposed repair, if it has one, goes to `suggestion`.
    """
    fields: dict[str, Any] = {
        "category": CATEGORIES.value(edit.category.value),
        "original_start": edit.original_start,
        "original_end": edit.original_end,
        "cleaned_start": edit.cleaned_start,
        "cleaned_end": edit.cleaned_end,
        "original": edit.original,
        "replacement": edit.original if finding else edit.replacement,
        "reason": edit.reason,
        "confidence": edit.confidence,
    }
    if finding and edit.replacement != edit.original:
        fields["suggestion"] = edit.replacement
    if edit.byte_span is not None:
        fields["original_start_byte"], fields["original_end_byte"] = edit.byte_span
    return fields


def _candidate_fields(c: Candidate) -> dict[str, Any]:
    """The fields of an `EncodingCandidate` message for one codec the engine weighed."""
    return {
        "name": c.name,
        "confidence": c.confidence,
        "source": c.source,
        "decodes": c.decodes,
        "implausibility": c.implausibility if c.decodes else 0.0,
        "quality": c.quality,
        "same_as": c.same_as or "",
        "chosen": c.chosen,
    }


# `EncodingRegion` fields and the `Region` attributes that fill them.
_REGION_FIELDS = (
    ("byte_start", "byte_start"),
    ("byte_end", "byte_end"),
    ("start", "char_start"),
    ("end", "char_end"),
    ("encoding", "encoding"),
)


def _region_fields(r: Region) -> dict[str, Any]:
    """The fields of an `EncodingRegion` message for one run decoded with its own codec."""
    return {field: getattr(r, attribute) for field, attribute in _REGION_FIELDS}


def _encoding_fields(decoded: DecodedText) -> dict[str, Any]:
    """The scalar fields of an `EncodingInfo` message (its lists are added by the callers)."""
    return {
        "name": decoded.encoding,
        "confidence": decoded.confidence,
        "source": SOURCES.value(decoded.source.value),
        "declared": decoded.declared or "",
        "overruled": decoded.overruled or "",
    }


# Engine timing keys and the `Timings` fields they fill, in whole microseconds.
_TIMING_FIELDS = (
    ("decode", "decode_us"),
    ("detect", "detect_us"),
    ("repair", "repair_us"),
    ("diff", "diff_us"),
    ("total", "total_us"),
)
_US_PER_SECOND = 1_000_000


def _set_timings(message: textmend_pb2.Timings, timings: Mapping[str, float]) -> None:
    """Fill a `Timings` message with the engine's seconds per stage, as whole microseconds
    (a negative rounding error becomes 0); a stage without time is left unset."""
    for key, name in _TIMING_FIELDS:
        value = timings.get(key)
        if value:
            setattr(message, name, max(0, round(value * _US_PER_SECOND)))


def to_edit(edit: Edit, *, finding: bool = False) -> textmend_pb2.Edit:
    """Convert an engine edit (or, with finding=True, a finding) to its message."""
    return textmend_pb2.Edit(**_edit_fields(edit, finding))


def to_encoding_info(decoded: DecodedText | None) -> textmend_pb2.EncodingInfo:
    """Convert how the content was decoded to an `EncodingInfo` (empty when unknown)."""
    if decoded is None:
        return textmend_pb2.EncodingInfo()
    return textmend_pb2.EncodingInfo(
        **_encoding_fields(decoded),
        runners_up=[
            textmend_pb2.EncodingCandidate(name=name, confidence=confidence)
            for name, confidence in decoded.runners_up
        ],
        candidates=[
            textmend_pb2.EncodingCandidate(**_candidate_fields(c)) for c in decoded.candidates
        ],
        regions=[textmend_pb2.EncodingRegion(**_region_fields(r)) for r in decoded.regions],
    )


def to_timings(timings: Mapping[str, float]) -> textmend_pb2.Timings:
    """Convert the engine's seconds per stage to whole microseconds.

    >>> to_timings({"decode": 0.0015, "total": 0.01}).total_us
    10000
    """
    message = textmend_pb2.Timings()
    _set_timings(message, timings)
    return message


def to_response(
    repaired: Repaired, request_id: str, *, with_text: bool = True
) -> textmend_pb2.RepairResponse:
    """Convert the engine's result for one document to a `RepairResponse`.

    Every message is built once, in place inside the response (a submessage passed to a
    constructor is copied into it); a document with nothing to report (the usual case) builds
    no edit, finding or diff at all. Returns exactly what `to_response_full` returns (tests
    compare them over the case files and the real corpus). with_text=False leaves `text` out,
    for a caller that sets it once it has let the document go (`set_text`).
    """
    response = textmend_pb2.RepairResponse(
        id=request_id,
        text=repaired.text if with_text else "",
        diff=repaired.diff,
        original_length=len(repaired.original),
        verdict=VERDICTS.value(repaired.verdict.value),
    )
    decoded = repaired.decoded
    info = response.encoding
    if decoded is None:
        info.SetInParent()
    else:
        response.content_bytes = decoded.content_bytes
        for name, value in _encoding_fields(decoded).items():
            setattr(info, name, value)
        for name, confidence in decoded.runners_up:
            info.runners_up.add(name=name, confidence=confidence)
        for c in decoded.candidates:
            info.candidates.add(**_candidate_fields(c))
        for r in decoded.regions:
            info.regions.add(**_region_fields(r))
    for edit in repaired.edits:
        response.edits.add(**_edit_fields(edit, False))
    for finding in repaired.findings:
        response.findings.add(**_edit_fields(finding, True))
    response.timings.SetInParent()
    _set_timings(response.timings, repaired.timings)
    return response


def set_text(response: textmend_pb2.RepairResponse, encoded: bytes) -> None:
    """Set the response's text from its UTF-8 bytes.

    Set from a str, protobuf keeps the text's UTF-8 form inside the str as well as its own
    copy; from bytes it keeps only its copy. A server that encodes the text, lets the str go
    and then sets it holds a 64 MB English document's text (128 MB as a str, its curly quotes
    being 2 bytes wide) and 64 MB of bytes at most, instead of the str, its UTF-8 form and the
    response's copy (issue 19)."""
    response.text = encoded


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
        verdict=VERDICTS.value(repaired.verdict.value),
        timings=to_timings(repaired.timings),
        original_length=len(repaired.original),
        content_bytes=decoded.content_bytes if decoded is not None else 0,
    )


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


__all__ = [
    "CATEGORIES",
    "MAX_ID_CHARS",
    "POLICIES",
    "SERVICE_NAME",
    "SOURCES",
    "VERDICTS",
    "ProtoEnum",
    "error_response",
    "policy_from_request",
    "set_text",
    "to_edit",
    "to_encoding_info",
    "to_response",
    "to_response_full",
    "to_timings",
]
