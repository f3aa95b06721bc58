"""Alembic migrations (`inferq db upgrade`)."""
