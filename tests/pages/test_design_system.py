"""
The design system's parts (apps/users/templatetags/ui.py, templates/app/components/) and the
front-end packages from npm (config/frontend.py): present, missing, or left out of collectstatic.
"""

from __future__ import annotations

import json
import re

import pytest
from django import forms
from django.contrib.staticfiles import finders
from django.core import checks
from django.core.paginator import Paginator
from django.template import Context, RequestContext, Template
from django.test import Client, RequestFactory

from config.frontend import NodePackagesFinder

HTMX = "vendor/htmx/htmx.min.js"


def render(source: str, **context) -> str:
    request = context.pop("request", None)
    bound = RequestContext(request, context) if request else Context(context)
    return Template("{% load ui %}" + source).render(bound)


@pytest.fixture
def fresh_finders():
    """Finders are built once per process; a test that changes what they see rebuilds them."""
    finders.get_finder.cache_clear()
    yield
    finders.get_finder.cache_clear()


@pytest.fixture
def packages_missing(settings, tmp_path, fresh_finders):
    """As before `npm ci`: the folders the finder serves from do not exist (nor anything collected)."""
    settings.NPM_STATIC = {"vendor/htmx": tmp_path / "node_modules" / "htmx.org" / "dist"}
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    return settings.NPM_STATIC


# --- Front-end packages -----------------------------------------------------------------------


def test_htmx_from_node_modules_is_served_as_a_static_file(db, client: Client) -> None:
    assert finders.find(HTMX), "node_modules is missing: run `npm ci`"
    response = client.get(f"/static/{HTMX}")

    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"htmx" in body[:2000]


def test_pages_load_htmx_when_it_is_installed(db, client: Client) -> None:
    html = client.get("/accounts/login/").content.decode()
    assert f'<script src="/static/{HTMX}" defer></script>' in html


