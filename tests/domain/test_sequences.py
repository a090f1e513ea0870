"""Sequence graphs, enrolment rules, exit criteria, variants and send planning (pure functions).

Graph validation is checked against independent oracles (Kahn's algorithm for cycles, a fixed-point
closure for reachability) on random graphs; send planning against ``schedule_with_cap``.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from domain.conditions import LeadFacts
from domain.schedule import BusinessHours, DailyCap, SendWindow, TimeRange, is_within_window, schedule_with_cap
from domain.sequences import (
    ALWAYS_OPEN,
    EnrollmentRefusal,
    EnrollmentRules,
    ExitCriteria,
    ExitReason,
    MessageVariant,
    OtherEnrollment,
    PriorEnrollments,
    ReenrollmentPolicy,
    SequenceDefinition,
    StageFilter,
    Step,
    check_enrollment,
    choose_variant,
    exit_for_reply,
    exit_for_stage,
    schedule_send,
    send_window_for,
    successors,
    validate_graph,
)

STEPS = TypeAdapter(list[Step])
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def parse(steps: list[dict[str, Any]]) -> list[Step]:
    return STEPS.validate_python(steps)


def chain(n: int) -> list[dict[str, Any]]:
    return [{"id": f"s{i}", "type": "wait", "duration": "PT1H", "next": f"s{i + 1}" if i + 1 < n else None}
            for i in range(n)]


# ---- random graphs and oracles ------------------------------------------------------------------

GHOSTS = ["ghost1", "ghost2"]


@st.composite
def graphs(draw: st.DrawFn, *, forward_only: bool = False, known_only: bool = False) -> list[dict[str, Any]]:
    """Random step lists; targets may be any id (or, unless ``known_only``, an unknown one)."""
    n = draw(st.integers(1, 10))
    ids = [f"s{i}" for i in range(n)]

    def target(i: int, optional: bool) -> str | None:
        pool = ids[i + 1:] if forward_only else ids
        choices: list[str | None] = list(pool)
        if not known_only:
            choices += GHOSTS
        if optional or not choices:
            choices.append(None)
        if not choices or choices == [None]:
            return None
        return draw(st.sampled_from(choices))

    steps: list[dict[str, Any]] = []
    for i, step_id in enumerate(ids):
        kind = draw(st.sampled_from(["wait", "send", "reply", "branch", "end"]))
        if kind == "branch":
            then, other = target(i, False), target(i, False)
            if then is None or other is None:
                kind = "end"
            else:
                steps.append({"id": step_id, "type": "branch", "condition": {"kind": "replied"},
                              "then": then, "else": other})
                continue
        if kind == "end":
            steps.append({"id": step_id, "type": "end"})
        elif kind == "wait":
            steps.append({"id": step_id, "type": "wait", "duration": "PT5M", "next": target(i, True)})
        elif kind == "send":
            steps.append({"id": step_id, "type": "send_message", "text": "hi", "next": target(i, True)})
        else:
            steps.append({"id": step_id, "type": "wait_for_reply", "timeout": "P1D", "next": target(i, True),
                          "on_reply": target(i, True)})
    return steps


def oracle_edges(steps: list[Step]) -> dict[str, list[str]]:
    known = {s.id for s in steps}
    return {s.id: [t for _, t in successors(s) if t in known] for s in steps}


def oracle_has_cycle(edges: dict[str, list[str]]) -> bool:
    """Kahn's algorithm: a cycle exists iff some node never reaches in-degree 0."""
    indegree = Counter(t for targets in edges.values() for t in targets)
    ready = [n for n in edges if indegree[n] == 0]
    removed = 0
    while ready:
        node = ready.pop()
        removed += 1
        for t in edges[node]:
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    return removed < len(edges)


def oracle_reachable(entry: str, edges: dict[str, list[str]]) -> set[str]:
    """Closure by repeated relaxation (deliberately not a search)."""
    reached = {entry}
    while True:
        grown = reached | {t for n in reached for t in edges[n]}
        if grown == reached:
            return reached
        reached = grown


