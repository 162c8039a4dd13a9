"""The pipeline: decode bytes, detect damage, repair it, and describe every change.

    repair_bytes(content) = decode -> repair_text -> diff

Each stage (`textmend_server.stages`, in order) is a named function that
returns `Proposal`s; `EditLog` turns them into edits against the decoded original.
"""

from __future__ import annotations

import re
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import partial

from textmend_server.capping import MAX_FINDING_TEXT, StageFindings, capped, merged_beyond
from textmend_server.cjk.budget import DEFAULT_BUDGET, SearchBudget
from textmend_server.cjk.scripts import is_cjk
from textmend_server.decoding import DecodedText, EncodingSource, decode
from textmend_server.diffing import unified_diff
from textmend_server.edits import Edit, EditLog, Proposal
from textmend_server.errors import CANCEL_CHECK, TooLargeError, check_cancelled
from textmend_server.fixes import ControlContext, Finder, find_mojibake, find_stray_characters
from textmend_server.markup import MarkupEvidence, markup_evidence
from textmend_server.policy import INFORMATIONAL, Action, Category, RepairPolicy
from textmend_server.stages import (
    PASS_LOCAL_GARBLE,
    STAGES,
    Garbled,
    Reach,
    TextFacts,
    below_floor,
    code_elements,
    inside_spans,
    left_garbled,
    left_in_code,
)


class Verdict(StrEnum):
    """One word to route a document on (see `Verdict` in the proto)."""

    CLEAN = "clean"
    REPAIRED = "repaired"
    SUSPECT = "suspect"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Repaired:
    """Everything the engine knows about one document after repair.

    `apply_edits(original, edits) == text` always holds; `findings` were reported, not
    changed, and carry their suggested repair in `replacement`.
    """

    original: str
    text: str
    verdict: Verdict
    edits: list[Edit]
    findings: list[Edit]
    decoded: DecodedText | None
    diff: str
    # Seconds per stage: decode, detect, repair, diff, total.
    timings: dict[str, float] = field(default_factory=dict)


# Passes over a text at most: the second exists for damage a repair exposed. Fuzzing found
# a cascade needing three (a C1 control read as cp1252, which made a wrong-codec run, whose
# repair gave a slip its context); the fourth confirms the third changed nothing more.
MAX_PASSES = 4
# Code points per block of lines: long texts are searched a block at a time, checking between
# blocks whether the caller is still waiting. 16,384 keeps a block's CJK search within one
# call budget (`cjk.budget.SearchBudget.call_ceiling` is sized for it).
BLOCK = 1 << 14
# Code points of one line a stage sees at most: a single line of a megabyte (minified HTML, a
# log without line breaks) is cut into pieces this long, or every line-local search in it would
# grow with the square of its length (bench/adversarial.py: 1 MB of mojibake on one line took
# 40 s, 100 KB 0.5 s).
LONG_LINE = 1 << 16
# How far a local stage's finding depends on the text around it (the longest entity, tag or
# mojibake window the local stages look at, with room to spare).
LOCAL_REACH = 320
# Findings of one category listed per document; past it, the last one listed says how many
# more there are and where they end. Why 1,000: a finding serialises to about 110 bytes (the
# reason is most of it), so a category's list stays near 110 KB where 1 MB of U+202E gave an
# 18 MB response of 160,001 findings (issue 16); a caller acts on a category by its kind and
# where it starts, not by reading each of thousands. The sample article has one finding; the
# 16 MB throughput document had 6,525 repeated blocks, now listed as 1,000. (The real corpus
# has not been checked against the cap.) The 110 bytes a finding is an estimate.
MAX_FINDINGS_PER_CATEGORY = 1000


@dataclass(frozen=True)
class EngineConfig:
    """How the engine runs its stages: passed down to every call, never a module switch.

    The defaults are the service's; tests and benches vary them (a small block to exercise
    the block boundaries, every pass over the whole text to check the narrowed passes).
    """

    max_passes: int = MAX_PASSES
    block: int = BLOCK
    long_line: int = LONG_LINE
    local_reach: int = LOCAL_REACH
    # After the first pass, local stages look only around what the pass before changed;
    # False has every pass run every stage over the whole text (the tests compare the two).
    narrow_passes: bool = True
    max_findings_per_category: int = MAX_FINDINGS_PER_CATEGORY
    # What the CJK searches may spend (`cjk.budget`); tests give a small one to see it run out.
    search_budget: SearchBudget = DEFAULT_BUDGET
    # The clean-text fast path: a stage whose trigger proves it can find nothing is skipped
    # (`stages.Stage.trigger`), and the first pass reads the document's markup evidence only
    # when a markup stage has a candidate to judge. False runs every finder its gate lets
    # through and reads the evidence every pass, the reference the tests compare it with
    # (the answers must be the same).
    fast_path: bool = True


