"""Tests of the CJK repairs: phase slips, wrong-codec runs, leaked pinyin.

The corrupted documents come from `tests/corruptors.py`, which reproduces each mechanism at the
byte level independently of the repair code.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from corruptors import corrupt_document, diff_spans, lossy_decode, wrong_codec

from textmend_server.cjk import (
    DEFAULT_BUDGET,
    find_phase_slips,
    find_ruby_leaks,
    find_wrong_codec_runs,
    text_language,
    work_done,
)
from textmend_server.cjk.lm import get_model
from textmend_server.cjk.ruby import annotated_hosts
from textmend_server.cjk.scripts import CJK_ANY, fold_width
from textmend_server.fixes import apply_proposals
from textmend_server.policy import Category
from textmend_server.stages import apply_stages

FIXTURES = Path(__file__).parent / "fixtures"
_TAG_RE = re.compile(r"</?[A-Za-z][^<>\n]*>")

# Clean prose written for these tests (traditional, simplified, Japanese, Korean).
TRADITIONAL = [
    "研究團隊在報告中指出,這項技術的發展速度遠超預期。",
    "他說:“我們會繼續投資新的項目,總裁也同意這個計劃。”",
    "這家公司上個月宣布,將在台北設立新的研發中心。",
    "記者問他為什麼離開,他只是笑著說:“時間到了。”",
    "市場分析師認為,明年的經濟成長仍然面臨許多挑戰。",
    "總統在記者會上表示,政府會全力支持教育改革。",
    "我們的根本競爭力取決於比其他公司都更快。“只有這樣才能迎頭趕上。”",
    "學校圖書館收藏了很多關於歷史和文化的書籍。",
]
SIMPLIFIED = [
    "研究团队在报告中指出,这项技术的发展速度远超预期。",
    "他说:“我们会继续投资新的项目,总裁也同意这个计划。”",
    "记者问他为什么离开,他只是笑着说:“时间到了。”",
    "市场分析师认为,明年的经济增长仍然面临许多挑战。",
]
CLEAN = {
    "zh-Hant": "".join(TRADITIONAL),
    "zh-Hans": "".join(SIMPLIFIED),
    "ja": "東京の天気は晴れです。明日は雨が降るかもしれません。本当?!すごいですね。",
    "ko": "오늘 날씨가 정말 좋네요. 내일은 비가 올 수도 있습니다. 정말?! 놀랍네요.",
    "en": "Plain English text, with a question?! And a gloss (like this one).",
    "ru": "Обычный русский текст?! Без всяких проблем (совсем).",
}
GENUINE = [
    "真的嗎?!我不相信。",
    "為什麼??",
    "為什麼??我不知道。",
    "什么?!你说什么??他不来了?",
    "蘋果(Apple)發布了新手機。",
    "這是第一版(第二版)的說明。",
    "特斯拉(Tesla)的股價上漲。",
    "北京(Beijing)是中國的首都。",
]


def _apply(text: str, proposals) -> str:
    """Apply the proposals that are edits (not flag-only findings)."""
    return apply_proposals(text, [p for p in proposals if not p.flag_only])


def _repair(text: str) -> str:
    """The CJK stages in engine order, then removal of leftover tags (the markup stage)."""
    return _TAG_RE.sub("", apply_stages(text))


def _well_formed(text, proposals):
    last = 0
    for p in proposals:
        assert last <= p.start < p.end <= len(text)
        assert 0.0 <= p.confidence <= 1.0
        assert p.reason and p.reason[0].isupper()
        last = p.end


# --- the sample article -----------------------------------------------------------------


def test_sample_article_chinese_lines_restored():
    src = (FIXTURES / "fortune-openai-departures.txt").read_text("utf-8").split("\n")
    exp = (FIXTURES / "fortune-openai-departures.expected.txt").read_text("utf-8").split("\n")
    got = [_repair(line) for line in src]
    assert got[:52] == exp[:52]
    assert got[52:] == src[52:]  # the English part is untouched


def test_sample_article_whole_document_and_idempotent():
    src = (FIXTURES / "fortune-openai-departures.txt").read_text("utf-8")
    exp = (FIXTURES / "fortune-openai-departures.expected.txt").read_text("utf-8")
    slips = find_phase_slips(src)
    _well_formed(src, slips)
    assert all(p.category is Category.CJK_PHASE_SLIP for p in slips)
    assert len(slips) == 12
    out = _repair(src)
    assert out == exp
    for stage in (find_phase_slips, find_wrong_codec_runs, find_ruby_leaks):
        assert stage(out) == []


def test_phase_slip_swallowing_a_tag_consumes_its_remainder():
    text = "他們需要迎頭趕上?!?/p>\n下一段"
    (p,) = find_phase_slips("“只有這樣才能" + text)
    assert p.replacement == "。”"
    assert ("“只有這樣才能" + text)[p.start : p.end] == "?!?/p>"


# --- pinyin leaks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ChatGPT創(chuàng)建者", "ChatGPT創建者"),
        ("一個(gè)解釋", "一個解釋"),
        ("中國(zhōngguó)人", "中國人"),
        ("為(wéi)了", "為了"),  # a heteronym's other reading
        ("綠(lǜ)色和紅(hong2)色", "綠色和紅色"),  # numbered tones beside a tone-marked leak
    ],
)
def test_ruby_leaks_removed(text, expected):
    proposals = find_ruby_leaks(text)
    _well_formed(text, proposals)
    assert _apply(text, proposals) == expected
    assert all(not p.flag_only and p.confidence >= 0.9 for p in proposals)


def test_repeated_annotations_go_in_one_edit():
    proposals = find_ruby_leaks("一個文(wén)(wén)(wen)件,蘋果(píngguǒ)(Apple)")
    assert [(p.start, p.end, p.replacement) for p in proposals] == [(2, 18, "文"), (20, 31, "蘋果")]


def test_numbered_tones_alone_are_only_flagged():
    """fortunes-zh quotes the Analects with a reading typed for a rare name, `蘧(qu2)伯玉`:
    numbered tones are how people type pinyin; a converter writes tone marks."""
    (p,) = find_ruby_leaks("蘧(qu2)伯玉使人于孔子。")
    assert p.flag_only and "numbered tones" in p.reason


def test_toneless_reading_alone_is_only_flagged():
    (p,) = find_ruby_leaks("公司(gongsi)的人")
    assert p.flag_only
    both = find_ruby_leaks("發(fā)展的公司(gongsi)")
    assert [q.flag_only for q in both] == [False, False]


@pytest.mark.parametrize("text", GENUINE)
def test_genuine_text_gets_no_proposal(text):
    for stage in (find_phase_slips, find_wrong_codec_runs, find_ruby_leaks):
        assert stage(text) == []


@pytest.mark.parametrize("lang", sorted(CLEAN))
def test_clean_text_in_any_language_gets_no_proposal(lang):
    text = CLEAN[lang]
    for stage in (find_phase_slips, find_wrong_codec_runs, find_ruby_leaks):
        assert stage(text) == []


def test_text_language():
    assert text_language(CLEAN["zh-Hant"]) == "zh"
    assert text_language(CLEAN["ja"]) == "ja"
    assert text_language(CLEAN["ko"]) == "ko"
    assert text_language(CLEAN["en"]) is None


# --- the byte model, and repairs of generated damage ------------------------------------


def test_generator_reproduces_the_observed_strings():
    assert corrupt_document(["公司。”他稱他們"], trigger_p=1.0).text == "公司?!彼Q他們"
    assert corrupt_document(["說。“投資者"], trigger_p=1.0).text == "說?!巴顿Y者"
    # Full width kept, two private-use pairs dropped, as seen on another site.
    c = corrupt_document(["消費經濟學的熱點。“十三五”期間"], trigger_p=1.0, fold=False)
    assert c.text == "消費經濟學的熱點?！笆濉逼陂g"
    # The byte-level annotation converter hitting a key across two characters.
    c = corrupt_document(["因為這是"], pinyin_chars=["驗"], trigger_p=0.0)
    assert c.text == "因?yàn)檫@是"
    assert lossy_decode(bytes.fromhex("a3a1b13c2f703e"), "gbk") == "！?/p>"


def test_generated_slips_and_leaks_repaired():
    """Documents built from the paragraphs above, cut at every trigger, with annotations."""
    docs = [TRADITIONAL[i : i + 4] for i in range(0, len(TRADITIONAL), 2)]
    total = restored = 0
    for seed, doc in enumerate(docs):
        chars = sorted({c for p in doc for c in p if "\u4e00" <= c <= "\u9fff"})[::3]
        c = corrupt_document(doc, seed=100 + seed, pinyin_chars=chars, trigger_p=1.0)
        assert c.text != c.expected
        out = _repair(c.text)
        spans = diff_spans(c.text, c.expected)
        bad = diff_spans(out, c.expected)
        total += len(spans)
        restored += sum(
            1 for _, _, j1, j2 in spans if not any(b1 <= j2 and b2 >= j1 for _, _, b1, b2 in bad)
        )
        # Nothing outside a corrupted span was changed.
        for _, _, b1, b2 in bad:
            assert any(b1 <= j2 and b2 >= j1 for _, _, j1, j2 in spans)
    assert total > 40
    assert restored / total >= 0.9


def test_a_question_mark_before_a_word_the_text_writes_elsewhere_is_not_re_phased():
    """Lu Xun's 《瑣記》 (public domain), its full-width `？` folded to ASCII: `?S城` reads as a
    GBK pair out of phase (`豐城`, rated 0.92), but the same paragraph writes `S城` (the
    author's home town) as it stands."""
    from textmend_server import repair_text

    text = (
        "但是,那裡去呢?S城人的臉早經看熟,如此而已,連心肝也似乎有些瞭然。"
        "總得尋別一類人們去,去尋為S城人所詬病的人們,無論其為畜生或魔鬼。"
    )
    result = repair_text(text)
    assert result.text == text and result.edits == []
    (slip,) = [f for f in result.findings if f.category is Category.CJK_PHASE_SLIP]
    assert "writes what follows the `?` elsewhere" in slip.reason


def test_a_tag_whose_lt_a_lost_byte_swallowed_stays_beside_a_slip_left_unrepaired():
    """Lu Xun's 《沉滓的泛起》 paragraph (public domain) read one byte out of phase to its end,
    where its `</p>` lost the `<` to the last misread byte: the slip is too long and lossy to
    re-phase, and removing `/p>` alone would take away the one visible mark of the damage."""
    from textmend_server import repair_text

    text = (
        "必须痛哭怒?牛θ琳疲钊吮徽馊湃拎性铀舐遥疟瓒岽梗掣瓒咝梗谑悄恰岸鳌奔础拔髡鳌钡牡谝徊剑"
        "簿颓那牡囊目绻チ恕B湓岬男辛欣镉斜У目奚凶炒蟮木郑侨挝袷窃谒退廊寺袢胪林校萌饶掷囱诠"
        "苏狻八馈保蠹医幼啪偷玫健巴础薄O衷凇懊褡逯饕逦难А钡姆⒀秕掷鳎蚩犊璧奈恼拢闶钦诰∽磐"
        "坏娜挝竦摹?/p>"
    )
    result = repair_text(text)
    assert result.text == text
    (tag,) = [f for f in result.findings if f.category is Category.MARKUP_LEAK]
    assert tag.original == "/p>" and "swallowed" in tag.reason


def test_repaired_slip_reports_evidence():
    (p,) = find_phase_slips("3人??偛酶窭赘瘛げ剂_克曼")
    assert p.replacement == "。總裁格雷格·布羅"
    assert "GBK" in p.reason and "nats" in p.reason
    # How likely a reading this long with this margin is to be exactly right (calibrated on
    # generated slips): neither a certainty nor a guess.
    assert 0.3 < p.confidence < 0.99 and not p.flag_only


# --- wrong-codec runs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clean", "written", "read_as"),
    [
        ("文字编码", "utf-8", "gbk"),
        ("这是简体中文的句子", "gbk", "big5"),
        ("日本語のテキスト", "shift_jis", "cp1252"),
        ("한국어 텍스트입니다", "euc_kr", "latin-1"),
    ],
)
def test_wrong_codec_runs_redecoded(clean, written, read_as):
    bad = wrong_codec(clean, written, read_as)
    text = "標題:" + bad
    proposals = find_wrong_codec_runs(text)
    _well_formed(text, proposals)
    assert all(p.category is Category.CJK_WRONG_CODEC for p in proposals)
    assert _apply(text, proposals) == "標題:" + clean


