"""What the language models read of a sample, and how their costs become a ranking.

The models (`langmodel`) price each candidate reading of the same bytes: the stretches of the
sample that hold non-ASCII bytes (`scored_bytes`), decoded with each candidate's codec
(`stretch_text`). A reading's total is its cost plus a prior (`prior_nats`: how common its
codec is, whether the detector or the document named it); totals become probabilities through
a tempered softmax (`posteriors`). A sample that lists characters one by one
(`character_list`) gives the models nothing to read, and its ranking is reported in doubt.
"""

from __future__ import annotations

import math
import re

from textmend_server.charsets import popularity

# Bytes of the sample the language models read: stretches between ASCII spaces and
# punctuation that hold non-ASCII bytes, from the start, until LM_BYTES; then, up to
# LM_BYTES_MAX, stretches holding a byte value not yet read (so two single-byte codecs that
# differ only on a byte the document uses once still read differently). A stretch longer than
# LM_PIECE is cut. 2 KB is about 300 words of Latin-script text or 1,000 CJK characters:
# measured on the benchmark's tune split, more bytes changed no whole-file answer.
LM_BYTES = 2048
LM_BYTES_MAX = 6144
LM_PIECE = 512
# The first look: readings more than LM_PRUNE_NATS behind the best on the first LM_GLANCE bytes
# are dropped (their share of the posterior would be below exp(−40 / TEMPERATURE), 2e-9).
LM_GLANCE = 256
LM_PRUNE_NATS = 40.0
# Bytes no multi-byte codec uses inside a character (below 0x40, digits aside: GB18030's
# four-byte sequences hold digits), so a stretch between them starts on a character boundary
# in every candidate codec.
# A stretch takes the ASCII word before and after it along (when a single space parts them),
# so that a reading putting one word of another script in a sentence (`utente и fatta`) is
# seen doing so. Without that word, a stretch starts where a run of its bytes does (the
# look-behind): tried at every byte of a long run without a non-ASCII byte, the pattern read
# the rest of the run each time, and 40 KB of letters without a space took 5 s (a Vim syntax
# file's 30,000-character line). A match found no earlier than before starts no differently.
_STRETCH = re.compile(
    rb"(?:[A-Za-z]{1,24} |(?<![\x30-\x39\x40-\xff]))"
    rb"[\x30-\x39\x40-\xff]*[\x80-\xff][\x30-\x39\x40-\xff]*"
    rb"(?: [A-Za-z]{1,24}(?![\x30-\x39\x40-\xff]))?"
)
_INSIDE = frozenset(range(0x30, 0x3A)) | frozenset(range(0x40, 0x100))


def scored_bytes(sample: bytes) -> list[bytes]:
    """The stretches of sample the language models read (see `LM_BYTES`).

    >>> scored_bytes("plain ascii, café crème 42 naïve".encode("latin-1"))
    [b'caf\\xe9', b'cr\\xe8me', b'na\\xefve']
    >>> scored_bytes("il file è danneggiato".encode("latin-1"))
    [b'file \\xe8 danneggiato']
    """
    out: list[bytes] = []
    size = 0
    seen: set[int] = set()
    end = 0
    for match in _STRETCH.finditer(sample):
        piece = match.group()[:LM_PIECE]
        out.append(piece)
        seen.update(piece)
        size += len(piece)
        end = match.end()
        if size >= LM_BYTES:
            break
    else:
        return out
    missing = [b for b in range(0x80, 0x100) if b not in seen]
    found = sorted(p for b in missing if (p := sample.find(bytes((b,)), end)) >= 0)
    for at in found:
        if at < end or size >= LM_BYTES_MAX or sample[at] in seen:
            continue
        start = at
        while start > max(0, at - LM_PIECE) and sample[start - 1] in _INSIDE:
            start -= 1
        match = _STRETCH.match(sample, start)
        if match is None:
            continue
        piece = match.group()[:LM_PIECE]
        out.append(piece)
        seen.update(piece)
        size += len(piece)
        end = match.end()
    return out


def stretch_text(chunks: list[bytes], codec: str) -> str:
    """The scored stretches decoded with codec, space-joined (a stretch cut at LM_PIECE may
    end inside a character: that character is left out)."""
    whole = [c for c in chunks if len(c) < LM_PIECE]
    cut = [c for c in chunks if len(c) >= LM_PIECE]
    text = b" ".join(whole).decode(codec, "replace") if whole else ""
    for c in cut:
        text += " " + c.decode(codec, "ignore")
    return text


