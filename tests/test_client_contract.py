"""The bundled client against a server that breaks the service's contract: a real gRPC
server on a loopback port whose answers are wrong on purpose (a proxy's or a faulty build's).
The client must fail the documents it cannot account for, never yield or write a wrong answer
as the right one, and give up within its bounds."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from textmend.v1 import textmend_pb2, textmend_pb2_grpc
from textmend_client import TextMendClient
from textmend_client.cli import main
from textmend_client.errors import STREAM_IDLE_METADATA, ServerBrokeContract, TextMendError

# Documents sent in each test: more than a stream's window, so that one stream holds several.
DOCUMENTS = 20
# Status text that would retitle and clear a terminal, then forge a line of output.
ESCAPES = "bad\x1b]0;TITLE\x07\x1b[2J\r\nforged line: all good"


def _answer(request: textmend_pb2.RepairRequest) -> textmend_pb2.RepairResponse:
    """What a correct server would answer for plain ASCII text."""
    text = request.content.decode("ascii")
    return textmend_pb2.RepairResponse(id=request.id, text=text, verdict=textmend_pb2.VERDICT_CLEAN)


class Faulty(textmend_pb2_grpc.TextMendServicer):
    """A TextMend server whose fault is mode; it counts the streams it was asked to open."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.streams = 0
        self.lock = threading.Lock()

    def Repair(self, request, context):
        if self.mode == "escapes":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, ESCAPES)
        if self.mode == "refuses":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown category 'newer' in policy")
        if self.mode == "edit_outside":
            response = _answer(request)
            response.original_length = len(response.text)
            response.edits.add(original_start=10**12, original_end=10**12, confidence=0.9)
            return response
        if self.mode == "new_verdict":
            return textmend_pb2.RepairResponse(id=request.id, text="fine", verdict=99)
        if self.mode == "empty":
            return textmend_pb2.RepairResponse()
        if self.mode == "wrong_id":
            return _answer(textmend_pb2.RepairRequest(id="someone-else", content=b"other"))
        return _answer(request)

    def RepairStream(self, request_iterator, context):
        with self.lock:
            self.streams += 1
        if self.mode == "idle_forged":
            # Refused before any header, with the trailer of a stream closed for idling.
            context.set_trailing_metadata(((STREAM_IDLE_METADATA, "60"),))
            context.abort(grpc.StatusCode.UNAVAILABLE, "forged idle close")
        answered = 0
        for request in request_iterator:
            if self.mode == "ends_unanswered":
                return  # status OK, nothing answered
            if self.mode == "ends_early" and answered == 3:
                return  # status OK, the rest of the stream's documents unanswered
            yield _answer(request)
            answered += 1
            if self.mode == "twice":
                yield _answer(request)


@contextmanager
def faulty_server(mode: str) -> Iterator[tuple[str, Faulty]]:
    servicer = Faulty(mode)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    textmend_pb2_grpc.add_TextMendServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(grace=None)


def _documents() -> list[dict[str, str]]:
    return [{"id": f"d{i}", "text": f"document {i}"} for i in range(DOCUMENTS)]


def _streamed(target: str, **options: float) -> Callable[[], list[textmend_pb2.RepairResponse]]:
    def run() -> list[textmend_pb2.RepairResponse]:
        with TextMendClient(target, channels=2, window=4, **options) as client:
            return list(client.repair_stream(_documents()))

    return run


def test_a_correct_server_answers_every_document_once() -> None:
    """The fake server itself, correct: what the faults below are measured against."""
    with faulty_server("none") as (target, _):
        responses = _streamed(target)()
    assert sorted(r.id for r in responses) == sorted(d["id"] for d in _documents())


def test_documents_a_stream_ended_without_answering_are_resent() -> None:
    """Each stream answers three documents, then ends with OK: its unanswered documents are
    sent again on a new stream, and every document is answered once (the call used to hang,
    its sender waiting for room in the window, or to return with documents missing)."""
    with faulty_server("ends_early") as (target, servicer):
        responses = _streamed(target, stream_timeout=60)()
    assert sorted(r.id for r in responses) == sorted(d["id"] for d in _documents())
    assert servicer.streams > 2


def test_streams_that_end_answering_nothing_fail_the_call() -> None:
    """Ended with OK (or, to a client still writing, dropped) before any answer, every time:
    the call fails once no stream has been answered for `stream_retry_seconds`."""
    with faulty_server("ends_unanswered") as (target, servicer):
        with pytest.raises(TextMendError, match=r"unanswered|dropped the call"):
            _streamed(target, stream_retry_seconds=2.0, stream_timeout=60)()
    assert servicer.streams <= 2 * 12, servicer.streams


