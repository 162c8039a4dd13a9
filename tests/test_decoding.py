"""Decoding: BOM, then the declared charset if the bytes agree, then detection; no byte lost."""

from __future__ import annotations

import codecs
import json
import random

import pytest
from documents import REAL

from textmend_server import repair_bytes
from textmend_server.decoding import EncodingSource, codec_name, decode, sniff_binary
from textmend_server.errors import BinaryContentError, EmptyContentError, UnknownEncodingError

GERMAN = "Größere Straßen führen über die Brücke, sagte der Bürgermeister."
CHINESE = "公司的人都說他們很好。這是一個測試，看看編碼能不能被正確識別出來。" * 2
# Each Unicode encoding with the byte order mark that announces it.
BOMS = [
    ("utf-8", codecs.BOM_UTF8),
    ("utf-16-le", codecs.BOM_UTF16_LE),
    ("utf-16-be", codecs.BOM_UTF16_BE),
    ("utf-32-le", codecs.BOM_UTF32_LE),
    ("utf-32-be", codecs.BOM_UTF32_BE),
]


@pytest.mark.parametrize(("codec", "bom"), BOMS)
def test_bom_decides_and_is_not_part_of_the_text(codec: str, bom: bytes) -> None:
    decoded = decode(bom + GERMAN.encode(codec), declared="iso-8859-1")
    assert decoded.text == GERMAN
    assert decoded.encoding == codec
    assert decoded.source is EncodingSource.BOM


def test_utf16_without_bom_is_recognised() -> None:
    decoded = decode("plain ASCII text in UTF-16".encode("utf-16-le"))
    assert decoded.text == "plain ASCII text in UTF-16"
    assert decoded.encoding == "utf-16-le"


def _real_cjk_texts() -> list[pytest.param]:
    """The vendored real documents in Chinese and Japanese, as text."""
    manifest = json.loads((REAL / "manifest.json").read_text(encoding="utf-8"))
    return [
        pytest.param((REAL / "files" / e["path"]).read_text(encoding="utf-8"), id=e["path"])
        for e in manifest
        if e["language"].split("-")[0] in ("ja", "zh")
    ]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("text", _real_cjk_texts())
def test_utf16_of_cjk_text_without_bom_is_recognised(codec: str, text: str) -> None:
    # Few of its characters are ASCII, so few high bytes are NUL: it was refused as binary.
    decoded = decode(text.encode(codec))
    assert decoded.text == text
    assert decoded.encoding == codec


def test_16_bit_numbers_with_nul_high_bytes_are_not_utf16() -> None:
    # NUL bytes in one position of two, as BOM-less UTF-16 has them, but the other bytes are
    # binary: they decode to controls, surrogates and private use.
    rng = random.Random(7)
    content = bytes(
        b for _ in range(2000) for b in (rng.randrange(256), rng.choice((0, 0xD8, 0xE0)))
    )
    with pytest.raises(BinaryContentError):
        decode(content)


def test_declared_charset_is_kept_when_the_bytes_agree() -> None:
    # Short single-byte text: detection alone cannot know it is windows-1252.
    decoded = decode("Café crème, déjà vu.".encode("cp1252"), declared="windows-1252")
    assert decoded.text == "Café crème, déjà vu."
    assert decoded.source is EncodingSource.DECLARED
    assert decoded.overruled is None


def test_latin1_declared_on_utf8_is_overruled() -> None:
    decoded = decode(GERMAN.encode("utf-8"), declared="ISO-8859-1")
    assert decoded.text == GERMAN
    assert decoded.encoding == "utf-8"
    assert decoded.source is EncodingSource.DETECTED
    assert decoded.overruled and "UTF-8" in decoded.overruled


@pytest.mark.parametrize("label", ["utf-16", "UTF-16LE", "utf-16-be"])
@pytest.mark.parametrize("text", ["Hello world, a plain sentence.\n", GERMAN])
def test_utf16_declared_on_utf8_is_overruled(label: str, text: str) -> None:
    # Any even number of bytes decodes as UTF-16: the label alone turned ASCII into `效汬`.
    content = text.encode("utf-8")
    content += b" " * (len(content) % 2)
    decoded = decode(content, declared=label)
    assert decoded.text == content.decode("utf-8")
    assert decoded.overruled and "NUL" in decoded.overruled


