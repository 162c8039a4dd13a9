"""Runs of CJK text decoded with the wrong codec: `鏂囧瓧` for `文字` (UTF-8 read as GBK),
GBK read as Big5 and the reverse, Shift-JIS or EUC-KR read as cp1252 or Latin-1.

Each candidate run is re-encoded with the codec it was wrongly read with and decoded with the
one it was written in. Where the wrong decoder replaced bytes with U+FFFD, Python's decoders
(gbk, big5/cp950, cp932, cp949, cp1252 with errors='replace') always replace exactly one byte:
an undefined single byte (cp1252's 0x81, 0x8D, 0x8F, 0x90, 0x9D) or a lead byte the next byte
does not complete, decoding going on from that next byte. So each U+FFFD is one unknown byte,
limited to those the wrong decoder would have replaced before the byte that follows it, and a
beam search fills them in, decoding the right codec as it goes and scoring the text with the
character and word model (`lm.Scorer`). Latin-1 replaces nothing: that direction is lossless.

The result is kept only when it decodes strictly and the model of its language scores it
clearly better than the run as it stands (Han-to-Han pairs), or scores its non-ASCII
characters as ordinary text of its language (Latin-1-looking runs, which a CJK model cannot
score as they stand; the ASCII between them, spaces and digits, passes through both codecs
unchanged, so a whole region is re-decoded at once). The pre-check is a compiled regex plus
one `str.translate`, so clean text costs a scan.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import replace
from functools import cache as _forever
from functools import lru_cache
from itertools import islice, pairwise
from typing import NamedTuple

from textmend_server import cache
from textmend_server.cjk.budget import (
    DEFAULT_BUDGET,
    SearchBudget,
    Work,
    charge,
    exhausted_finding,
    starve,
)
from textmend_server.cjk.lm import (
    MAIN_CLASSES,
    CharModel,
    Scorer,
    WordModel,
    get_model,
    is_traditional,
)
from textmend_server.cjk.scripts import CJK_ANY, HAN_BLOCKS, HAN_RANGES, char_class, is_han
from textmend_server.cjk.slip.context import open_quotes, pairing_cost
from textmend_server.edits import Proposal
from textmend_server.errors import check_cancelled
from textmend_server.policy import Category

__all__ = ["fill_confidence", "find_wrong_codec_runs", "utf8_shaped"]

# Runs of non-ASCII characters with single ASCII characters inside (trail bytes in the ASCII
# range): a wrong decoder's output holds any character of the codec it used (kana, box
# drawing, Cyrillic, circled numbers, U+FFFD), so a run goes on through every non-ASCII,
# non-space character; only runs with rare Han characters or U+FFFD are looked at. An
# ideographic space inside a run is kept in it: it is GBK's A1 A1, which Big5 text read as
# GBK gives wherever a character ending in A1 meets punctuation (`說：` is BB A1 A1 47).
_HAN_RUN_RE = re.compile(
    r"[^\x00-\x7f\s]"
    r"(?:[^\x00-\x7f\s]|\u3000(?=[\x21-\x7e]?[^\x00-\x7f\s])|[\x21-\x7e](?=[^\x00-\x7f\s]))*"
)
_HAN_CHECK_RE = re.compile(rf"[{HAN_RANGES}]")
# Latin-1/cp1252-looking runs: high characters, possibly with single ASCII bytes between them
# (the second byte of a Shift-JIS pair can be ASCII).
_CP1252_EXTRA = (
    "\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122"
)
_HIGH = f"\u0080-\u00ff{_CP1252_EXTRA}\ufffd"
# The repetitions are possessive (`?+`, `{2,}+`): ASCII and high characters are disjoint, so
# giving a character back never helps a match, and without it the regex engine keeps no
# backtracking state per repetition (128 bytes a character: 38 MiB for a run of 300,000 `Ã`).
_LATIN_RUN_RE = re.compile(rf"[{_HIGH}](?:[\x21-\x7e]?+[{_HIGH}]){{2,}}+")
# A region of such runs with short stretches of ASCII between them (spaces, digits): a
# document in a CJK codec read as Latin-1 keeps its ASCII as it was. At least three high
# characters: fewer are typography (quotes, a dash), never a run worth re-decoding.
_LATIN_REGION_RE = re.compile(rf"[{_HIGH}](?:[\x20-\x7e]{{0,12}}+[{_HIGH}]){{2,}}+")

# (read as, written in, language of the result)
_HAN_PAIRS = (("gbk", "utf-8", "zh"), ("big5", "gbk", "zh"), ("gbk", "big5", "zh"))
_LATIN_PAIRS = (
    ("cp1252", "shift_jis", "ja"),
    ("latin-1", "shift_jis", "ja"),
    ("cp1252", "euc_kr", "ko"),
    ("latin-1", "euc_kr", "ko"),
)
_NAMES = {
    "gbk": "GBK",
    "big5": "Big5",
    "utf-8": "UTF-8",
    "shift_jis": "Shift-JIS",
    "euc_kr": "EUC-KR",
    "cp1252": "cp1252",
    "latin-1": "Latin-1",
}
_PY = {"big5": "cp950", "shift_jis": "cp932", "euc_kr": "cp949"}

# Nats per character the re-decoded run must gain over the run as it stands, and in total.
PER_CHAR_GAIN = 1.5
TOTAL_GAIN = 10.0
# CJK characters a re-decoded Han run must have to be edited (counted as the reading's Han,
# kana and hangul: not its punctuation and symbols, which a wrong decoder also makes of bytes
# in the ASCII range, `籖鎆鏲]→` in CLDR's transliteration data read `舞澋蓳]↙`); a shorter
# one is reported with its reading as the suggestion. A wrong decoder garbles everything it
# reads, so its runs are as long as the text it read (the bench's are 60 characters); two or
# three rare characters among text read right are as likely a rare word. In 5,551 Debian
# documents outside the real corpus, every Han re-decoding edited was of such a run and wrong:
# the reduplicated words of classical verse (`萋萋` read `抵抵`, `曈曈` `槌槌`) and a
# dictionary's rare entries (`囀/哢`). Kept at 4 though a README's list of homophones
# (`傷湯殤鞝觴賞`) is re-decoded: 5 restores fewer of the help register's wrong-codec runs
# (`bench/cjk_bench.py --register help --only codec --seed 90210`: 13, 19, 8 of 30 against 16,
# 21, 9) and rewrites more wrongly (14, 10, 13 against 12, 8, 13).
MIN_EDIT_RUN = 4
SHORT_RUN_REASON = f"; fewer than {MIN_EDIT_RUN} distinct CJK characters: reported, not edited"
# Counted distinct: a run that repeats a character (`梅茛梅茛`, a translated name said twice;
# `奀雌雌噉`, Cantonese reduplication; `載弁俅俅`, a line of the Shijing) repeats it in every
# reading, where the character model favours the other codec's common reduplicated words
# (`娃娃`, `慧慧`): the repeat is no evidence, and 190,017 runs of 3 to 6 Han characters from
# informal Chinese, Japanese and Korean text were "re-decoded" only at 4 with a repeat.
_CJK_LETTER = re.compile(CJK_ANY)
# CJK characters a re-decoded Han run must hold in a row, nothing between them, to be edited.
# A wrong decoder garbles words, and a re-decoding is judged by how its characters read
# together; characters that ASCII keeps apart (`邋/旯/瘌/砬`, a dictionary's list of rare
# readings, "re-decoded" as GBK read as Big5 into `缅/身/廛/亿` at 0.78; `癩/癩病/らい病` into
# `財/財瓷/日中瓷`, kana and all) gain only for being commoner one by one. Those two were the
# only edits of 214,529 lines of the SKK dictionaries' UTF-8 editions, each line its own
# document, and 2 of the 10 wrong edits of 13,903 clean Debian documents outside the real
# corpus. As many as `MIN_EDIT_RUN`: a run of prose read with the wrong codec holds such a
# stretch between its punctuation.
MIN_EDIT_STRETCH = MIN_EDIT_RUN
SCATTERED_REASON = (
    f"; no {MIN_EDIT_STRETCH} CJK characters in a row, only characters apart: reported, not edited"
)
_CJK_STRETCH_RE = re.compile(f"{CJK_ANY}+")


def longest_cjk_stretch(text: str) -> int:
    """The most CJK characters (Han, kana, bopomofo, hangul) text holds in a row.

    >>> longest_cjk_stretch("缅/身/廛/亿"), longest_cjk_stretch("他说：“今天下雨。”")
    (1, 4)
    """
    return max((len(m.group()) for m in _CJK_STRETCH_RE.finditer(text)), default=0)


# A re-decoded run rated less likely than this to be exactly right (`fill_confidence`: the
# bytes the wrong decoder replaced are the model's guesses) is reported with the reading as its
# suggestion, not applied. First 0.4, chosen on tuning seeds 7 and 11 (`bench/calibrate.py
# --check-seeds 7,11 --docs 10`, 360 re-decodings: below 0.2, 4 of which none right; 0.2-0.4,
# 30 of which 27% right; 0.4-0.6, 39 of which 67% right; 0.6-0.8, 69 of which 74%), where each
# restored run given up kept three wrong rewrites out: a wrong rewrite weighed as much as a
# missed repair. A wrong edit weighs more than that (a flag would do), so 0.6, chosen on the
# help register (`bench/cjk_bench.py --register help --only codec --seed 90210 --runs 100`,
# each Han edit judged on its own): its 0.4-0.6 edits were 23 right and 19 wrong, 0.6-0.8 43
# and 9, 0.8 and above 194 and 3 (the news register: 27 and 19, 35 and 6, 71 and 2). On prose
# of registers no threshold was chosen on (Lu Xun's essays, Aozora Bunko's novels, Korean
# Wikinews), re-decodings rated 0.6 or more were 108 right and 7 wrong. The slips' floor
# (`slip.stage.MIN_EDIT_CONFIDENCE`) stays 0.4: no threshold separates their right and wrong
# readings as well (there, 0.9 still kept 12% wrong).
MIN_EDIT_CONFIDENCE = 0.6


# A wrong decoder garbles all it reads, so its run starts and ends where the text it read does
# (a quote, a space, a line): a run glued to Han characters it leaves as they are is the rare
# tail of a list that reads right (an input method's homophones in order of use,
# `"瑞锐芮枘睿蚋"`, whose `芮枘睿蚋` "re-decodes" into `秃藤和勇`); where it really is damage, its
# limits are a guess. Reported with the reading, not edited.
GLUED_REASON = "; the run is glued to Han characters that read right: reported, not edited"


def glued_to_han(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] has a Han character right before or right after it.

    >>> glued_to_han('("瑞锐芮枘睿蚋")', 4, 8), glued_to_han("标题:鏂囧瓧", 3, 6)
    (True, False)
    """
    return (start > 0 and is_han(text[start - 1])) or (end < len(text) and is_han(text[end]))


