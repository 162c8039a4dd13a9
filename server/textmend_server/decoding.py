"""Turn bytes into text: BOM, then the declared charset if the bytes agree, then detection.

Detection decodes candidates and keeps the reading that reads best (`detection`); a declared
charset is kept unless its reading is clearly worse than another candidate's, and then it is
overruled with the reason. A UTF-8 document holding a paragraph in a legacy codec (a CMS
splice) is decoded region by region. Undecodable bytes are never dropped: each undecodable
run becomes one U+FFFD and is reported with its byte offsets. Binary files and empty input are
refused with a message saying why.
"""

from __future__ import annotations

import codecs
import re
import threading
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum

from textmend_server import detection
from textmend_server.detection import MULTIBYTE, UNICODE, Candidate, implausibility, strict, widen
from textmend_server.errors import BinaryContentError, EmptyContentError, UnknownEncodingError


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
    # likeliest first (`detection.RIVAL_SHARE` or more); empty when detection was not needed.
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
_ISO2022 = re.compile(rb"\x1b\$[)(]?[@ABCD]")
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
    codec = detection.codec_of(label)
    if codec is None:
        raise UnknownEncodingError(label)
    return codec


def sniff_binary(content: bytes) -> str | None:
    """Name the binary format content is in, or None when it may be text.

    >>> sniff_binary(b"%PDF-1.7 ..."), sniff_binary("plain text".encode())
    ('PDF document', None)
    """
    for magic, kind in _MAGIC:
        if content.startswith(magic):
            return kind
    head = content[:8192]
    if _ISO2022.search(head):
        # 7-bit ISO-2022 text switches character sets with ESC, SO and SI.
        head = head.replace(b"\x0e", b"").replace(b"\x0f", b"")
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
    if kind is not None:
        raise BinaryContentError(kind)
    bomless = _utf16_or_32_without_bom(content[:8192]) if b"\x00" in content[:8192] else None
    if bomless is not None:
        return _decode_lossless(content, bomless, EncodingSource.DETECTED, 0.9, declared, total)

    markup = _markup_codec(content, html)
    if declared_codec in (None, "utf-8", "ascii"):
        plain = _plain_utf8(content, declared, declared_codec, total, markup)
        if plain is not None:
            return plain

    detecting = time.perf_counter()
    decoded = _detected(content, declared, declared_codec, total, markup)
    return replace(decoded, detect_seconds=time.perf_counter() - detecting)