DEFAULT_CONFIG = EngineConfig()


def blocks(text: str, config: EngineConfig = DEFAULT_CONFIG) -> Iterator[tuple[int, int]]:
    """Spans of about `config.block` code points, ending after a line break where there is
    one; a line longer than `config.long_line` is cut after a space (or anywhere, when it has
    none), so that no stage ever sees more than that much of one line at once."""
    block, long_line = config.block, config.long_line
    start = 0
    while start < len(text):
        end = text.find("\n", start + block, start + long_line)
        if end != -1:
            end += 1
        elif len(text) - start <= long_line:
            end = len(text)
        else:
            space = text.rfind(" ", start + block, start + long_line)
            end = space + 1 if space != -1 else start + long_line
        yield start, end
        start = end


def _find(
    finder: Finder,
    text: str,
    whole: bool,
    config: EngineConfig,
    windows: list[tuple[int, int]] | None = None,
) -> Iterator[Proposal]:
    """Run finder over text (or only over the windows given), block by block unless it must
    see the whole text; proposals come a block at a time, so that a stage never holds more
    than a block's (`StageFindings` keeps what it reports)."""
    if windows is not None:
        for start, end in windows:
            for p in _find(finder, text[start:end], whole, config):
                yield replace(p, start=p.start + start, end=p.end + start)
        return
    if whole or len(text) <= config.block:
        yield from finder(text)
        return
    for start, end in blocks(text, config):
        check_cancelled()
        for p in finder(text[start:end]):
            yield replace(p, start=p.start + start, end=p.end + start)


def dirty_windows(
    text: str, spans: list[tuple[int, int]], reach: int = DEFAULT_CONFIG.local_reach
) -> list[tuple[int, int]]:
    """Whole lines of text within reach of the changed spans, merged, in order: where a local
    stage may find something it did not find before the changes.

    >>> dirty_windows("one\\ntwo\\nthree\\nfour\\n", [(5, 6)], reach=0)
    [(4, 8)]
    """
    out: list[tuple[int, int]] = []
    n = len(text)
    for cs, ce in sorted(spans):
        a, b = max(0, cs - reach), min(n, ce + reach)
        if out and a <= out[-1][1]:
            if b < out[-1][1]:
                continue
            start = out.pop()[0]
        else:
            # Each stretch of text is scanned once: back to the last window, forward once.
            nl = text.rfind("\n", out[-1][1] if out else 0, a)
            start = nl + 1 if nl >= 0 else out.pop()[0] if out else 0
        nl = text.find("\n", b)
        out.append((start, n if nl < 0 else nl + 1))
    return out


# A document with more than this share of undecodable bytes is not text we can vouch for.
UNREADABLE_SHARE = 0.1


# Media types whose markup is the document's own: HTML, and XML of every kind (`text/xml`,
# and the `+xml` types: SVG, RSS, Atom), whose tags are its structure, as the client sends
# `.xml` and `.svg` files.
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/xml", "application/xml"})
# The media types of plain text: any other (`image/png`, a typo's `text/htm`) is not trusted
# either way, and the bytes decide, as they do when no type is given.
PLAIN_TYPES = frozenset({"text/plain"})
# How far into the content the start of an HTML document is looked for.
SNIFF_BYTES = 1024
# The start of an HTML or XML document, after a BOM, blanks and comments: an XML declaration,
# `<!DOCTYPE html`, `<html`, or a first element that declares a namespace (GNOME's Mallard
# help, `<page xmlns="http://projectmallard.org/1.0/"`, is XML with no declaration; read as
# plain text, each of its tags was reported as markup left in the text).
_HTML_START = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*"
    rb"(?:<\?xml\s|<(?:!doctype\s+html|html)\b|<[A-Za-z][\w.:-]*\s[^<>]*?\bxmlns(?::[\w.-]+)?\s*=)",
    re.IGNORECASE | re.DOTALL,
)


