"""Jinja2 in its immutable sandbox, with limits so that no template can hurt the server.

Templates are written by signed-in people but render data sent by anyone, so besides the sandbox's
attribute rules (no `__class__`, no mutation of lists or dicts) every render is bounded in time,
loop iterations and the size of everything it produces:

- at compile time (`check_template`): syntax, at most `MAX_LOOPS` `for` loops nested at most
  `MAX_LOOP_NESTING` deep (Prefect's limits, reference §5.6), and a bounded source;
- at run time: `range()` of at most `MAX_RANGE` items, a budget of loop iterations and of output
  characters, a deadline checked on every iteration, call, filter and operator, and size checks
  *before* the operations that can allocate a lot in one C call (`'x' * n`, `str.center(n)`,
  `'%1000000000d' % 1`, `indent(n)`, `replace`, `join`).
"""

from __future__ import annotations

import contextvars
import json
import math
import re
import string
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import orjson
from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, nodes, pass_context
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from events import template_links
from events.schema import isoformat
from events.webhooks.cloud_events import event_from_cloud_event

MAX_RANGE = 100
MAX_LOOPS = 10
MAX_LOOP_NESTING = 2
MAX_ITERATIONS = 10_000
MAX_TEMPLATE_CHARS = 100_000
# Widths, counts and indents beyond this make no sense in an event and could allocate gigabytes.
MAX_INT_ARGUMENT = 100_000
DEFAULT_MAX_OUTPUT = 1_500_000
DEFAULT_TIMEOUT = 0.5

_ITER = "eventsite_iter"
_CONCAT = "eventsite_concat"


class TemplateInvalid(ValueError):
    """The template cannot be used: a syntax error or over a limit. The message says which."""


class RenderFailed(ValueError):
    """Rendering stopped: an error in the template, a sandbox refusal, or a limit reached."""


@dataclass
class _Budget:
    deadline: float
    max_output: int
    iterations: int = 0
    output: int = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise SecurityError("the template took too long to render")

    def grow(self, size: int) -> None:
        self.output += size
        # Every `{{ }}` piece counts, including those built inside `set` blocks and macros, so
        # the total may exceed the final output; a few times the limit leaves room for that.
        if self.output > 4 * self.max_output:
            raise SecurityError("the template produces too much output")


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "eventsite_template_budget", default=None
)


def _current() -> _Budget:
    budget = _budget.get()
    if budget is None:  # rendering outside `render()` still gets limits
        budget = _Budget(deadline=time.monotonic() + DEFAULT_TIMEOUT, max_output=DEFAULT_MAX_OUTPUT)
        _budget.set(budget)
    return budget


def _check_size(size: int) -> None:
    budget = _current()
    if size > budget.max_output:
        raise SecurityError(
            f"the template would build a value of {size} characters "
            f"(at most {budget.max_output} are allowed)"
        )


def _check_int_arguments(args: Iterable[Any]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_INT_ARGUMENT:
            raise SecurityError(f"the number {arg} is too large for this call")


_FORMAT_NUMBERS = re.compile(r"\d+")
_FORMATTER = string.Formatter()


def _check_format_string(fmt: str, extra: int = 0) -> None:
    # A width or precision of N can produce N characters, once per field; `%*d` takes them
    # from the arguments, which `extra` then counts (see `call_binop`).
    _check_size(len(fmt) + extra + sum(int(n) for n in _FORMAT_NUMBERS.findall(fmt)))


def _format_size(fmt: str, args: tuple, kwargs: dict) -> int:
    """An upper bound on the length of `fmt.format(*args, **kwargs)`.

    Widths and precisions count once per field, including those a field takes from the
    arguments (`'{0:{1}}'.format('a', 100000)`): the nested fields are resolved first."""
    values = [*args, *kwargs.values()]
    size = _items_size(values)
    try:
        fields = list(_FORMATTER.parse(fmt))
    except ValueError:  # str.format will refuse it too
        return len(fmt) + size
    for literal, _field, spec, _conversion in fields:
        size += len(literal)
        if not spec:
            continue
        if "{" in spec:
            try:
                spec = spec.format(*args, **kwargs)
            except (IndexError, KeyError, ValueError, AttributeError, TypeError):
                continue
        size += sum(int(n) for n in _FORMAT_NUMBERS.findall(spec)) + len(spec)
        if size > 4 * DEFAULT_MAX_OUTPUT:
            break
    return size


def _text_size(value: Any, limit: int | None = None) -> int:
    """An upper bound on the length of `str(value)` / `repr` / `tojson`, found without building it.

    Containers are walked (a list can hold the same big list a thousand times), and the walk
    stops as soon as the bound passes `limit`, so it costs at most `limit` steps."""
    if limit is None:
        limit = _current().max_output
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, bytes | bytearray):
        return 4 * len(value) + 3
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    if isinstance(value, float):
        return 24
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        size = 2
        stack = [value]
        while stack:
            current = stack.pop()
            items = (
                [*current.keys(), *current.values()]
                if isinstance(current, Mapping)
                else list(current)
            )
            size += 2 * len(items) + 2
            for item in items:
                if isinstance(item, Mapping | list | tuple | set | frozenset):
                    stack.append(item)
                else:
                    size += _text_size(item, limit)
                if size > limit:
                    return size
        return size
    if isinstance(value, ChainableUndefined | StrictUndefined):
        return 0
    return len(str(value))


