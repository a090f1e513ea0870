"""Built-in email templates and the choice between them and an organisation's own."""

from __future__ import annotations

import pytest

from domain.email_defaults import (
    DEFAULT_TEMPLATES,
    ONBOARDING_REMINDER_DAY1,
    ONBOARDING_REMINDER_DAY3,
    PASSWORD_RESET,
    compose,
    reminder_key,
)
from domain.templates import EmailTemplateSource, TemplateRenderError, validate_template

REMINDER_VALUES = {"user_name": "Ana", "org_name": "Acme", "step_title": "Connect Kommo",
                   "step_hint": "Connect it.", "app_url": "https://acme.example/app"}


@pytest.mark.parametrize("key", sorted(DEFAULT_TEMPLATES))
def test_built_in_templates_pass_the_sandbox_rules(key: str) -> None:
    validate_template(DEFAULT_TEMPLATES[key])


def test_reset_email_carries_the_link_escaped_in_html() -> None:
    values = {"user_name": "<b>Eve</b>", "reset_url": "https://x.example/r?token=abc&x=1", "expires_minutes": 60,
              "org_name": "Acme"}
    email, custom = compose(PASSWORD_RESET, values)
    assert not custom
    assert "https://x.example/r?token=abc&x=1" in email.body_text
    assert "token=abc&amp;x=1" in email.body_html
    assert "&lt;b&gt;Eve&lt;/b&gt;" in email.body_html
    assert "60 minutes" in email.body_text


def test_an_organisations_template_wins_and_a_broken_one_falls_back() -> None:
    own = EmailTemplateSource(subject="Hi {{ user_name }}", body_html="", body_text="{{ app_url }}",
                              variables=("user_name", "app_url"))
    email, custom = compose(ONBOARDING_REMINDER_DAY1, REMINDER_VALUES, own)
    assert custom
    assert email.subject == "Hi Ana"
    broken = EmailTemplateSource(subject="{{ user_name + 1 }}", body_html="", body_text="", variables=("user_name",))
    email, custom = compose(ONBOARDING_REMINDER_DAY1, REMINDER_VALUES, broken)
    assert not custom
    assert email.subject == "Acme: next step, Connect Kommo"


def test_a_key_without_a_default_needs_a_working_template() -> None:
    broken = EmailTemplateSource(subject="{{ n + 1 }}", body_html="", body_text="", variables=("n",))
    with pytest.raises(TemplateRenderError):
        compose("custom_key", {"n": "x"}, broken)
    with pytest.raises(KeyError):
        compose("custom_key", {})


def test_reminder_keys_by_day() -> None:
    assert reminder_key(1) == ONBOARDING_REMINDER_DAY1
    assert reminder_key(3) == ONBOARDING_REMINDER_DAY3
