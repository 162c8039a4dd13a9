"""`textmend backfill` on a real local Ray (2 CPUs) against the real server.

Every row the backfill writes must equal what the service returns for the same bytes (the
shared server of `conftest.py`, called over `RepairStream`), over a corpus of more than 2,000
documents: the case files, the sample article cut into pieces, the vendored real files (whole
and cut into pieces), the same text damaged in several encodings (cp1252 mojibake once and
twice, legacy single-byte codecs declared, undeclared and mislabelled, GBK, Big5, Shift-JIS and
EUC-KR, CJK phase slips from `corruptors.py`), and rows that cannot be repaired. An actor is
killed mid-job with SIGKILL and no row is lost or written twice; a backfill whose driver is
killed is resumed by a rerun that skips the finished partitions and leaves them untouched.

One Ray session serves the module; skipped (with its reason) when Ray is not installed
(`pip install -e '.[ray]'`; `scripts/bootstrap.sh` installs it).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from corruptors import corrupt_document

from textmend_client import TextMendClient
from textmend_client.backfill import Stats, repair_dataset, response_row, summary

ray = pytest.importorskip("ray", reason="the backfill needs Ray: pip install -e '.[ray]'")
pa = pytest.importorskip("pyarrow", reason="the backfill needs pyarrow: pip install -e '.[ray]'")
pq = pytest.importorskip("pyarrow.parquet")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
#: CPUs of the module's Ray: the issue's bound, and what CI machines have.
RAY_CPUS = 2
#: The documents the issue asks for at least.
MIN_DOCUMENTS = 2000
#: Rows per partition in these tests: small, so that a job has many partitions to share, to
#: kill an actor in and to resume from.
PARTITION_ROWS = 100
SMALL_PARTITION_ROWS = 20
#: Documents in the kill and resume tests (a slice of the corpus): enough partitions of
#: `SMALL_PARTITION_ROWS` that the job is still running when the first few are written.
SLICE = 600
#: Bounds on waiting, so that a broken job fails the test instead of hanging it; not claims
#: about speed (the whole module takes about a minute and a half on 2 cores).
JOB_LIMIT = 300.0
FIRST_PARTITIONS_LIMIT = 120.0
#: Piece sizes, in characters, for cutting the article and the real files: a few sentences,
#: as a short stored document or a paragraph of a page.
PIECE_CHARS = (120, 400)


# --- the corpus ------------------------------------------------------------------------------


def _pieces(text: str, rng: random.Random) -> list[str]:
    """text cut at line ends (or spaces) into pieces of `PIECE_CHARS` characters."""
    pieces, start = [], 0
    while start < len(text):
        end = min(len(text), start + rng.randint(*PIECE_CHARS))
        brk = max(text.rfind("\n", start, end), text.rfind(" ", start, end))
        end = len(text) if end == len(text) else (brk + 1 if brk > start else end)
        if text[start:end].strip():
            pieces.append(text[start:end])
        start = end
    return pieces


def _mojibake(text: str) -> str:
    """UTF-8 read as windows-1252 (bytes cp1252 leaves undefined read as Latin-1)."""
    return "".join(
        bytes([b]).decode("cp1252", errors="strict")
        if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
        # These five bytes are undefined in cp1252; decoders commonly pass them through.
        else chr(b)
        for b in text.encode("utf-8")
    )


def _encodable(text: str, codec: str) -> bool:
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def build_corpus() -> list[dict[str, Any]]:
    """The documents: id, content (bytes), declared_encoding, content_type (seeded, so every
    run builds the same corpus)."""
    rng = random.Random(20)
    docs: list[dict[str, Any]] = []

    def add(kind: str, content: bytes, declared: str = "", content_type: str = "") -> None:
        docs.append(
            {
                "id": f"{kind}-{len(docs):05d}",
                "content": content,
                "declared_encoding": declared,
                "content_type": content_type,
            }
        )

    texts: list[tuple[str, str, str]] = []  # (kind, text, content type)
    for name in ("repairs", "negative"):
        for case in json.loads((ROOT / "tests" / "cases" / f"{name}.json").read_text("utf-8")):
            add(f"case-{name}", case["original"].encode("utf-8"))
            texts.append(("case", case["original"], ""))
    article = (FIXTURES / "fortune-openai-departures.txt").read_text("utf-8")
    for piece in _pieces(article, rng):
        add("article", piece.encode("utf-8"))
        texts.append(("article", piece, ""))
    manifest = json.loads((FIXTURES / "real" / "manifest.json").read_text("utf-8"))
    for entry in manifest:
        raw = (FIXTURES / "real" / "files" / entry["path"]).read_bytes()
        add("real", raw, content_type=entry["content_type"])
        if entry["content_type"] == "text/plain":
            text = raw.decode("utf-8", errors="replace")
            texts += [("realpiece", piece, "") for piece in _pieces(text, rng)]
    for kind, text, content_type in texts:
        if kind == "realpiece":
            add(kind, text.encode("utf-8"), content_type=content_type)
        roll = rng.random()
        if roll < 0.3:
            add(f"{kind}-mojibake", _mojibake(text).encode("utf-8"))
        elif roll < 0.4:
            add(f"{kind}-mojibake2", _mojibake(_mojibake(text)).encode("utf-8"))
        for codec in ("cp1252", "cp1251", "iso-8859-7", "koi8-r"):
            if not text.isascii() and _encodable(text, codec) and rng.random() < 0.5:
                declared = rng.choice([codec, "", "utf-8", "iso-8859-1"])
                add(f"{kind}-{codec}", text.encode(codec), declared)
        for codec in ("gbk", "big5", "shift_jis", "euc-kr"):
            if any(ord(ch) > 0x2E80 for ch in text) and _encodable(text, codec):
                add(f"{kind}-{codec}", text.encode(codec), rng.choice([codec, ""]))
        if rng.random() < 0.05:
            add(f"{kind}-controls", text.replace(" ", " \x07", 2).encode("utf-8"))
    negative = json.loads((ROOT / "tests" / "cases" / "negative.json").read_text("utf-8"))
    chinese = [
        case["original"]
        for case in negative
        if any("\u4e00" <= ch <= "\u9fff" for ch in case["original"])
    ]
    for seed in range(40):
        paragraphs = rng.sample(chinese, k=min(2, len(chinese)))
        if all(_encodable(p, "gbk") for p in paragraphs):
            corrupted = corrupt_document(paragraphs, codec="gbk", seed=seed, trigger_p=0.9)
            add("cjk-slip", corrupted.text.encode("utf-8"))
    # Rows that cannot be repaired: each must come out with the service's own error.
    add("bad-empty", b"")
    add("bad-binary", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    add("bad-charset", b"caf\xe9", "no-such-charset")
    add("bad-long-line", b"x" * (1024 * 1024 + 1))
    return docs


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, Any]]:
    docs = build_corpus()
    assert len(docs) >= MIN_DOCUMENTS, f"only {len(docs)} documents"
    return docs


@pytest.fixture(scope="module")
def expected(corpus: list[dict[str, Any]], target: str) -> dict[str, dict[str, Any]]:
    """Each document's row as the real server's response makes it, by id."""
    requests = [
        {
            "id": doc["id"],
            "content": doc["content"],
            "declared_encoding": doc["declared_encoding"],
            "content_type": doc["content_type"],
            "omit_diff": True,
        }
        for doc in corpus
    ]
    with TextMendClient(target, timeout=60) as client:
        rows = {r.id: response_row(r, r.id) for r in client.repair_stream(requests)}
    assert len(rows) == len(corpus)
    return rows


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    """One local Ray with `RAY_CPUS` CPUs for the module."""
    context = ray.init(
        num_cpus=RAY_CPUS,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield context
    finally:
        ray.shutdown()


def _parquet_input(corpus: list[dict[str, Any]], path: Path) -> Path:
    table = pa.table(
        {
            "id": [doc["id"] for doc in corpus],
            "content": pa.array([doc["content"] for doc in corpus], pa.binary()),
            "declared_encoding": [doc["declared_encoding"] or None for doc in corpus],
            "content_type": [doc["content_type"] or None for doc in corpus],
        }
    )
    pq.write_table(table, path, row_group_size=250)
    return path


def _jsonl_input(corpus: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for doc in corpus:
            record = {"id": doc["id"], "content_b64": base64.b64encode(doc["content"]).decode()}
            if doc["declared_encoding"]:
                record["declared_encoding"] = doc["declared_encoding"]
            if doc["content_type"]:
                record["content_type"] = doc["content_type"]
            handle.write(json.dumps(record) + "\n")
    return path


def _read_output(directory: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(directory.glob("part-*")):
        if path.suffix == ".parquet":
            rows += pq.read_table(path).to_pylist()
        else:
            rows += [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    return rows


def _check_rows(rows: list[dict[str, Any]], expected: dict[str, dict[str, Any]], ids: list[str]):
    got = [row["id"] for row in rows]
    assert len(got) == len(set(got)), "a row was written twice"
    assert sorted(got) == sorted(ids), "rows lost or invented"
    for row in rows:
        want = expected[row["id"]]
        # JSON Lines output has the float32 confidences as Python floats; compare as float32.
        assert _floats32(row) == _floats32(want), row["id"]


def _floats32(value: Any) -> Any:
    if isinstance(value, float):
        return float(pa.scalar(value, pa.float32()).as_py())
    if isinstance(value, dict):
        return {k: _floats32(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats32(v) for v in value]
    return value


def _wait_for_parts(directory: Path, count: int, limit: float) -> list[Path]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        parts = sorted(directory.glob("part-*"))
        if len(parts) >= count:
            return parts
        time.sleep(0.05)
    pytest.fail(f"fewer than {count} partitions in {directory} after {limit:.0f} s")


def _actor_pids() -> list[int]:
    """Process ids of this machine's backfill actors (Ray names their processes
    `ray::MapWorker(MapBatches(PartitionActor))`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"PartitionActor" in command and b"ray::" in command:
            pids.append(int(entry.name))
    return pids