# A priori cost of a reading, in nats, added to its language cost: the popularity rank of its
# codec on the web (`charsets.popularity`) times POPULARITY_NATS, less DETECTOR_NATS times the
# detector's confidence for its answers and MARKUP_NATS for a declaration (the caller's, or
# the document's own: `decoding.markup_charset`). The first two decide only between readings
# the language models price alike; set on the tune split. MARKUP_NATS was 6 (set with them);
# raised to 15, since a declaration that decodes is right far more often than a few stretches
# of symbols or isolated kana can say: at 6, Japanese javadoc pages declaring Shift_JIS (9 of
# one package) read as mac_cyrillic, and Emacs Lisp and LaTeX files declaring their coding were
# read otherwise (docs/real-text.md, the fourth set). A declaration whose reading
# is implausible is still judged on the bytes alone (`detection.DOUBT`), and a declared
# iso-8859-1 on a single word of Russian, Greek or Polish in its own code page is still
# overruled (tests/test_detection.py).
POPULARITY_NATS = 0.15
DETECTOR_NATS = 2.0
MARKUP_NATS = 15.0
# The posterior is a softmax of −(cost + prior) / TEMPERATURE. Letter-pair models treat the
# letters of a text as more independent than they are, which makes raw posteriors
# overconfident; TEMPERATURE flattens them. Fitted on the tune split so that readings given
# 0.9 or more are right at least 99.5% of the time.
TEMPERATURE = 2.0
# Readings at least this probable are reported as the alternatives to the chosen one (set by
# hand with the calibrated confidence, commit 95c353f).
RIVAL_SHARE = 0.01
# A text that lists characters one by one (a code page's table: `B0 <tab> ° <tab> DEGREE
# SIGN`) gives the language models no words to read: each character stands alone, and every
# code page's reading is a list of plausible characters. Recognised by its stretches: at least
# LIST_MIN of them, half or more (LIST_SHARE) a lone character, those nearly all different
# (LIST_DISTINCT of them; prose repeats its lone `è` or `и`) or, in a single-byte reading,
# repeated but of at least LIST_DISTINCT_COUNT kinds (a subtitle player's test file shows its
# code page's letters in pairs, `Ćć Ęę Łł Ńń Óó Śś Źź Żż`, cue after cue, and was read as Mac
# Cyrillic at 1.0: no prose has that many one-letter words of non-ASCII letters, and half its
# words among them; a CJK man page's roff source does set its characters one by one).
# Its decoding is reported with confidence at most LIST_CONFIDENCE (in doubt) and its rivals
# named, whatever the models say.
LIST_MIN = 3
LIST_SHARE = 0.5
LIST_DISTINCT = 0.8
LIST_DISTINCT_COUNT = 8
LIST_CONFIDENCE = 0.5
# Rivals named for a character list, likeliest first.
LIST_RIVALS = 3


def character_list(chunks: list[bytes], single_byte: bool = True) -> bool:
    """Whether the scored stretches are those of a list of characters (see `LIST_SHARE`), as
    read in a single-byte code page or (single_byte False) a CJK one.

    >>> character_list([b"\\xb0", b"\\xb1 DEGREE", b"\\xb2", b"\\xe9t\\xe9"])
    True
    >>> character_list([b"\\xe8", b"\\xe8", b"\\xe8", b"citt\\xe0"])
    False
    >>> pairs = [bytes((c, c + 0x20)) for c in range(0xc0, 0xc9)]
    >>> character_list(pairs * 3), character_list(pairs * 3, single_byte=False)
    (True, False)
    """
    lone = [m.group(1) for c in chunks if (m := _LONE.fullmatch(c))]
    if len(lone) < LIST_MIN or len(lone) < LIST_SHARE * len(chunks):
        return False
    kinds = len(set(lone))
    return kinds >= LIST_DISTINCT * len(lone) or (single_byte and kinds >= LIST_DISTINCT_COUNT)


# A stretch that is one character (one or two bytes, in any code page) standing alone, with
# the ASCII words `_STRETCH` takes along.
_LONE = re.compile(rb"(?:[A-Za-z]{1,24} )?([\x80-\xff]{1,2})(?: [A-Za-z]{1,24})?")


def glance(chunks: list[bytes]) -> list[bytes]:
    """The first stretches, up to `LM_GLANCE` bytes: what the first look reads."""
    head: list[bytes] = []
    for chunk in chunks:
        if sum(map(len, head)) >= LM_GLANCE:
            break
        head.append(chunk)
    return head


def prior_nats(codec: str, detector_confidence: float, declared: bool) -> float:
    """A reading's a priori cost in nats (see `POPULARITY_NATS`): its codec's popularity rank,
    less the detector's confidence in it and a document's or caller's declaration of it."""
    prior = POPULARITY_NATS * popularity(codec)
    prior -= DETECTOR_NATS * detector_confidence
    if declared:
        prior -= MARKUP_NATS
    return prior


def posteriors(totals: dict[str, float]) -> dict[str, float]:
    """Each reading's probability from its total cost in nats (cost plus prior): a softmax of
    −total / `TEMPERATURE`.

    >>> {k: round(p, 3) for k, p in posteriors({"a": 10.0, "b": 12.0}).items()}
    {'a': 0.731, 'b': 0.269}
    """
    floor = min(totals.values())
    weights = {k: math.exp(-(t - floor) / TEMPERATURE) for k, t in totals.items()}
    norm = sum(weights.values())
    return {k: w / norm for k, w in weights.items()}
