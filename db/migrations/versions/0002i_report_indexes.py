"""indexes for the reports

Revision ID: 0002i
Revises: 0002g
Create Date: 2026-11-27 20:20:00.000000

The reports credit a reply to a send by looking up the lead's conversation (by lead) and walk an
organisation's sends by time: both need an index, or a report over N sends scans N times.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0002i'
down_revision: str | None = '0002g'
branch_labels: str | Sequence[str] | None = None
# enrollment_step_logs is created by 0002d, on a sibling branch.
depends_on: str | Sequence[str] | None = ('0002d',)


def upgrade() -> None:
    op.create_index('ix_conversations_org_lead', 'conversations', ['org_id', 'lead_id'])
    op.create_index('ix_enrollment_step_logs_org_sent', 'enrollment_step_logs', ['org_id', 'sent_at'])


def downgrade() -> None:
    op.drop_index('ix_enrollment_step_logs_org_sent', table_name='enrollment_step_logs')
    op.drop_index('ix_conversations_org_lead', table_name='conversations')
