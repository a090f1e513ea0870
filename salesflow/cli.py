"""``salesflow`` command line: up, api, worker, migrate, makemigration, demo."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from salesflow.settings import get_settings

app = typer.Typer(help="salesflow: AI sales agents for Kommo on Temporal and PostgreSQL.", no_args_is_help=True)


@app.command()
def up() -> None:
    """Run everything locally: embedded Postgres and Temporal dev server when not configured, then worker + API."""
    from salesflow.launcher import run_stack

    run_stack(get_settings())


@app.command()
def api() -> None:
    """Serve the HTTP API against DATABASE_URL and TEMPORAL_ADDRESS."""
    import uvicorn

    settings = get_settings()
    uvicorn.run("api.main:app", host=settings.api_host, port=settings.api_port, proxy_headers=True)


@app.command()
def worker() -> None:
    """Run the Temporal worker against DATABASE_URL and TEMPORAL_ADDRESS."""
    from workers.main import run_worker

    asyncio.run(run_worker(get_settings()))


@app.command()
def migrate() -> None:
    """Apply database migrations to DATABASE_URL."""
    from db.migrate import upgrade

    settings = get_settings()
    if settings.database_url is None:
        raise typer.BadParameter("DATABASE_URL is not set")
    upgrade(settings.database_url)


@app.command()
def makemigration(
    message: str,
    rev_id: Annotated[str | None, typer.Option(help="Revision id, e.g. 0004")] = None,
    head: Annotated[str, typer.Option(help="Revision to base it on when there are several heads")] = "head",
) -> None:
    """Autogenerate a migration against a scratch embedded Postgres migrated to the current heads."""
    from alembic import command

    from db.migrate import alembic_config
    from salesflow.stack import EmbeddedPostgres, free_port

    with tempfile.TemporaryDirectory(prefix="salesflow-makemigration-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", free_port())
        server.start()
        try:
            cfg = alembic_config(server.url)
            command.upgrade(cfg, "heads")
            command.revision(
                cfg, message=message, autogenerate=True, rev_id=rev_id, head=head, splice=head != "head"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    app()