def is_html(content_type: str, content: bytes = b"") -> bool:
    """Whether a document is HTML (or XML): its content type says so, or, when none is given
    or the type is neither (`PLAIN_TYPES`, `HTML_TYPES`), its bytes start as an HTML or XML
    document does (`<!DOCTYPE html`, `<html`, `<?xml`, a first element declaring a namespace).

    >>> is_html("text/html; charset=utf-8"), is_html("text/plain", b"<html>")
    (True, False)
    >>> is_html("", b"\\n<!DOCTYPE html>\\n<html>"), is_html("", b"a <b>bold</b> claim")
    (True, False)
    >>> is_html("image/svg+xml"), is_html("text/htm", b"<html><p>x</p>"), is_html("text/htm")
    (True, True, False)
    >>> is_html("", b'<?xml version="1.0"?><rss>'), is_html("", b'<page xmlns="http://a/b">')
    (True, True)
    >>> is_html("", b"<b>bold</b> and xmlns=1"), is_html("", b"<?xml-ish notes")
    (False, False)
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media in HTML_TYPES or media.endswith("+xml"):
        return True
    if media in PLAIN_TYPES:
        return False
    return _HTML_START.match(bytes(content[:SNIFF_BYTES])) is not None


def repair_bytes(
    content: bytes,
    *,
    declared_encoding: str | None = None,
    content_type: str | None = None,
    policy: RepairPolicy | None = None,
    include_diff: bool = True,
    label: str = "document",
    max_bytes: int | None = None,
    cancelled: Callable[[], bool] | None = None,
    config: EngineConfig = DEFAULT_CONFIG,
) -> Repaired:
    """Decode content and repair it; see `Repaired` for what comes back.

    `content_type` empty or None means "decide from the bytes" (`is_html`): the rule every
    client command and JSON Lines input share; so does an empty or None `declared_encoding`.

    Raises an `InputError` (empty, binary, unknown charset, unknown policy) or
    `TooLargeError`, each with a message saying what to send instead. `cancelled`, when
    given, is asked between blocks of work; once it answers True the work stops with
    `Cancelled` (a server passes "the caller's deadline passed or it hung up").

    >>> r = repair_bytes("naÃ¯ve cafÃ©".encode("utf-8"))
    >>> r.text, [(e.original, e.replacement) for e in r.edits]
    ('naïve café', [('Ã¯', 'ï'), ('Ã©', 'é')])
    """
    if not isinstance(content, bytes | bytearray | memoryview):
        raise TypeError(
            f"repair_bytes takes the document's bytes, not {type(content).__name__}; "
            "for text already decoded use repair_text"
        )
    if max_bytes is not None and len(content) > max_bytes:
        raise TooLargeError(len(content), max_bytes)
    started = time.perf_counter()
    html = is_html(content_type or "", content)
    if policy is None:
        policy = RepairPolicy(html=html)
    elif html and not policy.html:
        policy = replace(policy, html=True)
    decoded = decode(bytes(content), declared_encoding or None, html=html)
    decoded_at = time.perf_counter()
    seeded = _decoding_findings(decoded, content)
    if decoded.in_doubt:
        # The text may be mojibake of the right reading: nothing in it is rewritten, every
        # repair is reported as a suggestion.
        policy = hold_back(policy)
    result = repair_text(
        decoded.text,
        policy=policy,
        include_diff=include_diff,
        label=label,
        seeded=seeded,
        cancelled=cancelled,
        config=config,
    )
    share = sum(e - s for _, s, e in decoded.undecodable) / max(1, decoded.content_bytes)
    verdict = result.verdict
    if share > UNREADABLE_SHARE:
        verdict = Verdict.UNREADABLE
    elif decoded.in_doubt:
        verdict = Verdict.SUSPECT
    timings = {
        **result.timings,
        "decode": decoded_at - started - decoded.detect_seconds,
        "detect": decoded.detect_seconds,
    }
    timings["total"] = time.perf_counter() - started
    return Repaired(
        result.original,
        result.text,
        verdict,
        result.edits,
        result.findings,
        decoded,
        result.diff,
        timings,
    )


def warm_up() -> None:
    """Build every table and language model now, not on the first document that needs it, so a
    server reports SERVING with its latency steady: the CJK character and word models (a
    quarter of a second each) and the frequency tables of the four double-byte codecs'
    characters (0.15 s in all), the letter-pair models detection reads with (two seconds for
    all), then wordfreq's lists, which the models no longer need, are released."""
    from textmend_server import langmodel
    from textmend_server.cjk.dbcs import codec
    from textmend_server.cjk.lm import get_model, release_word_lists
    from textmend_server.cjk.slip.candidates import priors

    for lang, codecs in (("zh", ("gbk", "big5")), ("ja", ("shift_jis",)), ("ko", ("euc_kr",))):
        get_model(lang).warm()
        for name in codecs:
            priors(codec(name), get_model(lang))
    langmodel.warm_up()
    release_word_lists()
    repair_bytes("warm-up: cafÃ© — it’s 創(chuàng)建者 公司?!彼Q他們".encode())