def _items_size(items: Iterable[Any], sep: str = "") -> int:
    """`_text_size` of each item plus a separator, stopping once over the limit."""
    limit = _current().max_output
    size = 0
    for item in items:
        size += _text_size(item, limit) + len(sep)
        if size > limit:
            break
    return size


# --- guarded operations ---------------------------------------------------------------------


def _guarded_iter(iterable: Any) -> Iterator[Any]:
    budget = _current()
    for item in iterable:
        budget.iterations += 1
        if budget.iterations > MAX_ITERATIONS:
            raise SecurityError(f"the template ran more than {MAX_ITERATIONS} loop iterations")
        budget.tick()
        yield item


def _guarded_concat(*parts: Any) -> str:
    _check_size(sum(len(p) if isinstance(p, str) else _text_size(p) for p in parts))
    strings = [part if isinstance(part, str) else str(part) for part in parts]
    _check_size(sum(len(s) for s in strings))
    return "".join(strings)


def _safe_range(*args: int) -> range:
    _check_int_arguments(args)
    result = range(*args)
    if len(result) > MAX_RANGE:
        # Prefect's words, so templates written for Prefect fail the same way here.
        raise SecurityError(f"Range too big. The sandbox blocks ranges larger than {MAX_RANGE}.")
    return result


def _estimate_str_method(text: str, name: str, args: tuple, kwargs: dict) -> int:
    """An upper bound on the length of `text.<name>(*args)`, for the methods that can grow."""
    values = [*args, *kwargs.values()]
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(len(text), *(v for v in values[:1] if isinstance(v, int)), 0)
    if name == "expandtabs":
        width = values[0] if values and isinstance(values[0], int) else 8
        return len(text) + text.count("\t") * max(width, 0)
    if name == "replace" and len(values) >= 2:
        old, new = str(values[0]), str(values[1])
        count = text.count(old) if old else len(text) + 1
        return len(text) + count * len(new)
    if name == "format":
        return _format_size(text, args, kwargs)
    if name == "format_map":
        mapping = values[0] if values and isinstance(values[0], Mapping) else {}
        return _format_size(text, (), dict(mapping))
    return len(text)


