"""Email templates: validation at save time and sandboxed rendering. Pure: no I/O, no clock.

A template is three Jinja sources (subject, HTML body, text body) plus the variable names it declares.
Template authors are tenant users and the values are lead data, so neither is trusted. The rules,
checked by :func:`validate_template` before a template is stored and again on every render:

* Jinja's ``SandboxedEnvironment`` (immutable flavour: ``list.append`` and friends are refused too);
  any access to an unsafe attribute (``__class__``, ``mro``, ``__globals__``...) raises ``SecurityError``
  instead of quietly rendering as an empty string.
* No loader, and ``include``, ``import``, ``extends`` are rejected; so are macros, call blocks,
  recursive loops and function/method calls (``name.center(10**9)`` would allocate a gigabyte before
  anything could check it), and ``{% autoescape %}`` blocks (they could switch HTML escaping off).
* No globals (no ``range``, ``lipsum``, ``namespace``...) and an allow-list of filters.
* Bounded work, counted in steps, not time, so a render is deterministic: at most ``MAX_STEPS``
  loop iterations and checked operations, no value built larger than ``MAX_VALUE_LENGTH``, no part
  rendered longer than ``MAX_OUTPUT_LENGTH``; ``*``, ``**`` and ``%`` are bounded or refused.
* Every variable the template reads must be declared; undeclared ones are refused when saved (naming
  the variable). Rendering is not strict: a declared variable without a value renders as empty.
* The HTML body autoescapes every value; the subject and text body do not (they are not HTML), and
  line breaks in a rendered subject become spaces so a value cannot inject mail headers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import TemplateSyntaxError, nodes, pass_context, pass_eval_context
from jinja2.environment import Template
from jinja2.exceptions import SecurityError, TemplateRuntimeError, UndefinedError
from jinja2.filters import do_join
from jinja2.meta import find_undeclared_variables
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing
from jinja2.visitor import NodeTransformer

__all__ = [
    "MAX_OUTPUT_LENGTH",
    "MAX_STEPS",
    "MAX_VALUE_LENGTH",
    "MAX_VARIABLES",
    "VARIABLE_NAME",
    "EmailTemplateSource",
    "RenderedEmail",
    "TemplateField",
    "TemplateProblem",
    "TemplateRefusedError",
    "TemplateRenderError",
    "TemplateValidationError",
    "placeholder_values",
    "preview_email",
    "render_email",
    "validate_template",
]

TemplateField = Literal["subject", "body_html", "body_text"]
_FIELDS: tuple[TemplateField, ...] = ("subject", "body_html", "body_text")

VARIABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
"""Declared variable names: identifiers that cannot start with an underscore (those are private)."""
MAX_VARIABLES = 100
MAX_STEPS = 10_000
"""Loop iterations plus checked operations (concatenations, arithmetic, filters) per rendered part."""
MAX_VALUE_LENGTH = 100_000
"""Longest string or list a template may build."""
MAX_OUTPUT_LENGTH = 1_000_000
"""Longest rendered part, in characters."""

# Filters that convert, shrink or escape (growing their input by a bounded factor at most). Left out:
# ``safe``/``forceescape`` (would let values inject HTML), ``format``/``center``/``indent``/
# ``wordwrap``/``replace``/``filesizeformat`` (arguments can inflate output without bound),
# ``attr``/``map``/``select*``/``reject*``/``groupby``/``items``/``dictsort`` (attribute lookups by
# string, not needed in email copy), ``random`` (not deterministic), ``tojson``/``xmlattr``/``urlize``/
# ``pprint``/``batch``/``slice``/``sum``/``min``/``max``.
_ALLOWED_FILTERS = frozenset({
    "abs", "capitalize", "count", "d", "default", "e", "escape", "first", "float", "int", "join",
    "last", "length", "list", "lower", "reverse", "round", "sort", "string", "striptags", "title",
    "trim", "truncate", "unique", "upper", "urlencode", "wordcount",
})
_FORBIDDEN_TAGS: dict[type[nodes.Node], str] = {
    nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from ... import",
    nodes.Extends: "extends", nodes.Macro: "macro", nodes.CallBlock: "call",
    nodes.EvalContextModifier: "autoescape",
}
_MAX_POWER_BASE = 10**12
_MAX_POWER_EXPONENT = 64
_MAX_INT_BITS = 4096
# Names of the filters the compiler inserts (users cannot name them: they are not in the allow-list).
_ITER_GUARD = "_guard_iter"
_SIZE_GUARD = "_guard_size"


@dataclass(frozen=True)
class EmailTemplateSource:
    """What is stored: the three sources and the declared variable names."""

    subject: str
    body_html: str
    body_text: str
    variables: tuple[str, ...] = ()


@dataclass(frozen=True)
class RenderedEmail:
    """A rendered message, ready for an outbox."""

    subject: str
    body_html: str
    body_text: str


@dataclass(frozen=True)
class TemplateProblem:
    """One reason a template cannot be saved; ``field`` is ``variables`` or one of the sources."""

    field: str
    message: str
    variable: str | None = None


class TemplateValidationError(ValueError):
    """The template breaks one or more of the rules; ``problems`` says where."""

    def __init__(self, problems: list[TemplateProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


class TemplateRenderError(ValueError):
    """Rendering failed: a runtime error of the template with these values (e.g. text compared to a number)."""


class TemplateRefusedError(TemplateRenderError):
    """The sandbox refused the template whatever the values: unsafe access, forbidden tag, too much work."""


# ---- the sandbox --------------------------------------------------------------------------------


class _Budget:
    """Steps left for the render in progress."""

    def __init__(self) -> None:
        self.steps = MAX_STEPS

    def spend(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise SecurityError(f"the template does too much work (more than {MAX_STEPS} steps)")


_BUDGET: ContextVar[_Budget] = ContextVar("template_budget")


def _spend() -> None:
    _BUDGET.get().spend()


def _check_size(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_VALUE_LENGTH:
        raise SecurityError(f"the template builds a value longer than {MAX_VALUE_LENGTH}")
    return value


@pass_context
def _guard_iter(_context: Context, iterable: Any) -> Iterator[Any]:
    """Every loop iterates through this (inserted by the compiler), one step per item."""
    budget = _BUDGET.get()
    for item in iterable:
        budget.spend()
        yield item


@pass_context
def _guard_size(_context: Context, value: Any) -> Any:
    """Every ``~`` concatenation passes through this (inserted by the compiler)."""
    _spend()
    return _check_size(value)


def _guarded_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    # functools.wraps copies jinja_pass_arg, so Jinja still passes the context the filter expects.
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _spend()
        return _check_size(func(*args, **kwargs))

    return wrapper


@pass_eval_context
def _join(eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> Any:
    """``join`` with its output size checked before it is built (a long separator multiplies)."""
    items = list(value)
    if len(str(d)) * max(len(items) - 1, 0) > MAX_VALUE_LENGTH:
        raise SecurityError(f"join would build a value longer than {MAX_VALUE_LENGTH}")
    return do_join(eval_ctx, items, d, attribute)


class _GuardedUndefined(Undefined):
    """Undefined that raises for sandbox violations instead of rendering them as empty strings.

    The sandbox answers an unsafe attribute with an undefined value carrying ``SecurityError``; the
    default ``Undefined`` would print it as "", which would hide an attack instead of refusing it.
    """

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[TemplateRuntimeError] = UndefinedError,
    ) -> None:
        if exc is SecurityError:
            raise SecurityError(hint or "unsafe access")
        super().__init__(hint, obj, name, exc)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _EmailSandbox(ImmutableSandboxedEnvironment):
    """The sandbox every email template is compiled and rendered in."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(loader=None, autoescape=autoescape, undefined=_GuardedUndefined)
        # Nothing callable from the template except the values it is given and the allowed filters.
        self.globals.clear()
        allowed = {name: f for name, f in self.filters.items() if name in _ALLOWED_FILTERS}
        allowed["join"] = _join
        self.filters = {name: _guarded_filter(f) for name, f in allowed.items()}
        self.filters[_ITER_GUARD] = _guard_iter
        self.filters[_SIZE_GUARD] = _guard_size

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Refuse arithmetic whose result could exhaust memory or CPU, and printf-style formatting."""
        _spend()
        if operator == "%" and not (_is_number(left) and _is_number(right)):
            # '%1000000000s' % x would allocate a gigabyte; filters cover formatting needs.
            raise SecurityError("'%' formatting is not allowed; '%' only applies to numbers")
        if operator == "**":
            if not (_is_number(left) and _is_number(right)):
                raise SecurityError("'**' only applies to numbers")
            if abs(left) > _MAX_POWER_BASE or abs(right) > _MAX_POWER_EXPONENT:
                raise SecurityError("'**' operands are too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                repeats = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if repeats and len(seq) * times > MAX_VALUE_LENGTH:
                    raise SecurityError(f"'*' would build a value longer than {MAX_VALUE_LENGTH}")
            if isinstance(left, int) and isinstance(right, int) and (
                left.bit_length() + right.bit_length() > _MAX_INT_BITS
            ):
                raise SecurityError("'*' operands are too large")
        sequences = isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
        if operator == "+" and sequences and len(left) + len(right) > MAX_VALUE_LENGTH:
            raise SecurityError(f"'+' would build a value longer than {MAX_VALUE_LENGTH}")
        return super().call_binop(context, operator, left, right)


class _InsertGuards(NodeTransformer):
    """Route every loop and every ``~`` through the budget filters."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _ITER_GUARD, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, _SIZE_GUARD, [], [], None, None, lineno=node.lineno)


