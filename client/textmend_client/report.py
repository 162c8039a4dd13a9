"""An HTML report of repaired documents, for a person to review what textmend did and why.

`render_report` turns `(name, content, response)` triples into one self-contained HTML page:
a summary (verdicts, edits and findings per category, encodings seen), then per document
the decoded original and the cleaned text side by side, every edit highlighted in both
columns in its category's colour, every finding outlined with a dashed border. Hovering a
highlight shows its category, reason, confidence and (for a finding) the suggested repair.

The page loads nothing: styles and the small script are inline, and a Content-Security-Policy
forbids any other source, so it can be mailed, archived or opened offline. Everything taken
from a document is HTML-escaped, and invisible characters (controls, zero-width characters,
bidi overrides and isolates, unassigned and private-use code points) are drawn as badges such
as ``⟨U+202E⟩``: a document cannot hide or reorder what the report shows.

Large documents are cut down: only the lines around edits and findings are rendered (with
`CONTEXT_LINES` lines of context, at most `CONTEXT_CHARS` characters either side on long
lines), the rest is replaced by an "N unchanged lines" marker, and at most `MAX_MARKS` edits
and findings and `MAX_RENDERED_CHARS` characters are shown per document, with a note saying
how many more there are. A 10 MB document thus yields a page of at most a megabyte or two; the
JSON response (`textmend repair --format json`) has everything.

`run_report` is the command's body: it repairs files through `textmend_client.files` (the
one walker of files and directories, shared with `check` and batch repair). Choosing the
excerpts and rendering each column is `textmend_client.report_columns`'s job; the style
sheet and script are `textmend_client.report_style`'s.
"""

from __future__ import annotations

import html
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import IO

from textmend.v1 import textmend_pb2
from textmend_client.client import TextMendClient
from textmend_client.files import (
    EXIT_IO,
    EXIT_OK,
    EXIT_SERVER,
    repair_files,
    report_outcome,
    warn,
)
from textmend_client.report_columns import (
    CONTEXT_CHARS,
    CONTEXT_LINES,
    MAX_MARKS,
    MAX_RENDERED_CHARS,
    MAX_SPAN_CHARS,
    MAX_TITLE_CHARS,
    Column,
    Mark,
    gap_html,
    plural,
    quote,
    select_excerpts,
    to_cleaned,
    visible_html,
)
from textmend_client.report_style import CSP, CSS, SCRIPT, category_css
from textmend_client.responses import (
    VERDICTS,
    LineIndex,
    category_name,
    reconstruct_original,
    source_name,
    verdict_name,
)
from textmend_client.visible import is_invisible, visible_text

__all__ = [
    "CONTEXT_CHARS",
    "CONTEXT_LINES",
    "MAX_MARKS",
    "MAX_RENDERED_CHARS",
    "MAX_SPAN_CHARS",
    "MAX_TITLE_CHARS",
    "LineIndex",
    "category_name",
    "is_invisible",
    "reconstruct_original",
    "render_report",
    "report_outcome",
    "run_report",
    "verdict_name",
    "visible_text",
    "write_report",
]

#: Verdicts in the order the summary's tiles show them; `failed` only when a document failed.
SUMMARY_VERDICTS = (*VERDICTS, "failed")
#: Characters of a span quoted at most in a document's list of edits and findings: half a
#: tooltip's (`MAX_TITLE_CHARS`), since the list shows the original and its replacement side
#: by side in one table cell.
LIST_QUOTE_CHARS = 80


def _encoding_label(response: textmend_pb2.RepairResponse) -> str:
    encoding = response.encoding
    source = source_name(encoding)
    label = f"{encoding.name or '?'} ({source}, confidence {encoding.confidence:.2f})"
    if encoding.declared:
        label += f"; declared {encoding.declared}"
    if encoding.overruled:
        label += f", overruled: {encoding.overruled}"
    return label


