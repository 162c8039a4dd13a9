"""The gRPC service, end to end through the real `textmend-server` on a loopback port.

Clean text in ten encodings comes back unchanged and correctly identified; bad input is
refused with the documented status code and a message a person can act on, without taking
the server down; streams report failures per document; mojibake is repaired with edits that
reproduce the result.
"""

from __future__ import annotations

import codecs
import os
import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import STARTUP_LIMIT, ServerProcess, run_server
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from textmend.v1 import textmend_pb2, textmend_pb2_grpc
from textmend_client import (
    DeadlineExceeded,
    InvalidInput,
    TextMendClient,
    TextMendError,
    TooLarge,
)

MIB = 1024 * 1024

# A real paragraph per encoding, in a language that encoding is used for.
SAMPLES: dict[str, tuple[str, str]] = {
    "utf-8-en": (
        "utf-8",
        "The conference in Zürich drew researchers from São Paulo, Kraków and Reykjavík. "
        "Speakers discussed how text moves between systems — and how easily it gets damaged on "
        "the way. One talk showed a menu where “crème brûlée” had turned into nonsense after a "
        "careless export. By the end of the day, everyone agreed that encodings deserve more "
        "attention than they usually get.",
    ),
    "utf-16-hi": (
        "utf-16",
        "भारत एक विशाल देश है जहाँ सैकड़ों भाषाएँ बोली जाती हैं। हर राज्य की अपनी परंपराएँ, "
        "त्योहार और व्यंजन हैं। दिल्ली की गलियों में घूमते हुए इतिहास हर कदम पर दिखाई देता है। "
        "शाम होते ही बाज़ार रोशनी और चहल-पहल से भर जाते हैं।",
    ),
    "gb18030-zh-hans": (
        "gb18030",
        "北京是中国的首都，也是一座拥有三千多年历史的古城。每年春天，来自世界各地的游客都会到"
        "故宫和长城参观。城市里的地铁四通八达，出行非常方便。近年来，越来越多的年轻人选择在这里"
        "创业，寻找属于自己的机会。",
    ),
    "big5-zh-hant": (
        "big5",
        "台北是臺灣最大的都市，也是政治與經濟的中心。每到週末，夜市裡總是擠滿了品嚐小吃的人潮。"
        "許多旅客喜歡搭乘捷運前往故宮博物院，欣賞珍貴的文物。這座城市融合了傳統與現代，讓人流連"
        "忘返。",
    ),
    "shift_jis-ja": (
        "shift_jis",
        "東京は日本の首都であり、世界でも有数の大都市です。春になると、上野公園や隅田川沿いの桜"
        "を見に多くの人が訪れます。電車の路線は複雑ですが、時間どおりに運行されるので便利です。"
        "夜になっても街は明るく、さまざまな料理を楽しむことができます。",
    ),
    "euc-kr-ko": (
        "euc-kr",
        "서울은 대한민국의 수도이며 천만 명에 가까운 사람들이 살고 있습니다. 한강을 따라 넓은 "
        "공원이 이어져 있어 주말마다 많은 시민들이 산책을 즐깁니다. 지하철은 도시 구석구석을 "
        "연결하여 어디든 쉽게 갈 수 있습니다. 최근에는 전통 시장과 현대적인 카페가 함께 어우러진 "
        "거리가 인기를 끌고 있습니다.",
    ),
    "cp1251-uk": (
        "cp1251",
        "Київ — столиця України та одне з найстаріших міст Східної Європи. Навесні вулиці міста "
        "вкриваються квітучими каштанами, і місто стає особливо гарним. Уздовж Дніпра тягнуться "
        "зелені пагорби, з яких відкривається чудовий краєвид. Щороку сюди приїжджають тисячі "
        "туристів, щоб побачити давні собори та скуштувати місцеву кухню.",
    ),
    "cp1252-fr": (
        "cp1252",
        "L’été dernier, nous avons passé trois semaines en Provence, près d’Aix. Chaque matin, "
        "nous achetions du pain frais et des œufs au marché du village. Les champs de lavande "
        "s’étendaient à perte de vue, et l’air sentait le thym. « C’est le plus beau voyage de "
        "notre vie », a déclaré ma sœur en rentrant à Paris.",
    ),
    "cp1252-de": (
        "cp1252",
        "Im vergangenen Sommer sind wir mit dem Fahrrad am Bodensee entlang gefahren. Überall gab "
        "es kleine Cafés, in denen man Kuchen und Kaffee genießen konnte. Die Straßen waren ruhig, "
        "und die Aussicht auf die Alpen war großartig. „Das müssen wir unbedingt wiederholen“, "
        "sagte mein Bruder am letzten Abend.",
    ),
    "iso-8859-7-el": (
        "iso-8859-7",
        "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας και μία από τις αρχαιότερες πόλεις του κόσμου. "
        "Κάθε χρόνο εκατομμύρια επισκέπτες ανεβαίνουν στην Ακρόπολη για να θαυμάσουν τον "
        "Παρθενώνα. Άνοιξη και φθινόπωρο είναι οι καλύτερες εποχές για περιπάτους στα στενά "
        "δρομάκια της Πλάκας. Το βράδυ, οι ταβέρνες γεμίζουν με μουσική, γέλια και μυρωδιές από "
        "φρέσκα ψάρια.",
    ),
    "koi8-r-ru": (
        "koi8-r",
        "Москва является столицей России и крупнейшим городом страны. Зимой здесь выпадает "
        "много снега, и жители катаются на коньках в парках. Летом набережные Москвы-реки "
        "заполняются гуляющими людьми. В городе множество музеев, театров и старинных церквей, "
        "которые стоит посетить.",
    ),
}

