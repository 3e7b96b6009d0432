"""Alembic environment: runs migrations on the engine metwatch hands over."""

from alembic import context
from sqlmodel import SQLModel

import metwatch.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