def _problem_rows(
    response: textmend_pb2.RepairResponse, lines: LineIndex | None, key_prefix: str
) -> list[str]:
    """One table row per edit and finding (at most `MAX_MARKS`), in text order."""
    items = [(e.original_start, 0, i, e) for i, e in enumerate(response.edits)]
    items += [(f.original_start, 1, i, f) for i, f in enumerate(response.findings)]
    items.sort(key=lambda item: (item[0], item[1], item[2]))
    rows = []
    for start, is_finding, index, item in items[:MAX_MARKS]:
        where = lines.label(start) if lines else str(start)
        proposed = item.suggestion if is_finding else item.replacement
        change = quote(item.original, LIST_QUOTE_CHARS)
        if not is_finding or proposed:
            change += " → " + quote(proposed, LIST_QUOTE_CHARS)
        key = f"{key_prefix}-{'f' if is_finding else 'e'}{index}"
        rows.append(
            f'<tr data-k="{key}"><td class="n">{where}</td>'
            f'<td><span class="swatch c-{category_name(item.category)}'
            f'{" find-swatch" if is_finding else ""}"></span>'
            f"{category_name(item.category)}</td>"
            f"<td>{'finding' if is_finding else 'edit'}</td>"
            f"<td><code>{html.escape(change)}</code></td>"
            f"<td>{html.escape(visible_text(item.reason))}</td>"
            f'<td class="n">{item.confidence:.2f}</td></tr>'
        )
    return rows


def _document_html(
    number: int, name: str, content: bytes, response: textmend_pb2.RepairResponse
) -> str:
    verdict = verdict_name(response)
    key_prefix = f"d{number}"
    out = [
        f'<section class="doc is-{verdict}" id="doc-{number}">',
        f"<h2>{visible_html(name)}</h2>",
    ]
    if response.HasField("error"):
        out.append(
            f'<p class="meta"><span class="verdict v-failed">failed</span> · '
            f"{html.escape(response.error.code)}: {visible_html(response.error.message)}</p>"
        )
        out.append("</section>")
        return "\n".join(out)
    edits, findings = list(response.edits), list(response.findings)
    out.append(
        f'<p class="meta"><span class="verdict v-{verdict}">{verdict}</span> · '
        f"{html.escape(visible_text(_encoding_label(response)))} · "
        f"{plural(len(edits), 'edit')} · {plural(len(findings), 'finding')} · "
        f"{plural(len(content), 'byte')}, {plural(len(response.text), 'character')} cleaned</p>"
    )
    if not edits and not findings:
        out.append('<p class="note">Nothing to show: no edits and no findings.</p></section>')
        return "\n".join(out)
    try:
        original = reconstruct_original(response)
    except ValueError as exc:
        out.append(
            f'<p class="note warn">The edits do not line up with the text, so it cannot be '
            f"shown side by side: {html.escape(str(exc))}</p></section>"
        )
        return "\n".join(out)

    edit_info = [
        (f"{key_prefix}-e{i}", category_name(e.category), e, False) for i, e in enumerate(edits)
    ]
    original_edits = [
        Mark(e.original_start, e.original_end, *info)
        for e, info in zip(edits, edit_info, strict=True)
    ]
    cleaned_edits = [
        Mark(e.cleaned_start, e.cleaned_end, *info)
        for e, info in zip(edits, edit_info, strict=True)
    ]
    finding_marks = [
        (f, f"{key_prefix}-f{i}", category_name(f.category)) for i, f in enumerate(findings)
    ]
    left = Column(
        original,
        original_edits,
        sorted(
            (Mark(f.original_start, f.original_end, k, c, f, True) for f, k, c in finding_marks),
            key=lambda m: (m.start, -m.end),
        ),
        "del",
    )
    right = Column(
        response.text,
        cleaned_edits,
        sorted(
            (Mark(f.cleaned_start, f.cleaned_end, k, c, f, True) for f, k, c in finding_marks),
            key=lambda m: (m.start, -m.end),
        ),
        "ins",
    )
    excerpts = select_excerpts(left.lines, edits, findings, original_edits, left.edit_starts)
    ends = [e.original_end for e in edits]
    out.append('<div class="cmp"><div class="colhead">original</div>')
    out.append('<div class="colhead">cleaned</div>')
    previous_end = 0
    for a, b in excerpts.ranges:
        out.append(gap_html(original, previous_end, a))
        indices = left.edits_in(a, b)
        # The same edits on both sides, whatever their cleaned spans: they are matched by index.
        ca = to_cleaned(edits, ends, a)
        cb = len(response.text) if b == len(original) else to_cleaned(edits, ends, b)
        if indices:
            ca = min(ca, edits[indices[0]].cleaned_start)
            cb = max(cb, edits[indices[-1]].cleaned_end)
        out.append(f'<pre class="side orig">{left.render(a, b, indices)}</pre>')
        out.append(f'<pre class="side clean">{right.render(ca, cb, indices)}</pre>')
        previous_end = b
    if excerpts.hidden_edits or excerpts.hidden_findings:
        out.append(
            f'<div class="gap warn">Display cut short for size: '
            f"{plural(excerpts.hidden_edits, 'more edit')} and "
            f"{plural(excerpts.hidden_findings, 'more finding')} after this point are not "
            f"shown (the JSON response has them all).</div>"
        )
    else:
        out.append(gap_html(original, previous_end, len(original)))
    out.append("</div>")
    rows = _problem_rows(response, left.lines, key_prefix)
    more = len(edits) + len(findings) - len(rows)
    out.append(
        f"<details><summary>{plural(len(edits), 'edit')} and "
        f"{plural(len(findings), 'finding')} as a list</summary>"
        '<table class="problems"><tr><th class="n">line:col</th><th>category</th><th>kind</th>'
        '<th>change</th><th>reason</th><th class="n">confidence</th></tr>'
        + "".join(rows)
        + "</table>"
        + (f'<p class="note">{more} more not listed.</p>' if more > 0 else "")
        + "</details>"
    )
    out.append("</section>")
    return "\n".join(out)


