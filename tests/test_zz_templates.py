"""Every template under web/templates/ was rendered by at least one test of this run (GoatCounter's
TestTemplateExecution). Named zz so it runs after the page tests; it needs them in the same run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RENDERED_TEMPLATES

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
# The test modules that render pages: without them in this run, the check has nothing to check.
PAGE_TESTS = {
    "test_dashboard_accounts.py",
    "test_dashboard_projects.py",
    "test_dashboard_overview.py",
    "test_dashboard_explorers.py",
    "test_dashboard_realtime.py",
    "test_dashboard_visuals.py",
}


def test_every_template_is_rendered(request: pytest.FixtureRequest) -> None:
    collected = {Path(str(item.fspath)).name for item in request.session.items}
    if not collected >= PAGE_TESTS:
        pytest.skip(f"run with the page tests ({', '.join(sorted(PAGE_TESTS - collected))} missing)")
    on_disk = {p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.html")}
    assert sorted(on_disk - RENDERED_TEMPLATES) == []
