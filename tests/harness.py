"""Test harness pieces that are not fixtures: tenants, route recording, the coverage gate."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.security import AccessClaims, hash_password, issue_access_token
from db.models import Membership, Organization, Role, User
from salesflow.settings import Settings

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

EXEMPTIONS_FILE = Path(__file__).parent / "route_coverage_exemptions.txt"
# One password hash for every test user: argon2 is deliberately slow.
TEST_PASSWORD = "correct horse battery"
_TEST_PASSWORD_HASH = hash_password(TEST_PASSWORD)


@dataclass
class Tenant:
    """An organisation with one signed-in user, ready to call the API."""

    org_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    role: Role
    token: str
    headers: dict[str, str] = field(default_factory=dict)


async def create_tenant(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, *, role: Role = Role.owner,
    org_id: uuid.UUID | None = None, platform_admin: bool = False,
) -> Tenant:
    """A committed organisation (new unless ``org_id`` is given) and a user with ``role`` in it."""
    suffix = uuid.uuid4().hex[:12]
    async with sessions() as session:
        if org_id is None:
            org = Organization(name=f"Org {suffix}", slug=f"org-{suffix}", time_zone="Europe/Berlin")
            session.add(org)
            await session.flush()
            org_id = org.id
        user = User(email=f"user-{suffix}@example.com", password_hash=_TEST_PASSWORD_HASH,
                    full_name="Test User", is_platform_admin=platform_admin)
        session.add(user)
        await session.flush()
        session.add(Membership(org_id=org_id, user_id=user.id, role=role))
        await session.commit()
    token = issue_access_token(AccessClaims(user.id, org_id, role.value), settings.jwt_secret, 3600)
    return Tenant(org_id, user.id, user.email, role, token, {"Authorization": f"Bearer {token}"})


class RouteRecorder:
    """ASGI wrapper noting which (method, route template) pairs the tests reached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: set[tuple[str, str]] = set()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
        route = scope.get("route")
        if scope.get("type") == "http" and route is not None:
            self.seen.add((scope["method"].upper(), route.path))


def openapi_operations(openapi: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (METHOD, path) the app documents."""
    methods = {"get", "post", "put", "patch", "delete"}
    return {(m.upper(), path) for path, item in openapi["paths"].items() for m in item if m in methods}


def read_exemptions() -> dict[tuple[str, str], str]:
    """``METHOD /path  reason`` lines; an exemption without a written reason is an error."""
    exemptions: dict[tuple[str, str], str] = {}
    if not EXEMPTIONS_FILE.exists():
        return exemptions
    for line in EXEMPTIONS_FILE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        method, path, *reason = line.split(maxsplit=2)
        if not reason or not reason[0].strip():
            raise ValueError(f"route exemption without a reason: {line}")
        exemptions[(method.upper(), path)] = reason[0]
    return exemptions