@pytest.mark.parametrize(
    ("clean", "written", "read_as"),
    [
        # Python's decoders replace one byte per U+FFFD; the bytes behind them are searched.
        ("四年多來，他們不但演出了各地方的民間舞蹈，還創作了一批新節目。", "big5", "gbk"),
        ("保护消费者的价格权益，是价格法的主要立法宗旨之一。", "utf-8", "gbk"),
        ("2005年11月に神奈川県で開かれる「全国豊かな海づくり大会」", "shift_jis", "cp1252"),
        # ASCII (digits, spaces) between the runs passes through both codecs unchanged.
        ("남녀고용평등과 일 ·가정 양립 지원에 관한 법률", "euc_kr", "latin-1"),
        ("これまで事実上固定されていた通貨レートを見直し、21日19時付で", "shift_jis", "latin-1"),
    ],
)
def test_wrong_codec_runs_with_replaced_bytes_and_ascii_between(clean, written, read_as):
    """The reading is found, whether it is applied or, its filled bytes rated too unsure
    (`codecrun.MIN_EDIT_CONFIDENCE`: the Big5 run fills 17), only suggested."""
    text = "標題:\n" + wrong_codec(clean, written, read_as)
    assert apply_proposals(text, find_wrong_codec_runs(text)) == "標題:\n" + clean


