"""
The design system's template tags (`{% load ui %}`), used by every app's pages.

- `{% component "app/components/card.html" title=… %}…{% endcomponent %}`: renders a component
  template with the given values and the enclosed markup as `content`.
- `{% optional_url "workflows:workflow_list" as url %}`: the URL, or "" while that page does not
  exist yet; `{% nav_link %}` builds on it, so navigation to a page that is still to come renders
  as a disabled item instead of a link that 404s, and lights up once the route is added.
- `{% vendor_script "vendor/htmx/htmx.min.js" %}`: a script tag for a file from npm, or nothing
  when the package is not installed (never a 500: see config/frontend.py).
- `{% sparkline values label %}`: a small inline SVG line chart drawn on the server.
- `|duration`: milliseconds as "850 ms", "12.4 s", "3 min 5 s".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import template
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

register = template.Library()


# --- Components -------------------------------------------------------------------------------


class ComponentNode(template.Node):
    def __init__(self, template_name: Any, values: dict[str, Any], nodelist: template.NodeList) -> None:
        self.template_name = template_name
        self.values = values
        self.nodelist = nodelist

    def render(self, context: template.Context) -> SafeString:
        values = {key: value.resolve(context) for key, value in self.values.items()}
        # Rendered by the template engine, so already escaped where it had to be. Only blank
        # becomes "", so that a component can leave out the wrapper of an empty slot.
        rendered = self.nodelist.render(context)
        content = rendered if rendered.strip() else ""
        component = context.template.engine.get_template(self.template_name.resolve(context))
        with context.push(**values, content=content):
            return component.render(context)


@register.tag
def component(parser: template.base.Parser, token: template.base.Token) -> ComponentNode:
    """`{% component "app/components/card.html" title=_("Usage") %}markup{% endcomponent %}`"""
    bits = token.split_contents()
    if len(bits) < 2:
        raise template.TemplateSyntaxError("'component' needs the component's template name.")
    template_name = parser.compile_filter(bits[1])
    values = template.base.token_kwargs(bits[2:], parser)
    if len(values) != len(bits) - 2:
        raise template.TemplateSyntaxError("'component' takes only key=value arguments after the template name.")
    nodelist = parser.parse(("endcomponent",))
    parser.delete_first_token()
    return ComponentNode(template_name, values, nodelist)


# --- Navigation -------------------------------------------------------------------------------


@register.simple_tag
def optional_url(name: str, *args: Any) -> str:
    """The URL named `name`, or "" while no such route exists."""
    try:
        return reverse(name, args=args or None)
    except NoReverseMatch:
        return ""


@register.simple_tag(takes_context=True)
def nav_link(context: template.Context, name: str, label: str, css_class: str = "nav-link") -> SafeString:
    """
    A link to the page named `name`, marked `aria-current="page"` on that page; while the page does
    not exist yet, a disabled item titled "Coming soon".
    """
    url = optional_url(name)
    if not url:
        return format_html(
            '<span class="{} is-disabled" aria-disabled="true" title="{}">{} <small>{}</small></span>',
            css_class,
            _("Coming soon"),
            label,
            _("soon"),
        )
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    current = match is not None and match.view_name == name
    if current:
        return format_html('<a class="{}" href="{}" aria-current="page">{}</a>', css_class, url, label)
    return format_html('<a class="{}" href="{}">{}</a>', css_class, url, label)


# --- Front-end packages -----------------------------------------------------------------------


def vendor_url(path: str) -> str | None:
    """The URL of a static file that comes from npm, or None when it is not installed."""
    if not (finders.find(path) or staticfiles_storage.exists(path)):
        return None
    try:
        return static(path)
    except ValueError:  # a manifest storage (production) whose collectstatic ran without the file
        return None


@register.simple_tag
def vendor_script(path: str) -> str:
    url = vendor_url(path)
    return format_html('<script src="{}" defer></script>', url) if url else ""


# --- Numbers ----------------------------------------------------------------------------------

SPARKLINE_WIDTH = 240
SPARKLINE_HEIGHT = 48
SPARKLINE_MARGIN = 3


@register.simple_tag
def sparkline(values: Sequence[int | float], label: str) -> SafeString:
    """
    `values` as a line over a filled area, scaled to its own maximum (a flat line at the bottom
    when all are zero); `label` is what a screen reader says instead of the picture.
    """
    values = list(values) or [0]
    peak = max(max(values), 0) or 1
    step = (SPARKLINE_WIDTH - 2 * SPARKLINE_MARGIN) / max(len(values) - 1, 1)
    usable = SPARKLINE_HEIGHT - 2 * SPARKLINE_MARGIN
    points = [
        (SPARKLINE_MARGIN + index * step, SPARKLINE_MARGIN + usable * (1 - max(value, 0) / peak))
        for index, value in enumerate(values)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    bottom = SPARKLINE_HEIGHT - SPARKLINE_MARGIN
    area = f"{points[0][0]:.1f},{bottom} {line} {points[-1][0]:.1f},{bottom}"
    return format_html(
        '<svg class="sparkline" viewBox="0 0 {w} {h}" preserveAspectRatio="none" role="img" aria-label="{label}">'
        "<title>{label}</title>"
        '<polygon class="sparkline-area" points="{area}"/>'
        '<polyline class="sparkline-line" points="{line}" fill="none" vector-effect="non-scaling-stroke"/>'
        "</svg>",
        w=SPARKLINE_WIDTH,
        h=SPARKLINE_HEIGHT,
        label=label,
        area=area,
        line=line,
    )


@register.filter
def duration(milliseconds: int | None) -> str:
    """850 -> "850 ms", 12_400 -> "12.4 s", 185_000 -> "3 min 5 s", 7_380_000 -> "2 h 3 min"; None -> "—"."""
    if milliseconds is None or milliseconds == "":
        return "—"
    milliseconds = int(milliseconds)
    if milliseconds < 1000:
        return _("%(ms)d ms") % {"ms": milliseconds}
    seconds = milliseconds / 1000
    if seconds < 60:
        return _("%(s).1f s") % {"s": seconds}
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return _("%(min)d min %(s)d s") % {"min": minutes, "s": seconds}
    hours, minutes = divmod(minutes, 60)
    return _("%(h)d h %(min)d min") % {"h": hours, "min": minutes}