_HTML = _EmailSandbox(autoescape=True)
_TEXT = _EmailSandbox(autoescape=False)


def _env(field: TemplateField) -> _EmailSandbox:
    return _HTML if field == "body_html" else _TEXT


def _static_problems(field: TemplateField, tree: nodes.Template) -> list[TemplateProblem]:
    """Forbidden constructs, found in the syntax tree so even branches a sample render skips are checked."""
    problems: list[TemplateProblem] = []
    for node in tree.find_all(tuple(_FORBIDDEN_TAGS)):
        tag = next(name for kind, name in _FORBIDDEN_TAGS.items() if isinstance(node, kind))
        problems.append(TemplateProblem(field, f"'{tag}' is not allowed in email templates"))
    if any(True for _ in tree.find_all(nodes.Call)):
        problems.append(TemplateProblem(
            field, "calling functions or methods is not allowed in email templates; use a filter such as |upper"
        ))
    if any(loop.recursive for loop in tree.find_all(nodes.For)):
        problems.append(TemplateProblem(field, "recursive loops are not allowed in email templates"))
    for getattr_node in tree.find_all(nodes.Getattr):
        if getattr_node.attr.startswith("_"):
            problems.append(TemplateProblem(field, f"access to attribute {getattr_node.attr!r} is not allowed"))
    for getitem in tree.find_all(nodes.Getitem):
        arg = getitem.arg
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str) and arg.value.startswith("_"):
            problems.append(TemplateProblem(field, f"access to attribute {arg.value!r} is not allowed"))
    for flt in tree.find_all(nodes.Filter):
        if flt.name not in _ALLOWED_FILTERS:
            problems.append(TemplateProblem(field, f"filter {flt.name!r} is not allowed"))
    return problems


