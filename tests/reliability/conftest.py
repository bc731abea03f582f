"""Fixtures of the fault suite (tests/reliability/): a data dir with a project, a write and a read client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.reliability.crash_support import make_crash_site


@pytest.fixture
def crash_site(tmp_path: Path) -> tuple[Path, str, dict[str, Any]]:
    return make_crash_site(tmp_path)
