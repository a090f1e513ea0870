"""lead last replied at

Revision ID: 0002h
Revises: 0001
Create Date: 2026-11-27 19:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002h'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
# The column goes on leads, created by 0002c on a sibling branch.
depends_on: str | Sequence[str] | None = ('0002c',)


def upgrade() -> None:
    op.add_column('leads', sa.Column('last_replied_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('leads', 'last_replied_at')