@pytest.mark.parametrize("text", ["Hello world, a plain sentence.\n", GERMAN, CHINESE])
def test_utf16_declared_on_utf16_is_kept(text: str) -> None:
    decoded = decode(text.encode("utf-16-le"), declared="utf-16-le")
    assert decoded.text == text
    assert decoded.overruled is None


def test_latin1_declared_on_gbk_is_overruled() -> None:
    decoded = decode(CHINESE.encode("gbk"), declared="latin-1")
    assert decoded.text == CHINESE
    assert decoded.encoding in ("gb18030", "gbk", "gb2312")
    assert decoded.overruled


def test_utf8_declared_on_cp1252_is_overruled() -> None:
    decoded = decode("“Smart” quotes – and more…".encode("cp1252"), declared="utf-8")
    assert decoded.text == "“Smart” quotes – and more…"
    assert decoded.encoding == "cp1252"
    assert decoded.overruled == "the bytes are not valid utf-8"


def test_latin1_with_windows_1252_bytes_reports_the_superset() -> None:
    decoded = decode("It’s “quoted”".encode("cp1252"), declared="iso-8859-1")
    assert decoded.text == "It’s “quoted”"
    assert decoded.encoding == "cp1252"


def test_damaged_utf8_keeps_every_other_character_and_reports_the_bad_byte() -> None:
    content = "Grüße aus Köln".encode() + b"\xff" + " und schöne Größe".encode()
    decoded = decode(content)
    assert decoded.text == "Grüße aus Köln\ufffd und schöne Größe"
    assert decoded.encoding == "utf-8"
    bad = content.index(b"\xff")
    assert decoded.undecodable == [(14, bad, bad + 1)]


def test_labels_browsers_know_are_accepted() -> None:
    assert codec_name("x-sjis") == "shift_jis"
    assert codec_name(" 'UTF8' ") == "utf-8"
    with pytest.raises(UnknownEncodingError, match="x-klingon"):
        codec_name("x-klingon")


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
        b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 40,
        bytes(range(32)) * 20,
    ],
)
def test_binary_content_is_refused_with_its_kind(content: bytes) -> None:
    assert sniff_binary(content) is not None
    with pytest.raises(BinaryContentError, match="binary file"):
        decode(content)


def test_empty_content_is_refused() -> None:
    with pytest.raises(EmptyContentError, match="empty"):
        decode(b"")


@pytest.mark.parametrize(("codec", "bom"), BOMS)
def test_a_removed_bom_is_named(codec: str, bom: bytes) -> None:
    decoded = decode(bom + GERMAN.encode(codec))
    assert decoded.text == GERMAN
    assert decoded.bom_removed == codec


def test_no_bom_no_bom_removed() -> None:
    assert decode(GERMAN.encode("utf-8")).bom_removed is None
    assert decode(GERMAN.encode("cp1252")).bom_removed is None


def test_control_bytes_are_counted_as_the_pattern_finds_them() -> None:
    """`sniff_binary` counts control bytes by deleting every other byte; the count is the
    number of `_CONTROL_BYTES` matches, for every byte value and for a head near the limit."""
    from textmend_server.decoding import _CONTROL_BYTES, _NOT_CONTROL_BYTES

    every = bytes(range(256)) * 3
    assert len(every.translate(None, _NOT_CONTROL_BYTES)) == len(_CONTROL_BYTES.findall(every))
    text = b"plain text\n" * 80
    assert sniff_binary(text + b"\x01" * 8) is None
    assert sniff_binary(text + b"\x01" * 100) == "data with many control bytes"