def letters_mean(text: str, model: CharModel, traditional: bool | None) -> float:
    """Mean log-probability of text's CJK letters under model, each given the character before
    it: bullets and brackets between them are left out of the mean (a list's `●` scores as
    low as a rare character), not out of their context.

    >>> from textmend_server.cjk.lm import get_model
    >>> zh = get_model("zh")
    >>> low = letters_mean("架顰乱洁", zh, True)
    >>> letters_mean("经济发展", zh, False) > MIN_HAN_READING_LOGP > low
    True
    """
    total, count, prev = 0.0, 0, ""
    for ch in text:
        logp = model.logp(prev, ch, traditional)
        if _CJK_LETTER.match(ch):
            total += logp
            count += 1
        prev = ch
    return total / count if count else 0.0


def unreadable_reason(mean: float) -> str:
    """What a Han reading that does not read as text (`MIN_HAN_READING_LOGP`) adds to its
    reason."""
    return (
        f"; the reading averages {mean:.1f} nats a character, below {MIN_HAN_READING_LOGP}: it "
        "does not read as text either, not edited"
    )


# Runs whose best reading does not read as text (`MIN_HAN_READING_LOGP`) a text must hold, and
# outnumbering those whose reading does, for the latter to be reported rather than edited. A
# wrong decoder garbles all it reads, so its runs re-decode into text; a text most of whose
# rare runs re-decode into no text writes rare characters on purpose (an input method's
# homophone lists, m17n's `vi-han.mim`: 24 runs unreadable, one, `遝踏蹋沓耷`, "re-decoded"
# into `痪今料填蠻` at 0.78), and its one run that re-decodes well did so by chance. Three:
# the fewest for a majority to mean more than a coincidence of two lists.
ON_PURPOSE_RUNS = 3