# Names the server may report for each encoding: the encoding itself or a documented superset
# that decodes these bytes identically (the text check below catches any that does not).
ACCEPTED: dict[str, set[str]] = {
    "utf-8": {"utf-8"},
    "utf-16": {"utf-16", "utf-16-le"},
    "gb18030": {"gb18030", "gbk", "gb2312"},
    "big5": {"big5", "cp950", "big5hkscs"},
    "shift_jis": {"shift_jis", "cp932"},
    "euc-kr": {"euc-kr", "cp949"},
    "cp1251": {"cp1251"},
    "cp1252": {"cp1252"},
    "iso-8859-7": {"iso-8859-7"},
    "koi8-r": {"koi8-r", "koi8-u"},
}


def codec_name(name: str) -> str:
    """Python's canonical name for a codec, so that `Shift_JIS` and `shift-jis` compare equal."""
    return codecs.lookup(name).name


# Known failures of the engine, run as strict xfails so that a fix is noticed.
KNOWN_UNDECLARED_FAILURES: dict[str, str] = {}


def assert_clean_round_trip(response: textmend_pb2.RepairResponse, label: str) -> None:
    encoding, text = SAMPLES[label]
    assert response.text == text
    assert list(response.edits) == []
    assert response.verdict == textmend_pb2.VERDICT_CLEAN
    assert response.original_length == len(text)
    assert codec_name(response.encoding.name) in {codec_name(n) for n in ACCEPTED[encoding]}
    assert response.diff == ""


@pytest.mark.parametrize(
    "label",
    [
        pytest.param(
            label,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_UNDECLARED_FAILURES[label])]
            if label in KNOWN_UNDECLARED_FAILURES
            else [],
        )
        for label in SAMPLES
    ],
)
def test_clean_text_round_trips_undeclared(client: TextMendClient, label: str) -> None:
    encoding, text = SAMPLES[label]
    content = text.encode(encoding)
    response = client.repair(content, id=f"clean-{label}")
    assert response.id == f"clean-{label}"
    assert response.content_bytes == len(content)
    assert_clean_round_trip(response, label)
    expected_source = "SOURCE_BOM" if encoding == "utf-16" else "SOURCE_DETECTED"
    assert textmend_pb2.EncodingInfo.Source.Name(response.encoding.source) == expected_source


