"""S06 login-ratelimit-race: 50 wrong passwords sent in parallel perform at most 10 password
verifications; every later attempt is 429 with Retry-After, the right password included.

Verifications are counted by wrapping the real argon2 check (meta.users.verify_password, and the
burn_password_check used for unknown accounts) with a counter that still runs it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from openpanel_lite.meta import users
from tests.dashboard_support import ADMIN_EMAIL, ADMIN_PASSWORD, Client, logged_in
from tests.harness import LiveServer

PARALLEL = 50


class _Counted:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.calls, self.lock = fn, 0, threading.Lock()

    def __call__(self, *args: Any) -> Any:
        with self.lock:
            self.calls += 1
        return self.fn(*args)


class _Verifications:
    def __init__(self, *counters: _Counted) -> None:
        self.counters = counters

    @property
    def calls(self) -> int:
        return sum(c.calls for c in self.counters)


def _race(server: LiveServer, attempts: list[tuple[str, str, str]]) -> list[int]:
    """Fire every (email, password, client ip) login at once; returns the statuses."""
    clients = [Client(server) for _ in attempts]
    for c in clients:
        c.csrf = c.get("/login").csrf_field()
    start = threading.Barrier(len(attempts))
    statuses: list[int] = [0] * len(attempts)

    def go(i: int) -> None:
        email, password, ip = attempts[i]
        start.wait()
        reply = clients[i].post(
            "/login", {"email": email, "password": password}, headers={"X-Forwarded-For": ip}
        )
        statuses[i] = reply.status
        if reply.status == 429:
            assert 0 < int(reply.headers["retry-after"]) <= 900

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(attempts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return list(statuses)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> _Verifications:
    counted = _Counted(users.verify_password)
    burned = _Counted(users.burn_password_check)
    monkeypatch.setattr(users, "verify_password", counted)
    monkeypatch.setattr(users, "burn_password_check", burned)
    return _Verifications(counted, burned)


def test_fifty_parallel_wrong_passwords_for_one_account(
    server: LiveServer, verifications: _Verifications
) -> None:
    logged_in(server)
    before = verifications.calls
    # Each guess from its own address, so only the per-account counter can hold them back.
    attempts = [(ADMIN_EMAIL, f"wrong-guess-{i}", f"203.0.113.{i + 1}") for i in range(PARALLEL)]
    statuses = _race(server, attempts)
    performed = verifications.calls - before
    assert Counter(statuses) == {400: 10, 429: PARALLEL - 10}
    assert performed <= 10
    # The 51st attempt, with the right password, is refused without being checked.
    client = Client(server)
    client.csrf = client.get("/login").csrf_field()
    right = client.post(
        "/login",
        {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.99"},
    )
    assert right.status == 429 and "op_session" not in client.cookies
    assert verifications.calls - before == performed
    print(
        f"\nS06 (one account): {PARALLEL} parallel guesses, {performed} verifications, "
        f"{statuses.count(429)} x 429"
    )


def test_fifty_parallel_guesses_from_one_address(server: LiveServer, verifications: _Verifications) -> None:
    logged_in(server)
    before = verifications.calls
    # Every guess for another (mostly unknown) account from the same address: the per-IP counter.
    attempts = [(f"user{i}@example.com", "some-password", "192.0.2.1") for i in range(PARALLEL)]
    statuses = _race(server, attempts)
    performed = verifications.calls - before
    assert Counter(statuses) == {400: 10, 429: PARALLEL - 10}
    assert performed <= 10
    print(f"\nS06 (one address): {PARALLEL} parallel guesses, {performed} verifications")
