"""Encoding detection: candidates, declared-vs-detected arbitration, decode-quality scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textmend_server import langmodel
from textmend_server.charsets import widen
from textmend_server.decoding import EncodingSource, decode, markup_charset, sample_of
from textmend_server.detection import rank_codecs
from textmend_server.plausibility import foreign_words, implausibility

SIMPLIFIED = "我们公司的人都说他们很好。这是一个测试，看看编码能不能被正确识别出来。" * 3
FRENCH = "Le cœur déçu mais l'âme plutôt naïve, Louÿs rêva d'un été à Noël."


def test_big5_declared_on_gbk_is_overruled() -> None:
    decoded = decode(SIMPLIFIED.encode("gbk"), declared="big5")
    assert decoded.text == SIMPLIFIED
    assert decoded.encoding in ("gbk", "gb18030", "gb2312")
    assert decoded.overruled


def test_gbk_declared_on_gbk_is_kept() -> None:
    decoded = decode(SIMPLIFIED.encode("gbk"), declared="gbk")
    assert decoded.text == SIMPLIFIED
    assert decoded.source is EncodingSource.DECLARED
    assert decoded.overruled is None


def test_declared_cp1252_is_kept_on_short_text() -> None:
    content = "Café déjà vu".encode("cp1252")
    alone = decode(content)
    # chardet alone calls this ISO-8859-4 or the like; the language models read French.
    assert alone.text == "Café déjà vu"
    decoded = decode(content, declared="windows-1252")
    assert decoded.text == "Café déjà vu"
    assert decoded.source is EncodingSource.DECLARED


def test_declared_koi8r_is_kept_on_short_russian() -> None:
    text = "Привет, мир"
    decoded = decode(text.encode("koi8-r"), declared="koi8-r")
    assert decoded.text == text
    assert decoded.overruled is None


def test_every_candidate_is_reported_with_a_score_and_the_chosen_one_first() -> None:
    decoded = decode(SIMPLIFIED.encode("gbk"), declared="latin-1")
    names = [c.name for c in decoded.candidates]
    assert decoded.candidates[0].chosen and decoded.candidates[0].name == decoded.encoding
    assert sum(c.chosen for c in decoded.candidates) == 1
    assert "cp1252" in names or "iso8859-1" in names
    for c in decoded.candidates:
        assert 0.0 <= c.quality <= 1.0
        assert c.decodes or c.quality == 0.0
    latin = next(c for c in decoded.candidates if c.name in ("cp1252", "iso8859-1"))
    assert latin.implausibility > decoded.candidates[0].implausibility


@pytest.mark.parametrize(
    ("text", "label", "superset"),
    [
        ("第①号", "shift_jis", "cp932"),
        ("가나다 똠방각하", "euc-kr", "cp949"),
        ("It’s “quoted”", "iso-8859-1", "cp1252"),
        ("中文 䶮", "gb2312", "gb18030"),
    ],
)
def test_a_superset_is_reported_when_the_bytes_need_it(
    text: str, label: str, superset: str
) -> None:
    decoded = decode(text.encode(superset), declared=label)
    assert decoded.text == text
    assert decoded.encoding == superset


def test_xml_declaration_is_a_candidate_and_wins_when_the_bytes_agree() -> None:
    body = "<?xml version='1.0' encoding='koi8-r'?><t>Съешь ещё этих булок</t>"
    decoded = decode(body.encode("koi8-r"))
    assert decoded.text == body
    assert decoded.encoding == "koi8-r"
    assert decoded.source is EncodingSource.MARKUP


def test_a_wrong_xml_declaration_is_not_believed() -> None:
    body = "<?xml version='1.0' encoding='iso-8859-1'?><t>" + SIMPLIFIED + "</t>"
    decoded = decode(body.encode("gbk"))
    assert decoded.text == body


def test_meta_charset_counts_only_for_html() -> None:
    page = b'<html><head><meta charset="gb2312"></head><body>plain</body></html>'
    assert markup_charset(page, html=True) == "gb2312"
    assert markup_charset(page) is None
    assert decode(page, html=True).encoding == "gb2312"
    assert decode(page).encoding in ("ascii", "utf-8")


def test_utf8_document_with_a_legacy_paragraph_is_decoded_per_region() -> None:
    head = "Intro – “quoted” in UTF-8, naïve café.\n"
    tail = "Outro: Grüße aus Köln.\n"
    content = head.encode() + (FRENCH + "\n").encode("cp1252") + tail.encode()
    decoded = decode(content)
    assert decoded.text == head + FRENCH + "\n" + tail
    assert decoded.encoding == "utf-8"
    assert [r.encoding for r in decoded.regions] == ["utf-8", "cp1252", "utf-8"]
    middle = decoded.regions[1]
    assert decoded.text[middle.char_start : middle.char_end] == FRENCH + "\n"
    assert content[middle.byte_start : middle.byte_end] == (FRENCH + "\n").encode("cp1252")
    assert decoded.undecodable == []


def test_a_single_bad_byte_in_utf8_is_damage_not_a_region() -> None:
    content = "Grüße aus Köln".encode() + b"\xff" + " und schöne Größe".encode()
    decoded = decode(content)
    assert decoded.regions == []
    assert "\ufffd" in decoded.text


def test_iso2022_kr_is_text_not_binary() -> None:
    text = "한국어 텍스트입니다"
    decoded = decode(text.encode("iso2022_kr"))
    assert decoded.text == text


def test_scoring_prefers_the_reading_that_reads_like_text() -> None:
    assert implausibility("Daniel Blanchard’s") < implausibility("Daniel BlanchardÕs")
    assert implausibility("naïve café") < implausibility("naÃ¯ve cafÃ©")
    assert implausibility("Привет мир") < implausibility("ðÒÉ×ÅÔ ÍÉÒ")
    assert foreign_words("plain ascii only") == ""


def test_choose_keeps_the_detector_favourite_unless_another_reads_clearly_better() -> None:
    content = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 4
    choice = rank_codecs(content.encode("cp1251")).best
    assert choice is not None
    assert choice.name == "cp1251"
    assert choice.text == content


def test_sample_never_splits_a_multibyte_character() -> None:
    content = ("中文" * 40000).encode("gbk") + b"\n" + ("中文" * 10).encode("gbk")
    assert widen(sample_of(content), "gbk") is not None


def test_widen_falls_back_to_the_superset_only_when_needed() -> None:
    assert widen(b"abc", "iso8859-1") == ("abc", "iso8859-1")
    assert widen(b"\x93x\x94", "iso8859-1") == ("“x”", "cp1252")


# --- real text in legacy code pages (tests/fixtures/legacy/SOURCES.md) ----------------------

_SNIPPETS = json.loads(
    (Path(__file__).parent / "fixtures" / "legacy" / "snippets.json").read_text("utf-8")
)


@pytest.mark.parametrize("name", sorted(k for k, v in _SNIPPETS.items() if not v.get("ambiguous")))
def test_real_text_in_its_legacy_code_page_decodes_to_itself(name: str) -> None:
    # Portuguese cp1252 (once read as cp1257: `áticas` → `įticas`), Polish and Czech cp1250,
    # Spanish cp1252 (once cp437), Ukrainian cp1251 (once ISO-8859-5), Russian KOI8-R,
    # Japanese EUC-JP (once mac-latin2 / EUC-KR), Chinese GB18030, Hebrew windows-1255,
    # Italian `è` (once read as Russian `и`), German `ß` (which wordfreq spells `ss`).
    snippet = _SNIPPETS[name]
    decoded = decode(snippet["text"].encode(snippet["codec"]))
    assert decoded.text == snippet["text"], (name, decoded.encoding, decoded.alternatives)
    assert decoded.confidence >= 0.9
    assert not decoded.in_doubt


@pytest.mark.parametrize(
    ("name", "wrong"),
    [("ru-ls", "cp1252"), ("he-mo", "cp1252"), ("zh-ls", "iso8859-15"), ("ja-ls", "iso8859-15")],
)
def test_a_whole_legacy_file_is_not_read_as_a_western_code_page(name: str, wrong: str) -> None:
    # iconv-converted man pages and catalogues were read this way with confidence 0.97-1.00.
    snippet = _SNIPPETS[name]
    decoded = decode(snippet["text"].encode(snippet["codec"]))
    assert decoded.encoding != wrong
    assert decoded.language in ("ru", "he", "zh", "ja")


def test_a_table_of_characters_is_decoded_in_doubt() -> None:
    # A man page listing ISO 8859-1's characters one by one reads alike in many code pages:
    # whatever is chosen must say it may be wrong, and name the other readings.
    snippet = _SNIPPETS["charset-table"]
    decoded = decode(snippet["text"].encode(snippet["codec"]))
    assert decoded.in_doubt and decoded.confidence <= 0.5
    assert decoded.alternatives


def test_a_short_stretch_of_chinese_is_read_as_chinese() -> None:
    # A 200-byte GB18030 piece of a man page was once read as EUC-KR.
    text = _SNIPPETS["zh-ls"]["text"]
    piece = text[text.index("\u3002") - 60 :][:90]
    content = piece.encode("gb18030")[:200]
    piece = content.decode("gb18030", "ignore")
    assert decode(piece.encode("gb18030")).text == piece


def test_katakana_lists_are_read_as_japanese() -> None:
    # Lists of katakana words were once read as cp775 / cp866.
    words = "ファイル ディレクトリ オプション パターン フォーマット"
    for codec in ("shift_jis", "euc_jp"):
        assert decode(words.encode(codec)).text == words


# --- calibration ---------------------------------------------------------------------------


def test_an_ambiguous_reading_is_in_doubt_with_its_alternatives() -> None:
    # One byte between format specifiers: `×` in windows-1252, `в` in KOI8-R, and more.
    decoded = decode("Dimensioni non valide: %d×%d".encode("cp1252"))
    assert decoded.in_doubt
    assert decoded.confidence < 0.9
    assert decoded.alternatives
    assert all(0.0 < p < 1.0 for _, p in decoded.alternatives)


def test_a_language_no_model_reads_is_decoded_as_the_detector_reads_it_in_doubt() -> None:
    # Maltese: no letter-pair model reads it (Esperanto, read the same way before it had one,
    # had its `ĉ` read as windows-1257's `ę` at 1.0). chardet, which knows the language, reads
    # it right: its reading is kept, in doubt.
    snippet = _SNIPPETS["mt-iso-codes"]
    decoded = decode(snippet["text"].encode(snippet["codec"]))
    assert decoded.text == snippet["text"], (decoded.encoding, decoded.alternatives)
    assert decoded.in_doubt and decoded.alternatives
    assert decoded.language == "mt"


@pytest.mark.parametrize(
    ("name", "lang"),
    [
        ("et-sed", "et"),
        ("sq-shadow", "sq"),
        ("af-coreutils", "af"),
        ("eo-sed", "eo"),
        ("tk-gtk20", "tk"),
    ],
)
def test_a_language_modelled_from_a_word_list_is_read_as_itself(name: str, lang: str) -> None:
    # Estonian, Albanian, Afrikaans, Esperanto and Turkmen have no wordfreq list; their letter
    # pairs come from spelling dictionaries or catalogues (langmodel.WORD_LIST_TABLE). Without
    # them Albanian windows-1252 read as windows-1257 (`një` → `njė`) at 1.0, Afrikaans `lêer`
    # as windows-1250's `lęer`, Turkmen windows-1250 `ý` as windows-1254's `ı`, and Estonian and
    # Esperanto were left to chardet, in doubt.
    snippet = _SNIPPETS[name]
    decoded = decode(snippet["text"].encode(snippet["codec"]))
    assert decoded.text == snippet["text"], (decoded.encoding, decoded.alternatives)
    assert decoded.language == lang


def test_a_mark_opening_a_word_is_priced_unless_it_is_an_elision() -> None:
    # Afrikaans' article `’n` opens a word in every sentence; Mac Roman reads its byte as `í`.
    # A superscript digit opening a word is what windows-1252 makes of ISO-8859-4's `š`.
    sentence = "’n Man is met ’n windbuks geskiet toe hy na ’n aand uit huis toe gestap het."
    mac_roman = sentence.encode("cp1252").decode("mac-roman")  # `ín Man is met ín windbuks`
    assert langmodel.cost(sentence).cost + 10 < langmodel.cost(mac_roman).cost
    assert langmodel.cost("sümmeetrilise šifri").cost < langmodel.cost("sümmeetrilise ¹ifri").cost
    # Still priced: a closing quote opening a longer word (ISO-8859-7's reading of `Ά`).
    assert langmodel.cost("’κυρο").cost > langmodel.cost("Άκυρο").cost


def test_a_language_no_model_reads_does_not_overrule_the_models_on_punctuation() -> None:
    # chardet reads this stretch of a Dutch page as Estonian in cp775, where its quotation
    # marks and no-break space are letters (`ParagraafĀ9.1.1, ōThe systemd init systemö`).
    snippet = _SNIPPETS["nl-handbook"]
    decoded = decode(snippet["text"].encode(snippet["codec"]))
    assert decoded.text == snippet["text"], decoded.encoding


def test_a_reading_is_named_by_its_common_code_page_not_a_rare_one_giving_the_same_text() -> None:
    # Slovene in ISO-8859-2 reads the same in ISO-8859-4: named by the rarer page, the reading
    # took its prior, and a 200-byte stretch of a catalogue was read as windows-1257.
    text = "Čakam v zanki na spremembo časa. Opozorilo: število inodov preveliko. Razširjena.\n"
    assert decode(text.encode("iso8859-2")).encoding == "iso8859-2"


def test_utf8_names_a_reading_every_code_page_gives_alike() -> None:
    # A log of ASCII and terminal escapes (a lexer's test of error lists) reads the same in
    # every code page: UTF-8 names it, not windows-1252, as a family's first member would.
    from textmend_server.detection import Candidate, Source, _name_rank

    def rank(name: str, position: int) -> tuple:
        return _name_rank(Candidate(name, name, Source.LEGACY, 0.0, True, 0.0), position)

    assert rank("utf-8", 5) < rank("cp1252", 0) < rank("iso8859-4", 1)
    assert rank("iso8859-2", 3) < rank("iso8859-4", 1)


def test_a_clear_reading_is_not_in_doubt() -> None:
    text = _SNIPPETS["pl-look"]["text"]
    decoded = decode(text.encode("cp1250"))
    assert not decoded.in_doubt and decoded.confidence >= 0.9 and decoded.language == "pl"


def test_a_declared_charset_is_never_in_doubt() -> None:
    decoded = decode("%d×%d".encode("cp1252"), declared="windows-1252")
    assert decoded.source is EncodingSource.DECLARED and not decoded.in_doubt


def test_utf8_and_ascii_skip_the_language_models() -> None:
    for content in (b"plain ASCII text", "Grüße, привет, 你好".encode()):
        decoded = decode(content)
        assert decoded.confidence >= 0.99 and not decoded.in_doubt and not decoded.alternatives
        assert len(decoded.candidates) == 1


# A kana-to-kanji dictionary's entries (the form of Canna's `.ctd` files) and a Korean keyboard
# table: EUC-KR reads the hiragana row of EUC-JP as jamo, archaic ones for `の`, `ん`, `る`.
KANA_DICTIONARY = (
    "きりがな #KY きりがな\nっけ #kke @\nうち #KN @\nこと #KN @\nもの #KN @\n"
    "られる #T35 @\nのみ #KJ @\nんだ #KN @\n"
)
KEYBOARD_JAMO = "".join(
    f"{jamo} {key}\n"
    for jamo, key in zip(
        "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎㅏㅐㅑㅓㅔㅕㅗㅛㅜㅠㅡㅣ",
        "rRseEfaqQtTdwWczxvgkoijpuhynbml",
        strict=True,
    )
)


def test_a_kana_dictionary_in_euc_jp_is_not_read_as_korean_jamo() -> None:
    decoded = decode(KANA_DICTIONARY.encode("euc_jp"))
    assert decoded.text == KANA_DICTIONARY


def test_a_table_of_modern_jamo_in_euc_kr_stays_korean() -> None:
    decoded = decode(KEYBOARD_JAMO.encode("euc_kr"))
    assert decoded.text == KEYBOARD_JAMO


# Text files that declare their coding the way their editors and tools read it.
DECLARING_FILES = [
    (';;; skk-x.el -*- coding: euc-japan -*-\n(defvar skk-x-regexp "[ぁ-ん]")\n', "euc_jp"),
    ("% -*- coding: sjis -*-\n\\def\\contentsname{目次}\n\\def\\listfigurename{図目次}\n", "cp932"),
    ('# -*- coding: euc-kr -*-\nrings = ["├" "└" "│"]\n', "euc_kr"),
    ("x = 1\n# vim: set fileencoding=koi8-r :\n# Привет\n", "koi8_r"),
]


@pytest.mark.parametrize(("text", "codec"), DECLARING_FILES)
def test_a_text_files_own_coding_declaration_is_read(text: str, codec: str) -> None:
    decoded = decode(text.encode(codec))
    assert decoded.text == text
    assert decoded.source is EncodingSource.MARKUP


@pytest.mark.parametrize(
    ("word", "codec"), [("Компьютер", "cp1251"), ("Καλημέρα", "cp1253"), ("Zażółć", "cp1250")]
)
def test_a_page_declaring_latin1_over_one_word_in_another_code_page_is_overruled(
    word: str, codec: str
) -> None:
    page = f'<html><meta charset="iso-8859-1"><p>{word}</p></html>'
    decoded = decode(page.encode(codec), html=True)
    assert decoded.text == page
    assert decoded.source is EncodingSource.DETECTED
