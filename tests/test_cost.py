"""The cost model's bounds (issue 16), asserted on work units and counts, never on time.

The inputs are the adversarial corpus's kinds (`bench/adversarial.py`) at small sizes: the
searches' work stays within their budget for the text's length, a budget that runs out
leaves findings and no edits, findings of one category are capped with the right count, and
the process's memos stay within the cache budget.
"""

from __future__ import annotations

import random
import sys
from itertools import pairwise
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import adversarial

from textmend_server import cache, engine, repair_bytes, repair_text
from textmend_server.cjk import slip, work_done
from textmend_server.policy import Category


def _work_bound(text: str) -> int:
    """What the two search stages may spend on text through the engine: per block and per
    pass, the phase-slip budget with everything its repairs can earn, and the wrong-codec
    budget."""
    from textmend_server import cjk

    blocks = len(text) // engine.BLOCK + 1
    n = min(len(text), engine.BLOCK + 200)
    slips = max(
        cjk.call_budget(n), cjk.DEFAULT_BUDGET.earned_cap * slip.DEFAULT_BUDGET.call_ceiling
    )
    fills = cjk.DEFAULT_BUDGET.for_fills(n)
    # A search may overshoot its budget by what one step costs (a beam of candidates).
    step = slip.BEAM * 2 * slip.CHILDREN * 4
    return engine.MAX_PASSES * blocks * (slips + fills + 2 * step)


KINDS = ["random_unicode", "random_cjk_qmark", "han_qmark", "latin_high", "fffd_han", "fuzz_slow"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [100, 3000])
def test_search_work_stays_within_budget_times_length(kind: str, size: int) -> None:
    text = adversarial.KINDS[kind](size, random.Random(f"16:{kind}:{size}"))
    before = work_done()
    repair_text(text)
    assert work_done() - before <= _work_bound(text)


def test_work_per_character_falls_as_the_text_grows() -> None:
    """The floor is per block, the rest per character: past a block's floor, a text ten
    times longer costs at most about ten times the work."""
    rng = random.Random(7)
    small = adversarial.han_qmark(2_000, rng)
    large = adversarial.han_qmark(20_000, rng)
    w0 = work_done()
    repair_text(small)
    w_small = work_done() - w0
    w0 = work_done()
    repair_text(large)
    w_large = work_done() - w0
    assert w_small <= slip.call_budget(len(small)) * engine.MAX_PASSES
    assert w_large <= 10 * slip.call_budget(len(small)) * engine.MAX_PASSES


def test_a_budget_that_runs_out_flags_and_does_not_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Han and `?` interleaved: the phase-slip search runs out of its budget, says so in a
    finding where it stopped, and edits nothing."""
    from textmend_server import cjk
    from textmend_server.cjk.slip import stage

    limits = cjk.SearchBudget.flat(20_000)
    # Most of this text is let go before any search (it reads as noise); the budget logic is
    # what is tested here, so every trigger is searched.
    monkeypatch.setattr(stage, "reads_as_noise", lambda *args: False)
    text = adversarial.han_qmark(3_000, random.Random(3))
    found = cjk.find_phase_slips(text, limits)
    assert found and all(p.flag_only for p in found)
    assert any("ran out here" in p.reason for p in found)
    result = repair_text(text, config=engine.EngineConfig(search_budget=limits))
    assert not [e for e in result.edits if e.category is Category.CJK_PHASE_SLIP]
    assert any(
        f.category is Category.CJK_PHASE_SLIP and "ran out here" in f.reason
        for f in result.findings
    )


def test_the_engine_searches_within_the_budget_its_configuration_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The budget reaches the search stages through `EngineConfig`, not a module setting: the
    same text runs out under a tiny budget and not under the default."""
    from textmend_server import cjk
    from textmend_server.cjk.slip import stage

    # Han and `?` reads as noise from end to end and is not searched at all; the first
    # triggers of its line, with too little before them to judge, are searched here.
    monkeypatch.setattr(stage, "stretch_reads_as_noise", lambda *args: False)
    text = adversarial.han_qmark(300, random.Random(3))

    def ran_out(result: engine.Repaired) -> int:
        return sum("ran out here" in f.reason for f in result.findings)

    assert ran_out(repair_text(text)) == 0
    tiny = engine.EngineConfig(search_budget=cjk.SearchBudget.flat(200))
    assert ran_out(repair_text(text, config=tiny)) == 1


def test_a_dense_page_that_runs_out_edits_none_of_its_slips():
    """Real slips, too many for the budget and its ceiling (searches that repair are charged
    only to the ceiling): every one is reported, none edited, and the place the search
    stopped is a finding (all or nothing keeps repairing idempotent)."""
    from corruptors import corrupt_document
    from test_cjk import TRADITIONAL

    from textmend_server import cjk

    c = corrupt_document(TRADITIONAL, seed=7, pinyin_chars=[], trigger_p=1.0)
    limits = cjk.SearchBudget.flat(30_000, earned_per_repair=0, earned_cap=1)
    found = cjk.find_phase_slips(c.text, limits)
    assert found and all(p.flag_only for p in found)
    assert sum("ran out here" in p.reason for p in found) == 1