@pytest.mark.parametrize("label", [label for label in SAMPLES if not label.startswith("utf-16")])
def test_clean_text_round_trips_declared(client: TextMendClient, label: str) -> None:
    encoding, text = SAMPLES[label]
    response = client.repair(text.encode(encoding), declared_encoding=encoding)
    assert_clean_round_trip(response, label)
    assert response.encoding.source == textmend_pb2.EncodingInfo.SOURCE_DECLARED
    assert response.encoding.declared == encoding


def test_mojibake_is_repaired_and_edits_reproduce_the_text(client: TextMendClient) -> None:
    content = "café — it’s".encode().decode("cp1252").encode()
    response = client.repair(content, id="mojibake")
    assert response.text == "café — it’s"
    assert response.verdict == textmend_pb2.VERDICT_REPAIRED
    assert response.edits
    assert {edit.category for edit in response.edits} == {textmend_pb2.CATEGORY_MOJIBAKE}
    assert response.diff.startswith("--- a/mojibake\n+++ b/mojibake\n")

    original = content.decode(response.encoding.name)
    assert len(original) == response.original_length
    rebuilt, position = [], 0
    for edit in response.edits:
        assert original[edit.original_start : edit.original_end] == edit.original
        assert response.text[edit.cleaned_start : edit.cleaned_end] == edit.replacement
        rebuilt += [original[position : edit.original_start], edit.replacement]
        position = edit.original_end
    rebuilt.append(original[position:])
    assert "".join(rebuilt) == response.text


def test_repaired_text_is_not_changed_again(client: TextMendClient) -> None:
    first = client.repair("cafÃ© â€” itâ€™s")
    second = client.repair(first.text)
    assert second.text == first.text
    assert list(second.edits) == []


def test_policy_flag_reports_without_changing(client: TextMendClient) -> None:
    content = "cafÃ© au lait"
    response = client.repair(content, policy={"mojibake": "flag"})
    assert response.text == content
    assert list(response.edits) == []
    (finding,) = [f for f in response.findings if f.category == textmend_pb2.CATEGORY_MOJIBAKE]
    assert finding.replacement == finding.original
    assert finding.suggestion == "é"


def test_min_confidence_reports_edits_rated_below_it(client: TextMendClient) -> None:
    article = (Path(__file__).parent / "fixtures" / "fortune-openai-departures.txt").read_bytes()
    full = client.repair(article, omit_diff=True)
    strict = client.repair(article, omit_diff=True, min_confidence=0.8)
    below = [e for e in full.edits if e.confidence < 0.8]
    assert below and all(e.confidence >= 0.8 for e in strict.edits)
    held = {
        (f.original_start, f.original, f.suggestion)
        for f in strict.findings
        if "below the request's min_confidence of 0.8:" in f.reason
    }
    assert {(e.original_start, e.original, e.replacement) for e in below} <= held
    assert "公司?!彼Q他們" in strict.text and "公司。”他稱他們" in full.text


@pytest.mark.parametrize("value", [-0.5, 1.5, float("nan"), float("inf")])
def test_min_confidence_outside_0_to_1_is_invalid_argument(target: str, value: float) -> None:
    request = textmend_pb2.RepairRequest(content=b"cafe", min_confidence=value)
    with grpc.insecure_channel(target) as channel:
        repair = textmend_pb2_grpc.TextMendStub(channel).Repair  # no retry policy
        with pytest.raises(grpc.RpcError) as caught:
            repair(request, timeout=30)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "min_confidence must be a number from 0 to 1" in caught.value.details()


def test_omit_diff(client: TextMendClient) -> None:
    response = client.repair("cafÃ©", omit_diff=True)
    assert response.text == "café"
    assert response.diff == ""


# --- bad input -------------------------------------------------------------------------------

JUNK = bytes(range(256)) * 8

