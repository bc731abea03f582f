"""Request headers as the ingest code receives them."""

from __future__ import annotations


class LowerCaseHeaders(dict[str, str]):
    """Header values keyed by lower-case name, repeated lines joined with ", " (rightmost hop last).

    The type tells lookups that a missing lower-case key really is missing, so they can skip a
    case-insensitive scan (plain mappings from tests or other callers may use any case).
    """

    __slots__ = ()