def on_purpose_reason(unread: int) -> str:
    """What a reading refused by `ON_PURPOSE_RUNS` adds to its reason."""
    return (
        f"; {unread} other rare Han runs of the text re-decode into no text (below "
        f"{MIN_HAN_READING_LOGP} nats a character): it writes rare characters on purpose, "
        "not edited"
    )


def unsure_reason(confidence: float) -> str:
    """What a reading rated below `MIN_EDIT_CONFIDENCE` adds to its reason."""
    return (
        f" (rated {confidence:.2f} likely to be exactly right, below {MIN_EDIT_CONFIDENCE}: "
        "not edited)"
    )


# Mean log-probability per character a re-decoded Latin-1-looking run needs to count as text.
MIN_MEAN_LOGP = -8.5
# The punctuation English and European text writes beyond ASCII (curly quotes, dashes, the
# ellipsis, the bullet, the no-break space): a Latin-looking region holding nothing else is
# typography, not Shift-JIS or EUC-KR read as cp1252. Real such mojibake pairs lead bytes with
# trail bytes across the code page (`ƒ`, `Ì`, `‚`, `Ÿ`, accented letters), so a region of three
# or more high characters all from this set is rare in it, and common in news prose: a
# reading `的知 all yours,派` was made of `“I’m all yours,”he` (a missing space after the
# quote), in a page of mozilla/readability's test set.
TYPOGRAPHY = frozenset("‘’‚“”„–—…•\xa0")
# Mean log-probability per CJK letter (nats, `letters_mean`) a re-decoded Han run needs to be
# edited; below it the reading is reported as the suggestion. A run of rare characters written
# on purpose (a README's list of homophones, `殤鞝觴賞`) "re-decodes" into other rare
# characters (`架顰乱洁`, -12.6) that merely score better than the run. Clean news text (the
# tuning corpus: 5,000 windows each, seed 7) scores below -11 in 0.04% (simplified) and 0.08%
# (traditional) of its 4-character windows and 0.04% or none of its 10-character ones; every
# reading restored on the tuning seeds 7 and 11 scored -7.3 or more. Not the Latin runs' -8.5:
# 1.6-2.4% of those 4-character windows fall below it, and classical verse, which the model of
# modern text scores low, 4-7% of its windows (the help register's zh-Hans, checked after).
MIN_HAN_READING_LOGP = -11.0
# A Han character the zh or ja word lists give more than this unigram probability is common:
# wrong-codec output is made of the rest. Hand-set in the first version (18da600): it keeps
# the 3,726 most frequent of the zh list's 9,196 characters and 2,678 of the ja list's 5,381.
COMMON_HAN_P = 2e-6


@lru_cache(maxsize=1)
def _common_han_table() -> dict[int, None]:
    """A str.translate table deleting every Han character the zh and ja word lists use often;
    what survives in a run is rare, which is what wrong-codec output is made of."""
    zh, ja = get_model("zh"), get_model("ja")
    keep: dict[int, None] = {}
    for model in (zh, ja):
        for ch, p in model.frequencies().items():
            if len(ch) == 1 and p > COMMON_HAN_P:
                keep[ord(ch)] = None
    for k, v in zh.simplify_table.items():
        if len(v) == 1 and ord(v) in keep:
            keep[k] = None
    return keep


def _rare_count(run: str) -> int:
    return sum(1 for ch in run.translate(_common_han_table()) if char_class(ch) == "han")


CLUSTER_GAP = 3


@_forever
def _common_han_marks() -> dict[int, str]:
    """Like `_common_han_table`, but marking common characters with U+0001 instead of
    deleting them, so positions survive."""
    return dict.fromkeys(_common_han_table(), "\x01")


# Two rare Han characters, or a rare one and a U+FFFD (either first), with at most
# CLUSTER_GAP - 1 characters between them, once common characters are marked U+0001.
_RARE_CLUSTER_RE = re.compile(
    f"[{HAN_RANGES}].{{0,{CLUSTER_GAP - 1}}}?[{HAN_RANGES}\ufffd]"
    f"|\ufffd.{{0,{CLUSTER_GAP - 1}}}?[{HAN_RANGES}]",
    re.DOTALL,
)


@_forever
def _rare_cluster_text_re() -> re.Pattern[str]:
    """`_RARE_CLUSTER_RE` over unmarked text: the rare Han characters as one character class
    (every Han character but the common ones), so a single search over a whole text tells
    whether any run in it can hold a cluster. Clean prose has none and skips the stage."""
    common = _common_han_table()
    parts = []
    for lo, hi in HAN_BLOCKS:
        start = lo
        for cp in sorted(c for c in common if lo <= c <= hi):
            if cp > start:
                parts.append((start, cp - 1))
            start = cp + 1
        if start <= hi:
            parts.append((start, hi))
    rare = "".join(f"\\U{a:08x}-\\U{b:08x}" if a != b else f"\\U{a:08x}" for a, b in parts)
    gap = f".{{0,{CLUSTER_GAP - 1}}}?"
    return re.compile(f"[{rare}]{gap}[{rare}\ufffd]|\ufffd{gap}[{rare}]", re.DOTALL)


def _rare_cluster(run: str) -> bool:
    """Whether run holds two rare Han characters (or one and a U+FFFD) at most CLUSTER_GAP
    apart: wrong-codec output is dense with them, while clean prose has them alone (a name, a
    term). Cheap: one `str.translate` marks the common characters, one regex search finds a
    pair."""
    if len(run.translate(_common_han_table())) < 2:
        return False
    return _RARE_CLUSTER_RE.search(run.translate(_common_han_marks())) is not None


