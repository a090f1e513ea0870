"""Pydantic models of the Kommo API v4 / OAuth / amojo payloads that salesflow reads.

Only the fields we use are declared; everything else Kommo sends is ignored (``extra="ignore"``)
so a new Kommo field never breaks parsing. HAL ``_embedded`` is exposed as ``embedded``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

WON_STATUS_ID = 142
LOST_STATUS_ID = 143


class KommoModel(BaseModel):
    """Base: ignore unknown fields, allow both field names and aliases (``_embedded``)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Tag(KommoModel):
    """A tag (id may be absent when we create one by name)."""

    id: int | None = None
    name: str
    color: str | None = None


class CustomFieldValueItem(KommoModel):
    """One value of a custom field; ``enum_id``/``enum_code`` for select and multitext fields."""

    value: Any = None
    enum_id: int | None = None
    enum_code: str | None = None


class CustomFieldValue(KommoModel):
    """A custom field value block on an entity (``custom_fields_values[]``)."""

    field_id: int
    field_name: str | None = None
    field_code: str | None = None
    field_type: str | None = None
    values: list[CustomFieldValueItem] = Field(default_factory=list)


class EntityLink(KommoModel):
    """A linked entity reference inside ``_embedded`` (e.g. a lead's contacts)."""

    id: int
    is_main: bool | None = None


class LeadEmbedded(KommoModel):
    """A lead's ``_embedded``: tags always, contacts only with ``with=contacts``."""

    tags: list[Tag] = Field(default_factory=list)
    contacts: list[EntityLink] = Field(default_factory=list)
    companies: list[EntityLink] = Field(default_factory=list)


class Lead(KommoModel):
    """A Kommo lead (deal)."""

    id: int
    name: str = ""
    price: int | None = None
    status_id: int
    pipeline_id: int
    responsible_user_id: int | None = None
    loss_reason_id: int | None = None
    created_at: int | None = None
    updated_at: int | None = None
    closed_at: int | None = None
    is_deleted: bool = False
    account_id: int | None = None
    custom_fields_values: list[CustomFieldValue] | None = None
    embedded: LeadEmbedded = Field(default_factory=LeadEmbedded, alias="_embedded")

    @property
    def tags(self) -> list[str]:
        """Tag names."""
        return [t.name for t in self.embedded.tags]

    @property
    def contact_ids(self) -> list[int]:
        """Linked contact ids (main contact first), present when fetched ``with=contacts``."""
        return [c.id for c in sorted(self.embedded.contacts, key=lambda c: not c.is_main)]

    @property
    def is_won(self) -> bool:
        """Closed as won (status 142)."""
        return self.status_id == WON_STATUS_ID

    @property
    def is_lost(self) -> bool:
        """Closed as lost (status 143)."""
        return self.status_id == LOST_STATUS_ID


class LeadsPage(KommoModel):
    """One page of ``GET /api/v4/leads`` (204 is an empty page)."""

    items: list[Lead] = Field(default_factory=list)
    page: int = 1
    has_next: bool = False


class UpdatedEntity(KommoModel):
    """What Kommo answers to an update: id and new ``updated_at``."""

    id: int
    updated_at: int | None = None


class Status(KommoModel):
    """A pipeline stage. Type 0 = regular, 1 = incoming (unsorted). 142 won, 143 lost."""

    id: int
    name: str
    sort: int = 0
    type: int = 0
    color: str | None = None
    pipeline_id: int | None = None
    is_editable: bool = True


class PipelineEmbedded(KommoModel):
    """A pipeline's ``_embedded``."""

    statuses: list[Status] = Field(default_factory=list)