@pytest.mark.parametrize(
    ("clean", "written", "read_as"),
    [
        ("イギリスで映画デビューののち、ハリウッドに移り", "shift_jis", "latin-1"),
        ("日本語のテキストを正しく読む", "shift_jis", "cp1252"),
        ("남녀고용평등과 일 ·가정 양립 지원에 관한 법률", "euc_kr", "latin-1"),
        ("경우 대체 고용할 확률", "euc_kr", "cp1252"),
    ],
)
def test_a_latin_looking_run_is_redecoded_by_the_whole_engine(clean, written, read_as):
    """Through the engine, not the stage alone: ftfy reads pieces of Shift-JIS and EUC-KR seen
    as Latin-1 or cp1252 as UTF-8 mojibake (`\x82Å` → `ŉ`), and the stray stage takes their
    C1 bytes for controls; either, run first, leaves the run nothing to re-decode."""
    from textmend_server import repair_text

    text = "前の行\n" + wrong_codec(clean, written, read_as) + "\n後の行"
    repaired = repair_text(text)
    assert repaired.text == "前の行\n" + clean + "\n後の行"
    assert {e.category for e in repaired.edits} == {Category.CJK_WRONG_CODEC}


@pytest.mark.parametrize(
    "clean", ["他對記者說：“這是一個重要的時刻。”", "法官對伊格爾森說：“城市建設要加快。”"]
)
def test_big5_read_as_gbk_is_redecoded_across_the_ideographic_space_it_makes(clean):
    """`說：` is Big5 BB A1 A1 47; GBK, out of step, reads A1 A1 as U+3000, inside the run."""
    bad = wrong_codec(clean, "big5", "gbk")
    assert "\u3000" in bad
    text = "這是前面的報導。\n" + bad + "\n這是後面的報導。"
    assert _repair(text) == "這是前面的報導。\n" + clean + "\n這是後面的報導。"


def test_a_quoted_line_read_with_the_wrong_codec_is_found_though_half_of_it_is_marks():
    """Big5 punctuation read as GBK is mostly U+FFFD and the line is half marks: the run is
    still searched, and its reading counts as Chinese."""
    clean = "報告說：“經濟增長很快。”"
    text = "這是前面的報導。\n" + wrong_codec(clean, "big5", "gbk") + "\n這是後面的報導。"
    assert [p.replacement for p in find_wrong_codec_runs(text)] == [clean]


@pytest.mark.parametrize(
    "clean", ["他是中国人民伟大的英雄（摘译）", "会议通过了关于加强环境保护的决定（全文）"]
)
def test_a_byte_lost_at_the_end_of_a_line_closes_the_bracket_the_line_opened(clean):
    """GBK read as Big5 loses the last `）`'s lead byte; the line's open `（` says what it was."""
    bad = wrong_codec(clean, "gbk", "big5")
    assert bad.endswith("\ufffd")
    text = "前面的文字。\n" + bad + "\n后面的文字。"
    assert _repair(text) == "前面的文字。\n" + clean + "\n后面的文字。"


def test_a_fill_the_model_is_unsure_of_lowers_the_runs_confidence():
    """UTF-8 read as GBK loses the last byte of a run-final `：` (EF BC 9A), and `，`
    (EF BC 8C) fills it as well: the reading is rated by the share of the search's readings it
    holds, so it is not made at a caller's 0.9. A run whose fills leave no doubt keeps its
    confidence."""
    text = "中文文本说明\n" + wrong_codec("第二章 安装说明：", "utf-8", "gbk") + "\n其他内容"
    (found,) = [p for p in find_wrong_codec_runs(text) if "说明" in p.replacement]
    assert found.replacement in ("安装说明：", "安装说明，")
    assert 0.4 <= found.confidence < 0.6
    text = "中文文本说明\n" + wrong_codec("这是什么意思？", "utf-8", "gbk") + "\n其他内容"
    (found,) = find_wrong_codec_runs(text)
    assert found.replacement == "这是什么意思？" and found.confidence >= 0.9


def test_a_quotation_does_not_open_on_a_clause_mark():
    model = get_model("zh")
    assert model.logp("“", "，") < model.logp("“", "你") - 4
    assert model.logp("“", "，") < model.logp("。", "，")


def test_run_ending_in_a_trail_byte_read_as_ascii_is_redecoded_with_it():
    # Big5 `。` is A1 43: GBK reads the 43 as `C`, after the last character of the run.
    clean = (
        "聲明還對一直受到侵略和干涉威脅的古巴政府和人民表示聲援，"
        "對美國干涉古巴的赫爾姆斯—伯頓法表示唾棄。"
    )
    bad = wrong_codec(clean, "big5", "gbk")
    assert bad.endswith("C")
    text = "前文\n" + bad + "\n後文"
    # Its filled bytes make it a suggestion (`codecrun.MIN_EDIT_CONFIDENCE`); the reading is it.
    assert apply_proposals(text, find_wrong_codec_runs(text)) == "前文\n" + clean + "\n後文"


def test_utf8_read_as_cp1252_is_not_searched_as_shift_jis_or_euc_kr():
    # UTF-8 mojibake whose undefined cp1252 bytes became U+FFFD: not a Shift-JIS or EUC-KR
    # run, so their searches (the costliest part of corrupted text) are not run on it.
    text = "Title: " + "はとこに活発な運動をみせ、2日に".encode().decode("cp1252", errors="replace")
    assert "\ufffd" in text
    before = work_done()
    assert find_wrong_codec_runs(text) == []
    assert work_done() == before


def test_repeated_fills_reuse_the_search_and_give_the_same_result():
    from textmend_server.cjk import codecrun

    clean = "保护消费者的价格权益，是价格法的主要立法宗旨之一。"
    text = "標題:\n" + wrong_codec(clean, "utf-8", "gbk")
    assert "\ufffd" in text  # the repair has bytes to search, not just a re-decoding
    codecrun._FILLS.clear()
    before = work_done()
    first = find_wrong_codec_runs(text)
    searched = work_done() - before
    again = find_wrong_codec_runs(text)
    assert searched > 0 and work_done() - before == searched
    assert [(p.start, p.end, p.replacement) for p in again] == [
        (p.start, p.end, p.replacement) for p in first
    ]
    assert _apply(text, first) == "標題:\n" + clean


@pytest.mark.parametrize(
    "text",
    [
        "Le café était très agréable à Paris, où l'été dure.",
        "Müller über Straße: Größe, Übung, ÄÖÜ äöü ß — naïve façade",
        "Señor Ibáñez comió jamón y piñata en Cádiz ¿qué? ¡sí!",
        "Prix: 12,50 € — 3×4 = 12 ± 0,5 °C, ½ ¼ ¾ © ® ™",
        "東京の天気は晴れです。«ÉCOLE» française",
        "서울특별시 종로구 世宗路 1번지 (光化門)",
        "漢字テスト：龍馬、鬱、薔薇、檸檬、蝙蝠、麒麟、髑髏",
    ],
)
def test_genuine_latin1_and_rare_han_get_no_codec_proposal(text):
    assert find_wrong_codec_runs(text) == []


