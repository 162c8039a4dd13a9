"""Choose a text encoding by decoding candidates and keeping the one whose text reads best.

A single detector answer cannot be checked; a decoding can. Candidates come from the caller's
declared charset, the document's own declaration (`<?xml encoding>`, and for HTML
`<meta charset>` / `http-equiv`), chardet's ranked answers, UTF-8, and the sibling codecs of
those answers (ISO-8859-n and windows-125x share most of a layout). Each candidate decodes a
sample of the bytes strictly; candidates that give the same text are one reading, reported
under the most useful name; the distinct readings are scored for how unlike natural text they
read (`implausibility`), and chardet's favourite keeps its place unless another reading is
clearly better. Every candidate is returned with its score, so the choice can be checked.

Why not also charset-normalizer: measured on chardet's own test files (bench/detect_bench.py)
it is less accurate than chardet on whole files and on every prefix length, and running it
would double the cost; its answers add nothing the scoring here does not already check.

Cost: chardet reads at most the first `SAMPLE_BYTES`; each candidate decodes that sample once
(C speed); scoring looks only at the words holding non-ASCII characters, at most
`SCORED_CHARS` of them, and runs the CJK character model only when CJK readings compete.
"""

from __future__ import annotations

import codecs
import math
import re
from dataclasses import dataclass, field

import chardet
from ftfy.badness import badness

# The bytes candidates are decoded and detected on; the chosen codec decodes the whole content.
SAMPLE_BYTES = 65536
# The characters of non-ASCII words each reading is scored on.
SCORED_CHARS = 1200
# chardet answers considered, best first.
DETECTOR_ANSWERS = 4

# Labels browsers accept that Python's codec registry does not, mapped to Python names.
ALIASES = {
    "x-sjis": "shift_jis",
    "windows-31j": "cp932",
    "x-gbk": "gbk",
    "x-euc-jp": "euc_jp",
    "x-mac-cyrillic": "mac_cyrillic",
    "maccyrillic": "mac_cyrillic",
    "x-mac-roman": "mac_roman",
    "macroman": "mac_roman",
    "windows-874": "cp874",
    "dos-874": "cp874",
    "unicode-1-1-utf-8": "utf-8",
    "x-unicode20utf8": "utf-8",
    "ks_c_5601-1987": "cp949",
    "x-cp1250": "cp1250",
    "x-cp1251": "cp1251",
    "x-user-defined": "latin-1",
    "iso-8859-8-i": "iso8859_8",
    "csbig5": "big5",
    "x-x-big5": "big5",
    "big5-hkscs": "big5hkscs",
}

# Codecs whose repertoire a wider codec extends; the wider one is used when the bytes need it.
SUPERSETS = {
    "ascii": "utf-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
    "iso8859-1": "cp1252",
    "latin-1": "cp1252",
    "iso8859-9": "cp1254",
    "tis-620": "cp874",
}

# Codecs sharing most of one layout: when two of them give the same text for these bytes the
# first-listed of the family is reported (the windows codec, as browsers do for ISO labels).
_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("cp1252", "iso8859-1", "iso8859-15"),
    ("cp1250", "iso8859-2"),
    ("cp1253", "iso8859-7"),
    ("cp1254", "iso8859-9"),
    ("cp1255", "iso8859-8"),
    ("cp1256", "iso8859-6"),
    ("cp1257", "iso8859-13"),
    ("cp874", "tis-620", "iso8859-11"),
    ("cp1251",),
    ("koi8-r", "koi8-u"),
)
_FAMILY = {name: family for family in _FAMILIES for name in family}

UNICODE = frozenset(
    {"utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"}
)
MULTIBYTE = frozenset(
    {
        "gb2312",
        "gbk",
        "gb18030",
        "big5",
        "big5hkscs",
        "cp950",
        "shift_jis",
        "cp932",
        "shift_jis_2004",
        "euc_jp",
        "euc_jis_2004",
        "euc_kr",
        "cp949",
        "johab",
        "iso2022_jp",
        "iso2022_jp_2",
        "iso2022_kr",
        "hz",
    }
)

# How common each codec is on the web, most common first: among readings that score alike
# (short texts, where a detector's confidence means little) the more common codec wins.
_POPULARITY = {
    name: rank
    for rank, name in enumerate(
        [
            "utf-8",
            "cp1252",
            "iso8859-1",
            "gb18030",
            "gbk",
            "gb2312",
            "shift_jis",
            "cp932",
            "euc_kr",
            "cp949",
            "big5",
            "big5hkscs",
            "euc_jp",
            "cp1251",
            "iso8859-15",
            "cp1250",
            "iso8859-2",
            "koi8-r",
            "cp1256",
            "cp1253",
            "iso8859-7",
            "cp1254",
            "iso8859-9",
            "cp1255",
            "iso8859-8",
            "cp874",
            "tis-620",
            "iso8859-5",
            "cp1257",
            "koi8-u",
            "iso2022_jp",
        ]
    )
}


