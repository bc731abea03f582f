"""Fast random UUIDs for row ids.

uuid.uuid4() reads os.urandom on every call, which costs ~50 µs on some VMs (measured here: the top
self-time of the ingest path). Row ids need uniqueness, not secrecy, so a PRNG seeded once from
os.urandom is enough; the version (4) and variant bits are set as RFC 9562 requires.
"""

from __future__ import annotations

import os
import random
import uuid

_rng = random.Random(os.urandom(32))
_VERSION_MASK = ~(0xF000 << 64) & ~(0xC000 << 48)
_VERSION_BITS = (0x4000 << 64) | (0x8000 << 48)


def uuid4() -> uuid.UUID:
    """A version-4 UUID from the process PRNG (not for secrets)."""
    return uuid.UUID(int=(_rng.getrandbits(128) & _VERSION_MASK) | _VERSION_BITS)


def reseed() -> None:
    """Call in a forked child so parent and child never produce the same sequence."""
    _rng.seed(os.urandom(32))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reseed)