@pytest.mark.parametrize(
    "text",
    [
        # Reduplicated rare characters of classical verse (Wang Anshi, Cui Hao), and a
        # dictionary's rare entries, each of which re-decodes into "better" Chinese.
        "爆竹声中一岁除，春风送暖入屠苏。\n千门万户曈曈日，总把新桃换旧符。\n",
        "晴川历历汉阳树，芳草萋萋鹦鹉洲。\n日暮乡关何处是？烟波江上使人愁。\n",
        "さえずr /囀/哢;<rare>/\nふつくm /恚/慍/憤/\n",
        # Four characters with a repeat: a subtitle's translated name said twice, Cantonese
        # reduplication, a Shijing line (fortunes-zh).
        "梅茛梅茛\n",
        "個BB奀雌雌噉，唔係有病都係營養不良。\n",
        "載弁俅俅\n",
    ],
)
def test_a_short_rare_run_is_reported_with_its_reading_not_rewritten(text):
    """A wrong decoder garbles all it reads: two or three rare characters among text read
    right, or four that repeat one, are weak evidence (`MIN_EDIT_RUN` distinct characters), so
    their re-decoding is only a suggestion."""
    from textmend_server import repair_text
    from textmend_server.cjk.codecrun import MIN_EDIT_RUN, SHORT_RUN_REASON

    proposals = find_wrong_codec_runs(text)
    assert proposals and all(p.flag_only for p in proposals)
    assert all(SHORT_RUN_REASON in p.reason for p in proposals)
    assert all(len(set(re.findall(CJK_ANY, p.replacement))) < MIN_EDIT_RUN for p in proposals)
    assert repair_text(text).text == text


@pytest.mark.parametrize(
    "text",
    [
        # Lines of the UTF-8 editions of SKK's dictionaries (skkdic-extra): rare readings kept
        # apart by `/`, kana among them in the second.
        "kuzi /裤子/\nla /拉/啦/辣/腊/喇/垃/蜡/剌/邋/旯/瘌/砬/\nlaaokong /拉奥孔/\n",
        "leprosy /ハンセン氏病/ハンセン病/天刑病/癩/癩病/らい病/\n",
    ],
)
def test_characters_kept_apart_are_reported_with_their_reading_not_rewritten(text):
    """Each re-decodes into commoner characters, so the run gains, but nothing reads them
    together: without `MIN_EDIT_STRETCH` CJK characters in a row the reading is a suggestion."""
    from textmend_server import repair_bytes
    from textmend_server.cjk.codecrun import MIN_EDIT_STRETCH, SCATTERED_REASON

    proposals = find_wrong_codec_runs(text)
    assert proposals and all(p.flag_only for p in proposals)
    assert any(SCATTERED_REASON in p.reason for p in proposals)
    assert all(
        max(len(m) for m in re.findall(f"{CJK_ANY}+", p.replacement)) < MIN_EDIT_STRETCH
        for p in proposals
    )
    result = repair_bytes(text.encode())
    assert result.text == text and not result.edits


def test_a_reading_that_does_not_read_as_text_is_reported_not_applied():
    """cnchar 3.2.6's README (MIT) lists the homophones of shàng in a code sample; the rare
    traditional ones "re-decode" from Big5 as GBK into `架顰乱洁`, rare characters again, which
    only score better than the run (`MIN_HAN_READING_LOGP`)."""
    from textmend_server import repair_bytes
    from textmend_server.cjk.codecrun import MIN_HAN_READING_LOGP

    text = (
        "cnchar.spellToWord('shàng'); // 返回 '上尚绱鞝'\n"
        "cnchar.spellToWord('shàng', 'alltone'); // 返回 "
        "'上伤汤尚垧殇晌商绱觞赏墒熵裳傷湯殤鞝觴賞'\n"
        "cnchar.spellToWord('shang4', 'alltone', 'trad'); // 返回 '傷湯殤鞝觴賞'\n"
        "cnchar.spellToWord('lv2', 'simple'); // 返回 '驴闾榈'\n"
    )
    repaired = repair_bytes(text.encode("utf-8"))
    assert repaired.text == text
    runs = [f for f in repaired.findings if f.category.value == "cjk_wrong_codec"]
    assert runs and all(f"below {MIN_HAN_READING_LOGP}" in f.reason for f in runs)
    assert all(f.replacement and f.replacement != f.original for f in runs)


def test_a_text_whose_rare_runs_mostly_read_as_nothing_keeps_the_one_that_does():
    """m17n-db's Han-Viet input method lists each syllable's homophones, most of them rare:
    three of the excerpt's lists re-decode into no text, and `遝踏蹋沓耷` "re-decodes" from
    Big5 as GBK into `痪今料填蠻` well enough by chance (`ON_PURPOSE_RUNS`)."""
    from textmend_server import repair_bytes
    from textmend_server.cjk.codecrun import MIN_HAN_READING_LOGP, ON_PURPOSE_RUNS

    path = Path(__file__).parent / "fixtures" / "cjk" / "m17n-vi-han-excerpt.mim"
    content = path.read_bytes()
    text = content.decode("utf-8")
    proposals = find_wrong_codec_runs(text)
    unread = [p for p in proposals if f"below {MIN_HAN_READING_LOGP}" in p.reason]
    assert len(unread) >= ON_PURPOSE_RUNS
    chance = [p for p in proposals if text[p.start : p.end] == "遝踏蹋沓耷"]
    assert len(chance) == 1 and chance[0].flag_only
    assert "writes rare characters on purpose" in chance[0].reason
    repaired = repair_bytes(content)
    assert repaired.text == text and repaired.edits == []


@pytest.mark.parametrize(
    "text",
    [
        # Emacs's pinyin input methods (PY.el, TONEPY.el) list a syllable's characters in order
        # of use, and skkdic's changelog lists words: the rare tail of a string that reads right.
        '("la" "拉啦辣腊喇垃蜡剌邋旯瘌砬")\n',
        '("rui3" "蕊")\n("rui4" "瑞锐芮枘睿蚋")\n("run4" "闰润")\n',
        "稿料/広陵/公領/高粱/荒寥/蛟竜/亢竜",
    ],
)
def test_a_rare_run_glued_to_han_that_reads_right_is_reported_not_redecoded(text):
    from textmend_server import repair_text
    from textmend_server.cjk.codecrun import glued_to_han

    proposals = find_wrong_codec_runs(text)
    assert proposals and all(p.flag_only for p in proposals)
    assert all(glued_to_han(text, p.start, p.end) for p in proposals)
    assert repair_text(text).text == text


@pytest.mark.parametrize(
    "text",
    [
        # Info's index entry, a reST footnote, Emacs Lisp and LaTeX: a `?` before a bracket
        # that pairs with another on its line is text, though `?[`, `?]` and `?}` re-phase
        # into kana and kanji.
        "* 設定はどこ?[設定ファイルはどこ?]:     Files.            (line   5)\n",
        ".. [#] 名前の由来は [Q1-1 それは他の辞書とは違うのですか?].\n",
        '              (concat (propertize "{どれを参照?}" \'face\n',
        "\t\\item \\href{http://example.org/bbs/?id=9}{论文用\\LaTeX 排版，之后的提交会麻烦么?}\n",
        # Info's emphasis, `_…_`: `?_` re-phases into `ダ`.
        "ことができます。\n\n   _誰かこのキーを Gnus タワーに予約してくれませんか?_\n\nこの他に\n",
    ],
)
def test_a_question_mark_before_a_paired_bracket_is_reported_not_rephased(text):
    from textmend_server import repair_text

    proposals = find_phase_slips(text)
    assert proposals and all(p.flag_only for p in proposals)
    assert all("pairs with another on its line" in p.reason for p in proposals)
    assert repair_text(text).text == text


