"""The web dashboard: accounts and sessions, projects, and (from other modules) the analytics pages.

- session.py: the ``viewer`` dependency (login + CSRF), ``project_access`` and ``dashboard_router`` that
  every dashboard page builds on; read its docstring before adding a page.
- accounts.py: onboarding, login, logout, registration.
- projects.py, clients.py, members.py: the project list, settings, tracking setup, API clients, members.
- forms.py: form bodies into msgspec Structs.
"""

from __future__ import annotations

from litestar import Router


def routers() -> list[Router]:
    """The routers of this package's pages, for create_app (imported here, late, to keep imports cheap)."""
    from openpanel_lite.dashboard import accounts, clients, members, projects

    return [accounts.router, projects.router, clients.router, members.router]
