"""The engine's clean-text fast path answers exactly as the full path does.

The fast path (`EngineConfig.fast_path`, on by default) skips a stage whose trigger proves it
can find nothing (`stages.Stage.trigger`) and reads a document's markup evidence only when a
markup stage has a candidate to judge. `EngineConfig(fast_path=False)` runs every finder its
gate lets through, the reference. Both must give the same text, edits, findings, encoding,
verdict, confidences and diff:

* over every case file (original and expected text), every vendored real document
  (`tests/fixtures/real/`), the legacy-codec snippets and the sample article, as bytes through
  `repair_bytes`;
* over generated text (hypothesis) built from the fragments that reach the detectors, the
  near misses the triggers must tell apart (links, `AT&T`, curly quotes, repeated rules), with
  small blocks so that the stages see parts of the text, and under every test policy.

Each trigger is also checked on its own: where it says a text holds nothing for its stage, the
stage's finder finds nothing in the text nor in any part of it.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from documents import TESTS, case_and_real_documents
from fuzz_target import fe
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from textmend_server import InputError, Repaired, RepairPolicy, repair_bytes, repair_text
from textmend_server.engine import EngineConfig, _LazyEvidence
from textmend_server.fixes import PLAIN_BYTES, plain_rest
from textmend_server.markup import markup_evidence
from textmend_server.policy import Action, Category
from textmend_server.stages import STAGES, TextFacts

# Blocks and long lines this small cut the generated texts into several parts, so that the
# stages see blocks of them (the real block is 16,384 code points).
SMALL = EngineConfig(block=48, long_line=96)


def _documents() -> list[pytest.param]:
    docs = case_and_real_documents()
    snippets = json.loads((TESTS / "fixtures" / "legacy" / "snippets.json").read_text("utf-8"))
    for name, snippet in snippets.items():
        content = snippet["text"].encode(snippet["codec"])
        docs.append(pytest.param(content, "", id=f"legacy:{name}"))
    for path in sorted((TESTS / "fixtures").glob("*.txt")):
        docs.append(pytest.param(path.read_bytes(), "", id=path.name))
    return docs


def _answer(result: Repaired) -> tuple[object, ...]:
    """Everything a caller sees of a result, timings aside."""
    decoded = result.decoded and replace(result.decoded, detect_seconds=0.0)
    return (
        result.original,
        result.text,
        result.verdict,
        result.edits,
        result.findings,
        decoded,
        result.diff,
    )


def _both(
    content: bytes, content_type: str, config: EngineConfig, policy: RepairPolicy | None
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """The fast and the full path's answers for content (text the service would refuse as
    binary, a case file of control characters, through `repair_text`)."""
    full = replace(config, fast_path=False)
    try:
        fast_result = repair_bytes(content, content_type=content_type, policy=policy, config=config)
    except InputError as error:
        with pytest.raises(type(error)):
            repair_bytes(content, content_type=content_type, policy=policy, config=full)
        text = content.decode("utf-8", "replace")
        fast_result = repair_text(text, policy=policy, config=config)
        full_result = repair_text(text, policy=policy, config=full)
    else:
        full_result = repair_bytes(content, content_type=content_type, policy=policy, config=full)
    return _answer(fast_result), _answer(full_result)


@pytest.mark.parametrize(("content", "content_type"), _documents())
def test_fast_path_answers_as_the_full_path(content: bytes, content_type: str) -> None:
    for policy in (None, RepairPolicy(overrides=dict.fromkeys(Category, Action.FLAG))):
        fast, full = _both(content, content_type, EngineConfig(), policy)
        assert fast == full


# Text that comes close to each trigger without (always) being what a stage acts on.
NEAR_MISSES = (
    "See <https://example.org/a/b/>.\n",
    "`charade <https://github.com/x/y>`_’s ",
    "AT&T and R&D; ",
    "x -> y, a < b > c ",
    "It’s “fine” — don’t… ",
    "naïve café déjà ",
    "Ã ",
    "Â\xa0",
    "В ",
    "┬ ",
    "----------\n",
    "<신  설>\n",
    "단위 :  백만원\n",
    "A paragraph long enough to count as a block of repeated text.\n",
    "國軍部隊的阿拉伯聯合大公國軍教育訓練支援。\n",
    "“",
    "”",
    "’",
    "…",
    "—",
    "–",
    "€",
    "™",
    "\x0b",
    "\x0c",
    "\r",
    "?/blockquote>",
    "\ufffd/figcaption>",
    "word/blockquote>",
    # Shift-JIS and EUC-KR text read as cp1252: what the wrong-codec stage's Latin search is for.
    "日本語の文章です。".encode("shift_jis").decode("cp1252", "replace"),
    "한국어 문장입니다".encode("euc_kr").decode("cp1252", "replace"),
    "한국어 문장입니다".encode("euc_kr").decode("latin-1"),
)
CHARACTERS = st.characters(exclude_categories=("Cs",))


@st.composite
def texts(draw: st.DrawFn, max_pieces: int = 60) -> str:
    """Text of detector fragments, near misses and arbitrary characters, with some of its
    lines repeated (a page stored twice, a rule drawn twice)."""
    piece = st.one_of(
        st.sampled_from(fe.FRAGMENTS),
        st.sampled_from(NEAR_MISSES),
        st.sampled_from(NEAR_MISSES),
        CHARACTERS,
        st.text(CHARACTERS, max_size=6),
    )
    text = "".join(draw(st.lists(piece, max_size=max_pieces)))
    if draw(st.booleans()):
        lines = text.splitlines(keepends=True)
        if lines:
            start = draw(st.integers(0, len(lines) - 1))
            text += "".join(lines[start : start + draw(st.integers(1, 4))])
    return text


POLICIES = st.sampled_from(fe.POLICIES)


@example(text="See <https://x.org/b/>, it’s “fine”.\n" * 2, policy=fe.POLICIES[0], html=False)
@example(text="Ã \n/p> it’s\n&amp;amp;\n", policy=fe.POLICIES[0], html=False)
@given(text=texts(), policy=POLICIES, html=st.booleans())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fast_path_answers_as_the_full_path_on_generated_text(
    text: str, policy: tuple[str, dict[Category, Action]], html: bool
) -> None:
    repair_policy = RepairPolicy(overrides=policy[1], html=html)
    for config in (EngineConfig(), SMALL):
        fast = repair_text(text, policy=repair_policy, config=config)
        full = repair_text(text, policy=repair_policy, config=replace(config, fast_path=False))
        assert _answer(fast) == _answer(full)


@given(text=texts(), charset=st.sampled_from(fe.TEXT_ENCODINGS))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fast_path_answers_as_the_full_path_on_generated_bytes(text: str, charset: str) -> None:
    content = text.encode(charset, "replace")
    if not content:
        return
    fast, full = _both(content, "", SMALL, None)
    assert fast == full


def _parts(text: str) -> list[str]:
    """The text and parts of it a finder may be handed: halves, thirds, each line, and the
    blocks of a small block size."""
    n = len(text)
    parts = [text, text[: n // 2], text[n // 2 :], text[n // 3 : 2 * n // 3]]
    parts += text.splitlines(keepends=True)
    parts += [text[i : i + 40] for i in range(0, n, 17)]
    return parts


@given(text=texts())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_trigger_that_says_no_means_its_finder_finds_nothing(text: str) -> None:
    facts = TextFacts(text)
    evidence = markup_evidence(text)
    for stage in STAGES:
        if stage.trigger(facts):
            continue
        for part in _parts(text):
            found = stage.finder(part, evidence=evidence) if stage.markup else stage.finder(part)
            assert found == [], (stage.name, part)


@given(text=st.text(CHARACTERS, max_size=80))
def test_plain_rest_keeps_every_character_but_printable_ascii_and_layout(text: str) -> None:
    plain = set(PLAIN_BYTES.decode("ascii"))
    assert plain_rest(text) == "".join(c for c in text if c not in plain)


def test_the_triggers_say_no_to_clean_prose_and_yes_to_damage() -> None:
    """The fast path is worth having only if clean prose passes the triggers, and it is right
    only if damage does not: one of each, for every stage with a trigger. (Curly quotes close
    together still start the wrong-codec stage's search: three high characters a few ASCII
    apart are what a Shift-JIS or EUC-KR text read as cp1252 looks like.)"""
    clean = (
        "It’s fine, see <https://example.org/a/b/> and AT&T’s café.\n"
        "----------\n"
        "文字编码是一个老问题。\n"
        "----------\n"
    )
    damaged = {
        "entities": "Fish &amp;amp; chips",
        "mojibake": "cafÃ© itâ€™s",
        "cjk_wrong_codec": "標題:鏂囧瓧缂栫爜",
        "cjk_wrong_codec_latin": "Title: ‚±‚ñ‚É‚¿‚Í",
        "tags": "End of paragraph.</p>",
        "stray": "zero\u200bwidth",
        "repeated": "A paragraph long enough to count as prose, said twice.\n" * 2,
    }
    triggered = [s.name for s in STAGES if s.name in damaged and s.trigger(TextFacts(clean))]
    assert triggered == []
    assert not STAGES[0].trigger(TextFacts("“fine” — it’s"))  # entities
    for name, text in damaged.items():
        stage = next(s for s in STAGES if s.name == name)
        assert stage.trigger(TextFacts(text)), name


def test_first_pass_reads_markup_evidence_only_when_asked() -> None:
    lazy = _LazyEvidence("End of paragraph.</p>")
    assert lazy._evidence is None
    assert lazy.get() == markup_evidence("End of paragraph.</p>")
    assert lazy.get() is lazy.get()
