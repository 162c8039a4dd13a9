"""Building a `RepairRequest`: from keyword arguments (`make_request`), or from a mapping as
in JSON Lines input (`as_request`), checked here rather than refused by the server.
"""

from __future__ import annotations

import base64
import difflib
import itertools
from collections.abc import Mapping
from typing import Any, TypedDict

from textmend.v1 import textmend_pb2
from textmend_client.errors import InvalidRequest

#: Longest `RepairRequest.id` the server accepts, in characters (the proto's limit).
MAX_ID_CHARS = 2048

_ACTIONS: Mapping[str, textmend_pb2.Policy.ValueType] = {
    "fix": textmend_pb2.POLICY_FIX,
    "flag": textmend_pb2.POLICY_FLAG,
    "off": textmend_pb2.POLICY_OFF,
}


class RequestFields(TypedDict, total=False):
    """The fields of a request other than its content, as `make_request` takes them (and
    `TextMendClient.repair` passes them on); each may be left out for its default."""

    id: str
    declared_encoding: str
    content_type: str
    policy: Mapping[str, str] | None
    omit_diff: bool
    min_confidence: float


def policy_map(policy: Mapping[str, str] | None) -> dict[str, textmend_pb2.Policy.ValueType]:
    """Turn `{"mojibake": "flag"}` into the request's `policy` map of `Policy` values.

    Category names are checked by the server, which takes them in lower case only; this
    function lowers them, so `--policy MOJIBAKE=flag` works. Actions must be fix, flag or off.

    >>> policy_map({"Mojibake": "FLAG"}) == {"mojibake": textmend_pb2.POLICY_FLAG}
    True
    """
    if policy is not None and not isinstance(policy, Mapping):
        raise InvalidRequest(
            f'"policy" must map categories to actions, as {{"mojibake": "flag"}}, '
            f"not {type(policy).__name__}"
        )
    result: dict[str, textmend_pb2.Policy.ValueType] = {}
    for name, action in (policy or {}).items():
        try:
            result[str(name).lower()] = _ACTIONS[str(action).lower()]
        except KeyError:
            raise InvalidRequest(
                f"unknown action {action!r} for {name!r} in policy; use fix, flag or off"
            ) from None
    return result


def _content_bytes(content: bytes | bytearray | memoryview | str) -> bytes:
    """Bytes are sent as they are; text is sent as UTF-8."""
    if isinstance(content, str):
        return content.encode("utf-8")
    if isinstance(content, bytes | bytearray | memoryview):
        return bytes(content)
    raise TypeError(
        f"content must be bytes (the document as fetched) or str, not {type(content).__name__}"
    )


def check_id(id: str) -> None:
    """Raise `InvalidRequest` for an id longer than the server accepts (`MAX_ID_CHARS`), rather than
    let it travel to be refused."""
    if len(id) > MAX_ID_CHARS:
        raise InvalidRequest(
            f"id is {len(id)} characters, over the server's limit of {MAX_ID_CHARS}: use a "
            "shorter id (a hash of a long name, for example)"
        )


