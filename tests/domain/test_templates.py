"""domain.templates: what the email sandbox accepts, refuses and how it renders."""

from __future__ import annotations

import pytest

from domain.templates import (
    EmailTemplateSource,
    TemplateRefusedError,
    TemplateValidationError,
    preview_email,
    render_email,
    validate_template,
)


def _source(
    html: str = "", text: str = "x", subject: str = "s", variables: tuple[str, ...] = ("name",)
) -> EmailTemplateSource:
    return EmailTemplateSource(subject=subject, body_html=html, body_text=text, variables=variables)


def _problems(source: EmailTemplateSource) -> list[str]:
    with pytest.raises(TemplateValidationError) as info:
        validate_template(source)
    return [p.message for p in info.value.problems]


@pytest.mark.parametrize(
    "html",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ name.__class__ }}",
        "{{ name['__class__'] }}",
        "{% if false %}{{ name.__init__ }}{% endif %}",  # checked even where a sample render never goes
        "{{ name|attr('__class__') }}",
        "{{ '{0.__class__}'.format(name) }}",
        "{% include 'x' %}",
        "{% extends 'base' %}",
        "{% import 'm' as m %}",
        "{{ name|safe }}",
        "{% autoescape false %}{{ name }}{% endautoescape %}",  # would switch HTML escaping off
        "{{ name.center(1000000000) }}",  # any call: the allocation would happen before a check
        "{{ '%1000000000s' % name }}",
        "{{ 'x' * 100001 }}",
        "{{ 2 ** 1000 }}",
        "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('a') }}",
        "{% for a in name recursive %}{{ loop(a) }}{% endfor %}",
        "{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}",
        # Nested loops over literals: 20**4 iterations; the step budget stops them.
        "".join(f"{{% for {v} in 'aaaaaaaaaaaaaaaaaaaa' %}}" for v in "abcd") + "{{ a }}" + "{% endfor %}" * 4,
        # Doubling a string 40 times: the value-size limit stops it long before memory runs out.
        "".join(f"{{% set v{i + 1} = v{i} ~ v{i} %}}" for i in range(40)).replace("v0", "name") + "{{ v40 }}",
    ],
)
def test_unsafe_or_unbounded_templates_are_refused(html: str) -> None:
    assert _problems(_source(html=html))


def test_undeclared_variables_are_named_and_globals_are_gone() -> None:
    with pytest.raises(TemplateValidationError) as info:
        validate_template(_source(html="{{ name }} {{ coupon }} {% for i in range %}{% endfor %}"))
    assert {(p.field, p.variable) for p in info.value.problems} == {("body_html", "coupon"), ("body_html", "range")}


def test_numeric_use_of_a_variable_is_valid_even_though_placeholders_are_text() -> None:
    source = _source(text="{% if name > 3 %}many{% endif %} {{ name + 1 }}")
    validate_template(source)  # does not raise
    assert render_email(source, {"name": 5}).body_text == "many 6"


def test_html_is_escaped_text_and_subject_are_not_and_subject_loses_line_breaks() -> None:
    source = _source(html="<p>{{ name }}</p>", text="Hi {{ name }}", subject="About {{ name }}")
    rendered = render_email(source, {"name": "<b>Ann</b>\r\nBcc: x@example.com"})
    assert rendered.body_html.startswith("<p>&lt;b&gt;Ann&lt;/b&gt;")
    assert rendered.body_text.startswith("Hi <b>Ann</b>")
    assert rendered.subject == "About <b>Ann</b> Bcc: x@example.com"


def test_only_declared_values_reach_the_template_and_missing_ones_render_empty() -> None:
    source = _source(text="[{{ name }}]")
    assert render_email(source, {"other": "x"}).body_text == "[]"


def test_preview_uses_placeholders_unless_samples_are_given() -> None:
    source = _source(html="{{ name }}", text="{{ name }}")
    assert preview_email(source).body_html == "&lt;name&gt;"
    assert preview_email(source, {"name": "Ann"}).body_text == "Ann"


def test_runtime_sandbox_violations_raise_instead_of_rendering_empty() -> None:
    # The attribute name only exists at render time, so no static check can see it.
    source = _source(text="[{{ name[key] }}]", variables=("name", "key"))
    validate_template(source)
    assert render_email(source, {"name": {"a": 1}, "key": "a"}).body_text == "[1]"
    with pytest.raises(TemplateRefusedError):
        render_email(source, {"name": "text", "key": "__class__"})


def test_work_is_bounded_at_render_time_too() -> None:
    source = _source(text="{% for a in name %}{% for b in name %}.{% endfor %}{% endfor %}")
    validate_template(source)  # the placeholder is short
    assert render_email(source, {"name": list(range(50))}).body_text == "." * 2500
    with pytest.raises(TemplateRefusedError):
        render_email(source, {"name": list(range(200))})  # 40,000 iterations


def test_declared_names_must_be_identifiers() -> None:
    assert _problems(_source(variables=("_secret", "ok", "1st")))[0].startswith("'_secret'")
