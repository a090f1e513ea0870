"""Platform-operator views; gated on User.is_platform_admin, which no token claim carries."""

from __future__ import annotations

import hmac
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import Forbidden, Unauthorized
from api.schemas.admin import AdminStatsRead
from api.security import decode_access_token
from db.repositories.accounts import UserRepository
from db.repositories.admin import PlatformStatsRepository
from salesflow.settings import Settings


class AdminService:
    """What platform operators may read across every tenant."""

    def __init__(self, session: AsyncSession) -> None:
        self.users = UserRepository(session)
        self.stats_repo = PlatformStatsRepository(session)

    async def require_platform_admin(self, user_id: uuid.UUID) -> None:
        """403 unless the user is an active platform operator (an org owner is not one)."""
        # Looked up on every request rather than put in the token: revoking the flag takes effect at
        # once, and a tenant token can never be minted into an operator one.
        user = await self.users.get(user_id)
        if user is None or not user.is_active or not user.is_platform_admin:
            raise Forbidden("Only platform administrators may see platform statistics.")

    async def stats(self, user_id: uuid.UUID) -> AdminStatsRead:
        """Counts of organisations, users, live agents and notifications, in total and per plan."""
        await self.require_platform_admin(user_id)
        return AdminStatsRead.model_validate(await self.stats_repo.counts())


async def require_operator(session: AsyncSession, settings: Settings, presented: str | None,
                           machine_token: str | None) -> None:
    """401/403 unless ``presented`` is the configured machine token (scraper, scheduler) or a platform
    administrator's access token."""
    if not presented:
        raise Unauthorized("Missing bearer token.")
    if machine_token is not None and hmac.compare_digest(presented.encode(), machine_token.encode()):
        return
    claims = decode_access_token(presented, settings.jwt_secret)
    if claims is None:
        raise Unauthorized("Invalid or expired token.")
    await AdminService(session).require_platform_admin(claims.user_id)
