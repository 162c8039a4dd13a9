"""Turn bytes into text: this module owns bytes → chosen codec → text.

In order: a BOM decides; binary content is refused; UTF-16/32 without a BOM is recognised by
where its NUL bytes fall; the document's own declaration (`<?xml encoding>`, or `<meta
charset>` in HTML) is read; valid UTF-8 and ASCII are decoded without a detector. Only then is
detection asked, once, to rank the candidate codecs of a sample (`detection.rank_codecs`, a
pure function of the bytes); this module then decides: a declared charset is kept unless its
reading is clearly worse than the best-ranked one, and then it is overruled with the reason; a
UTF-8 document holding a paragraph in a legacy codec (a CMS splice) is decoded region by
region (the legacy lines' codec ranked by detection on those lines alone); the chosen codec is
applied to the whole content, and a detected reading below `IN_DOUBT` is marked in doubt.

Undecodable bytes are never dropped: each undecodable run becomes one U+FFFD and is reported
with its byte offsets. Binary files and empty input are refused with a message saying why.
"""

from __future__ import annotations

import codecs
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field, replace
from enum import StrEnum

from textmend_server.charsets import (
    DECLARATION_BYTES,
    MULTIBYTE,
    UNICODE,
    codec_of,
    decoded,
    strict,
    widen,
)
from textmend_server.detection import Answer, Candidate, Choice, Source, rank_codecs
from textmend_server.errors import BinaryContentError, EmptyContentError, UnknownEncodingError
from textmend_server.plausibility import implausibility, non_ascii


class EncodingSource(StrEnum):
    """Where the chosen encoding came from."""

    BOM = "bom"
    DECLARED = "declared"
    DETECTED = "detected"
    FALLBACK = "fallback"
    # The document's own declaration: `<?xml encoding>`, or `<meta charset>` in HTML.
    MARKUP = "markup"


@dataclass(frozen=True)
class Region:
    """A stretch of the content decoded with one codec (mixed documents only).

    Byte offsets are into the content, character offsets into the decoded text; ends are
    exclusive.
    """

    byte_start: int
    byte_end: int
    char_start: int
    char_end: int
    encoding: str


@dataclass(frozen=True)
class DecodedText:
    """The decoded text and how it was obtained.

    `undecodable` lists, for each U+FFFD the decoder inserted, its code point offset in
    `text` and its byte span in the content.
    """

    text: str
    encoding: str
    confidence: float
    source: EncodingSource
    runners_up: list[tuple[str, float]] = field(default_factory=list)
    declared: str | None = None
    content_bytes: int = 0
    undecodable: list[tuple[int, int, int]] = field(default_factory=list)
    # Why the declared charset was not used, when it was given and overruled.
    overruled: str | None = None
    # Every encoding considered, the chosen one first, each with how its decoding read.
    candidates: list[Candidate] = field(default_factory=list)
    # For a document decoded in parts (UTF-8 with legacy-encoded paragraphs), each part in
    # order; empty when one codec decoded everything.
    regions: list[Region] = field(default_factory=list)
    # Other readings of the bytes the language models found plausible, as (codec, probability),
    # likeliest first (`langscoring.RIVAL_SHARE` or more); empty when detection was not needed.
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    # The decoding is only one of several plausible readings: detected (not declared, not a
    # BOM) with confidence below IN_DOUBT. Its text may be mojibake of the right one, so it is
    # no ground for repairs that rewrite characters.
    in_doubt: bool = False
    # The language the detected text reads as (wordfreq's code: 'pt', 'ru', 'zh', …), when the
    # language models chose the decoding; '' otherwise.
    language: str = ""
    # The byte order mark removed from the start of the content ('utf-8', 'utf-16-le', …), or
    # None: decoding drops it, so a caller that must report every change can say so.
    bom_removed: str | None = None
    # Seconds spent choosing the codec (detection and arbitration), within decoding's time; 0
    # when the BOM, plain UTF-8 or ASCII decided.
    detect_seconds: float = 0.0


# Confidence below which a detected decoding is in doubt: the benchmark's calibration
# (bench/legacy_decoding.py) has readings at 0.9 or more right 99.5% of the time or more.
IN_DOUBT = 0.9

# The bytes detection ranks candidates on (`sample_of`); the chosen codec decodes the whole
# content. 64 KB is far more than the scoring reads (`plausibility.SCORED_CHARS`,
# `langscoring.LM_BYTES_MAX`) and keeps chardet's time bounded; set with candidate scoring
# (commit 6ed88e7).
SAMPLE_BYTES = 65536
# How far back from SAMPLE_BYTES `sample_of` looks for a byte that ends a character in every
# codec (one is always near in text; set with candidate scoring, commit 6ed88e7).
SAMPLE_BOUNDARY_SEARCH = 4096
# How many of the detector's answers are reported as runners-up (set with the first decoder,
# commit e074ef1).
RUNNERS_UP = 4
# Confidence reported for valid UTF-8 with multi-byte sequences, decided without a detector:
# legacy text is valid UTF-8 by accident only for a few bytes (set with the fast path, commit
# fd3651a).
UTF8_CONFIDENCE = 0.99
# Confidence reported for UTF-16/32 recognised without a BOM by where its NUL bytes fall (set
# with the first decoder, commit e074ef1).
BOMLESS_CONFIDENCE = 0.9

