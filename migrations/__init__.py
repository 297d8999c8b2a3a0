"""Alembic migrations of the engine's SQLite store (see engine/store/database.py)."""
