"""Rule conditions compiled within bounds: what a rule author may write and what it may cost.

A condition is a `rule-engine` expression. Rules are untrusted input: an editor writes them, the
cloud evaluates them for every packed parcel and every agent on its pack path. So a condition is
accepted only when its cost is bounded by its shape:

- its text is scanned before it is parsed: at most MAX_OPERATORS operators and brackets nested at
  most MAX_BRACKETS deep, because rule-engine builds its tree recursively and a deep input (490
  nested `not`) ends in RecursionError;
- its tree is at most MAX_DEPTH levels deep, so evaluating it recurses little, and the work it
  may take for one parcel (nodes evaluated, a loop's body once per order line) is at most MAX_WORK,
  for a rule and for a whole ruleset;
- only the built-in functions in BUILTINS may be called (`$range(10**7)` alone runs 20 s), and a
  comprehension may not hold another (each level multiplies the work by the order's lines);
- every regex (`=~`, `=~~`, `!~`, `!~~`) is a quoted pattern that RE2 compiles, and matching goes
  through RE2, which runs in linear time: `(a+)+$` against a 26-letter city cannot backtrack. A
  pattern taken from the order (`city =~ postal_code`) is refused: its text could be anything.

Python's `re` never matches a rule's pattern: rule-engine folds a comparison of two constants
while it parses, so the condition is first parsed with every pattern replaced by a harmless one
of the same length; only when that parse shows each regex testing a parcel fact is the real text
parsed (where `re` merely compiles the pattern) and each regex handed to RE2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import re2
import rule_engine
from rule_engine import ast as rule_ast

from dockside.errors import InputError

__all__ = [
    "BUILTINS",
    "LOOP_FACTOR",
    "MAX_BRACKETS",
    "MAX_CONDITION_CHARS",
    "MAX_DEPTH",
    "MAX_OPERATORS",
    "MAX_WORK",
    "Condition",
    "RuleError",
    "compile_condition",
]

MAX_CONDITION_CHARS = 2_000
MAX_OPERATORS = 128
MAX_BRACKETS = 16
MAX_DEPTH = 64
# Work is counted in tree nodes evaluated for one parcel; a node inside a comprehension counts once
# per order line it may loop over. 50,000 is about 0.4 s in the worst case measured (regexes in a
# loop over 1,000 SKUs), and a ruleset as a whole may take no more.
MAX_WORK = 50_000
LOOP_FACTOR = 1_000  # the most lines an order has (dockside.orders.Order)
# Built-ins whose work is linear in their arguments and whose answer depends on nothing else
# ($now, $random and $today would make simulation and the pack path disagree).
BUILTINS = frozenset({"abs", "all", "any", "max", "min", "sum", "split"})

_REGEX_OPERATORS = ("=~", "!~")
_OPERATOR_CHARS = frozenset("=!<>~+-*/%&|^?:")
_OPERATOR_WORDS = frozenset({"and", "or", "not", "in", "for", "if"})
# What Python's 'unicode-escape' decodes without a warning (a newline after a backslash too).
_TEXT_ESCAPES = frozenset("\\'\"abfnrtv01234567xuUN\n")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is the author's error, not a line in our log


class RuleError(InputError):
    """A rule refused at save; `rule` is its number (1-based) and `name` its name. Its code is
    `invalid_input` for a wrong condition (as for any input), or the limit's own code:
    `rule_too_complex`, `unsupported_regex`, `unsupported_function`."""

    def __init__(self, message: str, *, code: str | None = None, rule: int, name: str) -> None:
        super().__init__(message, code=code)
        self.rule = rule
        self.name = name


@dataclass(frozen=True, slots=True)
class _Where:
    number: int
    name: str

    def refuse(self, reason: str, code: str | None = None) -> RuleError:
        return RuleError(
            f"rule {self.number} ({self.name!r}): {reason}", code=code, rule=self.number, name=self.name
        )


@dataclass(slots=True)
class _Scan:
    operators: int = 0
    brackets: int = 0
    regexes: int = 0
    # (start, end) of each pattern literal right after a regex operator, quotes included
    patterns: list[tuple[int, int]] = field(default_factory=list)


def _string_end(text: str, start: int) -> int:
    """The index after the string literal opening at `start` (its end when unterminated)."""
    quote, i, n = text[start], start + 1, len(text)
    while i < n and text[i] != quote:
        i += 2 if text[i] == "\\" else 1
    return min(i + 1, n)


def _raw(text: str, quote: int) -> bool:
    """Whether the literal opening at `quote` is a raw text (r'...'): an `r` that is a word of its own."""
    if quote == 0 or text[quote - 1] != "r":
        return False
    return quote == 1 or not (text[quote - 2].isalnum() or text[quote - 2] in "_$")


def _check_escapes(text: str, start: int, end: int, where: _Where) -> None:
    """Refuse a backslash escape that is not a text escape (rule-engine decodes texts with Python's
    'unicode-escape', which keeps `\\d` but warns, and a future Python will refuse it)."""
    i = start + 1
    while i < end - 1:
        if text[i] == "\\":
            if text[i + 1] not in _TEXT_ESCAPES:
                escape = text[i : i + 2]
                raise where.refuse(
                    f"the text {text[start:end][:80]} has the escape {escape}, which is not a text escape: "
                    f"write a pattern as a raw text, r{text[start:end][:80]}, or double the backslash",
                )
            i += 2
        else:
            i += 1


def _scan(text: str, where: _Where) -> _Scan:
    """Count operators, bracket depth and regex operators without parsing (linear, no recursion)."""
    found = _Scan()
    depth = 0
    want_pattern = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "#":  # a comment runs to the end of its line
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if want_pattern and ch in "rs" and text[i + 1 : i + 2] in ("'", '"'):
            i += 1  # a raw (r'...') or plain (s'...') text prefix; the pattern is the literal after it
            continue
        if want_pattern and ch not in "'\"":
            raise where.refuse(
                "the pattern after a regex operator (=~, =~~, !~, !~~) must be a quoted text such as "
                "'^9[0-9]{4}$', not an expression or a fact: a pattern taken from order data could be "
                "anything",
                code="unsupported_regex",
            )
        if ch in "'\"":
            end = _string_end(text, i)
            if not _raw(text, i):
                _check_escapes(text, i, end, where)
            if want_pattern:
                found.patterns.append((i, end))
                want_pattern = False
            i = end
            continue
        if ch in "([{":
            depth += 1
            found.brackets = max(found.brackets, depth)
            found.operators += ch == "["  # an item or slice access is a level of the tree
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif ch == "." and i + 1 < n and (text[i + 1].isalpha() or text[i + 1] == "_"):
            found.operators += 1  # an attribute access is a level of the tree too
        elif ch in _OPERATOR_CHARS:
            end = i
            while end < n and text[end] in _OPERATOR_CHARS:
                end += 1
            run = text[i:end]
            # Each '-' of a run may be a unary minus of its own (`--1`); the rest is one operator.
            found.operators += run.count("-") + (run.strip("-") != "")
            if any(op in run for op in _REGEX_OPERATORS):
                found.regexes += 1
                want_pattern = True
            i = end
            continue
        elif ch.isalpha() or ch == "_" or ch == "$":
            end = i + 1
            while end < n and (text[end].isalnum() or text[end] == "_"):
                end += 1
            found.operators += text[i:end] in _OPERATOR_WORDS
            i = end
            continue
        i += 1
    if want_pattern:
        raise where.refuse("a regex operator (=~, =~~, !~, !~~) must be followed by a quoted pattern")
    if found.brackets > MAX_BRACKETS:
        raise where.refuse(
            f"the condition nests brackets {found.brackets} deep; at most {MAX_BRACKETS} are allowed: "
            "write it flatter",
            code="rule_too_complex",
        )
    if found.operators > MAX_OPERATORS:
        raise where.refuse(
            f"the condition has {found.operators} operators; at most {MAX_OPERATORS} are allowed: "
            "split it into several rules",
            code="rule_too_complex",
        )
    return found


def _children(node: Any) -> list[Any]:
    """The expression nodes directly under `node` (rule-engine keeps them in slots and fields)."""
    names: set[str] = set(getattr(node, "__dict__", ()))
    for cls in type(node).__mro__:
        slots = getattr(cls, "__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
    names.discard("context")
    found: list[Any] = []
    pending = [getattr(node, name, None) for name in sorted(names)]
    while pending:
        value = pending.pop()
        if isinstance(value, rule_ast.ASTNodeBase):
            found.append(value)
        elif isinstance(value, tuple | list):
            pending.extend(value)
    return found


@dataclass(slots=True)
class _Tree:
    regexes: list[Any] = field(default_factory=list)
    work: int = 0


def _check_tree(statement: Any, where: _Where) -> _Tree:
    """Depth, built-ins, comprehensions and work of a parsed condition, with its regex nodes."""
    tree = _Tree()
    stack: list[tuple[Any, int, int]] = [(statement.expression, 1, 0)]
    while stack:
        node, depth, comprehensions = stack.pop()
        tree.work += LOOP_FACTOR if comprehensions else 1
        if depth > MAX_DEPTH:
            raise where.refuse(
                f"the condition is nested more than {MAX_DEPTH} levels deep: write it flatter or split "
                "it into several rules",
                code="rule_too_complex",
            )
        if (
            isinstance(node, rule_ast.SymbolExpression)
            and node.scope == "built-in"
            and node.name not in BUILTINS
        ):
            raise where.refuse(
                f"the condition calls ${node.name}, which rules may not use: use only "
                f"{', '.join('$' + name for name in sorted(BUILTINS))}",
                code="unsupported_function",
            )
        if isinstance(node, rule_ast.ComprehensionExpression):
            if comprehensions:
                raise where.refuse(
                    "the condition has a comprehension inside another: use one level of [... for ...]",
                    code="rule_too_complex",
                )
            comprehensions += 1
        if isinstance(node, rule_ast.FuzzyComparisonExpression):
            tree.regexes.append(node)
        stack.extend((child, depth + 1, comprehensions) for child in _children(node))
    if tree.work > MAX_WORK:
        raise where.refuse(
            f"the condition may take {tree.work:,} steps for one parcel (a [... for ...] repeats its "
            f"body for each of up to {LOOP_FACTOR:,} order lines); at most {MAX_WORK:,} are allowed: "
            "make the loop's body smaller",
            code="rule_too_complex",
        )
    return tree


def _parse(text: str, context: rule_engine.Context) -> rule_engine.Rule:
    return rule_engine.Rule(text, context=context)


def _harmless(text: str, patterns: list[tuple[int, int]]) -> str:
    """`text` with each pattern's content replaced by x's: same length, so positions still hold."""
    parts, last = [], 0
    for start, end in patterns:
        closing = 1 if end - start >= 2 and text[end - 1] == text[start] else 0
        parts += [text[last : start + 1], "x" * (end - start - 1 - closing), text[end - closing : end]]
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _use_re2(node: Any, where: _Where) -> None:
    pattern = node.right.value
    try:
        compiled = re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        reason = (
            exc.args[0].decode("utf-8", "replace")
            if exc.args and isinstance(exc.args[0], bytes)
            else str(exc)
        )
        raise where.refuse(
            f"the pattern {pattern[:80]!r} is not supported ({reason}): rule regexes run on RE2, which "
            "has no backreferences, lookahead or lookbehind",
            code="unsupported_regex",
        ) from None
    # rule-engine matches a quoted pattern with the object it compiled into `_right` at parse
    # (ast/binary/comparison.py); hand it RE2's instead, which has the same match/search/groups.
    # If a rule-engine release moves that field, refuse to run rather than fall back to `re`.
    if not isinstance(getattr(node, "_right", None), re.Pattern):
        raise RuntimeError(
            "rule-engine no longer keeps a compiled pattern in _right: pin the version that does"
        )
    node._right = compiled


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition and the most work (tree nodes evaluated) it may take for one parcel."""

    rule: rule_engine.Rule
    work: int


