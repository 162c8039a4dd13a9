"""What real clean files look like, through the real server: text that only looks like damage
comes back untouched, and the damage it resembles is still repaired (issue 15's examples).

Each example is a line found in a real file (release notes, man pages, C++ headers, Go source,
copyright files, Markdown, HTML tutorials, translation catalogues); the rule they test is the
service's first one: a clean document comes back untouched, and where the evidence is weak a
finding is reported instead of an edit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textmend.v1 import textmend_pb2
from textmend_client import TextMendClient
from textmend_client.cli import main

CLEAN = [
    "Show merges with --diff-merges=<style>, where <style> is one of off, on, first-parent.",
    "If a package <I> is interested in the trigger, dpkg runs it.",
    ".TH GIT 1\n.SH NAME\nSee \\fI<section>\\fR for the list of sections.\n",
    "Connect to <transport>::<address> and retry.",
    "std::vector<b> v;\ntemplate <class S> struct char_t<S>> {};\n"
    "using R = decltype(std::declval<U>());",
    'out := bytes.ReplaceAll(in, []byte("&quot;"), []byte("\\""))',
    "Copyright 2019 Ander Juaristi <a at juaristi.eus>",
    "The <title> element goes inside <head>.",
    "# Limits\n\nA file may hold up to 2<sup>32</sup> bytes.<br>\nSee [the spec](https://x.org).\n",
    "In HTML the character & is written &amp; and < is written &lt;.",
    "Use &gt; and &lt;.",
    # Rows of `=` and a stock sentence, repeated.
    ("=" * 72 + "\nRelease 1.2\n" + "=" * 72 + "\n\nWe recommend upgrading.\n\n") * 4,
    # What catalogues carry: argp's vertical tab, gnupg's unit separators, a help text's BEL.
    "Generate message catalog.\x0bIf INPUT-FILE is -, input is read from standard input.\n"
    "Number\x1f: %s%%0AHolder\x1f: %s\n  \x07   alert (BEL)\n",
    # gettext catalogues write the markup their program shows (nautilus-data 43.2-1's Low
    # German catalogue, an em dash written as a reference in one string and GTK's Pango `<b>`
    # in another; vlc-l10n 3.0.24's Kannada one, an over-escaped string beside an `<i>`).
    'msgid_plural "%S of %S — %T left (%S/sec)"\nmsgstr[0] "%S vun %S &#8212; %T över '
    '(%S/Sek)"\nmsgid "<b>_Name</b>"\nmsgstr "<b>_Naam</b>"\n',
    'msgstr "&lt;p&gt;Password for Web interface has not been set.&lt;/p&gt;&lt;p&gt;Please use '
    "--http-password, or set a password in &lt;/p&gt;&lt;p&gt;Preferences &amp;gt; All &amp;gt; "
    'Main interfaces &amp;gt; Lua &amp;gt; Lua HTTP &amp;gt; Password.&lt;/p&gt;"\nmsgid "By '
    "creating a stream, the <i>Main Controls</i> will operate the stream instead of the main "
    'interface."\n',
    # DocBook's entities.ent: character references are what a DTD's entity values are made of.
    "<!-- Common entity declarations used for sorting. -->\n\n<!ENTITY lowercase \"'"
    "Aa&#192;&#224;&#193;&#225;&#194;&#226;&#195;&#227;Bb&#384;&#385;&#595;Cc&#199;&#231;"
    "&#262;&#263;Pp&#420;&#421;&#7764;&#7765;&#7766;&#7767;Qq&#672;Rr&#340;&#341;&#342;'\">\n",
    # A CUPS template and an Apache error page (server-side includes), sent as plain text.
    '<H2 CLASS="title">A&ntilde;adir clase</H2>\n\n<P>Se ha a&ntilde;adido con &eacute;xito '
    'la clase <A HREF="/classes/{printer_name}">{printer_name}</A>.\n',
    '<!--#set var="TITLE" value="Zas&#243;b usuni&#281;ty!"\n--><!--#include '
    'virtual="include/top.html" -->\n\n    Poszukiwany zas&#243;b nie jest ju&#380; '
    'dost&#281;pny.\n    <a href="/">strona</a>\n',
    # A Vue component and a sidebar script that builds its HTML in strings, sent as plain text.
    "></li>\n</template>\n<script>\n    const prefixCls = 'ivu-dropdown-item';\n"
    "    export default {\n        name: 'DropdownItem'\n    };\n</script>\n",
    "  function add_sidebar_button() {\n    sidebarbutton.find('span').text('«');\n"
    "    sidebar.append(\n"
    "        '<div id=\"sidebarbutton\"><span>&laquo;</span></div>');\n  }\n",
    # Code-page tables in JavaScript: a string of the C1 controls in code order, and a decode
    # table marking its undefined places with U+FFFF.
    '  "iso88591": {\n    "type": "_sbcs",\n    "chars": "'
    + "".join(map(chr, range(0x80, 0xA0)))
    + '¡¢£¤¥"\n  },\n',
    '        cps: ASCII_CPS + "' + "\uffff" * 12 + 'ÀÁÂ" + "\uffff" * 3,\n',
    # console-setup's character maps name each C1 control by its code on its row, and a
    # minified script writes NEL between the escapes of the other line terminators.
    "0x80\t'\x80'\n0x81\t'\x81'\n0x82\t'\x82'\n",
    'O="\\r",U="\\n",_="[\\v\\f\x85\\u2028\\u2029]",N="[',
    # Roundcube's Icelandic year format (one letter four times is no Korean read as cp1252),
    # and console-data's changelog writing the letter Â alone.
    "$labels['dateformatY'] = 'ÁÁÁÁ';\n",
    "\t- Correct Â that was improperly displayed as Å\n\t  in lat1-12.psf.\n",
    # References glossed on their line or the next: Emacs's SGML input method, the output
    # format the `unicode` tool's README shows.
    ";; Input method for SGML/HTML entities.\n;; E.g.: &aacute; -> á\n",
    "UTF-8: e2 82 ac   UTF-16BE: 20ac   Decimal: &#8364;\n€\n",
    # News prose whose curly quotes pair up as Shift-JIS read as cp1252 (mozilla/readability's
    # test pages: a quote closed without a space after it).
    "“I’m all yours,”he tells me. “It’s fine,” she said.\n",
    # Wikipedia's coordinates join their slash with zero-width no-break spaces (U+FEFF).
    "Coordinates: 41°17′S 174°27′E\ufeff / \ufeff41.283°S 174.450°E\n",
    # Firefox's localisation files: values an application inserts as HTML, references and
    # links included (a Georgian file keeps a translator's stray `</p>`).
    "player.animationDurationLabel = Duration:\nplayer.infiniteIterationCount = &#8734;\n"
    "player.animationIterationCountLabel = Repeats:\nplayer.infiniteTimeLabel = ∞\n",
    "blocked-title = Text.</p>\nblocked-intro = See <a data-l10n-name='p'>{ $n }</a>.\n"
    "blocked-more = More.\n",
    # Org's exporter, in Emacs Lisp, documents the references it writes.
    ";;; ox.el --- Export Framework for Org Mode  -*- lexical-binding: t; -*-\n"
    "(require 'org-element)\n\n(defcustom org-export-with-entities t\n"
    '  "Non-nil means interpret entities when exporting.\n\n'
    'For example, HTML export converts \\\\alpha to &alpha; and \\\\AA to\n&Aring;."\n'
    "  :type 'boolean)\n\n(defconst org-entities-table\n"
    '  \'(("alpha" "α") ("Aring" "Å")))\n',
    # MediaWiki's message files: JSON strings hold markup and entities as data.
    '{\n\t"@metadata": {\n\t\t"authors": ["Ann", "Bob"]\n\t},\n'
    '\t"copyrightwarning": "Всички приноси могат да бъдат редактирани.<br />\\nАко не сте '
    'съгласни — не ги публикувайте.",\n'
    '\t"dash": "Страница &mdash; заглавие",\n'
    '\t"bold": "Това е <strong>важно</strong> и <code>код</code>."\n}\n',
    # bash.1: BEL as the delimiter of roff's width escape, where quotes may occur.
    '.\\" .ie !\\n()Iu+\\n()Ru-\\w\x07\\*(]X\x07u-3p \\{\\*(]X\n.SH NAME\nbash \\- shell\n',
    # man-db's manual as nroff formats it: overstruck bullets and bold.
    " +\x08o file names and paths\n +\x08o program names in b\x08bo\x08ol\x08ld\x08d\n",
    # gettext's en@boldquot catalogues: quoted words in terminal bold, on purpose.
    "use \x1b[1m\u2018--help\u2019\x1b[0m for more; \x1b[1m\u2018%s\u2019\x1b[0m not found\n" * 3,
    # w3m's entity table: each reference beside the character it stands for, and one
    # character listed under several names (ℬ as &Bernoullis; and &Bscr;).
    "&AElig;                          0xC6           Æ      Æ\n"
    "&Bernoullis;                     0x212C         ℬ      ℬ\n"
    "&Bscr;                           0x212C         ℬ      ℬ\n",
    # A raw e-mail's HTML part, under its MIME header (mail-parser's test mail).
    '--=_alternative 005C1243C12580DD_=\nContent-Type: text/plain; charset="ISO-8859-1"\n\n'
    "Gentili Business Partner, vi segnalo che oggi =E8 stato annunciato un=20\n"
    '--=_alternative 005C1243C12580DD_=\nContent-Type: text/html; charset="ISO-8859-1"\n\n'
    '</font><font size=3D2 color=3Dred face=3D"sans-serif"><b>RICEVUTI e CARICATI\n'
    "da IBM tra il 20/01/2017 e il 31/03/2017.</b></font>\n<br>\n"
    "all&#8217;attivit=E0 svolta\n",
    # A Racket example names its line separators beside each one, and its code.
    ";; NEL\x85133\n;; LS\u20288232\n;; PS\u20298233\n",
    # xkb's French layout lists letters a dead key lacks: windows-1254's `İº` is the UTF-8 of
    # an Arabic letter, and no Arabic is near.
    "// Missing dead key for other european keys (ªəƏþÞıİºſðÐƞȠĳĲ)\n",
    # Ruby's reference manual: CGI's HTML helpers and what they return, as string literals
    # whose attribute quotes are escaped; read as no tag, the opener left its closer stray.
    '  blockquote("http://www.example.com/quotes/foo.html") { "Foo!" }\n'
    '    #=> "<BLOCKQUOTE CITE=\\"http://www.example.com/quotes/foo.html\\">Foo!</BLOCKQUOTE>\n\n'
    '    # => <CAPTION ALIGN=\\"left\\">Capital Cities</CAPTION>\n'
    '    # => "<A HREF=\\"http://www.example.com\\">Example</A>"\n',
    # A lexer's expected output of XML 1.0's Appendix D: a DTD behind fold markers.
    ' 2 401   0 + <!ENTITY example "<p>An ampersand (&#38;#38;) may be escaped\n'
    ' 0 402   0 | numerically (&#38;#38;#38) or with a general entity (&amp;amp;).</p>" >\n'
    " 0 401   0 | ]>\n",
    # A notebook's printed bz2 output: a C1 control among bytes no decoder could read.
    '      "\\u0000 \\u00001\\"zi\\u000f\ufffd\\u0015\\u001b'
    '\ufffdFLT`\ufffd軒)\x84\ufffdP\ufffd˰\\n",\n',
    # String literals of invisible characters alone: core-js's trim check, a transliterator's
    # table keyed by windows-1252's C1 controls, XMP's packet header in an SVG logo.
    'return!!n[i]()||"\u200b\x85\u180e"!=="\u200b\x85\u180e"[i]()||t&&n[i].name!==i\n',
    'replacements = {"\x92": "\'", "\x97": " - "}\n',
    '<svg><metadata><?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?></metadata></svg>\n',
    # A slug library's test of the Slovak alphabet: `ĺĽľ` is windows-1250's UTF-8 of `弾`.
    "getSlug('IiÍíJjKkLlĹĺĽľMmNnŇňOoÓóÔô', {lang: 'sk'})\n",
    # Mojibake shown as examples in text about mojibake (the Debian Administrator's Handbook in
    # English, German and Chinese; a blog post on encodings).
    "sequences of characters like “Ã©” or Ã¨” or “Ã§”, it is probably a file encoded as "
    "UTF-8 but interpreted as ISO-8859-1 or ISO-8859-15.\n",
    "durch Zeichenfolgen wie „Ã©“, „Ã¨“ oder „Ã§“ angezeigt werden, handelt es sich\n",
    "但是重音字母却被像 “Ã©” or Ã¨” or “Ã§” 这样的字符取代，"
    "那么很有可能这个文件使用的编码是 UTF-8\n",
    "I used to take character encodings for granted until I hit my first â€™ at "
    "[Oracle](https://www.oracle.com).\n",
    # A byte order mark a program strips or shows, or a log recorded as it came.
    '    // BOM 제거\n    raw = raw.replace(/^\ufeff/, "");\n',
    "    print(repr(first))   # '\ufeff이름'  — \ufeff가 BOM\n",
    '\t\t\t"text_seg": "\ufeff说详细一点吧，",\n',
    # `??` in a code span whose line opens with a long code span (a link to a source file).
    "类型为`[Coalesce](https://github.com/nikic/PHP-Parser/blob/master/lib/PhpParser/Node/Expr/"
    "BinaryOp/Coalesce.php)(https://github.com/nikic/PHP-Parser/blob/master/lib/PhpParser/Node/"
    "Expr/BinaryOp/Coalesce.php))`，也就是`$foo ?? $bar`中的`??`。coalesce 运算符需要两个元素:\n",
    # Mojibake written as code, as an example (MDN's glossary; a Chinese note; a table of what
    # UTF-8 read as cp1252 looks like), and a byte order mark's named in prose (the W3C).
    "Kauderwelsch wie `Ã‚Â£` ersetzt wurden\n",
    "- 仓库源文件均为有效 UTF-8，Java 代码无双重编码转换；乱码 `æœ¬æ–‡...` 只可能来自外部通道\n",
    "| Russian привет | `Ð¿Ñ€Ð¸Ð²ÐµÑ‚` [S] | `привет` | UTF-8 as cp1252 |\n",
    "Bei Latin-1 (ISO 8859-1) sind dies die Zeichen ï»¿.\n",
    # A capital Ã named as a letter, with no other mojibake near (ftfy's own test data).
    "We don't fix Ã in all contexts\n",
    # Questions ending in `??` before an escape in Vim's Korean, Japanese and Chinese catalogues.
    "닌가??\\n\n",
    "ない??\\\n",
    "控台(console)??\\\n",
    # A letter and a mark beside it that would read as one character of a script nothing near
    # writes: a Chinantec Bible's tone letters (Ethiopic), Kurmanji before a closing quote
    # (Greek), a footnote dagger after `ß` (an N'Ko digit), `æ„³` (Chinese), Sango's word `Â`
    # after a quote, Ewe's letter `ƒ` beside a curly quote (Shift-JIS).
    "e niguiáˆ ˈnʉ́ˈˋ júuˆ quiéˉe\n",
    "Ji KURMANCÎ” xwe\n",
    "ß‡latiorque Wunder\n",
    "monadem 1æ„³xpo 3&insipienti\n",
    'Â gango ni kwè sô a iri ni "Â ita\n',
    "Ewe ƒuƒoƒe “\n",
    # Letters and symbols that would read as one letter of such a script wedged against a
    # Latin letter or a symbol: a dictionary's typo (FreeDict Slovak-English, Ethiopic), Orm's
    # accent marks (CMEPV's Ormulum, Han), a scansion (Tesserae's Bacchylides, Hebrew), a
    # training text's symbols (tesseract's Latin, N'Ko).
    "lampáŠ\xa0/lˈampaː ˈeʃ/\nlantern\n",
    "Swa summ þe Goddspell kiþeþþ; Læ¯¯t nu Drihhtin, læ¯¯t nu þin þeoww\n",
    "<bacchyl. dith. 15.3> ×¯˘¯¯] Παλλάδος ὀρσιμάχου\n",
    "bilo Voglada ⁸);reliquierit Lero }⁹GH §*ß‡⁷‹sumpturis æmerkel\n",
    # Mojibake passed to a function in an interactive example (ftfy's README, pythainlp's
    # docstring of `tis620_to_utf8`).
    ">>> from ftfy import fix_text\n>>> fix_text('âœ” No problems')\n",
    '        >>> tis620_to_utf8("¡ÃÐ·ÃÇ§ÍØµÊÒË¡ÃÃÁ")\n',
    # A word's last letter before a footnote number (tesseract's IAST Sanskrit training text):
    # windows-1257 reads `²`'s UTF-8 as `Ā²`, and the `Ā` was dropped.
    "DHVAṀSA OṀ MRĪṀ ŚRĪṀ SVĀHĀ²⁸\n",
    # A byte order mark in a pattern's class of invisible characters.
    "const re = /[\u200b\u200c\u200d\ufeff]/g;\n",
    # iconv-lite's table of cp857, its characters in code order: `ğ¿®¬` "re-decoded" from
    # UTF-8 is the unassigned U+3FBAC.
    '  "cp857": {\n    "type": "_sbcs",\n'
    '    "chars": "ÇüéâäàåçêëèïîıÄÅÉæÆôöòûùİÖÜø£ØŞşáíóúñÑĞğ¿®¬½¼'
    '¡«»░▒▓│┤ÁÂÀ©╣║╗╝¢¥┐└┴┬├─┼ãÃ╚╔╩╦╠═╬¤ºªÊËÈ�ÍÎÏ┘┌█▄¦Ì▀ÓßÔÒõÕµ�×ÚÛÙìÿ¯´­±�¾¶§÷¸°¨·¹³²■ "\n  },\n',
]


def test_damage_that_would_become_a_foreign_mark_with_nothing_to_sit_on_is_reported(
    client: TextMendClient,
) -> None:
    # Notepad++'s Norwegian translation: `Søk` damaged into `Ø˜k`, whose two characters are
    # the UTF-8 of an Arabic small fatha in windows-1252. No Arabic is near: no repair.
    text = '<Item id="2031" name="Ø˜k med:"/>\n'
    response = client.repair(text.encode("utf-8"), id="mark")
    assert response.text == text and list(response.edits) == []
    assert [f.category for f in response.findings] == [textmend_pb2.CATEGORY_MOJIBAKE]


CLEAN_HTML = [
    # The W3C's article on the byte order mark shows its mojibake as code.
    "<p>the signature displays as characters <code>ï»¿</code>.</p>\n",
    # Rich-text editors' placeholders: U+FEFF as an element's whole content (MDN's archive).
    '<p>d<span style="display: none;" class="rangySelectionBoundary" id="selectionBoundary_1">'
    "\ufeff</span>e la terminal</p>\n",
    '获取源码和二进制文件</a><a id="fck_paste_padding">\ufeff</a><a id="fck_paste_padding">'
    "\ufeff</a>.\n",
    # The W3C's "What is ruby?": a word glossed with its pinyin in an image's description.
    '<p><img src="qa-ruby-data/pinyin.png" alt="中国话(zhōng guó huà)" width="263" /> </p>\n',
]


@pytest.mark.parametrize("text", CLEAN_HTML, ids=range(len(CLEAN_HTML)))
def test_clean_html_comes_back_untouched(client: TextMendClient, text: str) -> None:
    response = client.repair(text.encode("utf-8"), id="clean", content_type="text/html")
    assert response.text == text
    assert list(response.edits) == []


def test_a_quote_the_text_opened_is_not_taken_into_a_repair(client: TextMendClient) -> None:
    # Kurmanji's `“KURDÎ”` (found in the real text) in Portuguese: `Ã”` is the UTF-8 of `Ô`,
    # and the closing quote would go. The opening quote says the mark is the text's own.
    text = "A campanha “IRMÃ” começou ontem.\n"
    response = client.repair(text.encode("utf-8"), id="quote")
    assert response.text == text and list(response.edits) == []
    assert "opened before it" in response.findings[0].reason


def test_mojibake_inside_words_is_repaired_beside_a_specimen(client: TextMendClient) -> None:
    # A specimen is reported; the same damage joined to a word, or a lone letter in running
    # text (French `à`), is what a converter left, and is repaired.
    text = "Accents show as “Ã©”. The cafÃ© is open, il est Ã\xa0 Paris.\n"
    response = client.repair(text.encode("utf-8"), id="specimen")
    assert response.text == "Accents show as “Ã©”. The café is open, il est à Paris.\n"
    assert [f.original for f in response.findings] == ["Ã©"]
    assert "standing as an example" in response.findings[0].reason


@pytest.mark.parametrize(
    "text",
    [
        # licensecheck's fix-up of a copyright sign (Perl): the pattern and its repair.
        "$COPYRIGHT =~ s/\u00c2\u00a9/\u00a9/g;\n",
        # Config::IniFiles strips a byte order mark read as Latin-1 after the string's anchor.
        "    # ( http://www.unicode.org/unicode/faq/utf_bom.html#22 )\n"
        "    $s =~ s/\\A\u00ef\u00bb\u00bf//;\n",
        "if (/^\u00ef\u00bb\u00bf/) { $bom = 1 }\n",
    ],
)
def test_mojibake_a_program_looks_for_is_reported_not_repaired(
    client: TextMendClient, text: str
) -> None:
    """Code that mends mojibake writes it beside its repair, or after a pattern's anchor;
    repaired, the fix-up became a no-op (found in Debian's Perl modules)."""
    response = client.repair(text.encode("utf-8"), id="fixup")
    assert response.text == text and list(response.edits) == []
    assert response.findings
    # The same damage in a sentence, or at the start of a line, is still repaired.
    damaged = "Copyright \u00c2\u00a9 2020 and \u00c2\u00a9 2021.\n\u00ef\u00bb\u00bfline two\n"
    repaired = client.repair(damaged.encode("utf-8"), id="damaged")
    assert repaired.text == "Copyright \u00a9 2020 and \u00a9 2021.\nline two\n"


def test_c1_controls_a_broken_character_left_around_a_word_are_not_punctuation(
    client: TextMendClient,
) -> None:
    # LibreOffice's Chinese help: `选择` and `字段` lost their first bytes, leaving C1 controls
    # on either side of a stretch of Han. They are not windows-1252's `‹` and `—`.
    text = "如果选\x8b©文本格式的数据库\xad\x97段，将无法\n"
    response = client.repair(text.encode("utf-8"), id="c1", content_type="text/html")
    assert "‹" not in response.text and "—" not in response.text
    assert {e.category for e in response.edits} <= {textmend_pb2.CATEGORY_CONTROL_CHAR}
    assert "文本格式的数据库" in response.text


def test_a_reported_mojibake_keeps_the_control_inside_it(client: TextMendClient) -> None:
    # Reported as an example, `â€\x9d` stays whole: its C1 control is reported too, not taken
    # out of it (which left `â€`, neither the example nor its repair).
    text = "The closing quote shows as `â€\x9d` in such files.\n"
    response = client.repair(text.encode("utf-8"), id="kept")
    assert response.text == text and list(response.edits) == []
    assert [f.category for f in response.findings] == [
        textmend_pb2.CATEGORY_MOJIBAKE,
        textmend_pb2.CATEGORY_CONTROL_CHAR,
    ]


@pytest.mark.parametrize(
    "text",
    [
        "1\n00:00:01,000 --> 00:00:02,500\n<i>Where are you going?</i>\n\n"
        "2\n00:00:03,000 --> 00:00:04,000\nHome. <b>Now.</b>\n",
        "WEBVTT\n\n00:01.000 --> 00:04.000\n<i>Never drink liquid nitrogen.</i>\n",
    ],
)
def test_subtitle_styling_is_the_formats_own(client: TextMendClient, text: str) -> None:
    # SubRip and WebVTT style their cues with tags: clean, not leaked markup to report.
    response = client.repair(text.encode("utf-8"), id="subtitles")
    assert response.text == text
    assert list(response.findings) == [] and response.verdict == textmend_pb2.VERDICT_CLEAN


@pytest.mark.parametrize("text", CLEAN, ids=range(len(CLEAN)))
def test_clean_text_comes_back_untouched(client: TextMendClient, text: str) -> None:
    response = client.repair(text.encode("utf-8"), id="clean")
    assert response.text == text
    assert list(response.edits) == []
    assert response.verdict in (textmend_pb2.VERDICT_CLEAN, textmend_pb2.VERDICT_SUSPECT)
    assert not [f for f in response.findings if f.category == textmend_pb2.CATEGORY_REPEATED_BLOCK]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The evidence: a closing tag glued to the end of a line whose element never opens.
        ("Some <b>bold</b> text.</p>\nMore text.</p>", "Some bold text.\nMore text."),
        # The evidence: an entity escaped twice.
        ("Tom &amp;amp; Jerry&#8217;s <i>show</i>", "Tom & Jerry’s show"),
        # The evidence: a reference used as a letter of a word.
        ("It&#8217;s caf&eacute; time", "It’s café time"),
    ],
)
def test_markup_that_leaked_is_repaired(client: TextMendClient, text: str, expected: str) -> None:
    response = client.repair(text.encode("utf-8"), id="leak")
    assert response.text == expected
    assert all(e.category == textmend_pb2.CATEGORY_MARKUP_LEAK for e in response.edits)
    assert all("the document shows leaked markup" in e.reason for e in response.edits)


