"""R01 kill9-loop: a real `openpanel serve` SIGKILLed at a random moment under load, restarted, over
and over; every acknowledged event is stored exactly once, and restarts are ready within 3 s (p99).

Short form (default suite): 20 cycles. Long form (-m reliability): 200 cycles, as reliability.md §7.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.reliability.crash_support import kill9_loop, long_form

Site = tuple[Path, str, dict[str, Any]]


@pytest.mark.slow
def test_r01_kill9_loop_short(crash_site: Site) -> None:
    kill9_loop(crash_site, 12)  # ~2 s per cycle (a restart each); 200 with -m reliability


@pytest.mark.reliability
def test_r01_kill9_loop(crash_site: Site, request: pytest.FixtureRequest) -> None:
    long_form(request, "R01")
    kill9_loop(crash_site, 200)