# --- the tests -------------------------------------------------------------------------------


def test_every_row_equals_the_service(
    ray_session: Any, corpus: list[dict[str, Any]], expected: dict[str, dict[str, Any]],
    tmp_path: Path,
) -> None:  # fmt: skip
    """Parquet in (raw bytes), Parquet out: every row as the service answers it, errors too."""
    source = _parquet_input(corpus, tmp_path / "corpus.parquet")
    result = repair_dataset(
        str(source), str(tmp_path / "out"), partition_rows=PARTITION_ROWS, actors=RAY_CPUS
    )
    rows = _read_output(tmp_path / "out")
    _check_rows(rows, expected, [doc["id"] for doc in corpus])
    want = Stats()
    for doc in corpus:
        want.add_row(expected[doc["id"]], len(doc["content"]))
    assert result.stats == want and result.run == want
    assert result.partitions == -(-len(corpus) // PARTITION_ROWS) and result.skipped == 0
    assert want.verdicts["repaired"] > 100 and want.verdicts["clean"] > 100
    assert want.errors["INVALID_ARGUMENT"] >= 3
    text = summary(result)
    assert re.search(rf"^documents +{len(corpus)}$", text, re.M) and "  mojibake" in text
    assert not list((tmp_path / "out" / "_tmp").iterdir())


def test_an_actor_killed_mid_job_loses_and_duplicates_nothing(
    ray_session: Any, corpus: list[dict[str, Any]], expected: dict[str, dict[str, Any]],
    tmp_path: Path,
) -> None:  # fmt: skip
    """SIGKILL one actor once partitions are being written: Ray restarts it and redoes its
    partition from the start; every row comes out once (JSON Lines in and out)."""
    docs = corpus[:SLICE]
    source = _jsonl_input(docs, tmp_path / "slice.jsonl")
    out = tmp_path / "out"
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = repair_dataset(
                str(source), str(out), output_format="jsonl",
                partition_rows=SMALL_PARTITION_ROWS, actors=RAY_CPUS,
            )  # fmt: skip
        except BaseException as exc:  # reported by the test below
            outcome["error"] = exc

    job = threading.Thread(target=run)
    job.start()
    written = _wait_for_parts(out, 2, FIRST_PARTITIONS_LIMIT)
    pids = _actor_pids()
    assert pids, "no backfill actor process found"
    victim = pids[0]
    os.kill(victim, signal.SIGKILL)
    total = -(-len(docs) // SMALL_PARTITION_ROWS)
    assert len(written) < total, "the job finished before an actor could be killed"
    job.join(JOB_LIMIT)
    assert not job.is_alive(), "the backfill did not finish"
    assert "error" not in outcome, outcome.get("error")
    assert not Path(f"/proc/{victim}").exists() or victim not in _actor_pids()
    _check_rows(_read_output(out), expected, [doc["id"] for doc in docs])
    assert outcome["result"].stats.documents == len(docs)


def test_a_rerun_after_an_interruption_skips_finished_partitions(
    ray_session: Any, corpus: list[dict[str, Any]], expected: dict[str, dict[str, Any]],
    tmp_path: Path,
) -> None:  # fmt: skip
    """`textmend backfill` joined to the module's Ray and killed (SIGKILL, as a lost driver);
    a rerun skips every partition that was finished, leaves those files as they were, and
    completes the rest."""
    docs = corpus[SLICE : 2 * SLICE]
    source = _jsonl_input(docs, tmp_path / "slice.jsonl")
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "textmend_client.cli", "backfill", str(source),
        "--output", str(out), "--partition-rows", str(SMALL_PARTITION_ROWS),
        "--address", ray_session.address_info["address"], "--actors", "1",
    ]  # fmt: skip
    log = (tmp_path / "first-run.log").open("wb")
    first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_parts(out, 3, FIRST_PARTITIONS_LIMIT)
    finally:
        first.kill()
        first.wait()
        log.close()
    # The killed driver's actor is stopped by Ray; wait for it so that it writes no more.
    deadline = time.monotonic() + JOB_LIMIT
    while _actor_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    finished = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*")}
    total = -(-len(docs) // SMALL_PARTITION_ROWS)
    assert 3 <= len(finished) < total, (tmp_path / "first-run.log").read_text()
    result = repair_dataset(
        str(source), str(out), partition_rows=SMALL_PARTITION_ROWS, actors=RAY_CPUS
    )
    assert result.skipped == len(finished)
    assert result.run.documents == len(docs) - len(finished) * SMALL_PARTITION_ROWS
    for name, stamp in finished.items():
        path = out / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp, f"{name} was rewritten"
    _check_rows(_read_output(out), expected, [doc["id"] for doc in docs])
    assert result.stats.documents == len(docs)
