"""Password hashing (argon2id) and API tokens; the library's exceptions stop here."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TOKEN_PREFIX = "slf_"

_hasher = PasswordHasher()  # RFC 9106 low-memory profile: argon2id, 64 MiB, 3 passes


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(stored_hash: str, password: str) -> bool:
    """True when `password` is the one `stored_hash` was made from; False for any mismatch or a
    damaged hash (a login then fails instead of crashing)."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_api_token() -> str:
    """256 random bits, URL-safe; high entropy, so a plain SHA-256 is a safe stored form."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_session_token() -> str:
    return secrets.token_urlsafe(32)
