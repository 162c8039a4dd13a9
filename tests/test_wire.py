"""`wire.parse_request` reads what protobuf reads, with the content kept apart."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from textmend.v1 import textmend_pb2
from textmend_server.wire import parse_request


def _same(data: bytes) -> None:
    """parse_request(data) gives what FromString gives, or fails where it fails."""
    try:
        expected = textmend_pb2.RepairRequest.FromString(data)
    except DecodeError:
        with pytest.raises(DecodeError):
            parse_request(data)
        return
    received = parse_request(data)
    assert received.take_content() == expected.content
    assert received.take_content() == b""  # given up once
    expected.ClearField("content")
    assert received.fields == expected


requests = st.builds(
    textmend_pb2.RepairRequest,
    id=st.text(max_size=20),
    content=st.binary(max_size=300),
    declared_encoding=st.sampled_from(["", "utf-8", "gbk"]),
    content_type=st.sampled_from(["", "text/html"]),
    policy=st.dictionaries(st.sampled_from(["mojibake", "bidi_control"]), st.integers(0, 3)),
    omit_diff=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(requests, st.binary(max_size=40), st.integers(0, 400))
def test_parse_request_reads_what_protobuf_reads(
    request: textmend_pb2.RepairRequest, noise: bytes, cut: int
) -> None:
    wire = request.SerializeToString()
    _same(wire)
    _same(wire[:cut])  # cut anywhere, a field's key or length included
    _same(wire + noise)  # unknown or malformed fields after it
    _same(noise + wire)


def test_the_last_content_wins_and_unknown_fields_are_kept() -> None:
    first = textmend_pb2.RepairRequest(id="a", content=b"one").SerializeToString()
    second = textmend_pb2.RepairRequest(content=b"two").SerializeToString()
    unknown = b"\xa0\x06\x07"  # field 100, varint 7
    received = parse_request(first + unknown + second)
    assert (received.fields.id, received.take_content()) == ("a", b"two")
    assert received.fields.SerializeToString().endswith(unknown)


@pytest.mark.parametrize("extra", [b"\xa0\x06\x07", b"\x12\x01x"], ids=["unknown", "content"])
def test_a_message_of_many_fields_is_parsed_whole(extra: bytes) -> None:
    """Past `MAX_SPLIT_FIELDS` fields (here unknown ones, or the content repeated) the message
    goes to protobuf whole, and still reads the same."""
    from textmend_server.wire import MAX_SPLIT_FIELDS, split_content

    wire = textmend_pb2.RepairRequest(id="a", content=b"body").SerializeToString()
    many = wire + extra * (10 * MAX_SPLIT_FIELDS)
    with pytest.raises(ValueError, match="fields"):
        split_content(many)
    _same(many)