def _estimate_filter(name: str, value: Any, args: tuple, kwargs: dict) -> int:
    values = [*args, *kwargs.values()]
    if name == "indent":
        width = values[0] if values else 4
        width = len(width) if isinstance(width, str) else int(width or 0)
        text = str(value)
        return len(text) + (text.count("\n") + 1) * width
    if name == "replace" and len(values) >= 2:
        text, old, new = str(value), str(values[0]), str(values[1])
        count = text.count(old) if old else len(text) + 1
        return len(text) + count * len(new)
    if name == "format":
        # Jinja's `format` filter is `%`-formatting: `*` widths come from the arguments.
        text = str(value)
        numbers = sum(abs(v) for v in values if isinstance(v, int)) if "*" in text else 0
        return (
            len(text)
            + numbers
            + sum(_text_size(v) for v in values)
            + sum(int(n) for n in _FORMAT_NUMBERS.findall(text))
        )
    if name == "wordwrap":
        text = str(value)
        width = values[0] if values and isinstance(values[0], int) else 79
        wrapstring = kwargs.get("wrapstring") or (values[2] if len(values) > 2 else "\n")
        return len(text) + (len(text) // max(width, 1) + 1) * len(str(wrapstring or ""))
    if name == "center":
        width = values[0] if values and isinstance(values[0], int) else 80
        return max(len(str(value)), width)
    return 0


def _guard_filter(name: str, func: Callable) -> Callable:
    pass_arg = getattr(func, "jinja_pass_arg", None)

    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _current()
        budget.tick()
        # Filters that take the context or environment get it first; the value comes next.
        offset = 1 if pass_arg is not None else 0
        value, extra = (args[offset], args[offset + 1 :]) if len(args) > offset else (None, ())
        _check_int_arguments(extra)
        _check_int_arguments(kwargs.values())
        if name == "tojson" and _indent_of(extra, kwargs) > 16:
            raise SecurityError("tojson indent is limited to 16")
        if name in ("join",):
            value = list(value) if value is not None else []
            sep = str(extra[0]) if extra else str(kwargs.get("d", ""))
            _check_size(_items_size(value, sep))
            args = (*args[:offset], value, *extra)
        else:
            if name not in _STRUCTURAL_FILTERS and isinstance(value, _CONTAINERS):
                # The filter writes the container out (`tojson`, `string`, `pprint`, …):
                # bound what that builds before it is built.
                _check_size(_text_size(value) * (2 if name == "tojson" else 1))
            _check_size(_estimate_filter(name, value, extra, kwargs))
        result = func(*args, **kwargs)
        if isinstance(result, (str, list, tuple)):
            _check_size(len(result))
        return result

    guarded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    guarded.__name__ = getattr(func, "__name__", name)
    return guarded


_CONTAINERS = (Mapping, list, tuple, set, frozenset)
# Filters that look into a container without writing all of it out.
_STRUCTURAL_FILTERS = frozenset(
    [
        "attr",
        "batch",
        "count",
        "d",
        "default",
        "dictsort",
        "first",
        "groupby",
        "items",
        "last",
        "length",
        "list",
        "map",
        "max",
        "min",
        "random",
        "reject",
        "rejectattr",
        "reverse",
        "select",
        "selectattr",
        "slice",
        "sort",
        "sum",
        "unique",
    ]
)


def _indent_of(args: tuple, kwargs: dict) -> int:
    indent = kwargs.get("indent", args[0] if args else None)
    return indent if isinstance(indent, int) else 0


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**", "+", "%", "//"])

    def unsafe_undefined(self, obj: Any, attribute: str):
        # Refuse at once: with ChainableUndefined an unsafe attribute would otherwise render
        # as an empty string and hide the attempt.
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        _current().tick()
        return super().getattr(obj, attribute)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # `str.format` is reached through this wrapper, not `call`: bound its output first.
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> str:
            _check_int_arguments(args)
            _check_size(_estimate_str_method(fmt, value.__name__, args, kwargs))
            return wrapper(*args, **kwargs)

        return bounded

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        _current().tick()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    _check_size(len(seq) * max(n, 0))
        elif operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                _check_size(len(left) + len(right))
        elif (
            operator == "**"
            and isinstance(left, (int, float))
            and isinstance(right, (int, float))
            and abs(left) > 1
            and right > 0
            and right * math.log2(abs(left)) > 4096
        ):
            raise SecurityError("the power is too large")
        elif operator == "%" and isinstance(left, str):
            values = right if isinstance(right, (tuple, list)) else [right]
            if isinstance(right, Mapping):
                values = list(right.values())
            extra = _items_size(values)
            if "*" in left:  # `'%*s' % (n, s)`: the width is an argument
                extra += sum(abs(v) for v in values if isinstance(v, int))
            _check_format_string(left, extra)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _current().tick()
        _check_int_arguments(args)
        _check_int_arguments(kwargs.values())
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _check_size(_estimate_str_method(owner, __obj.__name__, args, kwargs))
        elif getattr(__obj, "__name__", "") == "join" and args:
            items = list(args[0])
            sep = owner if isinstance(owner, str) else ""
            _check_size(_items_size(items, sep))
            args = (items, *args[1:])
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, (str, list, tuple)):
            _check_size(len(result))
        return result


@pass_context
def _finalize(context, value: Any) -> Any:
    if isinstance(value, ChainableUndefined):
        return value
    if not isinstance(value, str):
        _check_size(_text_size(value))
    text = value if isinstance(value, str) else str(value)
    _current().grow(len(text))
    return text


