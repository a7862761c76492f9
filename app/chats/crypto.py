"""Crypto-shredding of transcripts: AES-256-GCM under a random key per chat.

Each chat has its own 256-bit data key. The broker only ever holds that key wrapped (itself
AES-256-GCM encrypted) by a key-encryption key (KEK) from the configuration, which is never
written to the broker, the database or a log. Each entry gets a fresh random 96-bit nonce,
and its associated data binds it to its chat and sequence number, so ciphertexts cannot be
moved between chats or reordered. Deleting the wrapped key makes every ciphertext of the chat
unreadable, wherever copies of it went.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections import OrderedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.broker.base import CHAT_MAX_LIFETIME, Broker

NONCE_BYTES = 12
KEY_BYTES = 32
NONCE_BATCH = 256
# How many chats' unwrapped keys a process keeps in memory (they are forgotten on shred).
KEY_CACHE_SIZE = 20_000


class TranscriptKeyError(Exception):
    """Base of the problems below."""


class UnknownKekError(TranscriptKeyError):
    """A wrapped key names a KEK this process does not have."""


class TamperedError(TranscriptKeyError):
    """A ciphertext or a wrapped key failed authentication."""


class MissingKeyError(TranscriptKeyError):
    """The chat's key is gone: the transcript was shredded."""


class KekConfigError(ValueError):
    """The configured KEKs cannot be used; the message says why."""


def generate_kek(kek_id: str) -> str:
    """A new KEK in the configuration format `id:base64`."""
    return f"{kek_id}:{base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()}"


def parse_keks(value: str) -> list[tuple[str, bytes]]:
    """`id:base64[,id:base64...]`; the first one wraps new chat keys, all of them unwrap."""
    keks: list[tuple[str, bytes]] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        kek_id, sep, encoded = item.partition(":")
        if not sep or not kek_id or not kek_id.isalnum() or len(kek_id) > 16:
            raise KekConfigError(
                "each KEK must look like 'id:base64key' with a short alphanumeric id"
            )
        try:
            key = base64.urlsafe_b64decode(encoded.encode())
        except (binascii.Error, ValueError) as exc:
            raise KekConfigError(f"KEK {kek_id!r} is not valid base64") from exc
        if len(key) != KEY_BYTES:
            raise KekConfigError(f"KEK {kek_id!r} must be 32 bytes (256 bits)")
        if any(existing == kek_id for existing, _ in keks):
            raise KekConfigError(f"KEK id {kek_id!r} appears twice")
        keks.append((kek_id, key))
    if not keks:
        raise KekConfigError("no KEK is configured (LYKTA_KEKS)")
    return keks


class KeyRing:
    """The KEKs of this deployment."""

    def __init__(self, keks: list[tuple[str, bytes]]) -> None:
        self._active_id = keks[0][0]
        self._keks = {kek_id: AESGCM(key) for kek_id, key in keks}

    @property
    def active_id(self) -> str:
        return self._active_id

    def wrap(self, data_key: bytes, purpose: str = "dek") -> str:
        """Seal a key for storage; `purpose` keeps keys of different uses apart."""
        nonce = os.urandom(NONCE_BYTES)
        aad = f"lykta-{purpose}|{self._active_id}".encode()
        sealed = self._keks[self._active_id].encrypt(nonce, data_key, aad)
        return f"{self._active_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def unwrap(self, wrapped: str, purpose: str = "dek") -> bytes:
        kek_id, _, encoded = wrapped.partition(":")
        kek = self._keks.get(kek_id)
        if kek is None:
            raise UnknownKekError(f"the key was wrapped by KEK {kek_id!r}, which is not configured")
        try:
            raw = base64.urlsafe_b64decode(encoded.encode())
            aad = f"lykta-{purpose}|{kek_id}".encode()
            return kek.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise TamperedError("the wrapped key failed authentication") from exc


def key_name(chat_id: str) -> str:
    return f"dek:{chat_id}"


def _aad(chat_id: str, seq: int) -> bytes:
    return f"lykta-entry|{chat_id}|{seq}".encode()


# What the chat's key is stretched into for keyed hashes (kept apart from sealing).
_DIGEST_LABEL = b"lykta-digest"


