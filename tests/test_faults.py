"""Faults on a real `textmend-server`: workers killed mid-call, SIGTERM with calls in flight, a
flood of hostile requests, and every input limit.

Repair is idempotent, so the client retries what a dead worker dropped: `repair` by the
channel's retry policy (possible because the server sends headers only with the response), and
`repair_stream` by resending, on a new stream, the documents the broken one had not answered.
The invariant checked is the caller's: every document gets exactly one successful response.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from conftest import ServerProcess, run_server

from textmend.v1 import textmend_pb2, textmend_pb2_grpc
from textmend_client import InvalidInput, TextMendClient, TextMendError, TooLarge, Unavailable
from textmend_client import client as client_module

KIB = 1024
MIB = 1024 * KIB

_LINE = "Grüße aus München — cafÃ© crème, itâ€™s déjà vu, naÃ¯ve faÃ§ade.\n"


def heavy(tag: str, size: int = 150 * KIB) -> tuple[bytes, str]:
    """A document of about size bytes dense with mojibake (about a second of work), tagged so
    that no two are alike, and its repaired text."""
    lines = [f"{tag} {i}: {_LINE}" for i in range(size // len(_LINE.encode()))]
    text = "".join(lines)
    fixed = text.replace("cafÃ©", "café").replace("itâ€™s", "it’s")
    fixed = fixed.replace("naÃ¯ve", "naïve").replace("faÃ§ade", "façade")
    return text.encode(), fixed


def cpu_ticks(pid: int) -> int:
    """User plus system CPU time of a process so far, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def busiest_worker(server: ServerProcess, within: float = 0.5) -> int:
    """The pid of the worker that used the most CPU over the next `within` seconds."""
    pids = sorted(server.worker_pids())
    before = {pid: cpu_ticks(pid) for pid in pids}
    time.sleep(within)
    return max(pids, key=lambda pid: cpu_ticks(pid) - before[pid])


def wait_for(condition: object, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)
    assert condition(), "timed out"  # type: ignore[operator]


def wait_for_workers(server: ServerProcess, count: int, without: int) -> set[int]:
    wait_for(lambda: len(server.worker_pids() - {without}) == count)
    return server.worker_pids()


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[ServerProcess]:
    with run_server(tmp_path, "--workers", "2", "--log-level", "INFO") as running:
        yield running


# --- (a) a worker killed while calls are in flight -------------------------------------------


def test_unary_call_survives_its_worker_being_killed(two_workers: ServerProcess) -> None:
    content, fixed = heavy("unary", 400 * KIB)
    with TextMendClient(two_workers.target, timeout=120, channels=1) as client:
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(client.repair, content, id="victim-call", omit_diff=True)
            victim = busiest_worker(two_workers)
            assert not call.done(), "the document was repaired before the worker could die"
            os.kill(victim, signal.SIGKILL)
            # The call was on the dead worker; the channel's retry policy sends it again.
            assert call.result().text == fixed
    wait_for_workers(two_workers, 2, victim)
    assert "died unexpectedly" in two_workers.log_text()