def _cjk_shaped(run: str) -> bool:
    """Whether run looks like a CJK decoder's output: at least half its non-ASCII characters
    are CJK (wide) characters. A CJK codec read wrongly still gives CJK characters; Latin-1
    letters with U+FFFD among them are another kind of damage (UTF-8 read as cp1252)."""
    wide = narrow = 0
    for ch in run:
        if ch == "\ufffd":
            continue
        if ch >= "\u2e80":
            wide += 1
        elif ch >= "\x80":
            narrow += 1
    return wide >= narrow and wide >= 2


def _py(name: str) -> str:
    return _PY.get(name, name)


def _redecode(run: str, read_as: str, written: str) -> str | None:
    """run re-encoded as read_as and decoded as written, strictly; a trailing U+FFFD stands
    for one lost byte, filled in by the caller."""
    try:
        return run.encode(_py(read_as)).decode(_py(written))
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


FILL_BEAM = 48
MAX_UNKNOWN = 120


class Fill(NamedTuple):
    """A run re-decoded with its lost bytes filled in, and the share of the search's finished
    readings' probability it holds: near 1 when the character model leaves no doubt about any
    filled byte, near a half when two fills read as well (a run-final `，` or `：`, whose last
    UTF-8 byte the wrong decoder lost)."""

    text: str
    share: float


def _feed(pending: bytes, chunk: bytes, written: str) -> tuple[str, bytes] | None:
    """Decode pending + chunk strictly as far as it goes; an incomplete character at the end
    is carried over. None when the bytes are not valid in the written codec."""
    data = pending + chunk
    try:
        return data.decode(written), b""
    except UnicodeDecodeError as e:
        if e.end < len(data) or not ("incomplete" in e.reason or "unexpected end" in e.reason):
            return None
        return data[: e.start].decode(written), data[e.start :]


@lru_cache(maxsize=4096)
def _unknown_bytes(read_as: str, nxt: int) -> tuple[int, ...]:
    """The bytes the wrong decoder (read_as, errors='replace') turns into one U+FFFD when the
    byte after them is nxt (-1: unknown too). Python's CJK decoders and cp1252 replace one byte
    per U+FFFD: an undefined single byte, or a lead byte the next one does not complete."""
    out = []
    for b in range(0x80, 0x100):
        probe = bytes((b,)) if nxt < 0 else bytes((b, nxt))
        if probe.decode(read_as, errors="replace")[:1] == "\ufffd":
            out.append(b)
    return tuple(out)


# Bytes an entry of each memo holds, estimated as `slip.candidates.ENTRY_BYTES_ALL` are.
ENTRY_BYTES_BEST_AFTER = 250
ENTRY_BYTES_FILL = 900
_BEST_AFTER = cache.Memo("codecrun.best_after", entry_bytes=ENTRY_BYTES_BEST_AFTER)


def _best_after(pending: bytes, written: str, model: CharModel) -> float:
    """An optimistic score for an incomplete character: the log-probability of the most
    frequent character its bytes can begin (ranks states that decoded nothing new yet)."""
    if not pending:
        return 0.0
    key = (model.lang, written, pending)
    hit = _BEST_AFTER.get(key)
    if hit is None:
        best = 1e-12
        tails = [bytes((b,)) for b in range(0x40, 0x100)]
        if written == "utf-8" and len(pending) == 1 and pending[0] >= 0xE0:
            tails = [bytes((a, b)) for a in range(0x80, 0xC0) for b in range(0x80, 0xC0)]
        for t in tails:
            try:
                ch = (pending + t).decode(written)
            except UnicodeDecodeError:
                continue
            if len(ch) == 1:
                best = max(best, model.unigram(ch) if model.known(ch) else 1e-9)
        hit = _BEST_AFTER.put(key, math.log(best))
    return hit


# Fill results by (run, codecs, language, script): the engine runs its stages again over text
# an earlier pass changed, and most runs come back unchanged. An entry is (result, spent,
# allowed): a search that ran out of its allowance is only reused under no larger allowance.
# The cache is per process and unlocked: a race costs a repeated search, not a wrong result.
_FILLS = cache.Memo("codecrun.fills", entry_bytes=ENTRY_BYTES_FILL)


def _fill_unknown(
    run: str,
    read_as: str,
    written: str,
    model: CharModel,
    trad: bool | None = None,
    work: Work | None = None,
    budget: int = 0,
    marks: tuple[tuple[str, ...], bool] = ((), False),
) -> Fill | None:
    """Re-decode a run in which the wrong decoder replaced bytes it could not read with
    U+FFFD, one byte each: a beam search over the bytes it could have been (only those the
    wrong decoder would have replaced there), decoding the written codec as it goes and
    scoring the text with the character model. marks is the paired marks still open before
    the run and whether its line ends after it: a filled `』` that closes the `『` the run
    opened beats a `“` that opens another. With a work counter, the search gives up (None)
    once work has spent budget candidate evaluations."""
    allowed = budget - work.spent if work is not None else 1 << 62
    if allowed <= 0:
        return None
    key = (run, read_as, written, model.lang, trad, marks)
    hit = _FILLS.get(key)
    if hit is not None and (hit[1] <= hit[2] or allowed <= hit[2]):
        # Charged as if searched again, so that the cache changes the cost, never the result.
        if work is not None:
            work.spent += hit[1]
        return hit[0]
    result, spent = _search_fill(run, read_as, written, model, trad, allowed, marks)
    charge(work, spent)
    _FILLS.put(key, (result, spent, allowed))
    return result