class Source:
    """Where a candidate came from (plain strings, so they travel as they are)."""

    DECLARED = "declared"
    MARKUP = "markup"
    DETECTOR = "detector"
    SIBLING = "sibling"
    UTF8 = "utf-8 check"
    LEGACY = "legacy code page"


# Every language family's legacy code pages, tried on every document that is not UTF-8, so
# that the reading in the language's own code page is always among those scored even when the
# detector did not name it (windows-125x and their ISO-8859 cousins, KOI8, the DOS and Mac
# Cyrillic pages, and the CJK codecs). Subsets their superset decodes the same (ISO-8859-1,
# GB2312) are left out; ISO-2022-JP joins when the sample holds an escape.
LEGACY_CODECS = (
    "cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258",
    "iso8859-2", "iso8859-5", "iso8859-7", "iso8859-8", "iso8859-9", "iso8859-15",
    "koi8-r", "koi8-u", "cp866", "mac_cyrillic",
    "gb18030", "gbk", "big5", "shift_jis", "cp932", "euc_jp", "euc_kr",
)  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """One encoding considered for the content and how its decoding read.

    `name` is the codec that decoded (a superset of the label when the bytes needed it),
    `label` what the source said, `confidence` the source's own belief in [0, 1] (1 for a
    declaration), `decodes` whether the sample decoded strictly, `implausibility` how unlike
    natural text the decoding reads (0 is ordinary text; infinite when it did not decode),
    `quality` the same as a score in [0, 1] (1 reads like text), `same_as` the candidate
    that gave the identical text and stands for it, and `chosen` whether it won.
    """

    name: str
    label: str
    source: str
    confidence: float
    decodes: bool
    implausibility: float = math.inf
    same_as: str | None = None
    chosen: bool = False

    @property
    def quality(self) -> float:
        """Implausibility mapped to [0, 1]: 1 reads like ordinary text, 0 does not decode."""
        if not self.decodes:
            return 0.0
        return round(1.0 / (1.0 + self.implausibility / 5.0), 3)


@dataclass
class Reading:
    """One distinct decoded text of the sample and the candidates that gave it."""

    text: str
    names: list[Candidate] = field(default_factory=list)
    implausibility: float = 0.0
    cjk: float = 0.0  # mean surprise per CJK character under the character model, in nats
    # −log P, in nats, of the scored stretch of the bytes as decoded here, under the language
    # model that explains it best (`langmodel.cost`), and that language; None when not scored.
    cost: float | None = None
    lang: str = ""
    # Probability that this is the right reading, among the readings scored.
    posterior: float = 0.0


# Python codecs that turn bytes into str but are not character sets a document can be in:
# transfer and escape encodings, and a codec that always fails. A label naming one is as
# unknown as a label naming nothing (`rot13`, `base64` and the like are not text encodings
# at all and are refused by the check below).
NOT_CHARSETS = frozenset(
    {"undefined", "punycode", "idna", "unicode-escape", "raw-unicode-escape", "utf-7"}
)


def codec_of(label: str) -> str | None:
    """The Python codec name for a charset label, or None when no charset has that name.

    >>> codec_of(" ISO-8859-1 "), codec_of("x-sjis"), codec_of("EUC-TW"), codec_of("rot13")
    ('iso8859-1', 'shift_jis', None, None)
    >>> codec_of("unicode_escape"), codec_of("punycode")
    (None, None)
    """
    cleaned = label.strip().strip("\"'").lower()
    try:
        info = codecs.lookup(ALIASES.get(cleaned, cleaned))
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in NOT_CHARSETS:
        return None
    return info.name


def strict(content: bytes, codec: str) -> str | None:
    """content decoded strictly with codec, or None when it does not decode."""
    try:
        return content.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


_C1 = re.compile(rb"[\x80-\x9f]")


def widen(content: bytes, codec: str) -> tuple[str, str] | None:
    """(text, codec used): strictly with codec, or with its superset when the bytes need it.

    ISO-8859-1 is read as windows-1252 when it holds bytes 0x80-0x9F (C1 controls are almost
    never meant; windows-1252 punctuation almost always is), as browsers do.

    >>> widen("It’s".encode("cp1252"), "iso8859-1")
    ('It’s', 'cp1252')
    """
    if codec in ("iso8859-1", "latin-1") and _C1.search(content):
        text = strict(content, "cp1252")
        if text is not None:
            return text, "cp1252"
    text = strict(content, codec)
    if text is not None:
        return text, codec
    wider = SUPERSETS.get(codec)
    if wider is not None:
        text = strict(content, wider)
        if text is not None:
            return text, wider
    return None