def test_a_program_s_escaped_output_quoted_as_a_literal_is_not_evidence(
    client: TextMendClient,
) -> None:
    """REXML's documentation of its `:raw` option (RDoc, Debian's libruby3.1) shows what the
    program prints, escaped twice, inside a string; taken for leaked markup, every `<tt>` of
    the document was removed and the examples' entities unescaped, making them false."""
    text = (
        "Use <tt>:raw</tt> to keep the text as written:\n\n"
        '  a.to_s # => "<a>0 &lt; 1</a>"\n'
        '  b.to_s # => "<b>1 &amp;gt; 0 so 0 &amp;lt; 1</b>"\n'
    )
    response = client.repair(text.encode("utf-8"), id="raw")
    assert response.text == text and list(response.edits) == []
    # The same reference escaped twice in running text still shows the leak.
    leaked = client.repair(b"Tom &amp;amp; Jerry said <i>hello</i>.", id="leak")
    assert leaked.text == "Tom & Jerry said hello."


# Text pdftotext and pypdf took from PDFs of Debian bookworm's TeX documentation, whose fonts
# map no Unicode: the font's glyph codes stand in the text (2022.20230122 packages).
PDF_GLYPH_CODES = [
    # texlive-latex-base-doc, l3kernel/l3news12.pdf: the itemize bullet is 0x88.
    "been incremented a little:\n\x88 pdfTEX v1.40\n\x88 XETEX v0.99992\n\x88 LuaTEX v0.95\n",
    # texlive-science-doc, nchairx/nchairx.pdf: the same bullet before a ligature's code.
    "most important changes are the following:\n\x88 We rede\x1cne \\mathbb to use the fonts\n",
    # texlive-latex-extra-doc, keyvaltable/keyvaltable.pdf: a pointing marker.
    "\n\x9f The hoptionsi in \\kvtNewTableStyle can be left empty. In this case, the table\n",
    # texlive-lang-french, formation-latex-ul-diapos.pdf: a slide's arrow, a code cp1252 lacks.
    "\nUn traitement de texte\n\n\x90\n\npriorité accordée à la qualité de la mise en page\n",
    # texlive-lang-french, formation-latex-ul.pdf: an icon font's mark before a tip box.
    "type d’information utile.\n\n\x99\n\nImportant ! Ces blocs contiennent les remarques\n",
]
# pypdf writes TeX's minus sign (slot 0 of its math symbol font) as NUL: texlive-lang-korean's
# lshort-ko.pdf and texlive-lang-chinese's texproposal CQU-Example.pdf.
PDF_NUL_MINUS = [
    "super-conduct.\nIt’s \x0030 ◦C. I will soon start to super-conduct.\n",
    "c = a2 \x00 b2 (3.1)\n= „a + b”„a \x00 b” (3.2)\n",
]


