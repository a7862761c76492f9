"""Response classes whose media type the OpenAPI document declares."""

from __future__ import annotations

from starlette.responses import Response


class CsvResponse(Response):
    """A CSV file (UTF-8): declared as text/csv, not JSON, in the OpenAPI document."""

    # Starlette adds "; charset=utf-8" to the header itself.
    media_type = "text/csv"