@pytest.mark.parametrize(
    "text", ["<title>他是谁?_网易新闻</title>\n", "怎么办?_百度知道\n", "是谁?_新浪网"]
)
def test_a_question_title_before_its_site_name_is_not_rephased(text):
    """News pages title themselves `question?_site` (gne's NetEase fixture): `?_` re-phased as
    GBK reads `開`, though `_` is a trail byte a lost lead seldom leaves behind."""
    from textmend_server import repair_text

    assert repair_text(text).text == text
    proposals = find_phase_slips(text)
    assert proposals and all(p.flag_only and "`_` after `?`" in p.reason for p in proposals)


def test_a_question_mark_quantifying_an_escaped_group_is_reported_not_rephased():
    """Emacs Lisp's `\\\\(?:画像\\\\)?＞[`: the `?` after the escaped parenthesis is the
    pattern's, though `?＞[` re-phases as Shift-JIS into `メЪ`."""
    from textmend_server import repair_text

    text = (
        '    "＜拡大\\\\(?:画像\\\\)?＞[\t\n ]*</a>\\\\|\\\\(?:<div[\t\n ]+[^>]+>[\t\n ]*\\\\)"\n'
    )
    proposals = find_phase_slips(text)
    assert proposals and all(p.flag_only for p in proposals)
    assert all("quantifies a pattern's group" in p.reason for p in proposals)
    assert repair_text(text).text == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        # A JavaScript tutorial's nullish operator and IPython's help operator in Markdown
        # code spans (ja and zh javascript.info, d2l-zh): `??`` re-phased into `中~`, `。縛`.
        ("２つの疑問符 `??` で記述されます。\n", "code span"),
        ("使用 `??` 查看函数帮助和函数源代码\n", "code span"),
        # date-fns's Japanese and Chinese locales and a Chinese date parser's patterns:
        # `?\\d` re-phased into `運d`, `(?!` into `。…`, `)?周|` into `又軀`.
        ("/^第?\\d+(年|四半期|月|週|日|時|分|秒)?/i\n", "backslash escape"),
        ("/^(一|1(?!\\d))/i,\n", "opens a pattern's group"),
        ("(年|(个)?季度|(个)?月|(个)?周|天)\n", "quantifies a pattern's group"),
        ("(?=([之以]?前|止)$)\n", "quantifies a pattern's group"),
        # Ruby's character literal for a space, in its reference manual.
        ("空白文字です。?\\s を返します。\n", "backslash escape"),
        # A Chinese sentence splitter's escaped `?` (harvesttext); Vim's Japanese help, whose
        # `{…}` wraps onto the next line; Markdown emphasis in a Korean notebook's JSON.
        (
            "para = re.sub('([。！？\\?!])([^”’)\\]）】])', r\"\\1\\n\\2\", para)"
            "  # 单字符断句符\n",
            "escaped",
        ),
        ("ram {訳注: RAM ディス\nク?} 内の Vim を起動すると\n", "pairs with another"),
        ('"> **TLDR** : *어떠한 활성화 함수를 써야할까?*\\n",\n', "pairs with another"),
    ],
)
def test_a_question_mark_in_a_pattern_or_a_code_span_is_reported_not_rephased(text, why):
    from textmend_server import repair_text

    assert repair_text(text).text == text
    proposals = find_phase_slips(text)
    assert proposals and all(p.flag_only and why in p.reason for p in proposals)


@pytest.mark.parametrize(
    "text",
    [
        'msgid "Continue?\\n"\nmsgstr "是否继续?\\n"\n',
        '  "confirm": "확실하십니까?\\n계속하려면 확인을 누르십시오.",\n',
        'printf("続けますか?\\t[y/n] ");\n',
    ],
)
def test_a_question_mark_before_a_backslash_escape_is_reported_not_rephased(text):
    """`?\\` re-phases as GBK or Shift-JIS (0x5C is a trail byte): in code and catalogues it
    is a string's escape."""
    from textmend_server import repair_text

    assert repair_text(text).text == text
    proposals = find_phase_slips(text)
    assert all("backslash escape" in p.reason for p in proposals if p.flag_only)
    assert not [p for p in proposals if not p.flag_only]


@pytest.mark.parametrize(
    "text",
    [
        # Regular expressions of a Japanese address normaliser and a calendar library: `|` and
        # the bracket a run would take are trail bytes, and their pairs are on the line.
        "const chome = /(丁目?|番(町|丁)|条|軒|線|(の|ノ)町|地割)/;\n",
        'ERA = re.compile(r"(三十一?|二?十[一二三四五六七八九]?|十[一二三四五六七八九]?)")\n',
        "  .replace(/^字?家[6六]/, '家6')\n",
    ],
)
def test_regular_expressions_in_cjk_code_are_not_rephased(text):
    """A run that would take `|` or half of a bracket pair out of a balanced line is code."""
    from textmend_server import repair_text

    assert repair_text(text).text == text
    assert not [p for p in find_phase_slips(text) if not p.flag_only]


@pytest.mark.parametrize(
    "text",
    ['  ["b8df","肅腕腔腋腑腎脹腆"],\n', '  ["d0ba","綞綦綧綪綳綶綷綹緂"],\n'],
)
def test_a_code_tables_run_of_characters_is_not_redecoded(text):
    """A code-page table lists characters in code order (here Big5's and EUC-JP's): read as
    another codec they make common characters, but a table is not text read wrongly."""
    from textmend_server import repair_text

    assert repair_text(text).text == text


def test_a_short_run_counts_its_cjk_letters_not_the_symbols_beside_them():
    """CLDR's transliteration data: `籖鎆鏲]→` re-decodes as Big5 into `舞澋蓳]↙`, three
    characters and two symbols: too short to edit."""
    from textmend_server import repair_text

    text = "<tRule>[籖鎆鏲]→q ;</tRule>\n"
    assert repair_text(text).text == text


def test_latin_text_that_lost_its_accents_upstream_is_not_redecoded_as_cjk():
    """Czech whose accented letters a decoder replaced before the text reached us: every
    high character is U+FFFD, so any CJK reading of it would be the model's invention."""
    from textmend_server import repair_text

    text = "zda mu neu\ufffdlo n\ufffdco d\ufffdle\ufffdit\ufffdho.\n"
    assert find_wrong_codec_runs(text) == []
    assert repair_text(text).text == text


def test_slip_after_a_folded_fullwidth_digit_with_annotation():
    """`１５` holds B1 A3, the bytes of 保: the annotation lands inside the number. The search
    reads the run back exactly; a 27-character reading with close rivals is rated below
    `MIN_EDIT_CONFIDENCE` (the chance it is exactly right), so it is the suggestion of a
    finding, not an edit."""
    from textmend_server.cjk.slip.stage import MIN_EDIT_CONFIDENCE

    c = corrupt_document(
        ["在淮河流域１５６２家污染企业中，已有１１３９家完成治理任务。"],
        pinyin_chars=["保"],
        trigger_p=0.0,
    )
    assert c.text.startswith("在淮河流域1?bǎo)")
    (slip,) = find_phase_slips(c.text)
    assert apply_proposals(c.text, [replace(slip, flag_only=False)]) == c.expected
    assert slip.flag_only == (slip.confidence < MIN_EDIT_CONFIDENCE)
    assert (_repair(c.text) == c.expected) is not slip.flag_only


