"""Web origins: which pages may open a visitor's chat, and in which pages it may be embedded."""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


class OriginError(ValueError):
    """Not a usable origin; the message says why."""


def normalise_origin(value: str) -> str:
    """`scheme://host[:port]` in lower case without a default port; refuses paths and the like."""
    parts = urlsplit(value.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise OriginError(f"{value!r} is not an origin like https://example.org")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise OriginError(f"{value!r} must be an origin only: no path, query or user")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError as exc:
        raise OriginError(f"{value!r} has an invalid port") from exc
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def own_origin(public_url: str) -> str:
    return normalise_origin(f"{urlsplit(public_url).scheme}://{urlsplit(public_url).netloc}")


def origin_allowed(origin: str | None, allowed: frozenset[str]) -> bool:
    """A missing Origin is allowed: browsers always send one on WebSocket handshakes and on
    cross-site POSTs, so its absence means a non-browser client (which could send any Origin
    it liked anyway). `null` (sandboxed frames, local files) and anything unlisted is refused.
    """
    if origin is None:
        return True
    try:
        return normalise_origin(origin) in allowed
    except OriginError:
        return False
