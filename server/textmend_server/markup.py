"""Leaked HTML in plain text: tags and entities, removed only where the document shows it leaked.

Text that looks like markup is usually text: placeholders (`--format=<style>`, `<I>`),
generics (`vector<T>`), addresses (`<a at example.org>`), explanations of escaping (`&` is
written `&amp;`), Markdown's inline HTML (`2<sup>32</sup>`), roff and code. A tag or entity
is deleted only when the *document* carries evidence that markup leaked into it:

- a closing tag that lost its `<` to byte damage (`?/p>` after a CJK byte slip);
- an entity escaped more than once (`&amp;amp;`, `&amp;#8217;`);
- a block's closing tag glued to the end of a line whose element never opens anywhere in the
  document (`End of paragraph.</p>`): what an extractor leaves when it strips half the markup;
- a reference to a character beyond ASCII used as a letter inside a word (`It&#8217;s`,
  `na&iuml;ve`), or to a character the text also writes directly (`&#8217;` beside `’`),
  elsewhere than where it glosses the reference (`&aacute; -> á`): one text does not spell a
  character two ways on purpose, nor a word with markup.

With no such evidence, markup-shaped text is reported (`flag`) when it has the shape of real
markup (paired tags, closing tags, tags with attributes, entities), and left alone when it has
the shape of a placeholder. In documents whose format itself uses or discusses markup
(Markdown, roff, code fences or code spans, HTML sent as plain text) nothing is removed.

`markup_evidence` reads a whole document once; the finders judge each candidate against it, so
a block of a long document is judged by the document it belongs to.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from enum import Enum
from html.entities import html5

from textmend_server.edits import Proposal
from textmend_server.policy import Category

# HTML's common elements: the names a leaked tag carries. Only names HTML defines, so `a < b
# > c`, `x <= y`, `<file>` and `<transport>` never match.
_TAG_NAMES = (
    "a|abbr|address|article|aside|b|blockquote|body|br|caption|center|cite|code|dd|div|dl|dt|"
    "em|figcaption|figure|font|footer|h[1-6]|head|header|hr|html|i|img|li|link|meta|nav|ol|p|"
    "pre|q|s|script|section|small|span|strong|style|sub|sup|table|tbody|td|tfoot|th|thead|title|"
    "tr|tt|u|ul"
)
# Elements that never take a closing tag (HTML's void elements among the names above).
VOID_ELEMENTS = frozenset({"br", "hr", "img", "link", "meta"})
# Elements whose closing tag ends a block of text: the tags an extractor leaves at line ends.
BLOCK_ELEMENTS = frozenset(
    {"p", "div", "li", "tr", "td", "th", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6"}
    | {"ul", "ol", "table", "blockquote", "pre", "section", "article", "header", "footer"}
)
# Tags whose removal is surest (`BLOCK_TAG_CONFIDENCE`): block elements and line breaks.
_LINE_BREAKING = BLOCK_ELEMENTS | {"br"}


def _build_tag_regex() -> re.Pattern[str]:
    """Whole tags of HTML's common elements, and closing-tag fragments that lost their `<`."""
    tag = rf"<(?P<tag>/?(?:{_TAG_NAMES}))(?P<attrs>\s[^<>]{{0,300}}?)?\s*/?>"
    # The fragment's `/` comes before its look-behind, so that both branches start with a
    # literal and the search skips from one `<` or `/` to the next (4× faster on prose).
    fragment = rf"/(?<![<\w/]/)(?P<frag>{_TAG_NAMES})>"
    return re.compile(rf"{tag}|{fragment}", re.IGNORECASE)