def _search_fill(
    run: str,
    read_as: str,
    written: str,
    model: CharModel,
    trad: bool | None,
    allowed: int,
    marks: tuple[tuple[str, ...], bool] = ((), False),
) -> tuple[Fill | None, int]:
    """`_fill_unknown`'s search: the re-decoded run or None, and the evaluations spent (more
    than allowed when it gave up for want of them)."""
    pieces = run.split("\ufffd")
    if len(pieces) - 1 > MAX_UNKNOWN:
        return None, 0
    rpy, wpy = _py(read_as), _py(written)
    try:
        raw = [p.encode(rpy) for p in pieces]
    except UnicodeEncodeError:
        return None, 0
    first = _feed(b"", raw[0], wpy)
    if first is None:
        return None, 0
    text, pending = first
    scorer = Scorer(model, trad)
    beam: list[tuple[float, str, bytes]] = [(scorer.score(text), text, pending)]
    spent = 0
    for piece in raw[1:]:
        check_cancelled()  # one search may take a second: a deadline is not kept waiting
        options = _unknown_bytes(rpy, piece[0] if piece else -1)
        grown: dict[tuple[str, bytes], float] = {}
        for score, out, pend in beam:
            prev = out[-WordModel.HIST :]
            for b in options:
                fed = _feed(pend, bytes((b,)) + piece, wpy)
                if fed is None:
                    continue
                new, rest = fed
                spent += 1
                key = (out + new, rest)
                value = score + scorer.score(new, prev)
                if value > grown.get(key, -1e18):
                    grown[key] = value
        if spent > allowed or not grown:
            return None, spent
        # Ranked with the optimistic score of the incomplete character each state carries
        # (few distinct ones: computed once each).
        items = list(grown.items())
        after = {rest: _best_after(rest, wpy, model) for rest in {r for _, r in grown}}
        keys = [v + after[rest] for (_, rest), v in items]
        ranked = sorted(range(len(items)), key=keys.__getitem__, reverse=True)[:FILL_BEAM]
        beam = [(items[k][1], *items[k][0]) for k in ranked]
    stack, line_ends = marks
    done = [
        (v + pairing_cost(list(stack), out, line_ends), out) for v, out, rest in beam if not rest
    ]
    if not done:
        return None, spent
    top, out = max(done)
    return Fill(out, 1.0 / sum(math.exp(v - top) for v, _ in done)), spent


def _mostly_cjk(text: str, lang: str) -> bool:
    """Whether text is mostly lang's scripts, its punctuation aside (a quoted line is half
    marks: `他說：“你好。”`).

    >>> _mostly_cjk("他說：“你因傷害了我。”", "zh"), _mostly_cjk("他說ÃÂ©¨µ", "zh")
    (True, False)
    """
    want = MAIN_CLASSES[lang]
    classes = [char_class(ch) for ch in text if ch != " "]
    n = sum(1 for c in classes if c in want)
    return n >= 2 and n >= 0.7 * sum(1 for c in classes if c != "punct")


# Three high characters in a row: what every `_LATIN_REGION_RE` match leaves once the ASCII
# between them is taken out.
_THREE_HIGH_RE = re.compile(f"[{_HIGH}]{{3}}")


def may_hold_wrong_codec(text: str, rest: str) -> bool:
    """Whether `find_wrong_codec_runs` can find anything in text or in any part of it, given
    rest, the text less printable ASCII and layout (`fixes.plain_rest`): False proves it
    finds nothing, since it searches only when text has a rare Han cluster or a Latin-looking
    region (with no search, nothing is spent and no budget runs out). Taking ASCII out only
    brings a cluster's characters closer, and leaves a region's high characters next to each
    other, so the cheap tests on the rest can only say yes more often; the region is then
    looked for in the text itself. No pattern has anchors or look-arounds: a match in a part
    of the text is a match in the whole.

    >>> t = "標題:鏂囧瓧"
    >>> may_hold_wrong_codec(t, t.replace(":", "")), may_hold_wrong_codec("文字编码", "文字编码")
    (True, False)
    >>> may_hold_wrong_codec("It’s fine", "’"), may_hold_wrong_codec("“It’s fine”", "“’”")
    (False, True)
    """
    return may_hold_han_runs(rest) or may_hold_latin_runs(text, rest)


def may_hold_han_runs(rest: str) -> bool:
    """`may_hold_wrong_codec` for the Han runs alone (`find_wrong_codec_runs(latin=False)`).

    >>> may_hold_han_runs("標題鏂囧瓧"), may_hold_han_runs("“’”")
    (True, False)
    """
    return bool(_HAN_CHECK_RE.search(rest) and _rare_cluster_text_re().search(rest))


def may_hold_latin_runs(text: str, rest: str) -> bool:
    """`may_hold_wrong_codec` for the Latin-looking runs alone
    (`find_wrong_codec_runs(han=False)`).

    >>> may_hold_latin_runs("標題:鏂囧瓧", "標題鏂囧瓧"), may_hold_latin_runs("“It’s fine”", "“’”")
    (False, True)
    """
    return _THREE_HIGH_RE.search(rest) is not None and _LATIN_REGION_RE.search(text) is not None


def find_wrong_codec_runs(
    text: str, limits: SearchBudget | None = None, *, han: bool = True, latin: bool = True
) -> list[Proposal]:
    """Runs decoded with the wrong CJK codec, with the run re-decoded as its repair: Han runs
    (CJK text read with another CJK codec) unless han is False, Latin-looking runs (CJK text
    read as Latin-1 or cp1252) unless latin is False.

    limits is what the fill searches may spend (`cjk.budget`; the defaults when None): where
    it runs out, nothing is edited and a finding says where.

    >>> [(p.start, p.end, p.replacement) for p in find_wrong_codec_runs("標題:鏂囧瓧缂栫爜")]
    [(3, 9, '文字编码')]
    >>> find_wrong_codec_runs("文字编码是一个老问题。")
    []
    >>> [p.replacement for p in find_wrong_codec_runs("Title: ‚±‚ñ‚É‚¿‚Í", han=False)]
    ['こんにちは']
    """
    out: list[Proposal] = []
    limits = limits or DEFAULT_BUDGET
    work, budget = Work(), limits.for_fills(len(text))
    if han and may_hold_han_runs(text):
        out += _han_runs(text, work, budget)
    if latin and _LATIN_REGION_RE.search(text):
        out += _latin_runs(text, work, budget)
    out.sort(key=lambda p: p.start)
    kept: list[Proposal] = []
    for p in out:
        if not kept or p.start >= kept[-1].end:
            kept.append(p)
    if work.spent > budget:
        # Runs were left unfilled for want of budget: none is edited, and where the budget
        # ran out is reported.
        kept = starve(kept)
        at = work.starved_at if work.starved_at >= 0 else 0
        found = exhausted_finding(text, at, Category.CJK_WRONG_CODEC, "wrong-codec runs", budget)
        if all(p.end <= found.start or p.start >= found.end for p in kept):
            # (A run found there already says it was not edited for want of budget.)
            kept.append(found)
            kept.sort(key=lambda p: p.start)
    return kept