# A document's own declaration: an XML declaration at the very start, or (HTML) a meta tag.
_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']\s*([A-Za-z0-9._:-]+)""")
_META = re.compile(rb"""<meta[^>]{0,300}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)


_DECLARATION = re.compile(rb"(?:encoding|charset)\s*=\s*[\"']?\s*[A-Za-z0-9._:-]+", re.IGNORECASE)


def markup_charset(content: bytes, html: bool = False) -> str | None:
    """The charset the document declares itself: `<?xml encoding>` at its start, or for HTML
    the first `<meta charset>` / `http-equiv` in its first 4 KB. None when there is none.

    >>> markup_charset(b'<?xml version="1.0" encoding="gb2312"?><rss/>')
    'gb2312'
    >>> markup_charset(b'<html><meta charset="utf-8">', html=True)
    'utf-8'
    """
    head = content[:4096]
    found = _XML_DECL.match(head)
    if found is None and html:
        found = _META.search(head)
    return found.group(1).decode("ascii").lower() if found else None


def sample_of(content: bytes) -> bytes:
    """The first SAMPLE_BYTES of content, ended just after a byte below 0x40, which no
    multi-byte codec uses as a trailing byte, so the sample never splits a character."""
    if len(content) <= SAMPLE_BYTES:
        return content
    head = content[:SAMPLE_BYTES]
    for end in range(len(head) - 1, max(len(head) - 4096, 0), -1):
        if head[end] < 0x40:
            return head[: end + 1]
    return head


def detector_answers(sample: bytes, *, blind: bool = False) -> list[tuple[str, float]]:
    """chardet's ranked answers as (Python codec name, confidence), unknown names dropped.

    chardet believes in-document declarations (which is fast when they are right); with
    blind=True it is shown the bytes with them blanked, for independent evidence.
    """
    out: dict[str, float] = {}
    if blind:
        head = _DECLARATION.sub(lambda m: b" " * len(m.group()), sample[:4096])
        sample = head + sample[4096:]
    for guess in chardet.detect_all(sample):
        name = guess.get("encoding")
        codec = codec_of(name) if name else None
        if codec is not None and codec not in out:
            out[codec] = float(guess.get("confidence") or 0.0)
        if len(out) >= DETECTOR_ANSWERS:
            break
    return list(out.items())


# --- scoring -------------------------------------------------------------------------------

# Words holding at least one non-ASCII character: all that can differ between readings. Found
# from their non-ASCII runs, then widened to the word around them (bounded, so long ASCII
# stretches without spaces cost nothing).
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_WORD_HEAD = re.compile(r"[^\s<>\"'=&;/]{0,24}\Z")
_WORD_TAIL = re.compile(r"[^\s<>\"'=&;/\x80-\U0010ffff]{0,24}")
_LETTER_WORD = re.compile(r"[^\W\d_]{2,}")


def _build_script_table() -> dict[int, str | None]:
    """Letter → script initial, for telling words that mix scripts (what a wrong single-byte
    codec makes); other characters map to nothing."""
    table: dict[int, str | None] = {}
    spans = {
        "L": [(0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F)],
        "C": [(0x400, 0x4FF)],
        "G": [(0x370, 0x3FF)],
        "H": [(0x590, 0x6FF)],
        "T": [(0xE00, 0xE7F)],
        "J": [(0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3)],
    }
    for script, ranges in spans.items():
        for lo, hi in ranges:
            for code in range(lo, hi + 1):
                table[code] = script
    for code in (0xD7, 0xF7):
        table[code] = None
    return table


_SCRIPT_OF = _build_script_table()
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Characters text almost never holds: C1 controls, private use, replacement, unassigned-looking
# compatibility jamo and half-width katakana runs that single-byte mojibake of CJK produces.
_ODD = re.compile(r"[\x80-\x9f\ue000-\uf8ff\ufffd\u0080-\u009f]")
# A non-ASCII symbol, digit or mark wedged between two letters: `Za¿ó³æ`, `ÕfËû`.
_WEDGED = re.compile(
    r"(?<=[^\W\d_])[\u00a1-\u00bf\u00d7\u00f7\u201a-\u2122\u2500-\u25ff\u2190-\u21ff"
    r"\u2200-\u22ff\u0384-\u0385\u02c6-\u02dd](?=[^\W\d_])"
)


def _build_case_break() -> re.Pattern[str]:
    """A non-ASCII capital between two lower-case letters (`BlanchardÕs`, `пРиВЕТ`): a quote or
    a letter of another codec read with the wrong one. ASCII capitals are left alone
    (`McDonald`, `iPhone`)."""
    letters = [chr(c) for c in range(0xC0, 0x530)]
    upper = "".join(c for c in letters if c.isupper())
    lower = "a-z" + "".join(c for c in letters if c.islower())
    return re.compile(f"(?<=[{lower}])[{re.escape(upper)}](?=[{lower}])")


_CASE_BREAK = _build_case_break()
# Three or more accented Latin letters in a row, which no Latin-script language writes much.
_ACCENT_RUN = re.compile(r"[\u00c0-\u024f]{3,}")
# Box drawing and block elements inside running text: DOS code pages read with the wrong one.
_BOX = re.compile(r"[\u2500-\u259f\u2320-\u2321\u2310]")


def foreign_words(text: str, limit: int = SCORED_CHARS) -> str:
    """The words of text holding non-ASCII characters, space-joined, at most limit chars.

    >>> foreign_words("a café in Köln, twice: café")
    'café Köln, café'
    """
    out = []
    size = 0
    end = 0
    for run in _NON_ASCII_RUN.finditer(text):
        start, stop = run.span()
        if start < end:
            continue
        head = _WORD_HEAD.search(text, max(end, start - 24), start)
        begin = head.start() if head else start
        tail = _WORD_TAIL.match(text, stop)
        end = tail.end() if tail else stop
        nxt = _NON_ASCII_RUN.match(text, end)
        while nxt is not None:  # the word goes on after more ASCII letters
            tail = _WORD_TAIL.match(text, nxt.end())
            end = tail.end() if tail and tail.end() > nxt.end() else nxt.end()
            nxt = _NON_ASCII_RUN.match(text, end)
        out.append(text[begin:end])
        size += end - begin + 1
        if size >= limit:
            break
    return " ".join(out)


def implausibility(text: str) -> float:
    """How unlike natural text a decoding reads: anomalies per 100 non-ASCII characters.

    Counts words mixing scripts (what a wrong single-byte codec makes), C1 controls and
    private-use characters, symbols wedged inside words, capitals breaking lower-case words,
    runs of accented letters, box drawing in prose, and ftfy's mojibake badness; only the words
    that hold non-ASCII characters are looked at, since those are all that differ between
    candidate decodings.

    >>> implausibility("Café crème") < implausibility("Cafй crиme")
    True
    >>> implausibility("Daniel Blanchard’s Trackpad") < implausibility("Daniel BlanchardÕs")
    True
    """
    words = foreign_words(text)
    wide = sum(1 for ch in words if ch > "\x7f")
    if not wide:
        return 0.0
    return 100.0 * anomalies(words) / max(wide, 10)


def anomalies(words: str) -> float:
    """The weighted count of anomalies in words (see `implausibility`)."""
    mixed = 0
    for word in _LETTER_WORD.findall(words):
        if not word.isascii():
            mixed += len(set(word.translate(_SCRIPT_OF))) > 1
    count = 2.0 * mixed
    count += 2.0 * len(_ODD.findall(words))
    count += len(_WEDGED.findall(words)) + len(_CASE_BREAK.findall(words))
    count += len(_ACCENT_RUN.findall(words)) + 0.5 * len(_BOX.findall(words))
    return count + badness(words)


def cjk_surprise(text: str, limit: int = 400) -> float:
    """Mean surprise (nats per character) of text's CJK characters under the character model
    of the language they look like; 0 when the text holds too few CJK characters to judge.

    Lower reads more like the language: a wrong CJK codec makes rare characters in odd order.
    """
    chars = _CJK.findall(text, 0, 20 * limit)[:limit]
    if len(chars) < 2:
        return 0.0
    from textmend_server.cjk.lm import get_model

    joined = "".join(chars)
    kana = len(_KANA.findall(joined))
    hangul = len(_HANGUL.findall(joined))
    lang = "ko" if hangul > len(chars) / 3 else "ja" if kana > len(chars) / 10 else "zh"
    model = get_model(lang)
    # Score within runs of adjacent CJK characters (context across other text is noise).
    total = 0.0
    for run in _CJK_RUN.findall(text, 0, 20 * limit)[:limit]:
        total -= model.score(run[:limit])
    return total / len(chars)


_SHIFT_CODES = re.compile(r"\x1b\$[()]?[@ABCD]|[\x0e\x0f]")
_CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff]+")


# --- choosing ------------------------------------------------------------------------------

# How much lower (anomalies per 100 non-ASCII characters) a reading must score to unseat the
# detector's favourite, and how many more nats per CJK character the favourite must cost.
_MARGIN = 1.0
# A declared reading this implausible is checked against the bytes alone.
_DOUBT = 25.0
_CJK_MARGIN = 1.0
# A declared reading this implausible is checked against the bytes alone.
_DOUBT = 25.0


@dataclass
class Choice:
    """The chosen reading and every candidate considered, best first."""

    text: str
    name: str
    source: str
    confidence: float
    candidates: list[Candidate]
    reason: str = ""
    # Other readings at least RIVAL_SHARE probable, as (codec, probability), likeliest first.
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    # The language the chosen reading reads as ('' when not scored by the language models).
    lang: str = ""


def _prior(candidate: Candidate, rank: int) -> float:
    """Smaller is more trusted, among readings that score alike."""
    base = {Source.DECLARED: -3.0, Source.MARKUP: -2.0}.get(candidate.source, 0.0)
    return base + rank - 4.0 * candidate.confidence + _POPULARITY.get(candidate.name, 40) / 10


def gather(
    sample: bytes,
    answers: list[tuple[str, float]],
    *,
    declared: str | None = None,
    markup: str | None = None,
    legacy: bool = True,
) -> tuple[list[Candidate], dict[str, Reading], dict[str, str]]:
    """Decode the sample with every candidate; group identical texts into readings.

    legacy adds every language family's legacy code pages (`LEGACY_CODECS`) to the
    candidates.

    Returns the candidates (in the order considered), the readings keyed by the name of the
    candidate standing for each, and each decoding candidate's reading key.
    """
    wanted: list[tuple[str, str, float]] = []
    if declared:
        wanted.append((declared, Source.DECLARED, 1.0))
    if markup:
        wanted.append((markup, Source.MARKUP, 1.0))
    wanted += [(name, Source.DETECTOR, conf) for name, conf in answers]
    wanted.append(("utf-8", Source.UTF8, 0.0))
    for name, _ in answers[:2]:
        wanted += [(sib, Source.SIBLING, 0.0) for sib in _FAMILY.get(name, ())]
    if legacy and not sample.isascii():
        wanted += [(name, Source.LEGACY, 0.0) for name in LEGACY_CODECS]
    if legacy and b"\x1b" in sample:
        wanted.append(("iso2022_jp", Source.LEGACY, 0.0))
    candidates: list[Candidate] = []
    readings: dict[str, Reading] = {}
    by_text: dict[str, str] = {}
    key_of: dict[str, str] = {}
    seen: set[str] = set()
    for label, source, conf in wanted:
        decoded = widen(sample, label)
        name = decoded[1] if decoded else label
        if name in seen:
            continue
        seen.add(name)
        if decoded is None:
            candidates.append(Candidate(name, label, source, conf, False))
            continue
        text = decoded[0]
        key = by_text.get(text)
        candidate = Candidate(name, label, source, conf, True, 0.0, same_as=key)
        if key is None:
            key = by_text[text] = name
            readings[key] = Reading(text)
        readings[key].names.append(candidate)
        key_of[name] = key
        candidates.append(candidate)
    return candidates, readings, key_of


# ISO-2022-JP's designations of JIS X 0208 (ESC $ @, ESC $ B) and its returns to ASCII or JIS
# Roman (ESC ( B, ESC ( J). A 7-bit sample that designates JIS X 0208 is ISO-2022-JP: no other
# text writes those escapes, and its bytes hold nothing above 0x7F for the language models to
# read, so it is decided here.
_JIS_IN = re.compile(rb"\x1b\$[@B]")
_JIS_OUT = re.compile(rb"\x1b\([BJ]")


def _iso2022_jp(sample: bytes) -> str | None:
    """The sample read as ISO-2022-JP when it is 7-bit, designates JIS X 0208 and decodes
    (up to its last return to ASCII, when the sample ends inside a JIS run); else None.

    >>> _iso2022_jp("文字セット".encode("iso2022_jp"))
    '文字セット'
    """
    if not sample.isascii() or _JIS_IN.search(sample) is None:
        return None
    text = strict(sample, "iso2022_jp")
    if text is None:
        ends = [m.end() for m in _JIS_OUT.finditer(sample)]
        text = strict(sample[: ends[-1]], "iso2022_jp") if ends else None
    return text


# Confidence in an ISO-2022-JP reading found by `_iso2022_jp`: its escapes name the
# character set; 0.99 (not 1) leaves room for a text quoting such escapes.
ISO2022_CONFIDENCE = 0.99


def choose(
    sample: bytes,
    *,
    declared: str | None = None,
    markup: str | None = None,
    answers: list[tuple[str, float]] | None = None,
) -> Choice | None:
    """Pick the reading of sample that reads best; None when no candidate decodes it.

    The detector's favourite (or the document's own declaration, when it decodes) stands
    unless another reading scores clearly better; readings that tie go to the more trusted
    and more common codec. `declared` is only a candidate here; arbitration is the caller's.
    """
    jis = _iso2022_jp(sample) if not declared and not markup else None
    if jis is not None:
        found = Candidate("iso2022_jp", "iso2022_jp", Source.LEGACY, ISO2022_CONFIDENCE, True,
                          0.0, chosen=True)  # fmt: skip
        return Choice(jis, found.name, found.source, ISO2022_CONFIDENCE, [found], lang="ja")
    if answers is None:
        answers = detector_answers(sample)
    candidates, readings, key_of = gather(sample, answers, declared=declared, markup=markup)
    if not readings:
        return None
    scored = score_readings(readings, sample)
    # Name each reading by its most trusted candidate.
    order = {c.name: i for i, c in enumerate(candidates)}
    for reading in readings.values():
        reading.names.sort(key=lambda c: _name_rank(c, order[c.name]))
    standing = _favourite(candidates, key_of)
    if markup and standing is not None and readings[standing].names[0].source == Source.MARKUP:
        if len(scored) > 1 and readings[standing].implausibility > _DOUBT:
            # The declaration reads badly: ask again with the bytes alone, markup demoted.
            blind = detector_answers(sample, blind=True)
            return choose(sample, declared=declared, answers=blind + answers, markup=None)
    chunks = scored_bytes(sample) if len(scored) > 1 else []
    if chunks:
        best_key = _by_language(readings, sample, chunks, answers, order)
    else:
        best_key = standing
        if standing is None or len(scored) > 1:
            best_key = _best(readings, standing, order)
    best = readings[best_key]
    winner = best.names[0]
    reason = ""
    if chunks:
        runner = min(
            (r for r in readings.values() if r is not best and r.cost is not None),
            key=lambda r: r.cost or 0.0,
            default=None,
        )
        if runner is not None and standing is not None and best_key != standing:
            theirs = readings[standing].cost
            behind = f"{theirs:.0f}" if theirs is not None else "far more"
            reason = (
                f"{winner.name} reads better than {readings[standing].names[0].name} "
                f"({best.cost:.0f} vs {behind} nats over the same "
                f"{sum(map(len, chunks))} bytes, as {best.lang or 'text'})"
            )
    elif standing is not None and best_key != standing:
        reason = (
            f"{winner.name} reads better than {readings[standing].names[0].name} "
            f"({best.implausibility:.1f} vs {readings[standing].implausibility:.1f} "
            "anomalies per 100 non-ASCII characters"
            + (
                f", {best.cjk:.1f} vs {readings[standing].cjk:.1f} nats per CJK character)"
                if best.cjk or readings[standing].cjk
                else ")"
            )
        )
    final = []
    for c in candidates:
        if c.decodes:
            reading = readings[key_of[c.name]]
            c = Candidate(
                c.name,
                c.label,
                c.source,
                c.confidence,
                True,
                round(reading.implausibility + reading.cjk, 2),
                None if c is reading.names[0] else reading.names[0].name,
                c is winner,
            )
        final.append(c)
    final.sort(key=lambda c: (not c.chosen, not c.decodes, c.implausibility, order[c.name]))
    if chunks:
        confidence = round(best.posterior, 3)
        rivals = sorted(
            ((r.names[0].name, round(r.posterior, 3)) for r in readings.values() if r is not best),
            key=lambda x: -x[1],
        )
        alternatives = [(name, p) for name, p in rivals if p >= RIVAL_SHARE]
        if character_list(chunks):
            confidence = min(confidence, LIST_CONFIDENCE)
            alternatives = alternatives or rivals[:LIST_RIVALS]
            reason = reason or "the text lists characters one by one: no words to read"
    else:
        confidence = _confidence(winner, best, readings)
        alternatives = []
    return Choice(
        best.text, winner.name, winner.source, confidence, final, reason, alternatives, best.lang
    )


# --- language scoring ----------------------------------------------------------------------

# Bytes of the sample the language models read: stretches between ASCII spaces and
# punctuation that hold non-ASCII bytes, from the start, until LM_BYTES; then, up to
# LM_BYTES_MAX, stretches holding a byte value not yet read (so two single-byte codecs that
# differ only on a byte the document uses once still read differently). A stretch longer than
# LM_PIECE is cut. 2 KB is about 300 words of Latin-script text or 1,000 CJK characters:
# measured on the benchmark's tune split, more bytes changed no whole-file answer.
LM_BYTES = 2048
LM_BYTES_MAX = 6144
LM_PIECE = 512
# The first look: readings more than LM_PRUNE_NATS behind the best on the first LM_GLANCE bytes
# are dropped (their share of the posterior would be below exp(−40 / TEMPERATURE), 2e-9).
LM_GLANCE = 256
LM_PRUNE_NATS = 40.0
# Bytes no multi-byte codec uses inside a character (below 0x40, digits aside: GB18030's
# four-byte sequences hold digits), so a stretch between them starts on a character boundary
# in every candidate codec.
# A stretch takes the ASCII word before and after it along (when a single space parts them),
# so that a reading putting one word of another script in a sentence (`utente и fatta`) is
# seen doing so.
_STRETCH = re.compile(
    rb"(?:[A-Za-z]{1,24} )?[\x30-\x39\x40-\xff]*[\x80-\xff][\x30-\x39\x40-\xff]*"
    rb"(?: [A-Za-z]{1,24}(?![\x30-\x39\x40-\xff]))?"
)
_INSIDE = frozenset(range(0x30, 0x3A)) | frozenset(range(0x40, 0x100))


def scored_bytes(sample: bytes) -> list[bytes]:
    """The stretches of sample the language models read (see `LM_BYTES`).

    >>> scored_bytes("plain ascii, café crème 42 naïve".encode("latin-1"))
    [b'caf\\xe9', b'cr\\xe8me', b'na\\xefve']
    >>> scored_bytes("il file è danneggiato".encode("latin-1"))
    [b'file \\xe8 danneggiato']
    """
    out: list[bytes] = []
    size = 0
    seen: set[int] = set()
    end = 0
    for match in _STRETCH.finditer(sample):
        piece = match.group()[:LM_PIECE]
        out.append(piece)
        seen.update(piece)
        size += len(piece)
        end = match.end()
        if size >= LM_BYTES:
            break
    else:
        return out
    missing = [b for b in range(0x80, 0x100) if b not in seen]
    found = sorted(p for b in missing if (p := sample.find(bytes((b,)), end)) >= 0)
    for at in found:
        if at < end or size >= LM_BYTES_MAX or sample[at] in seen:
            continue
        start = at
        while start > max(0, at - LM_PIECE) and sample[start - 1] in _INSIDE:
            start -= 1
        match = _STRETCH.match(sample, start)
        if match is None:
            continue
        piece = match.group()[:LM_PIECE]
        out.append(piece)
        seen.update(piece)
        size += len(piece)
        end = match.end()
    return out


def stretch_text(chunks: list[bytes], codec: str) -> str:
    """The scored stretches decoded with codec, space-joined (a stretch cut at LM_PIECE may
    end inside a character: that character is left out)."""
    whole = [c for c in chunks if len(c) < LM_PIECE]
    cut = [c for c in chunks if len(c) >= LM_PIECE]
    text = b" ".join(whole).decode(codec, "replace") if whole else ""
    for c in cut:
        text += " " + c.decode(codec, "ignore")
    return text


# A priori cost of a reading, in nats, added to its language cost: the popularity rank of its
# codec on the web (`_POPULARITY`) times POPULARITY_NATS, less DETECTOR_NATS times the
# detector's confidence for its answers and MARKUP_NATS for the document's own declaration.
# They decide only between readings the language models price alike; set on the tune split.
POPULARITY_NATS = 0.15
DETECTOR_NATS = 2.0
MARKUP_NATS = 6.0
# The posterior is a softmax of −(cost + prior) / TEMPERATURE. Letter-pair models treat the
# letters of a text as more independent than they are, which makes raw posteriors
# overconfident; TEMPERATURE flattens them. Fitted on the tune split so that readings given
# 0.9 or more are right at least 99.5% of the time.
TEMPERATURE = 2.0
# Readings at least this probable are reported as the alternatives to the chosen one.
RIVAL_SHARE = 0.01
# A text that lists characters one by one (a code page's table: `B0 <tab> ° <tab> DEGREE
# SIGN`) gives the language models no words to read: each character stands alone, and every
# code page's reading is a list of plausible characters. Recognised by its stretches: at least
# LIST_MIN of them, half or more (LIST_SHARE) a lone character, those nearly all different
# (LIST_DISTINCT of them; prose repeats its lone `è` or `и`). Its decoding is reported with
# confidence at most LIST_CONFIDENCE (in doubt) and its rivals named, whatever the models say.
LIST_MIN = 3
LIST_SHARE = 0.5
LIST_DISTINCT = 0.8
LIST_CONFIDENCE = 0.5
# Rivals named for a character list, likeliest first.
LIST_RIVALS = 3


def character_list(chunks: list[bytes]) -> bool:
    """Whether the scored stretches are those of a list of characters (see `LIST_SHARE`).

    >>> character_list([b"\\xb0", b"\\xb1 DEGREE", b"\\xb2", b"\\xe9t\\xe9"])
    True
    >>> character_list([b"\\xe8", b"\\xe8", b"\\xe8", b"citt\\xe0"])
    False
    """
    lone = [m.group(1) for c in chunks if (m := _LONE.fullmatch(c))]
    if len(lone) < LIST_MIN or len(lone) < LIST_SHARE * len(chunks):
        return False
    return len(set(lone)) >= LIST_DISTINCT * len(lone)


# A stretch that is one character (one or two bytes, in any code page) standing alone, with
# the ASCII words `_STRETCH` takes along.
_LONE = re.compile(rb"(?:[A-Za-z]{1,24} )?([\x80-\xff]{1,2})(?: [A-Za-z]{1,24})?")


def _by_language(
    readings: dict[str, Reading],
    sample: bytes,
    chunks: list[bytes],
    answers: list[tuple[str, float]],
    order: dict[str, int],
) -> str:
    """Price every reading's decoding of the same stretches with the language models, set
    each reading's posterior, and return the key of the likeliest."""
    from textmend_server import langmodel

    detector = dict(answers)
    totals: dict[str, float] = {}
    # First a look at the first stretches only: readings far behind there are not read on.
    head: list[bytes] = []
    for chunk in chunks:
        if sum(map(len, head)) >= LM_GLANCE:
            break
        head.append(chunk)
    keys = list(readings)
    hint = langmodel.rank_latin(sample)
    if len(head) < len(chunks) and len(keys) > 2:
        glance = {key: langmodel.cost(stretch_text(head, key), hint).cost for key in keys}
        ahead = min(glance.values())
        keys = [key for key in keys if glance[key] <= ahead + LM_PRUNE_NATS]
    for key in keys:
        reading = readings[key]
        scored = langmodel.cost(stretch_text(chunks, key), hint)
        reading.cost, reading.lang = scored.cost, scored.lang
        first = reading.names[0]
        prior = POPULARITY_NATS * _POPULARITY.get(first.name, 40)
        prior -= DETECTOR_NATS * max(
            (detector.get(c.name, 0.0) for c in reading.names), default=0.0
        )
        if any(c.source in (Source.MARKUP, Source.DECLARED) for c in reading.names):
            prior -= MARKUP_NATS
        totals[key] = scored.cost + prior
    floor = min(totals.values())
    weights = {k: math.exp(-(t - floor) / TEMPERATURE) for k, t in totals.items()}
    norm = sum(weights.values())
    for key, reading in readings.items():
        reading.posterior = weights.get(key, 0.0) / norm
    return min(totals, key=lambda k: (totals[k], order[readings[k].names[0].name]))


