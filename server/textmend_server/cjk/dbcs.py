"""Byte structure of the double-byte CJK codecs (GBK, Big5, Shift-JIS, EUC-KR), and the lossy
decoder old web stacks used on them.

The lossy decoder is the byte model of the damage: a lead byte at the end of the input gives
`?`; a lead byte followed by a byte below 0x40 gives `?` and swallows that byte (Python's own
codecs keep it, so they cannot reproduce what was seen); pairs in the user-defined areas become
private-use characters, which a later clean-up drops.

Tables are built once per codec, on first use, by decoding every two-byte combination.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache


@dataclass(frozen=True)
class Dbcs:
    """One double-byte codec: which bytes lead, which trail, which stand alone, and its table.

    `pairs` maps a valid two-byte sequence (as an int, lead << 8 | trail) to its character;
    `encode` maps a character back to its bytes; `uda` holds the user-defined-area ranges as
    (lead_lo, lead_hi, trail_lo, trail_hi).
    """

    name: str
    python_codec: str
    trail_ranges: tuple[tuple[int, int], ...]
    uda: tuple[tuple[int, int, int, int], ...]
    # Lead bytes run 0x81-0xFE in GBK, Big5 and EUC-KR; Shift-JIS has two ranges.
    lead_lo: int = 0x81
    lead_hi: int = 0xFE
    singles: tuple[tuple[int, int], ...] = ((0x00, 0x7F),)
    lead_ranges: tuple[tuple[int, int], ...] = ()
    pairs: dict[int, str] = field(default_factory=dict, compare=False, repr=False)
    encode_map: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def is_lead(self, b: int) -> bool:
        """Whether b starts a two-byte character."""
        if self.lead_ranges:
            return any(lo <= b <= hi for lo, hi in self.lead_ranges)
        return self.lead_lo <= b <= self.lead_hi

    def is_trail(self, b: int) -> bool:
        """Whether b may end a two-byte character."""
        return any(lo <= b <= hi for lo, hi in self.trail_ranges)

    def is_single(self, b: int) -> bool:
        """Whether b, in lead position, is a character on its own (ASCII, half-width kana)."""
        return any(lo <= b <= hi for lo, hi in self.singles)

    def in_uda(self, lead: int, trail: int) -> bool:
        """Whether lead, trail lies in a user-defined area (read as a private-use character)."""
        return any(a <= lead <= b and c <= trail <= d for a, b, c, d in self.uda)

    def encode(self, ch: str) -> bytes | None:
        """The bytes of ch in this codec, or None when it has none."""
        hit = self.encode_map.get(ch)
        if hit is not None:
            return hit
        try:
            return ch.encode(self.python_codec)
        except UnicodeEncodeError:
            return None

    def decode_lossy(self, data: bytes) -> str:
        """Decode as the old lossy decoders did (see the module docstring); private-use
        characters are kept here, as U+E000, for the caller to drop.

        >>> codec("gbk").decode_lossy(bytes.fromhex("a1a3a1b1cbfbb751"))
        '。”他稱'
        >>> codec("gbk").decode_lossy(bytes.fromhex("a3a1b1cbfbb751"))
        '！彼\\ue000Q'
        >>> codec("gbk").decode_lossy(bytes.fromhex("a3a1b13c2f703e"))
        '！?/p>'
        """
        out: list[str] = []
        i, n = 0, len(data)
        while i < n:
            b = data[i]
            if self.is_single(b):
                out.append(chr(b) if b < 0x80 else data[i : i + 1].decode(self.python_codec))
                i += 1
                continue
            if not self.is_lead(b) or i + 1 >= n:
                out.append("?")
                i += 1
                continue
            t = data[i + 1]
            if t < 0x40:
                out.append("?")
            else:
                ch = self.pairs.get(b << 8 | t)
                if ch is not None:
                    out.append(ch)
                elif self.in_uda(b, t):
                    out.append("\ue000")
                else:
                    out.append("?")
            i += 2
        return "".join(out)


def _build(spec: Dbcs) -> Dbcs:
    pairs = spec.pairs
    enc = spec.encode_map
    for lead in range(0x80, 0x100):
        if not spec.is_lead(lead):
            continue
        for trail in range(0x40, 0x100):
            if not spec.is_trail(trail):
                continue
            raw = bytes((lead, trail))
            try:
                ch = raw.decode(spec.python_codec)
            except UnicodeDecodeError:
                continue
            if len(ch) != 1 or 0xE000 <= ord(ch) <= 0xF8FF:
                continue
            pairs[lead << 8 | trail] = ch
            enc.setdefault(ch, raw)
    for b in range(0x80, 0x100):
        if spec.is_single(b):
            try:
                enc.setdefault(bytes((b,)).decode(spec.python_codec), bytes((b,)))
            except UnicodeDecodeError:
                pass
    return spec


GBK = Dbcs(
    name="gbk",
    python_codec="gbk",
    trail_ranges=((0x40, 0x7E), (0x80, 0xFE)),
    uda=((0xAA, 0xAF, 0xA1, 0xFE), (0xF8, 0xFE, 0xA1, 0xFE), (0xA1, 0xA7, 0x40, 0xA0)),
)
BIG5 = Dbcs(
    name="big5",
    python_codec="cp950",
    trail_ranges=((0x40, 0x7E), (0xA1, 0xFE)),
    uda=(
        (0xFA, 0xFE, 0x40, 0xFE),
        (0x8E, 0xA0, 0x40, 0xFE),
        (0x81, 0x8D, 0x40, 0xFE),
        (0xC6, 0xC8, 0xA1, 0xFE),
    ),
)
SHIFT_JIS = Dbcs(
    name="shift_jis",
    python_codec="cp932",
    lead_lo=0x81,
    lead_hi=0xFC,
    lead_ranges=((0x81, 0x9F), (0xE0, 0xFC)),
    trail_ranges=((0x40, 0x7E), (0x80, 0xFC)),
    uda=((0xF0, 0xF9, 0x40, 0xFC),),
    singles=((0x00, 0x7F), (0xA1, 0xDF)),
)
EUC_KR = Dbcs(
    name="euc_kr",
    python_codec="cp949",
    trail_ranges=((0x41, 0x5A), (0x61, 0x7A), (0x81, 0xFE)),
    uda=((0xC9, 0xC9, 0xA1, 0xFE), (0xFE, 0xFE, 0xA1, 0xFE)),
)

_SPECS = {s.name: s for s in (GBK, BIG5, SHIFT_JIS, EUC_KR)}


@cache
def codec(name: str) -> Dbcs:
    """The codec called name ('gbk', 'big5', 'shift_jis', 'euc_kr'), its tables built once."""
    return _build(_SPECS[name])
