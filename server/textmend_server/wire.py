"""A `RepairRequest` read off the wire with its content kept apart (`Received`).

Protobuf's Python runtime (upb) copies a parsed message's bytes into the message's own memory,
which it gives back only when the message goes, and copies them again on every read of the
field. The server's threads hold a request until its response is sent, so a 64 MB document
was held twice over for the whole repair, and a third time while the wire bytes were parsed
(issue 19: a worker grew by about 10 times the document). `parse_request` takes the content
field out of the wire bytes as one `bytes` object and parses the rest, so the document is held
once, by whoever holds `Received.content`: the servicer takes it, and lets go of it once the
engine has repaired it, before the response is built.
"""

from __future__ import annotations

from dataclasses import dataclass

from textmend.v1 import textmend_pb2

# `RepairRequest.content`'s field number in the proto.
_CONTENT_FIELD = 2
# Protobuf wire types (the low 3 bits of a field's key).
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
# Fields `split_content` reads, one at a time in Python, before it leaves the message to
# protobuf whole: a request has 6 fields and a policy entry per category (14), so 256 leaves
# room for a newer client's unknown fields, while a hostile message of millions of tiny fields
# costs no more than protobuf's own parser (in C) would.
MAX_SPLIT_FIELDS = 256


@dataclass
class Received:
    """A request as the server received it: every field but `content` parsed in `fields`, the
    content as it came (`take_content` hands it over once)."""

    fields: textmend_pb2.RepairRequest
    content: bytes | None

    def take_content(self) -> bytes:
        """The content, given up by this object so that the caller's reference is the only
        one (a second call returns b"")."""
        content, self.content = self.content or b"", None
        return content


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    """The varint at data[at:], and where it ends; ValueError past the end or 10 bytes."""
    value = shift = 0
    for i in range(at, min(at + 10, len(data))):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    raise ValueError("truncated or overlong varint")


def split_content(data: bytes) -> tuple[bytes, tuple[int, int] | None]:
    """The message's bytes without its content field, and where the content's last occurrence
    lies in data (proto3 keeps the last of a repeated scalar); raises ValueError on bytes that
    are not a well-formed message of known wire types, or of more than `MAX_SPLIT_FIELDS`
    fields (the caller then parses it whole, and protobuf says what is wrong, if anything).

    >>> wire = textmend_pb2.RepairRequest(id="a", content=b"xyz", omit_diff=True)
    >>> rest, (start, end) = split_content(wire.SerializeToString())
    >>> wire.SerializeToString()[start:end], textmend_pb2.RepairRequest.FromString(rest).id
    (b'xyz', 'a')
    """
    view = memoryview(data)
    kept: list[memoryview] = []
    content: tuple[int, int] | None = None
    at = read = 0
    while at < len(view):
        read += 1
        if read > MAX_SPLIT_FIELDS:
            raise ValueError(f"more than {MAX_SPLIT_FIELDS} fields")
        key, body = _varint(view, at)
        number, kind = key >> 3, key & 7
        if kind == _VARINT:
            end = _varint(view, body)[1]
        elif kind == _FIXED64:
            end = body + 8
        elif kind == _FIXED32:
            end = body + 4
        elif kind == _LENGTH:
            length, body = _varint(view, body)
            end = body + length
        else:
            raise ValueError(f"wire type {kind} of field {number}")
        if end > len(view) or number == 0:
            raise ValueError("truncated message")
        if number == _CONTENT_FIELD and kind == _LENGTH:
            content = (body, end)
        else:
            kept.append(view[at:end])
        at = end
    return b"".join(kept), content


def parse_request(data: bytes) -> Received:
    """The `RepairRequest` in data, its content apart (`Received`); raises protobuf's
    DecodeError as `RepairRequest.FromString` would on bytes that do not parse."""
    try:
        rest, where = split_content(data)
    except ValueError:
        fields = textmend_pb2.RepairRequest.FromString(data)  # or raises, saying what is wrong
        content = fields.content
        fields.ClearField("content")
        return Received(fields, content)
    fields = textmend_pb2.RepairRequest.FromString(rest)
    return Received(fields, data[where[0] : where[1]] if where else b"")


__all__ = ["Received", "parse_request", "split_content"]
