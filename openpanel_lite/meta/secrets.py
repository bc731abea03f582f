"""Client secrets (OpenPanel's scrypt "<salt>.<hex>" format) and dashboard passwords (argon2id).

Plaintext secrets and passwords are only ever hashed or compared here; nothing stores or logs them.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from openpanel_lite.meta.errors import MetaError

# OpenPanel (openpanel-facts §4): scrypt with Node's defaults, salt = 32 hex chars used as UTF-8 text.
SCRYPT_N = 16384
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
_SALT_HEX_LEN = 32

PASSWORD_MIN_LEN = 8
PASSWORD_MAX_LEN = 255

# OWASP argon2id minimum, the same parameters OpenPanel uses (reliability.md §5 "Password hashing").
_PASSWORDS = PasswordHasher(
    time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when an email is unknown, so a miss costs as much time as a wrong password."""
    return _PASSWORDS.hash("openpanel-lite timing equaliser")


def new_client_secret() -> str:
    """``sec_`` + 20 hex chars (10 random bytes), OpenPanel's format."""
    return "sec_" + secrets.token_hex(10)


def _scrypt_hex(secret: str, salt: str) -> str:
    return hashlib.scrypt(
        secret.encode(), salt=salt.encode(), n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_DKLEN
    ).hex()


def hash_secret(secret: str, *, salt: str | None = None) -> str:
    """``"<32-hex salt>.<64-hex scrypt>"``, byte-compatible with OpenPanel's stored client secrets."""
    if salt is None:
        salt = secrets.token_hex(16)
    return f"{salt}.{_scrypt_hex(secret, salt)}"


def verify_secret(secret: str, stored: str) -> bool:
    """True when ``secret`` hashes to ``stored``; a malformed ``stored`` value is simply False."""
    salt, sep, expected = stored.partition(".")
    if not sep or len(salt) != _SALT_HEX_LEN or len(expected) != SCRYPT_DKLEN * 2:
        return False
    return hmac.compare_digest(_scrypt_hex(secret, salt), expected)


def check_password_length(password: str) -> None:
    if not PASSWORD_MIN_LEN <= len(password) <= PASSWORD_MAX_LEN:
        raise MetaError(f"password must be {PASSWORD_MIN_LEN} to {PASSWORD_MAX_LEN} characters long")


def hash_password(password: str) -> str:
    """argon2id PHC string (``$argon2id$v=19$m=19456,t=2,p=1$…``); refuses lengths outside 8..255."""
    check_password_length(password)
    return _PASSWORDS.hash(password)


def verify_password(password: str, stored: str) -> bool:
    # Over-long input is refused before hashing so it cannot be used to burn CPU.
    if len(password) > PASSWORD_MAX_LEN:
        return False
    try:
        return _PASSWORDS.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def burn_password_check(password: str) -> None:
    """Spend the time of one verification, for code paths where no hash exists (unknown user)."""
    verify_password(password, _dummy_hash())


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with other parameters than today's; rehash at the next login."""
    try:
        return _PASSWORDS.check_needs_rehash(stored)
    except InvalidHashError:
        return True