# How much of the content `sniff_binary` and the BOM-less UTF-16/32 check read: 8 KB, enough
# to see the pattern of a format's bytes (set with the first decoder, commit e074ef1).
SNIFF_BYTES = 8192
# Content is data, not text, when more than one byte in CONTROL_SHARE of its head is a
# control byte (`_CONTROL_BYTES`), and more than CONTROL_MIN of them: a few stray controls do
# occur in text (set with the first decoder, commit e074ef1).
CONTROL_SHARE = 10
CONTROL_MIN = 8
# UTF-16/32 without a BOM, told by the share of NUL bytes in each byte position of 4 (ASCII-range
# text in UTF-32 has NULs in three positions, the fourth holding the character; in UTF-16, in
# one of each two). A position is full of NULs above NUL_FULL and empty below NUL_EMPTY for
# UTF-32; for UTF-16 the looser UTF16_FULL / UTF16_EMPTY allow for text outside ASCII (set
# with the first decoder, commit e074ef1).
NUL_FULL = 0.9
NUL_EMPTY = 0.5
UTF16_FULL = 0.6
UTF16_EMPTY = 0.2
# UTF-16 of text mostly outside ASCII (Japanese with a few ASCII spaces and line breaks: 53% of
# the high bytes of uchardet's BOM-less `ja/utf-16le.txt` are NUL) has too few NULs for
# UTF16_FULL, but all of them in one byte position of two. Such a head is UTF-16 when its other
# position holds nearly none (below UTF16_STRAY), its NUL position at least UTF16_SOME of them
# (a line break a line), and its decoding is text: fewer than UTF16_BAD_SHARE of its characters
# are controls other than layout, unassigned, private use or undecodable (16-bit binary
# numbers decode to those; a fifth of all 16-bit values are surrogates or private use).
UTF16_STRAY = 0.01
UTF16_SOME = 0.02
UTF16_BAD_SHARE = 0.01
# The other position may hold more NULs than UTF16_STRAY when the text's characters end in a
# zero byte (Chinese `一` is U+4E00, Korean `가` U+AC00: 1.2% and 3.4% of the low bytes of
# news articles in UTF-16, refused as binary), as long as the NUL position holds this many
# times as many (16% and 31% there). The decoding must still read as text.
UTF16_LANE_RATIO = 4

# Arbitration (`_arbitrate`): a declared charset is only argued with when its reading holds
# ARGUE_MIN non-ASCII characters, and overruled when its implausibility is above
# OVERRULE_FACTOR times the best reading's plus OVERRULE_SLACK: the caller usually knows, so
# only a clearly worse reading overrules it. Set with candidate scoring (commit 6ed88e7).
ARGUE_MIN = 8
OVERRULE_FACTOR = 2
OVERRULE_SLACK = 2.0

# UTF-8 with damaged bytes or legacy lines (`_utf8_regions`, `_legacy_codec`), set with
# per-region decoding (commit 6ed88e7). The content is UTF-8 at heart when it holds at least
# MIN_UTF8 valid non-ASCII characters, at least DAMAGE_RATIO times its damaged ones, and at
# most MAX_FAULTS undecodable bytes (beyond, a legacy document); from DAMAGE_MIN damaged
# characters on, damage above one in DAMAGE_RATIO ends the search early. Without a legacy
# codec for the invalid lines the bar is MIN_UTF8_DAMAGED valid characters.
MIN_UTF8 = 3
MIN_UTF8_DAMAGED = 4
DAMAGE_RATIO = 3
DAMAGE_MIN = 16
# DAMAGE_RATIO for content that says it is UTF-8, the caller or its own declaration (Emacs's
# `coding: utf-8-emacs` tables write characters beyond Unicode, a damaged character for Python
# every few good ones: read as cp1256 or cp866 instead, every good one became mojibake).
DECLARED_DAMAGE_RATIO = 1
MAX_FAULTS = 64 * 1024
# UTF-8 lines kept to check a legacy codec against (more says nothing new).
UTF8_LINES_KEPT = 200
# A legacy codec for the invalid lines needs at least LEGACY_MIN_BYTES bytes above 0x7F to go
# on, must read them with implausibility at most LEGACY_MAX_IMPLAUSIBILITY, and reading the
# UTF-8 lines with it must be worse by more than MISREAD_SLACK (else the document is one
# legacy text, not UTF-8 with a splice).
LEGACY_MIN_BYTES = 2
LEGACY_MAX_IMPLAUSIBILITY = 3.0
MISREAD_SLACK = 1.0


# Runs of bytes that are valid UTF-8 (ASCII included), and what UTF-8 itself gone wrong looks
# like: a sequence cut short after its lead byte and one or more continuation bytes, an
# overlong form, or a surrogate's three bytes (CESU-8, as Java and JavaScript write characters
# beyond the BMP), one or more run together. A legacy code page's text is almost never only
# that: its letters stand alone among ASCII (Latin-1's `é` is one byte) or pair a lead with
# a byte no continuation (GBK's `中` is D6 D0).
_VALID_UTF8 = re.compile(
    rb"(?:[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]"
    rb"|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})+"
)
_UTF8_GONE_WRONG = re.compile(
    rb"(?:[\xe0-\xef][\x80-\xbf]|[\xf0-\xf4][\x80-\xbf]{1,2}|\xed[\xa0-\xbf][\x80-\xbf]"
    rb"|[\xc0\xc1][\x80-\xbf]|\xe0[\x80-\x9f][\x80-\xbf]|\xf0[\x80-\x8f][\x80-\xbf]{2})+"
)
# The confidence of such a reading: UTF-8 is then likelier than any code page, but by how
# much the bytes cannot say, so it is in doubt (below 0.9: suspect, nothing rewritten).
UTF8_GONE_WRONG_CONFIDENCE = 0.5


def utf8_gone_wrong(content: bytes) -> bool:
    """Whether content is invalid UTF-8 only where UTF-8 itself went wrong (`_UTF8_GONE_WRONG`):
    truncated sequences, overlong forms, surrogates.

    >>> utf8_gone_wrong(b"fox \\xe2\\x80 jumps \\xed\\xa0\\x80 caf\\xc3\\xa9")
    True
    >>> utf8_gone_wrong(b"caf\\xe9"), utf8_gone_wrong("中文".encode("gbk")), utf8_gone_wrong(b"ok")
    (False, False, False)
    """
    at, gaps = 0, 0
    for match in _VALID_UTF8.finditer(content):
        if match.start() > at:
            gaps += 1
            if not _UTF8_GONE_WRONG.fullmatch(content, at, match.start()):
                return False
        at = match.end()
    if at < len(content):
        gaps += 1
        if not _UTF8_GONE_WRONG.fullmatch(content, at):
            return False
    return gaps > 0


