"""Rank the codecs a sample of bytes may be in: bytes in, candidate codecs out, best first,
each with how its decoding reads (`rank_codecs`). Detection applies no codec to a document and
decides nothing about a declared charset: `decoding` does both, calling `rank_codecs` once.

A single detector answer cannot be checked; a decoding can. Candidates come from the caller's
declared charset, the document's own declaration (found by `decoding`), chardet's ranked
answers, UTF-8, the sibling codecs of those answers (ISO-8859-n and windows-125x share most of
a layout) and every language family's legacy code pages (`charsets.LEGACY_CODECS`). Each
candidate decodes the sample strictly; candidates that give the same text are one reading,
reported under the most useful name. Where readings differ on enough bytes the language models
price them (`langscoring`) and the likeliest wins; otherwise the readings are scored for how
unlike natural text they read (`plausibility`, and `cjkreadings` when CJK readings compete) and
chardet's favourite keeps its place unless another reading is clearly better. Every candidate
is returned with its score, so the ranking can be checked.

Why not also charset-normalizer: measured on chardet's own test files (bench/detect_bench.py)
it is less accurate than chardet on whole files and on every prefix length, and running it
would double the cost; its answers add nothing the scoring here does not already check.

Cost: chardet reads the sample (`decoding.SAMPLE_BYTES` at most); each candidate decodes it
once (C speed); scoring looks only at the words holding non-ASCII characters, at most
`plausibility.SCORED_CHARS` of them, or the stretches the language models read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import NamedTuple

import chardet

from textmend_server import langscoring
from textmend_server.charsets import (
    DECLARATION_BYTES,
    FAMILY_OF,
    LEGACY_CODECS,
    MULTIBYTE,
    UNICODE,
    codec_of,
    popularity,
    widen,
)
from textmend_server.cjkreadings import cjk_surprise, has_cjk, iso2022_jp, shift_codes
from textmend_server.langscoring import (
    LIST_CONFIDENCE,
    LIST_RIVALS,
    LM_PRUNE_NATS,
    RIVAL_SHARE,
    character_list,
    scored_bytes,
    stretch_text,
)
from textmend_server.plausibility import (
    foreign_words,
    implausibility,
    words_implausibility,
)

# chardet answers considered, best first; each costs one more decoding of the sample (set by
# hand with candidate scoring, commit 6ed88e7).
DETECTOR_ANSWERS = 4


class Source:
    """Where a candidate came from (plain strings, so they travel as they are)."""

    DECLARED = "declared"
    MARKUP = "markup"
    DETECTOR = "detector"
    SIBLING = "sibling"
    UTF8 = "utf-8 check"
    LEGACY = "legacy code page"


@dataclass(frozen=True)
class Candidate:
    """One encoding considered for the content and how its decoding read.

    `name` is the codec that decoded (a superset of the label when the bytes needed it),
    `label` what the source said, `confidence` the source's own belief in [0, 1] (1 for a
    declaration), `decodes` whether the sample decoded strictly, `implausibility` how unlike
    natural text the decoding reads (0 is ordinary text; infinite when it did not decode),
    `quality` the same as a score in [0, 1] (1 reads like text), `same_as` the candidate
    that gave the identical text and stands for it, and `chosen` whether it won.
    """

    name: str
    label: str
    source: str
    confidence: float
    decodes: bool
    implausibility: float = math.inf
    same_as: str | None = None
    chosen: bool = False

    @property
    def quality(self) -> float:
        """Implausibility mapped to [0, 1]: 1 reads like ordinary text, 0 does not decode."""
        if not self.decodes:
            return 0.0
        return round(1.0 / (1.0 + self.implausibility / 5.0), 3)


@dataclass
class Reading:
    """One distinct decoded text of the sample and the candidates that gave it."""

    text: str
    names: list[Candidate] = field(default_factory=list)
    implausibility: float = 0.0
    cjk: float = 0.0  # mean surprise per CJK character under the character model, in nats
    # −log P, in nats, of the scored stretch of the bytes as decoded here, under the language
    # model that explains it best (`langmodel.cost`), and that language; None when not scored.
    cost: float | None = None
    lang: str = ""
    # Probability that this is the right reading, among the readings scored.
    posterior: float = 0.0


class Answer(NamedTuple):
    """One of chardet's answers: the Python codec, chardet's confidence, and the language
    (ISO 639-1) it read the bytes as ('' when it named none)."""

    codec: str
    confidence: float
    language: str = ""


# Declarations in a document's head, blanked for chardet's blind look (`detector_answers`).
_DECLARATION = re.compile(rb"(?:encoding|charset)\s*=\s*[\"']?\s*[A-Za-z0-9._:-]+", re.IGNORECASE)


def detector_answers(sample: bytes, *, blind: bool = False) -> list[Answer]:
    """chardet's ranked answers, unknown codec names dropped.

    chardet believes in-document declarations (which is fast when they are right); with
    blind=True it is shown the bytes with those in the first `DECLARATION_BYTES` blanked, for
    independent evidence.
    """
    out: dict[str, Answer] = {}
    if blind:
        head = _DECLARATION.sub(lambda m: b" " * len(m.group()), sample[:DECLARATION_BYTES])
        sample = head + sample[DECLARATION_BYTES:]
    for guess in chardet.detect_all(sample):
        name = guess.get("encoding")
        codec = codec_of(name) if name else None
        if codec is not None and codec not in out:
            language = guess.get("language") or ""
            out[codec] = Answer(codec, float(guess.get("confidence") or 0.0), language)
        if len(out) >= DETECTOR_ANSWERS:
            break
    return list(out.values())


# --- ranking -------------------------------------------------------------------------------

# How much lower (anomalies per 100 non-ASCII characters) a reading must score to unseat the
# detector's favourite, and how many more nats per CJK character the favourite must cost
# before the excess counts (the excess then weighs CJK_WEIGHT anomalies a nat). A document's
# declaration that reads worse than DOUBT is checked against the bytes alone. Set by hand with
# candidate scoring (commit 6ed88e7).
MARGIN = 1.0
CJK_MARGIN = 1.0
CJK_WEIGHT = 2.0
DOUBT = 25.0
# What an ISO-2022 escape or shift code left in a reading weighs, in anomalies: a 7-bit CJK
# codec read as ASCII leaves them. Set by hand with candidate scoring (commit 6ed88e7).
SHIFT_CODE_WEIGHT = 5.0
# Confidence in an ISO-2022-JP reading found by `cjkreadings.iso2022_jp`: its escapes name the
# character set; 0.99 (not 1) leaves room for a text quoting such escapes.
ISO2022_CONFIDENCE = 0.99
# Confidence in a sample only one reading decodes: its source's own, but at least ONLY_READING
# (at least ONLY_SIBLING when only a sibling of the detector's answer decodes, a guess one step
# removed). Where readings compete, the winner's lead of g anomalies gives 1 − exp(−g /
# LEAD_SCALE), at least MIN_CONFIDENCE. Set by hand with candidate scoring (commit 6ed88e7);
# bench/legacy_decoding.py's calibration table checks them.
ONLY_READING = 0.99
ONLY_SIBLING = 0.9
LEAD_SCALE = 2.0
MIN_CONFIDENCE = 0.01
# Among readings that score alike, the more trusted wins (`_prior`, smaller first): a caller's
# declaration by DECLARED_TRUST, the document's by MARKUP_TRUST, a source's confidence by
# CONFIDENCE_TRUST per unit, the codec's popularity rank by 1 / POPULARITY_SCALE per rank, and
# each place later in the order considered by 1. Set by hand with candidate scoring (commit
# 6ed88e7).
DECLARED_TRUST = 3.0
MARKUP_TRUST = 2.0
CONFIDENCE_TRUST = 4.0
POPULARITY_SCALE = 10


@dataclass
class Choice:
    """The best-ranked reading of a sample, and every candidate considered, best first."""

    text: str
    name: str
    source: str
    confidence: float
    candidates: list[Candidate]
    reason: str = ""
    # Other readings at least RIVAL_SHARE probable, as (codec, probability), likeliest first.
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    # The language the chosen reading reads as ('' when not scored by the language models; the
    # detector's language when it was kept for a language no model here reads).
    lang: str = ""


@dataclass(frozen=True)
class Ranking:
    """What detection makes of a sample: its best reading with every candidate ranked (None
    when no candidate decodes the sample), and chardet's own answers, best first, which the
    caller reports as the runners-up."""

    best: Choice | None
    detector: list[Answer]


def rank_codecs(
    sample: bytes, *, declared: str | None = None, markup: str | None = None
) -> Ranking:
    """Rank the codecs sample may be in: the best reading first, every candidate with its
    score. Pure: it decodes nothing but the sample and decides nothing for the caller.

    declared (the caller's charset) and markup (the document's own declaration) are
    candidates like the others, the document's favoured as chardet's favourite is; whether a
    declared charset is kept is the caller's decision (`decoding`).

    >>> ranking = rank_codecs("Ещё этих мягких французских булок".encode("cp1251"))
    >>> ranking.best.name, ranking.best.text[:3]
    ('cp1251', 'Ещё')
    """
    answers = detector_answers(sample)
    return Ranking(_best_reading(sample, declared, markup, answers), answers)


def _best_reading(
    sample: bytes, declared: str | None, markup: str | None, answers: list[Answer]
) -> Choice | None:
    """The reading of sample that reads best, with every candidate; None when no candidate
    decodes it.

    The detector's favourite (or the document's own declaration, when it decodes) stands
    unless another reading scores clearly better; readings that tie go to the more trusted
    and more common codec.
    """
    jis = iso2022_jp(sample) if not declared and not markup else None
    if jis is not None:
        found = Candidate("iso2022_jp", "iso2022_jp", Source.LEGACY, ISO2022_CONFIDENCE, True,
                          0.0, chosen=True)  # fmt: skip
        return Choice(jis, found.name, found.source, ISO2022_CONFIDENCE, [found], lang="ja")
    candidates, readings, key_of = _gather(sample, answers, declared=declared, markup=markup)
    if not readings:
        return None
    scored = _score_readings(readings, sample)
    # Name each reading by its most trusted candidate.
    order = {c.name: i for i, c in enumerate(candidates)}
    for reading in readings.values():
        reading.names.sort(key=lambda c: _name_rank(c, order[c.name]))
    standing = _favourite(candidates, key_of)
    if markup and standing is not None and readings[standing].names[0].source == Source.MARKUP:
        if len(scored) > 1 and readings[standing].implausibility > DOUBT:
            # The declaration reads badly: ask again with the bytes alone, markup demoted.
            blind = detector_answers(sample, blind=True)
            return _best_reading(sample, declared, None, blind + answers)
    chunks = scored_bytes(sample) if len(scored) > 1 else []
    unread = ""
    if chunks:
        from textmend_server import langmodel

        hint = langmodel.rank_latin(sample)
        best_key = _by_language(readings, chunks, answers, order, hint)
        if not declared and not markup:
            unread, best_key = _unread_language(answers, readings, key_of, best_key)
    else:
        best_key = standing
        if standing is None or len(scored) > 1:
            best_key = _best(readings, standing, order)
    best = readings[best_key]
    winner = best.names[0]
    reason = _reason(readings, best_key, standing, chunks, unread)
    final = []
    for c in candidates:
        if c.decodes:
            reading = readings[key_of[c.name]]
            c = Candidate(
                c.name,
                c.label,
                c.source,
                c.confidence,
                True,
                round(reading.implausibility + reading.cjk, 2),
                None if c is reading.names[0] else reading.names[0].name,
                c is winner,
            )
        final.append(c)
    final.sort(key=lambda c: (not c.chosen, not c.decodes, c.implausibility, order[c.name]))
    if chunks:
        confidence = round(best.posterior, 3)
        rivals = sorted(
            ((r.names[0].name, round(r.posterior, 3)) for r in readings.values() if r is not best),
            key=lambda x: -x[1],
        )
        alternatives = [(name, p) for name, p in rivals if p >= RIVAL_SHARE]
        if unread:
            confidence = UNREAD_CONFIDENCE
        if best.implausibility > GARBAGE_IMPLAUSIBILITY:
            confidence = min(confidence, GARBAGE_CONFIDENCE)
            alternatives = alternatives or rivals[:LIST_RIVALS]
            reason = reason or "no reading reads as text: the bytes may not be text at all"
        if character_list(chunks, single_byte=winner.name not in MULTIBYTE):
            confidence = min(confidence, LIST_CONFIDENCE)
            alternatives = alternatives or rivals[:LIST_RIVALS]
            reason = reason or "the text lists characters one by one: no words to read"
    else:
        confidence = _confidence(winner, best, readings)
        alternatives = []
    return Choice(
        best.text,
        winner.name,
        winner.source,
        confidence,
        final,
        reason,
        alternatives,
        unread or best.lang,
    )


# Implausibility past which the best reading does not read as text in any code page, and the
# confidence it then gets (in doubt: reported with its rivals, nothing rewritten). Random bytes
# above 0x7F read best as EBCDIC at 74.7 (200 bytes) and as cp1256 at 210 (5,000 bytes of
# /dev/urandom without NULs), each at confidence 1.0, and the first was "repaired"; the 321
# files of chardet's own test corpus that decode read at most 16.6 (a GB2312 feed). 40: more
# than twice that.
GARBAGE_IMPLAUSIBILITY = 40.0
GARBAGE_CONFIDENCE = 0.5
# The confidence of a reading kept because chardet reads its language and no model here does
# (`_unread_language`): set by hand in doubt (below `decoding.IN_DOUBT`), since no model here
# checks it, so it is reported with the models' favourite as its rival and nothing in it is
# rewritten. bench/legacy_decoding.py's 0.7-0.9 bucket, which holds these, was right 95.9% and
# 88.2% of the time on the report split (seeds 15 and 16).
UNREAD_CONFIDENCE = 0.7
# Characters in which the detector's reading must differ from the models' favourite, each a
# letter in the favourite, for the detector's to be kept when the two are equally anomalous
# (`_unread_language`): one accented letter is too little to overrule the models on (a
# Polish `ć` read as Esperanto's `ĉ` in a 200-byte stretch); set by hand on the tune split.
UNREAD_MIN_LETTERS = 3


def _unread_language(
    answers: list[Answer], readings: dict[str, Reading], key_of: dict[str, str], best_key: str
) -> tuple[str, str]:
    """(chardet's language, its reading's key) when chardet's favourite reads the bytes as a
    language no model here reads (`langmodel.reads`: Maltese, Irish...),
    gives a text other than the models' favourite, and the models are guessing; else ('',
    best_key).

    The models price such a text by the languages they know, and a wrong code page that turns
    its letters into theirs (Esperanto's `ĉ` into windows-1257's `ę`, before Esperanto had a
    model) reads better to them than the right one: their verdict is no evidence against a
    detector that knows the language.
    The detector's reading is kept when chardet ranks it above every answer of its that gives
    the favourite's text, when it is no more anomalous than the favourite (fewer
    anomalies are evidence in any language), and either less anomalous or different in at
    least `UNREAD_MIN_LETTERS` characters that the favourite also reads as letters. chardet
    named Estonian or Esperanto for 200-byte stretches of Danish and Dutch whose only
    non-ASCII bytes are quotation marks and a no-break space (its readings made them letters),
    and of Polish with one accented letter.
    """
    from textmend_server import langmodel

    if not answers:
        return "", best_key
    top = answers[0]
    key = key_of.get(top.codec)
    if key is None or key == best_key or not top.language or langmodel.reads(top.language):
        return "", best_key
    if any(key_of.get(a.codec) == best_key and a.confidence >= top.confidence for a in answers):
        # chardet itself is as sure of the models' favourite (its answers for a Spanish man
        # page's stretch, cp850 and cp1252, tie): it does not read the bytes otherwise.
        return "", best_key
    theirs, ours = readings[key].implausibility, readings[best_key].implausibility
    if theirs > ours:
        # The detector's reading has controls, symbols inside words or letters no text puts
        # together where the models' favourite has fewer: an anomaly is evidence in any
        # language (chardet read an Estonian windows-1252 file, whose `š` is 0x9A, as
        # ISO-8859-4, where 0x9A is a C1 control).
        return "", best_key
    if theirs == ours:
        text, favourite = readings[key].text, readings[best_key].text
        if len(text) != len(favourite):
            return "", best_key
        letters = sum(1 for a, b in zip(text, favourite, strict=True) if a != b and b.isalpha())
        if letters < UNREAD_MIN_LETTERS:
            return "", best_key
    return top.language, key


def _reason(
    readings: dict[str, Reading],
    best_key: str,
    standing: str | None,
    chunks: list[bytes],
    unread: str = "",
) -> str:
    """Why the best reading won over the detector's favourite ('' when it is the favourite, or
    when the language models priced no other reading); unread names the language chardet read
    the favourite in when none of the models reads it (`_unread_language`)."""
    best = readings[best_key]
    winner = best.names[0]
    if unread:
        return (
            f"chardet reads the bytes as {winner.name} in a language no model here reads "
            f"({unread}): kept, in doubt"
        )
    if chunks:
        priced = any(r is not best and r.cost is not None for r in readings.values())
        if priced and standing is not None and best_key != standing:
            theirs = readings[standing].cost
            behind = f"{theirs:.0f}" if theirs is not None else "far more"
            return (
                f"{winner.name} reads better than {readings[standing].names[0].name} "
                f"({best.cost:.0f} vs {behind} nats over the same "
                f"{sum(map(len, chunks))} bytes, as {best.lang or 'text'})"
            )
    elif standing is not None and best_key != standing:
        return (
            f"{winner.name} reads better than {readings[standing].names[0].name} "
            f"({best.implausibility:.1f} vs {readings[standing].implausibility:.1f} "
            "anomalies per 100 non-ASCII characters"
            + (
                f", {best.cjk:.1f} vs {readings[standing].cjk:.1f} nats per CJK character)"
                if best.cjk or readings[standing].cjk
                else ")"
            )
        )
    return ""


def _gather(
    sample: bytes,
    answers: list[Answer],
    *,
    declared: str | None = None,
    markup: str | None = None,
) -> tuple[list[Candidate], dict[str, Reading], dict[str, str]]:
    """Decode the sample with every candidate; group identical texts into readings.

    Every language family's legacy code pages (`LEGACY_CODECS`) are candidates when the sample
    is not ASCII, ISO-2022-JP when it holds an escape.

    Returns the candidates (in the order considered), the readings keyed by the name of the
    candidate standing for each, and each decoding candidate's reading key.
    """
    wanted: list[tuple[str, str, float]] = []
    if declared:
        wanted.append((declared, Source.DECLARED, 1.0))
    if markup:
        wanted.append((markup, Source.MARKUP, 1.0))
    wanted += [(name, Source.DETECTOR, conf) for name, conf, _ in answers]
    wanted.append(("utf-8", Source.UTF8, 0.0))
    for name, _, _ in answers[:2]:
        wanted += [(sib, Source.SIBLING, 0.0) for sib in FAMILY_OF.get(name, ())]
    if not sample.isascii():
        wanted += [(name, Source.LEGACY, 0.0) for name in LEGACY_CODECS]
    if b"\x1b" in sample:
        wanted.append(("iso2022_jp", Source.LEGACY, 0.0))
    candidates: list[Candidate] = []
    readings: dict[str, Reading] = {}
    by_text: dict[str, str] = {}
    key_of: dict[str, str] = {}
    seen: set[str] = set()
    for label, source, conf in wanted:
        decoded = widen(sample, label)
        name = decoded[1] if decoded else label
        if name in seen:
            continue
        seen.add(name)
        if decoded is None:
            candidates.append(Candidate(name, label, source, conf, False))
            continue
        text = decoded[0]
        key = by_text.get(text)
        candidate = Candidate(name, label, source, conf, True, 0.0, same_as=key)
        if key is None:
            key = by_text[text] = name
            readings[key] = Reading(text)
        readings[key].names.append(candidate)
        key_of[name] = key
        candidates.append(candidate)
    return candidates, readings, key_of


def _by_language(
    readings: dict[str, Reading],
    chunks: list[bytes],
    answers: list[Answer],
    order: dict[str, int],
    hint: tuple[str, ...],
) -> str:
    """Price every reading's decoding of the same stretches with the language models, set
    each reading's posterior, and return the key of the likeliest. hint names the languages
    the sample's ASCII words read as (`langmodel.rank_latin`)."""
    from textmend_server import langmodel

    detector = {a.codec: a.confidence for a in answers}
    totals: dict[str, float] = {}
    # First a look at the first stretches only: readings far behind there are not read on.
    head = langscoring.glance(chunks)
    keys = list(readings)
    if len(head) < len(chunks) and len(keys) > 2:
        glance = {key: langmodel.cost(stretch_text(head, key), hint).cost for key in keys}
        ahead = min(glance.values())
        # chardet's favourite is always read whole too: a page's first stretches can be a few
        # characters repeated (ctex's GBK dictionary opens with `评论` and `推论` four times
        # each, which read worse than windows-1251's `ЖАВЫ`; read whole, GBK is 760 nats ahead).
        favourite = answers[0].codec if answers else None
        keys = [
            key
            for key in keys
            if glance[key] <= ahead + LM_PRUNE_NATS
            or _declares(readings[key])
            or any(c.name == favourite for c in readings[key].names)
        ]
    for key in keys:
        reading = readings[key]
        scored = langmodel.cost(stretch_text(chunks, key), hint)
        reading.cost, reading.lang = scored.cost, scored.lang
        prior = langscoring.prior_nats(
            reading.names[0].name,
            max((detector.get(c.name, 0.0) for c in reading.names), default=0.0),
            _declares(reading),
        )
        totals[key] = scored.cost + prior
    shares = langscoring.posteriors(totals)
    for key, reading in readings.items():
        reading.posterior = shares.get(key, 0.0)
    return min(totals, key=lambda k: (totals[k], order[readings[k].names[0].name]))


