"""A small, honest HogQL subset over the sandbox ``events`` table.

Supported::

    SELECT <expr> [AS alias], ... FROM events [[AS] alias]
    [WHERE <bool expr>] [ORDER BY <expr> [ASC|DESC], ...] [LIMIT n] [OFFSET m]

Expressions: the columns ``uuid, event, distinct_id, timestamp, created_at, properties`` (and
``$session_id``), property access ``properties.foo`` / ``properties.$foo``, literals (strings,
numbers, ``true/false/null``), ``{placeholders}`` from ``values`` (spliced as constants), tuples,
``= == != <> < <= > >=`` (tuples compare lexicographically), ``AND OR NOT``, ``IN (...)`` /
``NOT IN``, ``IS [NOT] NULL``, ``+ -`` (numbers; DateTime ± ``INTERVAL n unit``), and the functions
``toUnixTimestamp64Milli/Micro``, ``toUnixTimestamp``, ``toString``, ``toDateTime``,
``toDateTime64(x, p)``, ``now()``. A DateTime compared with a string constant parses the string as a
datetime (naive = project timezone UTC), like ClickHouse. Anything else is a ``HogQLError``
("sandbox HogQL does not support ...") → HTTP 400, never a silently wrong answer.
"""

from __future__ import annotations

import json
import operator
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from include.sandbox import events as ev
from include.sandbox.timeutil import US, clickhouse_str, iso_us, parse_datetime_us


class HogQLError(ValueError):
    """A query the sandbox refuses (HTTP 400)."""


def unsupported(what: str) -> HogQLError:
    return HogQLError(f"sandbox HogQL does not support {what}")


