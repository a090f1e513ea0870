"""Repositories: all SQL lives here, and every tenant query is scoped by ``org_id``."""