def _summary_html(
    documents: Sequence[tuple[str, bytes, textmend_pb2.RepairResponse]],
) -> str:
    verdicts = Counter(verdict_name(response) for _, _, response in documents)
    edits = Counter(category_name(e.category) for _, _, r in documents for e in r.edits)
    findings = Counter(category_name(f.category) for _, _, r in documents for f in r.findings)
    encodings = Counter(r.encoding.name for _, _, r in documents if r.encoding.name)
    out = ['<section id="summary">', '<div class="tiles">']
    out.append(f'<div class="tile"><b>{len(documents)}</b>documents</div>')
    for verdict in SUMMARY_VERDICTS:
        if verdict == "failed" and not verdicts[verdict]:
            continue
        out.append(
            f'<div class="tile"><b>{verdicts[verdict]}</b>'
            f'<span class="verdict v-{verdict}">{verdict}</span></div>'
        )
    out.append("</div>")
    out.append('<div class="summary-grid"><div><h3>Edits and findings by category</h3>')
    categories = sorted(set(edits) | set(findings), key=lambda c: (-edits[c] - findings[c], c))
    if categories:
        out.append(
            '<table><tr><th>category</th><th class="n">edits</th>'
            '<th class="n">findings</th><th>show</th></tr>'
        )
        for name in categories:
            out.append(
                f'<tr><td><span class="swatch c-{name}"></span>{name}</td>'
                f'<td class="n">{edits[name]}</td><td class="n">{findings[name]}</td>'
                f'<td><input type="checkbox" checked data-cat="{name}" '
                f'aria-label="highlight {name}"></td></tr>'
            )
        out.append("</table>")
    else:
        out.append('<p class="note">None.</p>')
    out.append("</div><div><h3>Encodings</h3>")
    if encodings:
        out.append('<table><tr><th>encoding</th><th class="n">documents</th></tr>')
        for name, count in encodings.most_common():
            out.append(f'<tr><td>{visible_html(name)}</td><td class="n">{count}</td></tr>')
        out.append("</table>")
    else:
        out.append('<p class="note">None.</p>')
    out.append("</div></div>")
    out.append(
        '<h3>Documents</h3><p><label class="filter"><input type="checkbox" id="only-problems"> '
        "hide clean documents</label></p>"
        "<table><tr><th>document</th><th>verdict</th><th>encoding</th>"
        '<th class="n">edits</th><th class="n">findings</th></tr>'
    )
    for number, (name, _, response) in enumerate(documents, start=1):
        verdict = verdict_name(response)
        out.append(
            f'<tr><td><a href="#doc-{number}">{visible_html(name)}</a></td>'
            f'<td><span class="verdict v-{verdict}">{verdict}</span></td>'
            f"<td>{visible_html(response.encoding.name)}</td>"
            f'<td class="n">{len(response.edits)}</td>'
            f'<td class="n">{len(response.findings)}</td></tr>'
        )
    out.append("</table></section>")
    return "\n".join(out)