class Pipeline(KommoModel):
    """A lead pipeline with its statuses."""

    id: int
    name: str
    sort: int = 0
    is_main: bool = False
    is_unsorted_on: bool = False
    is_archive: bool = False
    account_id: int | None = None
    embedded: PipelineEmbedded = Field(default_factory=PipelineEmbedded, alias="_embedded")

    @property
    def statuses(self) -> list[Status]:
        """Statuses ordered by ``sort``."""
        return sorted(self.embedded.statuses, key=lambda s: s.sort)


class ContactEmbedded(KommoModel):
    """A contact's ``_embedded``."""

    tags: list[Tag] = Field(default_factory=list)
    leads: list[EntityLink] = Field(default_factory=list)


class Contact(KommoModel):
    """A Kommo contact; phones/emails live in the PHONE/EMAIL multitext custom fields."""

    id: int
    name: str = ""
    first_name: str | None = None
    last_name: str | None = None
    responsible_user_id: int | None = None
    created_at: int | None = None
    updated_at: int | None = None
    custom_fields_values: list[CustomFieldValue] | None = None
    embedded: ContactEmbedded = Field(default_factory=ContactEmbedded, alias="_embedded")

    def field_values(self, field_code: str) -> list[str]:
        """String values of the custom field with this ``field_code`` (e.g. PHONE, EMAIL)."""
        out: list[str] = []
        for field in self.custom_fields_values or []:
            if field.field_code == field_code:
                out.extend(str(v.value) for v in field.values if v.value not in (None, ""))
        return out

    @property
    def phones(self) -> list[str]:
        """Phone numbers (PHONE field)."""
        return self.field_values("PHONE")

    @property
    def emails(self) -> list[str]:
        """E-mail addresses (EMAIL field)."""
        return self.field_values("EMAIL")


class CrmUser(KommoModel):
    """A Kommo user (manager) of the account."""

    id: int
    name: str = ""
    email: str | None = None
    lang: str | None = None
    rights: dict[str, Any] = Field(default_factory=dict)


class CustomFieldEnum(KommoModel):
    """An option of a select/multiselect field."""

    id: int
    value: str
    sort: int = 0


class CustomField(KommoModel):
    """A custom field definition."""

    id: int
    name: str
    type: str
    code: str | None = None
    sort: int = 0
    is_api_only: bool = False
    entity_type: str | None = None
    enums: list[CustomFieldEnum] | None = None


class Note(KommoModel):
    """A note on an entity; creation answers only id/entity_id."""

    id: int
    entity_id: int | None = None
    note_type: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: int | None = None
    created_by: int | None = None


class Task(KommoModel):
    """A task; creation answers only its id."""

    id: int
    entity_id: int | None = None
    entity_type: str | None = None
    text: str | None = None
    complete_till: int | None = None
    task_type_id: int | None = None
    is_completed: bool = False
    responsible_user_id: int | None = None


class Account(KommoModel):
    """The Kommo account (``GET /api/v4/account``); ``amojo_id`` with ``with=amojo_id``."""

    id: int
    name: str = ""
    subdomain: str
    country: str | None = None
    currency: str | None = None
    current_user_id: int | None = None
    created_at: int | None = None
    amojo_id: str | None = None


class TokenPair(KommoModel):
    """OAuth token response. The refresh token is single-use: persist the new pair atomically."""

    token_type: str = "Bearer"
    expires_in: int
    access_token: str
    refresh_token: str

    def expires_at(self, issued_at: float) -> float:
        """Unix time the access token expires, given when it was issued."""
        return issued_at + self.expires_in


class AmojoMessageResult(KommoModel):
    """amojo's answer to ``new_message``: ids on both sides."""

    conversation_id: str | None = None
    sender_id: str | None = None
    receiver_id: str | None = None
    msgid: str
    ref_id: str | None = None


class ChatParticipant(KommoModel):
    """Sender/receiver of an amojo message. ``id`` is our id; ``ref_id`` Kommo's (bot/user amojo id)."""

    id: str
    name: str | None = None
    ref_id: str | None = None
    avatar: str | None = None
    profile: dict[str, Any] | None = None
