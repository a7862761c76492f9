"""The visitor's files and pages, compressed once and served in the encoding the client takes.

A visitor on a slow phone network pays for every byte, so the widget's files are compressed
with Brotli and gzip when they are read at start, and each distinct page the first time its
exact bytes are served; no request compresses what an earlier one already did.

Only responses that carry no secret are compressed here: the widget's files are the same for
everyone, and the pages hold text a visitor (or someone sending them a link) may choose, such
as the exit address, but no token, cookie or CSRF value. Compressing a secret beside chosen
text would let the compressed length reveal the secret (BREACH); API answers and staff pages
are therefore never compressed, here or by the proxy in front (config/deploy/nginx.conf).
"""

from __future__ import annotations

import gzip
from collections import OrderedDict
from dataclasses import dataclass

import brotli

# Files read at start get the slowest, smallest setting; pages are compressed while a request
# waits, so they get one that costs well under a millisecond for the chat page.
STATIC_BROTLI_QUALITY = 11
PAGE_BROTLI_QUALITY = 5
# Distinct pages kept compressed (a page differs by line, language and the embedder's exit
# address and colour: a handful per deployment; anything beyond is compressed again).
PAGE_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Encoded:
    """One body in each encoding worth sending; an encoding that does not shrink it is None."""

    identity: bytes
    gzip: bytes | None
    br: bytes | None


def encode(body: bytes, brotli_quality: int = STATIC_BROTLI_QUALITY) -> Encoded:
    zipped = gzip.compress(body, 9, mtime=0)
    squeezed = brotli.compress(body, quality=brotli_quality)
    return Encoded(
        identity=body,
        gzip=zipped if len(zipped) < len(body) else None,
        br=squeezed if len(squeezed) < len(body) else None,
    )


def accepted(header: str) -> set[str]:
    """The content codings an Accept-Encoding header allows (a zero q-value refuses one)."""
    taken: set[str] = set()
    refused: set[str] = set()
    for item in header.lower().split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        (taken if q > 0 else refused).add(name.strip())
    if "*" in taken:
        taken |= {"br", "gzip"} - refused
    return taken - refused


def pick(encoded: Encoded, accept_encoding: str) -> tuple[bytes, str | None]:
    """The smallest body the client accepts, and its Content-Encoding (None: as it is)."""
    codings = accepted(accept_encoding) if accept_encoding else set()
    if encoded.br is not None and "br" in codings:
        return encoded.br, "br"
    if encoded.gzip is not None and "gzip" in codings:
        return encoded.gzip, "gzip"
    return encoded.identity, None


class PageCache:
    """Pages compressed once per distinct body, the least recently served dropped first."""

    def __init__(self, size: int = PAGE_CACHE_SIZE) -> None:
        self.size = size
        self._pages: OrderedDict[bytes, Encoded] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pages)

    def get(self, body: bytes) -> Encoded:
        found = self._pages.get(body)
        if found is None:
            found = encode(body, PAGE_BROTLI_QUALITY)
            self._pages[body] = found
            if len(self._pages) > self.size:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(body)
        return found
