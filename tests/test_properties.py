"""Property-based tests of the engine's contract, on any bytes, charset and content type.

For every input, `repair_bytes` either refuses it with a documented `InputError` or returns
a result whose edits rebuild the text from the original, leave everything between them
alone, encode as UTF-8, grow the text by a bounded amount, and leave nothing for a second
pass to repair. The invariants live in `fuzz/fuzz_engine.py` (`check_result`), which the
fuzzer checks too.

Failures fuzzing found are kept below as tests holding their minimal examples.

The default profile keeps the run short; `HYPOTHESIS_PROFILE=long` runs far more examples.
"""

from __future__ import annotations

import base64
import os
from itertools import pairwise

import pytest
from fuzz_target import fe
from hypothesis import HealthCheck, event, example, given, settings, target
from hypothesis import strategies as st

from textmend_server import RepairPolicy, UnknownEncodingError, engine, repair_bytes, repair_text
from textmend_server.cjk.budget import SearchBudget
from textmend_server.cjk.slip import STARVED
from textmend_server.fixes import STRAY_RE, find_stray_characters
from textmend_server.policy import Action, Category

settings.register_profile(
    "default",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

CHARSETS = st.sampled_from(fe.CHARSETS)
CONTENT_TYPES = st.sampled_from(fe.CONTENT_TYPES)
# Any code point but a surrogate: a Python str holding one is not text a caller can send.
CHARACTERS = st.characters(exclude_categories=("Cs",))


@st.composite
def texts(draw: st.DrawFn, max_pieces: int = 40) -> str:
    """Text mixing the fragments that reach the detectors with arbitrary characters."""
    piece = st.one_of(
        st.sampled_from(fe.FRAGMENTS),
        st.sampled_from(fe.FRAGMENTS),
        CHARACTERS,
        st.text(CHARACTERS, max_size=6),
    )
    return "".join(draw(st.lists(piece, max_size=max_pieces)))


@st.composite
def encoded_texts(draw: st.DrawFn) -> bytes:
    """Such text written in a real codec, some bytes then deleted (byte-phase slips)."""
    encoding = draw(st.sampled_from(fe.TEXT_ENCODINGS))
    raw = bytearray(draw(texts()).encode(encoding, draw(st.sampled_from(["replace", "ignore"]))))
    for _ in range(draw(st.integers(0, 3))):
        if len(raw) > 1:
            del raw[draw(st.integers(0, len(raw) - 1))]
    return bytes(raw)


@st.composite
def cjk_bytes(draw: st.DrawFn) -> bytes:
    """A stretch of CJK prose in a double-byte codec with a few bytes deleted."""
    encoding = draw(st.sampled_from(fe.DBCS_ENCODINGS))
    start = draw(st.integers(0, len(fe._CJK_TEXT) - 1))
    length = draw(st.integers(1, 40))
    raw = bytearray((fe._CJK_TEXT * 2)[start : start + length].encode(encoding, "ignore"))
    for _ in range(draw(st.integers(0, 3))):
        if len(raw) > 1:
            del raw[draw(st.integers(0, len(raw) - 1))]
    return bytes(raw)


CONTENT = st.one_of(st.binary(max_size=200), encoded_texts(), cjk_bytes())


def _check_bytes(content: bytes, declared: str | None, content_type: str) -> None:
    """repair_bytes on one request: refused as documented, or a result honouring the contract."""
    result = fe.run_request(content, declared, content_type, RepairPolicy())
    if result is None:
        event("refused with an InputError")
        return
    event(f"verdict: {result.verdict.value}")
    if result.edits:
        target((len(result.text) - len(result.original)) / len(result.edits), label="growth")


@given(content=CONTENT, declared=CHARSETS, content_type=CONTENT_TYPES)
def test_repair_bytes_keeps_its_contract(
    content: bytes, declared: str | None, content_type: str
) -> None:
    """(a)-(g) for repair_bytes: any bytes, any declared charset, plain text or HTML."""
    _check_bytes(content, declared, content_type)


@given(text=texts(max_pieces=60), html=st.booleans())
def test_repair_text_keeps_its_contract(text: str, html: bool) -> None:
    """The same contract for text already decoded, where every fragment reaches a stage."""
    policy = RepairPolicy(html=html)
    fe.check_result(repair_text(text, policy=policy), policy)


@given(
    lines=st.lists(texts(max_pieces=12), min_size=2, max_size=12),
    block=st.integers(1, 48),
    html=st.booleans(),
)
def test_the_contract_holds_across_block_boundaries(
    lines: list[str], block: int, html: bool
) -> None:
    """Long documents are searched a block of lines at a time (`engine.BLOCK` code points,
    16K): with tiny blocks, every text here spans many, and a repair near a boundary must
    keep the contract as well as one inside a block."""
    text = "\n".join(lines)
    policy = RepairPolicy(html=html)
    config = engine.EngineConfig(block=block)
    event(f"blocks: {min(5, sum(1 for _ in engine.blocks(text, config)))} (5: five or more)")
    fe.check_result(repair_text(text, policy=policy, config=config), policy, config=config)


@given(data=st.binary(max_size=300))
def test_fuzz_target_accepts_any_bytes(data: bytes) -> None:
    """The fuzz target itself (all policies and codecs) on bytes hypothesis shrinks well."""
    fe.TestOneInput(data)


# Failures fuzzing found, each with its minimal example.


def test_non_charset_codec_names_are_unknown_encodings() -> None:
    """Found by fuzzing: Python codec names that are not charsets reached the codec."""
    for name, content in (("undefined", b"x"), ("punycode", b" "), ("rot13", b"x")):
        with pytest.raises(UnknownEncodingError):
            repair_bytes(content, declared_encoding=name)
    with pytest.raises(UnknownEncodingError):
        repair_bytes(b"\\ud800\xe9", declared_encoding="unicode_escape")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ã\x07©", "é"),  # removing the control character makes mojibake
        # (The glued `</p>` is the evidence that markup leaked into these documents.)
        ("<<b>b>x<</b>/b>.</p>", "x."),  # removing the inner tags leaves tags
        ("&<b>lt;</b> done.</p>", "< done."),  # removing a tag joins an entity
        # The mojibake repair turns `œ/p>` into `“/p>`: a fragment after byte damage, the
        # evidence, appears only in the second pass.
        ("â€œ/p>â€。Ã", "“â€。Ã"),
        # Each removed annotation put the next one straight after its host.
        ("一個\u00e6\u0096\u0087" + "(wén)" * 12 + "件", "一個文件"),
    ],
)
def test_damage_exposed_by_a_repair_is_repaired_too(text: str, expected: str) -> None:
    """Found by fuzzing: a single pass left damage for a second repair to find."""
    once = repair_text(text)
    assert once.text == expected
    assert repair_text(once.text).edits == []


