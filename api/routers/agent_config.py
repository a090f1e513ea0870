"""/api/agents/{id}/scripts|objections|rules|fields|actions|channels: how an agent talks and acts.

All routes resolve the agent in the caller's organisation first: another tenant's agent, a missing one
and a soft-deleted one are 404 for every sub-route. Knowledge and assets have their own modules.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Response, status

from api.deps import CurrentPrincipal, SessionDep
from api.schemas.agent_config import (
    ActionCreate,
    ActionRead,
    ChannelCreate,
    ChannelRead,
    ChannelUpdate,
    FieldCreate,
    FieldRead,
    ObjectionCreate,
    ObjectionRead,
    RuleCreate,
    RuleRead,
    RulesReplace,
    RuleUpdate,
    ScriptCreate,
    ScriptRead,
    ScriptUpdate,
)
from api.schemas.common import Cursor, Limit, ListResponse
from api.services.agent_config import (
    ActionService,
    ChannelService,
    FieldService,
    ObjectionService,
    RuleService,
    ScriptService,
)
from db.models import ActionType, ChannelType, FieldType, RuleKind, ScriptStage

router = APIRouter(prefix="/api/agents/{id}", tags=["agent configuration"])

# Path names follow the seed's HTTP surface ({id}, {scriptId}, ...); Python names say what they are.
AgentId = Annotated[uuid.UUID, Path(alias="id", description="Agent id")]
ScriptId = Annotated[uuid.UUID, Path(alias="scriptId")]
ObjectionId = Annotated[uuid.UUID, Path(alias="objectionId")]
RuleId = Annotated[uuid.UUID, Path(alias="ruleId")]
Channel = Annotated[ChannelType, Path(description="Channel type, e.g. whatsapp")]


def _no_content() -> Response:
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---- scripts ---------------------------------------------------------------------------------


@router.get("/scripts", response_model=ListResponse[ScriptRead])
async def list_scripts(
    agent_id: AgentId, principal: CurrentPrincipal, session: SessionDep, limit: Limit = 50, cursor: Cursor = None,
    stage: ScriptStage | None = None, is_active: bool | None = None,
) -> ListResponse[ScriptRead]:
    """List the agent's scripts in position order, filtered by stage and is_active."""
    page = await ScriptService(session, principal.org_id).list(
        agent_id, limit=limit, cursor=cursor, stage=stage, is_active=is_active
    )
    return ListResponse(items=[ScriptRead.model_validate(s) for s in page.items], next_cursor=page.next_cursor)


@router.post("/scripts", status_code=status.HTTP_201_CREATED, response_model=ScriptRead)
async def create_script(
    agent_id: AgentId, body: ScriptCreate, principal: CurrentPrincipal, session: SessionDep
) -> ScriptRead:
    """Add a conversation stage script."""
    return ScriptRead.model_validate(await ScriptService(session, principal.org_id).create(agent_id, body))


@router.patch("/scripts/{scriptId}", response_model=ScriptRead)
async def update_script(
    agent_id: AgentId, script_id: ScriptId, body: ScriptUpdate, principal: CurrentPrincipal, session: SessionDep
) -> ScriptRead:
    """Change a script's stage, name, messages, position or is_active."""
    script = await ScriptService(session, principal.org_id).update(
        agent_id, script_id, body.model_dump(exclude_unset=True)
    )
    return ScriptRead.model_validate(script)


