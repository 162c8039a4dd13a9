"""Coverage-guided fuzz target for the repair engine, and the invariants every result obeys.

`TestOneInput(data)` turns fuzzer bytes into one `repair_bytes` call (a declared charset, a
content type, a policy and the content) and raises `InvariantViolation` when the result
breaks the engine's contract. Only the documented `InputError`s may escape `repair_bytes`;
any other exception is a failure too. The content is built one of three ways, so that the
fuzzer reaches the repair stages and not only the decoder's refusals: raw bytes; text
assembled from fragments that trigger the detectors (mojibake, entities, tags, controls,
zero-width and bidi characters, pinyin after Han, `?!` among Han), encoded with a real
codec; or CJK text in a double-byte codec with bytes deleted (byte-phase slips).

Run it under atheris (libFuzzer's engine for Python), bounded and with results recorded::

    scripts/fuzz.sh 600

or directly, with any libFuzzer flags::

    .venv/bin/python fuzz/fuzz_engine.py -max_total_time=60 -max_len=4096

Without atheris, the same target runs under a seeded random-bytes driver (no coverage
feedback)::

    .venv/bin/python fuzz/fuzz_engine.py --random 100000 --seed 1

and over a corpus once, to see what it reaches (`scripts/fuzz.sh --coverage` runs this under
coverage.py)::

    .venv/bin/python fuzz/fuzz_engine.py --replay fuzz/results/corpus --sample 1000

`check_result` holds the invariants; `tests/test_properties.py` uses it too, so the property
tests and the fuzzer check the same contract.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

# Under the fuzzer, only the engine's own modules are instrumented for coverage: tracing
# the libraries it calls (ftfy, chardet, regex tables) would slow it tenfold for little gain.
# The character model's scoring (cjk.lm) is left out too: it is arithmetic with few branches
# and the hottest code under the CJK searches; tracing it halves the executions per second.
try:
    import atheris
except ImportError:  # the plain driver and the tests run without atheris
    atheris = None
# The plain drivers (--random, --replay) run uninstrumented: nothing reads the coverage.
_PLAIN_DRIVERS = ("--random", "--replay")
_instrument = (
    atheris.instrument_imports(include=["textmend_server"], exclude=["textmend_server.cjk.lm"])
    if atheris is not None
    and __name__ == "__main__"
    and not any(arg.startswith(_PLAIN_DRIVERS) for arg in sys.argv[1:])
    else contextlib.nullcontext()
)
with _instrument:
    from textmend_server import (
        Action,
        BinaryContentError,
        Category,
        EmptyContentError,
        RepairPolicy,
        TooLargeError,
        UnknownEncodingError,
        repair_bytes,
        repair_text,
    )
    from textmend_server.edits import Edit, apply_edits
    from textmend_server.engine import (
        DEFAULT_CONFIG,
        EngineConfig,
        Repaired,
        Verdict,
        hold_back,
        warm_up,
    )
    from textmend_server.policy import INFORMATIONAL

# Errors repair_bytes documents for input it refuses; anything else escaping is a bug.
ALLOWED_ERRORS: tuple[type[Exception], ...] = (
    EmptyContentError,
    BinaryContentError,
    UnknownEncodingError,
    TooLargeError,
)

# Declared charsets: real labels as they arrive in headers, the empty choice, an unknown
# label, and names of Python codecs that are not charsets (a caller can send any string).
CHARSETS: tuple[str | None, ...] = (
    None,
    "utf-8",
    "UTF-8",
    "latin-1",
    "iso-8859-1",
    "cp1252",
    "windows-1252",
    "gbk",
    "gb2312",
    "gb18030",
    "big5",
    "shift_jis",
    "euc-jp",
    "euc-kr",
    "koi8-r",
    "utf-16",
    "utf-16-le",
    "utf-32",
    "iso-2022-jp",
    "hz",
    "ascii",
    "x-no-such-charset",
)
# Codec names Python knows that are not text charsets: each must be refused as an unknown
# encoding (tests/test_properties.py holds the failure fuzzing found).
NON_CHARSET_CODECS: tuple[str, ...] = (
    "undefined",
    "punycode",
    "unicode_escape",
    "raw_unicode_escape",
    "utf-7",
    "idna",
    "base64",
    "rot13",
)
CONTENT_TYPES: tuple[str, ...] = ("text/plain", "text/html", "text/html; charset=utf-8")


# Policies the target picks from.
POLICIES: tuple[tuple[str, dict[Category, Action]], ...] = (
    ("default", {}),
    ("fix", {c: Action.FIX for c in Category}),
    ("flag", {c: Action.FLAG for c in Category}),
    ("off", {c: Action.OFF for c in Category}),
)

# Fragments that reach the detectors; text content is assembled from these.
_HAN = "中文字符我们公司创建者彼他們的是不了在人有這說國語學生時間問題"
_MOJIBAKE_SOURCES = "éüñßø—’“”…€™中文Ωж한"
FRAGMENTS: tuple[str, ...] = (
    "the ",
    "cafe ",
    "naïve ",
    "Grüße ",
    " ",
    "\n",
    "\r\n",
    "\t",
    "&",
    "<",
    ">",
    ";",
    "(",
    ")",
    "?",
    "!",
    "?!",
    "。",
    "”",
    "“",
    "<b>",
    "</b>",
    "<br>",
    "</p>",
    "/p>",
    '<a href="x">',
    "<p class='q'>",
    "&amp;",
    "&amp;amp;",
    "&lt;",
    "&#8217;",
    "&#x1F600;",
    "&#0;",
    "&#xD800;",
    "&nbsp;",
    "&frac14;",
    "&bogus;",
    "\x00",
    "\x07",
    "\x1b[31m",
    "\x85",
    "\x92",
    "\u200b",
    "\u2060",
    "\u200d",
    "\ufeff",
    "\ufffd",
    "\ue000",
    "\ufdd0",
    "\uffff",
    "\U0010fffd",
    "\u202e",
    "\u2066",
    "(chuàng)",
    "(zhōng)",
    "(wén)",
    "(zi4)",
    "(ni hao)",
    "中",
    "文",
    "創",
    "公司?!彼Q他們",
    "鏂囧瓧",
    "これは",
    "한국어",
    "ｆｕｌｌ",
    "A paragraph long enough to count as a block of repeated text.\n",
    *_HAN[::3],
    *(c.encode("utf-8").decode("latin-1") for c in _MOJIBAKE_SOURCES),
    *(c.encode("utf-8").decode("cp1252", "replace") for c in _MOJIBAKE_SOURCES),
    "Ã",
    "Â",
    "â€",
    "Ã\xa0",
)
# Encodings text content is written in before it reaches the engine.
TEXT_ENCODINGS: tuple[str, ...] = (
    "utf-8",
    "utf-8",
    "utf-8",
    "cp1252",
    "latin-1",
    "gbk",
    "gb18030",
    "big5",
    "shift_jis",
    "euc-kr",
    "koi8-r",
    "utf-16",
    "utf-8-sig",
)
DBCS_ENCODINGS: tuple[str, ...] = ("gbk", "big5", "shift_jis", "euc-kr", "gb18030")
_CJK_TEXT = (
    "中文字符我们公司创建者。他说：“这是一个问题。”彼他們的是不了在人有這說國語學生時間問題"
    "これは日本語の文章です。한국어 문장입니다。"
)


class InvariantViolation(AssertionError):
    """A result that breaks the engine's contract; the message names the invariant.

    For a failed idempotence check, `first` and `second` hold the edits of the two passes.
    """

    def __init__(
        self, message: str, first: Sequence[Edit] = (), second: Sequence[Edit] = ()
    ) -> None:
        super().__init__(message)
        self.first = list(first)
        self.second = list(second)


def _fail(what: str, **context: object) -> InvariantViolation:
    details = ", ".join(f"{k}={v!r}" for k, v in context.items())
    return InvariantViolation(f"{what}: {details}" if details else what)


# How much longer than what it replaces an edit's replacement may be, summed over a result's
# edits: half as long again, plus GROWTH_PER_EDIT code points. Entities and tags shrink,
# mojibake repair shrinks, a `<br>` becomes one newline, a CJK re-decode keeps the byte count,
# and a phase-slip repair adds a character per pair the decoder dropped (longer readings are
# only reported, see `textmend_server.cjk.max_growth`): so the text grows at most linearly.
GROWTH_PER_EDIT = 4


def growth_bound(original: str) -> int:
    """The most code points an edit replacing original may add."""
    return len(original) // 2 + GROWTH_PER_EDIT


def check_result(
    result: Repaired,
    policy: RepairPolicy,
    *,
    content: bytes | None = None,
    idempotent: bool = True,
    diffed: bool = True,
    config: EngineConfig = DEFAULT_CONFIG,
) -> None:
    """Raise InvariantViolation unless result honours the engine's contract (`config` is the
    engine configuration the result was made with, used again for the idempotence check).

    Checks: edits sorted, disjoint and in bounds; applying them to the original gives the
    text; text between edits unchanged; each edit's spans hold its original and its
    replacement; findings in bounds; text and original encode as UTF-8; bounded growth; a
    consistent verdict; decoder bookkeeping (when content is given); when diffed (the result
    was asked for its diff), that the diff is empty exactly when the text is unchanged and
    patches the original into the text; and, when idempotent is set, that repairing the
    repaired text with the same policy changes nothing.
    """
    original, text = result.original, result.text
    _check_unicode(original, "original")
    _check_unicode(text, "text")
    if apply_edits(original, result.edits) != text:
        raise _fail("applying edits to original does not give text", original=original)
    if diffed:
        _check_diff(original, text, result.diff)
    _check_edits(original, text, result.edits)
    _check_findings(original, text, result.findings)
    # Summed over the edits: a stage's change may reach the log as several edits (a diff of
    # the line before and after), not each of which is within the bound on its own.
    growth = len(text) - len(original)
    if growth > sum(growth_bound(edit.original) for edit in result.edits):
        raise _fail(
            "the text grew more than the bound",
            growth=growth,
            edits=[(e.category.value, e.original, e.replacement) for e in result.edits[:5]],
            original=original,
        )
    _check_verdict(result)
    if content is not None:
        _check_decoded(result, content)
    if idempotent:
        if result.decoded is not None and result.decoded.in_doubt:
            policy = hold_back(policy)  # as the engine repaired it: every fix a flag
        again = repair_text(text, policy=policy, include_diff=False, config=config)
        if again.edits:
            first = again.edits[0]
            raise InvariantViolation(
                f"repair is not idempotent: original={original!r}, text={text!r}, second pass "
                f"{first.category.value} {first.original!r} -> {first.replacement!r}",
                result.edits,
                again.edits,
            )


_HUNK_RE = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@\n")
_NO_NEWLINE = "\\ No newline at end of file\n"


def apply_unified_diff(original: str, diff: str) -> str:
    """original patched with diff, a unified diff as `patch` reads it (strictly: every context
    and removed line must match, every hunk's counts must add up); InvariantViolation if not."""
    if not diff:
        return original
    source, lines = _lines(original), _lines(diff)
    if len(lines) < 3 or not lines[0].startswith("--- ") or not lines[1].startswith("+++ "):
        raise _fail("the diff has no header", diff=diff[:200])
    out: list[str] = []
    pos = 0
    k = 2
    while k < len(lines):
        m = _HUNK_RE.fullmatch(lines[k])
        if m is None:
            raise _fail("not a hunk header", line=lines[k])
        start = int(m.group(1)) - (1 if m.group(2) != "0" else 0)
        old_len, new_len = int(m.group(2) or 1), int(m.group(4) or 1)
        if start < pos:
            raise _fail("hunks overlap or go backwards", line=lines[k])
        out += source[pos:start]
        pos = start
        k += 1
        seen_old = seen_new = 0
        while k < len(lines) and not lines[k].startswith("@@"):
            tag, body = lines[k][0], lines[k][1:]
            if k + 1 < len(lines) and lines[k + 1] == _NO_NEWLINE:
                body = body[:-1]
                k += 1
            if tag not in " -+":
                raise _fail("a hunk line without a tag", line=lines[k])
            if tag in " -":
                if pos >= len(source) or source[pos] != body:
                    raise _fail("the diff does not match the original", line=body)
                pos += 1
                seen_old += 1
            if tag in " +":
                out.append(body)
                seen_new += 1
            k += 1
        if (seen_old, seen_new) != (old_len, new_len):
            raise _fail("a hunk's line counts are wrong", counts=(old_len, new_len))
    out += source[pos:]
    return "".join(out)


def _lines(text: str) -> list[str]:
    """text's lines, each with its newline: split at "\n" alone, as the diff is (a line may
    hold a carriage return or a Unicode line separator)."""
    return [line for line in re.split(r"(?<=\n)", text) if line]


def _check_diff(original: str, text: str, diff: str) -> None:
    if diff == "" and original != text:
        raise _fail("the text changed but the diff is empty", original=original[:200])
    if diff and original == text:
        raise _fail("a diff for an unchanged text", diff=diff[:500])
    if apply_unified_diff(original, diff) != text:
        raise _fail("the diff does not patch the original into the text", diff=diff[:500])


def _check_unicode(value: str, name: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise _fail(f"{name} does not encode as UTF-8 ({error.reason})", **{name: value}) from None


def _check_edits(original: str, text: str, edits: Sequence[Edit]) -> None:
    prev_end = prev_cleaned_end = 0
    for edit in edits:
        start, end = edit.original_start, edit.original_end
        c_start, c_end = edit.cleaned_start, edit.cleaned_end
        if not (prev_end <= start <= end <= len(original)):
            raise _fail("edit out of order or out of bounds", edit=edit, original=original)
        if not (prev_cleaned_end <= c_start <= c_end <= len(text)):
            raise _fail("edit's cleaned span out of order or bounds", edit=edit, text=text)
        if original[prev_end:start] != text[prev_cleaned_end:c_start]:
            raise _fail("text outside the edits changed", edit=edit, original=original, text=text)
        if original[start:end] != edit.original:
            raise _fail("edit.original is not the original span", edit=edit, original=original)
        if text[c_start:c_end] != edit.replacement:
            raise _fail("cleaned span does not hold the replacement", edit=edit, text=text)
        if edit.original == edit.replacement:
            raise _fail("edit changes nothing", edit=edit)
        if not 0.0 <= edit.confidence <= 1.0:
            raise _fail("confidence out of range", edit=edit)
        prev_end, prev_cleaned_end = end, c_end
    if original[prev_end:] != text[prev_cleaned_end:]:
        raise _fail("text after the last edit changed", original=original, text=text)


def _check_findings(original: str, text: str, findings: Sequence[Edit]) -> None:
    for finding in findings:
        start, end = finding.original_start, finding.original_end
        if not (0 <= start <= end <= len(original)):
            raise _fail("finding out of bounds", finding=finding, original=original)
        if not (0 <= finding.cleaned_start <= finding.cleaned_end <= len(text)):
            raise _fail("finding's cleaned span out of bounds", finding=finding, text=text)
        if original[start:end] != finding.original:
            raise _fail("finding.original is not the original span", finding=finding)
        if not 0.0 <= finding.confidence <= 1.0:
            raise _fail("confidence out of range", finding=finding)
        _check_unicode(finding.replacement, "finding.replacement")


def _check_verdict(result: Repaired) -> None:
    if result.verdict is Verdict.UNREADABLE:
        if result.decoded is None:
            raise _fail("unreadable verdict for text that was never decoded")
        return
    in_doubt = result.decoded is not None and result.decoded.in_doubt
    if in_doubt and result.edits:
        raise _fail("edits made to text whose decoding is in doubt", edits=result.edits)
    suspect = in_doubt or any(f.category not in INFORMATIONAL for f in result.findings)
    expected = Verdict.SUSPECT if suspect else Verdict.REPAIRED if result.edits else Verdict.CLEAN
    if result.verdict is not expected:
        raise _fail("verdict disagrees with edits and findings", verdict=result.verdict)


def _check_decoded(result: Repaired, content: bytes) -> None:
    decoded = result.decoded
    if decoded is None:
        raise _fail("repair_bytes returned no decoding")
    if decoded.text != result.original:
        raise _fail("original is not the decoded text", original=result.original)
    if decoded.content_bytes != len(content):
        raise _fail("content_bytes is not the content's length", decoded=decoded.content_bytes)
    for pos, start, end in decoded.undecodable:
        if not (0 <= pos < len(decoded.text)) or decoded.text[pos] != "\ufffd":
            raise _fail("undecodable offset does not hold U+FFFD", pos=pos, text=decoded.text)
        if not (0 <= start < end <= len(content)):
            raise _fail("undecodable byte span out of bounds", span=(start, end), n=len(content))


class Provider(Protocol):
    """The part of atheris.FuzzedDataProvider the target uses."""

    def ConsumeIntInRange(self, lo: int, hi: int) -> int: ...

    def ConsumeBytes(self, count: int) -> bytes: ...

    def remaining_bytes(self) -> int: ...


class PlainProvider:
    """A stand-in for atheris.FuzzedDataProvider, for running without atheris.

    It consumes the same kinds of values, though not bit for bit as atheris does: a corpus
    decodes to different requests under the two providers, which is fine for a smoke run.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def ConsumeIntInRange(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi] from the next byte (lo when the data is used up)."""
        if self._pos >= len(self._data) or hi <= lo:
            return lo
        value = self._data[self._pos]
        self._pos += 1
        return lo + value % (hi - lo + 1)

    def ConsumeBytes(self, count: int) -> bytes:
        """Up to count bytes, fewer when the data runs out."""
        chunk = self._data[self._pos : self._pos + count]
        self._pos += len(chunk)
        return chunk

    def remaining_bytes(self) -> int:
        """How many bytes are left."""
        return len(self._data) - self._pos


def _provider(data: bytes) -> Provider:
    if atheris is None:
        return PlainProvider(data)
    provided: Provider = atheris.FuzzedDataProvider(data)
    return provided


def _pick(fdp: Provider, options: Sequence[Any]) -> Any:
    return options[fdp.ConsumeIntInRange(0, len(options) - 1)]


def _fragment_text(fdp: Provider, limit: int) -> str:
    pieces: list[str] = []
    for _ in range(limit):
        if fdp.remaining_bytes() == 0:
            break
        choice = fdp.ConsumeIntInRange(0, len(FRAGMENTS) + 15)
        if choice < len(FRAGMENTS):
            pieces.append(FRAGMENTS[choice])
        else:  # any code point, weighted towards the BMP
            high = 0x10FFFF if fdp.ConsumeIntInRange(0, 3) == 0 else 0xFFFF
            pieces.append(chr(fdp.ConsumeIntInRange(0, high)))
    return "".join(pieces)


def build_request(data: bytes) -> tuple[bytes, str | None, str, RepairPolicy]:
    """The (content, declared charset, content type, policy) fuzzer bytes stand for."""
    fdp = _provider(data)
    declared = _pick(fdp, CHARSETS + NON_CHARSET_CODECS)
    content_type = _pick(fdp, CONTENT_TYPES)
    _, actions = _pick(fdp, POLICIES)
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:
        content = fdp.ConsumeBytes(fdp.remaining_bytes())
    elif mode in (1, 2):
        encoding = _pick(fdp, TEXT_ENCODINGS)
        text = _fragment_text(fdp, 512)
        content = text.encode(encoding, "replace" if mode == 1 else "ignore")
    else:
        encoding = _pick(fdp, DBCS_ENCODINGS)
        start = fdp.ConsumeIntInRange(0, len(_CJK_TEXT) - 1)
        length = fdp.ConsumeIntInRange(1, len(_CJK_TEXT))
        raw = bytearray((_CJK_TEXT * 2)[start : start + length].encode(encoding, "ignore"))
        for _ in range(fdp.ConsumeIntInRange(0, 4)):
            if len(raw) > 1:
                del raw[fdp.ConsumeIntInRange(0, len(raw) - 1)]
        content = bytes(raw)
    policy = RepairPolicy(overrides=actions)
    return content, declared, content_type, policy


def run_request(
    content: bytes,
    declared: str | None,
    content_type: str,
    policy: RepairPolicy,
    *,
    idempotent: bool = True,
) -> Repaired | None:
    """Repair one request and check its result; None when the engine refused the input."""
    try:
        result = repair_bytes(
            content,
            declared_encoding=declared,
            content_type=content_type,
            policy=policy,
        )
    except ALLOWED_ERRORS:
        return None
    html = content_type.split(";")[0].strip().lower() == "text/html"
    effective = RepairPolicy(overrides=policy.overrides, html=html or policy.html)
    check_result(result, effective, content=content, idempotent=idempotent)
    return result


# The name and signature are the ones libFuzzer and atheris expect.
def TestOneInput(data: bytes) -> None:
    """One fuzz iteration: build a request from data, repair it, check the invariants; any
    failure is raised, for the fuzzer to record and stop on."""
    content, declared, content_type, policy = build_request(data)
    run_request(content, declared, content_type, policy)


# Inputs the fuzzer starts from (also used by the smoke test): each reaches a different stage.
SEED_TEXTS: tuple[tuple[str, str, str | None], ...] = (
    ("naÃ¯ve cafÃ© â€œokâ€\x9d", "utf-8", None),
    ("Fish &amp;amp; chips&#8217; <b>price</b></p>", "utf-8", None),
    ("ChatGPT創(chuàng)建者 公司?!彼Q他們", "utf-8", None),
    ("zero\u200bwidth\x07 bell\ufeff \u202eevil", "utf-8", None),
    ("中文字符我们公司创建者。他说：“这是一个问题。”", "gbk", "gbk"),
    ("這是中文。國語學生時間問題", "big5", None),
    ("これは日本語の文章です。", "shift_jis", "shift_jis"),
    ("Grüße aus Köln", "latin-1", "utf-8"),
    ("Привет, мир", "koi8-r", None),
)


def seed_corpus() -> list[bytes]:
    """Seed requests as raw content, for a corpus directory or a smoke run."""
    return [text.encode(encoding) for text, encoding, _ in SEED_TEXTS]


def run_seeds(check: Callable[[bytes, str | None], object]) -> None:
    """Call check(content, declared) for every seed."""
    for text, encoding, declared in SEED_TEXTS:
        check(text.encode(encoding), declared)


def random_inputs(count: int, seed: int, max_len: int = 512) -> list[bytes]:
    """count fuzzer inputs from a seeded generator: biased lengths, uniform bytes."""
    rng = random.Random(seed)
    return [rng.randbytes(rng.choice((2, 8, 32, 128, max_len))) for _ in range(count)]


def _summary(executions: int, started: float) -> int:
    """Print a plain driver's summary line (as scripts/fuzz.sh prints one); exit status 0."""
    print(f"executions={executions} failures=0 seconds={time.monotonic() - started:.0f}")
    return 0


def _random_driver(count: int, seed: int) -> int:
    """Run TestOneInput on count random inputs; the exit status libFuzzer would give."""
    started = time.monotonic()
    rng = random.Random(seed)
    for done in range(count):
        data = rng.randbytes(rng.choice((2, 8, 32, 128, 512)))
        try:
            TestOneInput(data)
        except Exception:
            print(f"failing input (hex): {data.hex()}", file=sys.stderr)
            raise
        if done and done % 10000 == 0:
            print(f"#{done} random inputs, {time.monotonic() - started:.0f}s", file=sys.stderr)
    return _summary(count, started)


def _replay_driver(corpus: Path, sample: int, seed: int) -> int:
    """Run TestOneInput on the corpus's inputs (a seeded sample of them when sample > 0),
    with no fuzzing: to see what the corpus reaches (`scripts/fuzz.sh --coverage`)."""
    files = sorted(p for p in corpus.iterdir() if p.is_file())
    if not files:
        sys.exit(f"no inputs in {corpus}")
    if 0 < sample < len(files):
        files = sorted(random.Random(seed).sample(files, sample))
    started = time.monotonic()
    for done, path in enumerate(files, 1):
        try:
            TestOneInput(path.read_bytes())
        except Exception:
            print(f"failing input: {path}", file=sys.stderr)
            raise
        if done % 500 == 0:
            elapsed = time.monotonic() - started
            print(f"#{done}/{len(files)} inputs, {elapsed:.0f}s", file=sys.stderr)
    return _summary(len(files), started)


def main(argv: list[str] | None = None) -> None:
    """Fuzz under atheris; with --random N, run the seeded random-bytes driver instead; with
    --replay DIR [--sample N], run a corpus's inputs once each."""
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--random", type=int, default=None)
    parser.add_argument("--replay", type=Path, default=None)
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    known, rest = parser.parse_known_args(argv[1:])
    if known.random is not None:
        sys.exit(_random_driver(known.random, known.seed))
    if known.replay is not None:
        sys.exit(_replay_driver(known.replay, known.sample, known.seed))
    if atheris is None:
        sys.exit("atheris is not installed: pip install atheris, or use --random N")
    warm_up()  # load the language models now, not inside the first timed inputs
    atheris.Setup([argv[0], *rest], TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
