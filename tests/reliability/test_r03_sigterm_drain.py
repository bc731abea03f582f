"""R03 sigterm-drain: SIGTERM under 1k ev/s with ~1000 acked events still waiting for the store; exit 0
within 8 s, everything acked is in the store, the spool is empty after the restart.

Short form (default suite): 1 iteration. Long form (-m reliability): 100 iterations, as §7.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.reliability.crash_support import long_form, sigterm_drain

Site = tuple[Path, str, dict[str, Any]]


def test_r03_sigterm_drain_short(crash_site: Site) -> None:
    sigterm_drain(crash_site, 1)


@pytest.mark.reliability
def test_r03_sigterm_drain(crash_site: Site, request: pytest.FixtureRequest) -> None:
    long_form(request, "R03")
    sigterm_drain(crash_site, 100)