# memoir's manual (texlive-latex-recommended-doc) lists Latin-1's letters with their codes:
# ftfy read `Ã ` as the mojibake of `à`.
PDF_CHARACTER_TABLE = ["Á 193\n\nÂ 194\n\nÃ 195\n\nÄ 196\n\nÅ 197\n"]
# pypdf's mark for a glyph it could not map, in texlive-lang-portuguese's
# latex-via-exemplos.pdf.
PDF_PLACEHOLDER = [
    "Ele define especificador de colunas “d<num>” que é interpretado como D{.}{\uffff}{<num>} e,\n",
]


@pytest.mark.parametrize(
    "text", PDF_GLYPH_CODES + PDF_NUL_MINUS + PDF_PLACEHOLDER + PDF_CHARACTER_TABLE
)
def test_a_pdf_fonts_glyph_codes_are_reported_not_changed(text: str) -> None:
    """Read as windows-1252 the bullets became `ˆ` and `Ÿ`, codes windows-1252 lacks were
    removed, removing pypdf's NUL minus signs turned `−30 °C` into `30 °C`, and removing its
    U+FFFF emptied a macro's argument."""
    from textmend_server import repair_text

    result = repair_text(text)
    assert result.text == text and result.edits == []
    assert {f.category.value for f in result.findings} <= {
        "control_char",
        "noncharacter",
        "mojibake",
    }
    assert result.findings


