"""What the brain works from and what it answers: plain frozen dataclasses, built by the activities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Author = Literal["lead", "agent", "manager", "system"]


@dataclass(frozen=True)
class Script:
    """One conversation stage of the agent with the lines it leans on there."""

    stage: str
    name: str
    messages: tuple[str, ...]
    position: int = 0


@dataclass(frozen=True)
class Objection:
    """A typical objection, the phrases that reveal it, and the configured answer."""

    id: str
    objection: str
    answer: str
    trigger_phrases: tuple[str, ...] = ()
    category: str = "general"


@dataclass(frozen=True)
class Rule:
    """One rule (kind as in ``RuleKind``); ``parameters`` give machine-checkable details."""

    kind: str
    instruction: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Field:
    """A qualification field the agent collects; ``validation`` as the agent-config API stores it."""

    key: str
    label: str
    type: str
    required: bool = False
    validation: dict[str, Any] = field(default_factory=dict)
    kommo_field_id: int | None = None


@dataclass(frozen=True)
class Action:
    """An action the agent may take (type as in ``ActionType``)."""

    type: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Playbook:
    """Everything configured for one agent."""

    agent_name: str
    persona: str = ""
    tone: str = "friendly"
    language: str = "en"
    scripts: tuple[Script, ...] = ()
    objections: tuple[Objection, ...] = ()
    rules: tuple[Rule, ...] = ()
    fields: tuple[Field, ...] = ()
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True)
class Passage:
    """A retrieved piece of knowledge: an agent knowledge entry or a published KB article."""

    source: Literal["knowledge", "article"]
    id: str
    title: str
    text: str
    rank: float = 0.0
    question: str | None = None


@dataclass(frozen=True)
class Turn:
    """One earlier message of the conversation."""

    author: Author
    text: str


@dataclass(frozen=True)
class BrainRequest:
    """The lead's new message(s) in context."""

    messages: tuple[str, ...]
    playbook: Playbook
    passages: tuple[Passage, ...] = ()
    history: tuple[Turn, ...] = ()
    known_fields: dict[str, Any] = field(default_factory=dict)
    stage: str | None = None
    turn: int = 0
    summary: str = ""

    @property
    def text(self) -> str:
        """The burst as one text."""
        return "\n".join(m.strip() for m in self.messages if m.strip())


@dataclass(frozen=True)
class Analysis:
    """What the brain understood; shared by the offline composer and the LLM prompt."""

    text: str
    language: str
    wants_human: bool
    handoff_reason: str | None
    forbidden_topics: tuple[str, ...]
    forbidden_response: str | None
    objection: Objection | None
    passage: Passage | None
    extracted: dict[str, Any]
    invalid: dict[str, str]
    fields: dict[str, Any]
    missing: tuple[Field, ...]
    qualified: bool
    stage: str
    first_turn: bool
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Reply:
    """The brain's answer: text to send (or none), and what else should happen."""

    text: str
    stage: str
    fields: dict[str, Any]
    extracted: dict[str, Any]
    invalid: dict[str, str]
    handoff_reason: str | None = None
    actions: tuple[Action, ...] = ()
    objection_id: str | None = None
    passage_ids: tuple[str, ...] = ()
    violations: tuple[str, ...] = ()
    grounded: bool = True


@dataclass(frozen=True)
class FollowUpRequest:
    """An outbound nudge in context: the playbook, the last turns, stage and fields so far."""

    playbook: Playbook
    history: tuple[Turn, ...] = ()
    known_fields: dict[str, Any] = field(default_factory=dict)
    stage: str | None = None
    attempt: int = 0
    lead_name: str | None = None