# ---- graph validation ---------------------------------------------------------------------------


@PROPERTY
@given(graphs())
def test_unknown_targets_are_reported_exactly_at_their_edges(raw: list[dict[str, Any]]) -> None:
    steps = parse(raw)
    problems = validate_graph(steps)
    expected = {f"steps[{i}].{field}" for i, s in enumerate(steps) for field, t in successors(s) if t in GHOSTS}
    assert {p.path for p in problems if p.message.startswith("unknown step")} == expected


@PROPERTY
@given(graphs(known_only=True))
def test_a_cycle_is_reported_exactly_when_the_graph_has_one_and_each_reported_cycle_is_real(
    raw: list[dict[str, Any]],
) -> None:
    steps = parse(raw)
    edges = oracle_edges(steps)
    cycles = [p for p in validate_graph(steps) if p.message.startswith("cycle: ")]
    assert bool(cycles) == oracle_has_cycle(edges)
    for problem in cycles:
        loop = problem.message.removeprefix("cycle: ").split(" -> ")
        assert loop[0] == loop[-1]
        assert all(b in edges[a] for a, b in itertools.pairwise(loop))


@PROPERTY
@given(graphs(known_only=True))
def test_unreachable_steps_are_exactly_those_the_entry_cannot_reach(raw: list[dict[str, Any]]) -> None:
    steps = parse(raw)
    reachable = oracle_reachable(steps[0].id, oracle_edges(steps))
    reported = {p.path for p in validate_graph(steps) if "unreachable" in p.message}
    assert reported == {f"steps[{i}]" for i, s in enumerate(steps) if s.id not in reachable}


@PROPERTY
@given(graphs(forward_only=True, known_only=True))
def test_forward_graphs_never_cycle_and_valid_ones_always_terminate(raw: list[dict[str, Any]]) -> None:
    steps = parse(raw)
    problems = validate_graph(steps)
    assert not any(p.message.startswith("cycle") for p in problems)
    if problems:
        with pytest.raises(ValidationError):
            SequenceDefinition.model_validate({"steps": raw})
        return
    definition = SequenceDefinition.model_validate({"steps": raw})
    # Every path from the entry ends within len(steps) steps, whichever edge is taken.
    frontier = [(definition.entry, 0)]
    while frontier:
        node, depth = frontier.pop()
        assert depth < len(steps)
        frontier += [(t, depth + 1) for _, t in successors(definition.step(node))]


def test_a_cycle_names_its_steps_and_where_it_starts() -> None:
    steps = parse([
        {"id": "a", "type": "send_message", "text": "hi", "next": "b"},
        {"id": "b", "type": "wait", "duration": "P1D", "next": "c"},
        {"id": "c", "type": "branch", "condition": {"kind": "replied"}, "then": "d", "else": "b"},
        {"id": "d", "type": "end"},
    ])
    assert [(p.path, p.message) for p in validate_graph(steps)] == [("steps[1]", "cycle: b -> c -> b")]


def test_duplicate_ids_unknown_targets_and_orphans_each_get_a_path() -> None:
    steps = parse([
        {"id": "a", "type": "wait", "duration": "PT1H", "next": "zzz"},
        {"id": "a", "type": "end"},
        {"id": "lonely", "type": "end"},
    ])
    paths = {p.path: p.message for p in validate_graph(steps)}
    assert paths["steps[1].id"].startswith("duplicate step id 'a'")
    assert paths["steps[0].next"] == "unknown step 'zzz'"
    # Unreachability is not reported while an unknown target may be the reason.
    assert "steps[2]" not in paths
    del steps[0:2]
    assert validate_graph(steps) == []


