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

from textmend_server.cjk.lm import CharModel, get_model
from textmend_server.cjk.scripts import HAN_RANGES, char_class
from textmend_server.edits import Proposal
from textmend_server.policy import Category

# Runs of Han characters (with CJK punctuation inside), and a trailing U+FFFD where the
# wrong decoder gave up on an odd last byte.
_HAN_RUN_RE = re.compile(rf"[{HAN_RANGES}][{HAN_RANGES}\u3000-\u303f\uff01-\uff65]*\ufffd?")
# Latin-1/cp1252-looking runs: high characters, possibly with single ASCII bytes between them
# (the second byte of a Shift-JIS pair can be ASCII).
_CP1252_EXTRA = "\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122"
_HIGH = f"\u0080-\u00ff{_CP1252_EXTRA}"
_LATIN_RUN_RE = re.compile(rf"[{_HIGH}](?:[\x21-\x7e]?[{_HIGH}]){{2,}}")

# (read as, written in, language of the result)
_HAN_PAIRS = (("gbk", "utf-8", "zh"), ("big5", "gbk", "zh"), ("gbk", "big5", "zh"))
_LATIN_PAIRS = (
    ("cp1252", "shift_jis", "ja"),
    ("latin-1", "shift_jis", "ja"),
    ("cp1252", "euc_kr", "ko"),
    ("latin-1", "euc_kr", "ko"),
)
_NAMES = {"gbk": "GBK", "big5": "Big5", "utf-8": "UTF-8", "shift_jis": "Shift-JIS",
          "euc_kr": "EUC-KR", "cp1252": "cp1252", "latin-1": "Latin-1"}
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


def _complete_utf8(run: str, read_as: str, model: CharModel) -> str | None:
    """UTF-8 read as GBK with an odd byte count: the last byte was lost (U+FFFD); try each
    continuation byte and keep the one the model prefers."""
    try:
        raw = run[:-1].encode(_py(read_as))
    except UnicodeEncodeError:
        return None
    best: tuple[float, str] | None = None
    for b in range(0x80, 0xC0):
        try:
            cand = (raw + bytes((b,))).decode("utf-8")
        except UnicodeDecodeError:
            continue
        s = model.score(cand)
        if best is None or s > best[0]:
            best = (s, cand)
    return best[1] if best else None


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


def _han_runs(text: str) -> list[Proposal]:
    out = []
    model = get_model("zh")
    for m in _HAN_RUN_RE.finditer(text):
        run = m.group()
        if len(run) < 2 or _rare_count(run) < 2:
            continue
        kept_score = model.score(run.rstrip("\ufffd"))
        best: tuple[float, str, str, str] | None = None
        for read_as, written, _lang in _HAN_PAIRS:
            if run.endswith("\ufffd"):
                if written != "utf-8":
                    continue
                cand = _complete_utf8(run, read_as, model)
            else:
                cand = _redecode(run, read_as, written)
            if not cand or cand == run or not _mostly_cjk(cand, "zh"):
                continue
            gain = model.score(cand) - kept_score
            if best is None or gain > best[0]:
                best = (gain, cand, read_as, written)
        if best is None:
            continue
        gain, cand, read_as, written = best
        n = max(len(cand), 1)
        if gain < TOTAL_GAIN or gain / n < PER_CHAR_GAIN:
            continue
        conf = round(min(0.99, 1 - 2.718 ** (-gain / 15)), 3)
        reason = (
            f"{_NAMES[written]} bytes read as {_NAMES[read_as]}; re-decoded text scores "
            f"{gain:.1f} nats better under the Chinese character model"
        )
        out.append(Proposal(m.start(), m.end(), cand, Category.CJK_WRONG_CODEC, reason, conf))
    return out


def _latin_runs(text: str) -> list[Proposal]:
    out = []
    for m in _LATIN_RUN_RE.finditer(text):
        run = m.group()
        best: tuple[float, str, str, str, str] | None = None
        for read_as, written, lang in _LATIN_PAIRS:
            cand = _redecode(run, read_as, written)
            if not cand or not _mostly_cjk(cand, lang):
                continue
            model = get_model(lang)
            mean = model.score(cand) / len(cand)
            if best is None or mean > best[0]:
                best = (mean, cand, read_as, written, lang)
        if best is None or best[0] < MIN_MEAN_LOGP:
            continue
        mean, cand, read_as, written, lang = best
        conf = round(max(0.5, min(0.98, 1 + (mean - MIN_MEAN_LOGP) / 10 - 0.3)), 3)
        language = {"ja": "Japanese", "ko": "Korean"}[lang]
        reason = (
            f"{_NAMES[written]} bytes read as {_NAMES[read_as]}; re-decoded text averages "
            f"{mean:.1f} nats a character under the {language} character model"
        )
        out.append(Proposal(m.start(), m.end(), cand, Category.CJK_WRONG_CODEC, reason, conf))
    return out
