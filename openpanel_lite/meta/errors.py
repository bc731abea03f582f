"""The metadata store's one error type; messages are written for a CLI user to read."""

from __future__ import annotations


class MetaError(Exception):
    """A domain problem in the metadata store (bad input, unknown id, duplicate, unusable database)."""
