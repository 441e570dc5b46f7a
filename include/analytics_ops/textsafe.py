"""Upstream text and JSON made storable in PostgreSQL, one way for every stream.

PostgreSQL's text and jsonb refuse NUL, a lone surrogate (what Python makes of a JSON ``"\\ud800"``
escape) cannot be encoded in UTF-8, and jsonb has no NaN/Infinity. :func:`unstorable` says why a
value must be refused (validation: the row becomes a dead letter); :func:`storable` repairs a value
that must be kept anyway (a dead letter's payload, an issue title).
"""

from __future__ import annotations

import math
import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def unstorable(text: str, name: str) -> str | None:
    """Why ``text`` cannot be stored in PostgreSQL as it is, naming the field; None if it can."""
    if "\x00" in text:
        return f"NUL character in '{name}'"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return not_unicode(name)
    return None


def not_unicode(name: str) -> str:
    """The reason for a field that holds a lone surrogate."""
    return f"'{name}' is not valid Unicode (a lone surrogate such as \\ud800)"


def storable(value: Any, limit: int | None = None, *, controls: bool = False) -> Any:
    """``value`` made storable in PostgreSQL text/jsonb: NUL and lone surrogates become U+FFFD
    (a surrogate pair becomes its character), NaN/Infinity their text (``"inf"``); with
    ``controls`` the other control characters except tab/newline/CR too. Strings are cut to
    ``limit``; dicts (keys as text) and lists are cleaned recursively."""
    if isinstance(value, str):
        text = _CONTROL.sub("\ufffd", value) if controls else value.replace("\x00", "\ufffd")
        if not text.isascii():
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return text[:limit] if limit is not None else text
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(storable(k, controls=controls)): storable(v, controls=controls)
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, list | tuple):
        return [storable(v, controls=controls) for v in value]
    return value
