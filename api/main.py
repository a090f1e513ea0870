"""ASGI entry point for uvicorn: ``uvicorn api.main:app``."""

from api.app import create_app
from salesflow.settings import get_settings

app = create_app(get_settings())
