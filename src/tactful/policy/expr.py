"""Decide: the policy's condition language, compiled once into Python closures.

A condition reads like the playbook it comes from::

    state.frustration > 0.6 and account.tier in ["enterprise", "vip"]
    signal.rage_click > 0 or "refund" in event.text

The syntax is a whitelisted subset of Python expressions: names from a fixed set of
namespaces (``state``, ``event``, ``signal``, ``account``, ``clock``) and their known
fields, constants, lists, comparisons (including ``in``), ``and``/``or``/``not``, unary
minus, and the functions in :data:`FUNCTIONS`. Nothing else parses: no attribute access
beyond ``namespace.field``, no calls outside the whitelist, no eval. An unknown field or
a typo is an error at load time, with the column and a caret.

Compiling to closures keeps evaluation at well under a microsecond per clause (cel-python's
interpreter costs hundreds; see ../shared/NOTES.md).
"""

from __future__ import annotations

import ast
import importlib
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["FUNCTIONS", "CompiledExpr", "ExprError", "Namespaces", "compile_expr"]

Context = Mapping[str, Mapping[str, Any]]
Fn = Callable[[Context], Any]
Namespaces = Mapping[str, frozenset[str]]


class ExprError(ValueError):
    """A condition that cannot compile, with the position of the problem."""

    def __init__(self, source: str, message: str, col: int | None = None) -> None:
        self.source = source
        self.message = message
        self.col = col
        text = message + "\n  " + source
        if col is not None:
            text += "\n  " + " " * col + "^"
        super().__init__(text)


_ESCAPE = re.compile(r"\\.")


# A condition longer than this is a mistake (or an attack), not a playbook.
MAX_EXPR_CHARS = 4_000
_REPEAT = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})


def _backtracks(pattern: str) -> str:
    """Why ``pattern`` can take exponential time ("" if it cannot, as far as this check
    sees): a group repeated more than once whose body itself repeats or branches, such as
    ``(a+)+`` or ``(a|aa)*`` (Python's re has no timeout, and every message meets it)."""
    parser: Any = importlib.import_module("re._parser")

    def inner(items: Any) -> bool:
        for op, av in items:
            name = str(op)
            if name in _REPEAT and av[1] > 1:
                return True
            if name == "BRANCH":
                return True
            if name == "SUBPATTERN" and inner(av[-1]):
                return True
        return False

    def walk(items: Any) -> str:
        for op, av in items:
            name = str(op)
            if name in _REPEAT:
                _, high, body = av
                if high > 1 and inner(body):
                    times = "any number of" if high > 65_535 else f"up to {high}"
                    return f"a group repeated {times} times holds a repeat or alternatives"
                found = walk(body)
            elif name == "SUBPATTERN":
                found = walk(av[-1])
            elif name == "BRANCH":
                found = next((f for b in av[1] if (f := walk(b))), "")
            else:
                found = ""
            if found:
                return found
        return ""

    return walk(parser.parse(pattern))


@lru_cache(maxsize=256)
def _regex(pattern: str) -> tuple[re.Pattern[str], bool]:
    """The compiled pattern, and whether to search the lower-cased text with it. A pattern
    without capitals (escapes aside) runs case-sensitively on lower-cased text: the same
    matches as re.IGNORECASE at a third of the cost (every rule with matches() runs on
    every customer message)."""
    plain = _ESCAPE.sub("", pattern)
    if plain == plain.lower():
        return re.compile(pattern), True
    return re.compile(pattern, re.IGNORECASE), False


@lru_cache(maxsize=4_096)
def _lowered(text: str) -> str:
    return text.lower()


def _matches(value: Any, pattern: str) -> bool:
    if not isinstance(value, str):
        return False
    compiled, lower = _regex(pattern)
    return compiled.search(_lowered(value) if lower else value) is not None


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "matches": _matches,  # matches(event.path, "/cancel|/close") -- case-insensitive regex
    "lower": lambda s: s.lower() if isinstance(s, str) else s,
    "min": min,
    "max": max,
    "abs": abs,
}

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: b is not None and a in b,
    ast.NotIn: lambda a, b: b is None or a not in b,
}


def _and(a: Fn, b: Fn) -> Fn:
    return lambda ctx: a(ctx) and b(ctx)


def _or(a: Fn, b: Fn) -> Fn:
    return lambda ctx: a(ctx) or b(ctx)


@dataclass(frozen=True, slots=True)
class CompiledExpr:
    source: str
    fn: Fn
    names: tuple[str, ...]  # the namespace.field names it reads: the decision's factors
    # Cheap pre-checks, found by reading the condition: it can only be true if one of these
    # signals fired on the event / the event has one of these types (None: no such need).
    requires_signals: frozenset[str] | None = None
    requires_types: frozenset[str] | None = None

    @property
    def fields(self) -> list[tuple[str, tuple[str, str]]]:
        return [(n, (n.split(".", 1)[0], n.split(".", 1)[1])) for n in self.names]

    def __call__(self, ctx: Context) -> Any:
        return self.fn(ctx)