TAG_RE = _build_tag_regex()
# The start of a whole tag of TAG_RE (`<`, `/` or not, a name, then the blank, `/` or `>` every
# tag goes on with), and a fragment without the look-behind: what `may_hold_tags` looks for.
_TAG_START = re.compile(rf"</?(?:{_TAG_NAMES})[\s/>]", re.IGNORECASE)
_FRAGMENT = re.compile(rf"/(?:{_TAG_NAMES})>", re.IGNORECASE)
# The longest fragment `/name>`: every name of _TAG_NAMES (h[1-6] is two code points) and the
# `/` and `>` around it.
_FRAGMENT_LONGEST = max(len(n) for n in _TAG_NAMES.replace("h[1-6]", "h1").split("|")) + 2
# Above this many `<` and `>` in a text, `may_hold_tags` runs one regex search over it rather
# than a look at each: measured on the clean English corpus of bench/throughput.py, one search
# of a 5 KB document costs 25-30 µs, a look at one `<` or `>` 0.35-0.75 µs, so the two cost
# about the same at 64 (a 5 KB document there has 8 or 9).
TAG_SIGNS_LOOKED_AT = 64
_TAG_HINT = re.compile(f"{_TAG_START.pattern}|{_FRAGMENT.pattern}", re.IGNORECASE)
# Attributes as HTML writes them: `name`, `name=value`, `name="value"`, `name='value'`, and
# the quotes escaped as a string literal holding HTML writes them (`CITE=\\"x\\"` in Ruby's
# CGI examples: read as no tag, the opener left its `</BLOCKQUOTE>` stray, the evidence that
# took every tag of the document's examples).
_ATTRIBUTES = re.compile(
    r"(?:\s+[A-Za-z_:][-\w:.]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|\\\"[^\"]*\\\"|\\'[^']*\\'"
    r"|[^\s\"'=<>`]+))?)+\s*/?",
)
# Entities, also escaped more than once (`&amp;amp;`); names are checked against HTML5's list.
ENTITY_RE = re.compile(
    r"&(?:amp;){0,4}(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
)
_WHOLE_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")

# What precedes a fragment whose `<` a decoder swallowed: the `?` or U+FFFD a lossy decoder
# leaves, or the (wrong) character the `<` byte became part of, which is beyond ASCII.
_DAMAGE_BEFORE = re.compile(r"[?\ufffd\u0080-\U0010ffff]")
# roff source (man pages): a request line, a comment, or a font escape.
ROFF_SOURCE = re.compile(r"^\.(?:TH|SH|SS|PP|TP|IP|B|I|BR|IR|\\\")\b|\\f[BIRP]", re.M)
# A subtitle cue's start or end time: SubRip's `00:00:01,000`, WebVTT's `00:01.000`.
_CUE_TIME = r"(?:\d{1,2}:)?\d{2}:\d{2}[,.]\d{3}"
# Formats that write markup on purpose, or write about it. Each is a cheap whole-text test.
_FORMAT_SIGNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("code fences", re.compile(r"^ {0,3}(?:```|~~~)", re.MULTILINE)),
    ("code spans with markup in them", re.compile(r"`[^`\n]{0,80}[<&][^`\n]{0,80}`")),
    ("roff source", ROFF_SOURCE),
    ("POD source", re.compile(r"^=(?:pod|head[1-6]|item|over|begin|for|encoding)\b", re.M)),
    (
        "program source",
        re.compile(r"^(?:package [\w.]+;?|import [\w.\"(]|func |def \w|using namespace )", re.M),
    ),
    # JavaScript and TypeScript (a sidebar script building its HTML in strings), and a
    # component's sections (a Vue file's `<template>` and `<script>`).
    (
        "script source",
        re.compile(
            r"^[ \t]*(?:export (?:default|const|function|class)\b|module\.exports\b"
            r"|function \w+\s*\(|(?:const|let|var) \w+ = )|^</?(?:template|script|style)\b",
            re.M,
        ),
    ),
    # Emacs Lisp (Org's exporter documents `\alpha` as `&alpha;`), PHP (phpMyAdmin lists
    # language names as character references) and Vim script (a syntax file's `\out{&alpha;}`).
    (
        "Lisp source",
        re.compile(r"^\((?:defun|defvar|defcustom|defconst|defmacro|require|provide) ", re.M),
    ),
    ("PHP source", re.compile(r"\A\s*<\?php\b|^namespace [\w\\]+;", re.M)),
    # Localisation files, Java properties and Fluent (`key = value`, three lines in a row):
    # their values are what an application inserts, markup and references included
    # (Firefox's `player.infiniteIterationCount = &#8734;`, `<a data-l10n-name="…">`).
    (
        "key = value data",
        re.compile(r"(?:^[\w.\-]+[ \t]*=[ \t]*[^\n]*\n){3}", re.M),
    ),
    # gettext catalogues: their strings are what a program shows, markup included (GTK's
    # Pango `<b>_Name</b>`, VLC's `<i>Main Controls</i>`); one over-escaped string in a
    # catalogue had every other string's tags removed.
    ("gettext catalogue", re.compile(r'^msg(?:id|str|ctxt)(?:_plural|\[\d+\])? "', re.M)),
    ("Vim script", re.compile(r"^[ \t]*(?:syn(?:tax)? (?:keyword|match|region|cluster) )", re.M)),
    ("Markdown headings", re.compile(r"^#{1,6} \S|^(?:=+|-+)[ \t]*$", re.M)),
    ("C or C++ source", re.compile(r"^[ \t]*#[ \t]*(?:include|define|ifn?def|pragma)\b", re.M)),
    ("an HTML or XML document", re.compile(r"\A\s*(?:<!DOCTYPE|<\?xml|<html\b)", re.I)),
    # Server-side includes: a template's source (Apache's error pages, `<!--#set var=… -->`).
    ("server-side include directives", re.compile(r"<!--#[a-z]+\s")),
    # JSON: its strings hold markup as data (MediaWiki's message files: `<strong>`, `&lt;`).
    ("JSON data", re.compile(r'\A\s*[\[{]\s*"[^"\n]*"\s*[:,\]]')),
    # A raw e-mail (mbox, .eml) carries its HTML part as it was sent: the part's header says
    # so (`Content-Type: text/html; charset=...` under a MIME boundary).
    ("a MIME part of type text/html", re.compile(r"^Content-Type:[ \t]*text/html\b", re.M | re.I)),
    # A DTD or entity file (DocBook's `entities.ent`: `<!ENTITY lowercase 'Aa&#192;&#224;…'>`),
    # also behind a listing's or a lexer's prefixes (` + <!ENTITY example "<p>…` in a test's
    # expected output of XML 1.0's Appendix D).
    (
        "SGML or XML declarations",
        re.compile(r"<!(?:ENTITY|ELEMENT|ATTLIST|NOTATION)\s"),
    ),
    ("markup quoted as a literal", re.compile(r"[\"'`]</?[A-Za-z][\w-]*[^<>\"'`\n]{0,40}>[\"'`]")),
    # Subtitles (SubRip, WebVTT) style their cues with `<i>`, `<b>` and `<font color=…>`: a
    # cue's timing line, or a WebVTT header.
    (
        "subtitle cues",
        re.compile(rf"^(?:WEBVTT\b|{_CUE_TIME}[ \t]+-->[ \t]+{_CUE_TIME})", re.M),
    ),
)


