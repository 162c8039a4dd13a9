"""The one rule for a document's content type, shared by every command of the client.

A content type given by the caller wins. Otherwise a file named `.html`, `.htm`, `.xhtml`,
`.xml` or `.svg` is sent as `text/html` (its markup is its own), and anything else is sent
without one, so that the server decides from the bytes: content that starts with
`<!DOCTYPE html` or `<html` is HTML, everything else plain text. `repair`, `check`, `report`,
batch runs and JSON Lines all go through this rule, so the same file is read the same way
whichever command reads it.
"""

from __future__ import annotations

import os

# File name endings whose markup is the document's own, sent as text/html.
MARKUP_SUFFIXES = (".html", ".htm", ".xhtml", ".xml", ".svg")


def content_type_for(path: str | None, given: str = "") -> str:
    """The content type to send for a document read from path (None or "-" for standard
    input): `given` if set, text/html for markup file names, else "" (the server sniffs).

    >>> content_type_for("page.HTML"), content_type_for("notes.txt"), content_type_for("-")
    ('text/html', '', '')
    >>> content_type_for("page.html", given="text/plain")
    'text/plain'
    """
    if given:
        return given
    if path is None or path == "-":
        return ""
    return "text/html" if os.path.basename(path).lower().endswith(MARKUP_SUFFIXES) else ""