def test_wrong_codec_budget_that_runs_out_is_reported() -> None:
    from corruptors import wrong_codec

    from textmend_server.cjk import SearchBudget, codecrun

    clean = "保护消费者的价格权益，是价格法的主要立法宗旨之一。"
    bad = wrong_codec(clean, "utf-8", "gbk")
    text = "標題:\n" + bad + "\n" + bad
    codecrun._FILLS.clear()
    found = codecrun.find_wrong_codec_runs(text, SearchBudget.flat(50))
    assert found and all(p.flag_only for p in found)
    assert any("ran out here" in p.reason for p in found)


def test_findings_of_one_category_are_capped_with_their_count() -> None:
    content = ("\u202e" * 5_000).encode()
    result = repair_bytes(content)
    bidi = [f for f in result.findings if f.category is Category.BIDI_CONTROL]
    cap = engine.MAX_FINDINGS_PER_CATEGORY
    assert len(bidi) == cap
    assert f"and {5_000 - cap:,} more like it up to code point 5,000" in bidi[-1].reason
    assert all("more like it" not in f.reason for f in bidi[:-1])
    # Nothing was edited (bidi controls are reported by default), so the text is as it was.
    assert result.text == content.decode()


def test_a_stage_keeps_the_first_findings_of_each_category_and_counts_the_rest() -> None:
    """`StageFindings` holds at most cap findings of a category, whatever order they come in,
    and `capped` over what it kept gives what it gives over every finding."""
    from textmend_server.capping import StageFindings, capped
    from textmend_server.edits import Proposal

    rng = random.Random(7)
    bidi = Proposal(0, 1, "", Category.BIDI_CONTROL, "bidi", 0.9, flag_only=True)
    stray = Proposal(0, 1, "", Category.CONTROL_CHAR, "control", 0.9)
    everything = [(i, i + 1, rng.choice((bidi, stray))) for i in range(5_000)]
    rng.shuffle(everything)
    kept = StageFindings(cap=50)
    for start, end, p in everything:
        kept.add(start, end, p)
    assert len(kept.items()) == 100
    whole = capped(sorted(everything, key=lambda f: (f[0], f[1])), 50)
    assert capped(sorted(kept.items(), key=lambda f: (f[0], f[1])), 50, kept.beyond) == whole


def test_a_document_of_findings_costs_memory_by_the_cap_not_by_the_findings() -> None:
    """100,000 bidi controls: every one a finding, 1,000 listed. Kept until the end of the
    repair and capped then, they took 124 times the document (tracemalloc's peak); counted as
    they are made, a stage holds at most the cap of them and a block's worth of proposals."""
    content = ("\u202e" * 100_000).encode()
    engine.warm_up()
    assert adversarial.peak_memory(content) < 60
    result = repair_bytes(content)
    assert len(result.findings) == engine.MAX_FINDINGS_PER_CATEGORY
    assert "and 99,000 more like it" in result.findings[-1].reason


def test_a_long_run_of_latin_letters_costs_memory_by_its_length_not_more() -> None:
    """A line of one Latin-1 letter is a run the wrong-codec search re-decodes: the regular
    expressions that find it kept backtracking state per character and the search listed every
    position, 157 times the document in all (tracemalloc's peak); now a few times."""
    engine.warm_up()
    assert adversarial.peak_memory(("\u00c3" * 100_000).encode()) < 20


def test_findings_under_the_cap_are_listed_whole() -> None:
    result = repair_bytes(("a\u202eb " * 10).encode())
    assert len(result.findings) == 10
    assert all("more like it" not in f.reason for f in result.findings)


def test_memos_stay_within_the_cache_budget() -> None:
    """Every memo together stays within the process's cache budget, however small, and the
    repair comes out the same."""
    text = adversarial.random_cjk_qmark(3_000, random.Random(5))
    budget = cache.budget_bytes()
    try:
        cache.clear()
        first = repair_text(text)
        cache.configure(2)
        assert cache.total_bytes() <= 2 << 20
        again = repair_text(text)
        assert cache.total_bytes() <= 2 << 20
        assert sum(b for _, b in cache.stats().values()) == cache.total_bytes()
    finally:
        cache.configure(budget / (1 << 20))
    assert (again.text, again.edits, again.findings) == (first.text, first.edits, first.findings)


def test_cache_configure_refuses_a_negative_size() -> None:
    with pytest.raises(ValueError, match="at least 0"):
        cache.configure(-1)