# Bytes of each byte order mark `decode` can remove.
_BOM_BYTES = {"utf-8": 3, "utf-16-le": 2, "utf-16-be": 2, "utf-32-le": 4, "utf-32-be": 4}


def hold_back(policy: RepairPolicy) -> RepairPolicy:
    """The policy with every fix turned into a flag: what `repair_bytes` applies to text whose
    decoding is in doubt."""
    overrides = {
        category: Action.FLAG if policy.action(category) is Action.FIX else policy.action(category)
        for category in Category
    }
    return replace(policy, overrides=overrides)


# Bytes of an undecodable span its finding's reason shows, in hex: enough to tell a lone
# Latin-1 letter (`0xf6`) from a truncated UTF-8 sequence (`0xc4`) or Emacs's own 4-byte
# characters (`0xf6 0x90 0x80 0x80`).
SHOWN_BYTES = 8


def undecodable_reason(content: bytes, start: int, end: int, encoding: str) -> str:
    """Why a U+FFFD the decoder inserted is there: which bytes, with their values.

    >>> undecodable_reason(b"K\\xf6cher", 1, 2, "utf-8")
    'byte 1 (0xf6) is not valid utf-8'
    >>> undecodable_reason(b"a\\xf6\\x90\\x80\\x80", 1, 5, "utf-8")
    'bytes 1-4 (0xf6 0x90 0x80 0x80) are not valid utf-8'
    """
    shown = " ".join(f"0x{b:02x}" for b in content[start : min(end, start + SHOWN_BYTES)])
    if end - start > SHOWN_BYTES:
        shown += " …"
    if end - start == 1:
        return f"byte {start} ({shown}) is not valid {encoding}"
    return f"bytes {start}-{end - 1} ({shown}) are not valid {encoding}"


def _decoding_findings(decoded: DecodedText, content: bytes) -> list[Proposal]:
    """Findings the decoder leaves: undecodable bytes, an overruled declared charset, a
    decoding in doubt (with the other plausible readings), a removed byte order mark."""
    found = [
        Proposal(
            pos,
            pos + 1,
            "\ufffd",
            Category.UNDECODABLE,
            undecodable_reason(content, start, end, decoded.encoding),
            1.0,
            byte_span=(start, end),
            flag_only=True,
        )
        for pos, start, end in decoded.undecodable
    ]
    if decoded.bom_removed:
        found.insert(
            0,
            Proposal(
                0,
                0,
                "",
                Category.ENCODING,
                f"leading {decoded.bom_removed} byte order mark removed: a signature, not text",
                1.0,
                byte_span=(0, _BOM_BYTES[decoded.bom_removed]),
                flag_only=True,
            ),
        )
    if decoded.in_doubt:
        rivals = ", ".join(f"{name} ({p:.2f})" for name, p in decoded.alternatives)
        found.insert(
            0,
            Proposal(
                0,
                0,
                "",
                Category.ENCODING,
                f"decoded as {decoded.encoding} with confidence {decoded.confidence:.2f}"
                + (f"; also plausible: {rivals}" if rivals else "")
                + "; repairs held back, reported as suggestions",
                decoded.confidence,
                flag_only=True,
            ),
        )
    if decoded.overruled:
        found.insert(
            0,
            Proposal(
                0,
                0,
                "",
                Category.ENCODING,
                (
                    f"declared {decoded.declared!r} overruled"
                    if decoded.declared
                    else "the document's own charset declaration overruled"
                )
                + f", used {decoded.encoding}: {decoded.overruled}",
                decoded.confidence,
                flag_only=True,
            ),
        )
    return found