def test_a_reading_rated_unlikely_to_be_exact_is_reported_not_applied():
    """Whatever else a slip's reading has for it, one rated below `MIN_EDIT_CONFIDENCE` is a
    finding; readings rated above it, with the margin to edit, are still applied."""
    from textmend_server.cjk.slip.stage import MIN_EDIT_CONFIDENCE

    rated: list[tuple[float, bool]] = []
    # One long paragraph cut at random places: runs long enough to be rated low.
    for prose in ("".join(SIMPLIFIED), "".join(TRADITIONAL)):
        for seed in range(20):
            c = corrupt_document([prose], seed=seed, trigger_p=0.0, random_rate=0.01)
            rated += [(p.confidence, p.flag_only) for p in find_phase_slips(c.text)]
    low = [flag for conf, flag in rated if conf < MIN_EDIT_CONFIDENCE]
    assert low and all(low)
    assert any(not flag for conf, flag in rated if conf >= MIN_EDIT_CONFIDENCE)


def test_a_reading_counts_the_characters_whose_pair_was_lost_whole():
    """In `公司?!彼Q他們`, 他's second byte and 稱's first fell in a user-defined pair the
    decoder dropped: 他 is the model's choice alone, and the reading's confidence says so."""
    from textmend_server.cjk.dbcs import codec
    from textmend_server.cjk.slip import repair_at
    from textmend_server.cjk.slip.stage import confidence

    rep = repair_at("公司?!彼Q他們的工作", 2, codec("gbk"), get_model("zh"), True, True)
    assert rep is not None and (rep.replacement, rep.lost) == ("。”他稱", 1)
    # `技術` cut inside 術: its lead byte is lost, its trail byte read with the next lead.
    c = corrupt_document(["".join(TRADITIONAL)], seed=1, trigger_p=0.0, random_rate=0.01)
    i = c.text.index("技?") + 1
    whole = repair_at(c.text, i, codec("gbk"), get_model("zh"), True, True)
    assert whole is not None and (whole.replacement, whole.lost) == ("術", 0)
    assert confidence(rep.margin, rep.gap, 4, rep.lost) < confidence(rep.margin, rep.gap, 4)


def test_word_lattice_prefers_whole_words():
    from textmend_server.cjk.lm import Scorer, get_model

    s = Scorer(get_model("zh"), False)
    assert s.score("狐狸尾巴", "。") > s.score("宏尾巴", "。")


def _prefix_by_every_cut(wm, s: str) -> float:
    """Prefix(s) as the word lattice defines it, summed over every cut of s one by one."""
    words, masses, floor = wm._word, wm._mass, wm._floor

    def cuts(rest: str) -> float:
        total = 0.0
        for k in range(1, min(len(rest), wm.MAXLEN) + 1):
            piece = rest[:k]
            if k == len(rest):
                # The last piece: the mass of the listed words it begins.
                p = masses.get(piece, floor if k == 1 else 0.0)
                total += p
            else:
                p = words.get(piece, floor if k == 1 else 0.0)
                if p:
                    total += p * cuts(rest[k:])
        return total

    return cuts(s)


@pytest.mark.parametrize("text", ["狐狸尾巴", "他稱他們", "公司的工", "中華人民", "宏", "的的的的"])
def test_word_lattice_prefix_from_its_history_is_the_sum_over_every_cut(text):
    """What the scorer weighs a character with, from the sums of the history before it
    (`forward`, `after`), is the lattice's definition: the sum over every cut."""
    wm = get_model("zh").words()
    for cut in range(len(text)):
        hist, c = text[:cut], text[cut]
        want = _prefix_by_every_cut(wm, hist + c)
        assert wm.after(hist, wm.forward(hist), c) == pytest.approx(want, rel=1e-12)
        assert wm.prefix(hist + c) == pytest.approx(want, rel=1e-12)
        # The scorer's sum over the cuts that can add: the very same float.
        fwd = wm.forward(hist)
        assert wm.after_cuts(hist, fwd, wm.cuts(hist, fwd), c) == wm.after(hist, fwd, c)
    assert wm.cond("狐", "狸") > 100 * wm.cond("狐", "宏")


@pytest.mark.parametrize("plain", [False, True])
def test_scorer_top_is_the_best_of_lp_whether_memoised_or_not(plain):
    from textmend_server.cjk.lm import Scorer, get_model

    s = Scorer(get_model("zh"), False, plain=plain)
    options = [(ch, k) for k, ch in enumerate("的是國宏司尾巴狸")]
    fresh = s.top("狐", options, 3)
    expected = sorted(((s.lp("狐", ch), ch, k) for ch, k in options), reverse=True)[:3]
    assert fresh == expected
    assert fresh[0][1] == "狸"
    # A second look reads the memo: the same values, the same order.
    assert s.top("狐", options, 3) == fresh
    # The plain scorer reads only the last character of the history; the full one more.
    assert (s.top("九尾狐", options, 3) == fresh) is plain


def test_scorer_histories_with_the_same_last_character_and_run_share_exact_values():
    """Histories that differ before their run in the language's scripts (`。他稱`, `，他稱`)
    share one row of lp values: each value is what a scorer that saw only the other gives."""
    from textmend_server.cjk.lm import Scorer, get_model

    doc = "他稱他們的公司。他稱"
    shared = Scorer(get_model("zh"), True, doc)
    alone = Scorer(get_model("zh"), True, doc)
    for ch in "他們的公司宏，a":
        first = shared.lp("。他稱", ch)
        assert shared.lp("，他稱", ch) == first == alone.lp("，他稱", ch)
        assert shared.lp("X他稱", ch) == alone.lp("X他稱", ch)


def test_bigram_rank_orders_by_the_character_after_prev():
    from textmend_server.cjk.lm import get_model

    m = get_model("zh")
    ranked = m.rank("狐", [("宏", 0), ("狸", 1), ("的", 2)])
    assert ranked[0] == ("狸", 1)
    assert [m.logp("狐", ch) for ch, _ in ranked] == sorted(
        (m.logp("狐", ch) for ch, _ in ranked), reverse=True
    )


# --- bounded work, and stability ------------------------------------------------------


def _work(text: str, **kwargs) -> int:
    """Candidate evaluations the CJK searches spend repairing text through the whole engine."""
    from textmend_server import repair_text
    from textmend_server.cjk import work_done

    before = work_done()
    repair_text(text, **kwargs)
    return work_done() - before


def _noise(n: int, seed: int) -> str:
    import random

    rng = random.Random(seed)
    return "".join(
        chr(rng.randrange(0x4E00, 0x9FA5)) if rng.random() < 0.7 else rng.choice("?!")
        for _ in range(n)
    )


def _budget(text: str) -> int:
    """What the phase-slip stage may spend on text: per block, per pass (the engine runs at
    most MAX_PASSES passes over blocks of about BLOCK code points)."""
    from textmend_server import cjk, engine

    blocks = len(text) // engine.BLOCK + 1
    per_block = cjk.call_budget(min(len(text), engine.BLOCK + 200))
    return engine.MAX_PASSES * blocks * per_block


