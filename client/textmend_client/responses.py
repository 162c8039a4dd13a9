"""Reading a `RepairResponse`: the names of its enum values as commands print them, and its
offsets turned into the decoded original, lines and columns.

Shared by every command that shows a response (`repair --format diff`, `check`, `report`,
batch repair and the backfill), so that a category, a verdict or a position reads the same
whichever command prints it.
"""

from __future__ import annotations

import bisect
import re
from typing import Any

from textmend.v1 import textmend_pb2

#: The verdicts of a repaired document, in the proto's order, as summaries list them.
VERDICTS = ("clean", "repaired", "suspect", "unreadable")


def enum_label(enum: Any, value: int, prefix: str) -> str:
    """A proto enum value's name without its prefix, in lower case: `mojibake` for
    `CATEGORY_MOJIBAKE`; a value these stubs do not know (a newer server's) is named by its
    number, `verdict_99`.

    >>> enum_label(textmend_pb2.Verdict, textmend_pb2.VERDICT_REPAIRED, "VERDICT_")
    'repaired'
    >>> enum_label(textmend_pb2.Verdict, 99, "VERDICT_")
    'verdict_99'
    """
    if value not in enum.values():
        return f"{prefix.lower()}{value}"
    return str(enum.Name(value)).removeprefix(prefix).lower()


_CATEGORY_NAMES = {
    value: enum_label(textmend_pb2.Category, value, "CATEGORY_")
    for value in textmend_pb2.Category.values()
}


def category_name(value: int, *, unknown: str = "unknown") -> str:
    """`mojibake` for CATEGORY_MOJIBAKE; `unknown` for a value this client does not know.

    >>> category_name(textmend_pb2.CATEGORY_RUBY_LEAK), category_name(999)
    ('ruby_leak', 'unknown')
    """
    return _CATEGORY_NAMES.get(value, unknown)


def verdict_name(response: textmend_pb2.RepairResponse) -> str:
    """`clean`, `repaired`, `suspect` or `unreadable`; `failed` for a stream error."""
    if response.HasField("error"):
        return "failed"
    if response.verdict not in textmend_pb2.Verdict.values() or not response.verdict:
        return "unknown"
    return enum_label(textmend_pb2.Verdict, response.verdict, "VERDICT_")


def source_name(encoding: textmend_pb2.EncodingInfo) -> str:
    """How the server chose the encoding: `detected`, `declared`, ... (`SOURCE_` dropped)."""
    return enum_label(textmend_pb2.EncodingInfo.Source, encoding.source, "SOURCE_")


def reconstruct_original(response: textmend_pb2.RepairResponse) -> str:
    """The decoded original text: `response.text` with each edit's replacement put back.

    Every edit says where its replacement stands in the cleaned text (`cleaned_start`,
    `cleaned_end`) and what stood there before (`original`), so undoing the edits in order
    gives the text the server repaired, with no need to decode the bytes again. Raises
    `ValueError` when the edits do not line up with the text (a response from an
    incompatible server).

    >>> edit = textmend_pb2.Edit(cleaned_start=3, cleaned_end=4, original="Ã©", replacement="é")
    >>> reconstruct_original(textmend_pb2.RepairResponse(text="café", edits=[edit]))
    'cafÃ©'
    """
    text = response.text
    pieces: list[str] = []
    position = 0
    for index, edit in enumerate(response.edits):
        start, end = edit.cleaned_start, edit.cleaned_end
        if not position <= start <= end <= len(text):
            raise ValueError(
                f"edit {index} spans {start}..{end} of the cleaned text, which does not follow "
                f"the previous edit (ending at {position}) within the text's {len(text)} code "
                "points"
            )
        if text[start:end] != edit.replacement:
            raise ValueError(
                f"edit {index}: the cleaned text at {start}..{end} is not its replacement"
            )
        pieces.append(text[position:start])
        pieces.append(edit.original)
        position = end
    pieces.append(text[position:])
    original = "".join(pieces)
    if response.original_length and len(original) != response.original_length:
        raise ValueError(
            f"undoing the edits gives {len(original)} code points, not the original_length "
            f"{response.original_length} the server reported"
        )
    return original


class LineIndex:
    """Line starts of a text, for turning code point offsets into lines and columns."""

    def __init__(self, text: str) -> None:
        self.length = len(text)
        self.starts = [0, *(m.end() for m in re.finditer("\n", text))]

    def index(self, offset: int) -> int:
        """0-based index of the line holding offset."""
        return bisect.bisect_right(self.starts, offset) - 1

    def start(self, index: int) -> int:
        """Offset where line `index` starts (the text's length past the last line)."""
        return self.starts[index] if index < len(self.starts) else self.length

    def position(self, offset: int) -> tuple[int, int]:
        r"""Line and column of offset, both counting from 1.

        >>> LineIndex("ab\ncd").position(4)
        (2, 2)
        """
        index = self.index(offset)
        return index + 1, offset - self.starts[index] + 1

    def label(self, offset: int) -> str:
        r"""`line:column` of offset, as editors and linters write a position.

        >>> LineIndex("ab\ncd").label(4)
        '2:2'
        """
        line, column = self.position(offset)
        return f"{line}:{column}"