def _declares(reading: Reading) -> bool:
    """Whether the caller or the document declares this reading's charset: such a reading is
    always read whole, however its first stretches read (a table of symbols can open a page
    that is Japanese further on)."""
    return any(c.source in (Source.MARKUP, Source.DECLARED) for c in reading.names)


def _name_rank(c: Candidate, position: int) -> tuple:
    """Sort key naming a reading by its most trusted candidate: declared, then the document's,
    then the family's first member (the windows codec), then the more common codec; ASCII
    before any codec it is a subset of."""
    family = FAMILY_OF.get(c.name)
    # A legacy codec of no family ranks as a family's second member: ISO-8859-4 giving a
    # Slovene stretch's ISO-8859-2 text must not name the reading and bring its rarity's
    # prior. UTF-8 ranks as a family's first (ASCII with an ESC in it reads alike in all).
    in_family = family.index(c.name) if family else (0 if c.name in UNICODE else 1)
    trusted = {Source.DECLARED: 0, Source.MARKUP: 1}.get(c.source, 2)
    if c.name == "ascii":
        return (trusted, -1, 0, position)
    return (trusted, in_family, popularity(c.name), position)


def _favourite(candidates: list[Candidate], key_of: dict[str, str]) -> str | None:
    """The reading to keep unless another is clearly better: the document's declaration if
    it decodes; else the detector's top answer, or the first of its siblings that decodes
    (windows-1250 with a byte it leaves undefined is ISO-8859-2 before it is anything else);
    else the first detector answer that decodes."""
    markup = next((c for c in candidates if c.source == Source.MARKUP), None)
    if markup is not None and markup.decodes:
        return key_of[markup.name]
    answers = [c for c in candidates if c.source == Source.DETECTOR]
    if not answers:
        return None
    for name in (answers[0].name, *FAMILY_OF.get(answers[0].name, ())):
        if name in key_of:
            return key_of[name]
    return next((key_of[c.name] for c in answers if c.decodes), None)