def test_windows_1252_punctuation_read_as_latin_1_is_still_restored() -> None:
    from textmend_server import repair_text

    text = "He said \x93hello\x94 and it\x92s fine \x96 really\x85 Caf\xe9 Pr\x9aa."
    assert repair_text(text).text == "He said “hello” and it’s fine – really… Café Prša."


def test_terminal_formatting_and_a_bare_escape_are_reported(client: TextMendClient) -> None:
    text = "\x1b[1mWarning:\x1b[0m disk full\n"
    response = client.repair(text.encode("utf-8"), id="sgr")
    assert response.text == text
    assert [f.original for f in response.findings] == ["\x1b[1m", "\x1b[0m"]
    assert all(f.category == textmend_pb2.CATEGORY_CONTROL_CHAR for f in response.findings)
    # A bare ESC, between words or inside one, is the Escape key written down (Vim's
    # documentation quotes `"Ox<ESC>jAx<ESC>kdd"`); a BEL inside a word is damage.
    for content in (b"Warning:\x1b disk full", b'executing "Ox\x1bjAx\x1bkdd" from a register'):
        response = client.repair(content, id="esc")
        assert response.text == content.decode() and not response.edits
        assert [f.original for f in response.findings] == ["\x1b"] * content.count(b"\x1b")
    response = client.repair(b"Warn\x07ing: disk full", id="wedged")
    assert response.text == "Warning: disk full"
    assert [e.original for e in response.edits] == ["\x07"]