def repair_text(
    text: str,
    *,
    policy: RepairPolicy | None = None,
    include_diff: bool = True,
    label: str = "document",
    seeded: list[Proposal] | None = None,
    cancelled: Callable[[], bool] | None = None,
    config: EngineConfig = DEFAULT_CONFIG,
) -> Repaired:
    """Repair text that is already decoded; `seeded` findings are reported as they are.

    `cancelled` and `config` work as in `repair_bytes`.

    >>> repair_text("It’s “fine” — café…").verdict.value
    'clean'
    """
    if not isinstance(text, str):
        raise TypeError(
            f"repair_text takes str, not {type(text).__name__}; for bytes use repair_bytes, "
            "which detects the encoding"
        )
    policy = policy or RepairPolicy()
    started = time.perf_counter()
    log = EditLog(text)
    seeds: list[tuple[int, int, Proposal]] = [(p.start, p.end, p) for p in seeded or []]
    # U+FFFD the decoder inserted is reported once, as undecodable, not again as a stray;
    # a policy that fixes replacement characters removes it like any other (the undecodable
    # finding still names its bytes), so that repairing the output again changes nothing.
    inserted = {p.start for p in seeded or [] if p.category is Category.UNDECODABLE}
    # A repair can expose damage a stage before it has already looked for (`Ã\x07©` is
    # mojibake only once the control character is gone), so passes repeat until one changes
    # nothing: repairing the result again then finds nothing to do.
    by_stage: dict[str, StageFindings] = {}
    windows: list[tuple[int, int]] | None = None  # None: the whole text
    code = code_elements(text) if policy.html else []
    markup: MarkupEvidence | _LazyEvidence | None = None
    check = CANCEL_CHECK.set(cancelled)
    try:
        for _ in range(config.max_passes):
            before = log.text
            # Windows in original coordinates, to tell which earlier findings were looked at
            # again.
            looked = (
                _merged([log.to_original(a, b) for a, b in windows])
                if windows is not None
                else None
            )
            # Markup is judged by the evidence of the whole text as it stands: a repair can
            # expose evidence (mojibake before a `/p>`) or remove it. When the judgement
            # changes, the markup stages look at the whole text again.
            earlier = markup.get() if isinstance(markup, _LazyEvidence) else markup
            finders, markup, rejudged = _document_finders(log.text, policy, earlier, config)
            run = _Pass(windows, looked, finders, rejudged, config, code)
            changed = _one_pass(log, policy, inserted, run, by_stage)
            if log.text == before:
                break
            if config.narrow_passes:
                spans = [log.original_to_cleaned(a, b) for a, b in changed]
                windows = dirty_windows(log.text, spans, config.local_reach)
    finally:
        CANCEL_CHECK.reset(check)
    found = seeds + [item for kept in by_stage.values() for item in kept.items()]
    found.sort(key=lambda f: (f[0], f[1]))
    repaired_at = time.perf_counter()
    edits = log.edits()
    beyond = merged_beyond(list(by_stage.values()))
    findings = [
        _finding(log, start, end, p)
        for start, end, p in capped(found, config.max_findings_per_category, beyond)
    ]
    diff = unified_diff(text, log.text, edits, label) if include_diff else ""
    done = time.perf_counter()
    return Repaired(
        original=text,
        text=log.text,
        verdict=_verdict(edits, findings),
        edits=edits,
        findings=findings,
        decoded=None,
        diff=diff,
        timings={"detect": 0.0, "repair": repaired_at - started, "diff": done - repaired_at},
    )