def render_report(
    documents: Sequence[tuple[str, bytes, textmend_pb2.RepairResponse]],
    *,
    title: str = "textmend report",
) -> str:
    """One self-contained HTML page reviewing repaired documents.

    Each document is `(name, content, response)`: a name to show (a path, say), the bytes
    that were sent and the server's response. The page has a summary (documents clean,
    repaired, suspect and unreadable; edits and findings per category; encodings seen) and
    then, per document, its verdict and encoding and the original and cleaned text side by
    side, each edit highlighted in both columns and each finding outlined, with the reason,
    confidence and suggestion on hover.

    Only excerpts around edits and findings are rendered, within per-document limits
    (`CONTEXT_LINES`, `CONTEXT_CHARS`, `MAX_MARKS`, `MAX_RENDERED_CHARS`, `MAX_SPAN_CHARS`);
    what is left out is replaced by "N unchanged lines" markers and a note, so that a 10 MB
    document still gives a page a browser can open.
    """
    head = (
        "<!DOCTYPE html>\n"
        '<html lang="en" dir="ltr">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{html.escape(visible_text(title))}</title>\n"
        f"<style>{CSS}\n{category_css()}</style>\n</head>\n<body>\n"
        f"<h1>{visible_html(title)}</h1>\n"
    )
    body = [_summary_html(documents)]
    body += [
        _document_html(number, name, content, response)
        for number, (name, content, response) in enumerate(documents, start=1)
    ]
    return head + "\n".join(body) + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n"


def write_report(
    path: str | os.PathLike[str],
    documents: Sequence[tuple[str, bytes, textmend_pb2.RepairResponse]],
    *,
    title: str = "textmend report",
) -> None:
    """Render the report (see `render_report`) and write it to path as UTF-8: to a temporary
    name beside it first, then renamed, so that a failed write leaves no half a report."""
    page = render_report(documents, title=title)
    partial = f"{os.fspath(path)}.textmend-partial"
    try:
        with open(partial, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(page)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _is_an_input(output: str | os.PathLike[str], paths: Sequence[str]) -> bool:
    """Whether output is a file that exists and is one of paths or lies under one of them:
    a file the run reads (told from the paths, without walking the directories again)."""
    if not os.path.isfile(output):
        return False
    target = os.path.realpath(output)
    for path in paths:
        root = os.path.realpath(path)
        if target == root or target.startswith(os.path.join(root, "")):
            return True
    return False


def run_report(
    paths: Sequence[str],
    client: TextMendClient,
    output: str | os.PathLike[str],
    *,
    title: str = "textmend report",
    policy: Mapping[str, str] | None = None,
    content_type: str = "",
    err: IO[str] | None = None,
    min_confidence: float = 0.0,
) -> int:
    """Repair the files under paths and write the HTML report to output; the exit code.

    Files the server refuses (binary ones) are left out with a warning on err. Returns 0 when
    the report was written, 2 when a file could not be read (the report is still written with
    the others) or the report could not be written, 3 when the server failed.
    """
    err = err or sys.stderr
    if _is_an_input(output, paths):
        warn(err, f"{visible_text(os.fspath(output))}: is one of the inputs: write the report "
             "elsewhere")  # fmt: skip
        return EXIT_IO
    documents: list[tuple[str, bytes, textmend_pb2.RepairResponse]] = []
    worst = EXIT_OK
    files = repair_files(
        paths, client, policy=policy, content_type=content_type, min_confidence=min_confidence
    )
    for outcome in files:
        worst = max(worst, report_outcome(outcome, err))
        if outcome.response is not None:
            documents.append((outcome.path, outcome.content, outcome.response))
    if worst == EXIT_SERVER:
        return worst
    try:
        write_report(output, documents, title=title)
    except OSError as exc:
        warn(err, f"{os.fspath(output)}: cannot write the report: {exc.strerror or exc}")
        return EXIT_IO
    return worst