def test_search_patterns_in_japanese_text_are_not_read_as_slips(client: TextMendClient) -> None:
    """aptitude's Japanese manual writes patterns as `「?provides(…)」`: `?p` re-phased in
    Shift-JIS is a Cyrillic `а`, which is not the Japanese the text around it is written in."""
    para = (
        "?{name}(パターン), ~{short}パターン\n\n"
        "   パターンに一致するパッケージを{verb}パッケージのバージョンに一致します。\n"
        "   例えば、「?{name}(mail-transport-agent)」はメール転送エージェントを{verb}\n"
        "   すべてのパッケージに一致します。検索パターンの詳しい説明は、このマニュアルの\n"
        "   前の節を参照してください。\n\n"
    )
    words = [
        ("provides", "P", "提供する"),
        ("priority", "p", "優先度に持つ"),
        ("version", "V", "含む"),
        ("section", "s", "セクションに持つ"),
        ("virtual", "v", "仮想的に示す"),
        ("reverse", "R", "逆に依存する"),
    ]
    text = "".join(para.format(name=n, short=s, verb=v) for n, s, v in words)
    response = client.repair(text.encode("utf-8"), id="patterns")
    assert response.text == text
    assert [f.original for f in response.findings] == []


def test_markup_shaped_text_without_evidence_is_reported_not_removed(
    client: TextMendClient,
) -> None:
    text = "Press <b>Save</b> to keep the file."
    response = client.repair(text.encode("utf-8"), id="weak")
    assert response.text == text
    assert [f.original for f in response.findings] == ["<b>", "</b>"]
    assert response.verdict == textmend_pb2.VERDICT_SUSPECT