@pytest.mark.parametrize(
    "text",
    [
        "他" + "?" * 2000 + "公司",
        "公司" + "?!彼<p>Q a?!他?" * 300,
        "".join("?!" if i % 3 else "他們的工作" for i in range(1500)) + "b?!<a>" * 200,
    ],
)
def test_pathological_input_costs_bounded_work(text):
    work = _work(text)
    assert work <= _budget(text)
    # A wall of `?` is not searched character by character.
    if text.startswith("他?"):
        assert work < 250_000  # one search per codec, not one per `?` (~20M)


def test_a_short_text_does_not_get_the_whole_floor():
    # A few dozen characters of Han and `?!` once cost a second of CPU: the per-call floor
    # was spent on them in full.
    text = _noise(40, 3)
    assert _work(text) <= _budget(text) < 3 * 400_000


def test_work_grows_linearly_on_noise():
    small, large = _noise(10_000, 1), _noise(100_000, 2)
    w_small, w_large = _work(small), _work(large)
    assert w_large <= _budget(large)
    # Most noise is let go before any search (`slip.context.reads_as_noise`), so the smaller
    # text may cost nothing: ten times the text costs at most about ten times the smaller
    # text's work or one block's floor, whichever is more.

    assert w_large <= 15 * max(w_small, DEFAULT_BUDGET.search_floor)


def test_exhausted_search_is_reported_not_edited():
    from textmend_server.cjk import SearchBudget

    text = "公司?!彼Q他們的工作"
    found = find_phase_slips(text, SearchBudget(run_budget=50))
    assert all(p.flag_only for p in found)


def _first_look(text: str, i: int, budget: int, annotated=None):
    """A first look (the plain scorer's search) at text[i], and the work it was charged."""
    from textmend_server.cjk import slip
    from textmend_server.cjk.dbcs import codec
    from textmend_server.cjk.lm import Scorer

    model = get_model("zh")
    work = slip.Work()
    rep = slip.repair_at(
        text,
        i,
        codec("gbk"),
        model,
        True,
        True,
        Scorer(model, True, plain=True),
        budget,
        work,
        annotated,
    )
    return rep, work.spent


def test_a_repeated_first_look_is_reused_with_the_same_result_and_cost():
    from textmend_server.cjk.slip import search

    text = "他們說公司?!彼Q他們的工作很好。"
    i = text.index("?")
    search._FIRST_LOOKS.clear()
    first, spent = _first_look(text, i, DEFAULT_BUDGET.run_budget)
    assert first is not None and first.replacement.startswith("。”他稱")
    assert len(search._FIRST_LOOKS) == 1
    # Text far before the trigger, beyond all a search reads, changes nothing but positions.
    far = "很" * 40 + "\n" + text
    again, spent_again = _first_look(far, i + 41, DEFAULT_BUDGET.run_budget)
    assert len(search._FIRST_LOOKS) == 1, "not reused"
    assert (again.start, again.end) == (first.start + 41, first.end + 41)
    assert (again.replacement, again.margin, spent_again) == (
        first.replacement,
        first.margin,
        spent,
    )
    # What the search reads is in the key: a quotation open before the trigger is.
    _first_look("“" + text, i + 1, DEFAULT_BUDGET.run_budget)
    assert len(search._FIRST_LOOKS) == 2
    # A document's annotation habits are not: its first looks are not kept.
    _first_look(
        "姥(lǎo)" + text, i + 6, DEFAULT_BUDGET.run_budget, annotated_hosts("姥(lǎo)" + text)
    )
    assert len(search._FIRST_LOOKS) == 2


def test_a_first_look_cut_short_is_reused_only_under_the_same_budget():
    from textmend_server.cjk.slip import search

    text = "他們說公司?!彼Q他們的工作很好。"
    i = text.index("?")
    search._FIRST_LOOKS.clear()
    short, spent = _first_look(text, i, 40)
    assert short is None or short.exhausted
    assert _first_look(text, i, 40) == (short, spent)
    fresh = search._FIRST_LOOKS.copy()
    full, _ = _first_look(text, i, DEFAULT_BUDGET.run_budget)
    assert full is not None and not full.exhausted
    assert search._FIRST_LOOKS != fresh, "searched again under the larger budget"


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("??<b>?‘¼Œö", True),
        ("??<b>?他公司", True),
        ("??<b>?他公司", False),
        ('‹ ?!時/p>問<<a<a‹語/p>文?!で<?!<<"/p>"""', False),
        ('‹ ?!時/p>問<<a<a‹語/p>文?!で<?!<<"/p>"""', True),
        ("他" + "?" * 12 + "公司", False),
    ],
)
def test_markup_and_punctuation_are_never_rephased_and_repair_is_stable(text, html):
    from textmend_server import RepairPolicy, repair_text

    policy = RepairPolicy(html=html)
    once = repair_text(text, policy=policy)
    assert not [e for e in once.edits if e.category is Category.CJK_PHASE_SLIP]
    assert repair_text(once.text, policy=policy).text == once.text


def test_left_evidence():
    from textmend_server.cjk.slip import left_evidence

    assert left_evidence("公司?!彼Q", 2)
    assert left_evidence("發(fā)?!彼Q", 5)  # an annotation before the cut
    assert left_evidence("流域1?bǎo)", 3)  # a folded full-width digit after Han
    assert not left_evidence("??<b>?他", 5)
    assert not left_evidence("他??", 2)
    assert not left_evidence("?!", 0)


# A run that ends where an annotation's `(` was swallowed: 老, 佬 and 姥 all read lǎo and
# share the lead byte C0, so only the context and the converter's habits tell them apart.
_SWALLOWED_ANNOTATION = "飞到北半球的?nán)隙S械某宋裨背つ臧研『⒎旁谀棠袒蚶?lǎo)姥(lǎo)家,难见"


def test_the_character_an_annotation_was_cut_from_is_the_one_the_document_annotates():
    from textmend_server.cjk.slip.stage import MIN_EDIT_CONFIDENCE

    (slip,) = find_phase_slips(_SWALLOWED_ANNOTATION)
    # Applied or, rated below the floor (a 20-character reading), suggested: either way, read.
    assert slip.flag_only == (slip.confidence < MIN_EDIT_CONFIDENCE)
    assert slip.replacement == "严冬。有的乘务员长年把小孩放在奶奶或姥"
    assert _SWALLOWED_ANNOTATION[slip.end :].startswith("姥(lǎo)家")


def test_annotated_hosts_reads_the_converters_table_from_in_step_leaks():
    habits = annotated_hosts("老人的姥(lǎo)姥(lǎo)家,创(chuàng)建")
    assert habits is not None
    assert habits.hosts == {"姥", "创"}
    assert "老" in habits.bare and "建" in habits.bare
    assert habits.cost("姥") > habits.cost("奶") > habits.cost("老")
    # Toneless parentheses say nothing of a converter.
    assert annotated_hosts("姥(lao)家") is None


def test_a_cut_inside_a_number_is_read_back_as_a_digit():
    """Big5 text cut after the lead byte of `７`: the lost lead makes a digit, which follows
    the digits before it, not the commonest character with that trail byte."""
    clean = "據統計，１９９７年，我國外貿出口總額比上年增長百分之二十。"
    raw = clean.encode("cp950")
    k = raw.index("７".encode("cp950"))
    text = fold_width(lossy_decode(raw[: k + 1], "big5") + lossy_decode(raw[k + 1 :], "big5"))
    assert "199?" in text
    assert _repair(text) == fold_width(clean)