# ----------------------------------------------------------------------------- tokens
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+|--[^\n]*)
  | (?P<str>'(?:[^'\\]|\\.|'')*')
  | (?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<ph>\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\})
  | (?P<qid>`[^`]*`|"[^"]*")
  | (?P<id>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<op>==|!=|<>|<=|>=|<|>|=|\(|\)|,|\.|\+|-|\*|/|;|\[|\]|%)
    """,
    re.VERBOSE,
)

KEYWORDS = {
    "SELECT", "FROM", "WHERE", "ORDER", "BY", "ASC", "DESC", "LIMIT", "OFFSET", "AND", "OR",
    "NOT", "IN", "AS", "IS", "NULL", "TRUE", "FALSE", "INTERVAL", "GROUP", "HAVING", "JOIN",
    "DISTINCT", "UNION", "WITH", "SAMPLE", "PREWHERE", "ARRAY", "WINDOW", "LEFT", "INNER",
    "QUALIFY", "SETTINGS", "NULLS", "BETWEEN", "LIKE", "ILIKE", "CASE", "FINAL",
}  # fmt: skip


@dataclass
class Tok:
    kind: str  # str num ph id kw op end
    value: Any
    pos: int


def tokenize(text: str) -> list[Tok]:
    out: list[Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise HogQLError(f"Syntax error at position {pos}: unexpected {text[pos : pos + 10]!r}")
        kind = m.lastgroup
        raw = m.group()
        if kind == "str":
            body = raw[1:-1].replace("''", "'")
            value = re.sub(r"\\(.)", lambda g: {"n": "\n", "t": "\t"}.get(g[1], g[1]), body)
            out.append(Tok("str", value, pos))
        elif kind == "num":
            out.append(Tok("num", float(raw) if any(c in raw for c in ".eE") else int(raw), pos))
        elif kind == "ph":
            out.append(Tok("ph", raw[1:-1].strip(), pos))
        elif kind == "qid":
            out.append(Tok("id", raw[1:-1], pos))
        elif kind == "id":
            if raw.upper() in KEYWORDS:
                out.append(Tok("kw", raw.upper(), pos))
            else:
                out.append(Tok("id", raw, pos))
        elif kind == "op":
            out.append(Tok("op", raw, pos))
        pos = m.end()
    out.append(Tok("end", None, len(text)))
    return out


# ----------------------------------------------------------------------------- AST
@dataclass
class Const:
    value: Any


@dataclass
class Col:
    name: str


@dataclass
class Prop:
    key: str


@dataclass
class Call:
    name: str
    args: list


@dataclass
class Interval:
    us: int


@dataclass
class Node:
    op: str  # and or not cmp in isnull arith tuple
    args: list
    extra: Any = None


@dataclass
class SelectItem:
    expr: Any
    name: str


@dataclass
class Query:
    select: list[SelectItem]
    where: Any
    order: list[tuple[Any, bool]]  # (expr, descending)
    limit: int | None
    offset: int | None
    text: str = ""


COLUMNS = {
    "uuid": "UUID",
    "event": "String",
    "distinct_id": "String",
    "timestamp": "DateTime64(6, 'UTC')",
    "created_at": "DateTime64(6, 'UTC')",
    "properties": "String",
}
REAL_BUT_UNSUPPORTED = {
    "person_id", "person", "elements_chain", "team_id", "$window_id", "pdi", "poe",
    "$group_0", "$group_1", "elements_chain_href", "elements_chain_texts", "session",
}  # fmt: skip
INTERVAL_UNITS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400, "WEEK": 7 * 86400}
AGGREGATES = {
    "count", "sum", "avg", "min", "max", "uniq", "uniqexact", "any", "argmax", "argmin",
    "groupArray", "countif", "sumif", "quantile", "median",
}  # fmt: skip


class Parser:
    def __init__(self, text: str, values: dict[str, Any]) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.values = values
        self.alias = self._find_alias()
        self.select_aliases: dict[str, Any] = {}

    def _find_alias(self) -> str | None:
        """``FROM events [AS] e``: the alias may qualify columns before FROM is reached."""
        toks = self.toks
        for k, t in enumerate(toks[:-2]):
            if t.kind == "kw" and t.value == "FROM" and toks[k + 1].value == "events":
                nxt = toks[k + 2]
                if nxt.kind == "kw" and nxt.value == "AS" and toks[k + 3].kind == "id":
                    return toks[k + 3].value
                if nxt.kind == "id":
                    return nxt.value
        return None

    # helpers
    def peek(self, k: int = 0) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def at_kw(self, *words: str) -> bool:
        t = self.peek()
        return t.kind == "kw" and t.value in words

    def at_op(self, *ops: str) -> bool:
        t = self.peek()
        return t.kind == "op" and t.value in ops

    def expect_kw(self, word: str) -> None:
        t = self.next()
        if t.kind != "kw" or t.value != word:
            raise HogQLError(f"Syntax error at position {t.pos}: expected {word}")

    def expect_op(self, op: str) -> None:
        t = self.next()
        if t.kind != "op" or t.value != op:
            raise HogQLError(f"Syntax error at position {t.pos}: expected {op!r}")

    # grammar
    def parse(self) -> Query:
        if self.at_kw("WITH"):
            raise unsupported("WITH (common table expressions)")
        self.expect_kw("SELECT")
        if self.at_kw("DISTINCT"):
            raise unsupported("SELECT DISTINCT")
        select = []
        while True:
            if self.at_op("*"):
                raise unsupported("SELECT * (list the columns you need)")
            start = self.peek().pos
            expr = self.expr()
            end = self.peek().pos
            name = self.text[start:end].strip()
            if self.at_kw("AS"):
                self.next()
                t = self.next()
                if t.kind != "id":
                    raise HogQLError(f"Syntax error at position {t.pos}: expected an alias")
                name = t.value
                self.select_aliases[name] = expr
            elif isinstance(expr, Col):
                name = expr.name
            select.append(SelectItem(expr, name))
            if self.at_op(","):
                self.next()
                continue
            break
        self.expect_kw("FROM")
        t = self.next()
        if t.kind == "op" and t.value == "(":
            raise unsupported("subqueries")
        if t.kind != "id":
            raise HogQLError(f"Syntax error at position {t.pos}: expected a table name")
        if t.value != "events":
            raise unsupported(f"the table {t.value!r} (only `events` is served)")
        if self.at_kw("AS"):
            self.next()
            self.alias = self.next().value
        elif self.peek().kind == "id":
            self.alias = self.next().value
        if self.at_kw("FINAL", "SAMPLE", "JOIN", "LEFT", "INNER", "ARRAY"):
            raise unsupported(f"{self.peek().value} after FROM")
        where = None
        if self.at_kw("PREWHERE"):
            raise unsupported("PREWHERE")
        if self.at_kw("WHERE"):
            self.next()
            where = self.expr()
        for word in ("GROUP", "HAVING", "WINDOW", "QUALIFY"):
            if self.at_kw(word):
                raise unsupported(f"{word} (no aggregation in the sandbox)")
        order: list[tuple[Any, bool]] = []
        if self.at_kw("ORDER"):
            self.next()
            self.expect_kw("BY")
            while True:
                e = self.expr()
                desc = False
                if self.at_kw("ASC", "DESC"):
                    desc = self.next().value == "DESC"
                if self.at_kw("NULLS"):
                    raise unsupported("NULLS FIRST/LAST")
                order.append((e, desc))
                if self.at_op(","):
                    self.next()
                    continue
                break
        limit = offset = None
        if self.at_kw("LIMIT"):
            self.next()
            limit = self.int_value()
            if self.at_op(","):  # LIMIT offset, n
                self.next()
                offset, limit = limit, self.int_value()
            if self.at_kw("BY"):
                raise unsupported("LIMIT BY")
        if self.at_kw("OFFSET"):
            self.next()
            offset = self.int_value()
        if self.at_kw("UNION"):
            raise unsupported("UNION")
        if self.at_kw("SETTINGS"):
            raise unsupported("SETTINGS")
        if self.at_op(";"):
            self.next()
        t = self.peek()
        if t.kind != "end":
            raise HogQLError(f"Syntax error at position {t.pos}: unexpected {t.value!r}")
        return Query(select, where, order, limit, offset, self.text)

    def int_value(self) -> int:
        t = self.next()
        value = self.placeholder(t) if t.kind == "ph" else t.value
        if t.kind not in ("num", "ph") or not isinstance(value, int) or isinstance(value, bool):
            raise HogQLError(f"Syntax error at position {t.pos}: expected an integer")
        if value < 0:
            raise HogQLError("LIMIT/OFFSET must not be negative")
        return value

    def placeholder(self, t: Tok) -> Any:
        if t.value not in self.values:
            raise HogQLError(f"Placeholder {{{t.value}}} is not available in this context.")
        return self.values[t.value]

    def expr(self):
        return self.or_expr()

    def or_expr(self):
        items = [self.and_expr()]
        while self.at_kw("OR"):
            self.next()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Node("or", items)

    def and_expr(self):
        items = [self.not_expr()]
        while self.at_kw("AND"):
            self.next()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else Node("and", items)

    def not_expr(self):
        if self.at_kw("NOT"):
            self.next()
            return Node("not", [self.not_expr()])
        return self.cmp_expr()

    def cmp_expr(self):
        left = self.add_expr()
        if self.at_op("=", "==", "!=", "<>", "<", "<=", ">", ">="):
            op = self.next().value
            op = {"==": "=", "<>": "!="}.get(op, op)
            return Node("cmp", [left, self.add_expr()], op)
        negate = False
        if self.at_kw("NOT") and self.peek(1).kind == "kw" and self.peek(1).value == "IN":
            self.next()
            negate = True
        if self.at_kw("IN"):
            self.next()
            if self.peek().kind == "ph":
                value = self.placeholder(self.next())
                if not isinstance(value, list):
                    raise HogQLError("IN {placeholder} needs a list value")
                items = [Const(v) for v in value]
            else:
                self.expect_op("(")
                if self.at_kw("SELECT"):
                    raise unsupported("subqueries")
                items = [self.expr()]
                while self.at_op(","):
                    self.next()
                    items.append(self.expr())
                self.expect_op(")")
            return Node("in", [left, *items], negate)
        if self.at_kw("IS"):
            self.next()
            neg = False
            if self.at_kw("NOT"):
                self.next()
                neg = True
            self.expect_kw("NULL")
            return Node("isnull", [left], neg)
        if self.at_kw("BETWEEN", "LIKE", "ILIKE"):
            raise unsupported(self.peek().value)
        return left

    def add_expr(self):
        left = self.mul_expr()
        while self.at_op("+", "-"):
            op = self.next().value
            left = Node("arith", [left, self.mul_expr()], op)
        return left

    def mul_expr(self):
        left = self.unary()
        if self.at_op("*", "/", "%"):
            raise unsupported(f"the operator {self.peek().value!r}")
        return left

    def unary(self):
        if self.at_op("-"):
            self.next()
            inner = self.unary()
            if isinstance(inner, Const) and isinstance(inner.value, int | float):
                return Const(-inner.value)
            raise unsupported("unary minus on non-constants")
        return self.primary()

    def primary(self):
        t = self.next()
        if t.kind == "num" or t.kind == "str":
            return Const(t.value)
        if t.kind == "ph":
            return Const(self.placeholder(t))
        if t.kind == "kw":
            if t.value == "NULL":
                return Const(None)
            if t.value in ("TRUE", "FALSE"):
                return Const(t.value == "TRUE")
            if t.value == "INTERVAL":
                n = self.next()
                amount = self.placeholder(n) if n.kind == "ph" else n.value
                unit = self.next()
                name = str(unit.value).upper().rstrip("S")
                if not isinstance(amount, int | float) or name not in INTERVAL_UNITS:
                    raise unsupported(
                        "this INTERVAL form (use INTERVAL <n> SECOND|MINUTE|HOUR|DAY|WEEK)"
                    )
                return Interval(int(amount * INTERVAL_UNITS[name] * US))
            if t.value == "CASE":
                raise unsupported("CASE")
            raise HogQLError(f"Syntax error at position {t.pos}: unexpected {t.value}")
        if t.kind == "op" and t.value == "(":
            if self.at_kw("SELECT"):
                raise unsupported("subqueries")
            items = [self.expr()]
            while self.at_op(","):
                self.next()
                items.append(self.expr())
            self.expect_op(")")
            return items[0] if len(items) == 1 else Node("tuple", items)
        if t.kind == "id":
            name = t.value
            if self.at_op("("):
                self.next()
                args = []
                if not self.at_op(")"):
                    args.append(self.expr())
                    while self.at_op(","):
                        self.next()
                        args.append(self.expr())
                self.expect_op(")")
                if self.at_op("("):
                    raise unsupported("parametric functions")
                return Call(name, args)
            # qualified names: events.x, alias.x, properties.x
            parts = [name]
            while self.at_op("."):
                self.next()
                nt = self.next()
                if nt.kind not in ("id", "kw", "num"):
                    raise HogQLError(f"Syntax error at position {nt.pos}: expected a field name")
                parts.append(str(nt.value))
            if len(parts) > 1 and parts[0] in ("events", self.alias):
                parts = parts[1:]
            if self.at_op("["):
                self.next()
                key = self.next()
                self.expect_op("]")
                if parts == ["properties"] and key.kind == "str":
                    return Prop(key.value)
                raise unsupported("this subscript")
            if parts[0] == "properties" and len(parts) == 2:
                return Prop(parts[1])
            if len(parts) == 1 and parts[0] == "$session_id":
                return Prop("$session_id")
            if len(parts) != 1:
                raise unsupported(f"the field {'.'.join(parts)!r}")
            if parts[0] in COLUMNS:
                return Col(parts[0])
            if parts[0] in self.select_aliases:
                return self.select_aliases[parts[0]]
            if parts[0] in REAL_BUT_UNSUPPORTED:
                raise unsupported(f"the field {parts[0]!r} (supported: {', '.join(COLUMNS)})")
            raise HogQLError(f"Unable to resolve field: {parts[0]}")
        raise HogQLError(f"Syntax error at position {t.pos}: unexpected {t.value!r}")


def parse(text: str, values: dict[str, Any] | None = None) -> Query:
    if not isinstance(text, str) or not text.strip():
        raise HogQLError("query must be a non-empty HogQL string")
    return Parser(text, values or {}).parse()


# ----------------------------------------------------------------------------- compiler
# Static types: dt (int µs), int, float, str, uuid, bool, null, any (property value), tuple.
@dataclass
class Compiled:
    fn: Callable[[tuple], Any]
    type: str
    const: bool = False
    value: Any = None
    nullable: bool = False
    key: str | None = None  # canonical source: created_ms / uuid / created_us / ts_us
    items: list = field(default_factory=list)  # tuple members


def _const(value: Any) -> Compiled:
    if value is None:
        t = "null"
    elif isinstance(value, bool):
        t = "bool"
    elif isinstance(value, int):
        t = "int"
    elif isinstance(value, float):
        t = "float"
    elif isinstance(value, str):
        t = "str"
    elif isinstance(value, list | tuple):
        raise unsupported("array constants (use IN (...))")
    else:
        raise HogQLError(f"unsupported constant {value!r}")
    return Compiled(lambda r, v=value: v, t, True, value, value is None)


def _props_of(r: tuple) -> dict:
    try:
        value = json.loads(r[ev.PROPS])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def compile_expr(node) -> Compiled:
    if isinstance(node, Const):
        return _const(node.value)
    if isinstance(node, Interval):
        return Compiled(lambda r, v=node.us: v, "interval", True, node.us)
    if isinstance(node, Col):
        idx = {
            "uuid": ev.UUID,
            "event": ev.EVENT,
            "distinct_id": ev.DISTINCT_ID,
            "timestamp": ev.TS_US,
            "created_at": ev.CREATED_US,
            "properties": ev.PROPS,
        }[node.name]
        typ = {"uuid": "uuid", "timestamp": "dt", "created_at": "dt"}.get(node.name, "str")
        key = {"uuid": "uuid", "created_at": "created_us", "timestamp": "ts_us"}.get(node.name)
        return Compiled(operator.itemgetter(idx), typ, key=key)
    if isinstance(node, Prop):
        k = node.key

        def prop(r, k=k):
            return _props_of(r).get(k)

        return Compiled(prop, "any", nullable=True)
    if isinstance(node, Call):
        return _compile_call(node)
    assert isinstance(node, Node)
    op = node.op
    if op == "tuple":
        items = [compile_expr(a) for a in node.args]
        fns = [c.fn for c in items]
        if all(c.const for c in items):
            value = tuple(c.value for c in items)
            return Compiled(lambda r, v=value: v, "tuple", True, value, items=items)
        return Compiled(lambda r: tuple(f(r) for f in fns), "tuple", items=items)
    if op in ("and", "or"):
        fns = [_bool(compile_expr(a)).fn for a in node.args]
        fn = fns[0]
        for nxt in fns[1:]:
            if op == "and":
                fn = (lambda a, b: lambda r: a(r) and b(r))(fn, nxt)
            else:
                fn = (lambda a, b: lambda r: a(r) or b(r))(fn, nxt)
        return Compiled(fn, "bool")
    if op == "not":
        f = _bool(compile_expr(node.args[0])).fn
        return Compiled(lambda r: not f(r), "bool")
    if op == "isnull":
        f = compile_expr(node.args[0]).fn
        if node.extra:
            return Compiled(lambda r: f(r) is not None, "bool")
        return Compiled(lambda r: f(r) is None, "bool")
    if op == "cmp":
        return _compile_cmp(node.extra, compile_expr(node.args[0]), compile_expr(node.args[1]))
    if op == "in":
        left = compile_expr(node.args[0])
        options = [compile_expr(a) for a in node.args[1:]]
        if not all(o.const for o in options):
            raise unsupported("IN with non-constant members")
        values = frozenset(_coerce_const(left, o) for o in options)
        f = left.fn
        if node.extra:
            return Compiled(lambda r: f(r) not in values, "bool")
        return Compiled(lambda r: f(r) in values, "bool")
    if op == "arith":
        return _compile_arith(node.extra, compile_expr(node.args[0]), compile_expr(node.args[1]))
    raise unsupported(op)


def _bool(c: Compiled) -> Compiled:
    if c.type not in ("bool", "any", "int", "null"):
        raise HogQLError(f"Illegal type {c.type} of a boolean condition")
    return c


def _coerce_const(left: Compiled, c: Compiled) -> Any:
    """Convert a constant to the other side's type, like ClickHouse converts literals."""
    v = c.value
    if v is None:
        return None
    if left.type == "dt":
        if c.type == "str":
            us = parse_datetime_us(v)
            if us is None:
                raise HogQLError(f"Cannot parse string {v!r} as DateTime64")
            return us
        if c.type == "int":
            return v * US  # unix seconds
        if c.type == "dt":
            return v
        raise HogQLError(f"Cannot compare DateTime64 with {c.type}")
    if left.type in ("int", "float"):
        if c.type == "str":
            try:
                return (
                    int(v) if left.type == "int" and v.strip().lstrip("-").isdigit() else float(v)
                )
            except ValueError as exc:
                raise HogQLError(f"Cannot parse string {v!r} as a number") from exc
        if c.type in ("int", "float", "bool"):
            return v
        raise HogQLError(f"Cannot compare {left.type} with {c.type}")
    if left.type == "uuid":
        if c.type != "str":
            raise HogQLError(f"Cannot compare UUID with {c.type}")
        text = v.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text):
            raise HogQLError(f"Cannot parse UUID from string {v!r}")
        return text
    if left.type == "str":
        if c.type not in ("str", "uuid"):
            raise HogQLError(f"Cannot compare String with {c.type} (no supertype)")
        return v
    if left.type == "any":  # property values: compare as the constant's type
        return v
    if left.type == "bool":
        return bool(v)
    raise HogQLError(f"Cannot compare {left.type} with {c.type}")


_OPS = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}


def _compile_cmp(op: str, a: Compiled, b: Compiled) -> Compiled:
    pyop = _OPS[op]
    if a.const and not b.const:
        return _compile_cmp(_FLIP[op], b, a)
    if a.type == "tuple" or b.type == "tuple":
        if a.type != "tuple" or b.type != "tuple" or len(a.items) != len(b.items):
            raise HogQLError("Tuple comparison needs two tuples of the same size")
        if b.const:
            value = tuple(_coerce_const(x, y) for x, y in zip(a.items, b.items, strict=True))
            fns = [x.fn for x in a.items]
            if len(fns) == 2:
                f0, f1 = fns
                return Compiled(lambda r: pyop((f0(r), f1(r)), value), "bool")
            return Compiled(lambda r: pyop(tuple(f(r) for f in fns), value), "bool")
        for x, y in zip(a.items, b.items, strict=True):
            _check_comparable(x, y)
        fa, fb = a.fn, b.fn
        return Compiled(lambda r: _safe(pyop, fa(r), fb(r)), "bool")
    if b.const:
        value = _coerce_const(a, b)
        fa = a.fn
        if value is None:
            return Compiled(lambda r: None, "null", nullable=True)
        if a.type == "any":
            return Compiled(lambda r: _safe_prop(pyop, fa(r), value), "bool")
        if a.nullable:
            return Compiled(lambda r: _safe(pyop, fa(r), value), "bool")
        return Compiled(lambda r: pyop(fa(r), value), "bool")
    _check_comparable(a, b)
    fa, fb = a.fn, b.fn
    return Compiled(lambda r: _safe(pyop, fa(r), fb(r)), "bool")


def _check_comparable(a: Compiled, b: Compiled) -> None:
    groups = {"dt": "dt", "int": "num", "float": "num", "bool": "num", "str": "str", "uuid": "str"}
    ga, gb = groups.get(a.type, a.type), groups.get(b.type, b.type)
    if "any" in (ga, gb) or "null" in (ga, gb):
        return
    if ga != gb:
        raise HogQLError(f"Cannot compare {a.type} with {b.type} (no supertype)")


def _safe(pyop, x, y):
    if x is None or y is None:
        return None
    try:
        return pyop(x, y)
    except TypeError:
        return None


def _safe_prop(pyop, x, value):
    if x is None:
        return None
    if isinstance(value, int | float) and not isinstance(x, int | float):
        try:
            x = float(x)
        except (TypeError, ValueError):
            return None
    elif isinstance(value, str) and not isinstance(x, str):
        x = json.dumps(x) if not isinstance(x, int | float) else str(x)
    try:
        return pyop(x, value)
    except TypeError:
        return None


def _compile_arith(op: str, a: Compiled, b: Compiled) -> Compiled:
    sign = 1 if op == "+" else -1
    if a.type == "dt" and b.type == "interval":
        fa, v = a.fn, b.value * sign
        res = Compiled(lambda r: fa(r) + v, "dt")
    elif a.type == "interval" and b.type == "dt" and op == "+":
        fb, v = b.fn, a.value
        res = Compiled(lambda r: fb(r) + v, "dt")
    elif a.type in ("int", "float") and b.type in ("int", "float"):
        fa, fb = a.fn, b.fn
        typ = "float" if "float" in (a.type, b.type) else "int"
        res = Compiled(lambda r: fa(r) + sign * fb(r), typ)
    elif a.type == "str" and a.const and b.type == "interval":
        us = parse_datetime_us(a.value)
        if us is None:
            raise HogQLError(f"Cannot parse string {a.value!r} as DateTime64")
        v = us + sign * b.value
        res = Compiled(lambda r: v, "dt")
    else:
        raise unsupported(f"{a.type} {op} {b.type}")
    if a.const and b.const:
        value = res.fn(())
        return Compiled(lambda r: value, res.type, True, value)
    return res


def _to_dt(c: Compiled, precision: int = 6) -> Compiled:
    unit = 10 ** (6 - precision)
    if c.type == "dt":
        if unit == 1:
            return c
        f = c.fn
        return Compiled(lambda r: f(r) // unit * unit, "dt")
    if c.type == "str":
        if c.const:
            us = parse_datetime_us(c.value)
            if us is None:
                raise HogQLError(f"Cannot parse string {c.value!r} as DateTime64")
            us = us // unit * unit
            return Compiled(lambda r: us, "dt", True, us)
        f = c.fn

        def parse_row(r):
            us = parse_datetime_us(f(r))
            return None if us is None else us // unit * unit

        return Compiled(parse_row, "dt", nullable=True)
    if c.type in ("int", "float"):
        if c.const:
            us = int(c.value * US) // unit * unit
            return Compiled(lambda r: us, "dt", True, us)
        f = c.fn
        return Compiled(lambda r: int(f(r) * US) // unit * unit, "dt")
    raise HogQLError(f"Illegal type {c.type} of argument of toDateTime")


def _compile_call(node: Call) -> Compiled:
    name = node.name
    lname = name.lower()
    args = [compile_expr(a) for a in node.args]
    if lname in {a.lower() for a in AGGREGATES}:
        raise unsupported(f"aggregate functions ({name}()); the sandbox serves raw event rows")
    if name in ("toUnixTimestamp64Milli", "toUnixTimestamp64Micro", "toUnixTimestamp"):
        if len(args) != 1 or args[0].type != "dt":
            raise HogQLError(f"{name}() takes one DateTime64 argument")
        a = args[0]
        div = {"toUnixTimestamp64Milli": 1000, "toUnixTimestamp64Micro": 1, "toUnixTimestamp": US}[
            name
        ]
        if name == "toUnixTimestamp64Milli" and a.key == "created_us":
            return Compiled(operator.itemgetter(ev.CREATED_MS), "int", key="created_ms")
        f = a.fn
        if a.const:
            v = a.value // div
            return Compiled(lambda r: v, "int", True, v)
        return Compiled(lambda r: f(r) // div, "int", nullable=a.nullable)
    if name == "toString":
        if len(args) != 1:
            raise HogQLError("toString() takes one argument")
        a = args[0]
        f = a.fn
        if a.type == "dt":
            return Compiled(lambda r: clickhouse_str(f(r)), "str")
        if a.type in ("str", "uuid"):
            return Compiled(f, "str", a.const, a.value)
        return Compiled(lambda r: None if f(r) is None else str(f(r)), "str", nullable=True)
    if name in (
        "toDateTime",
        "toDateTime64",
        "parseDateTimeBestEffort",
        "parseDateTime64BestEffort",
    ):
        if not args:
            raise HogQLError(f"{name}() needs an argument")
        precision = 0 if name in ("toDateTime", "parseDateTimeBestEffort") else 6
        if name == "toDateTime64":
            if len(args) < 2 or not args[1].const or not isinstance(args[1].value, int):
                raise HogQLError("toDateTime64(x, precision) needs a constant precision")
            precision = args[1].value
            if not 0 <= precision <= 6:
                raise unsupported("toDateTime64 precision above 6")
        if len(args) > (2 if name == "toDateTime64" else 1):
            tz = args[-1]
            if not (tz.const and tz.value == "UTC"):
                raise unsupported("time zones other than 'UTC' in toDateTime")
        return _to_dt(args[0], precision)
    if name == "now" and not args:
        return Compiled(lambda r: int(time.time() * US), "dt")
    raise unsupported(f"the function {name}()")


# ----------------------------------------------------------------------------- bounds
def time_bounds(where) -> tuple[tuple[int | None, int | None], tuple[int | None, int | None]]:
    """Conservative [lo, hi] µs bounds on created_at and timestamp implied by the top-level ANDs."""
    bounds = {"created_us": [None, None], "ts_us": [None, None]}
    conjuncts = []

    def flatten(n):
        if isinstance(n, Node) and n.op == "and":
            for a in n.args:
                flatten(a)
        elif n is not None:
            conjuncts.append(n)

    flatten(where)
    for n in conjuncts:
        if not (isinstance(n, Node) and n.op == "cmp"):
            continue
        op = n.extra
        try:
            left, right = compile_expr(n.args[0]), compile_expr(n.args[1])
        except HogQLError:
            continue
        if left.const and not right.const:
            left, right, op = right, left, _FLIP[op]
        if not right.const or op == "!=":
            continue
        if left.type == "tuple":
            if right.type != "tuple" or not left.items:
                continue
            first, value = left.items[0], right.value[0]
            first_c = _const(value)
            # (a, b) > (x, y) implies a >= x; (a, b) < (x, y) implies a <= x.
            op = {">": ">=", ">=": ">=", "<": "<=", "<=": "<=", "=": "="}[op]
            left, right = first, first_c
        if left.key not in ("created_ms", "created_us", "ts_us"):
            continue
        try:
            value = _coerce_const(left, right)
        except HogQLError:
            continue
        if value is None:
            continue
        if left.key == "created_ms":
            lo_us, hi_us = value * 1000, value * 1000 + 999
            target = bounds["created_us"]
        else:
            lo_us = hi_us = value
            target = bounds[left.key]
        if op in (">", ">=", "="):
            target[0] = lo_us if target[0] is None else max(target[0], lo_us)
        if op in ("<", "<=", "="):
            target[1] = hi_us if target[1] is None else min(target[1], hi_us)
    return tuple(bounds["created_us"]), tuple(bounds["ts_us"])


def output_formatter(c: Compiled) -> Callable[[tuple], Any]:
    """Row -> JSON-ready value of a select expression (DateTimes as ISO strings with Z)."""
    if c.key == "created_us":
        return operator.itemgetter(ev.CREATED_ISO)
    if c.key == "ts_us":
        return operator.itemgetter(ev.TS_ISO)
    if c.type == "dt":
        f = c.fn
        return lambda r: None if (v := f(r)) is None else iso_us(v)
    if c.type == "tuple":
        fns = [output_formatter(i) for i in c.items]
        return lambda r: [f(r) for f in fns]
    return c.fn


def clickhouse_type(c: Compiled) -> str:
    return {
        "dt": "DateTime64(6, 'UTC')",
        "int": "Int64",
        "float": "Float64",
        "str": "String",
        "uuid": "UUID",
        "bool": "UInt8",
        "null": "Nullable(Nothing)",
        "any": "Nullable(String)",
        "tuple": "Tuple",
    }.get(c.type, "String")