def in_code_span(text: str, start: int, end: int, back: int, ahead: int) -> bool:
    """Whether text[start:end] stands inside a Markdown code span: an odd number of backticks
    before it on its line, counted from the line's start (from a point inside the line an
    even number looks odd) but at most `back` characters back, and one after it on its line
    within `ahead` characters.

    >>> in_code_span("a `b` c `d` e", 9, 10, 400, 400), in_code_span("a `b` c d", 8, 9, 400, 400)
    (True, False)
    """
    low = max(0, start - back)
    line_start = text.rfind("\n", low, start) + 1 or low
    line_end = text.find("\n", end, end + ahead)
    if line_end < 0:
        line_end = min(len(text), end + ahead)
    return text.count("`", line_start, start) % 2 == 1 and text.find("`", end, line_end) >= 0


# The end of a line, after optional blanks.
_LINE_END = re.compile(r"[ \t]*(?:\r?\n|\Z)")
# A document whose tags cover more than this share of its characters is markup, not prose
# with a leak. Chosen: a leaked `</p>` per paragraph of a few hundred characters is about 1%,
# while a page of HTML is mostly tags (36 pages of Python's HTML library documentation in the
# real corpus: 39% at the least, 74% the median).
MARKUP_DENSITY = 0.05
# ... and there are at least this many of them: a one-line leak (`done</p>`) is dense too.
# A text that opens with a block element's start tag is a page or a template (CUPS's `<H2
# CLASS="title">…`, sent as plain text) however few tags it has: 20 such templates lost their
# paired tags and kept their unpaired `<P>`.
MARKUP_DENSITY_MIN_TAGS = 10
_OPENS_WITH_A_TAG = re.compile(r"\s*<([A-Za-z][\w-]*)(?:\s[^<>]*)?>")


class Tier(Enum):
    """What a markup-shaped candidate becomes in this document."""

    FIX = "fix"  # the document shows that markup leaked: repair it
    FLAG = "flag"  # it has markup's shape but nothing shows it leaked: report, change nothing
    SKIP = "skip"  # text: a placeholder, a generic, code, or markup the format uses on purpose