@pytest.mark.parametrize("mode", ["twice"])
def test_a_document_answered_twice_ends_the_call(mode: str) -> None:
    with faulty_server(mode) as (target, _):
        with pytest.raises(ServerBrokeContract, match="already answered"):
            _streamed(target)()


@pytest.mark.parametrize(
    ("mode", "id", "message"),
    [
        ("empty", "mine", "with id 'mine' with the response for id ''"),
        ("empty", "", "neither a verdict nor an error"),
        ("wrong_id", "mine", "with the response for id 'someone-else'"),
        ("edit_outside", "mine", "an edit outside the document"),
    ],
)
def test_a_unary_answer_that_is_not_the_documents_is_refused(
    mode: str, id: str, message: str
) -> None:
    with faulty_server(mode) as (target, _), TextMendClient(target) as client:
        with pytest.raises(ServerBrokeContract, match=message) as caught:
            client.repair(b"text", id=id)
    assert caught.value.code is grpc.StatusCode.INTERNAL


def test_a_batch_writes_nothing_for_answers_that_are_not_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Empty answers used to be written as empty files, and a second run skipped them as done."""
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        (source / f"{i}.txt").write_text(f"file {i}\n", encoding="ascii")
    output = tmp_path / "out"
    with faulty_server("empty") as (target, _):
        argv = ["repair", str(source), "--output-dir", str(output), "--server", target]
        assert main(argv) == 3
    assert not output.exists() or not any(output.iterdir())
    assert "with the response for id ''" in capsys.readouterr().err


def test_a_forged_idle_close_does_not_reopen_streams_without_bound() -> None:
    """Trailers-only UNAVAILABLE with the idle trailer on every stream: the client keeps
    backing off and gives up after `stream_retry_seconds`, as for any stream no worker takes
    (it used to reopen ten times a second until the whole call's deadline)."""
    with faulty_server("idle_forged") as (target, servicer):
        with pytest.raises(TextMendError):
            _streamed(target, stream_retry_seconds=2.0, stream_timeout=20.0)()
    # Two streams, each pausing 0.05, 0.1, 0.2, ... s between opens for about two seconds:
    # six or seven opens each (the storm, at 0.1 s a pause, a dozen or more).
    assert servicer.streams <= 2 * 8, servicer.streams


def test_a_servers_status_text_reaches_the_terminal_on_one_line_escapes_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.txt"
    path.write_text("text\n", encoding="ascii")
    with faulty_server("escapes") as (target, _):
        assert main(["repair", str(path), "--server", target]) == 3
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err and err.count("\n") == 1
    assert "⟨U+001B⟩[2J⟨U+000D⟩⟨U+000A⟩forged line" in err


def test_check_fails_when_the_server_refuses_files_for_the_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only a binary file is skipped; a refusal of the request itself (a policy an older
    server does not know) refuses every file, and a gate built on `check` must not pass."""
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(f"file {i}\n", encoding="ascii")
    with faulty_server("refuses") as (target, _):
        assert main(["check", str(tmp_path), "--server", target]) == 3
    assert "unknown category 'newer'" in capsys.readouterr().err


def test_a_verdict_newer_than_the_client_is_named_by_its_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.txt"
    path.write_text("fine", encoding="ascii")
    with faulty_server("new_verdict") as (target, _):
        assert main(["repair", str(path), "--server", target, "--format", "diff"]) == 0
    assert "verdict_99" in capsys.readouterr().out


def test_jsonl_writes_a_line_for_every_document_sent_when_the_call_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A call that fails part-way (here: a document answered twice) used to drop the
    responses held for an earlier line's; every document sent now gets its line, with its
    response or with the failure, and the failure is reported."""
    path = tmp_path / "docs.jsonl"
    lines = [f'{{"id": "d{i}", "text": "document {i}"}}' for i in range(6)]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    with faulty_server("twice") as (target, _):
        argv = ["repair", "--jsonl", str(path), "--server", target, "--channels", "1"]
        assert main(argv) == 3
    captured = capsys.readouterr()
    written = [json.loads(line) for line in captured.out.splitlines()]
    ids = [line["id"] for line in written]
    assert ids == [f"d{i}" for i in range(len(ids))] and ids  # input order, none twice
    failed = [line for line in written if "error" in line]
    assert failed and all(
        "no response before the call failed" in f["error"]["message"] for f in failed
    )
    assert "already answered" in captured.err