def test_step_shapes_are_checked_when_parsed() -> None:
    bad = [
        {"id": "a", "type": "branch", "condition": {"kind": "replied"}, "then": "a", "else": "a", "next": "a"},
        {"id": "a", "type": "end", "next": "b"},
        {"id": "a", "type": "wait"},
        {"id": "a", "type": "wait", "duration": "P400D"},
        {"id": "a", "type": "send_message"},
        {"id": "a", "type": "send_message", "text": "x",
         "variants": [{"id": "v", "text": "y"}, {"id": "w", "text": "z"}]},
        {"id": "a", "type": "send_message", "variants": [{"id": "v", "text": "y"}]},
        {"id": "a", "type": "send_message", "variants": [{"id": "v", "text": "y"}, {"id": "v", "text": "z"}]},
        {"id": "bad id!", "type": "end"},
        {"id": "a", "type": "teleport"},
        {"id": "a", "type": "crm_action", "action": {"kind": "add_tag", "tags": []}},
        {"id": "a", "type": "webhook", "url": "ftp://example.com"},
    ]
    for step in bad:
        with pytest.raises(ValidationError):
            parse([step])


# ---- variants -----------------------------------------------------------------------------------


def test_variant_choice_is_deterministic_and_follows_the_weights() -> None:
    variants = [MessageVariant(id="a", text="A", weight=3), MessageVariant(id="b", text="B", weight=1)]
    picks = Counter(choose_variant(str(uuid.UUID(int=i)), "s1", variants).id for i in range(4000))
    assert 2800 < picks["a"] < 3200
    key = str(uuid.uuid4())
    assert len({choose_variant(key, "s1", variants).id for _ in range(20)}) == 1


# ---- enrolment rules ------------------------------------------------------------------------------

LEAD = LeadFacts(pipeline_id=10, status_id=101)


def verdict(rules: EnrollmentRules, prior: PriorEnrollments = PriorEnrollments(), *, lead: LeadFacts = LEAD,
            exclusive_here: bool = False, contacted: datetime | None = None) -> tuple[bool, str | None, bool]:
    v = check_enrollment(rules, lead, prior, exclusive_here=exclusive_here, last_contacted_at=contacted, now=NOW)
    return v.allowed, v.reason.value if v.reason else None, v.restart


def test_enrolment_rules_refuse_for_each_reason_and_admit_otherwise() -> None:
    rules = EnrollmentRules()
    assert verdict(rules) == (True, None, False)
    assert verdict(rules, lead=LEAD.model_copy(update={"opted_out": True}))[1] == EnrollmentRefusal.opted_out
    staged = EnrollmentRules(stages=(StageFilter(pipeline_id=10, status_ids=(102,)),))
    assert verdict(staged)[1] == EnrollmentRefusal.stage_not_allowed
    assert verdict(EnrollmentRules(stages=(StageFilter(pipeline_id=10),)))[0] is True
    cooling = EnrollmentRules(cooldown=timedelta(days=2))
    assert verdict(cooling, contacted=NOW - timedelta(days=1))[1] == EnrollmentRefusal.cooldown
    assert verdict(cooling, contacted=NOW - timedelta(days=3))[0] is True


def test_reenrolment_policies() -> None:
    done = PriorEnrollments(ever_here=True)
    running = PriorEnrollments(ever_here=True, active_here=True)
    once = EnrollmentRules(reenrollment=ReenrollmentPolicy.once)
    again = EnrollmentRules(reenrollment=ReenrollmentPolicy.again_when_not_active)
    anytime = EnrollmentRules(reenrollment=ReenrollmentPolicy.any_time)
    assert verdict(once, done)[1] == EnrollmentRefusal.already_enrolled
    assert verdict(once, running)[1] == EnrollmentRefusal.already_active
    assert verdict(again, done) == (True, None, False)
    assert verdict(again, running)[1] == EnrollmentRefusal.already_active
    assert verdict(anytime, running) == (True, None, True)


def test_exclusivity_holds_both_ways() -> None:
    other_plain = PriorEnrollments(active_elsewhere=(OtherEnrollment(sequence_id=uuid.uuid4(), exclusive=False),))
    other_exclusive = PriorEnrollments(active_elsewhere=(OtherEnrollment(sequence_id=uuid.uuid4(), exclusive=True),))
    rules = EnrollmentRules()
    assert verdict(rules, other_plain)[0] is True
    assert verdict(rules, other_plain, exclusive_here=True)[1] == EnrollmentRefusal.exclusive_conflict
    assert verdict(rules, other_exclusive)[1] == EnrollmentRefusal.exclusive_conflict