def test_a_re_phasing_that_invents_characters_is_only_reported() -> None:
    """Found by fuzzing: a wall of one GBK character re-phased, with a character restored
    before every pair, read as a repeated word and grew the text by 23 characters."""
    wall = "卸".encode("gbk")
    content = (
        wall + b"?\xc3\xa0??" + wall * 18 + b"&frac14;" + wall * 4 + b")?" + wall * 23
    ) + b"the the the &"
    result = repair_bytes(content, declared_encoding="gbk")
    fe.check_result(result, RepairPolicy(), content=content)
    invented = [f for f in result.findings if "dropped pairs" in f.reason]
    assert invented and invented[0].category == Category.CJK_PHASE_SLIP
    assert all(e.category != Category.CJK_PHASE_SLIP for e in result.edits)


def test_a_run_walking_through_codecs_is_left_alone() -> None:
    """Found by fuzzing: one rare character repeated, re-decoded GBK→Big5 in each pass
    ('懠…' → '煦…' → '分…'), so that repairing the result again changed it again."""
    content = (
        b"?\x81}?\x81\xf7"
        + b"\x91\xbc" * 4
        + b"?"
        + b"\x91\xbc" * 7
        + b"the the cafe ?????"
        + b"?\x81\xf7" * 4
        + b"&#xD800;"
        + b"?\x81\xf7" * 3
        + b"?\x81}" * 6
        + b">?????"
    )
    # The text as the fuzzer's input was decoded then (the declared GB18030): which codec a
    # decoder picks for such bytes is detection's business; this is about the repair.
    policy = RepairPolicy(overrides={category: Action.FIX for category in Category}, html=True)
    result = repair_text(content.decode("gb18030"), policy=policy)
    fe.check_result(result, policy)
    assert "懠懠懠懠懠懠懠" in result.text