def test_a_line_of_megabytes_is_searched_in_bounded_pieces() -> None:
    """One line without a break (minified HTML, a log) is cut into pieces of at most
    LONG_LINE code points, after a space where there is one, and the mojibake stage's merged
    windows stay within MOJIBAKE_WINDOW_MAX: line-local searches see bounded text."""
    from textmend_server import engine
    from textmend_server.fixes import MOJIBAKE_WINDOW_MAX, _hint_windows

    line = "cafÃ© Ã© " * 60_000  # 480,000 code points, a hint every few
    blocks = list(engine.blocks(line))
    assert blocks[0][0] == 0 and blocks[-1][1] == len(line)
    assert all(a == b for (_, a), (b, _) in pairwise(blocks))
    assert all(end - start <= engine.LONG_LINE for start, end in blocks)
    assert all(line[end - 1] == " " for _, end in blocks[:-1])
    windows = _hint_windows(line[: engine.LONG_LINE])
    assert windows and all(end - start <= MOJIBAKE_WINDOW_MAX + 1 for start, end in windows)
    assert all(a <= b for (_, a), (b, _) in pairwise(windows))


@pytest.mark.parametrize("kind", ["han_qmark", "random_unicode", "random_cjk_qmark"])
def test_short_noise_is_not_searched_and_would_stay_within_its_length_budget(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 bytes of the adversarial mixes (the bench's own inputs): their first triggers have
    too little before them to judge, and the stretch of the line they stand in reads as noise
    with `?` strewn through it, so none is searched. With that judgement switched off, what
    the searches spend is still bounded by the budget of the text's length (no repair earns
    more)."""
    from textmend_server.cjk import SearchBudget, find_phase_slips
    from textmend_server.cjk.slip import stage

    text = adversarial.KINDS[kind](100, random.Random(f"16:{kind}:100"))
    before = work_done()
    found = find_phase_slips(text)
    assert work_done() == before and not found

    monkeypatch.setattr(stage, "stretch_reads_as_noise", lambda *args: False)
    before = work_done()
    find_phase_slips(text)
    # A search may overshoot by what one step costs (a beam of candidates).
    step = slip.BEAM * 2 * slip.CHILDREN * 4
    assert work_done() - before <= SearchBudget().for_call(len(text)) + step


def test_a_short_genuine_slip_is_still_searched_and_repaired() -> None:
    """A short text that is one slip reads as noise from end to end, but holds one trigger,
    not the many of text built of `?`: it is searched and repaired; so is a slip at the start
    of a short sentence, with too little before it to judge."""
    from textmend_server.cjk import find_phase_slips
    from textmend_server.cjk.lm import get_model
    from textmend_server.cjk.slip import context

    text = "3人??偛酶窭赘瘛げ剂_克曼"
    model = get_model("zh")
    assert context.reads_as_noise(text, 2, model, False) is None
    assert not context.stretch_reads_as_noise(text, 0, len(text), model, False)
    (p,) = find_phase_slips(text)
    assert p.replacement == "。總裁格雷格·布羅" and not p.flag_only
    (p,) = find_phase_slips("公司?!彼Q他們的工作")
    assert p.replacement == "。”他稱" and not p.flag_only
    assert repair_text("公司?!彼Q他們的工作").text == "公司。”他稱他們的工作"


def test_language_model_stretches_start_where_a_run_of_their_bytes_does() -> None:
    """`scored_bytes`'s pattern starts a stretch only where a run of letters, digits and
    non-ASCII bytes begins (or at an ASCII word before it), so a long word is read once: tried
    at each of its bytes, it read the rest of the word each time (40 KB of letters after a
    Latin-1 word took 5 s)."""
    from textmend_server.langscoring import _STRETCH, scored_bytes

    word = b"x" * 100 + b"\xe9"
    whole = _STRETCH.match(word, 0)
    assert whole is not None and whole.group() == word
    assert _STRETCH.match(word, 50) is None
    # The word before a stretch still comes along, from inside a longer run (roff's `\fP`).
    assert scored_bytes(b"\\fP \xe8 utilizzato") == [b"fP \xe8 utilizzato"]
    long_word = adversarial.long_word_legacy(5_000, random.Random(1))
    assert scored_bytes(long_word) == [b"S\xf6der"]


def test_the_fill_searches_stop_soon_after_the_caller_has_gone() -> None:
    """A page of U+FFFD among Han characters is one fill search after another: each asks
    whether its caller is still there, so a cancelled repair stops within a search, not at
    the end of its block (a 40 KB page kept a worker busy 22 s past a 1 s deadline)."""
    from textmend_server import Cancelled

    # A U+FFFD in three characters, the rest Han, no `?` (the phase-slip searches, which run
    # first, stop between searches already).
    rng = random.Random(3)
    han = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    text = "".join(
        rng.choice(("\ufffd", rng.choice(han), rng.choice(han))) + ("\n" if i % 80 == 79 else "")
        for i in range(8_000)
    )
    before = work_done()

    def cancelled() -> bool:
        return work_done() - before > 20_000

    with pytest.raises(Cancelled):
        repair_text(text, cancelled=cancelled)
    # One beam step of one search past the moment the caller went, at most.
    assert work_done() - before < 40_000
