"""Argon2id password hashing (argon2-cffi's RFC 9106 low-memory profile)."""

from __future__ import annotations

import gzip
import string
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()

# Verifying against this keeps sign-in timing the same whether or not the account exists.
_DUMMY_HASH = _hasher.hash("lykta-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


# 19,646 common passwords (Royce Williams' list, as shipped by Django under the BSD licence).
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt.gz")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as file:
        return frozenset(line.strip().casefold() for line in file if line.strip())


def password_problem(
    password: str, *, min_length: int, personal: tuple[str, ...] = ()
) -> str | None:
    """Why a new password is refused, or None. Length counts characters, not bytes."""
    if len(password) < min_length:
        return f"use at least {min_length} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"use at most {MAX_PASSWORD_LENGTH} characters"
    folded = password.casefold()
    common = common_passwords()
    # "password1234!" and "qwertyqwertyqwerty" are as weak as what they are made of.
    core = folded.rstrip(string.digits + string.punctuation + " ")
    stems = {folded, core, folded.strip(string.digits + string.punctuation + " ")}
    if any(stem in common for stem in stems) or _repeats_common(core, common):
        return "this password is on the list of common passwords"
    if len(set(folded)) < 5:
        return "use more different characters"
    if folded.isdigit():
        return "use more than digits"
    for word in (*personal, "lykta"):
        if len(word) >= 3 and word.casefold() in folded:
            return "the password must not contain your name, username or 'lykta'"
    return None


MAX_PASSWORD_LENGTH = 1024


def _repeats_common(text: str, common: frozenset[str]) -> bool:
    for size in range(1, len(text) // 2 + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return size < 4 or text[:size] in common
    return False
