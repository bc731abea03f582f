"""Metadata store: users, projects, API clients, salts and login sessions in SQLite (apsw)."""

from __future__ import annotations

from openpanel_lite.meta.db import MetaDB
from openpanel_lite.meta.errors import MetaError

__all__ = ["MetaDB", "MetaError"]