def _detected(
    content: bytes, declared: str | None, declared_codec: str | None, total: int, markup: str | None
) -> DecodedText:
    """The decoding detection chooses (and arbitration with a declared charset allows), for
    content that is not plain UTF-8 or ASCII."""
    sample = detection.sample_of(content)
    answers = detection.detector_answers(sample)
    choice = detection.choose(sample, declared=declared_codec, markup=markup, answers=answers)
    runners_up = [(n, c) for n, c in answers if not choice or n != choice.name][:4]
    found = choice.candidates if choice else []
    overruled = None
    if declared_codec is not None:
        kept = _arbitrate(content, declared_codec, choice)
        if isinstance(kept, tuple):
            text, codec = kept
            chosen = [replace(c, chosen=c.name == codec) for c in found]
            chosen.sort(key=lambda c: not c.chosen)
            runners_up = [(n, c) for n, c in answers if n != codec][:4]
            return DecodedText(
                text, codec, 1.0, EncodingSource.DECLARED, runners_up, declared, total,
                candidates=chosen,
            )  # fmt: skip
        overruled = kept
    extra = {"overruled": overruled, "candidates": found}
    if strict(content, "utf-8") is None:
        mixed = _utf8_regions(content, declared)
        if mixed is not None:
            return replace(mixed, runners_up=runners_up, **extra)
    if choice is not None:
        ordered = [choice.name] + [c.name for c in choice.candidates if c.decodes]
        for codec in dict.fromkeys(ordered):
            text = strict(content, codec) if len(content) > len(sample) else None
            if text is None and codec == choice.name and len(content) == len(sample):
                text = choice.text
            if text is not None:
                source = (
                    EncodingSource.MARKUP
                    if codec == choice.name and choice.source == detection.Source.MARKUP
                    else EncodingSource.DETECTED
                )
                # A codec other than the chosen one means the chosen failed past the sample.
                doubt = source is EncodingSource.DETECTED and (
                    choice.confidence < IN_DOUBT or codec != choice.name
                )
                return DecodedText(
                    text, codec, choice.confidence, source, runners_up, declared, total, **extra,
                    alternatives=choice.alternatives, in_doubt=doubt, language=choice.lang,
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
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    source, origin = EncodingSource.DETECTED, detection.Source.UTF8
    if text.isascii():
        if b"\x1b" in content or b"~{" in content:
            return None
        codec, confidence = "ascii", 1.0
        if markup is not None:
            codec, source, origin = markup, EncodingSource.MARKUP, detection.Source.MARKUP
    else:
        codec, confidence = "utf-8", 0.99
    overruled = None
    if markup not in (None, "utf-8", "ascii") and codec == "utf-8":
        # Pages that declare a legacy charset and are saved as UTF-8 are common; the other
        # way round, legacy text that is valid UTF-8 by accident, is not.
        overruled = f"the document declares {markup}, but its bytes are valid UTF-8"
    if declared_codec is not None and (declared_codec == "utf-8" or codec == "ascii"):
        codec, confidence = declared_codec, 1.0
        source, origin = EncodingSource.DECLARED, detection.Source.DECLARED
    candidate = Candidate(codec, codec, origin, confidence, True, 0.0, chosen=True)
    return DecodedText(
        text, codec, confidence, source, [], declared, total, candidates=[candidate],
        overruled=overruled,
    )  # fmt: skip


def _markup_codec(content: bytes, html: bool) -> str | None:
    """The codec the document declares for itself, if Python knows it and it can apply."""
    label = detection.markup_charset(content, html)
    codec = detection.codec_of(label) if label else None
    if codec in UNICODE and codec != "utf-8":
        return "utf-8"  # a UTF-16/32 label on 8-bit bytes means UTF-8, as browsers read it
    return codec


def _arbitrate(
    content: bytes, codec: str, choice: detection.Choice | None
) -> tuple[str, str] | str:
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
    if used in UNICODE or text.isascii():
        return decoded
    if used not in MULTIBYTE and strict(content, "utf-8") is not None:
        return f"the bytes are valid UTF-8 with multi-byte sequences, which {codec} misreads"
    if choice is None or choice.name == used or _non_ascii(text) < 8:
        return decoded  # too little text to argue with the caller
    theirs = next((c for c in choice.candidates if c.name == choice.name), None)
    mine = next((c for c in choice.candidates if c.name == used and c.decodes), None)
    if theirs is None or theirs.source == detection.Source.SIBLING:
        return decoded
    if used in MULTIBYTE and theirs.name not in MULTIBYTE:
        return decoded  # a CJK reading is only overruled by another CJK reading
    mine_score = mine.implausibility if mine is not None else implausibility(text)
    if mine_score > 2 * theirs.implausibility + 2.0:
        return (
            f"decoded as {used} the text reads as mojibake ({mine_score:.1f} vs "
            f"{theirs.implausibility:.1f} anomalies per 100 non-ASCII characters "
            f"as {theirs.name})"
        )
    return decoded


_LINE = re.compile(rb"[^\n]*\n?")


def _non_ascii(text: str) -> int:
    """How many characters of text are not ASCII (at C speed)."""
    return len(text) - len(text.encode("ascii", "ignore"))


def _utf8_regions(content: bytes, declared: str | None) -> DecodedText | None:
    """UTF-8 with damaged bytes or legacy-encoded lines, decoded as such; None when the
    content is not UTF-8 at heart.

    Lines holding invalid UTF-8 and no valid multi-byte sequence are legacy regions: they are
    decoded together with the codec that reads them best, when it reads them plausibly and
    reading the UTF-8 lines with it instead would be worse. Other invalid bytes are damage
    (U+FFFD, listed). A single-byte codec for the whole document would turn every other
    non-ASCII character into mojibake to avoid a few U+FFFD.
    """
    rough = content.decode("utf-8", "replace")
    faults = rough.count("\ufffd")
    if _non_ascii(rough) - faults < 3 or faults > 64 * 1024:
        return None
    legacy: list[tuple[int, int]] = []
    wide = bad = 0
    utf8_foreign: list[str] = []
    for match in _LINE.finditer(content):
        start, end = match.span()
        line = match.group()
        if line.isascii():
            continue
        text = line.decode("utf-8", "replace")
        faults = text.count("\ufffd")
        valid = _non_ascii(text) - faults
        if faults and not valid:
            if legacy and legacy[-1][1] == start:
                legacy[-1] = (legacy[-1][0], end)
            else:
                legacy.append((start, end))
            continue
        wide += valid
        bad += faults
        if bad >= 16 and 3 * bad > wide:
            return None  # damage everywhere: a legacy document, not UTF-8 at heart
        if not faults and len(utf8_foreign) < 200:
            utf8_foreign.append(text)
    if wide < 3 or wide < 3 * bad:
        return None
    codec = _legacy_codec(content, legacy, utf8_foreign) if legacy else None
    if codec is None:
        bad += sum(e - s for s, e in legacy)
        if wide < 4 or wide < 3 * bad:
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


def _legacy_codec(
    content: bytes, legacy: list[tuple[int, int]], utf8_lines: list[str]
) -> str | None:
    """The codec the legacy lines are in, if one reads them plausibly and reading the UTF-8
    lines' bytes with it instead would be worse (so they are not one legacy document)."""
    spliced = b"".join(content[s:e] for s, e in legacy)[: detection.SAMPLE_BYTES]
    if sum(1 for b in spliced if b > 0x7F) < 2:
        return None
    choice = detection.choose(spliced)
    if choice is None or choice.name in UNICODE:
        return None
    name, score = choice.name, implausibility(choice.text)
    # A few legacy lines are too short for the detector to tell windows-1252 from its Baltic or
    # Mac cousins; the web's most common legacy codec wins when it reads at least as well.
    common = widen(spliced, "cp1252")
    if common is not None and implausibility(common[0]) <= score:
        name, score = common[1], implausibility(common[0])
    if score > 3.0:
        return None
    as_utf8 = "".join(utf8_lines)
    misread = widen(as_utf8.encode("utf-8"), name)
    if misread is not None and implausibility(misread[0]) <= implausibility(as_utf8) + 1.0:
        return None
    return name


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
