"""Built-in email templates and the rule for choosing between them and an organisation's own. Pure.

Every system email has a template ``key``. An organisation may store its own template under that key
(the email-template module, sandboxed by :mod:`domain.templates`); if it has none, or its template
fails to render with the values given, the built-in default below is used, so a broken custom
template can never stop a password reset or a reminder from going out.
"""

from __future__ import annotations

from collections.abc import Mapping

from domain.templates import EmailTemplateSource, RenderedEmail, TemplateRenderError, render_email

PASSWORD_RESET = "password_reset"
ONBOARDING_REMINDER_DAY1 = "onboarding_reminder_day1"
ONBOARDING_REMINDER_DAY3 = "onboarding_reminder_day3"

_REMINDER_VARIABLES = ("user_name", "org_name", "step_title", "step_hint", "app_url")

DEFAULT_TEMPLATES: dict[str, EmailTemplateSource] = {
    PASSWORD_RESET: EmailTemplateSource(
        subject="Reset your salesflow password",
        body_text=(
            "Hello {{ user_name | default('there', true) }},\n\n"
            "Someone (hopefully you) asked to reset the password of your salesflow account.\n"
            "Open this link to choose a new one; it works once and expires in {{ expires_minutes }} minutes:\n\n"
            "{{ reset_url }}\n\n"
            "If you did not ask for this, ignore this email: your password stays as it is.\n"
        ),
        body_html=(
            "<p>Hello {{ user_name | default('there', true) }},</p>"
            "<p>Someone (hopefully you) asked to reset the password of your salesflow account.</p>"
            "<p><a href=\"{{ reset_url }}\">Choose a new password</a>. The link works once and expires in "
            "{{ expires_minutes }} minutes.</p>"
            "<p>If you did not ask for this, ignore this email: your password stays as it is.</p>"
        ),
        variables=("user_name", "reset_url", "expires_minutes", "org_name"),
    ),
    ONBOARDING_REMINDER_DAY1: EmailTemplateSource(
        subject="{{ org_name }}: next step, {{ step_title }}",
        body_text=(
            "Hello {{ user_name | default('there', true) }},\n\n"
            "You are one step closer to a live sales agent for {{ org_name }}.\n"
            "Next: {{ step_title }}. {{ step_hint }}\n\n"
            "Continue here: {{ app_url }}\n"
        ),
        body_html=(
            "<p>Hello {{ user_name | default('there', true) }},</p>"
            "<p>You are one step closer to a live sales agent for {{ org_name }}.</p>"
            "<p>Next: <strong>{{ step_title }}</strong>. {{ step_hint }}</p>"
            "<p><a href=\"{{ app_url }}\">Continue setting up</a></p>"
        ),
        variables=_REMINDER_VARIABLES,
    ),
    ONBOARDING_REMINDER_DAY3: EmailTemplateSource(
        subject="{{ org_name }}: your sales agent is waiting for {{ step_title }}",
        body_text=(
            "Hello {{ user_name | default('there', true) }},\n\n"
            "Setting up {{ org_name }} has been paused at: {{ step_title }}. {{ step_hint }}\n"
            "If something is in the way, reply to this email and we will help.\n\n"
            "Continue here: {{ app_url }}\n"
        ),
        body_html=(
            "<p>Hello {{ user_name | default('there', true) }},</p>"
            "<p>Setting up {{ org_name }} has been paused at: <strong>{{ step_title }}</strong>. "
            "{{ step_hint }}</p>"
            "<p>If something is in the way, reply to this email and we will help.</p>"
            "<p><a href=\"{{ app_url }}\">Continue setting up</a></p>"
        ),
        variables=_REMINDER_VARIABLES,
    ),
}

# What each onboarding step asks of the user, for reminder emails (keyed by the step's value).
STEP_COPY: dict[str, tuple[str, str]] = {
    "account_created": ("Create your account", "Finish signing up."),
    "kommo_connected": ("Connect Kommo", "Connect your Kommo account so the agent can see your leads."),
    "pipelines_synced": ("Sync your pipelines", "We are importing your Kommo pipelines."),
    "agent_created": ("Create your first agent", "Describe your company and product; we draft the agent for you."),
    "agent_live": ("Switch your agent on", "Review the draft agent and activate it to start working your leads."),
}


def reminder_key(day: int) -> str:
    """Template key of the onboarding reminder sent ``day`` days into a stalled step."""
    return ONBOARDING_REMINDER_DAY1 if day <= 1 else ONBOARDING_REMINDER_DAY3


def compose(
    key: str, values: Mapping[str, object], custom: EmailTemplateSource | None = None
) -> tuple[RenderedEmail, bool]:
    """Render ``key`` with the organisation's template if it renders, else the built-in default.

    Returns the message and whether the custom template was used. Raises ``KeyError`` for a key with
    no built-in default and no custom template.
    """
    if custom is not None:
        try:
            return render_email(custom, values), True
        except TemplateRenderError:
            if key not in DEFAULT_TEMPLATES:
                raise
    return render_email(DEFAULT_TEMPLATES[key], values), False
