"""The fast paths give the same answers as the full ones, document by document.

Over every case file (`tests/cases/*.json`, original and expected text both) and every
vendored real file (`tests/fixtures/real/`), each document goes through the engine and both
response builders of the servicer (`to_response`, which builds nothing a clean document does
not need, and `to_response_full`), and through both JSON writers of `textmend repair --jsonl`
(`textmend_client.jsonl`, orjson, and `json_format`); text, edits, findings, verdict and
encoding must agree, and so must the whole message. `--fields` writes what it names.
"""

from __future__ import annotations

import json

import grpc
import pytest
from documents import case_and_real_documents
from google.protobuf import json_format

from textmend.v1 import textmend_pb2
from textmend_client import jsonl
from textmend_server import InputError, Repaired, repair_bytes, repair_text
from textmend_server.convert import set_text
from textmend_server.service import error_response, to_response, to_response_full

DOCUMENTS = case_and_real_documents()


def _repair(content: bytes, content_type: str, include_diff: bool = True) -> Repaired:
    """The engine's result for content; text the service would refuse as binary (a case file
    of control characters) through `repair_text`, which leaves `decoded` unset."""
    try:
        return repair_bytes(content, content_type=content_type, include_diff=include_diff)
    except InputError:
        return repair_text(content.decode("utf-8"), include_diff=include_diff)


def _fields(response: textmend_pb2.RepairResponse) -> tuple[object, ...]:
    return (
        response.text,
        list(response.edits),
        list(response.findings),
        response.verdict,
        response.encoding,
        response.diff,
    )


@pytest.mark.parametrize(("content", "content_type"), DOCUMENTS)
def test_fast_response_equals_full_response(content: bytes, content_type: str) -> None:
    for include_diff in (True, False):
        repaired = _repair(content, content_type, include_diff)
        fast = to_response(repaired, "doc")
        full = to_response_full(repaired, "doc")
        assert _fields(fast) == _fields(full)
        assert fast == full
        assert fast.SerializeToString(deterministic=True) == full.SerializeToString(
            deterministic=True
        )
        # The server's way: the text set last, from its UTF-8 bytes.
        lean = to_response(repaired, "doc", with_text=False)
        set_text(lean, repaired.text.encode("utf-8"))
        assert lean == full


@pytest.mark.parametrize(("content", "content_type"), DOCUMENTS)
def test_fast_json_equals_json_format(content: bytes, content_type: str) -> None:
    response = to_response(_repair(content, content_type), "doc")
    expected = json_format.MessageToDict(response, preserving_proto_field_name=True)
    encoder = jsonl.ResponseEncoder(jsonl.RESPONSE_FIELDS)
    assert encoder.to_dict(response) == expected
    assert json.loads(encoder.encode(response)) == expected


def test_error_response_json_equals_json_format() -> None:
    response = error_response("x", grpc.StatusCode.INVALID_ARGUMENT, "content is empty")
    expected = json_format.MessageToDict(response, preserving_proto_field_name=True)
    assert jsonl.message_to_dict(response) == expected
    assert jsonl.ResponseEncoder(("text",)).to_dict(response) == expected


def test_fields_writes_what_it_names() -> None:
    content = "cafÃ© au lait, line one\nline two\n".encode()
    response = to_response(repair_bytes(content), "doc-1")
    assert response.edits and response.diff
    full = json_format.MessageToDict(response, preserving_proto_field_name=True)
    for names in [("text",), ("text", "encoding", "edits"), ("diff",), jsonl.DEFAULT_FIELDS]:
        line = jsonl.ResponseEncoder(names).encode(response)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        got = json.loads(line)
        assert set(got) == ({*names, "id"} & set(full))
        assert got == {key: full[key] for key in got}
    assert "diff" not in jsonl.DEFAULT_FIELDS


def test_parse_fields_rejects_unknown_names() -> None:
    assert jsonl.parse_fields("edits,text") == ("text", "edits")
    with pytest.raises(ValueError, match="unknown field 'txt'"):
        jsonl.parse_fields("text,txt")