class _Guard(NodeTransformer):
    """Route loops and `~` through the guarded helpers; make all output pass `finalize`."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(
            nodes.Name(_ITER, "load", lineno=node.lineno),
            [node.iter],
            [],
            None,
            None,
            lineno=node.lineno,
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(
            nodes.Name(_CONCAT, "load", lineno=node.lineno),
            node.nodes,
            [],
            None,
            None,
            lineno=node.lineno,
        )

    def visit_TemplateData(self, node: nodes.TemplateData) -> nodes.Node:
        # Literal text would skip `finalize` (so the output budget) when repeated by a loop.
        return nodes.Const(node.data, lineno=node.lineno)


def _environment(
    *, dumps: Callable[..., str], undefined: type = ChainableUndefined, links: bool = False
) -> _Sandbox:
    env = _Sandbox(
        undefined=undefined,
        autoescape=False,
        finalize=_finalize,
        extensions=["jinja2_humanize_extension.HumanizeExtension"],
    )
    env.policies["json.dumps_function"] = dumps
    env.policies["json.dumps_kwargs"] = {}
    env.globals.pop("lipsum", None)  # can be asked for any amount of text
    env.globals["range"] = _safe_range
    env.globals[_ITER] = _guarded_iter
    env.globals[_CONCAT] = _guarded_concat
    env.filters["from_cloud_event"] = event_from_cloud_event
    if links:  # Prefect's `ui_url` and `ui_resource_events_url`, for action templates
        env.filters.update(template_links.FILTERS)
    env.filters = {name: _guard_filter(name, f) for name, f in env.filters.items()}
    return env


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoformat(value)
    if isinstance(value, date | uuid.UUID):
        return str(value)
    if hasattr(value, "__json__"):  # template helpers that stand for a plain structure
        return value.__json__()
    return str(value)


def _compact_dumps(value: Any, **kwargs: Any) -> str:
    """`tojson` for webhook templates: compact, fast (the receiver's hot path)."""
    if kwargs.get("indent"):
        return json.dumps(value, indent=kwargs["indent"], default=_json_default)
    return orjson.dumps(
        value,
        default=_json_default,
        option=orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME,
    ).decode()


def prefect_dumps(value: Any, **kwargs: Any) -> str:
    """`tojson` for action templates: `json.dumps`, as Prefect renders them."""
    return json.dumps(value, default=_json_default, indent=kwargs.get("indent"))


# One sandbox, two flavours that differ only in how `tojson` writes JSON. Webhook templates build
# an event from a request; action templates (call-webhook, notifications, emit-event) render
# Prefect's automation context. Both get every limit above. Webhooks in strict mode (the default
# for new ones) render undefined variables as errors instead of "" (which stores junk events).
WEBHOOKS = _environment(dumps=_compact_dumps)
WEBHOOKS_STRICT = _environment(dumps=_compact_dumps, undefined=StrictUndefined)
ACTIONS = _environment(dumps=prefect_dumps, links=True)
ENVIRONMENT = WEBHOOKS


def _check_loops(tree: nodes.Template) -> None:
    loops = list(tree.find_all(nodes.For))
    if len(loops) > MAX_LOOPS:
        raise TemplateInvalid(f"the template has {len(loops)} for loops; at most {MAX_LOOPS}")

    def depth(node: nodes.Node, level: int) -> None:
        for child in node.iter_child_nodes():
            inner = level + 1 if isinstance(child, nodes.For) else level
            if inner > MAX_LOOP_NESTING:
                raise TemplateInvalid(
                    f"for loops are nested {inner} deep; at most {MAX_LOOP_NESTING} levels"
                )
            depth(child, inner)

    depth(tree, 0)


@lru_cache(maxsize=1024)
def compile_template(source: str, environment: _Sandbox = WEBHOOKS):
    """The compiled, guarded template for `source` (cached); raises `TemplateInvalid`."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateInvalid(f"the template is longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        tree = environment.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(f"line {exc.lineno}: {exc.message}") from None
    _check_loops(tree)
    tree = _Guard().visit(tree)
    tree.set_environment(environment)
    try:
        return environment.from_string(tree)
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(f"line {exc.lineno}: {exc.message}") from None


def check_template(source: str, environment: _Sandbox = WEBHOOKS) -> None:
    """Raise `TemplateInvalid` when `source` does not compile or breaks a static limit."""
    compile_template(source, environment)


def render(
    source: str,
    context: Mapping[str, Any],
    *,
    environment: _Sandbox = WEBHOOKS,
    max_output: int = DEFAULT_MAX_OUTPUT,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Render `source` with `context` inside the limits; raise `TemplateInvalid` / `RenderFailed`."""
    template = compile_template(source, environment)
    budget = _Budget(deadline=time.monotonic() + timeout, max_output=max_output)
    token = _budget.set(budget)
    try:
        pieces: list[str] = []
        size = 0
        for piece in template.generate(context):
            size += len(piece)
            if size > max_output:
                raise SecurityError(f"the output is longer than {max_output} characters")
            pieces.append(piece)
        return "".join(pieces)
    except SecurityError as exc:
        raise RenderFailed(f"refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise RenderFailed(f"{type(exc).__name__}: {exc}") from None
    except RecursionError:
        raise RenderFailed("the template recursed too deeply") from None
    except MemoryError:
        raise RenderFailed("the template needed too much memory") from None
    except Exception as exc:  # any error raised by template code is the template's problem
        raise RenderFailed(f"{type(exc).__name__}: {exc}") from None
    finally:
        _budget.reset(token)
