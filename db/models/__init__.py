"""All models, imported here so ``Base.metadata`` is complete for Alembic."""

from db.models.accounts import Membership, Organization, RefreshToken, Role, User
from db.models.agents import Agent, AgentStatus
from db.models.ops import RateLimitWindow

__all__ = [
    "Agent",
    "AgentStatus",
    "Membership",
    "Organization",
    "RateLimitWindow",
    "RefreshToken",
    "Role",
    "User",
]
