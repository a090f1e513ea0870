"""Recorded enrolment histories must replay on today's code: a non-deterministic change fails here.

The histories were recorded by ``test_sequence_enrollment.py`` with ``SALESFLOW_RECORD_HISTORIES=1``
(see CONTRIBUTING.md, "How to record a replay history"). Keep old files when a workflow changes
behind ``workflow.patched()``: they prove runs already in flight still replay.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.bulk_enrollment import BulkEnrollmentWorkflow
from workflows.sequence_enrollment import SequenceEnrollmentWorkflow

HISTORIES = Path(__file__).parent / "histories"


@pytest.mark.parametrize("name", [
    "fourteen_day_walk",  # every step type, 14 days, a DST change, an A/B variant, a CRM action
    "stop_on_reply",  # a reply signal mid-wait
    "pause_resume_skip",  # pause/resume updates moving a timer, a refused and an accepted skip
    "bulk_start",  # the fan-out's batches and its continue-as-new
    "continue_as_new_first_run",  # an enrolment handing its state to the next run
    "ai_follow_up",  # brain-written sends, the second attempt phrased differently
    "cancel_during_send",  # a cancel answered while a send was being retried (patch cancel-answers-at-once)
])
async def test_recorded_enrolment_histories_replay_on_todays_code(name: str) -> None:
    history = WorkflowHistory.from_json(f"recorded/{name}", json.loads((HISTORIES / f"{name}.json").read_text()))
    replayer = Replayer(workflows=[SequenceEnrollmentWorkflow, BulkEnrollmentWorkflow],
                        data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
