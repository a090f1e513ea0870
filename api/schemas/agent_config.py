"""Bodies of the agent sub-resources: scripts, objections, knowledge, rules, fields, actions, channels, assets."""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    Field,
    FiniteFloat,
    HttpUrl,
    JsonValue,
    StringConstraints,
    computed_field,
    field_validator,
    model_validator,
)

from api.schemas.common import InputModel, PatchModel, ReadModel
from db.models import (
    ActionType,
    AssetKind,
    ChannelType,
    FieldType,
    KnowledgeKind,
    RuleKind,
    ScriptStage,
)

MAX_JSON_BYTES = 16 * 1024
MAX_RULES = 100
KOMMO_ID = Annotated[int, Field(ge=1, le=2**53)]  # Kommo ids are positive and fit a JS number.


def _bounded_json(value: dict[str, JsonValue]) -> dict[str, JsonValue]:
    try:
        encoded = json.dumps(value, allow_nan=False)
    except ValueError as exc:  # NaN/Infinity: valid Python, not valid JSON(B)
        raise ValueError("numbers must be finite") from exc
    if len(encoded.encode()) > MAX_JSON_BYTES:
        raise ValueError(f"must be at most {MAX_JSON_BYTES} bytes of JSON")
    return value


JsonObject = Annotated[dict[str, JsonValue], AfterValidator(_bounded_json)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ScriptMessage = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Position = Annotated[int, Field(ge=0, le=10_000)]


class _ChildRead(ReadModel):
    id: uuid.UUID
    agent_id: uuid.UUID
    created_at: datetime
    updated_at: datetime


# ---- scripts ---------------------------------------------------------------------------------


class ScriptCreate(InputModel):
    """A conversation stage; without ``position`` it goes after the last script."""

    stage: ScriptStage
    name: Name
    messages: list[ScriptMessage] = Field(min_length=1, max_length=20)
    position: Position | None = None
    is_active: bool = True


class ScriptUpdate(PatchModel):
    """Change any of a script's fields."""

    stage: ScriptStage | None = None
    name: Name | None = None
    messages: list[ScriptMessage] | None = Field(default=None, min_length=1, max_length=20)
    position: Position | None = None
    is_active: bool | None = None


class ScriptRead(_ChildRead):
    """A script as the API shows it."""

    stage: ScriptStage
    name: str
    messages: list[str]
    position: int
    is_active: bool


# ---- objections ------------------------------------------------------------------------------


class ObjectionCreate(InputModel):
    """An objection the agent should recognise and how to answer it."""

    objection: str = Field(min_length=1, max_length=2000)
    answer: str = Field(min_length=1, max_length=4000)
    trigger_phrases: list[Phrase] = Field(default_factory=list, max_length=50)
    category: str = Field(default="general", min_length=1, max_length=64)


class ObjectionRead(_ChildRead):
    """An objection as the API shows it."""

    objection: str
    answer: str
    trigger_phrases: list[str]
    category: str


# ---- knowledge -------------------------------------------------------------------------------

_KNOWLEDGE_FIELDS: dict[KnowledgeKind, frozenset[str]] = {
    KnowledgeKind.text: frozenset({"content"}),
    KnowledgeKind.faq: frozenset({"question", "answer"}),
    KnowledgeKind.document: frozenset({"title", "content"}),
}


class KnowledgeCreate(InputModel):
    """text: ``content``; faq: ``question`` + ``answer``; document: ``title`` + ``content``."""

    kind: KnowledgeKind
    title: str | None = Field(default=None, min_length=1, max_length=300)
    content: str | None = Field(default=None, min_length=1, max_length=100_000)
    question: str | None = Field(default=None, min_length=1, max_length=2000)
    answer: str | None = Field(default=None, min_length=1, max_length=20_000)
    tags: list[Tag] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _fields_match_kind(self) -> Self:
        wanted = _KNOWLEDGE_FIELDS[self.kind]
        given = {name for name in ("title", "content", "question", "answer") if getattr(self, name) is not None}
        if missing := sorted(wanted - given):
            raise ValueError(f"a {self.kind} entry needs {', '.join(missing)}")
        if extra := sorted(given - wanted):
            raise ValueError(f"a {self.kind} entry does not take {', '.join(extra)}")
        return self


class KnowledgeRead(_ChildRead):
    """A knowledge entry; ``rank`` is set only in search results (higher is more relevant)."""

    kind: KnowledgeKind
    title: str | None
    content: str | None
    question: str | None
    answer: str | None
    tags: list[str]
    rank: float | None = None


# ---- rules -----------------------------------------------------------------------------------


class MaxLengthParameters(InputModel):
    """Parameters of a max_length rule."""

    max_chars: int = Field(ge=1, le=10_000)


class RuleItem(InputModel):
    """One rule, as sent in a create or in the list of a full replace."""

    kind: RuleKind
    instruction: str = Field(min_length=1, max_length=2000)
    parameters: JsonObject = Field(default_factory=dict)
    enabled: bool = True

    @model_validator(mode="after")
    def _parameters_fit_kind(self) -> Self:
        # Only max_length is machine-enforced, so only its parameters have a fixed shape.
        if self.kind == RuleKind.max_length:
            MaxLengthParameters.model_validate(self.parameters)
        return self


class RuleCreate(RuleItem):
    """A new rule; without ``position`` it goes after the last rule."""

    position: Position | None = None


class RuleUpdate(PatchModel):
    """Change any of a rule's fields (the result is validated as a whole)."""

    kind: RuleKind | None = None
    instruction: str | None = Field(default=None, min_length=1, max_length=2000)
    parameters: JsonObject | None = None
    position: Position | None = None
    enabled: bool | None = None


class RulesReplace(InputModel):
    """The agent's complete rule list, in order; it replaces the current one."""

    rules: list[RuleItem] = Field(max_length=MAX_RULES)


class RuleRead(_ChildRead):
    """A rule as the API shows it."""

    kind: RuleKind
    instruction: str
    parameters: dict[str, Any]
    position: int
    enabled: bool


# ---- qualification fields --------------------------------------------------------------------

Option = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class FieldValidation(InputModel):
    """Constraints on a field's value: a regex for text-like fields, options for select, bounds for number."""

    pattern: str | None = Field(default=None, min_length=1, max_length=500)
    options: list[Option] | None = Field(default=None, min_length=1, max_length=100)
    min: FiniteFloat | None = None
    max: FiniteFloat | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @field_validator("options")
    @classmethod
    def _options_unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("options must be unique")
        return value


_PATTERN_TYPES = frozenset({FieldType.text, FieldType.email, FieldType.phone})


class FieldCreate(InputModel):
    """A qualification field; ``key`` is a slug unique within the agent."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="slug: a-z, 0-9, _; starts with a letter")
    label: Name
    type: FieldType
    required: bool = False
    validation: FieldValidation = Field(default_factory=FieldValidation)
    kommo_field_id: KOMMO_ID | None = None

    @model_validator(mode="after")
    def _validation_fits_type(self) -> Self:
        v = self.validation
        if self.type == FieldType.select and not v.options:
            raise ValueError("a select field needs validation.options")
        if self.type != FieldType.select and v.options is not None:
            raise ValueError("validation.options is only for select fields")
        if self.type != FieldType.number and (v.min is not None or v.max is not None):
            raise ValueError("validation.min and validation.max are only for number fields")
        if v.min is not None and v.max is not None and v.min > v.max:
            raise ValueError("validation.min must not exceed validation.max")
        if v.pattern is not None and self.type not in _PATTERN_TYPES:
            raise ValueError("validation.pattern is only for text, email and phone fields")
        return self


class FieldRead(_ChildRead):
    """A qualification field as the API shows it."""

    key: str
    label: str
    type: FieldType
    required: bool
    validation: dict[str, Any]
    kommo_field_id: int | None


# ---- actions ---------------------------------------------------------------------------------


def _public_https(url: HttpUrl) -> HttpUrl:
    if url.scheme != "https":
        raise ValueError("must be an https URL")
    host = (url.host or "").strip("[]").lower()
    # Refuse obvious internal targets (SSRF); names that resolve inward are checked when the call is made.
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise ValueError("must not point at an internal host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return url
    if not address.is_global:
        raise ValueError("must not point at a private or reserved address")
    return url


class _ActionBase(InputModel):
    description: str = Field(default="", max_length=1000, description="When the agent should do this")
    enabled: bool = True


class MoveStageParameters(InputModel):
    """Move the lead to a pipeline status."""

    pipeline_id: KOMMO_ID
    status_id: KOMMO_ID


class AddTagParameters(InputModel):
    """Tag the lead."""

    tag: Tag


class CreateTaskParameters(InputModel):
    """Create a Kommo task for a person."""

    text: str = Field(min_length=1, max_length=1000)
    due_in_minutes: int = Field(default=60, ge=1, le=60 * 24 * 365)
    responsible_user_id: KOMMO_ID | None = None


class SetFieldParameters(InputModel):
    """Set one of the agent's qualification fields; no ``value`` means "from the conversation"."""

    field_key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    value: str | FiniteFloat | bool | None = Field(default=None)

    @field_validator("value")
    @classmethod
    def _short_text(cls, value: str | float | bool | None) -> str | float | bool | None:
        if isinstance(value, str) and len(value) > 1000:
            raise ValueError("must be at most 1000 characters")
        return value


class HandoffParameters(InputModel):
    """Hand the conversation to a person."""

    reason: str = Field(default="", max_length=500)
    responsible_user_id: KOMMO_ID | None = None


class SendAssetParameters(InputModel):
    """Send one of the agent's uploaded assets."""

    asset_id: uuid.UUID
    caption: str = Field(default="", max_length=1000)


class CallWebhookParameters(InputModel):
    """POST/PUT the conversation context to an external https endpoint."""

    url: Annotated[HttpUrl, AfterValidator(_public_https)]
    method: Literal["POST", "PUT"] = "POST"


class MoveStageAction(_ActionBase):
    """Move the lead to a pipeline status."""

    type: Literal["move_stage"]
    parameters: MoveStageParameters


class AddTagAction(_ActionBase):
    """Tag the lead."""

    type: Literal["add_tag"]
    parameters: AddTagParameters


class CreateTaskAction(_ActionBase):
    """Create a task."""

    type: Literal["create_task"]
    parameters: CreateTaskParameters


class SetFieldAction(_ActionBase):
    """Set a qualification field."""

    type: Literal["set_field"]
    parameters: SetFieldParameters


class HandoffAction(_ActionBase):
    """Hand off to a person."""

    type: Literal["handoff"]
    parameters: HandoffParameters = Field(default_factory=HandoffParameters)


class SendAssetAction(_ActionBase):
    """Send an asset."""

    type: Literal["send_asset"]
    parameters: SendAssetParameters


class CallWebhookAction(_ActionBase):
    """Call a webhook."""

    type: Literal["call_webhook"]
    parameters: CallWebhookParameters


ActionCreate = Annotated[
    MoveStageAction | AddTagAction | CreateTaskAction | SetFieldAction | HandoffAction | SendAssetAction
    | CallWebhookAction,
    Field(discriminator="type"),
]


class ActionRead(_ChildRead):
    """An action as the API shows it; ``parameters`` has the shape its ``type`` requires."""

    type: ActionType
    description: str
    parameters: dict[str, Any]
    enabled: bool


# ---- channels --------------------------------------------------------------------------------

HHMM = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class TimeRange(InputModel):
    """Local time range within one day, "HH:MM"; ``end`` must be after ``start``."""

    start: HHMM
    end: HHMM

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        # Zero-padded HH:MM strings order like the times they name.
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def _no_overlap(hours: dict[Weekday, list[TimeRange]] | None) -> dict[Weekday, list[TimeRange]] | None:
    for day, ranges in (hours or {}).items():
        ordered = sorted(ranges, key=lambda r: r.start)
        for before, after in itertools.pairwise(ordered):
            if after.start < before.end:
                raise ValueError(f"{day}: time ranges overlap")
    return hours


WorkingHours = Annotated[
    dict[Weekday, Annotated[list[TimeRange], Field(max_length=8)]] | None, AfterValidator(_no_overlap)
]
ReplyDelay = Annotated[int, Field(ge=0, le=3600)]


class ChannelCreate(InputModel):
    """Enable the agent on a channel; ``working_hours`` null means any time."""

    channel: ChannelType
    enabled: bool = True
    working_hours: WorkingHours = None
    reply_delay_seconds: ReplyDelay = 0
    settings: JsonObject = Field(default_factory=dict)


class ChannelUpdate(PatchModel):
    """Change a channel's settings; ``working_hours: null`` clears the schedule."""

    nullable: ClassVar[frozenset[str]] = frozenset({"working_hours"})

    enabled: bool | None = None
    working_hours: WorkingHours = None
    reply_delay_seconds: ReplyDelay | None = None
    settings: JsonObject | None = None


class ChannelRead(_ChildRead):
    """A channel configuration as the API shows it."""

    channel: ChannelType
    enabled: bool
    working_hours: dict[str, list[dict[str, str]]] | None
    reply_delay_seconds: int
    settings: dict[str, Any]


# ---- assets ----------------------------------------------------------------------------------


class AssetRead(_ChildRead):
    """An uploaded file: its sanitised name, sniffed type and, for images, where to fetch it."""

    filename: str
    title: str
    content_type: str
    kind: AssetKind
    size_bytes: int
    sha256: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str | None:
        """Relative URL serving the image bytes (images only)."""
        return f"/api/images?id={self.id}" if self.kind == AssetKind.image else None
