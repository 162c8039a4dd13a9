"""The engine end to end, on the sample article and on classic mojibake."""

from __future__ import annotations

import json
from pathlib import Path

import ftfy
import pytest

from textmend_server import (
    BinaryContentError,
    EmptyContentError,
    InvalidMinConfidenceError,
    RepairPolicy,
    TooLargeError,
    UnknownEncodingError,
    UnknownPolicyError,
    repair_bytes,
    repair_text,
)
from textmend_server.edits import apply_edits
from textmend_server.engine import Verdict
from textmend_server.policy import Category

FIXTURES = Path(__file__).parent / "fixtures"
ARTICLE = (FIXTURES / "fortune-openai-departures.txt").read_bytes()
ARTICLE_LINES = ARTICLE.decode("utf-8").split("\n")
ENGLISH = "\n".join(ARTICLE_LINES[52:])
CHINESE = "\n".join(ARTICLE_LINES[:52])


@pytest.fixture(scope="module")
def article() -> object:
    return repair_bytes(ARTICLE, label="fortune-openai-departures.txt")


def test_english_half_comes_back_with_zero_edits() -> None:
    result = repair_bytes(ENGLISH.encode("utf-8"))
    assert result.text == ENGLISH
    assert result.edits == []
    assert result.verdict is Verdict.CLEAN
    # The same text is not safe under ftfy's defaults: it straightens the curly quotes.
    assert ftfy.fix_text(ENGLISH) != ENGLISH


def test_every_corrupted_span_of_the_chinese_half_is_reported(article: object) -> None:
    spans = json.loads((FIXTURES / "fortune-openai-departures.spans.json").read_text("utf-8"))
    starts = [0]
    for line in ARTICLE_LINES:
        starts.append(starts[-1] + len(line) + 1)
    touched = article.edits + article.findings
    missed = []
    for span in spans:
        lo = starts[span["line"] - 1] + span["start_col"]
        hi = starts[span["line"] - 1] + span["end_col"]
        if not any(e.original_start < hi and e.original_end > lo for e in touched):
            missed.append(span["corrupted"])
    assert len(spans) == 250
    assert missed == []


def test_article_edits_replay_and_repair_is_idempotent(article: object) -> None:
    assert apply_edits(article.original, article.edits) == article.text
    for edit in article.edits:
        assert article.text[edit.cleaned_start : edit.cleaned_end] == edit.replacement
        assert 0 < edit.confidence <= 1 and edit.reason
    again = repair_text(article.text)
    assert again.edits == []


def test_article_english_half_is_untouched_inside_the_whole(article: object) -> None:
    english_start = len("\n".join(ARTICLE_LINES[:52])) + 1
    assert all(e.original_end <= english_start for e in article.edits)
    assert article.text.endswith(ENGLISH)


def test_repeated_chinese_copy_is_reported_not_deleted(article: object) -> None:
    repeats = [f for f in article.findings if f.category is Category.REPEATED_BLOCK]
    assert repeats
    second_line = article.text.split("\n")[1]
    assert len(second_line) > 40
    assert article.text.count(second_line) == 2


@pytest.mark.parametrize(
    ("broken", "fixed"),
    [
        ("cafÃ©", "café"),
        ("It doesnâ€™t matter", "It doesn’t matter"),
        ("cafÃƒÂ©", "café"),  # UTF-8 encoded twice
        ("Ã¢â‚¬Å“quotedÃ¢â‚¬Â\x9d", "“quoted”"),
    ],
)
def test_classic_mojibake_is_repaired_with_replayable_offsets(broken: str, fixed: str) -> None:
    result = repair_bytes(broken.encode("utf-8"))
    assert result.text == fixed
    assert result.edits and all(e.category is Category.MOJIBAKE for e in result.edits)
    assert apply_edits(result.original, result.edits) == fixed
    assert result.verdict is Verdict.REPAIRED
    assert result.diff.startswith("--- a/document\n+++ b/document\n")