def _parse(field: TemplateField, text: str) -> nodes.Template:
    """Parse and check the forbidden constructs; raises TemplateValidationError."""
    try:
        tree = _env(field).parse(text)
    except TemplateSyntaxError as exc:
        problem = TemplateProblem(field, f"syntax error on line {exc.lineno}: {exc.message}")
        raise TemplateValidationError([problem]) from exc
    except RecursionError as exc:
        raise TemplateValidationError([TemplateProblem(field, "the template is nested too deeply")]) from exc
    problems = _static_problems(field, tree)
    if problems:
        raise TemplateValidationError(problems)
    return tree


def _compile(field: TemplateField, tree: nodes.Template) -> Template:
    env = _env(field)
    guarded = _InsertGuards().visit(tree)
    guarded.set_environment(env)
    try:
        return env.from_string(guarded)
    except (TemplateSyntaxError, RecursionError, SyntaxError, MemoryError) as exc:
        raise TemplateRefusedError(f"the template cannot be compiled: {type(exc).__name__}") from exc


def _render_one(field: TemplateField, text: str, values: Mapping[str, object]) -> str:
    try:
        template = _compile(field, _parse(field, text))
    except TemplateValidationError as exc:
        raise TemplateRefusedError(str(exc)) from exc
    token = _BUDGET.set(_Budget())
    try:
        parts: list[str] = []
        length = 0
        for chunk in template.generate(dict(values)):
            length += len(chunk)
            if length > MAX_OUTPUT_LENGTH:
                raise SecurityError(f"the rendered text is longer than {MAX_OUTPUT_LENGTH} characters")
            parts.append(chunk)
        return "".join(parts)
    except SecurityError as exc:
        raise TemplateRefusedError(f"refused by the sandbox: {exc}") from exc
    except RecursionError as exc:
        raise TemplateRefusedError("the template recurses too deeply") from exc
    except Exception as exc:
        # Any runtime failure of user-written code is the template's error, never ours.
        raise TemplateRenderError(f"the template failed to render: {type(exc).__name__}: {exc}") from exc
    finally:
        _BUDGET.reset(token)