@dataclass(frozen=True)
class MarkupEvidence:
    """What one whole document shows about the markup-shaped text in it.

    `leaks` name the evidence that markup leaked; `format_signs` name what shows the format
    writes markup on purpose. Element name sets tell the finders which tags pair up.
    """

    leaks: tuple[str, ...] = ()
    format_signs: tuple[str, ...] = ()
    openers: frozenset[str] = field(default_factory=frozenset)
    closers: frozenset[str] = field(default_factory=frozenset)

    @property
    def leaked(self) -> bool:
        """Whether the document shows leaked markup and nothing says it is markup on purpose."""
        return bool(self.leaks) and not self.format_signs

    def remembering(self, earlier: MarkupEvidence | None) -> MarkupEvidence:
        """This evidence, plus the leaks an earlier version of the same document showed:
        removing the glued `</p>` that proved a leak does not make the leak unproven."""
        if earlier is None or not earlier.leaks:
            return self
        leaks = self.leaks + tuple(x for x in earlier.leaks if x not in self.leaks)
        return MarkupEvidence(leaks, self.format_signs, self.openers, self.closers)

    def judges_like(self, other: MarkupEvidence) -> bool:
        """Whether every candidate gets the same tier under both (reasons may differ)."""
        return (
            self.leaked == other.leaked
            and bool(self.format_signs) == bool(other.format_signs)
            and self.openers == other.openers
            and self.closers == other.closers
        )

    def describe(self) -> str:
        """The evidence in words, for an edit's reason."""
        if self.format_signs:
            return "the document writes markup on purpose (" + ", ".join(self.format_signs) + ")"
        if self.leaks:
            return "the document shows leaked markup: " + "; ".join(self.leaks)
        return "nothing else in the document shows that markup leaked"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _tag_is_wellformed(m: re.Match[str]) -> bool:
    """Whether a tag's attributes are HTML's: `<a at b.c>` (an address) is not a tag."""
    attrs = m.group("attrs")
    if not attrs or not attrs.strip() or attrs.strip() == "/":
        return True
    return _ATTRIBUTES.fullmatch(attrs) is not None and "=" in attrs


def _is_generic(text: str, m: re.Match[str]) -> bool:
    """`vector<b>`, `declval<U>()`, `char_t<S>>`: a one-letter name glued to an identifier."""
    name = m.group("tag")
    if name is None or len(name) != 1 or m.start() == 0:
        return False
    before = text[m.start() - 1]
    return before.isalnum() or before in "_:"


def markup_evidence(text: str) -> MarkupEvidence:
    """Read a whole document for evidence that tag- and entity-shaped text in it leaked.

    >>> markup_evidence("End of paragraph.</p>").leaked
    True
    >>> markup_evidence("Use --format=<style> or <b>bold</b>.").leaked
    False
    """
    if "<" not in text and ">" not in text and "&" not in text:
        return MarkupEvidence()
    openers: set[str] = set()
    closers: set[str] = set()
    glued_closers: list[str] = []
    fragments = 0
    tag_chars = 0
    tags = 0
    if ">" in text:
        for m in TAG_RE.finditer(text):
            if m.group("frag"):
                if m.start() > 0 and _DAMAGE_BEFORE.match(text, m.start() - 1):
                    fragments += 1
                continue
            if not _tag_is_wellformed(m) or _is_generic(text, m):
                continue
            tag_chars += m.end() - m.start()
            tags += 1
            name = m.group("tag").lower()
            if name.startswith("/"):
                closers.add(name[1:])
                if (
                    name[1:] in BLOCK_ELEMENTS
                    and m.start() > 0
                    and not text[m.start() - 1].isspace()
                    and text[m.start() - 1] not in "\"'`"
                    and _LINE_END.match(text, m.end())
                ):
                    glued_closers.append(name[1:])
            else:
                openers.add(name)
    multi = 0
    written_both_ways = 0
    in_words = 0
    # Where each character referenced is first and last written directly (-1: nowhere): one
    # search each way per character, however many references name it.
    written: dict[str, tuple[int, int]] = {}
    if "&" in text:
        for m in ENTITY_RE.finditer(text):
            unescaped = unescape_entity(m.group())
            if unescaped is None:
                continue
            value, layers = unescaped
            if layers > 1:
                if not _in_a_string(text, m.start(), m.end()):
                    multi += 1
            elif not value.isascii() and not _quoted(text, m.start(), m.end()):
                if value not in written:
                    written[value] = (text.find(value), text.rfind(value))
                if _written_apart(text, m.start(), m.end(), value, written[value]):
                    written_both_ways += 1
                elif _glued_to_a_word(text, m.start(), m.end()):
                    in_words += 1
    stray = [name for name in glued_closers if name not in openers]
    leaks = []
    if fragments:
        leaks.append(_plural(fragments, "closing tag") + " that lost the `<` to byte damage")
    if multi:
        leaks.append(_plural(multi, "entity") + " escaped more than once")
    if stray:
        leaks.append(
            _plural(len(stray), "closing tag")
            + f" ending a line whose element never opens (</{stray[0]}>)"
        )
    if in_words:
        leaks.append(
            _plural(in_words, "character reference") + " standing for a letter inside a word"
        )
    if written_both_ways:
        leaks.append(
            _plural(written_both_ways, "character reference")
            + " to a character the text also writes directly"
        )
    signs = [name for name, sign in _FORMAT_SIGNS if sign.search(text)]
    dense = tag_chars > MARKUP_DENSITY * len(text)
    opener = _OPENS_WITH_A_TAG.match(text)
    if dense and (
        tags >= MARKUP_DENSITY_MIN_TAGS or (opener and opener.group(1).lower() in BLOCK_ELEMENTS)
    ):
        signs.append("tags are a large share of the text")
    return MarkupEvidence(tuple(leaks), tuple(signs), frozenset(openers), frozenset(closers))