def test_a_page_stored_twice_is_still_reported(client: TextMendClient) -> None:
    page = "".join(
        f"Paragraph {n} of the article tells its reader something the others do not.\n"
        for n in range(8)
    )
    response = client.repair((page + "\n" + page).encode("utf-8"), id="twice")
    repeats = [f for f in response.findings if f.category == textmend_pb2.CATEGORY_REPEATED_BLOCK]
    assert len(repeats) == 1 and response.text == page + "\n" + page


PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Notes</title></head>\n"
    "<body><p>caf\u00c3\u00a9 &amp; <b>cr\u00c3\u00a8me</b></p></body></html>\n"
)


def test_html_is_recognised_by_name_and_by_its_first_bytes(target: str, tmp_path, capsys) -> None:
    named = tmp_path / "page.html"
    named.write_text(PAGE, encoding="utf-8")
    unnamed = tmp_path / "page.txt"
    unnamed.write_text(PAGE, encoding="utf-8")
    expected = PAGE.replace("caf\u00c3\u00a9", "café").replace("cr\u00c3\u00a8me", "crème")
    for path in (named, unnamed):
        assert main(["repair", str(path), "--server", target]) == 0
        assert capsys.readouterr().out == expected  # the mojibake goes, the markup stays
    # Told it is plain text, the same page is still not stripped: a text that starts as an
    # HTML document writes its markup on purpose.
    argv = ["repair", str(named), "--server", target, "--content-type", "text/plain"]
    assert main(argv) == 0
    assert capsys.readouterr().out == expected