def test_exit_criteria() -> None:
    criteria = ExitCriteria(stages=(StageFilter(pipeline_id=10, status_ids=(105,)),))
    assert exit_for_stage(criteria, 10, 142) == ExitReason.won
    assert exit_for_stage(criteria, 99, 143) == ExitReason.lost
    assert exit_for_stage(criteria, 10, 105) == ExitReason.stage
    assert exit_for_stage(criteria, 11, 105) is None
    assert exit_for_stage(ExitCriteria(on_won=False), 10, 142) is None
    assert exit_for_reply(criteria) == ExitReason.replied
    assert exit_for_reply(ExitCriteria(on_reply=False)) is None


# ---- send windows and caps ------------------------------------------------------------------------


def test_send_window_prefers_the_leads_zone_and_the_sequence_override() -> None:
    window = send_window_for(org_time_zone="Europe/Berlin", org_hours={}, org_holidays=["2026-12-25"],
                             override=None, lead_time_zone="America/New_York")
    assert window.tz == "America/New_York"
    assert window.hours.days == BusinessHours.default().days
    assert window.hours.holidays == (date(2026, 12, 25),)
    bogus = send_window_for(org_time_zone="Europe/Berlin", org_hours={}, org_holidays=[],
                            override={"time_zone": "Asia/Tokyo", "business_hours": ALWAYS_OPEN, "holidays": []},
                            lead_time_zone="Not/AZone")
    assert bogus.tz == "Asia/Tokyo"
    assert is_within_window(bogus, datetime(2026, 3, 1, 3, tzinfo=UTC))


HOURS = st.sampled_from([
    BusinessHours.default(),
    BusinessHours(days={0: [TimeRange(start=time(9), end=time(10))], 3: [TimeRange(start=time(22), end=time.max)]}),
    BusinessHours(days={d: [TimeRange(start=time(0), end=time.max)] for d in range(7)}),
])
ZONES = st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"])


@PROPERTY
@given(HOURS, ZONES, st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31),
                                  timezones=st.just(UTC)),
       st.integers(1, 3), st.dictionaries(st.integers(0, 20), st.integers(0, 4), max_size=8))
def test_capped_send_planning_agrees_with_schedule_with_cap_in_one_zone(
    hours: BusinessHours, zone: str, earliest: datetime, limit: int, used: dict[int, int]
) -> None:
    window = SendWindow(hours=hours, tz=zone)
    base = earliest.astimezone(ZoneInfo(zone)).date()
    usage = {base + timedelta(days=k): v for k, v in used.items()}

    def lookup(day: date) -> int:
        return usage.get(day, 0)

    planned = schedule_send(window, earliest, cap=DailyCap(limit=limit), cap_zone=zone, used_on=lookup)
    assert planned == schedule_with_cap(window, earliest, DailyCap(limit=limit), lookup)


@PROPERTY
@given(HOURS, ZONES, ZONES, st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31),
                                         timezones=st.just(UTC)),
       st.dictionaries(st.integers(0, 10), st.integers(0, 3), max_size=6))
def test_a_capped_send_lands_in_the_window_on_a_sender_day_with_room(
    hours: BusinessHours, lead_zone: str, org_zone: str, earliest: datetime, used: dict[int, int]
) -> None:
    window = SendWindow(hours=hours, tz=lead_zone)
    base = earliest.astimezone(ZoneInfo(org_zone)).date()
    usage = {base + timedelta(days=k): v for k, v in used.items()}
    planned = schedule_send(window, earliest, cap=DailyCap(limit=2), cap_zone=org_zone,
                            used_on=lambda day: usage.get(day, 0))
    assert planned >= earliest
    assert is_within_window(window, planned)
    assert usage.get(planned.astimezone(ZoneInfo(org_zone)).date(), 0) < 2