# How far from a character reference its gloss is looked for, on its line and the next: a
# table's row (`&AElig;   0xC6   Æ`, w3m's entity list) or a comment's `&aacute; -> á`.
GLOSS_REACH = 200


def _written_apart(text: str, start: int, end: int, value: str, where: tuple[int, int]) -> bool:
    """Whether text also writes value, the character text[start:end] references, directly
    (first and last at `where`, -1 if nowhere), and not on the reference's line or the line
    after it. There it glosses the reference, which says nothing of a leak: `&aacute; -> á`
    in an input method's comment, a tool's output showing `Decimal: &#8364;` above `€`, an
    export table listing `"&alpha;" "α"`, an entity table's rows (one character may be
    listed under several names).

    >>> _written_apart("E.g.: &aacute; -> á", 6, 14, "á", (18, 18))
    False
    >>> _written_apart("It&#8217;s here.\\nAnd here\\nit’s written.", 2, 9, "’", (28, 28))
    True
    >>> _written_apart("&Bernoullis; ℬ\\n&Bscr; ℬ", 15, 21, "ℬ", (13, 22))
    False
    """
    first, last = where
    if first < 0:
        return False
    line_start = text.rfind("\n", max(0, start - GLOSS_REACH), start) + 1
    line_end = text.find("\n", end, end + GLOSS_REACH)
    after = -1 if line_end < 0 else text.find("\n", line_end + 1, line_end + 1 + GLOSS_REACH)
    near_from = max(line_start, start - GLOSS_REACH)
    near_to = min(len(text), end + GLOSS_REACH) if after < 0 else after
    if text.find(value, near_from, near_to) >= 0:
        return False  # glossed where it is referenced
    return first < near_from or last >= near_to


def _glued_to_a_word(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] has letters on both sides: used as a letter of a word
    (`It&#8217;s`, `na&iuml;ve`), not named in a sentence about references (`write &eacute;
    for é`) nor listed in a test of them (`&#x2011;&#X2011;json`)."""
    return 0 < start and end < len(text) and text[start - 1].isalpha() and text[end].isalpha()


# Characters `_in_a_string` reads each side of a reference on its line: a quoted example is a
# line of code (so a document of a few long lines costs no more than one of short ones).
STRING_REACH = 200


def _in_a_string(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] stands inside a double-quoted string on its line: an odd number
    of `"` before it on the line, and one after it. A reference escaped twice there is a
    program's output quoted as a literal (REXML's documentation of its `:raw` option:
    `b.to_s # => "<b>1 &amp;gt; 0</b>"`), not evidence that the document's markup leaked.

    >>> t = 'b.to_s # => "<b>1 &amp;gt; 0</b>"'
    >>> _in_a_string(t, 17, 25), _in_a_string("1 &amp;gt; 0", 2, 10)
    (True, False)
    """
    reach = max(0, start - STRING_REACH)
    line_start = text.rfind("\n", reach, start) + 1
    if line_start == 0 and reach > 0:
        return False  # a line longer than a quoted example's: the old evidence stands
    line_end = text.find("\n", end, end + STRING_REACH)
    line_end = min(len(text), end + STRING_REACH) if line_end < 0 else line_end
    return text.count('"', line_start, start) % 2 == 1 and '"' in text[end:line_end]


