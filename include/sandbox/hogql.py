"""HogQL → ClickHouse SQL for the sandbox's ``events`` table, parsed by PostHog's own parser.

The text is parsed by ``hogql_parser.parse_select_json`` (the C++ parser PostHog runs, from the
``hogql-parser`` package); its JSON AST is printed as ClickHouse SQL that the in-process engine
(``include.sandbox.clickhouse``, chDB) executes. Only what a HogQL client of ``events`` needs is
printed — ``SELECT … FROM events [AS e] [WHERE …] [ORDER BY …] [LIMIT n]`` over the columns
``uuid, event, distinct_id, timestamp, created_at, properties`` and ``properties.<key>``, with
comparisons, ``AND/OR/NOT``, ``IN (…)``, tuples, arithmetic, intervals and a short list of
functions. Anything else is a ``HogQLError`` ("sandbox HogQL does not support …") → HTTP 400, never
a silently different answer. Semantics (types, comparison, UUID order, string → DateTime parsing)
are ClickHouse's own.

As in PostHog's query runner, ``values`` placeholders (``{w_start}``) become constants: strings
are sent to ClickHouse as bound query parameters (``{p_w_start:String}``), numbers as literals.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any


class HogQLError(ValueError):
    """A query the sandbox refuses (HTTP 400)."""


def unsupported(what: str) -> HogQLError:
    return HogQLError(f"sandbox HogQL does not support {what}")


def _parser():
    """``hogql_parser`` imports ``posthog.hogql.{ast,base,errors}`` at load time (the Python
    classes of PostHog's AST); the JSON entry points need none of them, so empty modules do."""
    for name in ("posthog", "posthog.hogql", "posthog.hogql.ast", "posthog.hogql.base"):
        sys.modules.setdefault(name, types.ModuleType(name))
    if "posthog.hogql.errors" not in sys.modules:
        errors = types.ModuleType("posthog.hogql.errors")
        for cls in ("BaseHogQLError", "SyntaxError", "ExposedHogQLError", "QueryError"):
            setattr(errors, cls, type(cls, (Exception,), {}))
        errors.NotImplementedError = type("NotImplementedError", (Exception,), {})
        sys.modules["posthog.hogql.errors"] = errors
    import hogql_parser

    return hogql_parser


COLUMNS = {
    "uuid": "UUID",
    "event": "String",
    "distinct_id": "String",
    "timestamp": "DateTime64(6, 'UTC')",
    "created_at": "DateTime64(6, 'UTC')",
    "properties": "String",
}
DATETIME = "DateTime64(6, 'UTC')"
#: HogQL name → ClickHouse name; functions outside this list are refused.
FUNCTIONS = {
    "toUnixTimestamp64Milli": "toUnixTimestamp64Milli",
    "toUnixTimestamp64Micro": "toUnixTimestamp64Micro",
    "toUnixTimestamp": "toUnixTimestamp",
    "toString": "toString",
    "toDateTime": "toDateTime",
    "toDateTime64": "toDateTime64",
    "fromUnixTimestamp64Milli": "fromUnixTimestamp64Milli",
    "now": "now64",
    "toDate": "toDate",
    "toStartOfHour": "toStartOfHour",
    "lower": "lower",
    "upper": "upper",
    "length": "length",
    "coalesce": "coalesce",
    "toIntervalSecond": "toIntervalSecond",
    "toIntervalMinute": "toIntervalMinute",
    "toIntervalHour": "toIntervalHour",
    "toIntervalDay": "toIntervalDay",
    "toIntervalWeek": "toIntervalWeek",
}
_DATETIME_FUNCTIONS = {"toDateTime", "toDateTime64", "now", "fromUnixTimestamp64Milli"}
_AGGREGATES = {
    "count", "sum", "avg", "min", "max", "uniq", "uniqExact", "any", "argMax", "argMin",
    "groupArray", "countIf", "sumIf", "quantile", "median",
}  # fmt: skip
_COMPARE = {
    "==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "in": "IN",
    "not in": "NOT IN",
}  # fmt: skip
_ARITH = {"+", "-", "*", "/", "%"}
_CLAUSES = (
    "ctes", "distinct", "group_by", "having", "prewhere", "qualify", "array_join_op",
    "array_join_list", "window_exprs", "limit_by", "limit_with_ties", "settings", "view_name",
)  # fmt: skip


@dataclass
class Query:
    """A translated query: ClickHouse SQL over the ``events`` source, its bound parameters, the
    effective LIMIT and the time bounds the engine must make available."""

    sql: str
    params: dict[str, Any]
    columns: list[str]
    datetime_columns: list[bool]
    limit: int | None  # the query's own LIMIT (None: PostHog's default applies)
    text: str
    #: ("created_at" | "timestamp", ">=" | ">" | "<" | "<=", ClickHouse expression of the bound)
    bounds: list[tuple[str, str, str]] = field(default_factory=list)


def _lit(value: Any) -> str:
    """A ClickHouse literal (numbers, booleans, NULL, lists) — strings go through ``_Printer``."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_lit(v) for v in value) + (",)" if len(value) == 1 else ")")
    raise HogQLError(f"unsupported constant {value!r}")


class _Printer:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.params: dict[str, Any] = {}
        self.alias: str | None = None
        self.select_aliases: set[str] = set()

    # -- constants ----------------------------------------------------------------------
    def const(self, value: Any) -> str:
        if isinstance(value, str):
            name = f"c{len(self.params)}"
            self.params[name] = value
            return "{" + name + ":String}"
        return _lit(value)

    def placeholder(self, node: dict) -> Any:
        expr = node.get("expr") or {}
        chain = expr.get("chain") if expr.get("node") == "Field" else None
        if not chain or len(chain) != 1:
            raise unsupported("placeholders other than {name}")
        name = str(chain[0])
        if name not in self.values:
            raise HogQLError(f"Placeholder {{{name}}} is not available in this context")
        return self.values[name]

    # -- expressions --------------------------------------------------------------------
    def expr(self, node: Any) -> str:
        kind = node.get("node") if isinstance(node, dict) else None
        method = getattr(self, f"_{kind}", None)
        if method is None:
            raise unsupported(f"{kind or type(node).__name__} expressions")
        return method(node)

    def _Constant(self, node: dict) -> str:
        return self.const(node.get("value"))

    def _Placeholder(self, node: dict) -> str:
        value = self.placeholder(node)
        if isinstance(value, str):
            return self.const(value)
        return _lit(value)

    def column_of(self, node: dict) -> str | None:
        """The events column a Field names (None for a select alias or a property)."""
        chain = list(node.get("chain") or [])
        if self.alias and len(chain) > 1 and chain[0] == self.alias:
            chain = chain[1:]
        if len(chain) == 1 and chain[0] in COLUMNS:
            return str(chain[0])
        return None

    def _Field(self, node: dict) -> str:
        chain = [str(c) for c in node.get("chain") or []]
        if self.alias and len(chain) > 1 and chain[0] == self.alias:
            chain = chain[1:]
        if len(chain) == 1:
            name = chain[0]
            if name in COLUMNS:
                return f"events.{name}"
            if name in self.select_aliases:
                return f"`{name}`"
        if len(chain) == 2 and chain[0] == "properties":
            key = self.const(chain[1])
            # What HogQL prints for a property: the raw JSON value, quotes and JSON null removed.
            return (
                f"replaceRegexpAll(nullIf(nullIf(JSONExtractRaw(events.properties, {key}), ''),"
                f" 'null'), '^\"|\"$', '')"
            )
        if chain and chain[0] in ("person", "person_id", "pdi", "session", "elements_chain"):
            raise unsupported(f"the field {'.'.join(chain)}")
        raise HogQLError(f"Unable to resolve field: {'.'.join(chain)}")

    def _Alias(self, node: dict) -> str:
        return self.expr(node["expr"])

    def _Tuple(self, node: dict) -> str:
        items = [self.expr(e) for e in node.get("exprs") or []]
        return "(" + ", ".join(items) + (",)" if len(items) == 1 else ")")

    def _Array(self, node: dict) -> str:
        return "[" + ", ".join(self.expr(e) for e in node.get("exprs") or []) + "]"

    def _And(self, node: dict) -> str:
        return "(" + " AND ".join(self.expr(e) for e in node["exprs"]) + ")"

    def _Or(self, node: dict) -> str:
        return "(" + " OR ".join(self.expr(e) for e in node["exprs"]) + ")"

    def _Not(self, node: dict) -> str:
        return f"(NOT {self.expr(node['expr'])})"

    def _ArithmeticOperation(self, node: dict) -> str:
        op = node.get("op")
        if op not in _ARITH:
            raise unsupported(f"the operator {op}")
        return f"({self.expr(node['left'])} {op} {self.expr(node['right'])})"

    def _CompareOperation(self, node: dict) -> str:
        op = node.get("op")
        if op not in _COMPARE:
            raise unsupported(f"the operator {op!r}")
        left, right = node["left"], node["right"]
        if right.get("node") == "Constant" and right.get("value") is None and op in ("==", "!="):
            return f"{'isNull' if op == '==' else 'isNotNull'}({self.expr(left)})"
        if op in ("in", "not in"):
            if right.get("node") in ("SelectQuery", "SelectSetQuery"):
                raise unsupported("subqueries")
            if right.get("node") == "Placeholder":
                return f"({self.expr(left)} {_COMPARE[op]} {_lit(list(self.placeholder(right)))})"
        return f"({self.side(left, right)} {_COMPARE[op]} {self.side(right, left)})"

    def side(self, node: dict, other: dict) -> str:
        """A string compared with a DateTime is read as a DateTime64(6, 'UTC') (as HogQL does;
        ClickHouse's index analysis would otherwise refuse ISO strings with ``Z``)."""
        printed = self.expr(node)
        if node.get("node") in ("Constant", "Placeholder") and self.is_datetime(other):
            value = node.get("value") if node["node"] == "Constant" else self.placeholder(node)
            if isinstance(value, str):
                return f"toDateTime64({printed}, 6, 'UTC')"
        return printed

    def _Call(self, node: dict) -> str:
        name = node.get("name")
        args = node.get("args") or []
        if name == "NOT" and len(args) == 1:
            return f"(NOT {self.expr(args[0])})"
        if name == "count" and not args and not node.get("distinct"):
            return "count()"  # the one aggregate: a cheap row count (reconciliation)
        if name in _AGGREGATES or node.get("distinct") or node.get("params"):
            raise unsupported(f"aggregations ({name})")
        if node.get("filter_expr") or node.get("order_by"):
            raise unsupported(f"{name} with FILTER/ORDER BY")
        target = FUNCTIONS.get(str(name))
        if target is None:
            raise unsupported(f"the function {name}()")
        printed = [self.expr(a) for a in args]
        if name in ("toDateTime64", "toDateTime") and printed:
            # HogQL appends the project timezone (UTC here) unless one is given.
            wanted = 3 if name == "toDateTime64" else 2
            if name == "toDateTime64" and len(printed) == 1:
                printed.append("6")
            if len(printed) < wanted:
                printed.append("'UTC'")
        if name == "now":
            printed = ["6", "'UTC'"]
        return f"{target}({', '.join(printed)})"

    # -- types (enough to format results like PostHog) ----------------------------------
    def is_datetime(self, node: dict) -> bool:
        kind = node.get("node")
        if kind == "Alias":
            return self.is_datetime(node["expr"])
        if kind == "Field":
            column = self.column_of(node)
            return column in ("timestamp", "created_at")
        if kind == "Call":
            return node.get("name") in _DATETIME_FUNCTIONS
        if kind == "ArithmeticOperation":
            return self.is_datetime(node["left"])
        return False


def _name_of(node: dict) -> str:
    """The result column name PostHog reports: the alias, the field's last part, else the text."""
    kind = node.get("node")
    if kind == "Alias":
        return str(node["alias"])
    if kind == "Field":
        return str(node["chain"][-1])
    if kind == "Call":
        return f"{node['name']}({', '.join(_name_of(a) for a in node.get('args') or [])})"
    if kind == "Constant":
        return json.dumps(node.get("value"))
    return kind or "?"


def _conjuncts(node: dict | None) -> list[dict]:
    if not node:
        return []
    if node.get("node") == "And":
        return [c for e in node["exprs"] for c in _conjuncts(e)]
    return [node]


def _has_column(p: _Printer, node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("node") == "Field" and p.column_of(node) is not None:
            return True
        return any(_has_column(p, v) for v in node.values())
    if isinstance(node, list):
        return any(_has_column(p, v) for v in node)
    return False


def _bounds(p: _Printer, where: dict | None) -> list[tuple[str, str, str]]:
    """Time bounds on created_at / timestamp among the top-level AND terms of WHERE (a
    ``(toUnixTimestamp64Milli(created_at), …) > (ms, …)`` keyset counts as a created_at bound)."""
    flip = {">": "<", ">=": "<=", "<": ">", "<=": ">="}
    out: list[tuple[str, str, str]] = []
    for term in _conjuncts(where):
        if term.get("node") != "CompareOperation" or term.get("op") not in flip:
            continue
        left, right, op = term["left"], term["right"], term["op"]
        if p.column_of(left) is None and p.column_of(right) is not None:
            left, right, op = right, left, flip[op]
        column = p.column_of(left) if left.get("node") == "Field" else None
        if _has_column(p, right):  # e.g. timestamp < toStartOfHour(created_at) - …: no constant
            continue
        if column in ("created_at", "timestamp"):
            out.append((column, op, f"toDateTime64({p.expr(right)}, 6, 'UTC')"))
            continue
        if left.get("node") == "Tuple" and right.get("node") == "Tuple" and op in (">", ">="):
            head, value = left["exprs"][0], right["exprs"][0]
            if (
                head.get("node") == "Call"
                and head.get("name") == "toUnixTimestamp64Milli"
                and p.column_of((head.get("args") or [{}])[0]) == "created_at"
            ):
                ms = f"fromUnixTimestamp64Milli(toInt64({p.expr(value)}), 'UTC')"
                out.append(("created_at", ">=", ms))
    return out


@lru_cache(maxsize=512)
def _parse_json(text: str) -> str:
    return _parser().parse_select_json(text, is_internal=True)


def parse_ast(text: str) -> dict:
    """PostHog's parser → JSON AST (the parse, ~20 ms, is cached by query text: a client sends
    the same text with different ``values``); a syntax error becomes ``HogQLError``."""
    try:
        ast = json.loads(_parse_json(text))
    except ValueError as exc:  # not JSON / C++ exception text
        raise HogQLError(f"Syntax error: {exc}") from None
    if ast.get("error"):
        raise HogQLError(f"Syntax error at position {ast.get('start', {}).get('offset')}: "
                         f"{ast.get('message')}")  # fmt: skip
    return ast


class OffsetRefused(HogQLError):
    """The query uses OFFSET (refused for personal API keys)."""


def translate(text: str, values: dict[str, Any] | None = None) -> Query:
    """Translate one HogQL SELECT over ``events`` (see module docstring)."""
    ast = parse_ast(text)
    if ast.get("node") != "SelectQuery":
        raise unsupported("UNION / set operations")
    if ast.get("offset") is not None:
        raise OffsetRefused("OFFSET")
    for clause in _CLAUSES:
        if ast.get(clause):
            raise unsupported(clause.upper().replace("_", " "))
    source = ast.get("select_from") or {}
    table = source.get("table") or {}
    if table.get("node") != "Field" or table.get("chain") != ["events"]:
        name = ".".join(map(str, table.get("chain") or [])) or table.get("node") or "nothing"
        raise unsupported(f"FROM {name} (only the events table)")
    if source.get("next_join") or source.get("sample") or source.get("table_final"):
        raise unsupported("JOIN / SAMPLE / FINAL")
    p = _Printer(dict(values or {}))
    p.alias = source.get("alias")
    select = ast.get("select") or []
    p.select_aliases = {str(s["alias"]) for s in select if s.get("node") == "Alias"}
    items, names, dt = [], [], []
    for k, node in enumerate(select):
        name = _name_of(node)
        items.append(f"{p.expr(node)} AS `_c{k}`")
        names.append(name)
        dt.append(p.is_datetime(node))
    # Select aliases may be referenced in WHERE/ORDER BY: define them in a WITH-free way by
    # repeating the expression under its own name.
    alias_defs = [
        f"{p.expr(node['expr'])} AS `{node['alias']}`"
        for node in select
        if node.get("node") == "Alias" and str(node["alias"]) not in COLUMNS
    ]
    where = ast.get("where")
    sql = "SELECT " + ", ".join(items + alias_defs) + " FROM {events} AS events"
    if where:
        sql += f" WHERE {p.expr(where)}"
    order = []
    for o in ast.get("order_by") or []:
        if o.get("node") != "OrderExpr":
            raise unsupported("this ORDER BY")
        if o.get("nulls") or o.get("with_fill"):
            raise unsupported("NULLS FIRST/LAST or WITH FILL")
        if (o.get("expr") or {}).get("node") == "Constant":  # positional / constant order
            raise unsupported("ORDER BY a position or constant")
        order.append(f"{p.expr(o['expr'])} {'DESC' if o.get('order') == 'DESC' else 'ASC'}")
    if order:
        sql += " ORDER BY " + ", ".join(order)
    limit = None
    if ast.get("limit") is not None:
        node = ast["limit"]
        value = p.placeholder(node) if node.get("node") == "Placeholder" else node.get("value")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise HogQLError(f"LIMIT must be a non-negative integer, got {value!r}")
        limit = value
    bounds = _bounds(p, where)
    return Query(sql, p.params, names, dt, limit, text, bounds)
