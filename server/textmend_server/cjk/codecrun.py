"""Runs of CJK text decoded with the wrong codec: `鏂囧瓧` for `文字` (UTF-8 read as GBK),
GBK read as Big5 and the reverse, Shift-JIS or EUC-KR read as cp1252 or Latin-1.

Each candidate run is re-encoded with the codec it was wrongly read with and decoded with the
one it was written in. The result is kept only when it decodes strictly (nothing invented) and
the character model of its language scores it clearly better than the run as it stands (for
Han-to-Han pairs), or scores it as ordinary text of its language (for Latin-1-looking runs,
which a CJK model cannot score). The pre-check is a compiled regex plus one `str.translate`, so
clean text costs a scan.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import pairwise

from textmend_server.cjk.lm import CharModel, get_model
from textmend_server.cjk.scripts import HAN_RANGES, char_class
from textmend_server.edits import Proposal
from textmend_server.policy import Category

# Runs of Han characters (with CJK punctuation inside), and a trailing U+FFFD where the
# wrong decoder gave up on an odd last byte.
# (a wrong decoder's output holds any character of the codec it used: kana, box drawing,
# Cyrillic, circled numbers), so a run goes on through every non-ASCII, non-space character.
_HAN_RUN_RE = re.compile(rf"[{HAN_RANGES}](?:[^\x00-\x7f\s]|[\x21-\x7e](?=[^\x00-\x7f\s]))*")
# Latin-1/cp1252-looking runs: high characters, possibly with single ASCII bytes between them
# (the second byte of a Shift-JIS pair can be ASCII).
_CP1252_EXTRA = (
    "\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122"
)
_HIGH = f"\u0080-\u00ff{_CP1252_EXTRA}\ufffd"
_LATIN_RUN_RE = re.compile(rf"[{_HIGH}](?:[\x21-\x7e]?[{_HIGH}]){{2,}}")

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
# Mean log-probability per character a re-decoded Latin-1-looking run needs to count as text.
MIN_MEAN_LOGP = -8.5


@lru_cache(maxsize=1)
def _common_han_table() -> dict[int, None]:
    """A str.translate table deleting every Han character the zh and ja word lists use often;
    what survives in a run is rare, which is what wrong-codec output is made of."""
    zh, ja = get_model("zh"), get_model("ja")
    keep: dict[int, None] = {}
    for model in (zh, ja):
        for ch, p in model._uni.items():
            if len(ch) == 1 and p > 2e-6:
                keep[ord(ch)] = None
    for k, v in zh._simplify.items():
        if len(v) == 1 and ord(v) in keep:
            keep[k] = None
    return keep


def _rare_count(run: str) -> int:
    return sum(1 for ch in run.translate(_common_han_table()) if char_class(ch) == "han")


def _py(name: str) -> str:
    return _PY.get(name, name)


def _redecode(run: str, read_as: str, written: str) -> str | None:
    """run re-encoded as read_as and decoded as written, strictly; a trailing U+FFFD stands
    for one lost byte, filled in by the caller."""
    try:
        return run.encode(_py(read_as)).decode(_py(written))
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


FILL_BEAM = 16
MAX_UNKNOWN = 6


def _fill_unknown(run: str, read_as: str, written: str, model: CharModel) -> str | None:
    """Re-decode a run in which the wrong decoder replaced bytes it could not read with
    U+FFFD (one byte each): a small beam fills each with the byte the model prefers, keeping
    only fillings that decode strictly."""
    pieces = run.split("\ufffd")
    if len(pieces) - 1 > MAX_UNKNOWN:
        return None
    try:
        raw = [p.encode(_py(read_as)) for p in pieces]
    except UnicodeEncodeError:
        return None
    beam: list[tuple[float, bytes]] = [(0.0, raw[0])]
    for piece in raw[1:]:
        grown: list[tuple[float, bytes]] = []
        for _, prefix in beam:
            for b in range(0x80, 0x100):
                data = prefix + bytes((b,)) + piece
                try:
                    decoded = data.decode(_py(written), errors="strict")
                except UnicodeDecodeError as e:
                    if e.start < len(data) - 4:
                        continue
                    decoded = data[: e.start].decode(_py(written))
                grown.append((model.score(decoded), data))
        grown.sort(key=lambda x: x[0], reverse=True)
        beam = grown[:FILL_BEAM]
    for _, data in beam:
        try:
            return data.decode(_py(written))
        except UnicodeDecodeError:
            continue
    return None


def _mostly_cjk(text: str, lang: str) -> bool:
    want = {"zh": ("han",), "ja": ("han", "kana"), "ko": ("hangul", "han")}[lang]
    n = sum(1 for ch in text if char_class(ch) in want)
    return n >= 2 and n >= 0.7 * len(text.replace(" ", ""))


def find_wrong_codec_runs(text: str) -> list[Proposal]:
    """Runs decoded with the wrong CJK codec, with the run re-decoded as its repair.

    >>> [(p.start, p.end, p.replacement) for p in find_wrong_codec_runs("標題:鏂囧瓧缂栫爜")]
    [(3, 9, '文字编码')]
    >>> find_wrong_codec_runs("文字编码是一个老问题。")
    []
    """
    out: list[Proposal] = []
    if _HAN_RUN_RE.search(text):
        out += _han_runs(text)
    if _LATIN_RUN_RE.search(text):
        out += _latin_runs(text)
    out.sort(key=lambda p: p.start)
    kept: list[Proposal] = []
    for p in out:
        if not kept or p.start >= kept[-1].end:
            kept.append(p)
    return kept


def _pieces(run: str) -> list[tuple[int, int]]:
    """Sub-runs worth re-decoding: the whole run, the stretches between its ASCII characters,
    and the stretch from its first to its last rare character (clean words often border a
    damaged run)."""
    cuts = [i for i, ch in enumerate(run) if ch < "\x80"]
    bounds = [-1, *cuts, len(run)]
    spans = {(0, len(run))}
    spans.update((a + 1, b) for a, b in pairwise(bounds) if b - a > 2)
    rare = [i for i, ch in enumerate(run) if ch == "\ufffd" or _rare_count(ch)]
    if rare:
        spans.add((rare[0], rare[-1] + 1))
        spans.add((rare[0], len(run)))
    return sorted(spans)


def _han_runs(text: str) -> list[Proposal]:
    out = []
    model, ja = get_model("zh"), get_model("ja")
    for m in _HAN_RUN_RE.finditer(text):
        whole = m.group()
        if len(whole) < 2 or _rare_count(whole) < 2:
            continue
        best: tuple[float, str, str, str, int, int] | None = None
        for a, b in _pieces(whole)[:12]:
            run = whole[a:b]
            if len(run) < 2 or _rare_count(run) + run.count("\ufffd") < 2:
                continue
            # The run as it stands, under whichever language reads it best (Japanese text
            # must not look like damaged Chinese for its kana).
            kept_score = max(model.score(run), ja.score(run))
            for read_as, written, _lang in _HAN_PAIRS:
                if "\ufffd" in run:
                    cand = _fill_unknown(run, read_as, written, model)
                else:
                    cand = _redecode(run, read_as, written)
                if not cand or cand == run or not _mostly_cjk(cand, "zh"):
                    continue
                gain = model.score(cand) - kept_score
                if gain / max(len(cand), 1) < PER_CHAR_GAIN:
                    continue
                if best is None or gain > best[0]:
                    best = (gain, cand, read_as, written, m.start() + a, m.start() + b)
        if best is None:
            continue
        gain, cand, read_as, written, start, end = best
        if gain < TOTAL_GAIN:
            continue
        conf = round(min(0.99, 1 - 2.718 ** (-gain / 15)), 3)
        reason = (
            f"{_NAMES[written]} bytes read as {_NAMES[read_as]}; re-decoded text scores "
            f"{gain:.1f} nats better under the Chinese character model"
        )
        out.append(Proposal(start, end, cand, Category.CJK_WRONG_CODEC, reason, conf))
    return out


def _latin_runs(text: str) -> list[Proposal]:
    out = []
    for m in _LATIN_RUN_RE.finditer(text):
        start, end = m.start(), m.end()
        best: tuple[float, str, str, str, str, int] | None = None
        ends = [end]
        if end < len(text) and "\x21" <= text[end] <= "\x7e":
            ends.append(end + 1)
        for (read_as, written, lang), stop in ((pair, e) for pair in _LATIN_PAIRS for e in ends):
            run = text[start:stop]
            if "\ufffd" in run:
                cand = _fill_unknown(run, read_as, written, get_model(lang))
            else:
                cand = _redecode(run, read_as, written)
            if not cand or not _mostly_cjk(cand, lang):
                continue
            model = get_model(lang)
            mean = model.score(cand) / len(cand)
            if best is None or mean > best[0]:
                best = (mean, cand, read_as, written, lang, stop)
        if best is None or best[0] < MIN_MEAN_LOGP:
            continue
        mean, cand, read_as, written, lang, end = best
        conf = round(max(0.5, min(0.98, 1 + (mean - MIN_MEAN_LOGP) / 10 - 0.3)), 3)
        language = {"ja": "Japanese", "ko": "Korean"}[lang]
        reason = (
            f"{_NAMES[written]} bytes read as {_NAMES[read_as]}; re-decoded text averages "
            f"{mean:.1f} nats a character under the {language} character model"
        )
        out.append(Proposal(start, end, cand, Category.CJK_WRONG_CODEC, reason, conf))
    return out