def _score_readings(readings: dict[str, Reading], sample: bytes) -> list[Reading]:
    """Score every distinct reading (in place) for implausibility and, where several CJK
    readings compete, CJK surprise; returns them.

    Single-byte codecs map bytes to characters one to one, so their non-ASCII words sit at the
    same byte spans in every such reading: those spans are found once (through latin-1) and
    only their bytes are decoded per codec.
    """
    distinct = list(readings.values())
    if len(distinct) < 2:
        return distinct
    byte_words: bytes | None = None
    for key, reading in readings.items():
        if key not in MULTIBYTE and key not in UNICODE and sample:
            if byte_words is None:
                byte_words = foreign_words(sample.decode("latin-1")).encode("latin-1")
            score = words_implausibility(byte_words.decode(key, "replace"))
        else:
            score = implausibility(reading.text)
        score += SHIFT_CODE_WEIGHT * shift_codes(reading.text)
        reading.implausibility = round(score, 2)
    cjk = [r for r in distinct if has_cjk(r.text)]
    if len(cjk) > 1:
        for reading in cjk:
            reading.cjk = round(cjk_surprise(reading.text), 2)
        floor = min(r.cjk for r in cjk)
        # Only the excess over the best CJK reading counts, in implausibility units.
        for reading in cjk:
            reading.cjk = round(max(0.0, reading.cjk - floor - CJK_MARGIN) * CJK_WEIGHT, 2)
    return distinct