# Byte order marks, longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Signatures of binary formats people send by mistake, with a name a person recognises.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"%PDF-", "PDF document"),
    (b"PK\x03\x04", "zip archive (also docx, xlsx, epub, jar)"),
    (b"PK\x05\x06", "empty zip archive"),
    (b"\x7fELF", "ELF executable"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"\x1f\x8b", "gzip archive"),
    (b"BZh", "bzip2 archive"),
    (b"\xfd7zXZ\x00", "xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-zip archive"),
    (b"\x28\xb5\x2f\xfd", "zstd archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"\x00asm", "WebAssembly module"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"\xca\xfe\xba\xbe", "Java class or Mach-O file"),
    (b"\xcf\xfa\xed\xfe", "Mach-O executable"),
    (b"OggS", "Ogg media"),
    (b"ID3", "MP3 audio"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE document (old .doc/.xls)"),
    (b"wOFF", "WOFF font"),
    (b"wOF2", "WOFF2 font"),
)

# Bytes that text never holds in any quantity: C0 controls other than tab, LF, FF, CR, ESC.
_CONTROL_BYTES = re.compile(rb"[\x01-\x08\x0e-\x1a\x1c-\x1f]")
# Every other byte: deleting these from a head leaves its control bytes, counted in C (a
# regex's findall over 8 KB cost about 10 µs, a fifth of decoding a clean 5 KB document).
_NOT_CONTROL_BYTES = bytes(b for b in range(256) if not _CONTROL_BYTES.match(bytes((b,))))
_ISO2022 = re.compile(rb"\x1b\$[)(]?[@ABCD]")
# nroff's terminal output strikes a character over itself for bold (`G\bG`) and over `_` for
# underline (`_\bx`): postfix's READMEs and man pages saved without `col -b` hold a backspace
# in every emphasised letter (10-13% of their first 8 KB), and were refused as binary. Such a
# backspace is typography (the stray-character stage reports it, `fixes.OVERSTRIKE_REASON`),
# not a control byte of data.
_OVERSTRIKE_BS = re.compile(rb"([\x21-\x7e])\x08\1|_\x08[^\x00-\x1f\x7f]")
_MARK = "\ud800"  # placed by the recording error handler; strict decoders never produce it
_local = threading.local()


def _record_error(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: note the undecodable byte span, leave a mark in its place."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    _local.spans.append((error.start, error.end))
    return _MARK, error.end


codecs.register_error("textmend-record", _record_error)


def codec_name(label: str) -> str:
    """The Python codec name for a charset label from a header, a meta tag or a person.

    >>> codec_name(" ISO-8859-1 "), codec_name("x-sjis"), codec_name("GBK")
    ('iso8859-1', 'shift_jis', 'gbk')
    """
    codec = codec_of(label)
    if codec is None:
        raise UnknownEncodingError(label)
    return codec


def sample_of(content: bytes) -> bytes:
    """The bytes detection ranks codecs on: the first SAMPLE_BYTES of content, ended just after
    a byte below 0x40, which no multi-byte codec uses as a trailing byte, so the sample never
    splits a character."""
    if len(content) <= SAMPLE_BYTES:
        return content
    head = content[:SAMPLE_BYTES]
    for end in range(len(head) - 1, max(len(head) - SAMPLE_BOUNDARY_SEARCH, 0), -1):
        if head[end] < 0x40:
            return head[: end + 1]
    return head


# What `sniff_binary` calls bytes with NUL bytes where no UTF-16 or UTF-32 text has them.
NUL_DATA = "data with NUL bytes"


def sniff_binary(content: bytes) -> str | None:
    """Name the binary format content is in, or None when it may be text.

    >>> sniff_binary(b"%PDF-1.7 ..."), sniff_binary("plain text".encode())
    ('PDF document', None)
    >>> bold = b"G\\bGu\\bui\\bid\\bde\\be: _\\bh_\\bi_\\bn_\\bt_\\bs\\n"  # nroff's emphasis
    >>> sniff_binary(bold), sniff_binary(b"a\\b\\x01" * 9)
    (None, 'data with many control bytes')
    """
    for magic, kind in _MAGIC:
        if content.startswith(magic):
            return kind
    head = content[:SNIFF_BYTES]
    if _ISO2022.search(head):
        # 7-bit ISO-2022 text switches character sets with ESC, SO and SI.
        head = head.replace(b"\x0e", b"").replace(b"\x0f", b"")
    if b"\x00" in head:
        codec = _utf16_or_32_without_bom(head)
        if codec is None:
            return NUL_DATA
        if _reads_as_text(head[: len(head) - len(head) % 4], codec):
            # UTF-16 or UTF-32 that decodes to text: its high bytes (0x04 for Cyrillic, 0x06
            # for Arabic) are not controls. Counted as such, Russian UTF-16 without a BOM was
            # refused as binary.
            return None
    controls = len(head.translate(None, _NOT_CONTROL_BYTES))
    if controls > max(CONTROL_MIN, len(head) // CONTROL_SHARE):
        controls -= sum(1 for _ in _OVERSTRIKE_BS.finditer(head))
    if controls > max(CONTROL_MIN, len(head) // CONTROL_SHARE):
        return "data with many control bytes"
    return None


def _utf16_or_32_without_bom(head: bytes) -> str | None:
    """Recognise UTF-16/32 without a BOM by where the NUL bytes of ASCII-range text fall."""
    n = len(head) - len(head) % 4
    if n < 4:
        return None
    lanes = [head[i:n:4].count(0) / (n // 4) for i in range(4)]
    if min(lanes[1:]) > NUL_FULL and lanes[0] < NUL_EMPTY:
        return "utf-32-le"
    if min(lanes[:3]) > NUL_FULL and lanes[3] < NUL_EMPTY:
        return "utf-32-be"
    even, odd = (lanes[0] + lanes[2]) / 2, (lanes[1] + lanes[3]) / 2
    if odd > UTF16_FULL and even < UTF16_EMPTY:
        return "utf-16-le"
    if even > UTF16_FULL and odd < UTF16_EMPTY:
        return "utf-16-be"
    if odd >= UTF16_SOME and even < max(UTF16_STRAY, odd / UTF16_LANE_RATIO):
        codec = "utf-16-le"
    elif even >= UTF16_SOME and odd < max(UTF16_STRAY, even / UTF16_LANE_RATIO):
        codec = "utf-16-be"
    else:
        return None
    return codec if _reads_as_text(head[:n], codec) else None


def _reads_as_text(head: bytes, codec: str) -> bool:
    """Whether head decodes with codec into text: few characters that text does not hold (see
    `UTF16_BAD_SHARE`). A surrogate pair the head's end cuts counts as one bad character.

    >>> _reads_as_text("日本語のテキスト\\n".encode("utf-16-le"), "utf-16-le")
    True
    >>> _reads_as_text(bytes(range(256)) * 4, "utf-16-le")
    False
    """
    text = head.decode(codec, "replace")
    bad = sum(
        1
        for ch in text
        if (unicodedata.category(ch) in _NOT_TEXT and ch not in "\t\n\r\f\v") or ch == "\ufffd"
    )
    return bad < UTF16_BAD_SHARE * max(len(text), 1)


# Unicode categories text does not hold: controls, unassigned, private use, surrogates.
_NOT_TEXT = frozenset({"Cc", "Cn", "Co", "Cs"})


def decode(content: bytes, declared: str | None = None, *, html: bool = False) -> DecodedText:
    """Decode content: BOM, then the declared charset if the bytes agree, then detection.

    html says the content is HTML, so a `<meta charset>` in its first 4 KB is a candidate (an
    XML declaration at the start always is). Raises EmptyContentError, BinaryContentError or
    UnknownEncodingError with a message a caller can act on. Never drops bytes: undecodable
    ones become U+FFFD and are listed.

    >>> d = decode("Grüße".encode("utf-8"), declared="iso-8859-1")
    >>> d.text, d.encoding, d.source.value
    ('Grüße', 'utf-8', 'detected')
    """
    if not content:
        raise EmptyContentError()
    declared_codec = codec_name(declared) if declared else None
    total = len(content)
    for bom, codec in _BOMS:
        if content.startswith(bom):
            decoded = _decode_lossless(
                content[len(bom) :], codec, EncodingSource.BOM, 1.0, declared, total, len(bom)
            )
            bom_candidate = Candidate(codec, codec, "bom", 1.0, not decoded.undecodable, 0.0)
            return replace(
                decoded, candidates=[replace(bom_candidate, chosen=True)], bom_removed=codec
            )
    kind = sniff_binary(content)
    if kind == NUL_DATA and declared_codec in WIDE_UNICODE and strict(content, declared_codec):
        # UTF-16 text of Han characters alone has too few NUL bytes to be recognised by them
        # (一 is 00 4E), and decodes as the caller says: it is text.
        kind = None
    if kind is not None:
        raise BinaryContentError(kind)
    head = content[:SNIFF_BYTES]
    bomless = _utf16_or_32_without_bom(head) if b"\x00" in head else None
    if bomless is not None:
        return _decode_lossless(
            content, bomless, EncodingSource.DETECTED, BOMLESS_CONFIDENCE, declared, total
        )

    markup = _markup_codec(content, html)
    if declared_codec in (None, "utf-8", "ascii"):
        plain = _plain_utf8(content, declared, declared_codec, total, markup)
        if plain is not None:
            return plain

    detecting = time.perf_counter()
    decoded = _from_ranking(content, declared, declared_codec, total, markup)
    return replace(decoded, detect_seconds=time.perf_counter() - detecting)


def _from_ranking(
    content: bytes, declared: str | None, declared_codec: str | None, total: int, markup: str | None
) -> DecodedText:
    """The decoding of content that is not plain UTF-8 or ASCII: detection ranks the codecs of
    a sample, once; a declared charset is then kept or overruled (`_arbitrate`), UTF-8 with
    damage or legacy lines is decoded by region (`_utf8_regions`), and otherwise the
    best-ranked codec that decodes the whole content is applied."""
    sample = sample_of(content)
    ranking = rank_codecs(sample, declared=declared_codec, markup=markup)
    choice = ranking.best
    found = choice.candidates if choice else []
    runners_up = _runners_up(ranking.detector, choice.name if choice else None)
    overruled = None
    if declared_codec is not None:
        kept = _arbitrate(content, declared_codec, choice)
        if isinstance(kept, tuple):
            text, codec = kept
            chosen = [replace(c, chosen=c.name == codec) for c in found]
            chosen.sort(key=lambda c: not c.chosen)
            return DecodedText(
                text, codec, 1.0, EncodingSource.DECLARED, _runners_up(ranking.detector, codec),
                declared, total, candidates=chosen,
            )  # fmt: skip
        overruled = kept
    extra = {"overruled": overruled, "candidates": found}
    if strict(content, "utf-8") is None:
        mixed = _utf8_regions(content, declared, "utf-8" in (declared_codec, markup))
        if mixed is not None:
            return replace(mixed, runners_up=runners_up, **extra)
        if declared_codec in (None, "utf-8") and utf8_gone_wrong(content):
            # Too few good characters to call it UTF-8 at heart, but every bad byte is UTF-8
            # itself gone wrong: read as a legacy code page, each would become letters or Han
            # (`caf\xc3\xa9` with three cut-off `\xe2\x80` was GB18030's `caf茅`, clean).
            damaged = _decode_lossless(
                content, "utf-8", EncodingSource.DETECTED, 0.0, declared, total
            )
            return replace(
                damaged, confidence=UTF8_GONE_WRONG_CONFIDENCE, runners_up=runners_up, **extra
            )
    if choice is not None:
        applied = _apply_best(content, len(content) == len(sample), choice)
        if applied is not None:
            text, codec, source = applied
            return DecodedText(
                text, codec, choice.confidence, source, runners_up, declared, total, **extra,
                alternatives=choice.alternatives, in_doubt=_in_doubt(source, choice, codec),
                language=choice.lang,
            )  # fmt: skip
    # Nothing decodes cleanly: the candidate losing the fewest bytes, marks and all.
    lossy = [declared_codec] if declared_codec else []
    lossy += [c.name for c in found] + ["utf-8"]
    results = [
        _decode_lossless(content, codec, EncodingSource.FALLBACK, 0.0, declared, total)
        for codec in dict.fromkeys(lossy)
    ]
    chosen = min(results, key=lambda d: sum(e - s for _, s, e in d.undecodable))
    return replace(chosen, runners_up=runners_up, **extra)


def _runners_up(detector: list[Answer], chosen: str | None) -> list[tuple[str, float]]:
    """The detector's answers other than the chosen codec, as (codec, confidence), best
    first, at most RUNNERS_UP."""
    return [(n, c) for n, c, _ in detector if n != chosen][:RUNNERS_UP]


def _apply_best(
    content: bytes, whole: bool, choice: Choice
) -> tuple[str, str, EncodingSource] | None:
    """The whole content decoded strictly with the best-ranked codec, or when that fails past
    the sample with the next candidate that decoded the sample, as (text, codec, source);
    None when none decodes it. whole says the sample ranked was all of content: the
    best-ranked reading is then the text."""
    if whole:
        if choice.text is None:
            return None
        return choice.text, choice.name, _source_of(choice, choice.name)
    ordered = [choice.name] + [c.name for c in choice.candidates if c.decodes]
    for codec in dict.fromkeys(ordered):
        text = strict(content, codec)
        if text is not None:
            return text, codec, _source_of(choice, codec)
    return None


def _source_of(choice: Choice, codec: str) -> EncodingSource:
    """Where the codec applied came from: the markup's declaration when it is the one the
    ranking chose from markup, else detection."""
    if codec == choice.name and choice.source == Source.MARKUP:
        return EncodingSource.MARKUP
    return EncodingSource.DETECTED


def _in_doubt(source: EncodingSource, choice: Choice, codec: str) -> bool:
    """The in-doubt verdict: a detected decoding (not a declaration) whose ranking is below
    IN_DOUBT, or that is not the best-ranked codec (which means the best failed past the
    sample)."""
    return source is EncodingSource.DETECTED and (
        choice.confidence < IN_DOUBT or codec != choice.name
    )


def _plain_utf8(
    content: bytes, declared: str | None, declared_codec: str | None, total: int, markup: str | None
) -> DecodedText | None:
    """The common case, decided without a detector: ASCII, or valid UTF-8 with multi-byte
    sequences, which no legacy text is by accident beyond a few bytes, whatever its markup
    declares (an overruled declaration is reported). ASCII that declares a charset in its
    markup is reported as such.

    Not for 7-bit encodings that look like ASCII (ISO-2022 escapes, HZ's `~{`).
    """
    try:
        text = decoded(content, "utf-8")
    except UnicodeDecodeError:
        return None
    source, origin = EncodingSource.DETECTED, Source.UTF8
    if text.isascii():
        if b"\x1b" in content or b"~{" in content:
            return None
        codec, confidence = "ascii", 1.0
        if markup is not None:
            codec, source, origin = markup, EncodingSource.MARKUP, Source.MARKUP
    else:
        codec, confidence = "utf-8", UTF8_CONFIDENCE
    overruled = None
    if markup not in (None, "utf-8", "ascii") and codec == "utf-8":
        # Pages that declare a legacy charset and are saved as UTF-8 are common; the other
        # way round, legacy text that is valid UTF-8 by accident, is not.
        overruled = f"the document declares {markup}, but its bytes are valid UTF-8"
    if declared_codec is not None and (declared_codec == "utf-8" or codec == "ascii"):
        codec, confidence = declared_codec, 1.0
        source, origin = EncodingSource.DECLARED, Source.DECLARED
    candidate = Candidate(codec, codec, origin, confidence, True, 0.0, chosen=True)
    return DecodedText(
        text, codec, confidence, source, [], declared, total, candidates=[candidate],
        overruled=overruled,
    )  # fmt: skip


# A document's own declaration: an XML declaration at the very start, or (HTML) a meta tag.
_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']\s*([A-Za-z0-9._:-]+)""")
_META = re.compile(rb"""<meta[^>]{0,300}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)


def markup_charset(content: bytes, html: bool = False) -> str | None:
    """The charset the document declares itself: `<?xml encoding>` at its start, or for HTML
    the first `<meta charset>` / `http-equiv` in its first `DECLARATION_BYTES`; else the
    coding a text file declares for its editors and tools (`text_charset`). None when there is
    none.

    >>> markup_charset(b'<?xml version="1.0" encoding="gb2312"?><rss/>')
    'gb2312'
    >>> markup_charset(b'<html><meta charset="utf-8">', html=True)
    'utf-8'
    """
    head = content[:DECLARATION_BYTES]
    found = _XML_DECL.match(head)
    if found is None and html:
        found = _META.search(head)
    if found is None:
        return text_charset(content)
    return found.group(1).decode("ascii").lower()


# A text file's own declaration of its coding, in the forms the tools that read it honour, each
# where that tool looks: Emacs's `-*- coding: X -*-` and Python's PEP 263 comment on the first
# or second line; Vim's modeline (`vim: set fileencoding=X`) in the first or last
# `MODELINE_LINES` lines; Emacs's `Local Variables:` block (`coding: X`) in the last
# `LOCAL_VARIABLES_BYTES`; LaTeX's `\usepackage[X]{inputenc}` or `\inputencoding{X}`, a
# gettext catalogue's `Content-Type: text/plain; charset=X` and hunspell's `SET X`, in the
# first `DECLARATION_BYTES`; hyphenation and thesaurus dictionaries' charset, alone on their
# first line. The numbers are the tools' own: Vim reads 5 modelines at each end (`:help
# modelines`), Emacs looks for the local variables in the last 3,000 characters
# (`hack-local-variables`).
MODELINE_LINES = 5
LOCAL_VARIABLES_BYTES = 3000
_CODING_LINE = re.compile(
    rb"^(?:[^\n]*?-\*-[^\n]*?\bcoding:|[ \t\f]*#[^\n]*?coding[:=])[ \t]*([-\w.]+)", re.M
)
_VIM_MODELINE = re.compile(rb"(?:^|\s)(?:vim?|ex):.*?\b(?:fileencoding|fenc)=([-\w.]+)")
_LOCAL_CODING = re.compile(rb"^\W*coding:[ \t]*([-\w.]+)", re.M)
_LATEX_INPUTENC = re.compile(
    rb"\\(?:usepackage\[(?:[-\w.]+,)*([-\w.]+)\]\{inputenc\}|inputencoding\{([-\w.]+)\})"
)
_PO_CHARSET = re.compile(rb'^"Content-Type: text/plain; charset=([-\w.]+)', re.M)
_HUNSPELL_SET = re.compile(rb"^SET[ \t]+([-\w.]+)[ \t]*\r?$", re.M)
# A charset's name alone on the first line holds a digit (`ISO8859-2`, `UTF-8`, `KOI8-R`): a
# word such as `Greek` or `Latin`, which Python also takes for a charset, is a title.
_FIRST_LINE_ALONE = re.compile(rb"\A([A-Za-z][-\w.]{0,30}\d[-\w.]{0,30})[ \t]*\r?\n")
# Emacs's names for codings Python knows by others (`M-x list-coding-systems`); an end-of-line
# suffix (`-unix`, `-dos`, `-mac`) is dropped first. Names that mean "no particular coding"
# (`undecided`, `raw-text`, `binary`, `no-conversion`) are not charsets and declare nothing.
EMACS_CODINGS = {
    "japanese-iso-8bit": "euc_jp",
    "euc-japan": "euc_jp",
    "euc-japan-1990": "euc_jp",
    "japanese-shift-jis": "shift_jis",
    "sjis": "shift_jis",
    "iso-2022-7bit": "iso2022_jp",
    "junet": "iso2022_jp",
    "chinese-iso-8bit": "gb2312",
    "cn-gb-2312": "gb2312",
    "cn-gb": "gb2312",
    "euc-china": "gb2312",
    "euc-cn": "gb2312",
    "chinese-gbk": "gbk",
    "chinese-big5": "big5",
    "cn-big5": "big5",
    "korean-iso-8bit": "euc_kr",
    "euc-korea": "euc_kr",
    "cyrillic-koi8": "koi8_r",
    "cyrillic-iso-8bit": "iso8859_5",
    "cyrillic-alternativnyj": "cp866",
    "greek-iso-8bit": "iso8859_7",
    "hebrew-iso-8bit": "iso8859_8",
    "iso-latin-1": "latin_1",
    "iso-latin-2": "iso8859_2",
    "iso-latin-9": "iso8859_15",
    "latin-0": "iso8859_15",
    "mule-utf-8": "utf-8",
    "utf-8-emacs": "utf-8",
    "prefer-utf-8": "utf-8",
    "utf-8-with-signature": "utf-8",
}


def _holds(data: bytes, keyword: bytes) -> bool:
    """Whether keyword occurs in data (searched backwards, the faster way in CPython 3.11)."""
    return data.rfind(keyword) >= 0


def text_charset(content: bytes) -> str | None:
    r"""The coding a text file declares for Emacs, Vim, Python, LaTeX, gettext, hunspell or a
    hyphenation dictionary, as a label `codec_of` knows; None when it declares none.

    >>> text_charset(b";;; skk-xml.el --- XML -*- coding: euc-japan -*-\n(require 'skk)\n")
    'euc_jp'
    >>> text_charset(b"#!/usr/bin/python\n# -*- coding: latin-1 -*-\nprint(1)\n")
    'latin-1'
    >>> text_charset(b"x\n% Local Variables:\n% coding: cp1251-unix\n% End:\n")
    'cp1251'
    >>> text_charset(b"\\documentclass{article}\\usepackage[koi8-r]{inputenc}")
    'koi8-r'
    >>> text_charset(b"# vim: set fileencoding=utf-8 :\nx\n"), text_charset(b"coding: undecided")
    ('utf-8', None)
    >>> text_charset(b"ISO8859-2\nLEFTHYPHENMIN 2\n"), text_charset(b"Greek\nText\n")
    ('iso8859-2', None)
    """
    # Every document is asked, so each form is looked for only where its keyword is (on 5 KB
    # of prose the patterns cost 140 µs, the keyword tests about 4): `=` and `\\`, rare in
    # prose, are looked for first (one byte, with memchr), and the longer keywords backwards
    # (`bytes.rfind` took a third of the time of `in` on 4 KB, CPython 3.11).
    head = content[:DECLARATION_BYTES]
    tail = content[-LOCAL_VARIABLES_BYTES:]
    found: list[bytes] = []
    first_two = b"\n".join(head.split(b"\n", 2)[:2])
    if b"coding" in first_two and (m := _CODING_LINE.search(first_two)):
        found.append(m.group(1))
    equals = b"=" in head
    if (equals and _holds(head, b"enc=")) or (b"=" in tail and _holds(tail, b"enc=")):
        # `fileencoding=`, `fenc=`
        lines = head.split(b"\n", MODELINE_LINES)[:MODELINE_LINES]
        lines += tail.split(b"\n")[-MODELINE_LINES - 1 :]
        found += [m.group(1) for line in lines if (m := _VIM_MODELINE.search(line))]
    if (where := tail.rfind(b"Local Variables:")) >= 0 and (m := _LOCAL_CODING.search(tail, where)):
        found.append(m.group(1))
    if b"\\" in head and _holds(head, b"inputenc") and (m := _LATEX_INPUTENC.search(head)):
        found.append(m.group(1) or m.group(2))
    if equals and _holds(head, b"charset=") and (m := _PO_CHARSET.search(head)):
        found.append(m.group(1))
    if _holds(head, b"SET") and (m := _HUNSPELL_SET.search(head)):
        found.append(m.group(1))
    if m := _FIRST_LINE_ALONE.match(head):
        found.append(m.group(1))
    for raw in found:
        label = raw.decode("ascii", "replace").lower()
        for suffix in ("-unix", "-dos", "-mac"):
            label = label.removesuffix(suffix)
        label = EMACS_CODINGS.get(label, label)
        if codec_of(label) is not None:
            return label
    return None


def _markup_codec(content: bytes, html: bool) -> str | None:
    """The codec the document declares for itself, if Python knows it and it can apply."""
    label = markup_charset(content, html)
    codec = codec_of(label) if label else None
    if codec in UNICODE and codec != "utf-8":
        return "utf-8"  # a UTF-16/32 label on 8-bit bytes means UTF-8, as browsers read it
    return codec


# The Unicode encodings of two and four bytes a code unit. Nearly any even-length string of
# bytes decodes as UTF-16: a caller's `utf-16` label on UTF-8 text "decodes" into CJK-looking
# characters (`Hello` as `效汬`), so the label is weighed against the bytes.
WIDE_UNICODE = UNICODE - {"utf-8"}


def utf8_not_wide(content: bytes) -> bool:
    """Whether content is UTF-8 (or ASCII) and not UTF-16 or UTF-32 text: it decodes as UTF-8
    and holds no NUL byte, where UTF-16 text holds one for each space, digit or Latin letter
    and UTF-32 text three for each. (CJK in UTF-16 alone, without a space or mark, holds none,
    but is not valid UTF-8 past a few characters.)

    >>> utf8_not_wide(b"Hello world"), utf8_not_wide("Hello".encode("utf-16-le"))
    (True, False)
    """
    return b"\x00" not in content and strict(content, "utf-8") is not None


def _arbitrate(content: bytes, codec: str, choice: Choice | None) -> tuple[str, str] | str:
    """Decode with the declared codec if the bytes agree, as (text, codec used); otherwise
    say why not.

    Agreeing means: the bytes decode strictly (with the codec's superset where needed), they
    are not UTF-8 that a single-byte codec would misread, and the declared reading is not
    clearly worse than the best candidate's. A declaration is kept where detection alone
    would be unsure (short texts), since the caller usually knows.
    """
    decoded = widen(content, codec)
    if decoded is None:
        return f"the bytes are not valid {codec}"
    text, used = decoded
    if used in WIDE_UNICODE and utf8_not_wide(content):
        return (
            f"the bytes are valid UTF-8 and hold no NUL byte, which {used} text holds for "
            "every space, digit and Latin letter"
        )
    if used in UNICODE or text.isascii():
        return decoded
    if used not in MULTIBYTE and strict(content, "utf-8") is not None:
        return f"the bytes are valid UTF-8 with multi-byte sequences, which {codec} misreads"
    if choice is None or choice.name == used or non_ascii(text) < ARGUE_MIN:
        return decoded  # too little text to argue with the caller
    theirs = next((c for c in choice.candidates if c.name == choice.name), None)
    mine = next((c for c in choice.candidates if c.name == used and c.decodes), None)
    if theirs is None or theirs.source == Source.SIBLING:
        return decoded
    if used in MULTIBYTE and theirs.name not in MULTIBYTE:
        return decoded  # a CJK reading is only overruled by another CJK reading
    mine_score = mine.implausibility if mine is not None else implausibility(text)
    if mine_score > OVERRULE_FACTOR * theirs.implausibility + OVERRULE_SLACK:
        return (
            f"decoded as {used} the text reads as mojibake ({mine_score:.1f} vs "
            f"{theirs.implausibility:.1f} anomalies per 100 non-ASCII characters "
            f"as {theirs.name})"
        )
    return decoded


_LINE = re.compile(rb"[^\n]*\n?")


def _utf8_regions(
    content: bytes, declared: str | None, says_utf8: bool = False
) -> DecodedText | None:
    """UTF-8 with damaged bytes or legacy-encoded lines, decoded as such; None when the
    content is not UTF-8 at heart. Content that says it is UTF-8 (the caller or the document
    itself, `says_utf8`) needs only as many good characters as damaged ones.

    Lines holding invalid UTF-8 and no valid multi-byte sequence are legacy regions: they are
    decoded together with the codec that reads them best, when it reads them plausibly and
    reading the UTF-8 lines with it instead would be worse. Other invalid bytes are damage
    (U+FFFD, listed). A single-byte codec for the whole document would turn every other
    non-ASCII character into mojibake to avoid a few U+FFFD.
    """
    rough = content.decode("utf-8", "replace")
    faults = rough.count("\ufffd")
    if non_ascii(rough) - faults < MIN_UTF8 or faults > MAX_FAULTS:
        return None
    legacy: list[tuple[int, int]] = []
    wide = bad = 0
    utf8_foreign: list[str] = []
    ratio = DECLARED_DAMAGE_RATIO if says_utf8 else DAMAGE_RATIO
    for match in _LINE.finditer(content):
        start, end = match.span()
        line = match.group()
        if line.isascii():
            continue
        text = line.decode("utf-8", "replace")
        replaced = text.count("\ufffd")
        valid = non_ascii(text) - replaced
        # Damaged characters, not bytes: the decoder replaces each byte of a sequence it cannot
        # read, and Emacs's own UTF-8 writes characters beyond Unicode in 4 or 5 bytes (its
        # Ethiopic, Tibetan and Indic tables, `coding: utf-8-emacs`).
        faults = _replaced_runs(text) if replaced else 0
        if faults and not valid:
            if legacy and legacy[-1][1] == start:
                legacy[-1] = (legacy[-1][0], end)
            else:
                legacy.append((start, end))
            continue
        wide += valid
        bad += faults
        if bad >= DAMAGE_MIN and ratio * bad > wide:
            return None  # damage everywhere: a legacy document, not UTF-8 at heart
        if not faults and len(utf8_foreign) < UTF8_LINES_KEPT:
            utf8_foreign.append(text)
    if wide < MIN_UTF8 or wide < ratio * bad:
        return None
    codec = _legacy_codec(content, legacy, utf8_foreign) if legacy else None
    if codec is None:
        # Their damaged characters are the damage, not the whole lines: one Latin-1 letter in
        # a long line of a UTF-8 changelog counted as the line's 80 bytes, outweighed eleven
        # good characters, and the whole file was read as Mac Roman, each of them mojibake.
        bad += sum(_replaced_runs(content[s:e].decode("utf-8", "replace")) for s, e in legacy)
        if wide < MIN_UTF8_DAMAGED or wide < ratio * bad:
            return None
        decoded = _decode_lossless(
            content, "utf-8", EncodingSource.DETECTED, 0.0, declared, len(content)
        )
        return replace(decoded, confidence=round(wide / (wide + bad), 3))
    pieces: list[tuple[int, int, str]] = []
    at = 0
    for start, end in legacy:
        if at < start:
            pieces.append((at, start, "utf-8"))
        pieces.append((start, end, codec))
        at = end
    if at < len(content):
        pieces.append((at, len(content), "utf-8"))
    texts: list[str] = []
    undecodable: list[tuple[int, int, int]] = []
    regions: list[Region] = []
    chars = 0
    for start, end, name in pieces:
        part = _decode_lossless(
            content[start:end], name, EncodingSource.DETECTED, 0.0, None, 0, offset=start
        )
        undecodable += [(pos + chars, s, e) for pos, s, e in part.undecodable]
        regions.append(Region(start, end, chars, chars + len(part.text), name))
        texts.append(part.text)
        chars += len(part.text)
    return DecodedText(
        "".join(texts), "utf-8", round(wide / (wide + bad), 3), EncodingSource.DETECTED, [],
        declared, len(content), undecodable, regions=regions,
    )  # fmt: skip


_REPLACED_RUN = re.compile("\ufffd+")


def _replaced_runs(text: str) -> int:
    """How many runs of U+FFFD text holds: the characters the decoder could not read."""
    return sum(1 for _ in _REPLACED_RUN.finditer(text))


def _legacy_codec(
    content: bytes, legacy: list[tuple[int, int]], utf8_lines: list[str]
) -> str | None:
    """The codec the legacy lines are in, if one reads them plausibly and reading the UTF-8
    lines' bytes with it instead would be worse (so they are not one legacy document)."""
    spliced = b"".join(content[s:e] for s, e in legacy)[:SAMPLE_BYTES]
    if sum(1 for b in spliced if b > 0x7F) < LEGACY_MIN_BYTES:
        return None
    choice = rank_codecs(spliced).best
    if choice is None or choice.name in UNICODE:
        return None
    name, score = choice.name, implausibility(choice.text)
    # A few legacy lines are too short for the detector to tell windows-1252 from its Baltic or
    # Mac cousins; the web's most common legacy codec wins when it reads at least as well.
    common = widen(spliced, "cp1252")
    if common is not None and implausibility(common[0]) <= score:
        name, score = common[1], implausibility(common[0])
    if score > LEGACY_MAX_IMPLAUSIBILITY:
        return None
    as_utf8 = "".join(utf8_lines)
    misread = widen(as_utf8.encode("utf-8"), name)
    # Reading the UTF-8 lines' bytes with the codec as well as they read: one legacy document.
    one_document = misread is not None and (
        implausibility(misread[0]) <= implausibility(as_utf8) + MISREAD_SLACK
    )
    return None if one_document else name


def _decode_lossless(
    content: bytes,
    codec: str,
    source: EncodingSource,
    confidence: float,
    declared: str | None,
    total: int,
    offset: int = 0,
) -> DecodedText:
    """Decode, replacing each undecodable run by U+FFFD and listing where it was."""
    _local.spans = []
    try:
        raw = codecs.decode(content, codec, "textmend-record")
    finally:
        spans, _local.spans = _local.spans, []
    if not spans:
        return DecodedText(raw, codec, confidence, source, [], declared, total)
    undecodable = []
    pieces = raw.split(_MARK)
    pos = 0
    for k, (start, end) in enumerate(spans):
        pos += len(pieces[k])
        undecodable.append((pos, start + offset, end + offset))
        pos += 1
    return DecodedText(
        "\ufffd".join(pieces), codec, confidence, source, [], declared, total, undecodable
    )
