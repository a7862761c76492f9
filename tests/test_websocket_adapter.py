"""app/web/websocket.py reaches inside uvicorn and websockets: only with the versions it was
written for, and never as the only way a frame can go."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from app.cli import uvicorn_options
from app.settings import Settings
from app.web import websocket
from app.web.websocket import CoalescingWebSocketProtocol, unsupported


def test_the_installed_uvicorn_and_websockets_are_versions_the_adapter_was_written_for() -> None:
    # Failing here means an upgrade: read what app/web/websocket.py uses of the new versions
    # (and run `make bench`) before widening WRITTEN_FOR.
    assert unsupported() == [], (
        f"uvicorn {version('uvicorn')}, websockets {version('websockets')}: "
        f"app/web/websocket.py was written for {websocket.WRITTEN_FOR}"
    )


def test_the_server_runs_the_adapter_only_where_it_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    assert uvicorn_options(Settings())["ws"] is CoalescingWebSocketProtocol
    # Switched off: uvicorn's own protocol, every frame the ASGI way.
    assert uvicorn_options(Settings(websocket_adapter=False))["ws"] == "websockets-sansio"
    # An installed version it was not written for: the same, whatever the setting says.
    monkeypatch.setitem(websocket.WRITTEN_FOR, "uvicorn", ((0, 1), (0, 2)))
    assert unsupported() == [f"uvicorn {version('uvicorn')}"]
    assert uvicorn_options(Settings())["ws"] == "websockets-sansio"
