"""The mojibake and stray-character repairs, one function each (markup's are in `markup.py`,
repeats in `repeats.py`, the CJK stages in `cjk/`). Each finder returns `Proposal`s; each
`fix_`/`remove_` applies them. The engine runs them in the order `textmend_server.stages` gives.

Finders look at text and say what they would change and why; they never decide policy (the
engine does) and never see bytes (decoding comes first). Every finder leaves valid text alone:
curly quotes, dashes, ellipses, full-width CJK punctuation, the ideographic space, ligatures,
accents in either normal form, emoji sequences and right-to-left marks are all content.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import replace
from difflib import SequenceMatcher
from functools import cached_property
from itertools import islice, pairwise

import ftfy
from ftfy.badness import badness
from ftfy.chardata import CHARMAP_ENCODINGS

from textmend_server.edits import Proposal, apply_proposals
from textmend_server.markup import (
    ROFF_SOURCE,
    find_entity_leaks,
    find_tag_leaks,
    markup_evidence,
)
from textmend_server.policy import Category

Finder = Callable[[str], list[Proposal]]

# ftfy, told to fix encodings only. Its defaults also straighten curly quotes, fold full-width
# characters, split ligatures, normalise to NFC and rewrite line breaks: all valid text.
FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=False,
    fix_encoding=True,
    restore_byte_a0=True,
    replace_lossy_sequences=True,
    decode_inconsistent_utf8=True,
    fix_c1_controls=True,
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=False,
    fix_line_breaks=False,
    fix_surrogates=False,
    remove_control_chars=False,
    normalization=None,
    explain=True,
)


def _char_class(chars: set[str]) -> str:
    return "[" + "".join(re.escape(c) for c in sorted(chars)) + "]"


def _build_mojibake_pairs() -> dict[str, frozenset[str]]:
    """For each character a UTF-8 lead byte (0xC2-0xF4) becomes in a codec ftfy knows, the
    characters that a continuation byte (0x80-0xBF) becomes in the same codec, plus a space
    (a 0xA0 byte that became one) after 0xC2/0xC3, plus U+FFFD (a lost byte)."""
    pairs: dict[str, set[str]] = {}
    for codec in ("latin-1", *CHARMAP_ENCODINGS):
        continuations = set(bytes(range(0x80, 0xC0)).decode(codec, errors="ignore"))
        continuations.add("\ufffd")
        for byte in range(0xC2, 0xF5):
            lead = bytes([byte]).decode(codec, errors="ignore")
            if lead:
                pairs.setdefault(lead, set()).update(continuations)
                if byte in (0xC2, 0xC3):
                    pairs[lead].add(" ")
    for c1 in range(0x80, 0xA0):  # a C1 control is a hint on its own
        pairs[chr(c1)] = set()
    return {lead: frozenset(chars) for lead, chars in pairs.items()}


MOJIBAKE_PAIRS = _build_mojibake_pairs()
MOJIBAKE_LEAD = re.compile(_char_class(set(MOJIBAKE_PAIRS)))


def mojibake_hints(text: str) -> Iterator[int]:
    """Where the signs of UTF-8 mojibake in text are, in order.

    UTF-8 read with a single-byte codec always leaves that codec's lead character followed by
    its continuation character (or a C1 control). Text with no such pair cannot be mojibake,
    so ftfy need not see it: valid curly quotes and accents, and CJK text's `——` and `……`
    (a Mac Roman lead followed by a windows-1252 continuation), are not hints.

    >>> [list(mojibake_hints(t)) for t in ("cafÃ©", "“Cafe” — déjà vu", "他說——這樣……")]
    [[3], [], []]
    >>> list(mojibake_hints("piÃ¹ and Ã more")), list(mojibake_hints("it\x92s"))
    ([2, 9], [2])
    """
    for match in MOJIBAKE_LEAD.finditer(text):
        lead, after = match.group(), match.end()
        if lead < "\xa0" or (after < len(text) and text[after] in MOJIBAKE_PAIRS[lead]):
            yield match.start()


# The characters `plain_rest` leaves out of a text: printable ASCII and the layout controls
# (tab, line feed, vertical tab, form feed, carriage return). Which of them a continuation
# character can be (a 0xA0 byte that became a space): a lead followed by one of these is not
# next to it in the rest.
PLAIN_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n\x0b\x0c\r"
_PLAIN = frozenset(PLAIN_BYTES.decode("ascii"))
_PLAIN_PAIRS = {
    lead: tuple(lead + c for c in sorted(after & _PLAIN))
    for lead, after in MOJIBAKE_PAIRS.items()
    if after & _PLAIN
}


def plain_rest(text: str) -> str:
    """text less printable ASCII and layout (`PLAIN_BYTES`), in order: every character a
    stroke of mojibake, a stray or a CJK character can be, and nothing else. Clean English is a
    few curly quotes; the work is done on UTF-8 bytes in C (a byte below 0x80 is always a whole
    ASCII character, so deleting some leaves every other character whole).

    >>> plain_rest("It’s a café.\\n\\x07")
    '’é\\x07'
    """
    data = text.encode("utf-8", "surrogatepass").translate(None, PLAIN_BYTES)
    return data.decode("utf-8", "surrogatepass")


def may_hold_mojibake(text: str, rest: str) -> bool:
    """Whether `find_mojibake` can find anything in text or in any part of it, given
    `rest = plain_rest(text)`: False proves it finds nothing, since it looks only around
    `mojibake_hints`. A hint is a C1 control (kept in the rest), or a lead followed by a
    continuation: one the rest keeps stays next to its lead there (and the pair is then looked
    for in the text, as the rest also puts side by side characters the text keeps apart), one
    the rest leaves out (a space) is looked for in the text. A pair in a part of the text is a
    pair in the whole.

    >>> t = "It’s “fine”, naïve"
    >>> may_hold_mojibake(t, plain_rest(t)), may_hold_mojibake("cafÃ©", "Ã©")
    (False, True)
    >>> may_hold_mojibake("Ã x", "Ã"), may_hold_mojibake("it\\x92s", "\\x92")
    (True, True)
    >>> may_hold_mojibake("Ãx©", "Ã©")
    False
    """
    if text.isascii():
        return False
    looked: set[str] = set()
    end = len(rest)
    for match in MOJIBAKE_LEAD.finditer(rest):
        lead, after = match.group(), match.end()
        if lead < "\xa0":
            return True
        pairs = _PLAIN_PAIRS.get(lead, ())
        if after < end and rest[after] in MOJIBAKE_PAIRS[lead]:
            pairs = (*pairs, lead + rest[after])
        for pair in pairs:
            if pair not in looked:
                looked.add(pair)
                if pair in text:
                    return True
    return False


def _diff_proposals(
    old: str, new: str, offset: int, category: Category, reason: str, confidence: float
) -> list[Proposal]:
    """The smallest edits turning old into new, as proposals at offset (code points).

    Changes with a single non-ASCII character between them are one edit: the matcher may
    otherwise pair a character the repair restores with the same character already in the
    text beside the damage, and report half the repair as a deletion and the rest as an odd
    replacement. (Repairs restore non-ASCII characters; an ASCII one between two changes is
    text between two separate repairs.)

    >>> [(p.start, p.end, p.replacement) for p in _diff_proposals("æ–‡æ–‡文í•œ", "文文文한", 0,
    ...     Category.MOJIBAKE, "", 1.0)]
    [(0, 10, '文文文한')]
    """
    prefix = 0
    limit = min(len(old), len(new))
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    a, b = old[prefix : len(old) - suffix], new[prefix : len(new) - suffix]
    base = offset + prefix
    spans: list[list[int]] = []
    for i1, i2, j1, j2 in _changes(a, b):
        if spans and (
            (i1 == spans[-1][1] and j1 == spans[-1][3])
            or (i1 - spans[-1][1] == 1 and j1 - spans[-1][3] == 1 and not a[i1 - 1].isascii())
        ):
            spans[-1][1], spans[-1][3] = i2, j2
        else:
            spans.append([i1, i2, j1, j2])
    return [
        Proposal(base + i1, base + i2, b[j1:j2], category, reason, confidence)
        for i1, i2, j1, j2 in spans
    ]


# Tokens for a first, coarse alignment: runs of ASCII and runs of anything else. Repairs
# change only non-ASCII runs, so the ASCII runs around them match whole.
_COARSE_RE = re.compile(r"[\x00-\x7f]+|[^\x00-\x7f]+")
# Within a non-ASCII run that changed, single CJK punctuation marks split it further, so
# that a long line of Chinese with damage in two places gives two edits.
_MARKS = "，。、；：！？「」“”"
_FINE_RE = re.compile(rf"[{_MARKS}]|[^{_MARKS}]+")
_MARK_SET = frozenset(_MARKS)  # a token is a mark when it is one of these, not a run of them
# A changed region longer than this is one edit rather than a character diff (whose cost
# grows with the square of the region).
MAX_REFINE = 4000
# Above this many pairs of elements, a comparison lets difflib skip the elements that are
# everywhere: matching a long, repetitive line (mojibake of one pattern, repeated) exactly
# costs about the square of its length, 3 s for 2,000 characters, minutes for a block.
MATCH_PAIRS = 250_000


def _matcher(a: Sequence[Hashable], b: Sequence[Hashable]) -> SequenceMatcher:
    """difflib's matcher for a against b: exact for small inputs, with its junk heuristic
    (elements more frequent than 1% of b are not matched on) for large ones."""
    return SequenceMatcher(None, a, b, autojunk=len(a) * len(b) > MATCH_PAIRS)


def _changes(a: str, b: str) -> list[tuple[int, int, int, int]]:
    """The changed regions (a_start, a_end, b_start, b_end) turning a into b, in order:
    runs of ASCII and non-ASCII aligned first, then the pieces between punctuation marks
    within the runs that differ, then characters only where the pieces do not pair up, so
    that a long line with a little damage costs little more than its length.

    >>> _changes("æ–‡，æ–‡ ok", "文，文 ok"), _changes("ï¼Œæ–‡", "，文")
    ([(0, 3, 0, 1), (4, 7, 2, 3)], [(0, 6, 0, 2)])
    """
    out: list[tuple[int, int, int, int]] = []
    for a1, a2, b1, b2, _ in _token_changes(a, 0, len(a), b, 0, len(b), _COARSE_RE):
        for c1, c2, d1, d2, paired in _token_changes(a, a1, a2, b, b1, b2, _FINE_RE):
            if paired and _c1_in_place(a[c1:c2], b[d1:d2]):
                out += [(c1 + i, c1 + j, d1 + i, d1 + j) for i, j in _differing(a[c1:c2], b[d1:d2])]
                continue
            if paired or (c2 - c1) + (d2 - d1) > MAX_REFINE:
                out.append((c1, c2, d1, d2))
                continue
            sub = _matcher(a[c1:c2], b[d1:d2])
            out += [
                (c1 + i1, c1 + i2, d1 + j1, d1 + j2)
                for op, i1, i2, j1, j2 in sub.get_opcodes()
                if op != "equal"
            ]
    return out


def _c1_in_place(a: str, b: str) -> bool:
    """Whether b is a with some C1 controls replaced one for one (ftfy's `fix_c1_controls`):
    each is its own edit then, so that the controls a broken character left on either side of
    a word (`选\\x8b©文本…库\\xad\\x97段`) are judged one by one, not as one span holding
    the word.
    """
    if len(a) != len(b):
        return False
    return all(x == y or "\x80" <= x <= "\x9f" for x, y in zip(a, b, strict=True))


def _differing(a: str, b: str) -> list[tuple[int, int]]:
    """The runs of positions where a and b, of one length, differ."""
    runs: list[tuple[int, int]] = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            if runs and runs[-1][1] == i:
                runs[-1] = (runs[-1][0], i + 1)
            else:
                runs.append((i, i + 1))
    return runs


def _token_changes(
    a: str, a1: int, a2: int, b: str, b1: int, b2: int, tokens: re.Pattern[str]
) -> list[tuple[int, int, int, int, bool]]:
    """The regions of a[a1:a2] and b[b1:b2] that differ, token by token, each with whether
    it is one token paired with one (trimmed of the characters both keep at either end: what
    changed in a run re-decoded in place) rather than a range of tokens still to compare. When
    both keep every ASCII token and punctuation mark in place they pair up one to one, and
    no matching is needed."""
    ta, tb = tokens.findall(a, a1, a2), tokens.findall(b, b1, b2)
    out: list[tuple[int, int, int, int, bool]] = []
    if len(ta) == len(tb) and all(
        x == y or not (x.isascii() or y.isascii() or x in _MARK_SET or y in _MARK_SET)
        for x, y in zip(ta, tb, strict=True)
    ):
        for x, y in zip(ta, tb, strict=True):
            if x != y:
                out.append((*_trimmed(a, a1, a1 + len(x), b, b1, b1 + len(y)), True))
            a1, b1 = a1 + len(x), b1 + len(y)
        return out
    oa, ob = _token_offsets(ta, a1), _token_offsets(tb, b1)
    for tag, t1, t2, u1, u2 in _matcher(ta, tb).get_opcodes():
        if tag == "equal":
            continue
        one = t2 - t1 == 1 and u2 - u1 == 1
        if one:
            out.append((*_trimmed(a, oa[t1], oa[t2], b, ob[u1], ob[u2]), True))
        else:
            out.append((oa[t1], oa[t2], ob[u1], ob[u2], False))
    return out


def _trimmed(a: str, a1: int, a2: int, b: str, b1: int, b2: int) -> tuple[int, int, int, int]:
    """a[a1:a2] → b[b1:b2] less the characters both start and end with."""
    while a1 < a2 and b1 < b2 and a[a1] == b[b1]:
        a1, b1 = a1 + 1, b1 + 1
    while a2 > a1 and b2 > b1 and a[a2 - 1] == b[b2 - 1]:
        a2, b2 = a2 - 1, b2 - 1
    return a1, a2, b1, b2


def _token_offsets(tokens: list[str], start: int = 0) -> list[int]:
    offsets = [start]
    for token in tokens:
        offsets.append(offsets[-1] + len(token))
    return offsets


_STEP_REASONS = {
    "decode_inconsistent_utf8": "UTF-8 mojibake inside otherwise valid text",
    "restore_byte_a0": "a non-breaking space lost from UTF-8 mojibake",
    "replace_lossy_sequences": "UTF-8 mojibake whose lost bytes can only be marked",
    "fix_c1_controls": "C1 control characters standing for windows-1252 punctuation",
}


def _explain(steps: list[tuple[str, str]] | None) -> str:
    """ftfy's plan as one English sentence: 'UTF-8 text read as windows-1252'.

    >>> _explain([("encode", "sloppy-windows-1252"), ("decode", "utf-8")])
    'UTF-8 text read as windows-1252'
    >>> _explain([("apply", "decode_inconsistent_utf8")])
    'UTF-8 mojibake inside otherwise valid text'
    """
    if not steps:
        return "mojibake"
    encodes = [p for action, p in steps if action == "encode"]
    decodes = [p for action, p in steps if action == "decode"]
    if encodes and decodes:
        read_as = encodes[0].replace("sloppy-", "")
        times = " twice" if len(decodes) > 1 else ""
        return f"{decodes[-1].upper()} text read as {read_as}{times}"
    return "; ".join(
        dict.fromkeys(_STEP_REASONS.get(p, f"mojibake ({action} {p})") for action, p in steps)
    )


# ftfy sees a line holding a hint whole, as it does when it fixes a whole text: its judgement
# of a re-decoding weighs everything the line holds (`ÃŽnapoi` alone reads as text; beside more
# mojibake in its line, it is mojibake). A longer line is seen as each cluster of hints with
# MOJIBAKE_CONTEXT code points on each side, so that the cost grows with the damage rather
# than with the line. (Measured on planted mojibake in real files, bench/real_corpus.py
# --planted: ±48 code points missed repairs ftfy made in long lines of HTML.)
MOJIBAKE_WHOLE_LINE = 2000
# A window of merged hint clusters grows no longer than this: ftfy and the alignment of its
# result cost more than linearly in a window's length (a line of dense mojibake merged into one
# window of 100 KB took seconds).
MOJIBAKE_WINDOW_MAX = 2 * MOJIBAKE_WHOLE_LINE
MOJIBAKE_CONTEXT = 300


def _hint_windows(text: str) -> list[tuple[int, int]]:
    """Spans of text around its mojibake hints, for ftfy to see: the hint's line, or in a long
    line the hints' clusters (hints closer together than twice the context share a window).
    No window crosses a line break; one that reaches the end of its line takes the break,
    which ftfy's judgement of a line counts on."""
    windows: list[tuple[int, int]] = []
    line_start, line_end = 0, -1
    for hint in mojibake_hints(text):
        if hint > line_end:  # the first hint on its line: each line is searched once
            line_start = text.rfind("\n", max(0, line_end), hint) + 1
            line_end = text.find("\n", hint)
            line_end = len(text) if line_end == -1 else line_end
        if line_end - line_start <= MOJIBAKE_WHOLE_LINE:
            start, end = line_start, line_end
        else:
            start = max(line_start, hint - MOJIBAKE_CONTEXT)
            end = min(line_end, hint + MOJIBAKE_CONTEXT)
        if end == line_end < len(text):
            end += 1  # ftfy judges a line with its break, as it does in a whole text
        if (
            windows
            and start <= windows[-1][1]
            and line_start <= windows[-1][0]
            and end - windows[-1][0] <= MOJIBAKE_WINDOW_MAX
        ):
            start = windows.pop()[0]
        elif windows and start < windows[-1][1]:
            start = windows[-1][1]  # a window as long as it may be: the next starts after it
        windows.append((start, end))
    return windows


def _badness_drop(text: str, proposal: Proposal) -> int:
    """How much less "bad" (ftfy's measure) the text around proposal reads once applied."""
    before = text[max(0, proposal.start - 1) : proposal.start]
    after = text[proposal.end : proposal.end + 1]
    return badness(before + text[proposal.start : proposal.end] + after) - badness(
        before + proposal.replacement + after
    )


# A run of this many consecutive code points (`ÐÑÒÓÔÕÖ×Ø`) is a table of characters, as
# documentation of code pages writes them, not words: mojibake never orders its characters so.
# (perlebcdic.pod's table of Latin-1 was "repaired" by ftfy; bench/real_corpus.py.)
CHARACTER_RUN = 6


def _lists_characters(window: str) -> bool:
    """Whether a stretch of text holds a run of CHARACTER_RUN consecutive non-ASCII code points.

    >>> _lists_characters("[ÐÑÒÓÔÕÖ×ØÙ]"), _lists_characters("cafÃ© déjà")
    (True, False)
    """
    run = 1
    for a, b in pairwise(window):
        run = run + 1 if ord(b) == ord(a) + 1 and a >= "\xa0" else 1
        if run >= CHARACTER_RUN:
            return True
    return False


# A mojibake repair's confidence by how much it lowers ftfy's badness score of the text around
# it: two or more points (several unlikely character pairs gone) is near certain, one point
# likely, none (ftfy's codec round trip alone) a plain guess. Hand-set ranks, not measured
# probabilities: the real corpus's repairs (bench/real_corpus.py) all drop two or more.
MOJIBAKE_CONFIDENCE = ((2, 0.95), (1, 0.85))
MOJIBAKE_CONFIDENCE_FLOOR = 0.7


def _mojibake_confidence(drop: int) -> float:
    return next((c for least, c in MOJIBAKE_CONFIDENCE if drop >= least), MOJIBAKE_CONFIDENCE_FLOOR)


def find_mojibake(text: str, context: ControlContext | None = None) -> list[Proposal]:
    """UTF-8 read as a single-byte codec (also twice), repaired with ftfy around each sign
    of it.

    Safe because ftfy changes text only when the re-decoded text is less "bad" than the
    original, and its text-changing extras are switched off (see FTFY_CONFIG). context is the
    whole document's (`ControlContext`) when text is a part of it: a document that writes C1
    controls as glyph codes has none of them read as windows-1252.

    >>> [(p.start, p.end, p.replacement) for p in find_mojibake("cafÃ© â€œokâ€\\u009d")]
    [(3, 5, 'é'), (6, 9, '“'), (11, 14, '”')]
    """
    if text.isascii():
        return []
    controls = context or ControlContext(text)  # (what it is asked is read once, if at all)
    proposals: list[Proposal] = []
    for start, end in _hint_windows(text):
        window = text[start:end]
        if _lists_characters(window):
            continue
        fixed, steps = ftfy.fix_and_explain(window, config=FTFY_CONFIG)
        if fixed == window:
            continue
        reason = _explain(steps)
        for proposal in _diff_proposals(window, fixed, start, Category.MOJIBAKE, reason, 0.0):
            confidence = _mojibake_confidence(_badness_drop(text, proposal))
            if _C1_ONLY.fullmatch(text, proposal.start, proposal.end) and (
                (
                    _among_other_scripts(text, proposal.start, proposal.end)
                    and not paired_c1_quote(text, proposal.start)
                )
                or in_code_order(text, proposal.start)
                or written_as_data(text, proposal.start)
                or controls.glyph_codes
            ):
                # A broken character's remnant, a table of the controls, or a font's glyph
                # codes: the stray-character stage's to judge.
                continue
            doubt = next((why for weak, why in _MOJIBAKE_DOUBTS if weak(text, proposal)), None)
            if doubt is not None:
                proposal = replace(proposal, reason=f"{proposal.reason}; {doubt}", flag_only=True)
            proposals.append(replace(proposal, confidence=confidence))
    return proposals


# A re-decoding that gives a code point no text holds (unassigned, private use, a
# noncharacter, a surrogate) did not find the text that was meant: a table of a code page's
# characters in code order "re-decoded" from UTF-8 (iconv-lite's cp857 row `ğ¿®¬` became the
# unassigned U+3FBAC; its Mac Greek row, a private-use character).
NOT_A_CHARACTER_REASON = "the re-decoded text would hold a code point no text holds: reported"
_NOT_TEXT_CATEGORIES = frozenset({"Cn", "Co", "Cs"})


def not_a_character(text: str) -> bool:
    """Whether text holds a code point that is unassigned, private-use, a surrogate or a
    noncharacter (all of them Unicode category Cn, Co or Cs).

    >>> not_a_character("\U0003fbac"), not_a_character("\ue000"), not_a_character("é’")
    (True, True, False)
    """
    return any(unicodedata.category(ch) in _NOT_TEXT_CATEGORIES for ch in text)


# Two Latin letters that re-decode into one letter of another script that no letter near them
# writes: a list of letters (`(ªəƏþÞıİºſ)` in a keyboard layout's comment, where Turkish
# windows-1254's `İº` is the UTF-8 of the Arabic `ݺ`), not a lost character. Real mojibake
# of a lone foreign letter has a symbol for its second character (`Î±` for `α`, `Ð¾` for `о`);
# two letters in a row are as often text. SCRIPT_REACH characters are looked at each side.
LONE_FOREIGN_LETTER_REASON = (
    "letters that would become one letter or mark of a script nothing near them writes: reported"
)
SCRIPT_REACH = 200


def lone_foreign_letter(text: str, proposal: Proposal) -> bool:
    """Whether proposal turns two or three letters into one non-Latin letter whose script no
    letter within SCRIPT_REACH characters writes (`ĺĽľ` in a list of Slovak letters is
    windows-1250's UTF-8 of `弾`), or a letter and any character into one combining
    mark of such a script (Notepad++'s Norwegian `Ø˜k`, damaged `Søk`, became `ؘk` with an
    Arabic small fatha: a mark of a script nothing near it writes has nothing to sit on), or
    into one letter or digit of such a script glued to a Latin word: `KURDÎ”` (Kurmanji, its
    closing quote) into Greek `KURDΔ`, a surname's `Heß†` into an N'Ko digit, a Chinantec
    Bible's tone letters `iáˆ n` into Ethiopic; or letters and symbols into one non-Greek
    letter or digit of such a script wedged against a Latin letter or a symbol (Orm's `Læ¯¯t`
    into Han `L毯t`). A lone foreign letter's mojibake stands apart (`the Î± particle`); one
    that ends or starts a Latin word is the word's own letters.

    >>> t = "keys (ªəƏþÞıİºſ) here"
    >>> [lone_foreign_letter(t, p) for p in find_mojibake(t)]
    [True]
    >>> u = "the Î± particle"
    >>> [lone_foreign_letter(u, p) for p in find_mojibake(u)]
    [False]
    >>> v = 'name="Ø˜k med:"'
    >>> [lone_foreign_letter(v, p) for p in find_mojibake(v)]
    [True]
    >>> w = "Pirtûka “KURDÎ” hat"
    >>> [lone_foreign_letter(w, p) for p in find_mojibake(w)]
    [True]
    >>> x = "Læ¯¯t nu Drihhtin"
    >>> [lone_foreign_letter(x, p) for p in find_mojibake(x)]
    [True]
    """
    original = text[proposal.start : proposal.end]
    new = proposal.replacement
    if len(original) not in (2, 3) or len(new) != 1:
        return False
    mark = unicodedata.category(new).startswith("M") and original[0].isalpha()
    beside = text[proposal.start - 1 : proposal.start] + text[proposal.end : proposal.end + 1]
    glued = (
        original[0].isalpha()
        and original[1] in _BESIDE_WORDS
        and any(_latin_letter(ch) for ch in beside)
    )
    # Letters and symbols read as one letter of another script wedged against a Latin letter
    # or a symbol (`lampáŠ` → Ethiopic, Orm's `Læ¯¯t` → Han, a scansion's `×¯˘` → Hebrew,
    # `*ß‡⁷` → N'Ko): the token's own characters. Greek and Cyrillic are left out: Greek
    # letters write units and names in Latin text (`10Î¼s`, `IL2RÎ³c`: ftfy's own cases), and
    # Cyrillic words are written beside Latin look-alikes (Chechen's palochka as `l`: `Хlоьттина`).
    wedged = (
        not original.isalpha()
        and not unicodedata.name(new, "").startswith(("GREEK", "CYRILLIC"))
        and any(
            _latin_letter(ch) or (ch > "\x7f" and unicodedata.category(ch) in _WEDGING)
            for ch in beside
        )
    )
    if not (mark or (original.isalpha() and new.isalpha())) and not (
        (glued or wedged) and new.isalnum()
    ):
        return False
    if unicodedata.name(new, "").startswith("LATIN"):
        return False  # a ligature (`ﬁ`): Latin, whatever its block
    if _latin(new) or "\u0250" <= new <= "\u036f":
        return False  # Latin, IPA, modifier letters (`ʻ`, Hawaiian `Mōʻī`), or a Latin mark
    script = unicodedata.name(new, "").split(" ")[0]
    near = text[max(0, proposal.start - SCRIPT_REACH) : proposal.start]
    near += text[proposal.end : proposal.end + SCRIPT_REACH]
    return not any(
        ch.isalpha() and ch > "\u024f" and unicodedata.name(ch, "").startswith(script)
        for ch in near
    )


# Character classes a wrong reading's letter is wedged against (`fixes.lone_foreign_letter`),
# beyond ASCII: symbols and superscript or other digits, not punctuation, digits or ASCII
# symbols, which real text puts beside a word of any script (a Korean heading's first
# syllable after a tag's `>`).
_WEDGING = frozenset({"Sm", "Sc", "Sk", "So", "No"})
# Marks that stand beside a word's letters in text: closing and low quotes, footnote daggers,
# the modifier circumflex that writes tones (Chinantec). A letter and one of these read as one
# character of another script glued to a Latin word is that word's own; symbols that write a
# unit or a gene's Greek letter (`10Î¼s`, `IL2RÎ³c`: ftfy's own cases) are not among them.
_BESIDE_WORDS = frozenset("”’„†‡ˆ")


def _latin(ch: str) -> bool:
    """Whether ch lies in the Latin blocks (ASCII, Latin-1, Extended-A and -B, Extended
    Additional)."""
    return ch <= "\u024f" or "\u1e00" <= ch <= "\u1eff"


def _latin_letter(ch: str) -> bool:
    """Whether ch is a letter of the Latin script."""
    return ch.isalpha() and _latin(ch)


# ftfy reads `Â ` as a no-break space whose UTF-8 lost its second byte to a space (its
# `restore_byte_a0`): `costsÂ more`, `Hello.Â World`. Standing alone, after a space or at a line's
# start, `Â` is as often the letter itself (`Correct Â that was improperly displayed as Å` in
# a changelog; `Z Â │` in a keyboard's diagram; `The letter Â is used in French.`): the
# no-break space is then a suggestion, not an edit.
A_CIRCUMFLEX_REASON = "a capital Â standing alone may be the letter itself: reported"


def a_letter_a_circumflex(text: str, proposal: Proposal) -> bool:
    """Whether proposal turns an `Â` that stands alone before a space into a no-break space.

    >>> [a_letter_a_circumflex(t, p) for t in ("The letter Â is", "It costsÂ more")
    ...  for p in find_mojibake(t)]
    [True, False]
    """
    start = proposal.start
    return (
        text.startswith("Â ", start)
        and proposal.replacement == "\xa0"
        and (start == 0 or text[start - 1].isspace() or text[start - 1] in _SPECIMEN_QUOTES)
    )


# A re-decoding that drops a letter ending a word and keeps the symbol after it: what ftfy makes
# of `Ā²` (windows-1257's reading of `²`'s UTF-8), and of IAST Sanskrit's `SVĀHĀ²⁸` (a word's
# `Ā` before a footnote number). The mojibake of a symbol's UTF-8 leads with `Â` in the code
# pages text is most often misread in (`TMÂ®`, `100Â°`); any other letter there is as likely
# the word's own: reported.
WORD_LETTER_REASON = (
    "the letter dropped ends a word and only windows-1257 or another rarer code page would make "
    "it mojibake: reported"
)


def drops_a_word_letter(text: str, proposal: Proposal) -> bool:
    """Whether proposal deletes one letter other than `Â` that follows a letter and comes
    before a symbol or a superscript digit beyond ASCII (a re-decoding that drops the `ƒ` of
    `NÃƒO`, windows-1252's reading of `NÃO`, keeps a letter whole).

    >>> [drops_a_word_letter(t, p) for t in ("SVĀHĀ²⁸", "Brand TMÂ®") for p in find_mojibake(t)]
    [True, False]
    """
    start, end = proposal.start, proposal.end
    return (
        proposal.replacement == ""
        and end == start + 1
        and text[start].isalpha()
        and text[start] != "Â"
        and start > 0
        and text[start - 1].isalpha()
        and end < len(text)
        and text[end] > "\x7f"
        and text[end] != "\ufffd"  # `SlovenÄ\ufffdina`: `č` that lost its second byte
        and unicodedata.category(text[end]) in _WEDGING
    )


# ftfy reads a capital `Ã` before a space as `à` whose no-break space became a space (French
# `jusqu'Ã nos jours`). With no other mojibake near it, a lone `Ã` is as likely the letter
# itself, named or written (`We don't fix Ã in all contexts` in ftfy's own tests; Portuguese
# `As letras Ã e Õ`): reported. SCRIPT_REACH characters are looked at each side.
A_TILDE_REASON = (
    "a capital Ã standing alone, with no other mojibake near it, may be the letter itself: reported"
)


def a_letter_a_tilde(text: str, proposal: Proposal) -> bool:
    """Whether proposal turns a lone `Ã` before a space into `à` with no other sign of
    mojibake within SCRIPT_REACH characters.

    >>> [a_letter_a_tilde(t, p) for t in ("We don't fix Ã in all", "Ã perturber la rÃ©flexion")
    ...  for p in find_mojibake(t)][:2]
    [True, False]
    """
    start = proposal.start
    if not (
        proposal.end == start + 1
        and text.startswith("Ã ", start)
        and proposal.replacement == "à"
        and (start == 0 or text[start - 1].isspace() or text[start - 1] in _SPECIMEN_QUOTES)
    ):
        return False
    low = max(0, start - SCRIPT_REACH)
    near = text[low : start + 1 + SCRIPT_REACH]
    return all(low + hint == start for hint in mojibake_hints(near))


# A string literal that holds nothing but invisible characters is written for them: a table's
# keys (`{"\x92": "'", "\x97": " - "}`), a trim check's whitespace (`"\u200b\x85\u180e"`),
# a constant's value (`NEXT_LINE: "\x85"`), XMP's `<?xpacket begin="\ufeff"`. QUOTED_REACH
# characters are looked at each side for the quotes: such a string is short.
QUOTED_REACH = 8
QUOTED_REASON = "a string literal of invisible characters alone: data, reported"


def quoted_alone(text: str, start: int, end: int) -> bool:
    """Whether text[start:end], invisible characters, stands in a quoted string holding no
    letter, digit or space: the same quote (`"` or `'`) within QUOTED_REACH characters on
    each side, with only other invisible characters between.

    >>> quoted_alone('{"\x92": "x"}', 2, 3), quoted_alone('begin="\ufeff" id', 7, 8)
    (True, True)
    >>> quoted_alone('"caf\x82 au lait"', 4, 5), quoted_alone("it\x92s", 2, 3)
    (False, False)
    """
    if not all(_invisible(ch) for ch in text[start:end]):
        return False
    left = start - 1
    while left >= max(0, start - QUOTED_REACH) and _invisible(text[left]):
        left -= 1
    if left < 0 or text[left] not in "\"'":
        return False
    right = end
    while right < min(len(text), end + QUOTED_REACH) and _invisible(text[right]):
        right += 1
    return right < len(text) and text[right] == text[left]


# Mojibake shown as an example, in text that explains mojibake: `like “Ã©” or “Ã¨”, it is
# probably a file encoded as UTF-8 but interpreted as ISO-8859-1` (the Debian Administrator's
# Handbook, in every one of its languages), `until I hit my first â€™ at Oracle` (a post about
# encodings). A specimen stands alone: it re-decodes to one letter with a quote mark against
# it, or to one apostrophe with nothing but space or quotes around it. Mojibake a converter
# made joins words (`cafÃ©`, `donâ€™t`); a lone quoted letter is rare in prose, and a lone
# standing apostrophe rarer still (double quotes and guillemets stand apart from the words
# they quote in some typography: `â€œ bonjour â€\x9d` is damage). Format characters (the
# U+200E marks of right-to-left text) are looked through. Dashes, bullets and other
# standalone punctuation are not specimens: ` â€” ` is how a converter leaves an em dash.
SPECIMEN_REASON = "a lone re-decoding standing as an example, not inside a word: reported"
_SPECIMEN_QUOTES = frozenset("\"'`“”„‟‘’‚‛«»‹›「」『』")
_APOSTROPHES = frozenset("’‘")


def shown_as_specimen(text: str, proposal: Proposal) -> bool:
    """Whether proposal re-decodes a lone specimen of mojibake: one letter with a quote mark
    beside it and no word character on either side, or one apostrophe (`’`, `‘`) between
    spaces or quotes.

    >>> t = "like “Ã©” or Ã¨” here; my first â€™ at work"
    >>> [shown_as_specimen(t, Proposal(a, b, r, Category.MOJIBAKE, "", 0.85))
    ...  for a, b, r in [(6, 8, "é"), (13, 15, "è"), (32, 35, "’")]]
    [True, True, True]
    >>> shown_as_specimen("cafÃ© “Ã©tÃ©”", Proposal(3, 5, "é", Category.MOJIBAKE, "", 0.85))
    False
    >>> shown_as_specimen("il est Ã  Paris", Proposal(7, 9, "à", Category.MOJIBAKE, "", 0.85))
    False
    >>> shown_as_specimen("jusqu'Ã nos jours", Proposal(6, 7, "à", Category.MOJIBAKE, "", 0.85))
    False
    >>> shown_as_specimen('.SH "è·\x8b"', Proposal(5, 8, "跋", Category.MOJIBAKE, "", 0.85))
    False
    """
    replacement = proposal.replacement
    if len(replacement) != 1:
        return False
    left, beyond_left = _neighbours(text, proposal.start - 1, -1)
    right, beyond_right = _neighbours(text, proposal.end, 1)
    sides = (left, right)
    if any(_word_char(ch) for ch in sides):
        return False
    # A quote mark with a word on its far side is an apostrophe (`jusqu'Ã nos`) or a quote
    # the damage runs on into, not one around a specimen.
    quoted = (left in _SPECIMEN_QUOTES and not _word_char(beyond_left)) or (
        right in _SPECIMEN_QUOTES and not _word_char(beyond_right)
    )
    if replacement.isalpha():
        # A specimen shows what a Latin letter's UTF-8 becomes; a quoted letter of another
        # script is as often a whole word in a damaged paragraph (`"è·\x8b"` for a man page's
        # one-character heading `"跋"`, Hebrew `×’'` for `ג'`), where the quote's far side is
        # damage too.
        return quoted and _latin_letter(replacement)
    if replacement in _APOSTROPHES:
        # Within a line: a catalogue's entry of the mark alone on its line (`’` translated)
        # is the mark itself.
        return all(ch in _SPECIMEN_QUOTES or ch in " \t\xa0" for ch in sides)
    if unicodedata.category(replacement) == "Cf":
        # A byte order mark's mojibake named in prose (`sind dies die Zeichen ï»¿.`): one a
        # file began with stands against the text it began.
        return left in (" ", "\xa0") or quoted
    return False


# Mojibake beside its own repair is a fix-up's pattern and its replacement, not damage:
# licensecheck's `$COPYRIGHT =~ s/Â©/©/g` lost its `Â` and became a no-op; a table
# `{"Ã©": "é"}` or `.replace('Ã©', 'é')`. The repair must stand on the same line within
# REPAIR_REACH characters, with only punctuation and space between and a delimiter among it
# (`/`, `', '`, `": "`, ` => `): a converter's damage is not followed by the text it damaged.
REPAIR_REACH = 8
_REPAIR_DELIMITERS = frozenset("/'\"`,:=>|")
BESIDE_ITS_REPAIR_REASON = "mojibake beside its own repair: a fix-up's pattern, reported"


def beside_its_repair(text: str, proposal: Proposal) -> bool:
    """Whether proposal's replacement stands just after or before it on its line, nothing but
    punctuation and space between.

    >>> t = "$s =~ s/Â©/©/g;"
    >>> beside_its_repair(t, Proposal(8, 10, "©", Category.MOJIBAKE, "", 0.85))
    True
    >>> beside_its_repair(t, Proposal(8, 9, "", Category.MOJIBAKE, "", 0.85))
    True
    >>> beside_its_repair("cafÃ© or café", Proposal(3, 5, "é", Category.MOJIBAKE, "", 0.85))
    False
    >>> beside_its_repair("Ð½Ðµ Ðµ", Proposal(5, 6, "", Category.MOJIBAKE, "", 0.85))
    False
    >>> beside_its_repair("не Ðµ", Proposal(3, 5, "е", Category.MOJIBAKE, "", 0.85))
    False
    """
    start, end, repair = proposal.start, proposal.end, proposal.replacement
    if not repair:
        # A deletion (`Â` of `Â©`): the repair is the character it leaves standing.
        if end >= len(text) or not text[end].strip():
            return False
        end, repair = end + 1, text[end]
    damaged = text[proposal.start : proposal.end]

    def standing(at: int, between: str) -> bool:
        # The repair itself, not the same damage again (`Ðµ Ðµ`, Macedonian `не е`: a
        # deletion's `µ` stands in the next pair too), with a delimiter between and nothing
        # but punctuation and space: a space alone is prose, where a later pass sees the
        # word before already mended (`не Ðµ`).
        return (
            text[max(0, at - len(damaged)) : at] != damaged
            and any(ch in _REPAIR_DELIMITERS for ch in between)
            and not any(ch.isalnum() or ch == "\n" for ch in between)
        )

    at = text.find(repair, end, end + REPAIR_REACH + len(repair))
    if at >= 0 and standing(at, text[end:at]):
        return True
    at = text.rfind(repair, max(0, start - REPAIR_REACH - len(repair)), start)
    return at >= 0 and standing(at, text[at + len(repair) : start])


# A byte order mark's mojibake right after a pattern's anchor is what the pattern looks for:
# Config::IniFiles strips `s/\Aï»¿//` (the mark a file began with, read as Latin-1), as does
# `/^ï»¿/`; repaired, the pattern lost what it matches.
ANCHORED_BOM_REASON = (
    "a byte order mark's mojibake after a pattern's anchor: what it seeks, reported"
)


def sought_after_an_anchor(text: str, proposal: Proposal) -> bool:
    """Whether proposal re-decodes a byte order mark that follows `^` or `\\A`.

    >>> p = Proposal(5, 8, "\ufeff", Category.MOJIBAKE, "", 0.85)
    >>> sought_after_an_anchor("if /^ï»¿/", p), sought_after_an_anchor("abcd ï»¿x", p)
    (True, False)
    """
    start = proposal.start
    return proposal.replacement == "\ufeff" and (
        (start >= 1 and text[start - 1] == "^") or (start >= 2 and text[start - 2 : start] == "\\A")
    )


# Mojibake written as code is an example the text shows: ``Kauderwelsch wie `Ã‚Â£` ``
# (MDN's glossary, in every language), ``乱码 `æœ¬æ–‡...` ``, a table of what UTF-8 read as
# cp1252 looks like, `<code>ï»¿</code>` in the W3C's article on the byte order mark. A
# converter that damaged a document damaged its prose, not only what it quotes as code. The
# span must be all the code holds, punctuation aside, looked for within CODE_REACH characters
# each side.
CODE_REASON = "mojibake written as code, as an example: reported"
CODE_REACH = 400
# What opens code, then punctuation only up to the end of what is searched.
_CODE_LEAD = re.compile(r"(?:`|<(code|kbd|samp|tt)\b[^<>]*>)[^\w\s`<>]*\Z", re.IGNORECASE)
_PUNCTUATION_RUN = re.compile(r"[^\w\s`<>]*")


def written_as_code(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is what a Markdown code span or a `<code>`, `<kbd>`, `<samp>`
    or `<tt>` element holds, with nothing but punctuation beside it inside (`` `Ã‚Â£` ``,
    `` `æœ¬æ–‡...` ``, `<code>ï»¿</code>`). Held alone: a catalogue's `` `%s' `` quotes
    with a backtick, and a word after one is not code.

    >>> written_as_code("wie `Ã‚Â£` ersetzt", 5, 9), written_as_code("<code>ï»¿</code>", 6, 9)
    (True, True)
    >>> written_as_code("a `b` cafÃ© `c`", 9, 11), written_as_code("`%s' paylaÅŸÄ±mlÄ± `x`", 10, 12)
    (False, False)
    """
    lead = _CODE_LEAD.search(text, max(0, start - CODE_REACH), start)
    if lead is None:
        return False
    closer = "`" if lead.group(1) is None else f"</{lead.group(1).lower()}>"
    trail = _PUNCTUATION_RUN.match(text, end, end + CODE_REACH)
    after = trail.end() if trail else end
    return text[after : after + len(closer)].lower() == closer


# Mojibake in a string literal of an interactive session's input line (`>>> ` or `... `):
# a function's documentation passing damaged text to show what the function makes of it
# (ftfy's README `>>> fix_text('âœ” No problems')`, pythainlp's
# `>>> tis620_to_utf8("¡ÃÐ·ÃÇ§...")`). The output lines below it are left to the other rules.
PROMPT_LITERAL_REASON = "mojibake in a string literal of an interactive example's input: reported"
_PROMPT = re.compile(r"[ \t]*(?:>>>|\.\.\.) ")


def in_a_prompt_literal(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] lies inside a quoted string on a line that opens with a Python
    prompt (`>>> ` or `... `), looked for within CODE_REACH characters each side (an
    interactive example's line is short; the search stays bounded on a long one).

    >>> t = ">>> fix_text('âœ” No problems')"
    >>> in_a_prompt_literal(t, 14, 17), in_a_prompt_literal("fix_text('âœ”')", 10, 13)
    (True, False)
    """
    low = max(0, start - CODE_REACH)
    line_start = text.rfind("\n", low, start) + 1
    if (line_start == 0 and low > 0) or not _PROMPT.match(text, line_start):
        return False
    high = min(len(text), end + CODE_REACH)
    line_end = text.find("\n", end, high)
    before = text[line_start:start]
    after = text[end : high if line_end < 0 else line_end]
    return any(before.count(q) % 2 == 1 and q in after for q in "'\"")


# A re-decoding that takes a closing quote mark into a character, where the text opened that
# quote before it on the line: the mark is the text's own (`A campanha “IRMÃ” começou`: `Ã”`
# is the UTF-8 of `Ô`, and the quote would go). QUOTE_PAIR_REACH characters are looked back.
CLOSES_A_QUOTE_REASON = (
    "the re-decoding would take a quote mark the text opened before it: reported"
)
_CLOSING_OF = {"”": "“", "’": "‘", "»": "«"}


def closes_a_quote(text: str, proposal: Proposal) -> bool:
    """Whether proposal's original ends in a closing quote mark its replacement drops, whose
    opening mark stands before it on its line with no other closing mark between.

    >>> t = "A campanha “IRMÃ” começou"
    >>> [closes_a_quote(t, p) for p in find_mojibake(t)]
    [True]
    >>> u = "Itâ€™s â€œfineâ€\x9d"
    >>> [closes_a_quote(u, p) for p in find_mojibake(u)]
    [False, False, False]
    >>> v = "Hui PÅ« Ê»Ia"
    >>> [closes_a_quote(v, p) for p in find_mojibake(v)]
    [False, False]
    """
    last = text[proposal.end - 1 : proposal.end]
    opening = _CLOSING_OF.get(last)
    if opening is None or proposal.replacement.endswith(last):
        return False
    line_start = text.rfind("\n", max(0, proposal.start - QUOTE_PAIR_REACH), proposal.start) + 1
    opened = text.rfind(opening, max(line_start, proposal.start - QUOTE_PAIR_REACH), proposal.start)
    if opened < 0 or _word_char(text[opened - 1 : opened]):
        # No opening mark, or one glued to the letter before it: mojibake's own (`Ä«` is the
        # UTF-8 of `ī` read as windows-1252), not a quote the text opened.
        return False
    return text.find(last, opened + 1, proposal.start) < 0


def _word_char(ch: str) -> bool:
    """Whether ch is part of a word: a letter, a digit or `_`."""
    return ch.isalnum() or ch == "_"


def _neighbours(text: str, at: int, step: int) -> tuple[str, str]:
    """The first two characters from at on, going by step, that are not format characters
    ("" past the text's edge)."""
    found: list[str] = []
    while 0 <= at < len(text) and len(found) < 2:
        if unicodedata.category(text[at]) != "Cf":
            found.append(text[at])
        at += step
    found += ["", ""]
    return found[0], found[1]


def _invisible(ch: str) -> bool:
    """A control, format, separator or noncharacter code point other than a space, tab or
    line break."""
    return ch not in " \t\n\r" and unicodedata.category(ch) in ("Cc", "Cf", "Cn", "Zl", "Zp", "Zs")


# A character followed by its own code point, in decimal or hexadecimal, is a row of a character
# table: memoir's manual lists `Â 194`, `Ã 195`, `Ä 196`, and ftfy read `Ã ` as the mojibake of
# `à` (in 26 documents of text taken from Debian's TeX documentation, such tables and letters
# shown with their marks were "repaired").
CODE_TABLE_ROW_REASON = (
    "a character followed by its own code point: a character table's row, reported"
)
# Characters looked at after the character for its code (spaces, a prefix, the digits).
OWN_CODE_REACH = 12
_OWN_CODE = re.compile(r"[ \t]+(?:U\+|0x|&#x|&#)?([0-9A-Fa-f]+)(?![0-9A-Za-z])")


def names_its_code(text: str, proposal: Proposal) -> bool:
    """Whether a character of the proposal's span beyond ASCII is followed, after spaces or a
    tab, by its own code point in decimal or hexadecimal as a word (`Ã 195`, `Ã C3`,
    `Ã U+00C3`).

    >>> names_its_code("Â 194\\n\\nÃ 195\\n", Proposal(7, 9, "à", Category.MOJIBAKE, "", 0.5))
    True
    >>> names_its_code("jusqu'Ã nos jours", Proposal(6, 8, "à", Category.MOJIBAKE, "", 0.5))
    False
    """
    for at in range(proposal.start, proposal.end):
        code = ord(text[at])
        if code < 0x80:
            continue
        digits = _OWN_CODE.match(text[at + 1 : at + 1 + OWN_CODE_REACH])
        if digits and digits.group(1).lower() in (str(code), f"{code:x}", f"{code:04x}"):
            return True
    return False


# The re-decodings `find_mojibake` only reports, each with the reason it adds, the first that
# applies.
_MOJIBAKE_DOUBTS: tuple[tuple[Callable[[str, Proposal], bool], str], ...] = (
    (a_letter_a_circumflex, A_CIRCUMFLEX_REASON),
    (a_letter_a_tilde, A_TILDE_REASON),
    (lambda text, proposal: not_a_character(proposal.replacement), NOT_A_CHARACTER_REASON),
    (names_its_code, CODE_TABLE_ROW_REASON),
    (lone_foreign_letter, LONE_FOREIGN_LETTER_REASON),
    (drops_a_word_letter, WORD_LETTER_REASON),
    (lambda text, proposal: quoted_alone(text, proposal.start, proposal.end), QUOTED_REASON),
    (shown_as_specimen, SPECIMEN_REASON),
    (beside_its_repair, BESIDE_ITS_REPAIR_REASON),
    (sought_after_an_anchor, ANCHORED_BOM_REASON),
    (closes_a_quote, CLOSES_A_QUOTE_REASON),
    (lambda text, proposal: written_as_code(text, proposal.start, proposal.end), CODE_REASON),
    (
        lambda text, proposal: in_a_prompt_literal(text, proposal.start, proposal.end),
        PROMPT_LITERAL_REASON,
    ),
)


# A C1 control read as the windows-1252 punctuation it stands for (ftfy's `fix_c1_controls`)
# is right in text that windows-1252 writes: `\x93quoted\x94` in English or French decoded as
# Latin-1. Between letters of another script it is what is left of a broken multi-byte
# character (`应用禀\x8b序` for `应用程序`, `기본ꮀ\x92입니다` in LibreOffice's help: five such in
# 2.4 MB of its Chinese and Korean text, every one turned into `‹`, `…`, `‰`, `ˆ` or `’`), so
# the mojibake stage leaves it to the stray-character stage, which takes a control out or
# reports it. C1_CONTEXT letters are looked at on each side.
_C1_ONLY = re.compile("[\x80-\x9f]+")
C1_CONTEXT = 3


# windows-1252's quotes decoded as Latin-1 come in pairs: an opening C1 quote with its closing
# one after it on the same line, within QUOTE_PAIR_REACH characters (`梁振英\x93撒谎\x94，` in a
# Hong Kong news article: “ ” around a word), are quotes among CJK text too, not remnants of
# broken characters, which do not pair.
QUOTE_PAIR_REACH = 80
_C1_QUOTE_PAIRS = {"\x93": "\x94", "\x91": "\x92"}


def paired_c1_quote(text: str, at: int) -> bool:
    r"""Whether text[at] is a C1 opening quote (0x93, 0x91) with its closing one after it on its
    line, or a closing one with its opening one before it.

    >>> paired_c1_quote("梁振英\x93撒谎\x94，", 3), paired_c1_quote("梁振英\x93撒谎\x94，", 6)
    (True, True)
    >>> paired_c1_quote("应用禀\x8b序", 3), paired_c1_quote("a\x93b\nc\x94", 1)
    (False, False)
    """
    char = text[at]
    if char in _C1_QUOTE_PAIRS:
        close = _C1_QUOTE_PAIRS[char]
        end = text.find("\n", at, at + QUOTE_PAIR_REACH)
        return text.find(close, at + 1, end if end >= 0 else at + QUOTE_PAIR_REACH) >= 0
    for opening, closing in _C1_QUOTE_PAIRS.items():
        if char == closing:
            start = text.rfind("\n", max(0, at - QUOTE_PAIR_REACH), at) + 1
            return text.rfind(opening, max(start, at - QUOTE_PAIR_REACH), at) >= 0
    return False


def _among_other_scripts(text: str, start: int, end: int) -> bool:
    """Whether a letter of a script other than Latin is among the C1_CONTEXT letters on
    either side of text[start:end].

    >>> _among_other_scripts("应用禀\x8b序间", 3, 4), _among_other_scripts("a \x93quoted\x94", 2, 3)
    (True, False)
    """
    left = [c for c in text[max(0, start - 4 * C1_CONTEXT) : start] if c.isalpha()]
    right = [c for c in text[end : end + 4 * C1_CONTEXT] if c.isalpha()]
    near = left[-C1_CONTEXT:] + right[:C1_CONTEXT]
    return any(not _latin(c) for c in near)


def fix_mojibake(text: str) -> str:
    """Repair UTF-8 mojibake, leaving valid typography alone.

    >>> fix_mojibake("The Mona Lisa doesnâ€™t have eyebrows.")
    'The Mona Lisa doesn’t have eyebrows.'
    >>> fix_mojibake("“Curly” quotes — and … stay")
    '“Curly” quotes — and … stay'
    """
    return apply_proposals(text, find_mojibake(text))


def fix_markup_leaks(text: str) -> str:
    """Unescape leaked entities, then remove leaked tags, in a plain-text document, where the
    document shows that markup leaked (see `textmend_server.markup`).

    >>> fix_markup_leaks("Fish &amp;amp; chips&#8217; price")
    'Fish & chips’ price'
    >>> fix_markup_leaks("Some <b>bold</b> text.</p>")
    'Some bold text.'
    >>> fix_markup_leaks("if a < b, see <not a tag>, vector<b>, <a at b.c>, Use &gt; and &lt;.")
    'if a < b, see <not a tag>, vector<b>, <a at b.c>, Use &gt; and &lt;.'
    """
    evidence = markup_evidence(text)
    fixes = [p for p in find_entity_leaks(text, evidence) if not p.flag_only]
    text = apply_proposals(text, fixes)
    return apply_proposals(text, [p for p in find_tag_leaks(text, evidence) if not p.flag_only])


def _noncharacters() -> str:
    planes = "".join(
        f"\\U{(plane << 16) | 0xFFFE:08x}\\U{(plane << 16) | 0xFFFF:08x}" for plane in range(17)
    )
    return "\ufdd0-\ufdef" + planes


_NONCHARACTER_RE = re.compile(f"[{_noncharacters()}]")


_SPACED_LETTER = "A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u052f\u1e00-\u1eff"


def _build_stray_regex() -> re.Pattern[str]:
    """One pass finds every stray character; the group name is its category."""
    return re.compile(
        "|".join(
            [
                r"(?P<control_char>\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0e-\x1f\x7f-\x9f])",
                r"(?P<replacement_char>\ufffd)",
                r"(?P<private_use>[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd])",
                f"(?P<noncharacter>[{_noncharacters()}])",
                r"(?P<stray_bom>\ufeff)",
                rf"(?<=[{_SPACED_LETTER}])(?P<zero_width>[\u200b\u2060\u180e]+)(?=[{_SPACED_LETTER}])",
                r"(?P<bidi_control>[\u202a-\u202e\u2066-\u2069])",
            ]
        )
    )


STRAY_RE = _build_stray_regex()
# Any character a stray can start with, as one character class: a single fast scan tells
# whether the full pattern (with its look-arounds) needs to run at all.
# (Astral noncharacters and private use are covered by one block from U+1FFFE up: listing them
# one by one would make the scan ten times slower.)
STRAY_HINT = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd\ue000-\uf8ff\ufdd0-\ufdef\ufffe\uffff"
    "\ufeff\u200b\u2060\u180e\u202a-\u202e\u2066-\u2069\U0001fffe-\U0010ffff]"
)

# The confidences below say how sure a removal is that the character is damage, not content:
# hand-set ranks by how often each is legitimate in interchanged text (a noncharacter or NUL
# never; private use in some fonts' documents; U+FFFD marks a real loss but removing it hides
# that). A report that a character is there, not removed, says 0.5: it may well be content.
WEAK_STRAY_CONFIDENCE = 0.5
_STRAY_REASONS = {
    Category.CONTROL_CHAR: ("control character in text", 0.95),
    Category.REPLACEMENT_CHAR: ("U+FFFD: a character was lost before this text arrived", 0.9),
    Category.PRIVATE_USE: ("private-use character: meaningful only to one font or vendor", 0.6),
    Category.NONCHARACTER: ("Unicode noncharacter: never valid in interchanged text", 0.95),
    Category.STRAY_BOM: ("byte order mark inside the text", 0.95),
    Category.ZERO_WIDTH: ("zero-width space inside a word", 0.85),
    Category.BIDI_CONTROL: (
        "bidirectional embedding, override or isolate: can hide or reorder text",
        0.9,
    ),
}


# C0 controls that a writer may have put there: BEL in a help text, backspace, shift codes,
# ESC in an editor's macro, DEL in an Info file's tag table. Pipelines leave NUL (UTF-16 read as
# bytes) and C1 controls (cp1252 read as latin-1), removed wherever they are; these are removed
# only where the text shows damage.
_WRITABLE_C0 = re.compile("[\x01-\x08\x0e-\x1b\x7f]")
# The information separators (FS, GS, RS, US): structure in data formats (gnupg's catalogues
# align prompts with US), never removed, only reported.
_SEPARATORS = frozenset("\x1c\x1d\x1e\x1f")
# A text with at least this many writable controls uses them on purpose: a format's, not damage,
# whose controls do not recur. Real files hold them by the dozen: in 5,551 documents of Debian
# packages outside the real corpus, fortune files underline with `___\b\b\b`, Info files mark
# their tag tables with DEL and their indexes with NUL and backspace, Vim macros hold ESC and
# Ctrl-V, and grotty's output overstrikes; each was removed while many counted as damage.
CONTROL_MANY = 3
# A whole terminal escape sequence (`ESC[1m` … `ESC[0m`) is formatting written for a terminal,
# not damage: gettext's `en@boldquot` catalogues put hundreds in on purpose (issue 15's real
# corpus), and a log pasted with its colours reads the same to its author. Reported with the
# suggestion to remove it; a bare ESC is judged like the other writable controls.
TERMINAL_SEQUENCE_REASON = (
    "terminal escape sequence: formatting written for a terminal, reported, not removed"
)
# A lone ESC before a key, even inside a word, is the Escape key written down: Vim's
# documentation quotes the keys of a command as `"Ox\x1bjAx\x1bkdd"` (version6.txt, two ESCs
# in 577 KB, so the many-controls rule did not hold them), and no document of the real-text
# sets held such an ESC that a pipeline had put there. Reported, not removed; an ESC before a
# letter no key types (`caf\x1bé`) is judged like the other writable controls.
ESCAPE_KEY_REASON = (
    "an ESC before a key: the Escape key as texts about editors write it, reported, not removed"
)
# nroff's other terminal formatting: a character struck over by another through a backspace,
# `b\bb` bold, `_\bx` underlined, `+\bo` a bullet, `,\bc` a ç (man-db's formatted manual
# holds hundreds).
OVERSTRIKE_REASON = "overstrike (a backspace between two characters): nroff's bold or underline"
# In roff source a control is an escape's delimiter (`\w^G…^G`: roff takes any character, and
# BEL is the one that cannot occur in the argument), not damage.
ROFF_CONTROL_REASON = "control character in roff source: an escape's delimiter, reported"


def is_overstrike(text: str, i: int) -> bool:
    """Whether the backspace at i strikes one printable character over another the way nroff
    does: the same character twice (bold), a letter with a mark (`_` underline, `,` cedilla,
    `'` acute), or `+` with `o` (a bullet). Two different letters (`be\bll`) are a typo or
    damage, not formatting.

    >>> is_overstrike("b\bbold", 1), is_overstrike("_\bx", 1), is_overstrike("Fran,\bcois", 5)
    (True, True, True)
    >>> is_overstrike("+\bo", 1), is_overstrike("be\bll", 2), is_overstrike("a \b b", 2)
    (True, False, False)
    """
    if not (0 < i < len(text) - 1) or text[i] != "\b":
        return False
    a, b = text[i - 1], text[i + 1]
    if not (a.isprintable() and b.isprintable()) or a.isspace() or b.isspace():
        return False
    return a == b or not (a.isalnum() and b.isalnum())


def _inside_word(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is wedged between two characters of one word: neither neighbour
    is white space, ASCII punctuation or another control (`be\x07ll`, `Ã\x07©`; not
    `\\B\x07\\`, `ESC[`, `\x00\x08`).

    >>> _inside_word("be\x07ll", 2, 3), _inside_word("Ã\x07©", 1, 2), _inside_word("a\x1b[1m", 1, 2)
    (True, True, False)
    """
    if start == 0 or end >= len(text):
        return False
    return all(
        not c.isspace() and c.isprintable() and not (c.isascii() and not c.isalnum())
        for c in (text[start - 1], text[end])
    )


# Control characters (or noncharacters) one after another in code order, TABLE_RUN of them at
# the least, are a table of characters (iconv-lite's and xlsx's single-byte code pages write
# `\x80\x81\x82…\x9f` in a string; 658 controls of one file were removed): data, reported.
# A document that holds CONTROL_MANY noncharacters uses them on purpose (jschardet's decode
# tables mark their undefined places with U+FFFF, 3,917 of them); they are reported too.
TABLE_RUN = 4
CODE_ORDER_REASON = "one of a table of characters in code order: data, reported, not removed"

# A control within UNREADABLE_REACH characters of a U+FFFD stands among bytes no decoder
# could read: binary data shown as text (a notebook's printed bz2 output, `軒)\x84\ufffdP`),
# where removing one character repairs nothing. Two: the control's neighbours and theirs.
UNREADABLE_REACH = 2
UNREADABLE_REASON = "a control beside undecodable bytes (binary data shown as text): reported"
NONCHARACTERS_MANY_REASON = "one of many noncharacters in this text: its own markers, reported"
# U+FFFF is the mark PDF extractors (pypdf, pdfminer) leave where a glyph had no Unicode: a
# placeholder, whose removal joins what stood around it (`D{.}{\uffff}{<num>}` became
# `D{.}{}{<num>}`, a Chinese manual's list lost its bullets). Reported; other noncharacters
# (U+FFFE, a byte-swapped BOM) are still removed.
PLACEHOLDER_REASON = "U+FFFF, a converter's mark for a character it could not map: reported"


def in_code_order(text: str, at: int) -> bool:
    """Whether text[at] stands in a run of TABLE_RUN or more characters each one code point
    after the one before.

    >>> in_code_order('"\x80\x81\x82\x83\x84"', 3), in_code_order("a\x81b", 1)
    (True, False)
    """
    lo = at
    while lo > 0 and at - lo < TABLE_RUN and ord(text[lo - 1]) == ord(text[lo]) - 1:
        lo -= 1
    hi = at
    while hi + 1 < len(text) and hi - lo < TABLE_RUN and ord(text[hi + 1]) == ord(text[hi]) + 1:
        hi += 1
    return hi - lo + 1 >= TABLE_RUN


# A control character its own line names by its code (`0x80\t'\x80'` in a console's
# character map: 31 files of two Debian packages mapped bytes 0x80-0x9f to themselves), or
# written beside a backslash escape (`[\v\f\x85\u2028\u2029]`, line terminators in a
# minified script's regular expression), is data: reported, not removed nor read as
# windows-1252. The line is looked at CODE_NAME_REACH characters on each side: a table's row
# is short.
CODE_NAME_REACH = 80
LISTED_REASON = "a character its line names by its code, or beside an escape: data, reported"
# The controls' abbreviations (ISO 6429 and ASCII), by code point: a control written beside
# its own name is a list of them (`;; NEL\x85133` in a Racket example naming its line
# separators), within NAME_REACH characters.
_CONTROL_NAMES = (
    dict(
        enumerate(
            "NUL SOH STX ETX EOT ENQ ACK BEL BS HT LF VT FF CR SO SI DLE DC1 DC2 DC3 DC4 NAK SYN "
            "ETB CAN EM SUB ESC FS GS RS US".split()
        )
    )
    | {0x7F: "DEL"}
    | dict(
        enumerate(
            "PAD HOP BPH NBH IND NEL SSA ESA HTS HTJ VTS PLD PLU RI SS2 SS3 DCS PU1 PU2 STS CCH MW "
            "SPA EPA SOS SGCI SCI CSI ST OSC PM APC".split(),
            start=0x80,
        )
    )
)
NAME_REACH = 12


def written_as_data(text: str, at: int) -> bool:
    r"""Whether the character at text[at] is named by its code on its line (`0x80`, `\x80`,
    `U+0080`, `\u0080`, `&#128;`, `&#x80;`) or by its abbreviation beside it (`NEL`), or
    stands beside a backslash escape.

    >>> written_as_data("0x80\t'\x80'\n", 6), written_as_data('"[\\f\x85\\u2028]"', 4)
    (True, True)
    >>> written_as_data(";; NEL\x85133\n", 6), written_as_data("CHANNEL\x85 x", 7)
    (True, False)
    >>> written_as_data("caf\x82 0x81\n", 3), written_as_data("it\x92s", 2)
    (False, False)
    """
    if at >= 2 and text[at - 2] == "\\" and text[at - 1].isalnum():
        return True
    if text.startswith("\\", at + 1):
        return True
    lo = text.rfind("\n", max(0, at - CODE_NAME_REACH), at) + 1
    hi = text.find("\n", at, at + CODE_NAME_REACH)
    line = text[lo : hi if hi >= 0 else at + CODE_NAME_REACH]
    code = ord(text[at])
    names = rf"(?:0x|\\x|U\+|\\u|&#x)0*{code:x}(?![0-9a-f])|&#0*{code};"
    if re.search(names, line, re.IGNORECASE) is not None:
        return True
    name = _CONTROL_NAMES.get(code)
    if name is None:
        return False
    near = text[max(lo, at - NAME_REACH) : at + 1 + NAME_REACH]
    return re.search(rf"(?<![A-Za-z]){name}(?![A-Za-z])", near) is not None


# A NUL where a sign stands: before a number or alone between spaces. pypdf writes the minus
# sign of TeX's math symbol font (its slot 0) as U+0000: removed, `It’s \x0030 ◦C` became
# `30 ◦C`, `a2 \x00 b2` lost its operator (404 such NULs in 28 of 4,623 PDFs of Debian's TeX
# documentation). A NUL that damage left does not pick its neighbours.
NUL_AS_SIGN_REASON = "a NUL where a sign stands (before a number, or alone): reported, not removed"


def stands_for_a_sign(text: str, at: int) -> bool:
    """Whether the NUL at text[at] stands before a digit, or alone between spaces.

    >>> stands_for_a_sign("It’s \\x0030 C", 5), stands_for_a_sign("a2 \\x00 b2", 3)
    (True, True)
    >>> stands_for_a_sign("na\\x00me", 2)
    False
    """
    after = text[at + 1 : at + 2]
    before = text[at - 1 : at] if at > 0 else " "
    return after.isdigit() or (before.isspace() and (not after or after.isspace()))


def _control_tier(text: str, start: int, end: int, many: bool, roff: bool) -> str | None:
    """Why a control character is only reported, or None when it is removed: a whole terminal
    escape sequence or an overstrike, a separator, one beside undecodable bytes, a NUL beside
    another control, a writable
    control in roff source or in a text that holds many, or one not wedged inside a word."""
    char = text[start:end]
    if end - start > 1:
        return TERMINAL_SEQUENCE_REASON
    if char in _SEPARATORS:
        return "information separator: structure in data, reported, not removed"
    if char == "\b" and is_overstrike(text, start):
        return OVERSTRIKE_REASON
    if "\ufffd" in text[max(0, start - UNREADABLE_REACH) : end + UNREADABLE_REACH]:
        return UNREADABLE_REASON
    if char == "\x00":
        if any(c != "\x00" and _WRITABLE_C0.match(c) for c in text[max(0, start - 1) : end + 1]):
            return "NUL beside another control (a format's marker, as Info's index): reported"
        if stands_for_a_sign(text, start):
            return NUL_AS_SIGN_REASON
        return None
    if in_code_order(text, start):
        return CODE_ORDER_REASON
    if written_as_data(text, start):
        return LISTED_REASON
    if not _WRITABLE_C0.match(char):
        return None
    if roff:
        return ROFF_CONTROL_REASON
    if many:
        return "one of many control characters in this text: a format's, reported, not removed"
    if char == "\x1b" and "\x21" <= text[end : end + 1] <= "\x7e":
        return ESCAPE_KEY_REASON
    if _inside_word(text, start, end):
        return None  # `Ã\x07©`, `be\x08ll`: inside a word, where no writer puts one
    return "a lone control character, not inside a word: reported, not removed"


def may_hold_strays(rest: str) -> bool:
    """Whether `find_stray_characters` can find anything in a text whose `plain_rest` is rest
    (or in any part of it): False proves it finds nothing, since every stray it reports
    starts with a `STRAY_HINT` character, none of which the rest leaves out.

    >>> may_hold_strays(plain_rest("It’s fine.\\n")), may_hold_strays(plain_rest("a\\x00b"))
    (False, True)
    """
    return STRAY_HINT.search(rest) is not None


# A text that writes C1 controls as a font's glyph codes, not as windows-1252 read as Latin-1:
# text extracted from PDFs whose fonts map no Unicode (TeX's itemize bullet comes out of
# pdftotext as 0x88, icon fonts put arrows and marks at 0x8C, 0x90, 0x99). Read as windows-1252
# those became `ˆ`, `Ÿ`, `Œ`, and the codes windows-1252 leaves undefined were removed: in
# 4,623 PDFs of Debian's TeX documentation, 18,889 such edits in 570 documents, none of them
# a quote, dash or apostrophe of windows-1252 prose. The sign of it: a C1 control standing
# alone (no letter on either side, `\x88 We redefine`) that no windows-1252 text read as
# Latin-1 writes so, one that windows-1252 leaves undefined or whose windows-1252 character is
# a letter, an accent or `™`, and away from any other character beyond ASCII (UTF-8 mojibake pairs
# its C1 bytes with Latin-1 letters and windows-1252 symbols: `Ã\x89`, `â€\x9d`; what is
# left of a broken CJK character stands between letters: `应用禀\x8b序`). One is enough:
# windows-1252 prose writes its letters inside words and has no undefined characters.
GLYPH_CODES_MANY = 1
GLYPH_CODES_REASON = (
    "the text writes C1 controls as a font's glyph codes (text taken from a PDF), not as "
    "windows-1252 read as Latin-1: reported, not changed"
)
_CP1252_UNDEFINED = frozenset("\x81\x8d\x8f\x90\x9d")
# C1 controls whose windows-1252 characters prose writes only inside or right after a word:
# letters and accents (`ƒ ˆ Š Œ Ž ˜ š œ ž Ÿ`) and the trade mark sign.
_CP1252_LETTERLIKE = frozenset("\x83\x88\x8a\x8c\x8e\x98\x99\x9a\x9c\x9e\x9f")
# What UTF-8 read as Latin-1 or windows-1252 puts beside its C1 bytes.
_MOJIBAKE_PARTNER = re.compile(
    "[\x80-\xff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013-\u2026\u2030\u2039\u203a\u20ac\u2122]"
)
_C1_CHAR = re.compile("[\x80-\x9f]")


def glyph_code_signs(text: str, limit: int = GLYPH_CODES_MANY) -> int:
    """How many C1 controls of text (up to limit) stand where only a font's glyph code would
    (`GLYPH_CODES_MANY`).

    >>> glyph_code_signs("\\x88 pdfTeX\\n\\x88 XeTeX\\n", limit=5)
    2
    >>> glyph_code_signs("it\\x92s \\x93fine\\x94"), glyph_code_signs("Ã\\x89t â€\\x9d")
    (0, 0)
    >>> glyph_code_signs("arrow \\x90 here"), glyph_code_signs("应用禀\\x8d序")
    (1, 0)
    """
    count = 0
    for match in _C1_CHAR.finditer(text):
        at = match.start()
        left = text[at - 1] if at > 0 else " "
        right = text[at + 1] if at + 1 < len(text) else " "
        if _MOJIBAKE_PARTNER.match(left) or _MOJIBAKE_PARTNER.match(right):
            continue
        char = match.group()
        alone = not left.isalpha() and not right.isalpha()
        if alone and (char in _CP1252_UNDEFINED or char in _CP1252_LETTERLIKE):
            count += 1
            if count >= limit:
                break
    return count


class ControlContext:
    """What judging a control character asks of the whole document, asked once: whether it
    holds `CONTROL_MANY` writable controls or noncharacters, and whether it is roff source.
    The engine hands the stray-character finder a block or a window of the document; judged on
    that part alone, a control's fate would depend on where the part was cut (three BELs in a
    document, one in a window around a later pass's change)."""

    def __init__(self, text: str) -> None:
        self._text = text

    def _holds_many(self, pattern: re.Pattern[str]) -> bool:
        return sum(1 for _ in islice(pattern.finditer(self._text), CONTROL_MANY)) >= CONTROL_MANY

    @cached_property
    def many(self) -> bool:
        """Whether the document holds at least CONTROL_MANY writable controls."""
        return self._holds_many(_WRITABLE_C0)

    @cached_property
    def many_noncharacters(self) -> bool:
        """Whether the document holds at least CONTROL_MANY noncharacters."""
        return self._holds_many(_NONCHARACTER_RE)

    @cached_property
    def glyph_codes(self) -> bool:
        """Whether the document writes C1 controls as a font's glyph codes
        (`GLYPH_CODES_MANY`)."""
        return glyph_code_signs(self._text) >= GLYPH_CODES_MANY

    @cached_property
    def roff(self) -> bool:
        """Whether the document is roff source."""
        return ROFF_SOURCE.search(self._text) is not None

    @cached_property
    def zero_width_breaks(self) -> bool:
        """Whether the document writes zero-width spaces as word breaks: beside a letter of
        a script that writes no spaces between words (Thai, Lao, Khmer, Myanmar, Tibetan).

        >>> khmer = ControlContext("សូម\u200bទោស New CLICK125i\u200bSTRIKING")
        >>> khmer.zero_width_breaks, ControlContext("zero\u200bwidth").zero_width_breaks
        (True, False)
        >>> [p.flag_only for p in find_stray_characters(khmer._text, khmer)]
        [True]
        """
        return "\u200b" in self._text and _ZERO_WIDTH_BREAK.search(self._text) is not None


# A zero-width space beside a letter of a script written without spaces between words: the
# writer's word break. Between two Latin words in the same document it is the same break
# (a Khmer corpus's `CLICK125i\u200bSTRIKING_ARRIVAL`), not a space pasted inside a word.
_UNSPACED_SCRIPTS = "\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u19e0-\u19ff"
_ZERO_WIDTH_BREAK = re.compile(f"[{_UNSPACED_SCRIPTS}]\u200b|\u200b[{_UNSPACED_SCRIPTS}]")
ZERO_WIDTH_BREAK_REASON = (
    "a zero-width space in a document that writes them as word breaks: reported"
)


def find_stray_characters(text: str, context: ControlContext | None = None) -> list[Proposal]:
    """Control characters, U+FFFD, private-use, noncharacters, stray BOMs, zero-width spaces
    inside words and bidi controls, each proposed for removal under its own category.

    Tab, line feed, vertical tab, carriage return and form feed are layout, not strays; a
    control a writer may have typed (BEL, backspace, ESC, DEL) is removed only inside a word of
    a text that holds few, never in roff source; terminal escape sequences, nroff's
    overstrikes, information separators and a NUL beside another control are reported, never
    removed. Zero-width joiners
    and non-joiners are never touched (emoji sequences, Persian, Indic scripts), nor are
    zero-width spaces in scripts that use them to mark word breaks (Thai, Khmer, Japanese).
    context is the whole document's (`ControlContext`) when text is a part of it.

    >>> [(p.category.value, p.start) for p in find_stray_characters("a\\x00b\\u200bc\\u202e")]
    [('control_char', 1), ('zero_width', 3), ('bidi_control', 5)]
    """
    proposals = []
    end = 0
    if context is None:
        context = ControlContext(text)  # text is the whole document
    # The full pattern (with its look-arounds) is tried only where the one-class scan stops.
    for hint in STRAY_HINT.finditer(text):
        if hint.start() < end:
            continue  # inside the last match (a terminal escape, a run of zero-width spaces)
        m = STRAY_RE.match(text, hint.start())
        if m is None:
            continue
        end = m.end()
        category = Category(m.lastgroup)
        reason, confidence = _STRAY_REASONS[category]
        if category is Category.CONTROL_CHAR and (joiner := arabic_joiner(text, m.start())):
            proposals.append(
                Proposal(m.start(), m.end(), joiner, category, ARABIC_JOINER_REASON, confidence)
            )
            continue
        weak = None
        if category is Category.CONTROL_CHAR:
            weak = _control_tier(text, m.start(), m.end(), context.many, context.roff)
            if weak is None and _C1_CHAR.match(text, m.start()) and context.glyph_codes:
                weak = GLYPH_CODES_REASON
        elif category is Category.NONCHARACTER and context.many_noncharacters:
            weak = NONCHARACTERS_MANY_REASON
        elif category is Category.NONCHARACTER and m.group() == "\uffff":
            weak = PLACEHOLDER_REASON
        elif category is Category.STRAY_BOM and used_as_joiner(text, m.start()):
            weak = JOINER_REASON
        elif category is Category.STRAY_BOM and opens_a_string(text, m.start()):
            weak = OPENS_A_STRING_REASON
        elif category is Category.ZERO_WIDTH and context.zero_width_breaks:
            weak = ZERO_WIDTH_BREAK_REASON
        if weak is None and quoted_alone(text, m.start(), m.end()):
            weak = QUOTED_REASON
        if weak is not None:
            flag = Proposal(m.start(), m.end(), "", category, weak, WEAK_STRAY_CONFIDENCE)
            proposals.append(replace(flag, flag_only=True))
            continue
        proposals.append(Proposal(m.start(), m.end(), "", category, reason, confidence))
    return proposals


# U+FEFF is also the zero-width no-break space, and templates still use it so: Wikipedia's
# coordinates write `&#xfeff; / &#xfeff;` around their slash, on every page that has them. A
# byte order mark that concatenating files left in the text stands at the start of a line or
# between tags (`</div>\ufeff<p>`); one inside a line beside a space is a joiner: reported.
JOINER_REASON = "a zero-width no-break space beside a space inside a line: reported"
# Characters looked back for the start of the line (an include indented further is rare).
JOINER_LOOK_BACK = 200


def used_as_joiner(text: str, at: int) -> bool:
    r"""Whether the U+FEFF at text[at] stands inside a line's text (not its indentation) with a
    space on one side.

    >>> used_as_joiner("174°27′E\ufeff / \ufeff41.283°S", 8), used_as_joiner("a\n\ufeffB", 2)
    (True, False)
    >>> used_as_joiner('<span class="geo">\ufeff / ', 18), used_as_joiner("</div>\ufeff<p>", 6)
    (True, False)
    >>> used_as_joiner("<div>\n\t\t  \ufeff<ol>", 10)
    False
    """
    line_start = text.rfind("\n", max(0, at - JOINER_LOOK_BACK), at) + 1
    if not text[line_start:at].strip():
        return False  # at a line's start, or after its indentation: where an include begins
    after = text[at + 1 : at + 2]
    return text[at - 1] in " \t\xa0" or after in (" ", "\t", "\xa0")


# A byte order mark right after an opening quote, a pattern's anchor or a class's bracket
# (other invisible characters between) is what a program strips or shows
# (`raw.replace(/^\ufeff/, "")`, `/[\u200b\u200c\u200d\ufeff]/g`,
# `print(repr(first))  # '\ufeff이름'`), or a value a log recorded as it came
# (`"text_seg": "\ufeff说详细一点吧"`). One that is an element's whole content is the
# placeholder a rich-text editor wrote (Rangy's selection boundaries, FCKeditor's paste
# padding: `<a id="fck_paste_padding">\ufeff</a>`). One that concatenating files left stands
# at the start of a line, or between one element's end and the next one's start.
OPENS_A_STRING_REASON = (
    "a byte order mark opening a quoted string or a pattern, or an element's whole content: "
    "data, reported"
)
_STRING_OPENERS = frozenset("\"'`“‘「『^[")


def opens_a_string(text: str, at: int) -> bool:
    r"""Whether the U+FEFF at text[at] follows an opening quote, a pattern's `^` or a class's
    `[` (other invisible characters aside), or is the whole content of an element.

    >>> opens_a_string('raw.replace(/^\ufeff/, "")', 14), opens_a_string('"\ufeff说"', 1)
    (True, True)
    >>> opens_a_string("/[\u200b\u200d\ufeff]/g", 4), opens_a_string('<a id="p">\ufeff</a>', 10)
    (True, True)
    >>> opens_a_string("</div>\ufeff<p>", 6), opens_a_string("a\n\ufeffB", 2)
    (False, False)
    """
    if text[at - 1 : at] == ">" and text.startswith("</", at + 1):
        return True
    before = at - 1
    while before >= max(0, at - QUOTED_REACH) and _invisible(text[before]):
        before -= 1
    return before >= 0 and text[before] in _STRING_OPENERS


# Persian and Urdu write the zero-width non-joiner (and joiner) inside words (`این‌قدر`);
# windows-1256 has them at 0x9D and 0x9E, so text in it read as Latin-1 holds U+009D and
# U+009E between Arabic-script letters (hazm's Persian word list). They are restored, not
# removed: removing one joins what the writer kept apart.
_CP1256_JOINERS = {"\x9d": "\u200c", "\x9e": "\u200d"}
ARABIC_JOINER_REASON = (
    "windows-1256's zero-width (non-)joiner read as Latin-1, between Arabic-script letters"
)


def _arabic_letter(ch: str) -> bool:
    return ch.isalpha() and (
        "\u0600" <= ch <= "\u06ff" or "\u0750" <= ch <= "\u077f" or "\ufb50" <= ch <= "\ufeff"
    )


def arabic_joiner(text: str, at: int) -> str | None:
    r"""The joiner windows-1256 writes with the byte text[at] stands for, when that is a
    U+009D or U+009E between two Arabic-script letters; None otherwise.

    >>> arabic_joiner("اینقدر", 3) == "‌", arabic_joiner("ab", 1)
    (True, None)
    """
    joiner = _CP1256_JOINERS.get(text[at])
    if joiner is None or at == 0 or at + 1 >= len(text):
        return None
    return joiner if _arabic_letter(text[at - 1]) and _arabic_letter(text[at + 1]) else None


def remove_stray_characters(text: str) -> str:
    """Remove every stray character find_stray_characters reports.

    >>> remove_stray_characters("zero\\u200bwidth\\x07 bell\\ufeff")
    'zerowidth bell'
    """
    return apply_proposals(text, find_stray_characters(text))