def _name_rank(c: Candidate, position: int) -> tuple:
    family = _FAMILY.get(c.name)
    in_family = family.index(c.name) if family else 0
    trusted = {Source.DECLARED: 0, Source.MARKUP: 1}.get(c.source, 2)
    if c.name == "ascii":
        return (trusted, -1, 0, position)
    return (trusted, in_family, _POPULARITY.get(c.name, 40), position)


def _favourite(candidates: list[Candidate], key_of: dict[str, str]) -> str | None:
    """The reading to keep unless another is clearly better: the document's declaration if
    it decodes; else the detector's top answer, or the first of its siblings that decodes
    (windows-1250 with a byte it leaves undefined is ISO-8859-2 before it is anything else);
    else the first detector answer that decodes."""
    markup = next((c for c in candidates if c.source == Source.MARKUP), None)
    if markup is not None and markup.decodes:
        return key_of[markup.name]
    answers = [c for c in candidates if c.source == Source.DETECTOR]
    if not answers:
        return None
    for name in (answers[0].name, *_FAMILY.get(answers[0].name, ())):
        if name in key_of:
            return key_of[name]
    return next((key_of[c.name] for c in answers if c.decodes), None)


def score_readings(readings: dict[str, Reading], sample: bytes = b"") -> list[Reading]:
    """Score every distinct reading (in place); returns them.

    Single-byte codecs map bytes to characters one to one, so their non-ASCII words sit at the
    same byte spans in every such reading: those spans are found once (through latin-1) and
    only their bytes are decoded per codec.
    """
    distinct = list(readings.values())
    if len(distinct) < 2:
        return distinct
    byte_words: bytes | None = None
    for key, reading in readings.items():
        if key not in MULTIBYTE and key not in UNICODE and sample:
            if byte_words is None:
                byte_words = foreign_words(sample.decode("latin-1")).encode("latin-1")
            words = byte_words.decode(key, "replace")
            wide = len(words) - len(words.encode("ascii", "ignore"))
            score = 100.0 * anomalies(words) / max(wide, 10) if wide else 0.0
        else:
            score = implausibility(reading.text)
        # ISO-2022 shift codes left in the text: a 7-bit CJK codec read as ASCII.
        score += 5.0 * len(_SHIFT_CODES.findall(reading.text, 0, 20000))
        reading.implausibility = round(score, 2)
    cjk = [r for r in distinct if _CJK.search(r.text, 0, 20000)]
    if len(cjk) > 1:
        for reading in cjk:
            reading.cjk = round(cjk_surprise(reading.text), 2)
        floor = min(r.cjk for r in cjk)
        # Only the excess over the best CJK reading counts, in implausibility units.
        for reading in cjk:
            reading.cjk = round(max(0.0, reading.cjk - floor - _CJK_MARGIN) * 2.0, 2)
    return distinct


def _best(readings: dict[str, Reading], standing: str | None, order: dict[str, int]) -> str:
    def total(key: str) -> float:
        r = readings[key]
        return r.implausibility + r.cjk

    def prior(key: str) -> float:
        c = readings[key].names[0]
        return _prior(c, order[c.name])

    ranked = sorted(readings, key=lambda k: (round(total(k), 1), prior(k)))
    top = ranked[0]
    if standing is None or top == standing:
        return top
    if total(standing) - total(top) > _MARGIN:
        return top
    return standing


def _confidence(winner: Candidate, best: Reading, readings: dict[str, Reading]) -> float:
    """Confidence in [0, 1]: the source's own, raised by how clearly the reading beat the rest."""
    if len(readings) == 1:
        return round(max(winner.confidence, 0.99 if winner.source != Source.SIBLING else 0.9), 3)
    others = [r.implausibility + r.cjk for r in readings.values() if r is not best]
    gap = min(others) - (best.implausibility + best.cjk) if others else 0.0
    margin = 1.0 - math.exp(-max(gap, 0.0) / 2.0)
    return round(max(winner.confidence, margin, 0.01), 3)