def test_a_cut_before_a_trail_byte_weighs_the_character_after_it():
    """Shift-JIS cut after the lead byte of 構: its trail byte `\\` puts the decoder back in
    step at once, and only the `わ` after it tells 構 from the characters that share it."""
    clean = "夕方の不便な時間帯で構わないよ』と彼は言った。"
    raw = clean.encode("cp932")
    k = raw.index("構".encode("cp932"))
    text = lossy_decode(raw[: k + 1], "shift_jis") + lossy_decode(raw[k + 1 :], "shift_jis")
    assert "で?\\わ" in text
    assert _repair(text) == clean


@pytest.mark.parametrize(
    "clean", ["他说，上海科技力量比较雄厚。", "我们到上海科技馆参观。", "他在上海科技大学读书。"]
)
def test_a_slip_right_after_a_leaked_annotation_is_read_after_the_annotated_character(clean):
    """The cut falls right after `上(shàng)`: the lost lead byte is 海's, which only the 上
    before the annotation predicts; read after `)`, the run opened with `。`."""
    text = corrupt_document([clean], seed=1, pinyin_chars=["上"], trigger_p=1.0).text
    assert "(shàng)??" in text
    rephased = [p for p in find_phase_slips(text) if not p.flag_only]
    assert [p.replacement for p in rephased] == [fold_width(clean[clean.index("海") :])]


def test_a_slip_after_a_folded_fullwidth_semicolon_is_read():
    """`；` folded to `;` before the trigger is CJK punctuation, not the end of an entity: the
    run is read. The character whose lead byte the cut took is the model's choice, and it
    rates `中价值` within `MIN_EDIT_GAP` of `有价值`: the reading is the suggestion of a finding."""
    from textmend_server.cjk.slip.stage import MIN_EDIT_GAP

    text = "对艾滋病的研究已取得实质性进展;?huī)屑壑?zhí)的治疗(liáo)药物的研制也有了新的突破。"
    (slip,) = find_phase_slips(text)
    assert text[slip.start : slip.end] == "?huī)屑壑?zhí)" and slip.replacement == "有价值"
    assert slip.flag_only and f"under {MIN_EDIT_GAP:g}" in slip.reason
    assert _repair(text) == text.replace("(liáo)", "")  # the leak outside the run goes


def test_searches_that_repair_are_not_charged_to_the_budget_of_the_length():
    """A page whose searches need more than its length allows is still repaired whole: the
    length's budget pays only for the searches that repair nothing, and all searches
    together stay under the ceiling (`earned_cap` times that budget)."""
    from textmend_server.cjk import SearchBudget
    from textmend_server.cjk.slip import STARVED, work_done

    c = corrupt_document(TRADITIONAL, seed=7, pinyin_chars=[], trigger_p=1.0)
    before = work_done()
    found = find_phase_slips(c.text)
    need = work_done() - before
    applied = sum(not p.flag_only for p in found)
    assert applied >= 3
    base = need // 3  # each search fits; the page needs three times that
    assert find_phase_slips(c.text, SearchBudget.flat(base)) == found
    # A ceiling below what the page needs leaves it reported, not repaired.
    starved = find_phase_slips(c.text, SearchBudget.flat(base, earned_cap=1))
    assert all(p.flag_only for p in starved) and any(STARVED in p.reason for p in starved)


@pytest.mark.parametrize(("written", "read_as"), [("utf-8", "gbk"), ("gbk", "big5")])
def test_a_filled_closing_mark_closes_what_the_run_opened(written, read_as):
    """The last character's bytes were lost: `』` closing the run's `『` at the end of its
    line beats `“`, which the model alone prefers after `。`."""
    clean = "北京一位教师说：『好多年春节都没有放礼花了，今晚我们一家特意全体出动。』"
    text = "新华社北京电\n" + wrong_codec(clean, written, read_as) + "\n日本先锋"
    (p,) = find_wrong_codec_runs(text)
    assert p.replacement.endswith("全体出动。』")


def test_a_repair_stops_between_phase_slip_searches_when_the_caller_goes():
    """A block dense with slips takes seconds of searching: the stage asks between searches
    whether the caller is still there, not only the engine between blocks and stages."""
    from textmend_server import Cancelled, repair_text
    from textmend_server.cjk.slip import work_done

    c = corrupt_document(TRADITIONAL, seed=7, pinyin_chars=[], trigger_p=1.0)
    before = work_done()
    repair_text(c.text)
    full = work_done() - before
    calls = 0

    def cancelled() -> bool:
        nonlocal calls
        calls += 1
        return calls > 4  # the checks before three stages, then the phase-slip stage's first

    before = work_done()
    with pytest.raises(Cancelled):
        repair_text(c.text, cancelled=cancelled)
    assert work_done() - before < full / 2


def test_a_lone_unsure_slip_in_long_clean_text_is_reported_not_edited() -> None:
    """Real slips come several to a page; one less-than-sure re-phasing in thousands of clean
    CJK characters is more likely text that looks like a slip (`\\*Q??\\*U` in a man page)."""
    from textmend_server.cjk import LONE_SLIP_CONTEXT

    expected = (FIXTURES / "fortune-openai-departures.expected.txt").read_text(encoding="utf-8")
    chinese = "\n".join(line for line in expected.splitlines()[:26] if line.strip())
    slip = "公司?!彼Q他們的工作"
    [short] = find_phase_slips(slip)
    assert not short.flag_only  # alone in a short text, it is the text's damage
    text = "\n".join([chinese, slip, chinese, chinese])
    assert sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff") >= LONE_SLIP_CONTEXT
    [lone] = find_phase_slips(text)
    assert lone.flag_only and lone.replacement == short.replacement
    assert "not edited" in lone.reason


# A GBK slip run the search leaves unrepaired, with an annotation the converter matched across
# two misread characters inside it (`桌(zhuō)`), and two genuine leaks outside it.
GARBLED_WITH_LEAKS = "大利(lì)的城市街头经??梢钥吹轿藜铱晒檎撸懊桌(zhuō)纪?tái)”希望通过(guò)这一"


def test_no_edit_goes_inside_a_run_reported_as_misread_and_left():
    """Taking `(zhuō)` out of an unrepaired run would turn one garble into another: it is
    reported, while the leaks outside the run are repaired."""
    from textmend_server import repair_text
    from textmend_server.stages import GARBLE_REASON

    result = repair_text(GARBLED_WITH_LEAKS)
    slip = [f for f in result.findings if f.category is Category.CJK_PHASE_SLIP]
    assert slip and "桌(zhuō)" in slip[0].original
    inside = [f for f in result.findings if f.category is Category.RUBY_LEAK]
    assert [f.original for f in inside] == ["桌(zhuō)"]
    assert inside[0].reason.endswith(GARBLE_REASON)
    assert sorted(e.original for e in result.edits) == ["利(lì)", "过(guò)"]
    assert result.text == apply_stages(GARBLED_WITH_LEAKS)
    assert "桌(zhuō)" in result.text and "(lì)" not in result.text