def _pieces(run: str) -> list[tuple[int, int]]:
    """Sub-runs worth re-decoding, longest first: the whole run, the stretches between its
    ASCII characters and ideographic spaces, and the stretch from its first to its last rare
    character (clean words often border a damaged run)."""
    cuts = [i for i, ch in enumerate(run) if ch < "\x80" or ch == "\u3000"]
    bounds = [-1, *cuts, len(run)]
    spans = {(0, len(run))}
    spans.update((a + 1, b) for a, b in pairwise(bounds) if b - a > 2)
    rare = [i for i, ch in enumerate(run) if ch == "\ufffd" or _rare_count(ch)]
    if rare:
        spans.add((rare[0], rare[-1] + 1))
        spans.add((rare[0], len(run)))
    # Longest first: the whole run is the likeliest reading and must not be left for want of
    # the budget its fragments spent.
    return sorted(spans, key=lambda s: (s[0] - s[1], s[0]))


def _han_runs(text: str, work: Work, budget: int, settled: bool = True) -> list[Proposal]:
    """Proposals for Han runs decoded with the wrong codec; with settled, only those whose
    reading would not be re-decoded in turn."""
    out = []
    model, ja = get_model("zh"), get_model("ja")
    runs = [
        m
        for m in _HAN_RUN_RE.finditer(text)
        if len(m.group()) >= 2 and _rare_cluster(m.group()) and _cjk_shaped(m.group())
    ]
    if not runs:
        return out
    # Which Chinese script the document is in, from the text outside the suspect runs (their
    # mojibake is full of traditional-looking characters). Read only when a re-decoding is
    # scored: it costs about a millisecond on 5 KB, and most runs of clean text (a name of
    # rare characters) have none worth scoring.
    rest, last = [], 0
    for m in runs:
        rest.append(text[last : m.start()])
        last = m.end()
    rest.append(text[last:])
    script: list[bool | None] = []

    def trad() -> bool | None:
        if not script:
            script.append(is_traditional("".join(rest)))
        return script[0]

    # Runs of MIN_EDIT_RUN or more distinct characters whose best reading does not read as
    # text, and the indices in out of those whose reading does and would be edited.
    unread, readable = 0, []
    for m in runs:
        check_cancelled()  # a page of runs to fill takes seconds: stop once the caller has gone
        work.note_starved(m.start(), budget)
        if code_table(m.group()):
            continue  # a table of a codec, searched for nothing (xlsx's cp936 table: 25 s)
        whole = m.group()
        stop = m.end()
        if stop < len(text) and "\x40" <= text[stop] <= "\x7e":
            # The byte after the run may be the ASCII-range trail byte of its last character:
            # after a replaced lead byte, or after a pair the wrong codec read out of step
            # (Big5 `。` is A1 43, and GBK leaves its 43 as `C`). Pieces without it are
            # tried too.
            whole += text[stop]
        best: tuple[float, str, str, str, int, int, float] | None = None
        for a, b in _pieces(whole)[:12]:
            run = whole[a:b]
            rare = _rare_count(run)
            if len(run) < 2 or rare == 0 or rare + run.count("\ufffd") < 2:
                # Text decoded wrongly with a CJK codec is full of rare characters and, where
                # its pairs are not the other codec's, U+FFFD (Big5 punctuation read as GBK is
                # little else); U+FFFD among common characters only is bytes lost some other
                # way.
                continue
            kept_score: float | None = None  # scored once a re-decoding is worth comparing
            marks = ((), False)
            if "\ufffd" in run:
                at, after = m.start() + a, m.start() + b
                line_ends = after >= len(text) or text[after] == "\n"
                marks = (tuple(open_quotes(text, at)), line_ends)
            for read_as, written, _lang in _HAN_PAIRS:
                share = 1.0
                if "\ufffd" in run:
                    fill = _fill_unknown(run, read_as, written, model, trad(), work, budget, marks)
                    cand, share = fill if fill is not None else (None, 0.0)
                else:
                    cand = _redecode(run, read_as, written)
                if not cand or cand == run or not _mostly_cjk(cand, "zh"):
                    continue
                if kept_score is None:
                    # The run as it stands, under whichever language reads it best (Japanese
                    # text must not look like damaged Chinese for its kana).
                    kept_score = max(model.score(run, "", trad()), ja.score(run))
                gain = model.score(cand, "", trad()) - kept_score
                if gain / max(len(cand), 1) < PER_CHAR_GAIN:
                    continue
                if best is None or gain > best[0]:
                    best = (gain, cand, read_as, written, m.start() + a, m.start() + b, share)
        if best is None:
            continue
        gain, cand, read_as, written, start, end, share = best
        if gain < TOTAL_GAIN:
            continue
        if settled and _han_runs(cand, work, budget, settled=False):
            # The reading would itself be re-decoded: a garbage run (one rare character over
            # and over) walking through codecs, not text decoded once with the wrong one.
            # Left as it is, so that repairing the result again changes nothing.
            continue
        unknown = text.count("\ufffd", start, end)
        conf = min(GAIN_CONF_CEILING, 1 - GAIN_CONF_BASE ** (-gain / GAIN_SCALE))
        conf = round(min(conf, fill_confidence(unknown, len(cand)), share), 3)
        reason = (
            f"{_NAMES[written]} bytes read as {_NAMES[read_as]}; re-decoded text scores "
            f"{gain:.1f} nats better under the Chinese character model"
        )
        short = len(set(_CJK_LETTER.findall(cand))) < MIN_EDIT_RUN
        scattered = longest_cjk_stretch(cand) < MIN_EDIT_STRETCH
        mean = letters_mean(cand, model, trad())
        unreadable = mean < MIN_HAN_READING_LOGP
        glued = glued_to_han(text, start, end)
        unsure = conf < MIN_EDIT_CONFIDENCE
        if short:
            reason += SHORT_RUN_REASON
        elif scattered:
            reason += SCATTERED_REASON
        elif unreadable:
            reason += unreadable_reason(mean)
        elif glued:
            reason += GLUED_REASON
        elif unsure:
            reason += unsure_reason(conf)
        flag_only = short or scattered or unreadable or glued or unsure
        if not (short or scattered):
            if unreadable:
                unread += 1
            elif not flag_only:
                readable.append(len(out))
        out.append(
            Proposal(start, end, cand, Category.CJK_WRONG_CODEC, reason, conf, flag_only=flag_only)
        )
    work.note_starved(runs[-1].start(), budget)
    if unread >= ON_PURPOSE_RUNS and unread > len(readable):
        for i in readable:
            p = out[i]
            out[i] = replace(p, reason=p.reason + on_purpose_reason(unread), flag_only=True)
    return out


