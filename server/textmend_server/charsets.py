"""What the codecs are: which Python codec a charset label names, which codecs extend or
resemble which, how common each is, and decoding bytes strictly with one (or its superset).

Shared by decoding (which applies the chosen codec to the whole content) and detection (which
decodes a sample with every candidate to rank them); it imports neither.
"""

from __future__ import annotations

import codecs
import re

# How far into a document its own charset declaration is looked for (`decoding.markup_charset`,
# and the declarations detection blanks for a blind look): the HTML standard asks for
# `<meta charset>` within the first 1024 bytes; 4 KB also finds it on pages that put it later
# (set with candidate scoring, commit 6ed88e7).
DECLARATION_BYTES = 4096

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
FAMILIES: tuple[tuple[str, ...], ...] = (
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
# Each family member's family.
FAMILY_OF = {name: family for family in FAMILIES for name in family}

# The Unicode encodings: what they decode is never mojibake of a legacy code page.
UNICODE = frozenset(
    {"utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"}
)
# The CJK codecs, whose characters take two bytes or more: their readings are judged against
# each other (a CJK reading is only overruled by another CJK reading).
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
# (short texts, where a detector's confidence means little) the more common codec wins. The
# order was set by hand with candidate scoring (commit 6ed88e7); no survey is recorded.
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


# The rank `popularity` gives a codec the list above does not name: after every listed one.
# 40 (not 31, the list's length) is the value set with the list; it enters the priors of
# detection (`langscoring.POPULARITY_NATS`), so the measured figures were taken with it.
UNLISTED_RANK = 40


def popularity(codec: str) -> int:
    """The codec's rank on the web (0 is UTF-8, the most common), `UNLISTED_RANK` when the list
    does not name it; a tie-breaker between readings that score alike.

    >>> popularity("utf-8"), popularity("cp1252"), popularity("cp037")
    (0, 1, 40)
    """
    return _POPULARITY.get(codec, UNLISTED_RANK)


# Every language family's legacy code pages, tried on every document that is not UTF-8, so
# that the reading in the language's own code page is always among those scored even when the
# detector did not name it (windows-125x and their ISO-8859 cousins, the older Baltic
# ISO-8859-4, KOI8, the DOS and Mac Cyrillic pages, and the CJK codecs). Subsets their superset
# decodes the same (ISO-8859-1, GB2312) are left out; ISO-2022-JP joins when the sample holds an
# escape. Not ISO-8859-10 (Nordic, rarely used): with it, a Dutch catalogue whose `×` stands
# between digits read as its `Ũ` at 0.999 (bench/legacy_decoding.py, tune split).
LEGACY_CODECS = (
    "cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258",
    "iso8859-2", "iso8859-4", "iso8859-5", "iso8859-7", "iso8859-8", "iso8859-9", "iso8859-15",
    "koi8-r", "koi8-u", "cp866", "mac_cyrillic",
    "gb18030", "gbk", "big5", "shift_jis", "cp932", "euc_jp", "euc_kr",
)  # fmt: skip


# Python codecs that turn bytes into str but are not character sets a document can be in:
# transfer and escape encodings, a codec that always fails, and `charmap`, Python's machinery
# for table codecs, which without a table reads bytes as Latin-1. A label naming one is as
# unknown as a label naming nothing (`rot13`, `base64` and the like are not text encodings
# at all and are refused by the check below).
NOT_CHARSETS = frozenset(
    {"undefined", "punycode", "idna", "unicode-escape", "raw-unicode-escape", "utf-7", "charmap"}
)


def codec_of(label: str) -> str | None:
    """The Python codec name for a charset label, or None when no charset has that name.

    >>> codec_of(" ISO-8859-1 "), codec_of("x-sjis"), codec_of("EUC-TW"), codec_of("rot13")
    ('iso8859-1', 'shift_jis', None, None)
    >>> codec_of("unicode_escape"), codec_of("punycode"), codec_of("utf-8\\x00")
    (None, None, None)
    >>> codec_of("charmap")  # Python's machinery for table codecs, not a charset
    """
    cleaned = label.strip().strip("\"'").lower()
    try:
        info = codecs.lookup(ALIASES.get(cleaned, cleaned))
    except (LookupError, ValueError):  # (ValueError: a NUL in the name)
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in NOT_CHARSETS:
        return None
    return info.name


# Bytes decoded at a time by `decoded` when content is longer, and how many characters a byte
# the first piece must come to for the rest to be decoded in pieces. Decoding in one call,
# CPython sizes its buffer by the byte count and widens it as wider characters come: tracemalloc
# peaks at 3.0 times the bytes for every text tried (8-14 MB of English with curly quotes,
# English and Chinese, mostly Chinese). In pieces the peak is the pieces and their join, about
# 2 x characters x the widest character's size: 1.8 times the bytes for mostly Chinese UTF-8
# (3 bytes a character), but 3.2-3.7 for English whose quotes make every character 2 bytes.
# For 2-byte characters the two meet at 0.75 characters a byte, so pieces are used below it:
# CJK text, where a 64 MB document's decoding is the largest allocation of its repair.
# 1 MiB, chosen: the cost per piece is lost in a megabyte's decoding.
DECODE_PIECE = 1 << 20
PIECES_BELOW = 0.75


def decoded(content: bytes, codec: str) -> str:
    """content decoded strictly with codec (the same text as `content.decode(codec)`): a piece
    at a time when it is longer than `DECODE_PIECE` and its first piece reads as fewer than
    `PIECES_BELOW` characters a byte, which takes less memory; raises UnicodeDecodeError or
    LookupError as `bytes.decode` does.

    >>> text = "文字 " * 600_000
    >>> decoded(text.encode("utf-8"), "utf-8") == text
    True
    """
    incremental = codecs.lookup(codec).incrementaldecoder  # raises LookupError as decode does
    if len(content) <= DECODE_PIECE or incremental is None:
        return content.decode(codec)
    decoder = incremental()
    view = memoryview(content)
    first = decoder.decode(view[:DECODE_PIECE])
    if len(first) >= PIECES_BELOW * DECODE_PIECE:
        del first  # not held while the whole is decoded
        return content.decode(codec)
    pieces = [first]
    pieces += (
        decoder.decode(view[at : at + DECODE_PIECE])
        for at in range(DECODE_PIECE, len(content), DECODE_PIECE)
    )
    pieces.append(decoder.decode(b"", final=True))
    return "".join(pieces)


def strict(content: bytes, codec: str) -> str | None:
    """content decoded strictly with codec, or None when it does not decode."""
    try:
        return decoded(content, codec)
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
