"""Text templates for prompts, URLs and the template node: Jinja2's sandbox, bounded."""

from __future__ import annotations

import contextvars
import functools
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEMPLATE_CHARS = 20_000
MAX_OUTPUT_CHARS = 1_000_000
MAX_ITERATIONS = 100_000

_iterations: contextvars.ContextVar[int] = contextvars.ContextVar("template_iterations", default=0)


class TemplateProblem(ValueError):
    """The template cannot be parsed or rendered; the message is for the user."""


def _bounded_range(*args: int) -> range:
    # The sandbox caps one range(); this caps them all together, so nested loops cannot spin for minutes.
    values = range(*args)
    used = _iterations.get() + len(values)
    if used > MAX_ITERATIONS:
        raise TemplateProblem(f"the template loops more than {MAX_ITERATIONS} times")
    _iterations.set(used)
    return values


_environment = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_environment.globals = {"range": _bounded_range, "dict": dict, "lipsum": None}


@functools.lru_cache(maxsize=1024)
def _parse(source: str) -> nodes.Template:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateProblem(f"the template is longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        return _environment.parse(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise TemplateProblem(f"template syntax error{where}: {exc.message or exc}") from exc


def check(source: str) -> None:
    _parse(source)


def variables(source: str) -> set[str]:
    """Names the template reads from its inputs (globals such as range excluded)."""
    return set(meta.find_undeclared_variables(_parse(source))) - set(_environment.globals)


@functools.lru_cache(maxsize=1024)
def _compiled(source: str) -> Template:
    # Compiling a template to Python code costs far more than rendering it; published graphs repeat.
    return _environment.from_string(_parse(source))


def render(source: str, values: dict[str, Any]) -> str:
    template = _compiled(source)
    token = _iterations.set(0)
    try:
        text = template.render(**values)
    except TemplateProblem:
        raise
    except TemplateError as exc:
        raise TemplateProblem(f"template error: {exc.message or exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateProblem(f"template error: {exc}") from exc
    finally:
        _iterations.reset(token)
    if len(text) > MAX_OUTPUT_CHARS:
        raise TemplateProblem(f"the template produced more than {MAX_OUTPUT_CHARS} characters")
    return text
