"""The caller's own account, and the settings of the organisation they are signed in to."""

from __future__ import annotations

import uuid
from datetime import date, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Principal
from api.errors import BadRequest, Unauthorized
from api.schemas.account import (
    END_OF_DAY,
    WEEKDAYS,
    AccountRead,
    OrganizationSettingsRead,
    OrganizationSummary,
    TimeSlot,
    WeekHours,
)
from api.security import hash_password, verify_password
from db.models import Membership, Organization, User
from db.repositories.accounts import OrganizationRepository, RefreshTokenRepository, UserRepository
from domain.schedule import BusinessHours


class AccountService:
    """Read and change the signed-in user."""

    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.principal = principal
        self.users = UserRepository(session)
        self.orgs = OrganizationRepository(session)
        self.tokens = RefreshTokenRepository(session)
        self.session = session

    async def _load(self) -> tuple[User, Membership, Organization]:
        # The token may outlive the account or the membership; the database has the last word.
        user = await self.users.get(self.principal.user_id)
        membership = await self.users.get_membership(self.principal.org_id, self.principal.user_id)
        org = await self.orgs.get(self.principal.org_id)
        if user is None or not user.is_active or membership is None or org is None:
            raise Unauthorized("This account is no longer active.")
        return user, membership, org

    async def get(self) -> AccountRead:
        """The caller with their current role (from the membership, not the token) and organisation."""
        user, membership, org = await self._load()
        return AccountRead(
            id=user.id, email=user.email, full_name=user.full_name, role=membership.role,
            org=OrganizationSummary.model_validate(org),
        )

    async def update(self, changes: dict[str, Any]) -> AccountRead:
        """Change the name and/or password; a wrong current password is a 400 and changes nothing.

        A new password revokes every refresh token of the user, so other devices must sign in again
        (access tokens already issued expire on their own shortly).
        """
        user, _, _ = await self._load()
        if "new_password" in changes:
            if not verify_password(user.password_hash, changes["current_password"]):
                raise BadRequest(
                    "The current password is not correct.",
                    errors=[{"field": "body.current_password", "message": "is not correct"}],
                )
            user.password_hash = hash_password(changes["new_password"])
            await self.tokens.revoke_all_for_user(user.id)
        if "full_name" in changes:
            user.full_name = changes["full_name"]
        await self.session.flush()
        return await self.get()


# Organization.business_hours holds what domain.schedule.BusinessHours reads as ``days``: weekday
# "0".."6" (Mon..Sun) -> [{"start", "end"}], so sequences rebuild the window with
# BusinessHours(days=org.business_hours, holidays=org.holidays). The API's 24:00 is time.max there.
_STORED_END_OF_DAY = time.max.isoformat()


def _week_to_storage(week: WeekHours) -> dict[str, Any]:
    stored = {
        str(index): [
            {"start": slot.start, "end": _STORED_END_OF_DAY if slot.end == END_OF_DAY else slot.end}
            for slot in getattr(week, day)
        ]
        for index, day in enumerate(WEEKDAYS)
    }
    BusinessHours(days=stored)  # the schema checked the same rules; this proves the domain agrees
    return stored


def _clock(value: time) -> str:
    return END_OF_DAY if value == time.max else value.strftime("%H:%M")


def _week_from_storage(stored: dict[str, Any]) -> WeekHours:
    # An organisation that never set hours gets the domain default (Mon-Fri 09:00-18:00), which is
    # also what sequences fall back to, so what the settings page shows is what sending will use.
    hours = BusinessHours(days=stored) if stored else BusinessHours.default()
    return WeekHours(**{
        day: [TimeSlot(start=_clock(r.start), end=_clock(r.end)) for r in hours.ranges_on(index)]
        for index, day in enumerate(WEEKDAYS)
    })


class OrganizationSettingsService:
    """Name, time zone, locale, default business hours and holidays of one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.orgs = OrganizationRepository(session)
        self.org_id = org_id
        self.session = session

    async def _org(self) -> Organization:
        org = await self.orgs.get(self.org_id)
        if org is None:
            raise Unauthorized("This organisation no longer exists.")
        return org

    @staticmethod
    def _read(org: Organization) -> OrganizationSettingsRead:
        return OrganizationSettingsRead(
            name=org.name, time_zone=org.time_zone, locale=org.locale,
            business_hours=_week_from_storage(org.business_hours),
            holidays=sorted({date.fromisoformat(d) for d in org.holidays}),
        )

    async def get(self) -> OrganizationSettingsRead:
        """The current settings."""
        return self._read(await self._org())

    async def update(self, changes: dict[str, Any]) -> OrganizationSettingsRead:
        """Apply a partial update; hours and holidays replace the stored week / list when sent."""
        org = await self._org()
        for key in ("name", "time_zone", "locale"):
            if key in changes:
                setattr(org, key, changes[key])
        if "business_hours" in changes:
            org.business_hours = _week_to_storage(WeekHours.model_validate(changes["business_hours"]))
        if "holidays" in changes:
            org.holidays = [d.isoformat() for d in changes["holidays"]]
        await self.session.flush()
        return self._read(org)
