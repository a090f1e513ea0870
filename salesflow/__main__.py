"""``python -m salesflow``."""

from salesflow.cli import app

app()
