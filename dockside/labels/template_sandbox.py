"""The sandboxed Jinja2 that label templates run in, and the checks a template passes before it runs.

A template is written by a cloud admin and runs on every station, so it gets less than Jinja2's
sandbox alone allows:

- only a whitelist of syntax: output, `if`, `for` (at most two deep), expressions, a curated set of
  filters and tests. No `set`, macros, includes, imports, blocks or function and method calls;
- no name, attribute or key that starts with `_` (the way into `''.__class__.__mro__`), and no
  `self`;
- no operation that can do unbounded work in one step: every operator and filter a template can
  reach is bounded before it runs (`work_bounds`);
- every render runs within a budget of work units and CPU time (`render_budget`): loops are
  metered turn by turn, so a template that loops for ever is stopped, at validation and at every
  station alike.

Every refusal is a `TemplateError` that names the line and column and says what to write instead.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import jinja2
from jinja2 import nodes
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from dockside.errors import TemplateError
from dockside.labels.render_budget import metered_loop
from dockside.labels.work_bounds import binop, bounded_filters, concat

__all__ = [
    "ALLOWED_FILTERS",
    "MAX_NESTING",
    "MAX_NODES",
    "LabelEnvironment",
    "add_turn_weight",
    "check_sample_paths",
    "compile_metered",
    "locate",
    "parse_expression",
    "parse_template",
    "render_text",
]

_MAX_LOOP_DEPTH = 2
# A label's tree is a few levels deep and a few hundred nodes (the shipped ones: 108 to 185);
# these caps keep every walk of it shallow and a compile at a station well under 100 ms.
MAX_NESTING = 64
MAX_NODES = 4_000
_N = TypeVar("_N", bound=nodes.Node)
# The sandbox's own filters, under names no template can write (a filter name is one word).
_LOOP_FILTER = "metered loop"
_CONCAT_FILTER = "bounded concat"
_TURN_WEIGHT = "dockside_turn_weight"
# What one `{{ value }}` may add to a label: its value cut to 500 characters, escaped, in units.
_OUTPUT_WEIGHT = 8

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

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, finalize: Callable[[Any], str], extra_filters: Mapping[str, Callable[..., Any]] = {}):
        super().__init__(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            finalize=finalize,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        available = {**self.filters, **extra_filters}
        #: The filters a template may name.
        self.template_filters = ALLOWED_FILTERS | frozenset(extra_filters)
        filters = bounded_filters(available, self.template_filters)
        filters[_LOOP_FILTER] = metered_loop
        filters[_CONCAT_FILTER] = concat
        self.filters = filters
        self.tests = {name: test for name, test in self.tests.items() if name in _ALLOWED_TESTS}
        # No globals: range(), lipsum(), cycler() and friends are not a label's business.
        self.globals = {}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """`+`, `*`, `**` and `%`, each refused past its bound (see `work_bounds`)."""
        return binop(operator, left, right)


class _Metering(NodeTransformer):
    """Routes every loop through the render's meter and every `~` through the bounded join."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        weight = _weight(node.body) + getattr(node, _TURN_WEIGHT, 0)
        self.generic_visit(node)
        node.iter = nodes.Filter(
            node.iter, _LOOP_FILTER, [nodes.Const(weight)], [], None, None, lineno=node.lineno
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        joined = nodes.Tuple(node.nodes, "load", lineno=node.lineno)
        return nodes.Filter(joined, _CONCAT_FILTER, [], [], None, None, lineno=node.lineno)


def add_turn_weight(loop: nodes.For, units: int) -> None:
    """Charge every turn of `loop` `units` more than its body's weight (work done after the render)."""
    setattr(loop, _TURN_WEIGHT, getattr(loop, _TURN_WEIGHT, 0) + units)


def _weight(body: list[nodes.Node]) -> int:
    """What one turn of a loop with `body` costs: its nodes, its literal text, its printed values.

    A nested loop's body is not counted here: it charges its own turns.
    """
    weight = 1
    pending: list[nodes.Node] = list(body)
    while pending:
        node = pending.pop()
        weight += 1
        if isinstance(node, nodes.TemplateData):
            weight += len(node.data) // 64
        elif isinstance(node, nodes.Output):
            weight += _OUTPUT_WEIGHT * sum(not isinstance(child, nodes.TemplateData) for child in node.nodes)
        if isinstance(node, nodes.For):
            pending.append(node.iter)
        else:
            pending.extend(node.iter_child_nodes())
    return weight


def compile_metered(env: LabelEnvironment, tree: nodes.Template) -> jinja2.Template:
    """Compile a checked tree into a template whose loops and joins are metered.

    The tree itself is left as it is (the sample checks read it); a copy is rewritten.
    """
    count = sum(1 for _ in tree.find_all(nodes.Node))
    if count > MAX_NODES:
        raise TemplateError(
            f"the template has {count:,} expressions, tags and texts; at most {MAX_NODES:,} keep compiling "
            "it quick at every station: split it or remove unused parts",
            code="template_too_large",
        )
    metered = copy.deepcopy(tree, memo={id(env): env})
    metered = _Metering().visit(metered)
    metered.set_environment(env)
    code = env.compile(metered)
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def render_text(template: jinja2.Template, context: Mapping[str, Any], *, document: str) -> str:
    """The template's text for `context`, every failure a TemplateError that says what to fix.

    `document` is what the template prints ("label", "slip"), as the messages name it. Call it
    inside a metered render (`render_budget`); a TemplateOverrun passes through as it is.
    """
    try:
        # new_context copies `context` into the render's own scope; no copy of ours is needed.
        scope = template.new_context(cast(dict[str, Any], context))
        return template.environment.concat(template.root_render_func(scope))
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"the {document} needs a value this order does not have ({exc.message}): "
            "add it to the order or change the template",
            code="template_missing_value",
        ) from None
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(
            f"the template tried something a {document} may not do ({exc}): remove it",
            code="template_unsafe",
        ) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, jinja2.TemplateRuntimeError) as exc:
        raise TemplateError(
            f"the template failed on this order ({type(exc).__name__}: {exc}): fix the expression "
            "or guard it with | default(...)",
            code="template_render_failed",
        ) from None


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
        tree = _parsed(parser.parse)
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
    _check_nodes(tree, source, env.template_filters, max_loop_depth)
    return tree


def parse_expression(env: LabelEnvironment, source: str) -> nodes.Expr:
    """Parse one expression (e.g. a loop's items) and run the safety checks."""
    parser = Parser(env, source, state="variable")
    try:
        expression = _parsed(parser.parse_expression)
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
    _check_nodes(nodes.Template([nodes.Output([expression])]), source, env.template_filters, 0)
    return expression


def _parsed(parse: Callable[[], _N]) -> _N:
    """`parse()`, refusing a tree nested deeper than `MAX_NESTING` (every later walk of it recurses)."""
    try:
        tree = parse()
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:  # the lexer's int(): a literal past Python's 4,300 digits
        raise TemplateError(
            f"the template has a value it cannot read ({exc}): shorten it", code="invalid_template"
        ) from None
    levels: list[tuple[nodes.Node, int]] = [(tree, 1)]
    while levels:
        node, depth = levels.pop()
        if depth > MAX_NESTING:
            raise _too_deep()
        levels.extend((child, depth + 1) for child in node.iter_child_nodes())
    return tree


def _too_deep() -> TemplateError:
    return TemplateError(
        f"the template nests expressions or tags more than {MAX_NESTING} deep: split the expression "
        "or flatten the ifs",
        code="template_too_large",
    )


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
