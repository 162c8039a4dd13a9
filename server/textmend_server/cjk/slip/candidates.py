"""The characters a phase-slip search weighs at each step: what a (lead byte, trail byte) pair
can stand for in a codec, ranked and cut down before the model scores them in context.

A search reads a run two bytes at a time, but the lead byte of each pair is often not known:
after a cut it is any lead byte; after a pair that was dropped (a user-defined area) or read
as `?` (no character) it is any byte that can open such a pair. These build, once per codec,
the tables of which bytes lead, open a user-defined pair or form no character, and how
frequent each of its characters is (`priors`), and memoise the candidate lists a search asks
for again and again: every character a set of lead bytes and a trail byte can make
(`all_chars`), the most frequent of them (`likely_chars`), the characters a lost pair could
have been (`drop_chars`), those that continue a word or a number after the character before
(`with_successors`), and those with a given pinyin reading (`by_reading`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from textmend_server import cache
from textmend_server.cjk.dbcs import Dbcs
from textmend_server.cjk.lm import AFTER_DIGIT, PLAIN_DIGITS, CharModel
from textmend_server.cjk.scripts import char_class

# Bytes one entry of each memo holds (key, value and the dict's slot): what `cache` counts
# against the process's budget. Estimates from the shapes of the keys and values (tuples of
# short strings, about 250 bytes a small entry); not yet measured with tracemalloc.
ENTRY_BYTES_ALL = 900
ENTRY_BYTES_LIKELY = 600
ENTRY_BYTES_DROPS = 1_500
ENTRY_BYTES_INDEX = 60_000

# A table of the bytes that can follow a given one: for each byte that opens a user-defined
# pair, or a pair that is no character, the bytes that can close it.
Seconds = dict[int, tuple[int, ...]]
# Candidates as (character, tag): the tag is the byte that opened a lost pair, or 0.
Options = tuple[tuple[str, int], ...]


def _lead_bytes(c: Dbcs) -> tuple[int, ...]:
    return tuple(b for b in range(0x81, 0x100) if c.is_lead(b))


def _uda_seconds(c: Dbcs) -> dict[int, tuple[int, ...]]:
    """For each byte that can open a user-defined pair, the bytes that can close it."""
    out: dict[int, tuple[int, ...]] = {}
    for t in range(0x81, 0x100):
        seconds = tuple(b for b in range(0x40, 0x100) if c.in_uda(t, b) and c.is_trail(b))
        if seconds:
            out[t] = seconds
    return out


def _unassigned_seconds(c: Dbcs) -> dict[int, tuple[int, ...]]:
    """For each lead byte, the trail bytes it forms no character with (read as `?`)."""
    out: dict[int, tuple[int, ...]] = {}
    for t in range(0x81, 0x100):
        if not c.is_lead(t):
            continue
        seconds = tuple(
            b
            for b in range(0x40, 0x100)
            if c.is_trail(b) and not c.in_uda(t, b) and (t << 8 | b) not in c.pairs
        )
        if seconds:
            out[t] = seconds
    return out


_Tables = tuple[tuple[int, ...], Seconds, Seconds]
_TABLES: dict[str, _Tables] = {}


def tables(c: Dbcs) -> _Tables:
    """The codec's lead bytes, the bytes that open a user-defined pair (with what closes
    them) and the lead bytes with trail bytes they form no character with; built once."""
    hit = _TABLES.get(c.name)
    if hit is None:
        hit = _TABLES[c.name] = (_lead_bytes(c), _uda_seconds(c), _unassigned_seconds(c))
    return hit


def _chars(c: Dbcs, pending: tuple[int, ...], trails: Iterable[int]) -> Iterator[tuple[str, int]]:
    """Each character (lead in pending, t in trails) stands for, with t: trail by trail, then
    lead by lead."""
    pairs = c.pairs
    for t in trails:
        for lead in pending:
            ch = pairs.get(lead << 8 | t)
            if ch is not None:
                yield ch, t


# Memos of the search's candidate lists, by (codec, possible lead bytes, trail byte); entry
# sizes are measured (`cache`), each counted against the process's one cache budget.
_ALL = cache.Memo("slip.all_chars", entry_bytes=ENTRY_BYTES_ALL)


def all_chars(c: Dbcs, pending: tuple[int, ...], trail: int) -> tuple[str, ...]:
    """Every character (lead in pending, trail) stands for."""
    key = (c.name, pending, trail)
    hit = _ALL.get(key)
    if hit is None:
        hit = _ALL.put(key, tuple(ch for ch, _ in _chars(c, pending, (trail,))))
    return hit


_LIKELY = cache.Memo("slip.likely", entry_bytes=ENTRY_BYTES_LIKELY)
PREFILTER = 24
# A swallowed trail byte is unconstrained: more of its characters are scored.
SWALLOW_LIMIT = 400


def likely_chars(
    c: Dbcs, model: CharModel, pending: tuple[int, ...], trail: int
) -> tuple[str, ...]:
    """The characters (lead in pending, trail) can be, the most frequent first, at most
    PREFILTER of them: the context model then only scores these."""
    key = (c.name, pending, trail)
    hit = _LIKELY.get(key)
    if hit is None:
        found = sorted(all_chars(c, pending, trail), key=priors(c, model).__getitem__, reverse=True)
        hit = _LIKELY.put(key, tuple(found[:PREFILTER]))
    return hit


# How often a candidate outside the language's scripts comes up, for ranking before the model
# scores in context: punctuation about as often as a common character, anything else hardly
# ever. Hand-set in the first version (18da600); only the order they give matters.
PUNCT_PRIOR = 0.01
OTHER_PRIOR = 1e-7


def _prior(model: CharModel, ch: str) -> float:
    """How often ch comes up in the language, for ranking candidates."""
    cls = char_class(ch)
    if cls in ("han", "kana", "hangul"):
        return model.unigram(ch) if model.known(ch) else 0.0
    if cls == "punct":
        return PUNCT_PRIOR
    return OTHER_PRIOR


# `_prior` of every character of a codec in a language, by (codec, language): the candidate
# lists are ranked by it, and computing it for each character of each list a search asks for
# was half the CPU of a search with every memo empty (cProfile: 0.14 of 0.28 s for 100 bytes
# of Han and `?`, 66,000 calls for 100 bytes of `為什麼??`). A table of the codec and the
# model, like `tables`, not a memo of any text: built once per process (`engine.warm_up`
# builds all four, 21,791 entries for GBK, about 1.5 MB in all by tracemalloc), and
# `cache.clear` leaves it.
_PRIORS: dict[tuple[str, str], dict[str, float]] = {}


def priors(c: Dbcs, model: CharModel) -> dict[str, float]:
    """`_prior` of every character of the codec c, in the model's language; built once.

    >>> from textmend_server.cjk.dbcs import codec
    >>> from textmend_server.cjk.lm import get_model
    >>> m = get_model("zh")
    >>> priors(codec("gbk"), m)["的"] == _prior(m, "的") > priors(codec("gbk"), m)["丟"]
    True
    """
    key = (c.name, model.lang)
    hit = _PRIORS.get(key)
    if hit is None:
        hit = _PRIORS[key] = {ch: _prior(model, ch) for ch in set(c.pairs.values())}
    return hit


_SWALLOWERS: dict[str, dict[int, tuple[int, ...]]] = {}


def swallowers(c: Dbcs, leads: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    """Bytes that, in lead position, swallow a following byte below 0x40."""
    hit = _SWALLOWERS.get(c.name)
    if hit is None:
        hit = _SWALLOWERS[c.name] = {t: () for t in leads if c.is_trail(t)}
    return hit


_DROPS = cache.Memo("slip.drops", entry_bytes=ENTRY_BYTES_DROPS)


def drop_chars(
    c: Dbcs,
    model: CharModel,
    pending: tuple[int, ...],
    uda: Seconds,
    limit: int = 0,
) -> Options:
    """Characters (lead in pending, t) where t opens a pair of uda that was lost (a dropped
    user-defined pair, a pair that is no character, a byte swallowed), with t; the most
    frequent `limit` (default PREFILTER) of them."""
    limit = limit or PREFILTER
    key = (c.name, id(uda), pending, limit)
    hit = _DROPS.get(key)
    if hit is None:
        found = list(_chars(c, pending, (t for t in uda if c.is_trail(t))))
        prior = priors(c, model)
        found.sort(key=lambda x: prior[x[0]], reverse=True)
        hit = _DROPS.put(key, tuple(found[:limit]))
    return hit


# Every character (lead in pending, t) keyed by the form the model knows it by, by (codec,
# pending, the given trail bytes or None, the table of lost pairs): `with_successors` looks
# the successors of a character up in it.
_INDEX = cache.Memo("slip.index", entry_bytes=ENTRY_BYTES_INDEX)


# Digits after which the digit successors are proposed; after 〇, a Chinese numeral, the word
# list's successors are.
_DIGITS = PLAIN_DIGITS - {"〇"}
# What follows a digit: more digits (full-width, as double-byte text writes them), a decimal
# point, and the counters and units numbers take.
_DIGIT_SUCCESSORS = (*"０１２３４５６７８９．", *sorted(AFTER_DIGIT))


def with_successors(
    c: Dbcs,
    model: CharModel,
    pending: tuple[int, ...],
    seconds: tuple[int, ...] | None,
    table: Seconds | None,
    hist: str,
    base: Options,
) -> Options:
    """base (the most frequent candidates) plus those that continue a word after the last
    character of hist, or a number after a digit: a wide set of possible lead bytes (after a
    cut or a dropped pair) holds far more characters than the frequency prefilter keeps."""
    if len(pending) <= 4 or not hist:
        return base
    succ = _DIGIT_SUCCESSORS if hist[-1] in _DIGITS else model.successors(hist[-1])
    if not succ:
        return base
    key = (c.name, pending, seconds, id(table))
    idx = _INDEX.get(key)
    if idx is None:
        # t is a given trail byte (seconds) or any key of table (a dropped or unreadable pair).
        ts = seconds if seconds is not None else (t for t in table or () if c.is_trail(t))
        idx = {}
        for ch, t in _chars(c, pending, ts):
            idx.setdefault(model.simplified(ch), []).append((ch, t))
        _INDEX.put(key, idx)
    extra = [x for s in succ if (hit := idx.get(s)) for x in hit]
    if not extra:
        return base
    return tuple(dict.fromkeys((*base, *extra)))


_READINGS: dict[str, dict[str, list[tuple[int, str]]]] = {}


def by_reading(c: Dbcs) -> dict[str, list[tuple[int, str]]]:
    """For each pinyin spelling (tone-marked and toneless), the (lead byte, character) of the
    codec's characters with that reading (pypinyin's table)."""
    hit = _READINGS.get(c.name)
    if hit is None:
        import unicodedata

        from pypinyin.pinyin_dict import pinyin_dict

        hit = {}
        for code, ch in c.pairs.items():
            spell = pinyin_dict.get(ord(ch))
            if not spell:
                continue
            for r in set(spell.split(",")):
                bare = "".join(
                    x for x in unicodedata.normalize("NFD", r) if not unicodedata.combining(x)
                )
                for key in {r, bare}:
                    hit.setdefault(key, []).append((code >> 8, ch))
        _READINGS[c.name] = hit
    return hit