def test_undecodable_bytes_are_kept_as_replacement_characters_and_reported() -> None:
    content = "Grüße aus Köln und schöne Größe".encode() + b"\xc3(" + " über".encode()
    result = repair_bytes(content)
    assert "\ufffd" in result.text
    [finding] = [f for f in result.findings if f.category is Category.UNDECODABLE]
    assert finding.byte_span == (content.index(b"\xc3("), content.index(b"\xc3(") + 1)
    assert result.text[finding.cleaned_start : finding.cleaned_end] == "\ufffd"


def test_fixing_replacement_characters_removes_the_decoders_too_and_still_reports_them() -> None:
    """A caller who asks for U+FFFD to be removed gets all of them removed, the decoder's
    included: the undecodable finding still names the bytes, and repairing the output again
    changes nothing (before, the decoder's U+FFFD survived and a second repair removed it)."""
    content = "Grüße aus Köln".encode() + b"\xc3(" + " über".encode()
    policy = RepairPolicy.from_mapping({"replacement_char": "fix"})
    result = repair_bytes(content, policy=policy)
    assert result.text == "Grüße aus Köln( über"
    [finding] = [f for f in result.findings if f.category is Category.UNDECODABLE]
    assert finding.byte_span == (content.index(b"\xc3("), content.index(b"\xc3(") + 1)
    assert [e.category for e in result.edits] == [Category.REPLACEMENT_CHAR]
    assert repair_text(result.text, policy=policy).edits == []


def test_policy_flag_reports_without_changing() -> None:
    policy = RepairPolicy.from_mapping({"mojibake": "flag"})
    result = repair_bytes("cafÃ©".encode(), policy=policy)
    assert result.text == "cafÃ©"
    assert result.edits == []
    [finding] = result.findings
    assert (finding.original, finding.replacement) == ("Ã©", "é")
    assert result.verdict is Verdict.SUSPECT


@pytest.mark.parametrize("floor", [0.5, 0.8, 0.95])
def test_min_confidence_reports_the_edits_rated_below_it(article: object, floor: float) -> None:
    below = [e for e in article.edits if e.confidence < floor]
    assert below  # the sample article has repairs rated under each floor tried
    strict = repair_bytes(ARTICLE, policy=RepairPolicy(min_confidence=floor))
    assert strict.edits and all(e.confidence >= floor for e in strict.edits)
    assert apply_edits(strict.original, strict.edits) == strict.text
    held = [
        f for f in strict.findings if f"below the request's min_confidence of {floor:g}" in f.reason
    ]
    assert all(f.confidence < floor for f in held)
    # Each held-back edit is reported where it was, with the repair it would have made (and
    # so may be what a held-back repair would have taken with it: `?!?/p>`'s `/p>`).
    reported = {(f.original_start, f.original, f.replacement) for f in held}
    assert {(e.original_start, e.original, e.replacement) for e in below} <= reported
    # What the floor leaves alone is made as before.
    kept = {(e.original_start, e.replacement) for e in article.edits if e.confidence >= floor}
    assert kept <= {(e.original_start, e.replacement) for e in strict.edits}


@pytest.mark.parametrize("floor", [-0.1, 1.5, float("nan")])
def test_min_confidence_outside_0_to_1_is_refused(floor: float) -> None:
    with pytest.raises(InvalidMinConfidenceError, match="from 0 to 1"):
        repair_bytes(b"text", policy=RepairPolicy.from_mapping({}, min_confidence=floor))


def test_bidi_controls_are_reported_even_when_turned_off() -> None:
    policy = RepairPolicy.from_mapping({"bidi_control": "off"})
    result = repair_text("invoice\u202egnp.exe", policy=policy)
    assert result.text == "invoice\u202egnp.exe"
    assert [f.category for f in result.findings] == [Category.BIDI_CONTROL]


def test_tag_leaks_and_fragments_are_removed_and_explained() -> None:
    # The `?` before `/p>` is what a lossy decoder left of the byte that swallowed the `<`:
    # evidence that markup leaked, named in every edit's reason.
    result = repair_text("Some <b>bold</b> text?/p>\nA path a/p> and x < y > z stay.")
    assert result.text == "Some bold text?\nA path a/p> and x < y > z stay."
    reasons = [e.reason for e in result.edits]
    assert reasons[-1].startswith("fragment of an HTML </p> tag that lost its <; ")
    assert "lost the `<` to byte damage" in reasons[-1]
    assert any(r.startswith("HTML <b> tag left in plain text") for r in reasons)