def test_stream_resends_what_a_killed_worker_had_not_answered(
    two_workers: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    resumed: list[str] = []
    is_resumable = client_module.is_resumable

    def spy(error: BaseException) -> bool:
        answer = is_resumable(error)
        resumed.append(f"{error.code().name}: {answer}")  # type: ignore[attr-defined]
        return answer

    monkeypatch.setattr(client_module, "is_resumable", spy)
    documents = {f"s{i}": heavy(f"s{i}", 60 * KIB) for i in range(16)}
    got: Counter[str] = Counter()
    with TextMendClient(two_workers.target, timeout=120, channels=1, window=4) as client:
        requests = ({"id": i, "content": c, "omit_diff": True} for i, (c, _) in documents.items())
        for n, response in enumerate(client.repair_stream(requests)):
            assert not response.HasField("error"), response.error
            assert response.text == documents[response.id][1]
            got[response.id] += 1
            if n == 2:
                victim = busiest_worker(two_workers, 0.2)
                os.kill(victim, signal.SIGKILL)
    assert got == Counter(documents.keys()), "every document exactly once"
    assert any(entry.endswith("True") for entry in resumed), resumed


def test_a_stream_that_waited_long_is_reopened_when_its_worker_dies(
    two_workers: ServerProcess,
) -> None:
    """A stream a worker took but has not answered for longer than `stream_retry_seconds`
    (its document is long) is reopened when that worker dies: the wait was the worker's work,
    not a failure to reopen, and the document is answered once."""
    content, fixed = heavy("long-wait", 600 * KIB)
    retry_seconds = 0.5
    with TextMendClient(
        two_workers.target, timeout=120, channels=1, window=1, stream_retry_seconds=retry_seconds
    ) as client:
        with ThreadPoolExecutor(1) as pool:
            requests = [{"id": "long-wait", "content": content, "omit_diff": True}]
            started = time.monotonic()
            call = pool.submit(lambda: list(client.repair_stream(requests)))
            victim = busiest_worker(two_workers)
            time.sleep(max(0.0, started + 2 * retry_seconds - time.monotonic()))
            assert not call.done(), "the document was repaired before the worker could die"
            os.kill(victim, signal.SIGKILL)
            responses = call.result()
    assert [(r.id, r.text == fixed, r.HasField("error")) for r in responses] == [
        ("long-wait", True, False)
    ]


class _Dropping:
    """A stand-in server for `RepairStream` that takes every stream (sends headers, or with
    take=False refuses it before them) and then ends it UNAVAILABLE without answering; with
    serve_after=N, it answers every request from the (N+1)th stream on."""

    def __init__(self, take: bool, serve_after: int | None = None) -> None:
        self.take = take
        self.serve_after = serve_after
        self.streams = 0
        self.sent: Counter[str] = Counter()
        self.server = grpc.server(ThreadPoolExecutor(4))
        handler = grpc.stream_stream_rpc_method_handler(
            self._stream,
            request_deserializer=textmend_pb2.RepairRequest.FromString,
            response_serializer=textmend_pb2.RepairResponse.SerializeToString,
        )
        service = grpc.method_handlers_generic_handler(
            "textmend.v1.TextMend", {"RepairStream": handler}
        )
        self.server.add_generic_rpc_handlers([service])
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def _stream(
        self, requests: Iterator[textmend_pb2.RepairRequest], context: grpc.ServicerContext
    ) -> Iterator[textmend_pb2.RepairResponse]:
        self.streams += 1
        if self.serve_after is not None and self.streams > self.serve_after:
            for request in requests:
                yield textmend_pb2.RepairResponse(
                    id=request.id, text="served", verdict=textmend_pb2.VERDICT_CLEAN
                )
            return
        if self.take:
            context.send_initial_metadata((("textmend-version", "test"),))
            for request in requests:
                self.sent[request.id] += 1
                break
        context.abort(grpc.StatusCode.UNAVAILABLE, "dropped")
        yield from ()


@pytest.fixture
def dropping(request: pytest.FixtureRequest) -> Iterator[_Dropping]:
    take, serve_after = request.param if isinstance(request.param, tuple) else (request.param, None)
    stand_in = _Dropping(take=take, serve_after=serve_after)
    stand_in.server.start()
    yield stand_in
    stand_in.server.stop(None)


@pytest.mark.parametrize("dropping", [True], indirect=True)
def test_a_document_whose_streams_all_break_ends_the_call(dropping: _Dropping) -> None:
    """A document sent on `STREAM_MAX_ATTEMPTS` streams that each broke before answering it
    (a document that takes its worker down) ends the call instead of being resent until the
    deadline, although every one of those streams was taken."""
    with TextMendClient(
        f"127.0.0.1:{dropping.port}", channels=1, stream_timeout=60, stream_retry_seconds=60
    ) as client:
        with pytest.raises(Unavailable):
            list(client.repair_stream([{"id": "poison", "content": b"text"}]))
    assert dropping.sent == {"poison": client_module.STREAM_MAX_ATTEMPTS}


@pytest.mark.parametrize("dropping", [False], indirect=True)
def test_a_stream_no_worker_takes_gives_up_after_the_retry_window(dropping: _Dropping) -> None:
    with TextMendClient(
        f"127.0.0.1:{dropping.port}", channels=1, stream_timeout=60, stream_retry_seconds=0.5
    ) as client:
        with pytest.raises(Unavailable):
            list(client.repair_stream([{"id": "refused", "content": b"text"}]))
    assert not dropping.sent


@pytest.mark.parametrize(
    "dropping", [(False, client_module.STREAM_MAX_ATTEMPTS + 1)], indirect=True
)
def test_streams_refused_before_a_worker_takes_them_are_not_attempts(dropping: _Dropping) -> None:
    """A stream refused before its headers (a worker starting, a killed worker's port) did
    nothing with its documents: refusals past `STREAM_MAX_ATTEMPTS` within the retry window
    still end in an answer. (A kill test once lost a stream's 10 documents, the call ended
    UNAVAILABLE; refusals counted as attempts are one way that happens.)"""
    with TextMendClient(
        f"127.0.0.1:{dropping.port}", channels=1, stream_timeout=60, stream_retry_seconds=60
    ) as client:
        answers = list(client.repair_stream([{"id": "patient", "content": b"text"}]))
    assert [a.id for a in answers] == ["patient"]
    assert dropping.streams == client_module.STREAM_MAX_ATTEMPTS + 2


def test_many_calls_lose_nothing_when_a_worker_is_killed(two_workers: ServerProcess) -> None:
    unary = {f"u{i}": heavy(f"u{i}", 20 * KIB) for i in range(48)}
    streamed = {f"s{i}": heavy(f"s{i}", 20 * KIB) for i in range(96)}
    got: Counter[str] = Counter()
    wrong: list[str] = []
    lock = threading.Lock()

    def note(response: textmend_pb2.RepairResponse, expected: str) -> None:
        with lock:
            got[response.id] += 1
            if response.HasField("error") or response.text != expected:
                wrong.append(response.id)

    with TextMendClient(two_workers.target, timeout=120, channels=4) as client:

        def one(item: tuple[str, tuple[bytes, str]]) -> None:
            name, (content, fixed) = item
            note(client.repair(content, id=name, omit_diff=True), fixed)

        def stream() -> None:
            requests = (
                {"id": i, "content": c, "omit_diff": True} for i, (c, _) in streamed.items()
            )
            for response in client.repair_stream(requests):
                note(response, streamed[response.id][1])

        with ThreadPoolExecutor(5) as pool:
            streaming = pool.submit(stream)
            calls = [pool.submit(one, item) for item in unary.items()]
            wait_for(lambda: sum(got.values()) >= 20)
            victim = busiest_worker(two_workers, 0.2)
            os.kill(victim, signal.SIGKILL)
            streaming.result()
            for call in calls:
                call.result()
    assert not wrong
    assert got == Counter([*unary, *streamed]), "every document exactly once"
    assert len(wait_for_workers(two_workers, 2, victim)) == 2


def test_a_killed_worker_is_replaced_and_the_server_serves_again(
    two_workers: ServerProcess,
) -> None:
    """The replacement is forked from the warm parent and reports SERVING (the parent logs how
    long after its predecessor's death); state is asserted here, not speed."""
    before = two_workers.worker_pids()
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    after = wait_for_workers(two_workers, 2, victim)
    assert victim not in after and len(after) == 2
    wait_for(lambda: "after its predecessor died" in two_workers.log_text())
    # Eight connections, so that both workers are asked: every one answers SERVING.
    with TextMendClient(two_workers.target, timeout=30, channels=8) as client:
        for _ in range(8):
            assert client.health_status() == "SERVING"
        assert client.repair("cafÃ©").text == "café"
    log = two_workers.log_text()
    assert log.count("engine warmed up") == 1, "only the parent builds the models"
    assert "Traceback" not in log


def test_the_client_loses_no_call_across_repeated_kills(two_workers: ServerProcess) -> None:
    """64 calls from 8 threads while two workers are killed one after the other: every call
    is answered once, correctly (the client retries UNAVAILABLE within its deadline)."""
    documents = {f"k{i}": heavy(f"k{i}", 30 * KIB) for i in range(64)}
    answered: Counter[str] = Counter()
    lock = threading.Lock()
    with TextMendClient(two_workers.target, timeout=120, channels=4) as client:

        def one(item: tuple[str, tuple[bytes, str]]) -> None:
            name, (content, fixed) = item
            response = client.repair(content, id=name, omit_diff=True)
            assert response.text == fixed
            with lock:
                answered[name] += 1

        with ThreadPoolExecutor(8) as pool:
            calls = [pool.submit(one, item) for item in documents.items()]
            victims = []
            for threshold in (8, 24):
                wait_for(lambda t=threshold: sum(answered.values()) >= t)
                victim = busiest_worker(two_workers, 0.2)
                os.kill(victim, signal.SIGKILL)
                victims.append(victim)
                wait_for_workers(two_workers, 2, victim)
            for call in calls:
                call.result()
    assert answered == Counter(documents.keys()), "every document exactly once"
    assert not set(victims) & two_workers.worker_pids()


# --- (b) SIGTERM with calls in flight --------------------------------------------------------


def test_sigterm_lets_calls_in_flight_finish(tmp_path: Path) -> None:
    documents = {f"t{i}": heavy(f"t{i}", 200 * KIB) for i in range(4)}
    with run_server(tmp_path, "--workers", "2", "--grace", "60") as server:
        with TextMendClient(server.target, timeout=120, channels=4) as client:
            with ThreadPoolExecutor(len(documents)) as pool:
                calls = {
                    name: pool.submit(client.repair, content, id=name, omit_diff=True)
                    for name, (content, _) in documents.items()
                }
                busiest_worker(server)  # the calls are under way
                pending = [name for name, call in calls.items() if not call.done()]
                assert pending
                server.process.send_signal(signal.SIGTERM)
                finished = []
                for name, call in calls.items():
                    try:
                        response = call.result()
                    except Unavailable:
                        # Not yet sent when SIGTERM came: refused, as new calls must be.
                        continue
                    assert response.text == documents[name][1]
                    finished.append(name)
                # Calls in flight when SIGTERM came were finished, not dropped.
                assert set(pending) & set(finished)
        assert server.process.wait(60) == 0
    assert "received SIGTERM" in server.log_text()


# --- (c) a flood of hostile requests; every limit ----------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Two workers with small limits: 1 MiB documents, 64 KiB lines, 50 edits, 3 per stream."""
    with run_server(
        tmp_path_factory.mktemp("limited"),
        "--workers",
        "2",
        "--max-message-mb",
        "1",
        "--max-line-kb",
        "64",
        "--max-edits",
        "50",
        "--max-stream-documents",
        "3",
    ) as running:
        yield running


HOSTILE: dict[str, tuple[bytes, type[TextMendError]]] = {
    "oversized": (b"a" * (MIB + 1), TooLarge),
    "far oversized": (b"a" * (3 * MIB), TooLarge),
    "long line": (b"x" * (65 * KIB), TooLarge),
    "too many edits": (("cafÃ© " * 60).encode(), TooLarge),
    "png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, InvalidInput),
    "nul bytes": (b"text\x00" * 500, InvalidInput),
    "elf": (b"\x7fELF" + bytes(2000), InvalidInput),
    "empty": (b"", InvalidInput),
}


def test_flood_of_hostile_requests_leaves_workers_serving(limited: ServerProcess) -> None:
    before = limited.worker_pids()
    kinds = list(HOSTILE) * 25  # 200 requests
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    with TextMendClient(limited.target, timeout=60, channels=8, max_message_mb=4) as client:

        def send(kind: str) -> None:
            content, expected = HOSTILE[kind]
            try:
                client.repair(content, id=kind)
                outcome = "OK"
            except TextMendError as error:
                outcome = error.code.name if isinstance(error, expected) else f"{error!r}"
            with lock:
                outcomes[outcome] += 1

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, kinds))
        assert set(outcomes) == {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"}, outcomes
        assert sum(outcomes.values()) == 200
        assert client.health()
        assert client.repair("cafÃ©").text == "café"
    assert limited.worker_pids() == before
    assert "Traceback" not in limited.log_text()


@pytest.mark.parametrize(
    ("content", "flag"),
    [
        (b"x" * (65 * KIB), "--max-line-kb"),
        (b"ok\n" + b"x" * (65 * KIB) + b"\r\nok", "--max-line-kb"),
        (b"a" * (MIB + 1), "--max-message-mb"),
        (("cafÃ© " * 60).encode(), "--max-edits"),
    ],
    ids=["line", "line in the middle", "bytes", "edits"],
)
def test_each_limit_names_its_flag(limited: ServerProcess, content: bytes, flag: str) -> None:
    with TextMendClient(limited.target, timeout=60, channels=1, max_message_mb=4) as client:
        with pytest.raises(TooLarge) as caught:
            client.repair(content)
        assert caught.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert flag in caught.value.details
        response = next(client.repair_stream([{"id": "one", "content": content}]))
        assert response.error.code == "RESOURCE_EXHAUSTED"
        assert flag in response.error.message


def test_lines_within_the_limit_and_crlf_text_pass(limited: ServerProcess) -> None:
    line = "y" * (64 * KIB - 2)
    with TextMendClient(limited.target, timeout=60, channels=1) as client:
        assert client.repair(f"{line}\r\n{line}\r{line}\n").text == f"{line}\r\n{line}\r{line}\n"
        assert len(client.repair(("cafÃ© " * 50).encode()).edits) == 50


def test_stream_limit_ends_the_stream_and_the_client_resumes(limited: ServerProcess) -> None:
    with grpc.insecure_channel(limited.target) as channel:
        stub = textmend_pb2_grpc.TextMendStub(channel)
        requests = [textmend_pb2.RepairRequest(id=str(i), content=b"fine") for i in range(5)]
        call = stub.RepairStream(iter(requests), timeout=30)
        answered = []
        with pytest.raises(grpc.RpcError):
            answered.extend(response.id for response in call)
        assert answered == ["0", "1", "2"]
        assert call.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-stream-documents" in call.details()
        assert ("textmend-stream-limit", "3") in tuple(call.trailing_metadata())
    documents = {f"d{i}": f"cafÃ© {i}" for i in range(20)}
    with TextMendClient(limited.target, timeout=60, channels=2) as client:
        responses = list(client.repair_stream({"id": k, "text": v} for k, v in documents.items()))
    assert sorted(r.id for r in responses) == sorted(documents)
    assert all(r.text == f"café {r.id[1:]}" for r in responses)


def test_malloc_is_tuned_before_the_fork_unless_the_environment_says_otherwise() -> None:
    """The parent fixes glibc's arena count and mmap threshold (`tune_malloc`), which its
    workers inherit, and leaves a setting alone when its environment variable is set."""
    code = (
        "import json; from textmend_server.main import tune_malloc; "
        "print(json.dumps(tune_malloc()))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}

    def applied(**extra: str) -> dict[str, bool]:
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)

    assert applied() == {"MALLOC_ARENA_MAX": True, "MALLOC_MMAP_THRESHOLD_": True}
    assert applied(MALLOC_MMAP_THRESHOLD_="65536") == {
        "MALLOC_ARENA_MAX": True,
        "MALLOC_MMAP_THRESHOLD_": False,
    }
    assert applied(MALLOC_ARENA_MAX="4") == {
        "MALLOC_ARENA_MAX": False,
        "MALLOC_MMAP_THRESHOLD_": True,
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_heap_trimmer_gives_freed_heap_back() -> None:
    """What a serving process calls every `HEAP_TRIM_INTERVAL`: after many blocks are freed
    below one still held (so the heap's top cannot shrink by itself), it returns their pages to
    the kernel, which the process's resident memory shows."""
    code = """
import json
from textmend_server.main import _heap_trimmer, tune_malloc

def rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

tune_malloc()
trim = _heap_trimmer()
blocks = [bytearray(4000) for _ in range(20_000)]  # 80 MB in blocks under the mmap threshold
pin = bytearray(4000)
del blocks
before = rss_kib()
trim(0)
print(json.dumps({"before": before, "after": rss_kib()}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    rss = json.loads(done.stdout)
    assert rss["before"] - rss["after"] > 60_000, rss


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--grace", "inf"], "grace must be a finite number"),
        (["--max-message-mb", "100000"], "max_message_mb must be 1 to 2046"),
        (["--port-file", "/nonexistent-textmend-dir/port"], "--port-file"),
    ],
)
def test_server_flags_that_cannot_work_are_usage_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """They crashed at stop (`--grace inf`) or start, or left the workers serving with no
    port file for the caller to read."""
    from textmend_server.main import main as server_main

    with pytest.raises(SystemExit) as exit_info:
        server_main(["--port", "0", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
