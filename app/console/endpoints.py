"""The staff console's pages and files: `/console`, `/console/static/...` and `/enrol`.

Everything is served from `app/console/static/` by Lykta itself, under the strict page CSP of
app/web/headers.py (no inline scripts or styles, nothing from a third party). The pages hold
no secrets and no data, so anyone may fetch them; the API behind them checks who asks.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from app.staff.permissions import public

STATIC = Path(__file__).resolve().parent / "static"

# Only these kinds of file are served; anything else under static/ is not ours to hand out.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
}
# Short private caching would save little on a LAN-sized app and make deploys confusing.
NO_STORE = {"Cache-Control": "no-store"}

router = APIRouter(include_in_schema=False)


def _file(relative: str) -> FileResponse:
    """A file under static/, refusing anything that resolves outside it (traversal, links)."""
    if not relative or "\\" in relative or "\x00" in relative or len(relative) > 200:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    path = (STATIC / relative).resolve()
    if not path.is_relative_to(STATIC) or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    kind = CONTENT_TYPES.get(path.suffix.lower())
    if kind is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    return FileResponse(path, media_type=kind, headers=NO_STORE)


@router.get("/console", dependencies=[public()])
async def console_page() -> FileResponse:
    """The console's single page; views load as ES modules from /console/static/."""
    return _file("index.html")


@router.get("/console/static/{relative:path}", dependencies=[public()])
async def console_static(relative: str) -> FileResponse:
    return _file(relative)


@router.get("/enrol", dependencies=[public()])
async def enrol_page() -> FileResponse:
    """The enrolment page; its token is in the URL fragment, which never reaches a server."""
    return _file("enrol.html")
