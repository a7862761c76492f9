"""Every route of the app, however FastAPI nests included routers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from starlette.routing import BaseRoute, Route, WebSocketRoute


def walk(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        nested: Any = getattr(route, "original_router", None)
        if nested is not None:
            yield from walk(nested.routes)
        else:
            yield route


def http_routes(routes: Sequence[BaseRoute]) -> list[Route]:
    return [r for r in walk(routes) if isinstance(r, Route)]


def websocket_routes(routes: Sequence[BaseRoute]) -> list[WebSocketRoute]:
    return [r for r in walk(routes) if isinstance(r, WebSocketRoute)]