def test_more_suspect_runs_than_the_budget_covers_are_all_reported() -> None:
    """Found by fuzzing: a block with more phase slips than its search budget covers had the
    first ones edited, and a second repair (with a budget of its own) edited the rest."""
    content = base64.b64decode(
        "pLOk7KTPG1szMW0mYW1wO2FtcDuEk+aWh+WtlyYjMDvufXRoZSB0aGUgG1szMW0/KG5pIGhhbyk/ocAmI3hE"
        "ODAwO6SzpOykzz8oemiorW5nKRtbMzFtP6HApLOk7KTPG1szMW0mYW1wO2FtcDuEk+aWh+WtlyZhbXA7YW1w"
        "O+59dGhlIHRoZSAbWzMxbXRoZSB0aGUgG1szMW25q8u+PyGxy1HL+4KDPyYjeEQ4MDA7hJO5q8u+PyGxy1HL"
        "+4KD5paH5a2XKbmry74/IbHLUcv7goO5q8u+PyGxy1HL+4KDP3RoZSAmYW1wO25hP3ZlIHRoZSAKpLOk7KTP"
        "dGhlICZhbXA7JiN4RDgwMDuEk7mry74/IbHLUcv7goPmloflrZcpuavLvj8hsctRy/uCgz8/Pz8/PxtbMzFt"
        "JmFtcDthbXA7hJPmloflrZcmYW1wO2FtcDvufXRoZSB0aGUgG1szMW10aGUgdGhlIBtbMzFtuavLvj8hsctR"
        "y/uCgz8mI3hEODAwO4STuavLvj8hsctRy/uCg+aWh+Wtlym5q8u+PyGxy1HL+4KDuavLvj8hsctRy/uCg7mr"
        "y74/IbHLUcv7goO5q8u+PyGxy1HL+4KDuavLvj8hsctRy/uCg7mry74/IbHLUcv7goMbWzMxbQ=="
    )
    # Read as Big5 with its undecodable bytes replaced, as the input was decoded then; with
    # the fill searches' budget of then (the slip searches' floor and share), under which two
    # runs are found before it runs out (the default's smaller one runs out at the first).
    budget = SearchBudget(fill_floor=150_000, fill_budget_per_char=60)
    then = engine.EngineConfig(search_budget=budget)
    result = repair_text(content.decode("big5", errors="replace"), config=then)
    fe.check_result(result, RepairPolicy())
    searches = {Category.CJK_PHASE_SLIP, Category.CJK_WRONG_CODEC}
    # Where the budget ran out, and the runs found before it: reported, for want of budget or,
    # when already too unsure to edit, for that.
    ran_out = [f for f in result.findings if "ran out here" in f.reason]
    assert ran_out and {f.category for f in ran_out} <= searches
    assert [f for f in result.findings if f.category in searches and f not in ran_out]
    assert not [e for e in result.edits if e.category in searches]
    starved = [f for f in result.findings if f.reason.endswith(STARVED)]
    assert {f.category for f in starved} <= searches


def test_a_second_repair_of_unrepaired_slips_changes_nothing() -> None:
    """Found by fuzzing: the search budget was charged only when a shortlist was not cached,
    so a second repair in a warm process could search further than the first and edit."""
    text = "公司?!彼Q他們??他公司?!彼Q他們???枳\r\n??他公司?!彼Q他們??í??"
    for _ in range(2):  # cold and warm caches
        once = repair_text(text)
        assert repair_text(once.text).edits == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("これは?}?}?}?}です", "これはママママです"),
        ("これは?}?B?}?Bです", "これはマ。マ。です"),
    ],
)
def test_a_slip_that_follows_a_repaired_slip_is_repaired_in_the_same_pass(
    text: str, expected: str
) -> None:
    """Found by fuzzing: in `?}?B` the second `?` follows ASCII until `?}` reads `マ`, so
    each pass repaired one more slip of a chain, and a chain longer than the passes was left
    for a second repair to continue."""
    once = repair_text(text)
    assert once.text == expected
    assert repair_text(once.text).edits == []


def test_a_cascade_through_four_stages_is_finished_in_one_repair() -> None:
    """Found by fuzzing: Shift-JIS read as latin-1, then a C1 control made cp1252, then a
    wrong-codec run, then a chain of slips: each pass exposed the next, and three passes
    left a `?B` (a misread `。`) for a second repair. Since Latin-looking runs are re-decoded
    before ftfy and the stray stage read them, the runs read as the bytes say (`?\x81}` is
    Shift-JIS `?±`, once re-phased into `マ?`)."""
    content = (
        b"\x82\xb1\x82\xea\x82\xcd\x82\xb1\x82\xea\x82\xcd?\x81}?\x07\x1b[31m\x81B"
        b"\x1b[31m???\x82\xb1\x82\xea\x82\xcd?\x81B\x81B?\x81}the "
    )
    # Read as the declared latin-1, as the input was decoded then.
    result = repair_text(content.decode("latin-1"))
    fe.check_result(result, RepairPolicy())
    # The terminal sequences are reported, not removed, so the `\x81B` after one stays apart;
    # so is the BEL before them (not inside a word).
    assert result.text.startswith("これはこれは?±?\x07\x1b[31mB")
    assert result.text.endswith("これは?。。?±the ")
    assert repair_text(result.text).edits == []


def test_known_cjk_phase_slip_recheck() -> None:
    """Minimal example: '??<b>?‘¼Œö' as HTML needs two passes, and the second is wrong."""
    policy = RepairPolicy(html=True)
    once = repair_text("??<b>?‘¼Œö", policy=policy).text
    assert once == "??<b>?他公"
    assert repair_text(once, policy=policy).text == once


