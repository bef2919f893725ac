"""The sandboxed Jinja2 that label templates run in, and the checks a template passes before it runs.

A template is written by a cloud admin and runs on every station, so it gets less than Jinja2's
sandbox alone allows:

- only a whitelist of syntax: output, `if`, `for` (at most two deep), expressions, a curated set of
  filters and tests. No `set`, macros, includes, imports, blocks or function and method calls;
- no name, attribute or key that starts with `_` (the way into `''.__class__.__mro__`), and no
  `self`;
- no operation whose result can grow without bound: `*` and `**` are checked, `%` string formatting
  is refused, filters that take a width are capped;
- the sample render at validation runs under a time budget, so a template that loops for ever is
  refused instead of hanging the cloud.

Every refusal is a `TemplateError` that names the line and column and says what to write instead.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import Any, TypeVar

import jinja2
from jinja2 import nodes
from jinja2.filters import do_batch, do_center, do_replace
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from dockside.errors import TemplateError

__all__ = [
    "ALLOWED_FILTERS",
    "LabelEnvironment",
    "check_sample_paths",
    "locate",
    "parse_expression",
    "parse_template",
    "render_within",
]

_MAX_SEQUENCE = 10_000
_MAX_REPLACED = 100_000
_MAX_LOOP_DEPTH = 2
_T = TypeVar("_T")

# Filters a label may use; each is bounded in what it can produce from bounded input.
ALLOWED_FILTERS = frozenset(
    {
        "abs", "batch", "capitalize", "center", "count", "d", "default", "first", "float", "int",
        "join", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr",
        "replace", "reverse", "round", "select", "selectattr", "sort", "string", "sum", "title",
        "trim", "truncate", "unique", "upper", "urlencode", "wordwrap",
    }
)  # fmt: skip
_ALLOWED_TESTS = frozenset(
    {
        "defined", "undefined", "none", "number", "string", "even", "odd", "divisibleby", "eq",
        "ne", "lt", "gt", "le", "ge", "in", "true", "false", "sequence", "mapping",
    }
)  # fmt: skip
_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.For, nodes.If, nodes.Name, nodes.Const,
    nodes.Tuple, nodes.List, nodes.Dict, nodes.Pair, nodes.Keyword, nodes.CondExpr, nodes.Filter,
    nodes.Test, nodes.Getitem, nodes.Getattr, nodes.Slice, nodes.Concat, nodes.Compare, nodes.Operand,
    nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Add, nodes.Sub, nodes.Mod, nodes.Pow, nodes.And,
    nodes.Or, nodes.Not, nodes.Neg, nodes.Pos,
)  # fmt: skip
_REFUSED_NODES = {
    "Assign": "{% set %} is not allowed in a label template: write the expression where it is used",
    "AssignBlock": "{% set %} is not allowed in a label template: write the expression where it is used",
    "With": "{% with %} is not allowed in a label template: write the expression where it is used",
    "Macro": "macros are not allowed in a label template: repeat the ZPL or use a {% for %} loop",
    "CallBlock": "{% call %} is not allowed in a label template: repeat the ZPL or use a {% for %} loop",
    "Call": "calling a function or method (x()) is not allowed in a label template: "
    "use a filter instead, e.g. {{ ship_to.name | upper }}",
    "FilterBlock": "{% filter %} blocks are not allowed in a label template: apply the filter to a value",
    "Include": "{% include %} is not allowed: a label template must be one self-contained source",
    "Import": "{% import %} is not allowed: a label template must be one self-contained source",
    "FromImport": "{% from ... import %} is not allowed: a label template must be one self-contained source",
    "Extends": "{% extends %} is not allowed: a label template must be one self-contained source",
    "Block": "{% block %} is not allowed: a label template must be one self-contained source",
}


class LabelEnvironment(SandboxedEnvironment):
    """Jinja2's sandbox with strict undefined values and bounded operators and filters."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, finalize: Callable[[Any], str], extra_filters: Mapping[str, Callable[..., Any]] = {}):
        super().__init__(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            finalize=finalize,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        filters: dict[str, Callable[..., Any]] = {name: self.filters[name] for name in ALLOWED_FILTERS}
        filters.update(center=_center, replace=_replace, batch=_batch, **extra_filters)
        self.filters = filters
        self.tests = {name: test for name, test in self.tests.items() if name in _ALLOWED_TESTS}
        # No globals: range(), lipsum(), cycler() and friends are not a label's business.
        self.globals = {}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Refuse `*` and `**` results that would grow without bound and `%` string formatting."""
        if operator == "%":
            if isinstance(left, str):
                raise TemplateError(
                    "string formatting with % is not allowed in a label template: "
                    "write the values side by side, e.g. {{ a }} {{ b }}",
                    code="template_unsafe",
                )
            return left % right
        if operator == "**":
            if not isinstance(right, int | float) or abs(right) > 64:
                raise TemplateError(
                    "an exponent above 64 is not allowed in a label template", code="template_unsafe"
                )
            return left**right
        if isinstance(right, int) and isinstance(left, str | list | tuple):
            left, right = right, left
        if (
            isinstance(left, int)
            and isinstance(right, str | list | tuple)
            and left * len(right) > _MAX_SEQUENCE
        ):
            raise TemplateError(
                f"repeating text to more than {_MAX_SEQUENCE} characters is not allowed in a label template",
                code="template_unsafe",
            )
        return left * right


def _center(value: str, width: int = 80) -> str:
    if width > 1000:
        raise TemplateError("| center accepts a width up to 1000", code="template_unsafe")
    return do_center(value, width)


@jinja2.pass_eval_context
def _replace(eval_ctx: Any, value: str, old: str, new: str, count: int | None = None) -> str:
    text = str(value)
    if old == "" or len(text) + text.count(old) * max(0, len(new) - len(old)) > _MAX_REPLACED:
        raise TemplateError(
            "| replace would make a value longer than 100,000 characters (or replaces an empty string)",
            code="template_unsafe",
        )
    return str(do_replace(eval_ctx, value, old, new, count))


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Any:
    if not 1 <= linecount <= 1000:
        raise TemplateError("| batch accepts a size from 1 to 1000", code="template_unsafe")
    return do_batch(value, linecount, fill_with)


def locate(source: str, line: int | None, needle: str = "", after: str = "", nth: int = 1) -> int | None:
    """The 1-based column of the `nth` `needle` on `line` of `source` (its first non-blank if not found).

    With `after`, the search starts past the first occurrence of `after` on that line.
    """
    if line is None:
        return None
    lines = source.split("\n")
    if not 1 <= line <= len(lines):
        return None
    text = lines[line - 1]
    at = text.find(after) + len(after) - 1 if after and after in text else -1
    for _ in range(nth if needle else 0):
        at = text.find(needle, at + 1)
        if at < 0:
            break
    if at < 0:
        at = len(text) - len(text.lstrip())
    return at + 1


def parse_template(
    env: LabelEnvironment, source: str, *, max_loop_depth: int = _MAX_LOOP_DEPTH
) -> nodes.Template:
    """Parse `source` and run the safety checks; errors name line and column."""
    parser = Parser(env, source)
    try:
        tree = parser.parse()
    except jinja2.TemplateSyntaxError as exc:
        current = parser.stream.current
        needle = "" if current.type == "eof" else str(current.value)
        line = exc.lineno or current.lineno
        # The lexer reports a stray character ("unexpected '}'") past the last token it gave.
        stray = re.match(r"unexpected '(.)'", exc.message or "")
        if stray is not None and current.lineno == line:
            column = locate(source, line, stray.group(1), after=needle)
        else:
            column = locate(source, line, needle)
        raise TemplateError(
            f"template syntax error at line {line}, column {column}: {exc.message}", line=line, column=column
        ) from None
    _check_nodes(tree, source, frozenset(env.filters), max_loop_depth)
    return tree


def parse_expression(env: LabelEnvironment, source: str) -> nodes.Expr:
    """Parse one expression (e.g. a loop's items) and run the safety checks."""
    parser = Parser(env, source, state="variable")
    try:
        expression = parser.parse_expression()
        if not parser.stream.eos:
            parser.fail("there is more after the expression", parser.stream.current.lineno)
    except jinja2.TemplateSyntaxError as exc:
        current = parser.stream.current
        needle = "" if current.type == "eof" else str(current.value)
        column = locate(source, exc.lineno, needle)
        raise TemplateError(
            f"syntax error at line {exc.lineno}, column {column}: {exc.message}",
            line=exc.lineno,
            column=column,
        ) from None
    _check_nodes(nodes.Template([nodes.Output([expression])]), source, frozenset(env.filters), 0)
    return expression


def _fail(source: str, node: nodes.Node, message: str, needle: str = "", nth: int = 1) -> TemplateError:
    line = node.lineno
    column = locate(source, line, needle, nth=nth)
    return TemplateError(
        f"line {line}, column {column}: {message}", code="template_unsafe", line=line, column=column
    )


def _check_nodes(
    tree: nodes.Template, source: str, filter_names: frozenset[str], max_loop_depth: int
) -> None:
    loops_on_line: dict[int, int] = {}

    def visit(node: nodes.Node, loop_depth: int) -> None:
        kind = type(node).__name__
        if not isinstance(node, _ALLOWED_NODES):
            message = _REFUSED_NODES.get(kind, f"{kind} is not allowed in a label template: remove it")
            raise _fail(source, node, message)
        if isinstance(node, nodes.Name) and (node.name.startswith("_") or node.name == "self"):
            raise _fail(source, node, f"the name {node.name!r} is not allowed in a label template", node.name)
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise _fail(
                source,
                node,
                f"attributes starting with '_' (.{node.attr}) are not allowed in a label template",
                node.attr,
            )
        if (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
            and node.arg.value.startswith("_")
        ):
            raise _fail(
                source,
                node,
                f"keys starting with '_' ({node.arg.value!r}) are not allowed in a label template",
            )
        if isinstance(node, nodes.Filter) and node.name not in filter_names:
            raise _fail(
                source,
                node,
                f"the filter | {node.name} is not available in label templates: use one of "
                f"{', '.join(sorted(filter_names))}",
                node.name,
            )
        if isinstance(node, nodes.Test) and node.name not in _ALLOWED_TESTS:
            raise _fail(
                source,
                node,
                f"the test 'is {node.name}' is not available in label templates: use one of "
                f"{', '.join(sorted(_ALLOWED_TESTS))}",
                node.name,
            )
        if isinstance(node, nodes.For):
            loops_on_line[node.lineno] = nth = loops_on_line.get(node.lineno, 0) + 1
            if node.recursive:
                raise _fail(source, node, "recursive loops are not allowed in a label template", "recursive")
            if loop_depth >= max_loop_depth:
                message = f"loops may nest at most {_MAX_LOOP_DEPTH} deep in a label template"
                raise _fail(source, node, message, "for", nth)
            loop_depth += 1
        for child in node.iter_child_nodes():
            visit(child, loop_depth)

    visit(tree, 0)


_UNKNOWN = object()


def check_sample_paths(tree: nodes.Template, source: str, sample: Mapping[str, Any]) -> None:
    """Refuse a template that reads a variable or key its sample data lacks, even in a branch not taken.

    A template may guard a value with `| default(...)` or `is defined`; such a value may be absent.
    """

    def resolve(node: nodes.Node, scope: Mapping[str, Any], guards: frozenset[str]) -> Any:
        path = _path(node)
        if path is None:
            return _UNKNOWN
        name, keys = path
        if name in guards:
            return _UNKNOWN
        if name in scope:
            value = scope[name]
        elif name in sample:
            value = sample[name]
        else:
            raise _missing(source, node, name, name)
        walked = name
        for key in keys:
            shown = f"{walked}[{key}]" if isinstance(key, int) else f"{walked}.{key}"
            if value is _UNKNOWN or shown in guards:
                return _UNKNOWN
            if isinstance(value, Mapping):
                if key not in value:
                    raise _missing(source, node, shown, str(key))
                value = value[key]
            elif isinstance(value, list) and isinstance(key, int):
                value = value[key] if -len(value) <= key < len(value) else _UNKNOWN
            else:
                return _UNKNOWN
            walked = shown
        return value

    def visit(node: nodes.Node, scope: Mapping[str, Any], guards: frozenset[str]) -> None:
        if isinstance(node, nodes.Filter) and node.name in {"default", "d"}:
            for child in [*node.args, *node.kwargs]:
                visit(child, scope, guards)
            return
        if isinstance(node, nodes.Test) and node.name in {"defined", "undefined"}:
            return
        if isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
            resolve(node, scope, guards)
            base: nodes.Node = node
            while isinstance(base, nodes.Getattr | nodes.Getitem):
                if isinstance(base, nodes.Getitem) and not isinstance(base.arg, nodes.Const):
                    visit(base.arg, scope, guards)
                base = base.node
            if not isinstance(base, nodes.Name):
                visit(base, scope, guards)
            return
        if isinstance(node, nodes.If | nodes.CondExpr):
            guarded = guards | _defined_in(node.test)
            visit(node.test, scope, guards)
            body = node.body if isinstance(node, nodes.If) else [node.expr1]
            for child in body:
                visit(child, scope, guarded)
            rest: list[nodes.Node | None] = (
                [*node.elif_, *node.else_] if isinstance(node, nodes.If) else [node.expr2]
            )
            for other in rest:
                if other is not None:
                    visit(other, scope, guards)
            return
        if isinstance(node, nodes.For):
            visit(node.iter, scope, guards)
            iterable = node.iter
            simple = isinstance(iterable, nodes.Name | nodes.Getattr)
            items = resolve(iterable, scope, guards) if simple else _UNKNOWN
            inner = dict(scope, loop=_UNKNOWN)
            first = items[0] if isinstance(items, list) and items else _UNKNOWN
            for target in _target_names(node.target):
                inner[target] = first if isinstance(node.target, nodes.Name) else _UNKNOWN
            if node.test is not None:
                visit(node.test, inner, guards)
            for child in node.body:
                visit(child, inner, guards)
            for child in node.else_:
                visit(child, scope, guards)
            return
        for child in node.iter_child_nodes():
            visit(child, scope, guards)

    visit(tree, {}, frozenset())


def _path(node: nodes.Node) -> tuple[str, list[str | int]] | None:
    """`a.b[0]` as ("a", ["b", 0]); None when a step is computed."""
    keys: list[str | int] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            keys.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str | int):
            keys.append(node.arg.value)
        else:
            return None
        node = node.node
    if not isinstance(node, nodes.Name):
        return None
    keys.reverse()
    return node.name, keys


def _defined_in(test: nodes.Node) -> frozenset[str]:
    """The paths an `if` test proves defined: `x.y is defined`, alone or joined with `and`."""
    if isinstance(test, nodes.And):
        return _defined_in(test.left) | _defined_in(test.right)
    if not isinstance(test, nodes.Test) or test.name != "defined":
        return frozenset()
    path = _path(test.node)
    if path is None:
        return frozenset()
    name, keys = path
    for key in keys:
        name = f"{name}[{key}]" if isinstance(key, int) else f"{name}.{key}"
    return frozenset({name})


def _target_names(target: nodes.Node) -> list[str]:
    if isinstance(target, nodes.Name):
        return [target.name]
    return [name.name for name in target.find_all(nodes.Name)]


def _missing(source: str, node: nodes.Node, shown: str, needle: str) -> TemplateError:
    line = node.lineno
    column = locate(source, line, needle)
    return TemplateError(
        f"line {line}, column {column}: the template uses {shown}, which the sample data does not have: "
        f"add {shown} to the sample data, fix the name, or guard it with | default('')",
        code="template_missing_value",
        line=line,
        column=column,
    )


class _Overrun(Exception):
    """Raised inside a traced render that ran past its budget."""


def render_within(render: Callable[[], _T], seconds: float) -> _T:
    """Run `render` and stop it with a TemplateError if it runs longer than `seconds`.

    Validation only: tracing slows the render down, and it is the one place where an admin's new
    template meets a budget before any station runs it.
    """
    deadline = time.monotonic() + seconds
    steps = 0

    def trace_line(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal steps
        steps += 1
        if steps % 512 == 0 and time.monotonic() > deadline:
            raise _Overrun
        return trace_line

    def trace_call(frame: FrameType, event: str, arg: Any) -> Any:
        return trace_line

    previous = sys.gettrace()
    sys.settrace(trace_call)
    try:
        return render()
    except _Overrun:
        raise TemplateError(
            f"rendering the sample data took longer than {seconds:g} s: simplify the loops in the template",
            code="template_too_slow",
        ) from None
    finally:
        sys.settrace(previous)
