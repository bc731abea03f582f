"""R15 spool-state-machine: Hypothesis drives accept (with SDK retries), flush, flush against a failing
store (before and after its commit), checkpoint, prune, a crash at every writer fault step, a crash
that also loses the DuckDB WAL, and clean restarts, in any order (the machine is
tests/test_writer.py's SpoolMachine). After every step: acked ⊆ store ∪ spool, no id twice in the
store, and prune never removed a record above the last checkpoint's watermark.

Short form (default suite): 10 sequences of up to 20 steps. Long form (-m reliability): 10,000
sequences of up to 20 steps (the count reliability.md §7 asks for).
"""

from __future__ import annotations

import time

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from tests.reliability.crash_support import long_form
from tests.test_writer import SpoolMachine


class CountingMachine(SpoolMachine):
    sequences = 0
    steps = 0

    def __init__(self) -> None:
        super().__init__()
        CountingMachine.sequences += 1

    def check_invariants(self, settings: object, output: object, runtimes: object) -> None:  # type: ignore[override]
        CountingMachine.steps += 1
        super().check_invariants(settings, output, runtimes)  # type: ignore[arg-type]


def run(examples: int) -> None:
    CountingMachine.sequences = CountingMachine.steps = 0
    began = time.monotonic()
    run_state_machine_as_test(
        CountingMachine,
        settings=settings(max_examples=examples, stateful_step_count=20, deadline=None, database=None),
    )
    assert CountingMachine.sequences >= examples
    print(
        f"\nR15: {CountingMachine.sequences} sequences, {CountingMachine.steps} invariant checks, "
        f"{time.monotonic() - began:.0f} s"
    )


def test_r15_spool_state_machine_short() -> None:
    run(10)


@pytest.mark.reliability
def test_r15_spool_state_machine(request: pytest.FixtureRequest) -> None:
    long_form(request, "R15")
    run(10_000)