def test_without_the_packages_a_page_still_renders_and_the_check_says_what_to_run(
    db, client: Client, packages_missing
) -> None:
    response = client.get("/accounts/login/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "htmx" not in html
    assert 'href="/static/css/app.css"' in html  # our own styles are in the repository

    warnings = [message for message in checks.run_checks() if message.id == "frontend.W001"]
    assert len(warnings) == 1
    assert str(packages_missing["vendor/htmx"]) in warnings[0].msg
    assert "npm ci" in warnings[0].hint


def test_the_check_is_silent_when_the_packages_are_installed(fresh_finders) -> None:
    assert NodePackagesFinder().check() == []
    assert not [message for message in checks.run_checks() if message.id == "frontend.W001"]


def test_a_collectstatic_without_the_packages_leaves_pages_working_in_production(
    db, client: Client, settings, tmp_path, fresh_finders
) -> None:
    # Production's manifest storage raises for a file it did not collect; the page must not.
    root = tmp_path / "staticfiles"
    root.mkdir()
    paths = {"css/app.css": "css/app.0123456789ab.css", "js/ui.js": "js/ui.0123456789ab.js"}
    (root / "staticfiles.json").write_text(json.dumps({"paths": paths, "version": "1.1", "hash": "x"}))
    settings.STATIC_ROOT = root
    settings.DEBUG = False
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }

    response = client.get("/accounts/login/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/static/css/app.0123456789ab.css"' in html
    assert "htmx" not in html


# --- Navigation -------------------------------------------------------------------------------


def test_a_link_to_a_page_not_built_yet_is_a_disabled_item() -> None:
    html = render('{% nav_link "workflows:no_such_page" "Workflows" %}')
    assert html == (
        '<span class="nav-link is-disabled" aria-disabled="true" title="Coming soon">'
        "Workflows <small>soon</small></span>"
    )


def test_a_link_is_marked_current_on_its_own_page_only() -> None:
    on_profile = RequestFactory().get("/accounts/profile/")
    on_profile.resolver_match = type("Match", (), {"view_name": "users:profile"})()

    assert render('{% nav_link "users:profile" "Account" %}', request=on_profile) == (
        '<a class="nav-link" href="/accounts/profile/" aria-current="page">Account</a>'
    )
    assert render('{% nav_link "executions:dashboard" "Dashboard" %}', request=on_profile) == (
        '<a class="nav-link" href="/">Dashboard</a>'
    )


def test_optional_url_is_empty_for_a_missing_route() -> None:
    assert render('{% optional_url "users:profile" as url %}[{{ url }}]') == "[/accounts/profile/]"
    assert render('{% optional_url "billing:nowhere" as url %}[{{ url }}]') == "[]"


# --- Components -------------------------------------------------------------------------------


def test_a_component_renders_its_template_with_values_and_content() -> None:
    html = render(
        '{% component "app/components/card.html" id="usage" title=heading %}<p>{{ body }}</p>{% endcomponent %}',
        heading="Usage & limits",
        body="<b>escaped</b>",
    )
    assert '<section class="card" id="usage" aria-labelledby="usage-title">' in html
    assert '<h2 id="usage-title">Usage &amp; limits</h2>' in html
    assert "<p>&lt;b&gt;escaped&lt;/b&gt;</p>" in html


def test_an_empty_component_slot_leaves_out_its_wrapper() -> None:
    html = render('{% component "app/components/page_header.html" title="Runs" %}  {% endcomponent %}')
    assert "<h1>Runs</h1>" in html
    assert "page-actions" not in html


def test_a_component_without_a_template_name_is_refused_at_parse_time() -> None:
    from django.template import TemplateSyntaxError

    with pytest.raises(TemplateSyntaxError, match="needs the component's template name"):
        render("{% component %}{% endcomponent %}")
    with pytest.raises(TemplateSyntaxError, match="only key=value"):
        render('{% component "app/components/card.html" loose %}{% endcomponent %}')


def test_a_status_badge_carries_the_status_and_its_label() -> None:
    html = render('{% include "app/components/status_badge.html" with status="timed_out" label="Timed out" %}')
    assert html.strip() == '<span class="badge is-timed_out">Timed out</span>'


class ExampleForm(forms.Form):
    name = forms.CharField(max_length=5, help_text="Five letters at most.")
    notify = forms.BooleanField(required=False)


def test_a_failed_form_keeps_what_was_typed_and_shows_errors_beside_the_field() -> None:
    form = ExampleForm(data={"name": "much too long", "notify": "on"})
    assert not form.is_valid()

    html = render('{% include "app/components/form_fields.html" %}', form=form)

    field = re.search(r'<div class="field has-error">(.*?)</div>\s*(?=<div class="field|$)', html, re.S).group(1)
    assert 'value="much too long"' in field
    assert 'aria-invalid="true"' in field
    assert 'aria-describedby="id_name_helptext id_name_error"' in field
    assert '<div class="helptext" id="id_name_helptext">Five letters at most.</div>' in field
    assert re.search(r'<ul class="errorlist" id="id_name_error"><li>Ensure this value has at most 5', field)
    assert re.search(r'<div class="field is-check">\s*<input type="checkbox" name="notify"[^>]* checked', html)


def test_pagination_keeps_the_other_query_parameters() -> None:
    page = Paginator(list(range(50)), 10).page(2)
    request = RequestFactory().get("/runs/", {"status": "failed", "page": "2"})

    html = render('{% include "app/components/pagination.html" %}', page_obj=page, request=request)

    assert "Page 2 of 5" in html
    assert 'rel="prev" href="?status=failed&amp;page=1"' in html
    assert 'rel="next" href="?status=failed&amp;page=3"' in html


def test_a_single_page_needs_no_pagination() -> None:
    page = Paginator(list(range(5)), 10).page(1)
    assert render('{% include "app/components/pagination.html" %}', page_obj=page).strip() == ""


# --- Numbers ----------------------------------------------------------------------------------


def points(svg: str) -> list[tuple[float, float]]:
    line = re.search(r'class="sparkline-line" points="([^"]+)"', svg).group(1)
    return [tuple(float(n) for n in point.split(",")) for point in line.split()]


def test_a_sparkline_scales_to_its_peak_and_is_labelled_for_screen_readers() -> None:
    svg = render("{% sparkline values label %}", values=[0, 5, 10, 5], label="Credits <per day>")

    assert 'role="img" aria-label="Credits &lt;per day&gt;"' in svg
    ys = [y for _, y in points(svg)]
    assert ys[2] == min(ys)  # the peak at the top
    assert ys[0] == max(ys)  # zero at the bottom
    assert ys[1] == ys[3] == pytest.approx((ys[0] + ys[2]) / 2, abs=0.1)  # half the peak, half-way up
    xs = [x for x, _ in points(svg)]
    assert xs == sorted(set(xs))  # left to right, one point per value
    assert len(xs) == 4


def test_a_sparkline_of_nothing_is_a_flat_line() -> None:
    for values in ([0, 0, 0], []):
        ys = {y for _, y in points(render("{% sparkline values 'none' %}", values=values))}
        assert len(ys) == 1


@pytest.mark.parametrize(
    ("milliseconds", "shown"),
    [(None, "—"), (0, "0 ms"), (850, "850 ms"), (12_400, "12.4 s"), (185_000, "3 min 5 s"), (7_380_000, "2 h 3 min")],
)
def test_durations_read_naturally(milliseconds: int | None, shown: str) -> None:
    assert render("{{ value|duration }}", value=milliseconds) == shown
