"""Continuity codes as pure code: the words, their normal form, the keyed hash, the sealed note.

No I/O but reading the word lists; no clock. See docs/continuity.md for the reasoning.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import os
import secrets
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

WORDS_DIR = Path(__file__).parent / "words"
# A code has at least this much entropy (bits), whatever the size of its word list.
MIN_BITS = 50
# A language without a good word list gets digits instead (language-neutral, typed on any
# keyboard): four groups of four, 16 digits, 53.2 bits.
DIGIT_GROUPS = 4
GROUP_DIGITS = 4
CODE_DIGITS = DIGIT_GROUPS * GROUP_DIGITS
# What a visitor may type: generous for spacing and punctuation, bounded for the hash.
MAX_CODE_CHARS = 200
MAX_CODE_WORDS = 12
MAX_NOTE_CHARS = 1000
SALT_BYTES = 16
NONCE_BYTES = 12
_HASH_KEY_LABEL = b"lykta continuity code digest v1"
_SEAL_VERSION = 1
# version, iterations, memory (KiB), parallelism: stored before the ciphertext so that
# changing the settings later never makes older notes unreadable.
_HEADER = struct.Struct(">BBIB")


@functools.cache
def word_list(language: str) -> tuple[str, ...]:
    """The words for a language (its base, e.g. "sv" for "sv-FI"); empty when the language
    has no list, and its codes are digits."""
    base = language.split("-")[0].lower()
    path = WORDS_DIR / f"{base}.txt"
    if not base.isalpha() or not path.is_file():
        return ()
    return tuple(w for w in path.read_text("utf-8").split() if w)


def word_languages() -> list[str]:
    """The languages whose codes are words (the rest get digit groups)."""
    return sorted(p.stem for p in WORDS_DIR.glob("*.txt") if "-" not in p.stem)


def words_needed(list_size: int) -> int:
    return math.ceil(MIN_BITS / math.log2(list_size))


def code_bits(language: str) -> float:
    words = word_list(language)
    if not words:
        return CODE_DIGITS * math.log2(10)
    return words_needed(len(words)) * math.log2(len(words))


def new_code(language: str) -> str:
    """Random words from the language's list, enough for MIN_BITS; or digit groups."""
    words = word_list(language)
    if not words:
        return " ".join(
            f"{secrets.randbelow(10**GROUP_DIGITS):0{GROUP_DIGITS}d}" for _ in range(DIGIT_GROUPS)
        )
    return " ".join(secrets.choice(words) for _ in range(words_needed(len(words))))


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _digits(folded: str) -> str | None:
    """A digit code's digits (any script's: Arabic-Indic, Thai...), as ASCII; None if letters
    are mixed in or the count is not a code's."""
    out: list[str] = []
    for ch in folded:
        if ch.isalpha():
            return None
        value = unicodedata.decimal(ch, None)
        if value is not None:
            out.append(str(value))
    return "".join(out) if len(out) == CODE_DIGITS else None


def normalise(code: str) -> str | None:
    """The form a code is hashed in, whatever the page's language: case, diacritics, spacing
    and punctuation do not count (å, ä and ö match a, a and o); a digit code is its 16 digits
    however grouped. None when it cannot be a code."""
    if len(code) > MAX_CODE_CHARS:
        return None
    folded = _fold(code)
    if any(unicodedata.decimal(ch, None) is not None for ch in folded):
        return _digits(folded)
    words: list[str] = []
    current: list[str] = []
    for ch in folded:
        if ch.isalpha():
            current.append(ch)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    if not words or len(words) > MAX_CODE_WORDS:
        return None
    return " ".join(words)


def digest_key(secret_key: str) -> bytes:
    """The HMAC key for code digests, derived from the deployment's secret key."""
    return hmac.new(secret_key.encode(), _HASH_KEY_LABEL, hashlib.sha256).digest()


# The lookup stretches the code with Argon2id (OWASP's minimum: 19 MiB, two passes, about
# 15 ms) before the HMAC, so that even someone holding the database *and* the secret key pays
# a memory-hard computation for every guess. Fixed: changing them would orphan every code.
LOOKUP_KDF_MEMORY_KIB = 19 * 1024
LOOKUP_KDF_ITERATIONS = 2


def digest(key: bytes, normalised: str) -> str:
    """HMAC-SHA256 under `key` of the code stretched by Argon2id (salted per deployment).

    Slow on purpose (milliseconds): call it off the event loop."""
    salt = hmac.new(key, b"lookup salt", hashlib.sha256).digest()[:16]
    stretched = hash_secret_raw(
        secret=normalised.encode(),
        salt=salt,
        time_cost=LOOKUP_KDF_ITERATIONS,
        memory_cost=LOOKUP_KDF_MEMORY_KIB,
        parallelism=1,
        hash_len=32,
        type=Type.ID,
    )
    return hmac.new(key, stretched, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost: memory-hard, so guessing codes offline costs memory, not just time."""

    iterations: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 1


@dataclass(frozen=True, slots=True)
class SealedNote:
    salt: bytes
    nonce: bytes
    sealed: bytes


def _note_key(normalised: str, salt: bytes, params: KdfParams) -> bytes:
    return hash_secret_raw(
        secret=normalised.encode(),
        salt=salt,
        time_cost=params.iterations,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=32,
        type=Type.ID,
    )


def seal_note(note: str, normalised: str, code_digest: str, params: KdfParams) -> SealedNote:
    """AES-256-GCM under a key derived from the code; bound to its digest. Slow on purpose."""
    salt = os.urandom(SALT_BYTES)
    nonce = os.urandom(NONCE_BYTES)
    header = _HEADER.pack(_SEAL_VERSION, params.iterations, params.memory_kib, params.parallelism)
    key = _note_key(normalised, salt, params)
    body = AESGCM(key).encrypt(nonce, note.encode(), header + code_digest.encode())
    return SealedNote(salt, nonce, header + body)


def open_note(sealed: SealedNote, normalised: str, code_digest: str) -> str | None:
    """The note, or None if it does not authenticate (wrong code, or tampered with)."""
    if len(sealed.sealed) < _HEADER.size:
        return None
    header, body = sealed.sealed[: _HEADER.size], sealed.sealed[_HEADER.size :]
    version, iterations, memory_kib, parallelism = _HEADER.unpack(header)
    if version != _SEAL_VERSION:
        return None
    key = _note_key(normalised, sealed.salt, KdfParams(iterations, memory_kib, parallelism))
    try:
        plain = AESGCM(key).decrypt(sealed.nonce, body, header + code_digest.encode())
    except InvalidTag:
        return None
    return plain.decode()