# ---- public API ---------------------------------------------------------------------------------


def _check_variables(variables: Iterable[str]) -> list[TemplateProblem]:
    problems: list[TemplateProblem] = []
    names = list(variables)
    if len(names) > MAX_VARIABLES:
        problems.append(TemplateProblem("variables", f"at most {MAX_VARIABLES} variables may be declared"))
    for name in names:
        if not VARIABLE_NAME.match(name):
            problems.append(TemplateProblem(
                "variables", f"{name!r} is not a valid variable name (letters, digits, _; starts with a letter)",
                variable=name,
            ))
    return problems


def validate_template(source: EmailTemplateSource) -> None:
    """Raise :class:`TemplateValidationError` unless the template may be stored.

    Checks, per source: syntax, forbidden constructs, undeclared variables, and finally a render with
    placeholder values so runtime refusals (unsafe access, too much work) are caught at save time too.
    Other runtime errors depend on the values (placeholders are text; a template may do arithmetic
    on a number) and are left to rendering.
    """
    problems = _check_variables(source.variables)
    declared = set(source.variables)
    for field in _FIELDS:
        text = getattr(source, field)
        try:
            tree = _parse(field, text)
        except TemplateValidationError as exc:
            problems += exc.problems
            continue
        try:
            undeclared = sorted(find_undeclared_variables(tree) - declared)
        except (TemplateSyntaxError, RecursionError) as exc:
            problems.append(TemplateProblem(field, f"the template cannot be compiled: {exc}"))
            continue
        if undeclared:
            problems += [TemplateProblem(field, f"undeclared variable {name!r}", variable=name) for name in undeclared]
            continue
        try:
            _render_one(field, text, placeholder_values(source.variables))
        except TemplateRefusedError as exc:
            problems.append(TemplateProblem(field, str(exc)))
        except TemplateRenderError:
            pass
    if problems:
        raise TemplateValidationError(problems)


def placeholder_values(variables: Iterable[str]) -> dict[str, str]:
    """Sample values for a preview: ``<name>`` per variable, which also shows the HTML escaping at work."""
    return {name: f"<{name}>" for name in variables}


def render_email(source: EmailTemplateSource, values: Mapping[str, object]) -> RenderedEmail:
    """Render a stored template; only declared variables reach it, missing ones render empty.

    Raises :class:`TemplateRefusedError` if the sandbox refuses it, :class:`TemplateRenderError` if
    the template fails with these values.
    """
    scoped = {name: values[name] for name in source.variables if name in values}
    subject = _render_one("subject", source.subject, scoped)
    return RenderedEmail(
        subject=" ".join(subject.splitlines()).strip(),
        body_html=_render_one("body_html", source.body_html, scoped),
        body_text=_render_one("body_text", source.body_text, scoped),
    )


def preview_email(source: EmailTemplateSource, samples: Mapping[str, str] | None = None) -> RenderedEmail:
    """Render with placeholder values, overridden by ``samples`` where given."""
    return render_email(source, {**placeholder_values(source.variables), **(samples or {})})
