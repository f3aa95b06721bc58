"""The Alembic migrations and `shared.models` describe the same schema, on Postgres and on SQLite,
and the migrations run down to nothing and up again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool

from inferq.shared.migrate import alembic_config, upgrade
from inferq.shared.models import Base
from inferq.shared.settings import Settings

pytestmark = pytest.mark.integration


def schema_diff(database_url: str) -> list[object]:
    """What autogenerate would write to make the database match the models (empty when they agree)."""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def table_names(database_url: str) -> set[str]:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def check_round_trip(database_url: str, settings: Settings) -> None:
    # when the migrations run to head
    upgrade(settings)

    # then the database has every table of the models, and nothing differs
    assert table_names(database_url) >= set(Base.metadata.tables)
    assert schema_diff(database_url) == []

    # and they run down to nothing
    command.downgrade(alembic_config(database_url), "base")
    assert table_names(database_url) <= {"alembic_version"}

    # and up again to the same schema
    upgrade(settings)
    assert schema_diff(database_url) == []


def test_postgres_migrations_match_the_models_and_round_trip(
    make_pg_database: Callable[[], str], tmp_path: Path
) -> None:
    # given a fresh, empty Postgres database
    url = make_pg_database()

    check_round_trip(url, Settings.from_env({"INFERQ_DATABASE_URL": url, "INFERQ_DATA_DIR": str(tmp_path)}))


def test_sqlite_migrations_match_the_models_and_round_trip(tmp_path: Path) -> None:
    # given a fresh SQLite file
    settings = Settings.from_env({"INFERQ_DATA_DIR": str(tmp_path)})

    check_round_trip(settings.database_url, settings)