# The first version's confidence from the gain alone (18da600, hand-set): 1 - e^(-gain/15),
# e written to four figures (2.718, kept so that confidences stay as they were), capped at
# 0.99. The minimum gain (TOTAL_GAIN, 10 nats) gives 0.49, 45 nats 0.95. Since df46fbe it
# only caps `fill_confidence`, which is calibrated (below): a run the gain says little for
# stays unsure however few bytes were filled.
GAIN_CONF_BASE = 2.718
GAIN_SCALE = 15
GAIN_CONF_CEILING = 0.99

# The chance that a re-decoded run is exactly right, as a logistic function of the bytes the
# wrong decoder replaced (each a U+FFFD the search filled) and their share of the run. Fitted
# to the runs of the benchmark's codec pairs (`bench/calibrate.py --fit-seeds 7,11,13`); on
# 375 others (seeds 17 and 19) runs given 0.8-1.0 were right 97% of the time (mean confidence
# 0.95), 0.4-0.6 64% (0.55), 0.2-0.4 15% (0.30). From the gain alone, confidence averaged
# 0.98 on seeds 13 and 17, where 81% of the runs were right.
_FILL_BIAS = 3.9748
_FILL_LOG_UNKNOWN = -1.3523
_FILL_SHARE = -2.078


# A run whose characters follow one another in the code order of a CJK codec is a table of
# that codec (iconv-lite's and xlsx's code-page tables: `肅腕腔腋腑腎脹腆`, each one after the
# last in Big5, "re-decoded" into GB2312's `德得的蹬灯登等瞪`; an EUC-JP table's
# `綞綦綧綪綳綶綷綹緂`), not text: text read with the wrong codec keeps the order of its words.
# TABLE_RUN characters at the least, TABLE_SHARE of the steps between them one or two code
# points up (a table skips its gaps, and U+FFFD or characters a codec cannot hold are passed
# over); first-version values. Checked before a run is searched: xlsx's table of cp936, 256
# characters a row with its undefined places as U+FFFD, took 25 s of fill searches.
# Only a run's first TABLE_SCAN characters are looked at: a table is one from its start, and a
# run may be a whole page.
TABLE_RUN = 4
TABLE_SHARE = 0.6
TABLE_SCAN = 64
TABLE_CODECS = ("gbk", "cp950", "euc_jp", "euc_kr")


def code_table(run: str) -> bool:
    """Whether run's characters are in the code order of one of TABLE_CODECS.

    >>> code_table("肅腕腔腋腑腎脹腆"), code_table("綞綦綧綪綳綶綷綹緂")
    (True, True)
    >>> code_table("保护消费者的价格权益")
    False
    """
    chars = list(islice((ch for ch in run if "\u0080" <= ch != "\ufffd"), TABLE_SCAN))
    if len(chars) < TABLE_RUN:
        return False
    for codec in TABLE_CODECS:
        units = []
        for ch in chars:
            try:
                units.append(int.from_bytes(ch.encode(codec), "big"))
            except UnicodeEncodeError:
                continue  # a table lists its undefined places as U+FFFD or skips them
        steps = [b - a for a, b in pairwise(units)]
        if len(units) >= TABLE_RUN and sum(1 for d in steps if 1 <= d <= 2) >= TABLE_SHARE * len(
            steps
        ):
            return True
    return False


def fill_confidence(unknown: int, length: int) -> float:
    """How likely a re-decoded run of length characters, unknown of whose bytes were filled
    in, is to be exactly right: a lossless re-decoding is, a filled byte is the model's guess.

    >>> fill_confidence(0, 30) > 0.95 > fill_confidence(4, 30) > fill_confidence(12, 30)
    True
    """
    share = unknown / max(length, 1)
    x = _FILL_BIAS + _FILL_LOG_UNKNOWN * math.log1p(unknown) + _FILL_SHARE * share
    return 1.0 / (1.0 + math.exp(-x))


def _cjk_mean(cand: str, lang: str) -> float | None:
    """Mean log-probability of cand's non-ASCII characters under the lang model, or None when
    they are not mostly that language's scripts (ASCII passes through both codecs as is)."""
    want = {"ja": ("han", "kana", "punct"), "ko": ("hangul", "han", "punct")}[lang]
    # Counted as they come, not listed: a list of the positions held about 36 bytes per
    # character of a run that may be a whole line (a megabyte of `Ã` took 157 times its size).
    wide = cjk = punct = 0
    for ch in cand:
        if ch >= "\x80":
            wide += 1
            cls = char_class(ch)
            cjk += cls in want
            punct += cls == "punct"
    if wide < 2 or cjk < 0.9 * wide or cjk - punct < 2:
        return None
    model = get_model(lang)
    total = sum(
        model.logp(cand[i - 1] if i else "", ch) for i, ch in enumerate(cand) if ch >= "\x80"
    )
    return total / wide


