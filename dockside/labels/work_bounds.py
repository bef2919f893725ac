"""What one operation of a label template may do: each is bounded before it runs.

One big-integer power or one `str` repetition is a single C call that holds the GIL: no time
limit can interrupt it, so the bound has to come first. Every operator, filter and conversion a
template can reach is checked here against the size of what it would read or build, and charged
to the render's budget (`dockside.labels.render_budget`) by that size:

- `**`: the exponent is at most 64 and the result at most `MAX_INT_BITS` bits; `*` of two whole
  numbers likewise; `+` of whole numbers past that size is refused too;
- repetition (`'-' * n`, `[x] * n`) builds at most `MAX_REPEAT` characters or items, and a
  repeated list at most `MAX_TEXT` characters of text;
- `+` and `~` on text and lists, `join`, `replace`, and every filter's text result build at most
  `MAX_TEXT` characters;
- filters that read text (`upper`, `center`, `truncate`, `urlencode`, `int`...) read at most
  `MAX_TEXT` characters of it, containers included (a list is read as its text);
- widths and counts are capped: `center` at 1,000, `batch` at 1,000, `round` precision at 30,
  `wordwrap` reads at most 10,000 characters and adds at most `MAX_TEXT`;
- `sum` adds numbers only (adding lists or text would be quadratic);
- `%` string formatting is refused outright.

`range`, `lipsum`, `dictsort`, `format`, `indent`, macros, recursive loops and method calls are
not reachable at all (`template_sandbox` refuses them at parse). Every refusal is a
`TemplateOverrun` with code `template_unsafe` whose message says what to write instead.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jinja2
from jinja2.filters import do_batch, do_center, do_replace, make_attrgetter, sync_do_join

from dockside.errors import TemplateOverrun
from dockside.labels.render_budget import charge, metered_items

__all__ = [
    "BOUNDED_FILTERS",
    "MAX_INT_BITS",
    "MAX_REPEAT",
    "MAX_TEXT",
    "binop",
    "bounded_filters",
    "concat",
    "text_of",
    "text_size",
]

MAX_REPEAT = 10_000
MAX_TEXT = 100_000
MAX_INT_BITS = 4_096
MAX_EXPONENT = 64
MAX_WIDTH = 1_000
MAX_BATCH = 1_000
MAX_ROUND_DIGITS = 30
MAX_WRAPPED = 10_000
_MAX_DEPTH = 32
# Type tuples, not `a | b` unions: a union in isinstance() is built anew at every call.
_CONTAINERS = (list, tuple, set, frozenset, dict)
_SEQUENCES = (str, list, tuple)
_SIZED = (str, list, tuple, dict)
_NUMBERS = (int, float)
_TEXT_UNIT = 64  # characters of text per work unit
_FEW_ITEMS = 16  # items a filter may walk on the unit its loop turn already paid


def _refuse(message: str) -> TemplateOverrun:
    """The error of an operation past its bound."""
    return TemplateOverrun(message, code="template_unsafe")


def text_size(value: Any, limit: int = MAX_TEXT, depth: int = 0) -> int:
    """About how many characters `str(value)` has; stops counting once past `limit`.

    Text inside a list or dict counts its length plus quotes (`repr` may escape some characters
    into several). Anything nested deeper than 32 levels counts as too big.
    """
    kind = type(value)
    if kind is str:
        return len(value)
    if kind is int:
        bits: int = value.bit_length()
        return bits * 3 // 10 + 2
    if kind is float or kind is bool or value is None:
        return 24
    if isinstance(value, str):
        return len(value)
    if isinstance(value, _CONTAINERS):
        if depth >= _MAX_DEPTH:
            return limit + 1
        total = 2
        items: Iterable[Any] = value.items() if isinstance(value, dict) else value
        for item in items:
            total += 2 + text_size(item, limit - total, depth + 1)
            if total > limit:
                break
        return total
    return 64  # a loop object, a generator, a method: their str() is a short description


def text_of(value: Any) -> str:
    """`str(value)`, refused when it would be longer than `MAX_TEXT` (a huge list, say)."""
    if type(value) is str:
        return value
    kind = type(value)
    if kind is int or kind is float:  # an int past 4,300 digits is Python's own ValueError
        return str(value)
    size = text_size(value)
    if size > MAX_TEXT:
        raise _refuse(
            f"the template prints a value of more than {MAX_TEXT:,} characters: "
            "print one field of it, e.g. {{ line.sku }} instead of {{ lines }}"
        )
    if size >= _TEXT_UNIT:
        charge(size // _TEXT_UNIT)  # str() of a list or dict walks it all in Python
    return str(value)


def concat(values: tuple[Any, ...]) -> str:
    """`a ~ b ~ c`: the values as text, joined, at most `MAX_TEXT` characters."""
    size = 0
    for value in values:
        size += len(value) if type(value) is str else text_size(value, MAX_TEXT - size)
    if size > MAX_TEXT:
        raise _refuse(f"joining text with ~ to more than {MAX_TEXT:,} characters is not allowed")
    charge(1 + size // _TEXT_UNIT)
    return "".join([value if type(value) is str else str(value) for value in values])


def _int_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def binop(symbol: str, left: Any, right: Any) -> Any:
    """`left <symbol> right` for the intercepted operators, refused past their bounds."""
    if symbol == "+":
        return _add(left, right)
    if symbol == "*":
        return _multiply(left, right)
    if symbol == "**":
        return _power(left, right)
    if isinstance(left, str):
        raise _refuse(
            "string formatting with % is not allowed in a label template: "
            "write the values side by side, e.g. {{ a }} {{ b }}"
        )
    return left % right


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        size = text_size(left) + text_size(right)
        if size > MAX_TEXT:
            raise _refuse(f"joining text or lists with + to more than {MAX_TEXT:,} characters is not allowed")
        charge(1 + size // _TEXT_UNIT)
    elif max(_int_bits(left), _int_bits(right)) >= MAX_INT_BITS:
        raise _refuse(f"a whole number of more than {MAX_INT_BITS:,} bits is not allowed in a label template")
    return left + right


def _multiply(left: Any, right: Any) -> Any:
    if isinstance(right, int) and isinstance(left, _SEQUENCES):
        left, right = right, left
    if isinstance(left, int) and isinstance(right, _SEQUENCES):
        count = max(0, left)
        if count * len(right) > MAX_REPEAT:
            raise _refuse(
                f"repeating text to more than {MAX_REPEAT} characters is not allowed in a label template"
            )
        if not isinstance(right, str) and count * text_size(right, MAX_TEXT // max(count, 1) + 1) > MAX_TEXT:
            raise _refuse(f"repeating a list to more than {MAX_TEXT:,} characters of text is not allowed")
        charge(1 + count * len(right) // _TEXT_UNIT)
        return left * right
    if _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
        raise _refuse(
            f"a product of more than {MAX_INT_BITS:,} bits is not allowed in a label template: "
            "multiply smaller numbers"
        )
    return left * right


def _power(left: Any, right: Any) -> Any:
    if isinstance(right, bool) or not isinstance(right, _NUMBERS) or abs(right) > MAX_EXPONENT:
        raise _refuse(f"an exponent above {MAX_EXPONENT} is not allowed in a label template")
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and right > 0
        and _int_bits(left) * right > MAX_INT_BITS
    ):
        raise _refuse(
            f"a power of more than {MAX_INT_BITS:,} bits (here {left.bit_length():,} bits to the "
            f"{right}th) is not allowed in a label template"
        )
    return left**right


# -- filters -------------------------------------------------------------------------------------
#
# A loop turn already pays for each filter its body names, so a filter charges only for size: a
# unit per 64 characters read, a unit per item. Small values (the usual case) cost no charge at all.


def _read_text(value: Any) -> None:
    """Charge reading `value` as text; refuse more than `MAX_TEXT` characters."""
    size = len(value) if type(value) is str else text_size(value)
    if size > MAX_TEXT:
        raise _refuse(f"a filter may read at most {MAX_TEXT:,} characters of text")
    if size >= _TEXT_UNIT:
        charge(size // _TEXT_UNIT)


def _read_items(value: Any) -> None:
    """Charge reading the items of `value` (a generator's items are charged as they come)."""
    if isinstance(value, _SIZED) and len(value) >= _FEW_ITEMS:
        charge(len(value))


def _checked(result: Any) -> Any:
    if type(result) is str and len(result) > MAX_TEXT:
        raise _refuse(f"a filter may build at most {MAX_TEXT:,} characters of text")
    if type(result) is int and result.bit_length() > MAX_INT_BITS:
        raise _refuse(f"a whole number of more than {MAX_INT_BITS:,} bits is not allowed in a label template")
    return result


def _text_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that reads its value as text (`upper`, `int`, `urlencode`...), bounded."""

    def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
        if type(value) is not str or len(value) >= _TEXT_UNIT:
            _read_text(value)
        result = func(value, *args, **kwargs)
        if type(result) is str and len(result) <= MAX_TEXT:
            return result
        return _checked(result)

    def bounded_unary(value: Any) -> Any:
        if type(value) is not str or len(value) >= _TEXT_UNIT:
            _read_text(value)
        result = func(value)
        if type(result) is str and len(result) <= MAX_TEXT:
            return result
        return _checked(result)

    # Most text filters take the value alone: a call without *args costs less on the pack path.
    code = getattr(func, "__code__", None)
    unary = (
        code is not None
        and code.co_argcount == 1
        and not code.co_kwonlyargcount
        and not code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    )
    chosen = bounded_unary if unary else bounded
    chosen.__name__ = chosen.__qualname__ = getattr(func, "__name__", "filter")
    return chosen


def _items_filter(func: Callable[..., Any], cost: Callable[[Any], None], lazy: bool) -> Callable[..., Any]:
    """A filter that walks its value's items (`sort`, `map`...), bounded; a lazy one's items are metered."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)  # keeps Jinja2's pass_context/pass_environment mark
    def bounded(*args: Any, **kwargs: Any) -> Any:
        cost(args[skip] if len(args) > skip else None)
        result = func(*args, **kwargs)
        return metered_items(result, 1) if lazy else _checked(result)

    return bounded


def _text(value: Any) -> str:
    return value if type(value) is str else text_of(value)


def _center(value: Any, width: int = 80) -> str:
    if not isinstance(width, int) or width > MAX_WIDTH:
        raise _refuse(f"| center accepts a width up to {MAX_WIDTH}")
    _read_text(value)
    return do_center(_text(value), width)


@jinja2.pass_eval_context
def _replace(eval_ctx: Any, value: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old_text, new_text = _text(value), _text(old), _text(new)
    grows = text.count(old_text) * max(0, len(new_text) - len(old_text)) if old_text else 0
    if old_text == "" or len(text) + grows > MAX_TEXT:
        raise _refuse(
            f"| replace would make a value longer than {MAX_TEXT:,} characters (or replaces an empty string)"
        )
    if len(text) + grows >= _TEXT_UNIT:
        charge((len(text) + grows) // _TEXT_UNIT)
    return str(do_replace(eval_ctx, text, old_text, new_text, count))


def _batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    if not isinstance(linecount, int) or not 1 <= linecount <= MAX_BATCH:
        raise _refuse(f"| batch accepts a size from 1 to {MAX_BATCH}")
    if linecount * text_size(fill_with, MAX_TEXT) > MAX_TEXT:
        raise _refuse(f"| batch may fill with at most {MAX_TEXT:,} characters of text")
    _read_items(value)
    return do_batch(value, linecount, fill_with)


def _round(value: Any, precision: int = 0, method: str = "common") -> Any:
    if isinstance(precision, bool) or not isinstance(precision, int) or abs(precision) > MAX_ROUND_DIGITS:
        raise _refuse(f"| round accepts a precision from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}")
    return _checked(jinja2.filters.do_round(value, precision, method))  # type: ignore[arg-type]


@jinja2.pass_environment
def _wordwrap(
    environment: Any,
    value: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    text = _text(value)
    if len(text) > MAX_WRAPPED:
        raise _refuse(f"| wordwrap accepts text up to {MAX_WRAPPED:,} characters")
    joint = environment.newline_sequence if wrapstring is None else _text(wrapstring)
    if len(text) * (1 + len(joint)) > MAX_TEXT:
        raise _refuse(
            f"| wordwrap would make a value longer than {MAX_TEXT:,} characters: use a shorter wrapstring"
        )
    charge(1 + len(text))  # textwrap works word by word in Python
    return str(
        jinja2.filters.do_wordwrap(environment, text, width, break_long_words, joint, break_on_hyphens)
    )


@jinja2.pass_environment
def _truncate(
    environment: Any,
    value: Any,
    length: int = 255,
    killwords: bool = False,
    end: str = "...",
    leeway: Any = None,
) -> str:
    text = value if type(value) is str else text_of(value)
    ending = end if type(end) is str else text_of(end)
    if not isinstance(length, int) or length < len(ending) or (leeway is not None and leeway < 0):
        raise ValueError(f"| truncate needs a length of at least {len(ending)} and a leeway of 0 or more")
    if len(text) >= _TEXT_UNIT:
        charge(len(text) // _TEXT_UNIT)
    return str(jinja2.filters.do_truncate(environment, text, length, killwords, ending, leeway))


@jinja2.pass_eval_context
def _join(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> str:
    items = list(metered_items(value, 1))
    if attribute is not None:
        items = list(map(make_attrgetter(eval_ctx.environment, attribute), items))
    separator = _text(d)
    size = len(separator) * len(items)
    for item in items:
        size += len(item) if type(item) is str else text_size(item, MAX_TEXT - size)
        if size > MAX_TEXT:
            raise _refuse(f"| join would make a value longer than {MAX_TEXT:,} characters")
    charge(1 + size // _TEXT_UNIT)
    return str(sync_do_join(eval_ctx, items, separator))


@jinja2.pass_environment
def _sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    # With a number to start from, Python's sum can only add numbers: a list or a text item is a
    # TypeError at once, never the quadratic copying of `sum(lists, start=[])`.
    if type(start) is not int and type(start) is not float:
        raise _refuse("| sum adds numbers only: start from a number, or use | join for text")
    _read_items(iterable)
    values = iterable if attribute is None else map(make_attrgetter(environment, attribute), iterable)
    return _checked(sum(values, start))


def _sort_cost(value: Any) -> None:
    count = len(value) if isinstance(value, _SIZED) else 0
    if count >= _FEW_ITEMS:
        charge(count * count.bit_length())


_TEXT_FILTERS = frozenset(
    {"capitalize", "float", "int", "lower", "string", "title", "trim", "upper", "urlencode", "code128"}
)
# Filters whose work is constant or bounded by what they read once (length, default, first).
_CONSTANT = frozenset({"abs", "count", "d", "default", "first", "length"})
_READS_ITEMS = frozenset({"last", "list", "max", "min", "reverse", "unique"})
_LAZY = frozenset({"map", "reject", "rejectattr", "select", "selectattr"})
_OWN: dict[str, Callable[..., Any]] = {
    "batch": _batch,
    "center": _center,
    "join": _join,
    "replace": _replace,
    "round": _round,
    "sum": _sum,
    "truncate": _truncate,
    "wordwrap": _wordwrap,
}
BOUNDED_FILTERS = _CONSTANT | _TEXT_FILTERS | _READS_ITEMS | _LAZY | frozenset(_OWN) | {"sort"}


def bounded_filters(
    available: Mapping[str, Callable[..., Any]], names: Iterable[str]
) -> dict[str, Callable[..., Any]]:
    """The filters `names`, each bounded; a name this module does not know how to bound is refused."""
    bounded: dict[str, Callable[..., Any]] = {}
    for name in names:
        if name in _OWN:
            bounded[name] = _OWN[name]
        elif name in _CONSTANT:
            bounded[name] = available[name]
        elif name in _TEXT_FILTERS:
            bounded[name] = _text_filter(available[name])
        elif name in _READS_ITEMS:
            bounded[name] = _items_filter(available[name], _read_items, lazy=False)
        elif name == "sort":
            bounded[name] = _items_filter(available[name], _sort_cost, lazy=False)
        elif name in _LAZY:
            bounded[name] = _items_filter(available[name], _read_items, lazy=True)
        else:
            raise ValueError(f"the filter {name!r} has no bound in dockside.labels.work_bounds")
    return bounded
