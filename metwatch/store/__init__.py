"""Persistent state. The only package that imports sqlmodel/SQLAlchemy."""

from metwatch.store.engine import make_engine, open_store
from metwatch.store.sql import SqlStore

__all__ = ["SqlStore", "make_engine", "open_store"]