def _best(readings: dict[str, Reading], standing: str | None, order: dict[str, int]) -> str:
    """The key of the reading with the lowest implausibility (CJK surprise included), ties to
    the more trusted; the detector's favourite (standing) unless it is MARGIN worse."""

    def total(key: str) -> float:
        r = readings[key]
        return r.implausibility + r.cjk

    def prior(key: str) -> float:
        c = readings[key].names[0]
        return _prior(c, order[c.name])

    ranked = sorted(readings, key=lambda k: (round(total(k), 1), prior(k)))
    top = ranked[0]
    if standing is None or top == standing:
        return top
    if total(standing) - total(top) > MARGIN:
        return top
    return standing


def _prior(candidate: Candidate, rank: int) -> float:
    """Smaller is more trusted, among readings that score alike (see `DECLARED_TRUST`)."""
    base = {Source.DECLARED: -DECLARED_TRUST, Source.MARKUP: -MARKUP_TRUST}.get(
        candidate.source, 0.0
    )
    return (
        base
        + rank
        - CONFIDENCE_TRUST * candidate.confidence
        + popularity(candidate.name) / POPULARITY_SCALE
    )


def _confidence(winner: Candidate, best: Reading, readings: dict[str, Reading]) -> float:
    """Confidence in [0, 1]: the source's own, raised by how clearly the reading beat the rest
    (see `ONLY_READING`)."""
    if len(readings) == 1:
        floor = ONLY_READING if winner.source != Source.SIBLING else ONLY_SIBLING
        return round(max(winner.confidence, floor), 3)
    others = [r.implausibility + r.cjk for r in readings.values() if r is not best]
    gap = min(others) - (best.implausibility + best.cjk) if others else 0.0
    margin = 1.0 - math.exp(-max(gap, 0.0) / LEAD_SCALE)
    return round(max(winner.confidence, margin, MIN_CONFIDENCE), 3)