class ChatKey:
    """A chat's unwrapped data key: seals and opens its entries, each bound to the chat and its
    sequence number (nothing here waits for anything)."""

    __slots__ = ("_aead", "_chat_id", "_digest_key", "_nonces")

    def __init__(self, chat_id: str, key: bytes, nonces: _Nonces) -> None:
        self._chat_id = chat_id
        self._aead = AESGCM(key)
        self._nonces = nonces
        self._digest_key = hmac.new(key, _DIGEST_LABEL, hashlib.sha256).digest()

    def digest(self, value: str) -> str:
        """A keyed hash of `value` under a key derived from this chat's key: what a client
        chose (a message's id) is stored as this, useless to test guesses against without
        the KEK, and once the key is shredded, with it. Keyed BLAKE2b (a MAC by design):
        a fifth of HMAC-SHA256's cost, which is on every message's path."""
        return hashlib.blake2b(value.encode(), key=self._digest_key, digest_size=16).hexdigest()

    def seal(self, seq: int, plain: bytes) -> bytes:
        nonce = self._nonces.take()
        return nonce + self._aead.encrypt(nonce, plain, _aad(self._chat_id, seq))

    def open(self, seq: int, sealed: bytes) -> bytes:
        """Raises TamperedError when the entry does not authenticate (for this chat and seq)."""
        try:
            return self._aead.decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(self._chat_id, seq)
            )
        except InvalidTag as exc:
            raise TamperedError(f"entry {seq} of a chat failed authentication") from exc


class _Nonces:
    """Random nonces, taken from a larger read of the system's CSPRNG: one system call per
    NONCE_BATCH entries instead of one per entry."""

    __slots__ = ("_at", "_pool")

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def take(self) -> bytes:
        at = self._at
        if at >= len(self._pool):
            self._pool, at = os.urandom(NONCE_BYTES * NONCE_BATCH), 0
        self._at = at + NONCE_BYTES
        return self._pool[at : at + NONCE_BYTES]


class EncryptedCodec:
    """Chat keys for the transcript (see the module docstring): `cached` is what this process
    holds already, `load` fetches the wrapped key from the broker when it does not."""

    def __init__(self, broker: Broker, keyring: KeyRing) -> None:
        self._broker = broker
        self._keyring = keyring
        self._cache: OrderedDict[str, ChatKey] = OrderedDict()
        self._nonces = _Nonces()

    async def begin(self, chat_id: str) -> None:
        """Give a new chat its key. Only `begin` creates keys, so nothing sealed after a shred
        can bring a chat's key back."""
        wrapped = self._keyring.wrap(AESGCM.generate_key(bit_length=256))
        await self._broker.set_value_if_absent(key_name(chat_id), wrapped, CHAT_MAX_LIFETIME)

    def cached(self, chat_id: str) -> ChatKey | None:
        """The chat's key if this process holds it (nothing is waited for)."""
        return self._cache.get(chat_id)

    async def load(self, chat_id: str) -> ChatKey:
        """The chat's key; MissingKeyError once it is shredded (or was never begun)."""
        cached = self._cache.get(chat_id)
        if cached is not None:
            return cached
        wrapped = await self._broker.get_value(key_name(chat_id))
        if wrapped is None:
            raise MissingKeyError("the chat's key is gone")
        key = ChatKey(chat_id, self._keyring.unwrap(wrapped), self._nonces)
        self._cache[chat_id] = key
        if len(self._cache) > KEY_CACHE_SIZE:
            self._cache.popitem(last=False)
        return key

    async def seal(self, chat_id: str, seq: int, plain: bytes) -> bytes:
        return (await self.load(chat_id)).seal(seq, plain)

    async def open(self, chat_id: str, seq: int, sealed: bytes) -> bytes:
        return (await self.load(chat_id)).open(seq, sealed)

    async def retain(self, chat_id: str, seconds: float) -> None:
        """The key leaves the broker by itself after `seconds`, even with no process alive."""
        await self._broker.expire_value(key_name(chat_id), seconds)

    async def forget(self, chat_id: str) -> None:
        self._cache.pop(chat_id, None)
        await self._broker.delete_value(key_name(chat_id))

    async def has_key(self, chat_id: str) -> bool:
        """Whether the chat still has its key in the broker (it may have expired by itself);
        when it has not, this process forgets its unwrapped copy too."""
        if await self._broker.get_value(key_name(chat_id)) is not None:
            return True
        self._cache.pop(chat_id, None)
        return False