class _LazyEvidence:
    """The markup evidence of the text a first pass starts from, read when a markup stage
    first has a candidate to judge: clean text without tags or entities never needs it, and it
    is the most costly read of a clean document (`markup_evidence` tries every format sign).
    The first pass has no evidence before it, so nothing else asks for it until the next pass,
    which reads it (`get`) to see whether the markup is judged differently."""

    __slots__ = ("_evidence", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._evidence: MarkupEvidence | None = None

    def get(self) -> MarkupEvidence:
        """The evidence, read once."""
        if self._evidence is None:
            self._evidence = markup_evidence(self._text)
        return self._evidence

    def judge(self, finder: Callable[..., list[Proposal]], text: str) -> list[Proposal]:
        """finder's proposals for text, judged by the evidence."""
        return finder(text, evidence=self.get())


def _document_finders(
    text: str, policy: RepairPolicy, before: MarkupEvidence | None, config: EngineConfig
) -> tuple[dict[str, Finder], MarkupEvidence | _LazyEvidence | None, bool]:
    """The stages' finders for one pass over a document: the search stages spend what the
    configuration allows, the markup stages judge every block by the evidence of the whole
    text (`markup_evidence`) and the leaks earlier passes saw. Also returns that evidence (on
    the fast path's first pass, a `_LazyEvidence` read only if needed), and whether it judges
    differently from `before` (the last pass's)."""
    finders = {
        stage.name: partial(stage.finder, limits=config.search_budget)
        if stage.budgeted
        else stage.finder
        for stage in STAGES
    }
    # A control character is judged by what the whole document holds, not the part handed over.
    controls = ControlContext(text)
    finders["stray"] = partial(find_stray_characters, context=controls)
    finders["mojibake"] = partial(find_mojibake, context=controls)
    if not policy.wants(Category.MARKUP_LEAK):
        return finders, None, False
    if config.fast_path and before is None:
        # (`remembering(None)` is the evidence itself, and no earlier pass to judge against.)
        lazy = _LazyEvidence(text)
        for stage in STAGES:
            if stage.markup:
                finders[stage.name] = partial(lazy.judge, stage.finder)
        return finders, lazy, False
    evidence = markup_evidence(text).remembering(before)
    for stage in STAGES:
        if stage.markup:
            finders[stage.name] = partial(stage.finder, evidence=evidence)
    rejudged = before is not None and not evidence.judges_like(before)
    return finders, evidence, rejudged


@dataclass(frozen=True)
class _Pass:
    """What one pass over a document runs with."""

    # Where the local stages look (the text as the pass starts), or None for the whole text;
    # `looked` is the same in original coordinates.
    windows: list[tuple[int, int]] | None
    looked: list[tuple[int, int]] | None
    # The stages' finders for this document (`_document_finders`).
    finders: dict[str, Finder]
    # Whether the markup evidence judges differently from the last pass's: the markup stages
    # then look at the whole text, not just the windows.
    rejudged: bool
    config: EngineConfig
    # An HTML page's script and style contents (original coordinates): no edit is made there.
    code: list[tuple[int, int]]


def _one_pass(
    log: EditLog,
    policy: RepairPolicy,
    inserted: set[int],
    run: _Pass,
    by_stage: dict[str, StageFindings],
) -> list[tuple[int, int]]:
    """Run every stage once over the log's text (the local stages only over the pass's
    windows, when given); apply fixes, update by_stage's findings (original coordinates);
    return the original spans of what changed."""
    changed: list[tuple[int, int]] = []
    facts = TextFacts(log.text)
    windows, looked = run.windows, run.looked
    # Runs reported as misread and left: no later edit goes inside one (`stages.Garbled`).
    garbled = Garbled()
    for kept in by_stage.values():
        for start, end, proposal in kept.items():
            if proposal.category not in PASS_LOCAL_GARBLE:
                garbled.add(start, end, proposal)
    for stage in STAGES:
        name = stage.name
        check_cancelled()
        if facts.text is not log.text:
            facts = TextFacts(log.text)
        narrow = (
            windows is not None
            and stage.reach is Reach.LOCAL
            and not (stage.markup and run.rejudged)
        )
        found = StageFindings(run.config.max_findings_per_category)
        earlier = by_stage.get(name)
        if earlier is not None and earlier.beyond:
            narrow = False  # what it only counted cannot be told inside from outside: look again
        if narrow and looked is not None and earlier is not None:
            # What this stage found outside the windows stands; inside, it looks again.
            for f in earlier.items():
                if not _inside(f[0], f[1], looked):
                    found.add(*f)
        by_stage[name] = found
        if not any(policy.wants(c) for c in stage.categories) or not stage.gate(facts):
            continue
        if run.config.fast_path and not stage.trigger(facts):
            continue  # it would find nothing: what it found outside the windows stands
        to_apply: list[Proposal] = []
        where = windows if narrow else None
        whole = stage.reach is Reach.WHOLE
        for proposal in _find(run.finders[name], log.text, whole, run.config, where):
            action = policy.action(proposal.category)
            if proposal.category is Category.REPLACEMENT_CHAR and inserted:
                if (
                    action is not Action.FIX
                    and log.to_original(proposal.start, proposal.end)[0] in inserted
                ):
                    continue
            if action is Action.OFF:
                continue
            span = log.to_original(proposal.start, proposal.end)
            if action is Action.FIX and not proposal.flag_only:
                if policy.holds_back(proposal.confidence):
                    proposal = below_floor(proposal, policy.min_confidence)
                elif run.code and inside_spans(run.code, *span):
                    proposal = left_in_code(proposal)
                elif garbled.holds(*span):
                    proposal = left_garbled(proposal)
                elif _tag_of_a_garble(log.text, proposal, span, garbled):
                    proposal = replace(
                        proposal, flag_only=True, reason=proposal.reason + SWALLOWED_TAG_REASON
                    )
                else:
                    to_apply.append(proposal)
                    continue
            found.add(*span, proposal)
            garbled.add(*span, proposal)
        changed += [
            log.to_original(p.start, p.end)
            for p in to_apply
            if log.text[p.start : p.end] != p.replacement
        ]
        before = log.text
        log.apply(to_apply)
        if windows is not None and log.text is not before:
            # The windows were in the text before this stage's changes (any stage's, a CJK
            # repair included); later stages look at the same places in the text as it reads.
            windows = _merged([log.original_to_cleaned(a, b) for a, b in looked or []])
    return changed


SWALLOWED_TAG_REASON = (
    "; what is left of a tag whose `<` the misread bytes before it swallowed: removed, it "
    "would hide the damage it marks, not edited"
)


def _tag_of_a_garble(
    text: str, proposal: Proposal, span: tuple[int, int], garbled: Garbled
) -> bool:
    """Whether proposal removes what is left of a tag whose `<` the misread bytes right before
    it swallowed: after a run reported as misread, or after a `?` (a lost lead byte) that
    follows a CJK character and that no repair took (`…的摹?/p>` at the end of a paragraph read
    out of phase, its slip not repaired). Removed, it took away the garble's one visible mark
    and left the garble."""
    if proposal.category is not Category.MARKUP_LEAK or text.startswith("<", proposal.start):
        return False
    at = proposal.start
    lost = at >= 2 and text[at - 1] == "?" and is_cjk(text[at - 2])
    return lost or garbled.ends_at(span[0])


def _inside(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    """Whether [start, end) lies within one of the sorted, disjoint spans."""
    k = bisect_right(spans, (start, sys.maxsize)) - 1
    return k >= 0 and spans[k][0] <= start and end <= spans[k][1]


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans with those that overlap or touch joined."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


def _finding(log: EditLog, start: int, end: int, proposal: Proposal) -> Edit:
    """The finding of proposal at [start, end) of the original, its text cut to
    `capping.MAX_FINDING_TEXT` code points (a finder may cut its own text there too:
    `repeats`); a suggested repair that differs from the text is kept whole."""
    c_start, c_end = log.original_to_cleaned(start, end)
    cut = min(end, start + MAX_FINDING_TEXT)
    original = log.original[start:cut]
    replacement = proposal.replacement
    if cut < end and (
        replacement == original
        or (len(replacement) == end - start and log.original.startswith(replacement, start))
    ):
        replacement = original  # it only repeats the text
    return Edit(
        category=proposal.category,
        original_start=start,
        original_end=end,
        cleaned_start=c_start,
        cleaned_end=c_end,
        original=original,
        replacement=replacement,
        reason=proposal.reason,
        confidence=proposal.confidence,
        byte_span=proposal.byte_span,
    )


def _verdict(edits: list[Edit], findings: list[Edit]) -> Verdict:
    if any(f.category not in INFORMATIONAL for f in findings):
        return Verdict.SUSPECT
    return Verdict.REPAIRED if edits else Verdict.CLEAN


__all__ = ["EncodingSource", "RepairPolicy", "Repaired", "Verdict", "repair_bytes", "repair_text"]