class _Compiler:
    def __init__(
        self, source: str, namespaces: Namespaces, constants: Mapping[str, Mapping[str, Any]]
    ) -> None:
        self.source = source
        self.namespaces = namespaces
        self.constants = constants
        self.names: list[str] = []

    def fail(self, node: ast.AST, message: str) -> ExprError:
        return ExprError(self.source, message, getattr(node, "col_offset", None))

    def compile(self, node: ast.AST) -> Fn:
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float | str | bool | type(None)):
                raise self.fail(node, f"unsupported constant {node.value!r}")
            value = node.value
            return lambda ctx: value
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            items = [self.compile(e) for e in node.elts]
            return lambda ctx: [f(ctx) for f in items]
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.Name):
            known = ", ".join(sorted(self.namespaces))
            if node.id in self.namespaces:
                raise self.fail(node, f"'{node.id}' needs a field, e.g. {node.id}.<field>")
            if node.id in ("true", "false", "null"):
                raise self.fail(node, f"write {node.id.capitalize()} / None, Python-style")
            raise self.fail(node, f"unknown name '{node.id}'; names start with one of: {known}")
        if isinstance(node, ast.BoolOp):
            # Folded into nested two-operand closures: cheaper per call than all()/any()
            # over a generator, with the same short-circuiting.
            parts = [self.compile(v) for v in node.values]
            fn = parts[-1]
            for part in reversed(parts[:-1]):
                fn = _and(part, fn) if isinstance(node.op, ast.And) else _or(part, fn)
            return fn
        if isinstance(node, ast.UnaryOp):
            inner = self.compile(node.operand)
            if isinstance(node.op, ast.Not):
                return lambda ctx: not inner(ctx)
            if isinstance(node.op, ast.USub):
                return lambda ctx: -inner(ctx)
            raise self.fail(node, "only 'not' and '-' are allowed as unary operators")
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.BinOp):
            raise self.fail(node, "arithmetic is not supported in conditions; compare values")
        raise self.fail(node, f"'{type(node).__name__}' is not allowed in a condition")

    def attribute(self, node: ast.Attribute) -> Fn:
        if not isinstance(node.value, ast.Name):
            raise self.fail(node, "only namespace.field is allowed (one dot)")
        ns, field = node.value.id, node.attr
        if ns not in self.namespaces:
            known = ", ".join(sorted(self.namespaces))
            raise self.fail(node, f"unknown namespace '{ns}'; expected one of: {known}")
        fields = self.namespaces[ns]
        if field not in fields:
            raise self.fail(
                node,
                f"unknown field '{ns}.{field}'; {ns} has: {', '.join(sorted(fields))}",
            )
        self.names.append(f"{ns}.{field}")
        fixed = self.constants.get(ns)
        if fixed is not None and field in fixed:
            value = fixed[field]
            return lambda ctx: value
        return lambda ctx: ctx[ns][field]

    def compare(self, node: ast.Compare) -> Fn:
        left = self.compile(node.left)
        steps: list[tuple[Callable[[Any, Any], bool], Fn]] = []
        for op, right in zip(node.ops, node.comparators, strict=True):
            fn = _COMPARE.get(type(op))
            if fn is None:
                raise self.fail(node, f"comparison '{type(op).__name__}' is not allowed")
            steps.append((fn, self.compile(right)))

        if len(steps) == 1:  # the common case, specialised
            ((cmp, rhs),) = steps
            if isinstance(node.comparators[0], ast.Constant):
                const = node.comparators[0].value

                def against_constant(ctx: Context) -> bool:
                    try:
                        return cmp(left(ctx), const)
                    except TypeError:  # e.g. None > 0.5: a missing value never matches
                        return False

                return against_constant

            def single(ctx: Context) -> bool:
                try:
                    return cmp(left(ctx), rhs(ctx))
                except TypeError:
                    return False

            return single

        def run(ctx: Context) -> bool:
            a = left(ctx)
            for op, right in steps:
                b = right(ctx)
                try:
                    if not op(a, b):
                        return False
                except TypeError:
                    return False
                a = b
            return True

        return run

    def call(self, node: ast.Call) -> Fn:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise self.fail(
                node, f"only these functions may be called: {', '.join(sorted(FUNCTIONS))}"
            )
        if node.keywords:
            raise self.fail(node, "keyword arguments are not supported")
        fn = FUNCTIONS[node.func.id]
        if fn is _matches and len(node.args) != 2:
            raise self.fail(node, "matches() takes two arguments: a value and a pattern")
        if fn is _matches:
            pattern = node.args[1]
            if not isinstance(pattern, ast.Constant) or not isinstance(pattern.value, str):
                raise self.fail(pattern, "matches() takes a constant pattern string")
            try:
                re.compile(pattern.value)
            except re.error as exc:
                raise self.fail(pattern, f"invalid regular expression: {exc}") from None
            risky = _backtracks(pattern.value)
            if risky:
                raise self.fail(
                    pattern,
                    f"this pattern can backtrack for ever on some texts ({risky}); write it "
                    "without a repeated group that itself repeats or has alternatives",
                )
        args = [self.compile(a) for a in node.args]

        def run(ctx: Context) -> Any:
            try:
                return fn(*(a(ctx) for a in args))
            except (TypeError, ValueError):
                return None

        return run