@router.delete("/scripts/{scriptId}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_script(
    agent_id: AgentId, script_id: ScriptId, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """Delete a script."""
    await ScriptService(session, principal.org_id).delete(agent_id, script_id)
    return _no_content()


# ---- objections ------------------------------------------------------------------------------


@router.get("/objections", response_model=ListResponse[ObjectionRead])
async def list_objections(
    agent_id: AgentId, principal: CurrentPrincipal, session: SessionDep, limit: Limit = 50, cursor: Cursor = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
) -> ListResponse[ObjectionRead]:
    """List the agent's objection answers, newest first, filtered by category."""
    page = await ObjectionService(session, principal.org_id).list(
        agent_id, limit=limit, cursor=cursor, category=category
    )
    return ListResponse(items=[ObjectionRead.model_validate(o) for o in page.items], next_cursor=page.next_cursor)


@router.post("/objections", status_code=status.HTTP_201_CREATED, response_model=ObjectionRead)
async def create_objection(
    agent_id: AgentId, body: ObjectionCreate, principal: CurrentPrincipal, session: SessionDep
) -> ObjectionRead:
    """Add an objection and its answer."""
    return ObjectionRead.model_validate(await ObjectionService(session, principal.org_id).create(agent_id, body))


@router.delete("/objections/{objectionId}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_objection(
    agent_id: AgentId, objection_id: ObjectionId, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """Delete an objection answer."""
    await ObjectionService(session, principal.org_id).delete(agent_id, objection_id)
    return _no_content()


# ---- rules -----------------------------------------------------------------------------------


@router.get("/rules", response_model=ListResponse[RuleRead])
async def list_rules(
    agent_id: AgentId, principal: CurrentPrincipal, session: SessionDep, limit: Limit = 50, cursor: Cursor = None,
    kind: RuleKind | None = None, enabled: bool | None = None,
) -> ListResponse[RuleRead]:
    """List the agent's rules in position order, filtered by kind and enabled."""
    page = await RuleService(session, principal.org_id).list(
        agent_id, limit=limit, cursor=cursor, kind=kind, enabled=enabled
    )
    return ListResponse(items=[RuleRead.model_validate(r) for r in page.items], next_cursor=page.next_cursor)


@router.post("/rules", status_code=status.HTTP_201_CREATED, response_model=RuleRead)
async def create_rule(
    agent_id: AgentId, body: RuleCreate, principal: CurrentPrincipal, session: SessionDep
) -> RuleRead:
    """Add a rule (at the end unless a position is given)."""
    return RuleRead.model_validate(await RuleService(session, principal.org_id).create(agent_id, body))


@router.put("/rules", response_model=ListResponse[RuleRead])
async def replace_rules(
    agent_id: AgentId, body: RulesReplace, principal: CurrentPrincipal, session: SessionDep
) -> ListResponse[RuleRead]:
    """Replace the whole rule list atomically; positions become 0..n-1 in the order sent."""
    rules = await RuleService(session, principal.org_id).replace(agent_id, body.rules)
    return ListResponse(items=[RuleRead.model_validate(r) for r in rules], next_cursor=None)


@router.patch("/rules/{ruleId}", response_model=RuleRead)
async def update_rule(
    agent_id: AgentId, rule_id: RuleId, body: RuleUpdate, principal: CurrentPrincipal, session: SessionDep
) -> RuleRead:
    """Change a rule's kind, instruction, parameters, position or enabled."""
    rule = await RuleService(session, principal.org_id).update(agent_id, rule_id, body.model_dump(exclude_unset=True))
    return RuleRead.model_validate(rule)


@router.delete("/rules/{ruleId}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(agent_id: AgentId, rule_id: RuleId, principal: CurrentPrincipal, session: SessionDep) -> Response:
    """Delete a rule."""
    await RuleService(session, principal.org_id).delete(agent_id, rule_id)
    return _no_content()


# ---- qualification fields --------------------------------------------------------------------


@router.get("/fields", response_model=ListResponse[FieldRead])
async def list_fields(
    agent_id: AgentId, principal: CurrentPrincipal, session: SessionDep, limit: Limit = 50, cursor: Cursor = None,
    type_filter: Annotated[FieldType | None, Query(alias="type")] = None, required: bool | None = None,
) -> ListResponse[FieldRead]:
    """List the agent's qualification fields, newest first, filtered by type and required."""
    page = await FieldService(session, principal.org_id).list(
        agent_id, limit=limit, cursor=cursor, type_=type_filter, required=required
    )
    return ListResponse(items=[FieldRead.model_validate(f) for f in page.items], next_cursor=page.next_cursor)


@router.post("/fields", status_code=status.HTTP_201_CREATED, response_model=FieldRead)
async def create_field(
    agent_id: AgentId, body: FieldCreate, principal: CurrentPrincipal, session: SessionDep
) -> FieldRead:
    """Add a qualification field (409 if its key is taken on this agent)."""
    return FieldRead.model_validate(await FieldService(session, principal.org_id).create(agent_id, body))


# ---- actions ---------------------------------------------------------------------------------


@router.get("/actions", response_model=ListResponse[ActionRead])
async def list_actions(
    agent_id: AgentId, principal: CurrentPrincipal, session: SessionDep, limit: Limit = 50, cursor: Cursor = None,
    type_filter: Annotated[ActionType | None, Query(alias="type")] = None, enabled: bool | None = None,
) -> ListResponse[ActionRead]:
    """List the actions the agent may take, newest first, filtered by type and enabled."""
    page = await ActionService(session, principal.org_id).list(
        agent_id, limit=limit, cursor=cursor, type_=type_filter, enabled=enabled
    )
    return ListResponse(items=[ActionRead.model_validate(a) for a in page.items], next_cursor=page.next_cursor)


@router.post("/actions", status_code=status.HTTP_201_CREATED, response_model=ActionRead)
async def create_action(
    agent_id: AgentId, body: Annotated[ActionCreate, Body()], principal: CurrentPrincipal, session: SessionDep
) -> ActionRead:
    """Allow the agent an action; ``parameters`` must fit its ``type``."""
    return ActionRead.model_validate(await ActionService(session, principal.org_id).create(agent_id, body))


# ---- channels --------------------------------------------------------------------------------


@router.get("/channels", response_model=ListResponse[ChannelRead])
async def list_channels(
    agent_id: AgentId, principal: CurrentPrincipal, session: SessionDep, limit: Limit = 50, cursor: Cursor = None,
    enabled: bool | None = None,
) -> ListResponse[ChannelRead]:
    """List the agent's channel settings, newest first, filtered by enabled."""
    page = await ChannelService(session, principal.org_id).list(agent_id, limit=limit, cursor=cursor, enabled=enabled)
    return ListResponse(items=[ChannelRead.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@router.post("/channels", status_code=status.HTTP_201_CREATED, response_model=ChannelRead)
async def create_channel(
    agent_id: AgentId, body: ChannelCreate, principal: CurrentPrincipal, session: SessionDep
) -> ChannelRead:
    """Configure the agent on a channel (409 if it already is)."""
    return ChannelRead.model_validate(await ChannelService(session, principal.org_id).create(agent_id, body))


@router.patch("/channels/{channel}", response_model=ChannelRead)
async def update_channel(
    agent_id: AgentId, channel: Channel, body: ChannelUpdate, principal: CurrentPrincipal, session: SessionDep
) -> ChannelRead:
    """Change a channel's enabled flag, working hours, reply delay or settings."""
    row = await ChannelService(session, principal.org_id).update(
        agent_id, channel, body.model_dump(exclude_unset=True)
    )
    return ChannelRead.model_validate(row)


@router.delete("/channels/{channel}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_channel(
    agent_id: AgentId, channel: Channel, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """Remove the agent from a channel."""
    await ChannelService(session, principal.org_id).delete(agent_id, channel)
    return _no_content()
