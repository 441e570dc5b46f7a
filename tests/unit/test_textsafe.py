"""The one helper that makes upstream text storable in PostgreSQL (every stream uses it)."""

from __future__ import annotations

from include.analytics_ops.textsafe import storable, unstorable


def test_unstorable_names_the_field_and_the_reason():
    assert unstorable("fine é 😀", "event") is None
    assert unstorable("a\x00b", "msg") == "NUL character in 'msg'"
    assert unstorable("a\ud800", "event") == (
        "'event' is not valid Unicode (a lone surrogate such as \\ud800)"
    )


def test_storable_repairs_text_and_json_for_text_and_jsonb():
    value = {"k\ud800": ["\x00x", "\ud83d\ude00", float("nan"), float("-inf"), 1.5, ("\x01",)]}
    assert storable(value) == {"k\ufffd": ["\ufffdx", "😀", "nan", "-inf", 1.5, ["\x01"]]}
    assert storable("a\x01b\tc\n\x7f", controls=True) == "a\ufffdb\tc\n\ufffd"
    assert storable("abcdef", 3) == "abc"
    assert storable({1: None}) == {"1": None}