def utf8_shaped(run: str) -> bool:
    """Whether run is UTF-8 read as cp1252: its bytes are valid UTF-8 with a multi-byte
    character, taking each U+FFFD for one of the five bytes cp1252 leaves undefined (all
    continuation bytes). Shift-JIS and EUC-KR bytes are almost never valid UTF-8, so such a
    run is mojibake of another kind, not worth their searches.

    >>> utf8_shaped("ã�¯ã�¨"), utf8_shaped("“•ú–{Œê"), utf8_shaped("naïve")
    (True, False, False)
    """
    try:
        data = b"\x81".join(piece.encode("cp1252") for piece in run.split("\ufffd"))
        return not data.decode("utf-8").isascii()
    except (UnicodeEncodeError, UnicodeDecodeError):
        return False


# The most of a Latin-looking run's high characters that may be U+FFFD for it to be re-decoded:
# a byte the wrong decoder replaced is the model's guess, so a run of little else is the
# model's invention, not a reading. Czech text that had lost its accented letters upstream
# (`neu�lo n�co d�le�it�ho`, in a Debian Info manual) was "re-decoded" into Japanese.
MAX_UNKNOWN_SHARE = 0.5


def mostly_unknown(run: str) -> bool:
    """Whether more than `MAX_UNKNOWN_SHARE` of run's non-ASCII characters are U+FFFD.

    >>> mostly_unknown("neu\ufffdlo n\ufffdco d\ufffdle\ufffdit\ufffdho")
    True
    >>> mostly_unknown("ƒ\ufffd‚±‚ê")
    False
    """
    high = sum(1 for ch in run if ch >= "\x80")
    return run.count("\ufffd") > MAX_UNKNOWN_SHARE * high


def _latin_candidates(
    run: str, work: Work, budget: int
) -> Iterator[tuple[str, str, str, str, float]]:
    """(candidate, read_as, written, lang, the fill's share) for each pair the run
    re-decodes strictly under, one at a time: a run may be a whole line, and a list held a
    re-decoding of it per pair."""
    if utf8_shaped(run) or mostly_unknown(run):
        return
    for read_as, written, lang in _LATIN_PAIRS:
        if "\ufffd" in run:
            if read_as == "latin-1":
                continue  # Latin-1 decodes every byte: it never replaces
            fill = _fill_unknown(run, read_as, written, get_model(lang), None, work, budget)
            cand, share = fill if fill is not None else (None, 0.0)
        else:
            cand, share = _redecode(run, read_as, written), 1.0
        if cand and cand != run:
            yield cand, read_as, written, lang, share


def _latin_runs(text: str, work: Work, budget: int) -> list[Proposal]:
    out: list[Proposal] = []
    last = 0
    for m in _LATIN_REGION_RE.finditer(text):
        check_cancelled()
        start, end = m.start(), m.end()
        work.note_starved(last, budget)
        last = start
        region = m.group()
        high = [ch for ch in region if ch >= "\x80"]
        if len(high) < 3 or utf8_shaped(region):
            # UTF-8 read as cp1252 (what ftfy could not put back, its lost bytes marked):
            # mojibake of another kind, in its runs too.
            continue
        if len(set(high) - TYPOGRAPHY) <= 1:
            # One character over and over (`ÁÁÁÁ`, Icelandic's year format in a catalogue;
            # `°°°°` and `¯¯¯¯` drawing a line; Ewe's letter `ƒ` in `ƒuƒoƒe`, beside a curly
            # quote), typography aside: a text read with the wrong codec varies, and this
            # one's reading would be one syllable repeated (`좋좋`). Or nothing but typography
            # (`“I’m here,”he said`: its cp1252 bytes pair up as Shift-JIS).
            continue
        best: tuple[float, str, str, str, str, int, int, float] | None = None
        # The whole region (ASCII between the runs passes through both codecs unchanged),
        # with the ASCII-range byte after it that may be the trail of its last pair; failing
        # that, its runs one by one.
        spans = [(start, end)]
        if end < len(text) and "\x40" <= text[end] <= "\x7e":
            spans.append((start, end + 1))
        found = False
        for a, b in spans:
            for cand, read_as, written, lang, share in _latin_candidates(text[a:b], work, budget):
                mean = _cjk_mean(cand, lang)
                if mean is not None and (best is None or mean > best[0]):
                    best = (mean, cand, read_as, written, lang, a, b, share)
                    found = True
        if found and best is not None and best[0] >= MIN_MEAN_LOGP:
            out.append(_latin_proposal(best, text))
            continue
        for sub in _LATIN_RUN_RE.finditer(text, start, end):
            best = None
            stops = [sub.end()]
            if sub.end() < len(text) and "\x21" <= text[sub.end()] <= "\x7e":
                stops.append(sub.end() + 1)
            for stop in stops:
                for cand, read_as, written, lang, share in _latin_candidates(
                    text[sub.start() : stop], work, budget
                ):
                    mean = _cjk_mean(cand, lang)
                    if mean is not None and (best is None or mean > best[0]):
                        best = (mean, cand, read_as, written, lang, sub.start(), stop, share)
            if best is not None and best[0] >= MIN_MEAN_LOGP:
                out.append(_latin_proposal(best, text))
    work.note_starved(last, budget)
    return out


def _latin_proposal(best: tuple[float, str, str, str, str, int, int, float], text: str) -> Proposal:
    mean, cand, read_as, written, lang, start, end, share = best
    conf = max(0.5, min(0.98, 1 + (mean - MIN_MEAN_LOGP) / 10 - 0.3))
    filled = fill_confidence(text.count("\ufffd", start, end), len(cand))
    conf = round(min(conf, filled, share), 3)
    language = {"ja": "Japanese", "ko": "Korean"}[lang]
    reason = (
        f"{_NAMES[written]} bytes read as {_NAMES[read_as]}; re-decoded text averages "
        f"{mean:.1f} nats a character under the {language} character model"
    )
    unsure = conf < MIN_EDIT_CONFIDENCE
    if unsure:
        reason += unsure_reason(conf)
    return Proposal(start, end, cand, Category.CJK_WRONG_CODEC, reason, conf, flag_only=unsure)