def compile_expr(
    source: str,
    namespaces: Namespaces,
    constants: Mapping[str, Mapping[str, Any]] | None = None,
) -> CompiledExpr:
    """Compile a condition, or raise :class:`ExprError` saying where and why.

    ``constants``: namespaces whose values are fixed when the policy loads (its named
    thresholds); they compile to constants, and the pre-checks see through them
    (``signal.x >= threshold.t`` still means "x must have fired")."""
    # YAML folded blocks keep line breaks before more-indented lines: a condition is one
    # expression, so join its lines.
    text = re.sub(r"\s*\n\s*", " ", source.strip())
    if not text:
        raise ExprError(source, "empty condition")
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(text[:80] + "...", f"longer than {MAX_EXPR_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
        fixed = constants or {}
        compiler = _Compiler(text, namespaces, fixed)
        fn = compiler.compile(tree.body)
    except SyntaxError as exc:
        col = (exc.offset - 1) if exc.offset else None
        raise ExprError(text, f"syntax error: {exc.msg}", col) from None
    except (RecursionError, MemoryError):
        raise ExprError(text[:80] + "...", "nested too deeply; split it into rules") from None
    return CompiledExpr(
        text,
        fn,
        tuple(dict.fromkeys(compiler.names)),
        _requires(tree.body, lambda node: _signal_need(node, fixed)),
        _requires(tree.body, _type_need, exclusive=True),
    )


Need = Callable[[ast.AST], frozenset[str] | None]


def _requires(node: ast.AST, need: Need, exclusive: bool = False) -> frozenset[str] | None:
    """A set of which one member must hold for ``node`` to be true, or None if unknown.

    ``a and b`` needs what either needs (``exclusive``: at most one member can hold, as
    with an event's type, so it needs what both need: the intersection, empty when they
    contradict); ``a or b`` needs the union, if both need something.
    """
    if isinstance(node, ast.BoolOp):
        parts = [_requires(v, need, exclusive) for v in node.values]
        if isinstance(node.op, ast.And):
            known = [p for p in parts if p is not None]
            if not known:
                return None
            if exclusive:
                return frozenset.intersection(*known)
            return min(known, key=len)
        if all(p is not None for p in parts):
            return frozenset().union(*(p for p in parts if p is not None))
        return None
    return need(node)


def _is_field(node: ast.AST, ns: str) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr if node.value.id == ns else None
    return None


def _value(node: ast.AST, constants: Mapping[str, Mapping[str, Any]]) -> Any:
    """A literal's value, or a fixed namespace's (``threshold.t``); ``...`` if neither."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        fixed = constants.get(node.value.id)
        if fixed is not None and node.attr in fixed:
            return fixed[node.attr]
    return ...


def _signal_need(
    node: ast.AST, constants: Mapping[str, Mapping[str, Any]]
) -> frozenset[str] | None:
    """``signal.x > c`` (c >= 0) or ``signal.x >= c`` (c > 0): x must have fired."""
    if not isinstance(node, ast.Compare) or len(node.ops) != 1:
        return None
    name, op = _is_field(node.left, "signal"), node.ops[0]
    c = _value(node.comparators[0], constants)
    if name is None:
        return None
    if isinstance(c, bool) or not isinstance(c, int | float):
        return None
    if (isinstance(op, ast.Gt) and c >= 0) or (isinstance(op, ast.GtE) and c > 0):
        return frozenset({name})
    return None


def _type_need(node: ast.AST) -> frozenset[str] | None:
    """``event.type == "t"`` or ``event.type in ["t", ...]``."""
    if not isinstance(node, ast.Compare) or len(node.ops) != 1:
        return None
    if _is_field(node.left, "event") != "type":
        return None
    op, right = node.ops[0], node.comparators[0]
    if isinstance(op, ast.Eq) and isinstance(right, ast.Constant):
        return frozenset({str(right.value)})
    if isinstance(op, ast.In) and isinstance(right, ast.List | ast.Tuple | ast.Set):
        values = [e.value for e in right.elts if isinstance(e, ast.Constant)]
        if len(values) == len(right.elts):
            return frozenset(str(v) for v in values)
    return None