@pytest.mark.parametrize(
    "codec", ["utf-8", "gb18030", "big5", "shift_jis", "euc-kr", "utf-16", "iso2022_jp", "cp1252"]
)
def test_a_long_document_decodes_in_pieces_to_the_same_text(codec: str) -> None:
    """Decoding a document longer than `DECODE_PIECE` a piece at a time gives exactly what
    one call gives, characters cut by a piece's end included (the text is offset by one
    byte per repetition so that every cut falls at a different place in a character), and
    fails where one call fails."""
    from textmend_server.charsets import DECODE_PIECE, decoded, strict

    unit = (
        "Grüße, 字符 and テキスト, 한국어 — “quoted” text. " if codec != "cp1252" else "café “x” "
    )
    unit = "".join(ch for ch in unit if ch.encode(codec, "ignore"))
    text = "".join(unit + "x" * (n % 3) for n in range(3 * DECODE_PIECE // len(unit)))
    content = text.encode(codec)
    assert len(content) > 2 * DECODE_PIECE
    assert decoded(content, codec) == content.decode(codec) == text
    if codec in ("utf-8", "shift_jis"):
        broken = content[: DECODE_PIECE + 7] + b"\xff" + content[DECODE_PIECE + 7 :]
        assert strict(broken, codec) is None


@pytest.mark.parametrize(
    ("unit", "bound"),
    [
        ("中文的句子，很长的一段文字。English.\n", 2.0),
        ("An English sentence, “quoted” and plain, of the article.\n", 3.1),
    ],
    ids=["mostly chinese", "english"],
)
def test_a_long_document_is_decoded_in_little_more_than_its_text(unit: str, bound: float) -> None:
    """What decoding 8 MB or more of UTF-8 allocates above its bytes, text included
    (tracemalloc's peak, as a multiple of the bytes): under twice for mostly Chinese text,
    decoded in pieces, where one call peaked at 3 times; English, decoded in one call since
    pieces would take more, stays at about 3."""
    import tracemalloc

    content = (unit * (8_000_000 // len(unit.encode()) + 1)).encode()
    tracemalloc.start()
    try:
        text = decode(content).text
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert text[: len(unit)] == unit
    assert peak < bound * len(content), peak / len(content)


@pytest.mark.parametrize(
    ("content", "damaged"),
    [
        # A curly quote that lost its last byte, three times, beside one good `é`.
        (
            b"The quick brown fox \xe2\x80 jumps over \xe2\x80 the dog \xe2\x80 again. caf\xc3\xa9",
            3,
        ),
        # Overlong forms of `/`.
        (b"The quick brown fox \xc0\xaf jumps over \xc0\xaf the dog \xc0\xaf again.", 3),
        # Lone surrogates as Java's and JavaScript's encoders write them (CESU-8, WTF-8).
        (b"hello \xed\xa0\x80 world, a plain English sentence.", 1),
    ],
)
def test_text_whose_only_bad_bytes_are_utf8_gone_wrong_stays_utf8_in_doubt(
    content: bytes, damaged: int
) -> None:
    """Too few good characters to call it UTF-8 at heart, but no legacy code page writes only
    what UTF-8 looks like when it goes wrong: read as GB18030, Shift-JIS or cp1252 these were
    `caf茅`, `ﾀｯ` and `í\xa0€`, verdict clean. Read as UTF-8 in doubt, every bad byte is
    reported and nothing is rewritten."""
    result = repair_bytes(content)
    assert result.decoded is not None and result.decoded.encoding == "utf-8"
    assert result.decoded.confidence < 0.9 and result.verdict.value != "clean"
    assert result.edits == []
    bad = [f for f in result.findings if f.category.value == "undecodable"]
    assert len({f.original for f in bad}) == 1 and len(bad) >= damaged
    kept = content.decode("utf-8", "replace")
    assert result.text == kept


def test_a_legacy_text_is_not_taken_for_utf8_gone_wrong() -> None:
    """Latin-1's letters stand alone among ASCII and GBK's pair a lead with a byte that is no
    continuation: neither is UTF-8 gone wrong, and each is still read in its code page."""
    for text, codec in (("Un café très léger, déjà prêt.", "latin-1"), ("中文编码的问题", "gbk")):
        assert repair_bytes(text.encode(codec)).text == text


def test_random_high_bytes_are_read_in_doubt_and_left_alone() -> None:
    """No code page reads random bytes above 0x7F as text; the least unlike text of them
    (EBCDIC here) was chosen at confidence 1.0 and its "mojibake" repaired."""
    from textmend_server.detection import GARBAGE_CONFIDENCE

    rng = random.Random(1)
    content = bytes(rng.randrange(0x80, 0x100) for _ in range(200))
    result = repair_bytes(content)
    assert result.decoded is not None
    assert result.decoded.confidence <= GARBAGE_CONFIDENCE
    assert result.edits == [] and result.verdict.value == "suspect"


def test_one_latin1_letter_in_a_utf8_changelog_is_damage_not_the_encoding() -> None:
    """bash's changelog credits eleven people in UTF-8 and one in Latin-1 (`O\\xc4uz`, on a
    long line): the line's one bad byte is the damage, listed as undecodable. Counted as the
    whole line, it outweighed the good characters and the file was read as Mac Roman, every
    name in it turned to mojibake (`Vel√°zquez`)."""
    lines = [
        "\t  Report and fix from Marc Aurèle La France <tsi@tuyoix.net>",
        "\t  Lawrence Velázquez <vq@larryv.me>,",
        "\t  with incremental searches. Reported by Vandrus Zoltán",
        "\t  From a report by Léa Gris <lea.gris@noiraude.net>",
    ]
    content = "\n".join(lines).encode("utf-8") + (
        b"\n\t  jobs to wait for. Report and fix from O\xc4uz <oguzismailuysal@gmail.com>\n"
    )
    repaired = repair_bytes(content, include_diff=False)
    assert repaired.decoded.encoding == "utf-8"
    assert repaired.text.startswith("\n".join(lines))
    assert "O\ufffduz" in repaired.text
    assert [f.category.value for f in repaired.findings] == ["undecodable"]
    # The finding names the byte: a lead byte whose sequence was cut (0xc4), not a Latin-1
    # letter (0xf6 would be `ö`).
    assert "(0xc4) is not valid utf-8" in repaired.findings[0].reason


def test_a_file_in_emacs_utf8_is_read_as_utf8_with_its_extra_characters_undecodable() -> None:
    """Emacs's Tibetan table (`coding: utf-8-emacs`) writes glyphs beyond Unicode in four
    bytes (`\\xf6\\x90\\x80\\x80`) among Tibetan in UTF-8: a damaged character every few good ones
    for Python, over the ratio a document that does not say it is UTF-8 is held to. Read as
    cp1256, every Tibetan letter became Arabic mojibake; read as the UTF-8 it declares, the
    glyphs beyond Unicode are listed undecodable and the rest reads right."""
    head = b";;; tibetan.el --- support for Tibetan language -*- coding: utf-8-emacs; -*-\n"
    rows = [
        b";;;2120 // \xf6\x90\x80\x80 \xf6\x90\x80\x81 \xf6\x90\x80\x82 \xf6\x90\x80\x83 ; glyphs",
        b";;;2130 \xe0\xbc\x80 \xe0\xbc\x81 \xe0\xbc\x82 \xe0\xbc\x83 \xe0\xbc\x84 ; Punctuation",
        b";;;2220 // \xe0\xbd\x80 \xe0\xbd\x81 \xf6\x90\x81\xa6 \xe0\xbd\x89 ; Base consonants",
        b";;;2240 \xe0\xbd\x9f \xe0\xbd\xa0 \xf6\x90\x82\x89 \xf6\x90\x82\x8a ; Vowel signs.",
    ]
    repaired = repair_bytes(head + b"\n".join(rows) + b"\n", include_diff=False)
    assert repaired.decoded.encoding == "utf-8"
    assert "ༀ ༁ ༂ ༃ ༄" in repaired.text and "ཀ ཁ " + "\ufffd" * 4 + " ཉ" in repaired.text
    assert {f.category.value for f in repaired.findings} == {"undecodable"}


@pytest.mark.parametrize(
    ("codec", "letters"),
    [("cp1250", "Ćć Ęę Łł Ńń Óó Śś Źź Żż Ąą"), ("cp1252", "Àà Áá Ââ Ææ Çç Èè Ïï Ðð Ññ Õõ")],
)
def test_a_subtitle_of_letter_pairs_is_decoded_in_doubt(codec: str, letters: str) -> None:
    """A player's test subtitle shows its code page's letters in pairs, cue after cue: no
    words for a language model to read. Its decoding is in doubt (and nothing is rewritten),
    whichever code page the models favour; such files were read as Mac Cyrillic or cp1006 at
    1.0."""
    cue = "{n}\n00:00:0{n},000 --> 00:00:0{n},500\n[{codec}] {n}.0: {letters}\n\n"
    cues = "".join(cue.format(n=n, codec=codec, letters=letters) for n in range(1, 6))
    repaired = repair_bytes(cues.encode(codec))
    assert repaired.decoded is not None
    assert repaired.decoded.confidence <= 0.5
    assert repaired.edits == []


@pytest.mark.parametrize(
    "text",
    [
        "Новости дня.\n",
        "Ειδήσεις της ημέρας.\n",
        "أخبار اليوم.\n",
        "חדשות היום.\n",
        # `가` (U+AC00) and `一` (U+4E00) put NULs in the letters' byte position too.
        "가족이 가게에 갔다. 2024년 1월 1일 가을.\n",
        "今天是2024年1月1日，我们去了北京的一家书店。\n",
    ],
)
@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_of_other_scripts_without_bom_is_text_not_binary(text: str, codec: str) -> None:
    """UTF-16 of Cyrillic, Greek, Arabic or Hebrew has no NUL in its letters' high bytes, which
    are 0x03-0x06: not control bytes of a binary file. Korean and Chinese have some in their
    letters' low bytes, and far more in the ASCII characters' high bytes."""
    repaired = repair_bytes((text * 3).encode(codec))
    assert repaired.decoded is not None and repaired.decoded.encoding == codec
    assert repaired.text == text * 3


@pytest.mark.parametrize(
    "text",
    [
        # Japanese postal addresses, kanji alone (as SKK's zip-code dictionary lists them).
        "5010813 /岐阜県揖斐郡揖斐川町山手/\n",
        "9591733 /新潟県燕市安田/\n9591734 /新潟県燕市大関/\n9591871 /新潟県燕市白山/\n",
    ],
)
def test_japanese_in_kanji_alone_is_read_as_japanese(text: str) -> None:
    """Without kana, the text looks Chinese to the choice of character model, and under the
    Chinese model its Japanese forms (県) cost more than gibberish the same EUC-JP bytes make
    as GB18030 (`呆伸俯同儒反同儒李漠怀缄`): such text is read under both models."""
    decoded = decode(text.encode("euc_jp"))
    assert decoded.encoding == "euc_jp" and decoded.text == text


def test_chinese_in_hanzi_alone_is_still_read_as_chinese() -> None:
    text = "新华社北京一月十九日电国家主席江泽民今天下午在中南海会见了美国客人\n"
    for codec in ("gb18030", "gbk"):
        decoded = decode(text.encode(codec))
        assert decoded.text == text, codec


def test_nroff_output_with_its_overstrikes_is_text_not_binary() -> None:
    """postfix's READMEs are nroff's terminal output: every bold letter struck over itself
    (`G\\bG`) and every underlined one over `_`, a backspace in one byte of ten, which the
    binary check counted as data. The text comes back as it was, its overstrikes reported."""
    line = "".join(f"{c}\b{c}" for c in "Guidelines") + " for " + "".join(f"_\b{c}" for c in "use")
    content = (line + "\n\nThis document has hints and tips.\n").encode() * 20
    assert sniff_binary(content) is None
    result = repair_bytes(content)
    assert result.text == content.decode() and not result.edits
    assert result.findings
    # Backspaces that strike nothing over anything are still data.
    assert sniff_binary(b"ab\x08\x08\x01cd\x08\x02" * 50) == "data with many control bytes"