_STRAY_ALPHABET = st.sampled_from(
    [
        *"ab é中ไ\n\t[m0;",
        *("\x00", "\x1b", "\x85", "\ufffd", "\ue000", "\ufdd0", "\ufeff", "\u200b", "\u2060"),
        *("\u202e", "\u2066", "\U0010fffd", "\U0001fffe", "\u200d"),
    ]
)


@given(st.lists(_STRAY_ALPHABET, max_size=40).map("".join))
def test_stray_scan_finds_what_the_full_pattern_finds(text: str) -> None:
    """The stray finder tries its pattern only where a one-class scan stops; that must find
    exactly what running the pattern over the whole text finds."""
    found = [(p.start, p.end, p.category.value) for p in find_stray_characters(text)]
    assert found == [(m.start(), m.end(), m.lastgroup) for m in STRAY_RE.finditer(text)]


def _summary(result: fe.Repaired) -> tuple[str, list[tuple[object, ...]], list[tuple[object, ...]]]:
    def key(e: fe.Edit) -> tuple[object, ...]:
        return (e.original_start, e.original_end, e.category.value, e.replacement)

    return result.text, [key(e) for e in result.edits], [key(f) for f in result.findings]


# Texts where a repair exposes damage for a later pass, with the same text far away, and
# something only reported elsewhere: the findings kept from the first pass must stay.
_EXPOSED = [
    "Ã\x07©",
    "<<b>b>",
    "&<b>lt;",
    "<<b>b>x<</b>/b>.</p>",
    "&<b>lt;</b> done.</p>",
    "â€œ/p>â€。Ã",
    "x\ufffd Ã\x07©\n" + "y" * 400 + "\ufffd Ã©\n" + "z\u202e &amp;",
    "&am<i>p;amp;\n\ue000 a\u200bb <b\nclass='x'>\x1b[31m",
    # A pinyin leak exposed in the first pass and removed in the second, before the tags
    # the first pass exposed are removed: later stages must see the windows moved.
    "ab\nChatGPT創\x07(chuàng)建者 <b\x07>粗</b\x07> Ã\x07©\n" + "z" * 700 + "<i\x07>\n",
]
_EXPOSED_TEXTS = st.builds(
    "".join, st.lists(st.one_of(st.sampled_from(_EXPOSED), texts(max_pieces=10)), max_size=6)
)


@example(text=_EXPOSED[3], policy=fe.POLICIES[0], html=False)
@example(text=_EXPOSED[4], policy=fe.POLICIES[2], html=False)
@example(text=_EXPOSED[5], policy=fe.POLICIES[0], html=False)
# Three BELs in the document, one in the window a later pass looked at: the window alone
# counted too few to call them the document's own (`fixes.ControlContext`).
@example(
    text="Ã\x07©x\ufffd Ã\x07©\n" + "y" * 400 + "\ufffd Ã©\nz\u202e &amp;Ã\x07©",
    policy=fe.POLICIES[0],
    html=False,
)
@given(
    text=st.one_of(texts(max_pieces=80), _EXPOSED_TEXTS),
    policy=st.sampled_from(fe.POLICIES),
    html=st.booleans(),
)
def test_passes_after_the_first_find_what_whole_passes_find(
    text: str, policy: tuple[str, dict[Category, Action]], html: bool
) -> None:
    """After the first pass the local stages look only around what changed; the result must
    be the one every stage running over the whole text in every pass gives."""
    repair_policy = RepairPolicy(overrides=policy[1], html=html)
    narrow = repair_text(text, policy=repair_policy, include_diff=False)
    whole = repair_text(
        text,
        policy=repair_policy,
        include_diff=False,
        config=engine.EngineConfig(narrow_passes=False),
    )
    assert _summary(narrow) == _summary(whole)


_DIFF_ALPHABET = st.sampled_from([*"ab 1.\n", *"中文，。“”「」", *"Ã©â€œæ–‡ï¼Œ", "\ufffd"])
_DIFF_TEXTS = st.lists(_DIFF_ALPHABET, max_size=30).map("".join)


@given(old=_DIFF_TEXTS, new=_DIFF_TEXTS)
def test_mojibake_diff_edits_rebuild_the_repaired_text(old: str, new: str) -> None:
    """However the texts differ (runs re-decoded in place, marks repaired, ASCII changed),
    the edits the mojibake stage reports turn the old text into the new one, in order and
    without overlapping, and each changes something."""
    from textmend_server.fixes import _diff_proposals, apply_proposals

    proposals = _diff_proposals(old, new, 0, Category.MOJIBAKE, "", 1.0)
    assert apply_proposals(old, proposals) == new
    ends = [(p.start, p.end) for p in proposals]
    assert all(a[1] <= b[0] for a, b in pairwise(ends))
    assert all(old[p.start : p.end] != p.replacement for p in proposals)