def check_min_confidence(value: float) -> None:
    """Raise `InvalidRequest` for a `min_confidence` the server would refuse: not a number from 0
    to 1 (0 keeps each repair's own floor).

    >>> check_min_confidence(0.9)
    >>> try:
    ...     check_min_confidence(90)
    ... except InvalidRequest as exc:
    ...     print(exc)
    min_confidence must be a number from 0 to 1, not 90 (0.9, not 90, for 90%)
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        hint = f" ({value / 100:g}, not {value}, for {value}%)" if value in range(2, 101) else ""
        raise InvalidRequest(f"min_confidence must be a number from 0 to 1, not {value!r}{hint}")


def make_request(
    content: bytes | str,
    *,
    id: str = "",
    declared_encoding: str = "",
    content_type: str = "",
    policy: Mapping[str, str] | None = None,
    omit_diff: bool = False,
    min_confidence: float = 0.0,
) -> textmend_pb2.RepairRequest:
    """Build a `RepairRequest`; str content is sent as UTF-8.

    An id longer than the server accepts raises `InvalidRequest` here (`check_id`), and so
    does a `min_confidence` that is not a number from 0 to 1 (`check_min_confidence`).
    """
    check_id(id)
    check_min_confidence(min_confidence)
    return textmend_pb2.RepairRequest(
        id=id,
        content=_content_bytes(content),
        declared_encoding=declared_encoding,
        content_type=content_type,
        policy=policy_map(policy),
        omit_diff=omit_diff,
        min_confidence=min_confidence,
    )


def _flag(value: Any, name: str) -> bool:
    """A JSON true or false: `"false"` as a string is not false, so it is refused."""
    if not isinstance(value, bool):
        raise InvalidRequest(f'"{name}" must be true or false, not {value!r}')
    return value


#: The keys `as_request` reads from a mapping (a JSON Lines line).
REQUEST_KEYS = (
    "id",
    "text",
    "content",
    "content_b64",
    "declared_encoding",
    "content_type",
    "policy",
    "omit_diff",
    "min_confidence",
)
# How alike an unknown key must be to one of REQUEST_KEYS, both in lower case without `_` or
# `-`, to be refused as its misspelling (difflib's ratio): `declared_encodng` 0.97,
# `minConfidence` and `ID` 1.0, `texts` 0.89; `uid` and `idx` 0.8, `content_b32` 0.82,
# `text_len` 0.67 and `url` 0, which may be a line's own metadata, pass. Chosen on those.
MISSPELT_RATIO = 0.85
# Unknown keys looked at per line; a line with more is judged on these.
MISSPELT_KEYS_CHECKED = 16


def _bare(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


_BARE_KEYS = {_bare(key): key for key in REQUEST_KEYS}


def shown_key(key: object) -> str:
    """A key as an error message quotes it: its repr, cut to 60 characters."""
    text = repr(str(key))
    return text if len(text) <= 60 else text[:57] + "..."


def misspelt_key(item: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first key of item that is not one of `REQUEST_KEYS` but close to one, with it.

    Other keys (a line's own metadata, `url`, `fetched_at`) are left alone; a field whose name
    is a letter off, or in another case (`minConfidence`), would otherwise be dropped silently,
    and its document repaired without it.

    >>> misspelt_key({"id": 1, "text": "a", "declared_encodng": "latin-1"})
    ('declared_encodng', 'declared_encoding')
    >>> misspelt_key({"ID": 1, "text": "a"})
    ('ID', 'id')
    >>> misspelt_key({"id": 1, "text": "a", "url": "https://example.org/", "uid": 7}) is None
    True
    """
    unknown = (key for key in item if key not in REQUEST_KEYS)
    for key in itertools.islice(unknown, MISSPELT_KEYS_CHECKED):
        close = difflib.get_close_matches(_bare(str(key)), _BARE_KEYS, n=1, cutoff=MISSPELT_RATIO)
        if close:
            return str(key), _BARE_KEYS[close[0]]
    return None


def as_request(item: textmend_pb2.RepairRequest | Mapping[str, Any]) -> textmend_pb2.RepairRequest:
    """Accept a `RepairRequest`, or a mapping as in JSON Lines input.

    The mapping holds `id` and one of `text` (str), `content` (bytes or str) or `content_b64`,
    plus optional `declared_encoding`, `content_type`, `policy`, `omit_diff` and
    `min_confidence`. Other keys are ignored, but one close to those names is refused as
    their misspelling (`misspelt_key`).

    >>> as_request({"id": 7, "content_b64": "aGk="}).content
    b'hi'
    """
    if isinstance(item, textmend_pb2.RepairRequest):
        return item
    if not isinstance(item, Mapping):
        raise TypeError(f"expected a RepairRequest or a mapping, not {type(item).__name__}")
    misspelt = misspelt_key(item)
    if misspelt is not None:
        raise InvalidRequest(f"unknown key {shown_key(misspelt[0])}: did you mean {misspelt[1]!r}?")
    sources = [key for key in ("text", "content", "content_b64") if key in item]
    if len(sources) != 1:
        raise InvalidRequest('give exactly one of "text", "content" or "content_b64"')
    if sources == ["content_b64"]:
        try:
            content: bytes | str = base64.b64decode(item["content_b64"], validate=True)
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(f'"content_b64" is not valid base64: {exc}') from None
    else:
        content = item[sources[0]]
        if sources == ["text"] and not isinstance(content, str):
            raise InvalidRequest('"text" must be a string')
    return make_request(
        content,
        id=str(item.get("id", "")),
        declared_encoding=str(item.get("declared_encoding") or ""),
        content_type=str(item.get("content_type") or ""),
        policy=item.get("policy"),
        omit_diff=_flag(item.get("omit_diff", False), "omit_diff"),
        min_confidence=item.get("min_confidence") or 0.0,
    )