def test_xml_without_a_declaration_is_recognised_by_its_namespace(client: TextMendClient) -> None:
    # GNOME's Mallard help: XML whose first element declares its namespace, no `<?xml`.
    page = (
        '<page xmlns="http://projectmallard.org/1.0/"\n      type="topic" style="problem"\n'
        '      id="mouse-wakeup">\n\n  <info>\n    <link type="guide" xref="mouse#problems"/>\n'
        "  </info>\n\n  <title>Mouse reacts with delay before it starts working</title>\n\n"
        "  <p>Wireless and optical mice may need to “wake up” before they respond.</p>\n</page>\n"
    )
    response = client.repair(page.encode("utf-8"), id="mallard")
    assert response.text == page
    assert list(response.edits) == [] and list(response.findings) == []


LEGACY = json.loads(
    (Path(__file__).parent / "fixtures" / "legacy" / "snippets.json").read_text("utf-8")
)


@pytest.mark.parametrize("name", sorted(k for k, v in LEGACY.items() if not v.get("ambiguous")))
def test_real_legacy_text_is_decoded_right_through_the_server(
    client: TextMendClient, name: str
) -> None:
    # Portuguese cp1252 once read as cp1257, Polish cp1250 as cp1252, Ukrainian cp1251 as
    # ptcp154, EUC-JP and GB18030 man pages as iso8859-15 with confidence 0.97-1.00 ...
    snippet = LEGACY[name]
    content = snippet["text"].encode(snippet["codec"])
    response = client.repair(content, id=name, content_type=snippet.get("content_type", ""))
    assert response.text == snippet["text"], (name, response.encoding.name)
    assert response.verdict == textmend_pb2.VERDICT_CLEAN


def test_a_table_of_characters_is_suspect_and_untouched_through_the_server(
    client: TextMendClient,
) -> None:
    snippet = LEGACY["charset-table"]
    content = snippet["text"].encode(snippet["codec"])
    response = client.repair(content, id="table")
    assert response.verdict == textmend_pb2.VERDICT_SUSPECT and list(response.edits) == []
    assert any(
        f.category == textmend_pb2.CATEGORY_ENCODING and "also plausible" in f.reason
        for f in response.findings
    )


def test_a_leading_bom_is_removed_and_reported_through_the_server(client: TextMendClient) -> None:
    response = client.repair(b"\xef\xbb\xbfclean text\n", id="bom")
    assert response.text == "clean text\n" and response.verdict == textmend_pb2.VERDICT_CLEAN
    [finding] = response.findings
    assert finding.category == textmend_pb2.CATEGORY_ENCODING
    assert (finding.original_start_byte, finding.original_end_byte) == (0, 3)
