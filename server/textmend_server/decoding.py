"""Turn bytes into text: BOM, then the declared charset if the bytes agree, then detection.

Undecodable bytes are never dropped: each undecodable run becomes one U+FFFD and is reported
with its byte offsets. Binary files and empty input are refused with a message saying why.
"""

from __future__ import annotations

import codecs
import re
import threading
from dataclasses import dataclass, field
from enum import StrEnum

import chardet
from ftfy.badness import badness

from textmend_server.errors import BinaryContentError, EmptyContentError, UnknownEncodingError


class EncodingSource(StrEnum):
    """Where the chosen encoding came from."""

    BOM = "bom"
    DECLARED = "declared"
    DETECTED = "detected"
    FALLBACK = "fallback"


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

# Labels browsers accept that Python's codec registry does not, mapped to Python names.
_ALIASES = {
    "x-sjis": "shift_jis",
    "windows-31j": "cp932",
    "x-gbk": "gbk",
    "x-euc-jp": "euc_jp",
    "x-mac-cyrillic": "mac_cyrillic",
    "x-mac-roman": "mac_roman",
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
_SUPERSETS = {
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

_UNICODE = frozenset(
    {"utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"}
)
_MULTIBYTE = frozenset(
    {
        "gb2312",
        "gbk",
        "gb18030",
        "big5",
        "big5hkscs",
        "cp950",
        "shift_jis",
        "cp932",
        "euc_jp",
        "euc_kr",
        "cp949",
        "johab",
        "iso2022_jp",
        "iso2022_kr",
        "hz",
    }
)

# Bytes that text never holds in any quantity: C0 controls other than tab, LF, FF, CR, ESC.
_CONTROL_BYTES = re.compile(rb"[\x01-\x08\x0e-\x1a\x1c-\x1f]")
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
    cleaned = label.strip().strip("\"'").lower()
    try:
        return codecs.lookup(_ALIASES.get(cleaned, cleaned)).name
    except LookupError:
        raise UnknownEncodingError(label) from None


def sniff_binary(content: bytes) -> str | None:
    """Name the binary format content is in, or None when it may be text.

    >>> sniff_binary(b"%PDF-1.7 ..."), sniff_binary("plain text".encode())
    ('PDF document', None)
    """
    for magic, kind in _MAGIC:
        if content.startswith(magic):
            return kind
    head = content[:8192]
    if b"\x00" in head and _utf16_or_32_without_bom(head) is None:
        return "data with NUL bytes"
    if len(_CONTROL_BYTES.findall(head)) > max(8, len(head) // 10):
        return "data with many control bytes"
    return None


def _utf16_or_32_without_bom(head: bytes) -> str | None:
    """Recognise UTF-16/32 without a BOM by where the NUL bytes of ASCII-range text fall."""
    n = len(head) - len(head) % 4
    if n < 4:
        return None
    lanes = [head[i:n:4].count(0) / (n // 4) for i in range(4)]
    if lanes[1] > 0.9 and lanes[2] > 0.9 and lanes[3] > 0.9 and lanes[0] < 0.5:
        return "utf-32-le"
    if lanes[0] > 0.9 and lanes[1] > 0.9 and lanes[2] > 0.9 and lanes[3] < 0.5:
        return "utf-32-be"
    even, odd = (lanes[0] + lanes[2]) / 2, (lanes[1] + lanes[3]) / 2
    if odd > 0.6 and even < 0.2:
        return "utf-16-le"
    if even > 0.6 and odd < 0.2:
        return "utf-16-be"
    return None


def _strict(content: bytes, codec: str) -> str | None:
    try:
        return content.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _widen(content: bytes, codec: str) -> tuple[str, str] | None:
    """Decode strictly with codec, or with its superset when the bytes need it.

    ISO-8859-1 is read as windows-1252 when it holds bytes 0x80-0x9F (C1 controls are
    almost never meant; windows-1252 punctuation almost always is), as browsers do.
    """
    wider = _SUPERSETS.get(codec)
    if codec in ("iso8859-1", "latin-1") and re.search(rb"[\x80-\x9f]", content):
        text = _strict(content, "cp1252")
        if text is not None:
            return text, "cp1252"
    text = _strict(content, codec)
    if text is not None:
        return text, codec
    if wider is not None:
        text = _strict(content, wider)
        if text is not None:
            return text, wider
    return None


_WORD = re.compile(r"[^\W\d_]{2,}")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_GREEK = re.compile(r"[\u0370-\u03ff]")
_ODD = re.compile(r"[\x80-\x9f\ue000-\uf8ff\ufffd]")
# A non-ASCII symbol, digit or mark wedged between two letters: `Za¿ó³æ`, `ÕfËû`.
_WEDGED = re.compile(
    r"(?<=[^\W\d_])[\u00a1-\u00bf\u00d7\u00f7\u2010-\u2122\u2500-\u25ff](?=[^\W\d_])"
)
# Three or more accented Latin letters in a row, which no Latin-script language writes much.
_ACCENT_RUN = re.compile(r"[\u00c0-\u024f]{3,}")

# How common each codec is on the web, most common first; breaks ties between decodings
# that read equally well (short texts, where the detector's confidence means little).
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
            "utf-16",
            "utf-16-le",
            "utf-16-be",
        ]
    )
}


def implausibility(text: str) -> float:
    """How unlike natural text a decoding reads, per 100 characters (0 is ordinary text).

    Counts words mixing Latin, Cyrillic and Greek letters (what a wrong single-byte codec
    makes), C1 controls and private-use characters, and ftfy's mojibake badness.

    >>> implausibility("Café crème") < implausibility("Cafй crиme")
    True
    """
    sample = text[:20000]
    if not sample:
        return 0.0
    mixed = 0
    for word in _WORD.findall(sample):
        scripts = (
            bool(_LATIN.search(word)) + bool(_CYRILLIC.search(word)) + bool(_GREEK.search(word))
        )
        mixed += scripts > 1
    odd = len(_ODD.findall(sample)) + len(_WEDGED.findall(sample))
    odd += len(_ACCENT_RUN.findall(sample))
    return 100.0 * (2 * mixed + odd + badness(sample)) / len(sample)


def decode(content: bytes, declared: str | None = None) -> DecodedText:
    """Decode content: BOM, then the declared charset if the bytes agree, then detection.

    Raises EmptyContentError, BinaryContentError or UnknownEncodingError with a message a
    caller can act on. Never drops bytes: undecodable ones become U+FFFD and are listed.

    >>> d = decode("Grüße".encode("utf-8"), declared="iso-8859-1")
    >>> d.text, d.encoding, d.source.value
    ('Grüße', 'utf-8', 'detected')
    """
    if not content:
        raise EmptyContentError()
    declared_codec = codec_name(declared) if declared else None
    for bom, codec in _BOMS:
        if content.startswith(bom):
            return _decode_lossless(
                content[len(bom) :],
                codec,
                EncodingSource.BOM,
                1.0,
                declared,
                len(content),
                offset=len(bom),
            )
    kind = sniff_binary(content)
    if kind is not None:
        raise BinaryContentError(kind)
    bomless = _utf16_or_32_without_bom(content[:8192]) if b"\x00" in content[:8192] else None
    if bomless is not None:
        return _decode_lossless(
            content, bomless, EncodingSource.DETECTED, 0.9, declared, len(content)
        )

    candidates = _detect(content)
    overruled = None
    if declared_codec is not None:
        verdict = _check_declared(content, declared_codec, candidates)
        if isinstance(verdict, tuple):
            text, codec = verdict
            return DecodedText(
                text,
                codec,
                1.0,
                EncodingSource.DECLARED,
                [(n, c) for n, c in candidates if n != codec][:4],
                declared,
                len(content),
            )
        overruled = verdict
    if not any(n == "utf-8" for n, _ in candidates[:1]) or _strict(content, "utf-8") is None:
        damaged = _mostly_utf8(content, declared)
        if damaged is not None:
            return (
                damaged
                if not overruled
                else DecodedText(**{**damaged.__dict__, "overruled": overruled})
            )
    best = _choose(content, candidates)
    if best is not None:
        text, codec, confidence = best
        return DecodedText(
            text,
            codec,
            confidence,
            EncodingSource.DETECTED,
            [(n, c) for n, c in candidates if n != codec][:4],
            declared,
            len(content),
            overruled=overruled,
        )
    # Nothing decodes cleanly: the candidate losing the fewest bytes, marks and all.
    lossy = [declared_codec] if declared_codec else []
    lossy += [n for n, _ in candidates] + ["utf-8"]
    results = [
        _decode_lossless(content, codec, EncodingSource.FALLBACK, 0.0, declared, len(content))
        for codec in dict.fromkeys(lossy)
    ]
    chosen = min(results, key=lambda d: sum(e - s for _, s, e in d.undecodable))
    if overruled:
        chosen = DecodedText(**{**chosen.__dict__, "overruled": overruled})
    return chosen


def _mostly_utf8(content: bytes, declared: str | None) -> DecodedText | None:
    """UTF-8 with a few damaged bytes, decoded as such (a single-byte codec would turn every
    other non-ASCII character into mojibake to avoid one U+FFFD)."""
    if _strict(content, "utf-8") is not None:
        return None
    decoded = _decode_lossless(
        content, "utf-8", EncodingSource.DETECTED, 0.0, declared, len(content)
    )
    bad = sum(end - start for _, start, end in decoded.undecodable)
    wide = sum(1 for ch in decoded.text if ch > "\x7f") - len(decoded.undecodable)
    if wide < 4 or wide < 3 * bad:
        return None
    return DecodedText(**{**decoded.__dict__, "confidence": round(wide / (wide + bad), 3)})


def _detect(content: bytes) -> list[tuple[str, float]]:
    """chardet's ranked candidates as (python codec name, confidence), unknown names dropped."""
    out: dict[str, float] = {}
    for guess in chardet.detect_all(content):
        name = guess.get("encoding")
        if not name:
            continue
        try:
            codec = codecs.lookup(_ALIASES.get(name.lower(), name)).name
        except LookupError:
            continue
        out.setdefault(codec, float(guess.get("confidence") or 0.0))
    return list(out.items())


def _check_declared(
    content: bytes, codec: str, candidates: list[tuple[str, float]]
) -> tuple[str, str] | str:
    """Decode with the declared codec if the bytes agree; otherwise say why not."""
    decoded = _widen(content, codec)
    if decoded is None:
        return f"the bytes are not valid {codec}"
    text, used = decoded
    if used in _UNICODE or text.isascii():
        return decoded
    if used not in _MULTIBYTE and _strict(content, "utf-8") is not None:
        return f"the bytes are valid UTF-8 with multi-byte sequences, which {codec} misreads"
    best = _choose(content, [c for c in candidates if c[0] != used])
    if best is not None and used not in _MULTIBYTE:
        theirs, mine = implausibility(best[0]), implausibility(text)
        if best[1] in _MULTIBYTE and best[2] >= 0.1 and mine > 2 * theirs + 1.0:
            return (
                f"decoded as {used} the text reads as mojibake "
                f"({mine:.1f} vs {theirs:.1f} implausible per 100 characters as {best[1]})"
            )
    return decoded


def _choose(content: bytes, candidates: list[tuple[str, float]]) -> tuple[str, str, float] | None:
    """The detector's candidate that decodes strictly and reads most like natural text."""
    scored = []
    for rank, (codec, confidence) in enumerate(candidates[:6]):
        decoded = _widen(content, codec)
        if decoded is None:
            continue
        text, used = decoded
        # Among equally readable decodings, the detector's rank and confidence, then how
        # common the codec is, decide.
        prior = rank + _POPULARITY.get(used, 50) / 8 - 10 * confidence
        scored.append((round(implausibility(text), 1), prior, text, used, confidence))
    if not scored:
        text = _strict(content, "utf-8")
        return (text, "utf-8", 0.5) if text is not None else None
    _, _, text, used, confidence = min(scored, key=lambda s: (s[0], s[1]))
    return text, used, confidence


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
