"""Categories of damage and what to do with each: the repair policy.

`RepairPolicy` is immutable and built once per request. Its defaults, per category:

=================  =======  ==============================================================
category           default  why
=================  =======  ==============================================================
undecodable        flag     bytes no codec could read; shown as U+FFFD, reported by offset
encoding           flag     the declared charset was overruled; informational
mojibake           fix      UTF-8 read as a legacy codec (ftfy, conservative settings)
cjk_phase_slip     fix      CJK text read one byte out of phase
cjk_wrong_codec    fix      CJK text decoded with the wrong CJK codec
ruby_leak          fix      `字(zì)` pronunciation annotations left in the text
markup_leak        fix      tags, tag fragments and entities left in plain text
control_char       fix      C0/C1 controls other than tab, newline, vertical tab, CR, form feed
replacement_char   flag     U+FFFD already in the text; removing it would hide a loss
private_use        flag     private-use characters; meaningful to one vendor only
noncharacter       fix      code points Unicode reserves as never being characters
stray_bom          fix      U+FEFF inside the text
zero_width         fix      zero-width spaces and word joiners inside space-separated words
bidi_control       flag     bidi overrides/isolates can hide content; reported even when off
repeated_block     flag     a paragraph repeated verbatim; never deleted
=================  =======  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from textmend_server.errors import InvalidMinConfidenceError, UnknownPolicyError, shown


class Category(StrEnum):
    """Kinds of damage; the values are the names callers use in a policy map."""

    UNDECODABLE = "undecodable"
    ENCODING = "encoding"
    MOJIBAKE = "mojibake"
    CJK_PHASE_SLIP = "cjk_phase_slip"
    CJK_WRONG_CODEC = "cjk_wrong_codec"
    RUBY_LEAK = "ruby_leak"
    MARKUP_LEAK = "markup_leak"
    CONTROL_CHAR = "control_char"
    REPLACEMENT_CHAR = "replacement_char"
    PRIVATE_USE = "private_use"
    NONCHARACTER = "noncharacter"
    STRAY_BOM = "stray_bom"
    ZERO_WIDTH = "zero_width"
    BIDI_CONTROL = "bidi_control"
    REPEATED_BLOCK = "repeated_block"


class Action(StrEnum):
    """What to do with a category: repair it, report it, or ignore it."""

    FIX = "fix"
    FLAG = "flag"
    OFF = "off"


DEFAULT_ACTIONS: Mapping[Category, Action] = MappingProxyType(
    {
        Category.UNDECODABLE: Action.FLAG,
        Category.ENCODING: Action.FLAG,
        Category.MOJIBAKE: Action.FIX,
        Category.CJK_PHASE_SLIP: Action.FIX,
        Category.CJK_WRONG_CODEC: Action.FIX,
        Category.RUBY_LEAK: Action.FIX,
        Category.MARKUP_LEAK: Action.FIX,
        Category.CONTROL_CHAR: Action.FIX,
        Category.REPLACEMENT_CHAR: Action.FLAG,
        Category.PRIVATE_USE: Action.FLAG,
        Category.NONCHARACTER: Action.FIX,
        Category.STRAY_BOM: Action.FIX,
        Category.ZERO_WIDTH: Action.FIX,
        Category.BIDI_CONTROL: Action.FLAG,
        Category.REPEATED_BLOCK: Action.FLAG,
    }
)

# Categories whose findings never make a document "suspect": they describe, they do not accuse.
INFORMATIONAL = frozenset({Category.ENCODING, Category.REPEATED_BLOCK})

# Categories that can only be reported: the engine never rewrites them, whatever the policy.
FLAG_ONLY = frozenset({Category.UNDECODABLE, Category.ENCODING, Category.REPEATED_BLOCK})

# Categories reported even when the caller turned them off: they can hide content.
ALWAYS_REPORTED = frozenset({Category.BIDI_CONTROL})


@dataclass(frozen=True)
class RepairPolicy:
    """What to do with each category of finding; see the module docstring for defaults.

    >>> RepairPolicy.from_mapping({"mojibake": "flag"}).action(Category.MOJIBAKE)
    <Action.FLAG: 'flag'>
    >>> RepairPolicy().action(Category.BIDI_CONTROL)
    <Action.FLAG: 'flag'>
    """

    overrides: Mapping[Category, Action] = field(default_factory=dict)
    # True when the text is HTML: markup is the document's own, so markup_leak is off.
    html: bool = False
    # Edits rated less likely than this to be right are reported, with the repair as their
    # suggestion, instead of made (`holds_back`). 0 keeps each stage's own floor.
    min_confidence: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:  # NaN fails both comparisons
            raise InvalidMinConfidenceError(self.min_confidence)

    def holds_back(self, confidence: float) -> bool:
        """Whether an edit of this confidence is reported instead of made.

        >>> RepairPolicy(min_confidence=0.9).holds_back(0.85), RepairPolicy().holds_back(0.01)
        (True, False)
        """
        return confidence < self.min_confidence

    def action(self, category: Category) -> Action:
        """The action for category, after overrides and the fixed rules above."""
        if category is Category.MARKUP_LEAK and self.html:
            return Action.OFF
        chosen = self.overrides.get(category, DEFAULT_ACTIONS[category])
        if chosen is Action.FIX and category in FLAG_ONLY:
            chosen = Action.FLAG
        if chosen is Action.OFF and category in ALWAYS_REPORTED:
            chosen = Action.FLAG
        return chosen

    def wants(self, category: Category) -> bool:
        """Whether the category should be looked for at all."""
        return self.action(category) is not Action.OFF

    @classmethod
    def from_mapping(
        cls,
        mapping: Mapping[str, str | Action],
        *,
        html: bool = False,
        min_confidence: float = 0.0,
    ) -> RepairPolicy:
        """Build a policy from names, as they arrive in a request; unknown names raise.

        >>> RepairPolicy.from_mapping({"mojibak": "fix"})
        Traceback (most recent call last):
        ...
        textmend_server.errors.UnknownPolicyError: unknown category 'mojibak' in policy; known: ...
        """
        overrides: dict[Category, Action] = {}
        for name, action in mapping.items():
            try:
                category = Category(name.lower())
            except ValueError:
                known = ", ".join(c.value for c in Category)
                raise UnknownPolicyError(
                    f"unknown category {shown(name)} in policy; known: {known}"
                ) from None
            try:
                overrides[category] = Action(action.lower() if isinstance(action, str) else action)
            except ValueError:
                raise UnknownPolicyError(
                    f"unknown action {shown(str(action))} for {shown(name)}; use fix, flag or off"
                ) from None
        return cls(overrides=MappingProxyType(overrides), html=html, min_confidence=min_confidence)
