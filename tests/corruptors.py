"""Corruption generators: reproduce, byte for byte, the ways CJK text gets damaged.

The model (one converter's pipeline, as seen in the wild):

0. the clean text, paragraphs ending in `</p>`, full-width punctuation;
1. encoded to a double-byte codec (GBK, Big5, Shift-JIS);
2. an annotation converter replaces the bytes of chosen characters with `字(pinyin)` by a
   byte-level `strtr`, which ignores character boundaries (so a key can match the trail byte
   of one character and the lead byte of the next);
3. the byte stream is cut just before a misaligned full-width `！`/`？` (a trail byte A3
   followed by a lead byte A1 or BF, in GBK) with some probability, or at random places
   inside two-byte characters;
4. each piece is decoded by an old lossy decoder: a lone lead byte at the end of a piece gives
   `?`; a lead byte followed by a byte below 0x40 gives `?` and swallows that byte; pairs in
   the user-defined areas become private-use characters;
5. well-formed tags are stripped (a `</p>` whose `<` was swallowed survives as `/p>`);
6. private-use characters are dropped and full-width ASCII forms folded to ASCII.

This module is written independently of the repair code on purpose: the tests check the
repairs against it, so it must not share their assumptions.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

# Lead and trail ranges, user-defined areas, single-byte ranges of each codec.
CODECS: dict[str, dict] = {
    "gbk": {
        "py": "gbk",
        "lead": [(0x81, 0xFE)],
        "uda": [(0xAA, 0xAF, 0xA1, 0xFE), (0xF8, 0xFE, 0xA1, 0xFE), (0xA1, 0xA7, 0x40, 0xA0)],
        "single": [(0x00, 0x7F)],
    },
    "big5": {
        "py": "cp950",
        "lead": [(0x81, 0xFE)],
        "uda": [
            (0xFA, 0xFE, 0x40, 0xFE),
            (0x8E, 0xA0, 0x40, 0xFE),
            (0x81, 0x8D, 0x40, 0xFE),
            (0xC6, 0xC8, 0xA1, 0xFE),
        ],
        "single": [(0x00, 0x7F)],
    },
    "shift_jis": {
        "py": "cp932",
        "lead": [(0x81, 0x9F), (0xE0, 0xFC)],
        "uda": [(0xF0, 0xF9, 0x40, 0xFC)],
        "single": [(0x00, 0x7F), (0xA1, 0xDF)],
    },
}

_TAG_RE = re.compile(r"<[^<>\n]*>")


def _in(ranges, b: int) -> bool:
    return any(lo <= b <= hi for lo, hi in ranges)


def lossy_decode(data: bytes, codec: str) -> str:
    """Decode as old lossy decoders did; private-use characters stand for user-defined pairs.

    >>> lossy_decode(bytes.fromhex("a3a1b1cbfbb751"), "gbk")
    '！彼\\ue000Q'
    >>> lossy_decode(bytes.fromhex("a1"), "gbk")
    '?'
    """
    spec = CODECS[codec]
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if _in(spec["single"], b):
            out.append(data[i : i + 1].decode(spec["py"], errors="replace"))
            i += 1
        elif not _in(spec["lead"], b) or i + 1 == n:
            out.append("?")
            i += 1
        elif data[i + 1] < 0x40:
            out.append("?")  # the byte below 0x40 is swallowed with the lead
            i += 2
        else:
            t = data[i + 1]
            if any(a <= b <= c and d <= t <= e for a, c, d, e in spec["uda"]):
                out.append("\ue000")
            else:
                try:
                    ch = data[i : i + 2].decode(spec["py"])
                    out.append(ch if len(ch) == 1 and not 0xE000 <= ord(ch) <= 0xF8FF else "?")
                except UnicodeDecodeError:
                    out.append("?")
            i += 2
    return "".join(out)


def strtr_bytes(data: bytes, table: dict[bytes, bytes]) -> bytes:
    """PHP's strtr on bytes: at each byte, replace the first matching key, else copy the byte.

    >>> strtr_bytes(bytes.fromhex("d2f29ee9df40"), {bytes.fromhex("f29e"): b"X"}).hex()
    'd258e9df40'
    """
    keys = sorted({len(k) for k in table}, reverse=True)
    out = bytearray()
    i = 0
    while i < len(data):
        for k in keys:
            rep = table.get(data[i : i + k])
            if rep is not None:
                out += rep
                i += k
                break
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


def pinyin_table(chars: list[str], codec: str = "gbk") -> dict[bytes, bytes]:
    """A converter table mapping each character's bytes to `字(pinyin)` with its default
    tone-marked reading (what the annotation converters use)."""
    from pypinyin import Style, pinyin

    py = CODECS[codec]["py"]
    table: dict[bytes, bytes] = {}
    for ch in chars:
        got = pinyin(ch, style=Style.TONE, heteronym=False, errors="ignore")
        if not got or not got[0]:
            continue
        reading = got[0][0]
        try:
            key = ch.encode(py)
            table[key] = key + b"(" + reading.encode(py) + b")"
        except UnicodeEncodeError:
            continue
    return table


def char_boundaries(data: bytes, codec: str) -> list[int]:
    """Offsets where characters start, reading data in phase from its first byte."""
    spec = CODECS[codec]
    out = []
    i = 0
    while i < len(data):
        out.append(i)
        i += 1 if _in(spec["single"], data[i]) or not _in(spec["lead"], data[i]) else 2
    return out


def cut_points(
    data: bytes, codec: str, rng: random.Random, trigger_p: float, random_rate: float
) -> list[int]:
    """Where the stream is cut: just before a trail byte that, read with the next lead, is a
    misaligned `！`/`？` (probability trigger_p); or inside any two-byte character
    (probability random_rate each)."""
    spec = CODECS[codec]
    marks = [m.encode(spec["py"]) for m in ("！", "？")]
    cuts = []
    starts = char_boundaries(data, codec)
    for k, i in enumerate(starts):
        nxt = starts[k + 1] if k + 1 < len(starts) else len(data)
        if nxt - i != 2:
            continue
        trail = data[i + 1 : i + 2]
        pair = trail + data[nxt : nxt + 1]
        if len(pair) == 2 and pair in marks:
            if rng.random() < trigger_p:
                cuts.append(i + 1)
        elif random_rate and rng.random() < random_rate:
            cuts.append(i + 1)
    return cuts


def fold_width(text: str) -> str:
    """Full-width ASCII forms to ASCII."""
    return "".join(chr(ord(c) - 0xFEE0) if 0xFF01 <= ord(c) <= 0xFF5E else c for c in text)


def clean_up(text: str, fold: bool) -> str:
    """Strip well-formed tags, drop private-use characters, fold widths if asked."""
    text = _TAG_RE.sub("", text)
    text = "".join(c for c in text if not 0xE000 <= ord(c) <= 0xF8FF)
    return fold_width(text) if fold else text


@dataclass
class Corrupted:
    """A corrupted document, what it should read once repaired, and counts of what was done."""

    text: str
    expected: str
    codec: str
    cuts: int = 0
    annotated: int = 0
    notes: dict = field(default_factory=dict)


def corrupt_document(
    paragraphs: list[str],
    *,
    codec: str = "gbk",
    seed: int = 0,
    pinyin_chars: list[str] | None = None,
    trigger_p: float = 0.85,
    random_rate: float = 0.0,
    fold: bool = True,
) -> Corrupted:
    """Run paragraphs through the whole pipeline; expected is what a perfect repair gives.

    >>> c = corrupt_document(["公司。”他稱他們"], seed=1, trigger_p=1.0)
    >>> c.text, c.expected
    ('公司?!彼Q他們', '公司。”他稱他們')
    """
    rng = random.Random(seed)
    py = CODECS[codec]["py"]
    raw = b"".join(p.encode(py) + b"</p>\n" for p in paragraphs)
    raw = raw[:-1]
    annotated = 0
    if pinyin_chars:
        table = pinyin_table(pinyin_chars, codec)
        before = raw
        raw = strtr_bytes(raw, table)
        annotated = raw.count(b"(") - before.count(b"(")
    cuts = cut_points(raw, codec, rng, trigger_p, random_rate)
    pieces = []
    prev = 0
    for c in cuts:
        pieces.append(raw[prev:c])
        prev = c
    pieces.append(raw[prev:])
    text = clean_up("".join(lossy_decode(p, codec) for p in pieces), fold)
    expected = "\n".join(paragraphs)
    expected = fold_width(expected) if fold else expected
    return Corrupted(text, expected, codec, len(cuts), annotated)


def wrong_codec(text: str, written: str, read_as: str) -> str:
    """text encoded with one codec and decoded with another, as a mislabelled page is
    (undecodable bytes become U+FFFD, as browsers and most libraries do).

    >>> wrong_codec("文字", "utf-8", "gbk")
    '鏂囧瓧'
    """
    return text.encode(written).decode(read_as, errors="replace")


def diff_spans(a: str, b: str) -> list[tuple[int, int, int, int]]:
    """Regions where a and b differ, as (a_start, a_end, b_start, b_end)."""
    from difflib import SequenceMatcher

    sm = SequenceMatcher(None, a, b, autojunk=False)
    return [(i1, i2, j1, j2) for op, i1, i2, j1, j2 in sm.get_opcodes() if op != "equal"]