def test_markup_shaped_text_without_evidence_is_flagged_not_removed() -> None:
    text = "Some <b>bold</b> text./p> and std::vector<b> v;"
    result = repair_text(text)
    assert result.text == text and result.edits == []
    assert [f.original for f in result.findings] == ["<b>", "</b>"]
    assert all(f.category is Category.MARKUP_LEAK for f in result.findings)
    assert "nothing else in the document shows" in result.findings[0].reason
    assert result.verdict.value == "suspect"


def test_markup_evidence_is_read_from_the_whole_document_not_one_block() -> None:
    # The only evidence is a glued closing tag at the very end, blocks of text away from the
    # tags it proves leaked.
    filler = "A line of ordinary prose that goes on for a while.\n" * 800
    text = "Start <b>here</b>.\n" + filler + "The end.</p>"
    result = repair_text(text)
    assert result.text == "Start here.\n" + filler + "The end."


def test_html_content_keeps_its_markup() -> None:
    page = "<p>caf\u00c3\u00a9 &amp; cr\u00c3\u00a8me</p>".encode()
    result = repair_bytes(page, content_type="text/html; charset=utf-8")
    assert result.text == "<p>café &amp; crème</p>"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"content": b""}, EmptyContentError),
        ({"content": b"%PDF-1.4\n..."}, BinaryContentError),
        ({"content": b"text", "declared_encoding": "x-klingon"}, UnknownEncodingError),
        ({"content": b"text", "max_bytes": 3}, TooLargeError),
    ],
)
def test_bad_input_raises_an_error_that_says_what_to_do(kwargs: dict, error: type) -> None:
    with pytest.raises(error) as raised:
        repair_bytes(**kwargs)
    assert len(str(raised.value)) > 20


def test_unknown_policy_names_are_refused() -> None:
    with pytest.raises(UnknownPolicyError, match="known:"):
        RepairPolicy.from_mapping({"mojibak": "fix"})


