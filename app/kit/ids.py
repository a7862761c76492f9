"""Random identifiers and tokens; nothing here is derived from anything about a person."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid


def new_chat_id() -> str:
    """128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def new_token() -> str:
    """256 random bits for resume tokens, session tokens and similar secrets."""
    return secrets.token_urlsafe(32)


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()


def token_digest(token: str) -> str:
    """What we keep of a token: its SHA-256, so a copy of the store cannot be replayed."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(token: str, digest: str) -> bool:
    return hmac.compare_digest(token_digest(token), digest)