def _quoted(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] stands alone between quotes: a literal, as in `"&quot;"`."""
    return (
        start > 0 and end < len(text) and text[start - 1] in "\"'`" and text[end] == text[start - 1]
    )


def unescape_entity(entity: str) -> tuple[str, int] | None:
    """The text an entity stands for and how many times it was escaped, or None if unknown.

    >>> unescape_entity("&amp;amp;lt;"), unescape_entity("&bogus;")
    (('<', 3), None)
    """
    current, layers = entity, 1
    while current.startswith("&amp;") and len(current) > 5:
        current, layers = "&" + current[5:], layers + 1
    if not _WHOLE_ENTITY.fullmatch(current):
        return None
    if not current.startswith("&#") and current[1:] not in html5:
        return None
    value = html.unescape(current)
    if value == current or not (value.isprintable() or value in "\n\t"):
        return None
    return value, layers


def _tiered(
    start: int,
    end: int,
    replacement: str,
    what: str,
    tier: Tier,
    confidence: float,
    evidence: MarkupEvidence,
) -> Proposal:
    reason = f"{what}; {evidence.describe()}"
    if tier is Tier.FIX:
        return Proposal(start, end, replacement, Category.MARKUP_LEAK, reason, confidence)
    # Reported with the same suggestion, but never applied: the evidence is too weak.
    return Proposal(
        start,
        end,
        replacement,
        Category.MARKUP_LEAK,
        reason,
        round(confidence / 2, 2),
        flag_only=True,
    )


def may_hold_entities(text: str) -> bool:
    """Whether `find_entity_leaks` can find anything in text or in any part of it: False
    proves it finds nothing, since every leak it reports is an `ENTITY_RE` match (a pattern
    without anchors or look-arounds, so a match in a part is a match in the whole).

    >>> may_hold_entities("AT&T and R&D"), may_hold_entities("caf&eacute;")
    (False, True)
    """
    return "&" in text and ENTITY_RE.search(text) is not None


def may_hold_tags(text: str) -> bool:
    """Whether `find_tag_leaks` can find anything in text or in any part of it: False proves it
    finds nothing. Every candidate it reports is a `TAG_RE` match: a whole tag starts with
    what `_TAG_START` matches, a fragment is a `_FRAGMENT` match (TAG_RE's fragment less its
    look-behind) ending at a `>`; neither pattern has anchors or look-arounds, so what matches
    in a part of the text (a block, a window) matches in the whole. Looks at each `<` and `>`
    rather than searching (links in prose, `<https://…>`, are common and rarely tags).

    >>> may_hold_tags("see <https://example.org/>"), may_hold_tags("done.</p>")
    (False, True)
    >>> may_hold_tags("x ?/P> y"), may_hold_tags("a <b\\nclass=x>")
    (True, True)
    """
    if ">" not in text:  # every tag and fragment ends with one
        return False
    if text.count("<") + text.count(">") > TAG_SIGNS_LOOKED_AT:
        return _TAG_HINT.search(text) is not None
    at = text.find("<")
    while at != -1:
        if _TAG_START.match(text, at):
            return True
        at = text.find("<", at + 1)
    at = text.find(">")
    while at != -1:
        if _FRAGMENT.search(text, max(0, at + 1 - _FRAGMENT_LONGEST), at + 1):
            return True
        at = text.find(">", at + 1)
    return False


def find_entity_leaks(text: str, evidence: MarkupEvidence | None = None) -> list[Proposal]:
    """HTML entities left as text in plain text, also escaped several times.

    `evidence` is the whole document's (`markup_evidence`); without it, `text` is taken as the
    whole document. Runs before the mojibake repair, which can then see the characters they
    stand for (`10Î&frac14;s` is `10Î¼s`, which is `10μs`).

    >>> [(p.replacement, p.flag_only) for p in find_entity_leaks("Fish &amp;amp; chips")]
    [('&', False)]
    >>> [(p.replacement, p.flag_only) for p in find_entity_leaks("Use &gt; and &amp;, AT&T.")]
    [('>', True), ('&', True)]
    """
    if "&" not in text:
        return []
    if evidence is None:
        evidence = markup_evidence(text)
    proposals: list[Proposal] = []
    for m in ENTITY_RE.finditer(text):
        unescaped = unescape_entity(m.group())
        if unescaped is None:
            continue
        value, layers = unescaped
        if evidence.format_signs or _quoted(text, m.start(), m.end()):
            continue  # `"&quot;"` in code, `&amp;` in a page about escaping: text
        tier = Tier.FIX if evidence.leaked else Tier.FLAG
        what = "HTML entity left as text" + (f", escaped {layers} times" if layers > 1 else "")
        confidence = 0.9 if layers > 1 or "#" in m.group() else 0.85
        proposals.append(_tiered(m.start(), m.end(), value, what, tier, confidence, evidence))
    return proposals


def _tag_tier(text: str, m: re.Match[str], evidence: MarkupEvidence) -> Tier:
    """How far a tag or fragment candidate may go in this document."""
    if m.group("frag"):
        damaged = m.start() > 0 and _DAMAGE_BEFORE.match(text, m.start() - 1) is not None
        if evidence.format_signs:
            return Tier.FLAG if damaged else Tier.SKIP
        if evidence.leaked:
            return Tier.FIX if damaged else Tier.FLAG
        return Tier.SKIP
    if not _tag_is_wellformed(m) or _is_generic(text, m) or evidence.format_signs:
        return Tier.SKIP
    name = m.group("tag").lower()
    closing = name.startswith("/")
    element = name.lstrip("/")
    paired = element in (evidence.closers if not closing else evidence.openers)
    attributes = bool(m.group("attrs") and "=" in m.group("attrs"))
    if not closing and element not in VOID_ELEMENTS and not paired and not attributes:
        # `<title>`, `<I>`, `<style>` with no closing tag anywhere: a name, not markup.
        return Tier.FLAG if evidence.leaked else Tier.SKIP
    return Tier.FIX if evidence.leaked else Tier.FLAG


# How sure a tag removal is, given the document's evidence of leaked markup: a block
# element's tag (`</p>`, `<br>`) is almost never written as text in prose, an inline one
# (`<b>`, `<i>`) or a fragment more often is (placeholders, examples). Hand-set ranks.
BLOCK_TAG_CONFIDENCE = 0.9
TAG_CONFIDENCE = 0.8


def find_tag_leaks(text: str, evidence: MarkupEvidence | None = None) -> list[Proposal]:
    """HTML tags and tag fragments left in plain text.

    `<br>` becomes a line break; other tags and fragments go, when `evidence` (the whole
    document's; without it `text` is taken as the whole document) shows markup leaked. Runs
    after the CJK repairs, so that a byte-phase slip that swallowed the `<` of `</p>` takes its
    `/p>` with it first.

    >>> [(p.start, p.flag_only) for p in find_tag_leaks("Some <b>bold</b> text.</p>")]
    [(5, False), (12, False), (22, False)]
    >>> [p.flag_only for p in find_tag_leaks("2<sup>32</sup>, <title>, vector<b>, <a at b.c>")]
    [True, True]
    """
    if ">" not in text:  # every tag and fragment ends with one
        return []
    if evidence is None:
        evidence = markup_evidence(text)
    proposals: list[Proposal] = []
    for m in TAG_RE.finditer(text):
        tier = _tag_tier(text, m, evidence)
        if tier is Tier.SKIP:
            continue
        if m.group("tag"):
            name = m.group("tag")
            replacement = "\n" if name.lower() in ("br", "/br") else ""
            what = f"HTML <{name}> tag left in plain text"
            block = name.lower().lstrip("/") in _LINE_BREAKING
            confidence = BLOCK_TAG_CONFIDENCE if block else TAG_CONFIDENCE
        else:
            replacement = ""
            what = f"fragment of an HTML </{m.group('frag')}> tag that lost its <"
            confidence = TAG_CONFIDENCE
        proposals.append(_tiered(m.start(), m.end(), replacement, what, tier, confidence, evidence))
    return proposals