def compile_condition(
    text: Any, context: rule_engine.Context, facts: str, *, number: int, name: str
) -> Condition:
    """A rule's condition parsed, type-checked and bounded; RuleError names the rule and why."""
    where = _Where(number, name)
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_CONDITION_CHARS:
        raise where.refuse(f"'when' must be a condition of 1 to {MAX_CONDITION_CHARS:,} characters")
    scan = _scan(text, where)
    try:
        if scan.regexes:
            trial = _parse(_harmless(text, scan.patterns), context)
            nodes = _check_tree(trial.statement, where).regexes
            if len(nodes) != scan.regexes or not all(
                isinstance(node.right, rule_ast.StringExpression)
                and not isinstance(node.left, rule_ast.LiteralExpressionBase)
                for node in nodes
            ):
                raise where.refuse(
                    "each regex must test a parcel fact against a quoted pattern (e.g. city =~ '^New'), "
                    "not compare constants",
                    code="unsupported_regex",
                )
        rule = _parse(text, context)
    except rule_engine.errors.SymbolResolutionError as exc:
        raise where.refuse(
            f"condition {text[:200]!r} uses {exc.symbol_name!r}, which is not a parcel fact: "
            f"use one of {facts}"
        ) from None
    except rule_engine.errors.RuleSyntaxError as exc:
        token = exc.token
        at = f" at {token.value!r} (position {token.lexpos + 1})" if token is not None else " at its end"
        raise where.refuse(f"condition {text[:200]!r} has a syntax error{at}: fix the expression") from None
    except rule_engine.errors.EngineError as exc:
        raise where.refuse(
            f"condition {text[:200]!r} is not valid ({exc.message}): compare numbers with numbers "
            "and texts with texts"
        ) from None
    tree = _check_tree(rule.statement, where)
    for node in tree.regexes:
        _use_re2(node, where)
    return Condition(rule, tree.work)