BAD_INPUTS = {
    "empty": (b"", "", "empty"),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + JUNK, "", "binary"),
    "pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\n" + JUNK, "", "binary"),
    "zip": (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + JUNK, "", "binary"),
    "elf": (b"\x7fELF\x02\x01\x01\x00" + JUNK, "", "binary"),
    "unknown charset": (b"plain words", "x-klingon", "x-klingon"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_invalid_argument(client: TextMendClient, name: str) -> None:
    content, declared, mentioned = BAD_INPUTS[name]
    with pytest.raises(InvalidInput) as caught:
        client.repair(content, declared_encoding=declared)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert mentioned in caught.value.details
    assert "Traceback" not in caught.value.details


def test_unknown_policy_category_is_invalid_argument(client: TextMendClient) -> None:
    with pytest.raises(InvalidInput, match="mojibak"):
        client.repair("text", policy={"mojibak": "fix"})


def test_server_survives_bad_input(client: TextMendClient) -> None:
    for content, declared, _ in BAD_INPUTS.values():
        with pytest.raises(InvalidInput):
            client.repair(content, declared_encoding=declared)
    assert client.health()
    assert client.health("textmend.v1.TextMend")
    assert client.repair("cafÃ©").text == "café"


def test_oversized_content_is_resource_exhausted(small_server: ServerProcess) -> None:
    with TextMendClient(small_server.target, timeout=60) as small:
        # Over the 1 MiB limit: the engine refuses it and says which flag to raise.
        with pytest.raises(TooLarge) as caught:
            small.repair(b"a" * (MIB + MIB // 2))
        assert caught.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-message-mb" in caught.value.details
        # Far over it: gRPC itself refuses the message.
        with pytest.raises(TooLarge):
            small.repair(b"a" * (3 * MIB))
        assert small.health()
        assert small.repair(b"small and fine").text == "small and fine"


def test_a_large_document_comes_back_as_the_engine_repairs_it(client: TextMendClient) -> None:
    """3 MB of Chinese with mojibake and a long repeated run, through `Repair` and
    `RepairStream`: the server's own paths for large documents (its content parsed apart,
    decoded in pieces, the text set from its bytes) answer what the engine answers in
    process."""
    from textmend_server.engine import repair_bytes
    from textmend_server.service import to_response

    run = "".join(
        f"第{n}段：公司的工作人员说，这个项目很重要，大家都同意他的意见，会议在下午结束了。\n"
        for n in range(200)
    )
    lines = [f"第{n}行，文字内容不同，编号{n * 7919 % 100003}。\n" for n in range(70_000)]
    lines[100] = "café 的 cafÃ© 在这里。\n"
    content = (run + "".join(lines) + run).encode("utf-8")
    assert len(content) > 3 * MIB
    expected = to_response(repair_bytes(content, label="big"), "big")
    assert [e.original for e in expected.edits] == ["Ã©"]
    assert [len(f.original) for f in expected.findings] == [1000]
    answered = client.repair(content, id="big")
    (streamed,) = client.repair_stream([{"id": "big", "content": content}])
    for response in (answered, streamed):
        assert response.text == expected.text
        assert response.edits == expected.edits
        assert response.findings == expected.findings
        assert response.diff == expected.diff
        assert response.content_bytes == len(content)


def test_deadline_applies_to_a_server_that_never_answers() -> None:
    # A socket that accepts connections but never speaks HTTP/2: only the deadline ends the call.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        with TextMendClient(target, timeout=0.5) as client:
            with pytest.raises(DeadlineExceeded) as caught:
                client.repair("text")
            assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
            assert not client.health()


# --- RepairStream ----------------------------------------------------------------------------


def test_stream_reports_failures_per_document(client: TextMendClient) -> None:
    requests: list[dict[str, Any]] = [
        {"id": "de", "content": SAMPLES["cp1252-de"][1].encode("cp1252")},
        {"id": "empty", "content": b""},
        {"id": "mojibake", "text": "cafÃ©"},
        {"id": "png", "content": BAD_INPUTS["png"][0]},
        {"id": "klingon", "text": "words", "declared_encoding": "x-klingon"},
        {"id": "ja", "content": SAMPLES["shift_jis-ja"][1].encode("shift_jis")},
    ]
    responses = {r.id: r for r in client.repair_stream(requests)}
    assert sorted(responses) == sorted(r["id"] for r in requests)
    for bad in ("empty", "png", "klingon"):
        assert responses[bad].error.code == "INVALID_ARGUMENT"
        assert responses[bad].error.message
        assert responses[bad].text == ""
    assert "empty" in responses["empty"].error.message
    for good in ("de", "mojibake", "ja"):
        assert not responses[good].HasField("error")
    assert responses["de"].text == SAMPLES["cp1252-de"][1]
    assert responses["mojibake"].text == "café"
    assert responses["ja"].text == SAMPLES["shift_jis-ja"][1]


def test_stream_reports_too_large_per_document(small_server: ServerProcess) -> None:
    with TextMendClient(small_server.target, timeout=60) as small:
        requests: list[dict[str, Any]] = [
            {"id": "big", "content": b"a" * (MIB + MIB // 2)},
            {"id": "ok", "text": "fine"},
        ]
        responses = {r.id: r for r in small.repair_stream(requests)}
    assert responses["big"].error.code == "RESOURCE_EXHAUSTED"
    assert responses["ok"].text == "fine"


def test_empty_stream(client: TextMendClient) -> None:
    assert list(client.repair_stream([])) == []


# --- operations ------------------------------------------------------------------------------


def test_reflection_lists_services(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert "textmend.v1.TextMend" in services
    assert "grpc.health.v1.Health" in services


def test_debug_log_names_documents_but_never_their_text(small_server: ServerProcess) -> None:
    secret = "Ünïqüe-sëcret-wörds"
    with TextMendClient(small_server.target, timeout=60) as small:
        small.repair(secret, id="log-check-1")
        with pytest.raises(InvalidInput):
            small.repair(secret.encode(), id="log-check-2", declared_encoding="x-klingon")
    log = small_server.log_text()
    assert "log-check-1" in log
    assert "log-check-2" in log
    assert secret not in log
    assert secret.encode("utf-8").decode("latin-1") not in log


def test_dead_worker_is_replaced(tmp_path_factory: pytest.TempPathFactory) -> None:
    with run_server(tmp_path_factory.mktemp("restart"), "--workers", "2") as running:
        before = running.worker_pids()
        assert len(before) == 2
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + STARTUP_LIMIT
        after = running.worker_pids()
        while (len(after) != 2 or victim in after) and time.monotonic() < deadline:
            time.sleep(0.2)
            after = running.worker_pids()
        assert victim not in after
        assert len(after) == 2
        with TextMendClient(running.target, timeout=60) as client:
            assert client.repair("cafÃ©").text == "café"
        assert "died unexpectedly" in running.log_text()


def test_dns_target_with_round_robin(server: ServerProcess) -> None:
    port = server.target.rsplit(":", 1)[1]
    with TextMendClient(f"dns:///127.0.0.1:{port}", timeout=60) as client:
        assert client.health()
        assert [client.repair("cafÃ©").text for _ in range(4)] == ["café"] * 4


def test_undecodable_bytes_are_reported_with_byte_offsets(client: TextMendClient) -> None:
    content = "Grüße aus München, schöne Grüße! ".encode() * 3 + b"\xff tail " + "über".encode()
    response = client.repair(content)
    undecodable = [f for f in response.findings if f.category == textmend_pb2.CATEGORY_UNDECODABLE]
    assert undecodable
    for finding in undecodable:
        assert content[finding.original_start_byte : finding.original_end_byte] == b"\xff"
        assert response.text[finding.cleaned_start : finding.cleaned_end] == "\ufffd"
        assert finding.replacement == finding.original
    assert response.verdict == textmend_pb2.VERDICT_SUSPECT


def test_overruled_label_and_candidates_are_reported(client: TextMendClient) -> None:
    text = "公司的人都說他們很好。這是一個測試，看看編碼能不能被正確識別出來。" * 3
    response = client.repair(text.encode("gbk"), declared_encoding="iso-8859-1")
    assert response.text == text
    assert codec_name(response.encoding.name) in {"gbk", "gb18030", "gb2312"}
    assert response.encoding.overruled
    assert response.encoding.declared == "iso-8859-1"
    chosen = [c for c in response.encoding.candidates if c.chosen]
    assert [c.name for c in chosen] == [response.encoding.name]
    assert any(c.source == "declared" for c in response.encoding.candidates)
    [finding] = [f for f in response.findings if f.category == textmend_pb2.CATEGORY_ENCODING]
    assert "iso-8859-1" in finding.reason


def test_mixed_document_reports_its_regions(client: TextMendClient) -> None:
    utf8 = "Grüße aus Köln, schöne Größe und viel Spaß.\n".encode()
    legacy = "Café crème, déjà vu, à la française, naïve.\n".encode("cp1252")
    response = client.repair(utf8 + legacy + utf8)
    assert response.text == (utf8 + legacy.decode("cp1252").encode() + utf8).decode()
    regions = list(response.encoding.regions)
    assert len(regions) == 3
    assert regions[1].byte_start == len(utf8)
    assert regions[1].byte_end == len(utf8) + len(legacy)
    assert codec_name(regions[1].encoding) == "cp1252"
    assert regions[2].start == len(utf8.decode()) + len(legacy)


def test_version_is_sent_as_metadata(target: str) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from textmend_server import __version__

    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        _, call = stub.Check.with_call(health_pb2.HealthCheckRequest(), timeout=10)
        assert ("textmend-version", __version__) in tuple(call.initial_metadata())


def test_metrics_count_requests_edits_and_encodings(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers' summed counters are served; their files go when the server stops."""
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    directory = tmp_path_factory.mktemp("metrics")
    temporary = directory / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))  # the server's temporary directory
    with run_server(directory, "--workers", "2", "--metrics-port", str(metrics_port)) as process:
        assert [p.name[:17] for p in temporary.iterdir()] == ["textmend-metrics-"]
        with TextMendClient(process.target, channels=1) as client:
            client.repair("cafÃ© doesnâ€™t".encode())
            with pytest.raises(TextMendError):
                client.repair(b"")
        body = (
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
            .read()
            .decode()
        )
    assert 'textmend_requests_total{code="OK",method="Repair"} 1.0' in body
    assert 'textmend_requests_total{code="INVALID_ARGUMENT",method="Repair"} 1.0' in body
    assert 'textmend_edits_total{category="mojibake"} 2.0' in body
    assert 'textmend_encodings_total{encoding="utf-8",source="detected"} 1.0' in body
    # The failed document has no verdict (it used to be counted as "unspecified").
    verdicts = re.findall(r'^textmend_verdicts_total\{verdict="(\w+)"\} (\S+)$', body, re.M)
    assert verdicts == [("repaired", "1.0")], verdicts
    assert "textmend_request_seconds_bucket" in body
    assert not list(temporary.iterdir()), "the metrics directory outlived the server"


def slow_chinese(size: int) -> bytes:
    """About size bytes of the sample article's Chinese paragraphs, repeated: pages of pinyin
    leaks and byte-phase slips, minutes of work for one worker."""
    article = (Path(__file__).parent / "fixtures" / "fortune-openai-departures.txt").read_bytes()
    chinese = b"\n".join(article.split(b"\n")[:52]) + b"\n"
    return chinese * (size // len(chinese))


def test_work_stops_when_the_callers_deadline_passes(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    heavy = slow_chinese(8_000_000)
    directory = tmp_path_factory.mktemp("deadline")
    with run_server(directory, "--workers", "1", "--log-level", "INFO") as process:
        with TextMendClient(process.target, timeout=1.0, channels=1) as client:
            with pytest.raises(DeadlineExceeded):
                client.repair(heavy, id="heavy")
        for _ in range(600):
            if "repair id='heavy' abandoned" in process.log_text():
                break
            time.sleep(0.1)
        assert "repair id='heavy' abandoned" in process.log_text()
        with TextMendClient(process.target, timeout=30, channels=1) as client:
            assert client.repair(b"still serving").text == "still serving"


def test_a_document_over_the_time_limit_is_refused_and_names_the_flag(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Far more than a second of work, and no deadline from the caller to stop it; the
    # server's own limit does.
    heavy = slow_chinese(2_000_000)
    directory = tmp_path_factory.mktemp("max-seconds")
    with run_server(directory, "--workers", "1", "--max-seconds", "1") as process:
        with TextMendClient(process.target, timeout=600, channels=1) as client:
            with pytest.raises(TooLarge) as caught:
                client.repair(heavy, id="heavy")
            assert "--max-seconds" in caught.value.details
            response = next(client.repair_stream([{"id": "again", "content": heavy}]))
            assert response.error.code == "RESOURCE_EXHAUSTED"
            assert "--max-seconds" in response.error.message
            assert client.repair(b"still serving").text == "still serving"


def test_json_logs_are_one_object_per_line(tmp_path_factory: pytest.TempPathFactory) -> None:
    import json

    directory = tmp_path_factory.mktemp("jsonlogs")
    options = ("--workers", "1", "--log-format", "json", "--log-level", "DEBUG")
    with run_server(directory, *options) as process:
        with TextMendClient(process.target, channels=1) as client:
            client.repair("secret cafÃ© text".encode(), id="doc-7")
        lines = [line for line in process.log_text().splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in lines]
    assert {"time", "level", "pid", "logger", "message"} <= set(entries[0])
    assert any("doc-7" in entry["message"] for entry in entries)
    assert not any("secret" in line for line in lines)


def test_document_text_is_logged_only_with_log_content(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    directory = tmp_path_factory.mktemp("logcontent")
    options = ("--workers", "1", "--log-level", "DEBUG", "--log-content")
    with run_server(directory, *options) as process:
        with TextMendClient(process.target, channels=1) as client:
            client.repair(b"visible words here", id="doc-8")
        log = process.log_text()
    assert "doc-8" in log
    assert "visible words here" in log


@pytest.mark.parametrize("content_type", ["application/rss+xml", "text/xml", "image/svg+xml"])
def test_xml_content_types_keep_their_markup(client: TextMendClient, content_type: str) -> None:
    # As plain text, the closing tags glued to line ends are leaked markup and are removed.
    feed = (
        "<rss><channel><item><description>First line.</p>\n"
        "Second line here.</p>\n</description></item></channel></rss>\n"
    )
    plain = client.repair(feed.encode(), id="plain", content_type="text/plain")
    assert plain.text != feed
    response = client.repair(feed.encode(), id="xml", content_type=content_type)
    assert response.text == feed and list(response.edits) == []


_METRICS_RACE = """
import sys, tempfile, threading
from textmend_server import metrics
metrics.configure(tempfile.mkdtemp())
barrier, errors = threading.Barrier(16), []
def hit():
    barrier.wait()
    try:
        metrics.observe("Repair", "OK", 0.01, 10)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=hit) for _ in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(errors[:1])
sys.exit(1 if errors else 0)
"""


def test_metrics_are_built_once_when_a_workers_first_documents_arrive_together() -> None:
    """With metrics on, a worker's first documents, counted by several threads at once, each
    registered the metrics: the second registration failed (`Duplicated timeseries in
    CollectorRegistry`) and so did those documents, with UNKNOWN. Run in a fresh interpreter,
    where nothing has built them yet."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _METRICS_RACE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