def test_wrong_types_say_which_function_to_call() -> None:
    with pytest.raises(TypeError, match="repair_text"):
        repair_bytes("already text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="repair_bytes"):
        repair_text(b"bytes")  # type: ignore[arg-type]


def test_long_text_is_searched_in_blocks_with_the_same_result() -> None:
    line = "An ordinary line of English text, repeated to make a long document.\n"
    filler = line * (60_000 // len(line))
    text = "cafÃ© first\n" + filler + "middle doesnâ€™t\n" + filler + "last Ã©t\x07Ã©"
    result = repair_text(text)
    assert result.text == "café first\n" + filler + "middle doesn’t\n" + filler + "last été"
    assert apply_edits(text, result.edits) == result.text
    assert len(result.edits) == 5


def test_cancelled_work_stops_between_blocks() -> None:
    from textmend_server import Cancelled

    text = ("cafÃ© " * 20 + "\n") * 2_000
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        repair_text(text, cancelled=cancelled)
    assert len(calls) == 3


@pytest.mark.parametrize(
    "text",
    [
        # Rules of `=` under and over titles.
        ("=" * 72 + "\nRelease notes\n" + "=" * 72 + "\n\nFixed a crash.\n") * 3,
        # A licence's stock sentence, said once per file group.
        "".join(
            f"Files: src/{name}/*\nCopyright: 2020 Example Authors\nLicense: MIT\n"
            " THE SOFTWARE IS PROVIDED AS IS, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.\n\n"
            for name in ("core", "net", "ui", "docs")
        ),
        # A sentence said twice in a long document.
        "We recommend upgrading as soon as possible to the fixed release.\n"
        + "".join(
            f"Paragraph {n} says something new about the release and its changes.\n"
            for n in range(40)
        )
        + "We recommend upgrading as soon as possible to the fixed release.\n",
    ],
)
def test_repeats_of_clean_documents_are_not_reported(text: str) -> None:
    result = repair_text(text)
    assert not [f for f in result.findings if f.category is Category.REPEATED_BLOCK]


def test_the_repeat_check_keeps_no_copy_of_a_document_of_short_lines() -> None:
    """`may_repeat` runs on every document; on one of short lines (numbers, a word list) it
    held each line, 15 times the text in all. Memory counted by tracemalloc, not time."""
    import tracemalloc

    from textmend_server.repeats import may_repeat

    text = "".join(f"{n}\n" for n in range(200_000))
    prose = "A paragraph of prose, long enough to be read as one by the stage.\n"
    tracemalloc.start()
    try:
        assert not may_repeat(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(text) // 10
    assert may_repeat(prose + text + prose)  # a repeated paragraph is still seen


def test_a_page_stored_twice_is_reported() -> None:
    page = "".join(
        f"Paragraph {n} of the article tells its reader something the others do not.\n"
        for n in range(8)
    )
    result = repair_text(page + "\n" + page)
    repeats = [f for f in result.findings if f.category is Category.REPEATED_BLOCK]
    assert [(f.original_start, f.original_end) for f in repeats] == [(len(page) + 1, 2 * len(page))]


def test_a_long_finding_carries_its_text_cut_and_its_whole_span() -> None:
    """A repeated run longer than `MAX_FINDING_TEXT` is reported with its first code points
    only, and a span covering all of it; nothing in it changed, so the cleaned text holds it
    whole. Through the response too: no suggestion, replacement equal to original."""
    from textmend_server.capping import MAX_FINDING_TEXT
    from textmend_server.convert import to_response

    page = "".join(
        f"Paragraph {n} of the long article tells its reader something the others do not.\n"
        for n in range(60)
    )
    assert len(page) > 2 * MAX_FINDING_TEXT
    result = repair_text(page + "\n" + page)
    (repeat,) = [f for f in result.findings if f.category is Category.REPEATED_BLOCK]
    assert (repeat.original_start, repeat.original_end) == (len(page) + 1, 2 * len(page))
    assert repeat.original == page[:MAX_FINDING_TEXT] == repeat.replacement
    assert result.text[repeat.cleaned_start : repeat.cleaned_end] == page[:-1]
    (shown,) = to_response(result, "doc").findings
    assert shown.original == shown.replacement == page[:MAX_FINDING_TEXT]
    assert shown.suggestion == ""
    # A short one is whole.
    text = page[:600] + "\n" + page[:600]
    (short,) = repair_text(text).findings
    assert short.original == text[short.original_start : short.original_end] == short.replacement


def test_controls_a_writer_may_have_typed_are_reported_not_removed() -> None:
    # A help text's BEL, a catalogue's unit separators and argp's vertical tab are content.
    text = "  \x07   ring the bell\nNumber\x1f: %s%%0AOwner\x1f: %s\nCatalogue.\x0bIf FILE is -"
    result = repair_text(text)
    assert result.text == text and result.edits == []
    assert [(f.original, f.category) for f in result.findings] == [
        ("\x07", Category.CONTROL_CHAR),
        ("\x1f", Category.CONTROL_CHAR),
        ("\x1f", Category.CONTROL_CHAR),
    ]
    # Inside a word, in a text that holds few, a control is damage.
    assert repair_text("be\x07ll").text == "bell"
    assert repair_text("Ã\x07©t\x7fé").text == "été"


@pytest.mark.parametrize(
    "text",
    [
        # A fortune file's underline: three underscores struck over by the word.
        "The client is *___\b\b\bnot* a suspect.\n%\n\x07\x07\x07 BOOM\n",
        # An Info file's tag table (DEL before each offset) and an index entry's marker.
        "\x1f\nTag Table:\nNode: Top\x7f722\nNode: Intro\x7f1530\nNode: Usage\x7f4012\n\x1f",
        "* Menu:\n\x00\x08[index\x00\x08]\n* config file:  Files.   (line 7)\n",
        # Vim macros: ESC and Ctrl-V typed into mappings.
        "map N   C/n\x1b\nmap ,x  :s/a/\x16\x0d/g\x1b\nmap ,y  yyp\x1b\n",
        # A bare ESC where a word stood, and a broken colour sequence.
        "Si pudiera comprar a \x1b por lo que vale\n",
        "edit “~/.bashrc”\x1b[;\x1b[34;1mm here\n",
        # groff: BEL as an escape's delimiter in a macro file that has no roff header.
        ".ie \\B\x07\\*[cols]\x07 \\\n.  nr cols 3\n",
        # Several controls between words: a pattern, whatever made it.
        "a\x07 b\x08 c\x07 d",
    ],
)
def test_controls_that_recur_or_stand_between_words_are_reported_not_removed(text: str) -> None:
    """Writable controls a real file holds on purpose (found removed in Debian documents
    outside the real corpus) come back untouched, each reported."""
    result = repair_text(text)
    assert result.text == text and result.edits == []
    assert any(f.category is Category.CONTROL_CHAR for f in result.findings)


def test_a_leading_bom_removed_by_decoding_is_reported() -> None:
    result = repair_bytes(b"\xef\xbb\xbfplain text")
    assert result.text == "plain text" and result.verdict.value == "clean"
    [finding] = result.findings
    assert finding.category is Category.ENCODING and finding.byte_span == (0, 3)
    assert "byte order mark removed" in finding.reason


def test_a_decoding_in_doubt_is_suspect_and_nothing_in_it_is_rewritten() -> None:
    # Three bytes that read as Cyrillic in several code pages, none clearly: whatever text
    # comes out may be mojibake of the right one.
    result = repair_bytes(b"\xc0\xc1\xc2 x\x07y")  # (the control would go, inside a word)
    assert result.decoded is not None and result.decoded.in_doubt
    assert result.verdict.value == "suspect" and result.edits == []
    assert result.text == result.original
    encoding = [f for f in result.findings if f.category is Category.ENCODING]
    assert "also plausible" in encoding[0].reason and "held back" in encoding[0].reason


def test_the_proto_names_the_informational_categories_the_verdict_ignores() -> None:
    """The contract's description of VERDICT_REPAIRED lists exactly the categories whose
    findings leave a document repaired rather than suspect (it once listed bidi controls too)."""
    from pathlib import Path

    from textmend_server.policy import INFORMATIONAL

    proto = Path(__file__).parents[1] / "proto" / "textmend" / "v1" / "textmend.proto"
    text = proto.read_text(encoding="utf-8")
    repaired = text[text.index("enum Verdict") : text.index("VERDICT_REPAIRED = 2;")]
    named = {c for c in Category if f"CATEGORY_{c.value.upper()}" in repaired}
    assert named == set(INFORMATIONAL)
    result = repair_text("caf\u00c3\u00a9 invoice\u202egnp.exe")
    assert result.edits and result.verdict.value == "suspect"


def test_detection_time_is_reported_apart_from_decoding() -> None:
    """`timings.detect_us` was always 0: choosing a codec is now timed on its own (bookkeeping,
    not speed: only which bucket the time lands in is checked)."""
    legacy = repair_bytes("Привет, как дела? Всё хорошо.".encode("cp1251"))
    assert legacy.timings["detect"] > 0
    assert legacy.timings["total"] >= legacy.timings["detect"] + legacy.timings["decode"]
    assert repair_bytes(b"plain ASCII").timings["detect"] == 0


def test_the_repeat_finder_remembers_a_bounded_number_of_lines() -> None:
    """`find_repeated_blocks` holds at most `REPEAT_MAX_LINES` distinct lines (about 120 bytes
    each), whatever the document: one of a million numbered lines and a repeated paragraph
    took 18 times its size. Repeats of the lines remembered are still found."""
    import tracemalloc

    from textmend_server import repeats

    page = "".join(
        f"Paragraph {n} of the article tells its reader something the others do not.\n"
        for n in range(60)  # past REPEAT_ALWAYS_CHARS: reported whatever the document's length
    )
    lines = "".join(f"{n}\n" for n in range(2 * repeats.REPEAT_MAX_LINES))
    text = page + lines + page
    tracemalloc.start()
    try:
        found = repeats.find_repeated_blocks(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(p.start, p.end) for p in found] == [(len(page) + len(lines), len(text) - 1)]
    assert peak < repeats.REPEAT_MAX_LINES * 160  # about 120 bytes a line; 230 before


# LibreOffice's Chinese and Korean help hold characters that lost their lead bytes, leaving a C1
# control between letters; in English a C1 control is the windows-1252 quote it stands for.
@pytest.mark.parametrize(
    "text",
    [
        "可用于在应用禀\x8b序间交换数据库或电子表格数据。",
        "포인터가 십자 눈금으로 바뀔 때까지 계속 누릅니다.\n§\x88우스 버튼을 누른 상태에서",
    ],
)
def test_a_c1_control_among_letters_of_another_script_is_not_read_as_windows_1252(
    text: str,
) -> None:
    """It is what is left of a broken character: not `‹` or `ˆ`, just a stray control."""
    result = repair_text(text)
    assert [(e.category, e.replacement) for e in result.edits] == [(Category.CONTROL_CHAR, "")]
    assert result.text == "".join(ch for ch in text if not "\x80" <= ch <= "\x9f")


def test_c1_controls_in_english_are_the_windows_1252_quotes_they_stand_for() -> None:
    assert repair_text("He said \x93hello\x94 twice.").text == "He said “hello” twice."


def test_no_content_type_is_an_empty_one() -> None:
    """None, as for `declared_encoding`, means "decide from the bytes"."""
    page = b"<html><body><p>caf\xc3\x83\xc2\xa9</p></body></html>"
    for content in (page, "naÃ¯ve cafÃ©".encode()):
        none, empty = (repair_bytes(content, content_type=t) for t in (None, ""))
        assert (none.text, none.edits, none.findings) == (empty.text, empty.edits, empty.findings)
        assert none.text != content.decode()


def test_an_html_pages_script_and_style_are_code_not_text() -> None:
    """core-js, minified into a news page (newspaper4k's fox13now fixture), checks that `trim`
    leaves a zero-width space and a NEL alone: read as windows-1252, its NEL became `…`. In a
    page's script and style elements an edit is reported, not made; the page's text is still
    repaired."""
    page = (
        "<html><body><p>caf\u00c3\u00a9 au lait</p>\n<script>a=function(t){return!!u[t]()||"
        '"\u200b\x85"!="\u200b\x85"[t]()};var s="caf\u00c3\u00a9";</script>\n'
        "<style>p:after{content:'\u00c3\u00a9'}</style></body></html>\n"
    )
    repaired = repair_bytes(page.encode("utf-8"), content_type="text/html")
    assert [(e.original, e.replacement) for e in repaired.edits] == [("\u00c3\u00a9", "é")]
    left = [f for f in repaired.findings if "<script> or <style>" in f.reason]
    assert "\u00c3\u00a9" in {f.original for f in left}
    # The NEL stands in a string of invisible characters alone: reported for that, first.
    assert "\x85" in {f.original for f in repaired.findings}
    assert repaired.text == page.replace("caf\u00c3\u00a9 au", "café au", 1)


def test_windows_1252_quotes_among_chinese_are_restored_in_pairs() -> None:
    """A Hong Kong news article (newspaper4k's Chinese fixture) holds windows-1252 quotes read
    as Latin-1 around a word: a pair is quotes, restored, where a lone C1 control among CJK is
    a broken character's remnant, removed."""
    text = "普遍指责梁振英\x93撒谎\x94，要求他马上辞职下台。"
    repaired = repair_bytes(text.encode("utf-8"))
    assert repaired.text == "普遍指责梁振英“撒谎”，要求他马上辞职下台。"
    assert {e.category.value for e in repaired.edits} == {"mojibake"}
    assert repair_bytes("应用禀\x8b序间".encode()).text == "应用禀序间"


def test_a_windows_1256_joiner_read_as_latin1_is_restored_not_removed() -> None:
    """hazm's Persian word list holds `این\\x9dقدر`: windows-1256 writes the zero-width
    non-joiner as 0x9D, which Latin-1 reads as a C1 control. Removed, it would join the two
    parts the writer kept apart."""
    repaired = repair_bytes("این\x9dقدر خوب است".encode())
    assert repaired.text == "این\u200cقدر خوب است"
    assert [(e.category.value, e.replacement) for e in repaired.edits] == [
        ("control_char", "\u200c")
    ]
