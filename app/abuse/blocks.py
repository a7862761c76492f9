"""Blocks: a counsellor refuses new chats from an abusive visitor's keyed hash for a while.

A block is one value in the broker, named by the keyed hash (never an address), that expires
by itself; nothing about it is written to SQL.
"""

from __future__ import annotations

from app.abuse.ratelimit import ClientTag
from app.broker.base import Broker


def block_name(tag: str) -> str:
    return f"block:{tag}"


class Blocks:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def block(self, tag: str, seconds: float) -> None:
        await self._broker.set_value(block_name(tag), "1", seconds)

    async def is_blocked(self, tag: ClientTag) -> bool:
        for value in tag.all:
            if await self._broker.get_value(block_name(value)) is not None:
                return True
        return False
