"""Per-chat AES-256-GCM with wrapped keys: binding, tampering, rotation, shredding."""

from __future__ import annotations

import base64

import pytest

from app.broker.memory import MemoryBroker
from app.chats.crypto import (
    EncryptedCodec,
    KekConfigError,
    KeyRing,
    MissingKeyError,
    TamperedError,
    UnknownKekError,
    generate_kek,
    key_name,
    parse_keks,
)
from app.chats.entries import Entry, EntryKind
from app.chats.plan import NEEDS_KEY, entry_of
from app.kit import jsonutil


def ring(*ids: str) -> KeyRing:
    return KeyRing(parse_keks(",".join(generate_kek(i) for i in ids)))


async def test_round_trip_and_no_plaintext_in_the_broker() -> None:
    broker = MemoryBroker()
    codec = EncryptedCodec(broker, ring("a"))
    await codec.begin("chat-1")
    sealed = await codec.seal("chat-1", 1, b"a secret canary")
    assert b"canary" not in sealed
    assert await codec.open("chat-1", 1, sealed) == b"a secret canary"
    wrapped = await broker.get_value(key_name("chat-1"))
    assert wrapped is not None and wrapped.startswith("a:")
    # Each entry has its own nonce: the same text never seals the same way.
    assert await codec.seal("chat-1", 2, b"x") != await codec.seal("chat-1", 2, b"x")


async def test_ciphertexts_are_bound_to_their_chat_and_number() -> None:
    broker = MemoryBroker()
    codec = EncryptedCodec(broker, ring("a"))
    await codec.begin("chat-1")
    await codec.begin("chat-2")
    sealed = await codec.seal("chat-1", 1, b"first")
    await codec.seal("chat-2", 1, b"other chat")
    with pytest.raises(TamperedError):
        await codec.open("chat-1", 2, sealed)  # reordered
    with pytest.raises(TamperedError):
        await codec.open("chat-2", 1, sealed)  # moved to another chat
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(TamperedError):
        await codec.open("chat-1", 1, flipped)


async def test_an_entry_event_from_another_process_is_opened_raw_or_as_base64() -> None:
    """The Redis broker carries a sealed entry raw; a process of the earlier version sent it
    base64-encoded (a rolling upgrade). Both open; anything tampered with opens as nothing."""
    broker = MemoryBroker()
    codec = EncryptedCodec(broker, ring("a"))
    await codec.begin("chat-1")
    entry = Entry(EntryKind.message, 1.0, sender="visitor", text="hej")
    sealed = await codec.seal("chat-1", 3, jsonutil.dumpb(entry.to_dict()))
    event = {"type": "entry", "chat_id": "chat-1", "seq": 3}
    key = await codec.load("chat-1")
    assert entry_of({**event, "sealed": sealed}, key) == entry
    as_text = base64.b64encode(sealed).decode()
    assert entry_of({**event, "sealed": as_text}, key) == entry
    assert entry_of({**event, "sealed": sealed[:-1] + b"x"}, key) is None
    assert entry_of({**event, "sealed": "not base64!"}, key) is None
    assert entry_of({**event, "seq": 4, "sealed": sealed}, key) is None
    # Without the chat's key at hand, it is not read yet: the caller fetches the key first.
    assert entry_of({**event, "sealed": sealed}, None) is NEEDS_KEY


async def test_a_tampered_wrapped_key_is_refused() -> None:
    broker = MemoryBroker()
    keys = ring("a")
    await EncryptedCodec(broker, keys).begin("chat-1")
    wrapped = await broker.get_value(key_name("chat-1"))
    assert wrapped is not None
    await broker.set_value(key_name("chat-1"), wrapped[:-4] + "AAAA", 60)
    with pytest.raises(TamperedError):
        await EncryptedCodec(broker, keys).open("chat-1", 1, b"\x00" * 40)


async def test_rotation_old_chats_readable_new_chats_under_the_new_kek() -> None:
    broker = MemoryBroker()
    old_kek = generate_kek("old")
    before = EncryptedCodec(broker, KeyRing(parse_keks(old_kek)))
    await before.begin("chat-old")
    sealed_old = await before.seal("chat-old", 1, b"before rotation")
    rotated = EncryptedCodec(broker, KeyRing(parse_keks(generate_kek("new") + "," + old_kek)))
    assert await rotated.open("chat-old", 1, sealed_old) == b"before rotation"
    await rotated.begin("chat-new")
    await rotated.seal("chat-new", 1, b"after")
    new_wrapped = await broker.get_value(key_name("chat-new"))
    assert new_wrapped is not None and new_wrapped.startswith("new:")
    # A process without the old KEK cannot unwrap old chats.
    without_old = EncryptedCodec(broker, ring("new"))
    with pytest.raises(UnknownKekError):
        await without_old.open("chat-old", 1, sealed_old)


async def test_forgetting_the_key_shreds_every_copy() -> None:
    broker = MemoryBroker()
    codec = EncryptedCodec(broker, ring("a"))
    await codec.begin("chat-1")
    sealed = await codec.seal("chat-1", 1, b"gone soon")
    await codec.forget("chat-1")
    assert await broker.get_value(key_name("chat-1")) is None
    with pytest.raises(MissingKeyError):
        await codec.open("chat-1", 1, sealed)
    with pytest.raises(MissingKeyError):
        await EncryptedCodec(broker, ring("a")).open("chat-1", 1, sealed)
    # Nothing sealed after the shred brings a key back.
    with pytest.raises(MissingKeyError):
        await codec.seal("chat-1", 2, b"too late")
    assert await broker.get_value(key_name("chat-1")) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "no KEK"),
        ("nokey", "id:base64key"),
        ("a:not-base64!!", "base64"),
        ("a:c2hvcnQ=", "32 bytes"),
    ],
)
def test_bad_kek_configuration_is_explained(value: str, problem: str) -> None:
    with pytest.raises(KekConfigError, match=problem):
        parse_keks(value)


def test_duplicate_kek_ids_are_refused() -> None:
    kek = generate_kek("a")
    with pytest.raises(KekConfigError, match="twice"):
        parse_keks(f"{kek},{kek}")
