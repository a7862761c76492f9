"""`/`: in development a page that leads to the console and the chat; in production nothing.

A deployment's root says nothing about it (no name, version or line): whoever opens it, or
finds it in a browser's history, learns only that nothing is there. Visitors come through an
NGO's site or its chat page, staff through `/console`. The development page follows the same
strict page CSP as every page (app/web/headers.py): no script, no inline style.
"""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from app.deps import RuntimeDep
from app.staff.permissions import public

router = APIRouter(include_in_schema=False)

DEVELOPMENT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lykta (development)</title>
</head>
<body>
<main>
<h1>Lykta is running</h1>
<p>This page exists only in development; in production this address answers nothing.</p>
<h2>Staff</h2>
<p><a href="/console">The staff console</a>: sign in with an account the demo printed
(anna, then press <strong>Available</strong>; bo supervises; ella plans the roster).</p>
<h2>Visitors</h2>
<p>A visitor's chat page on each line (a private window shows best what a visitor sees):</p>
<ul>
{lines}
</ul>
<h2>In a terminal</h2>
<pre>.venv/bin/lykta client counsellor --username anna
.venv/bin/lykta client visitor --line support</pre>
<p>README.md tells more; <a href="/api/docs">the HTTP API</a> is described here in
development.</p>
</main>
</body>
</html>
"""


@router.get("/", dependencies=[public()])
async def home(runtime: RuntimeDep) -> Response:
    if not runtime.settings.is_development:
        return PlainTextResponse("Not Found", status_code=404)
    lines = "\n".join(
        f'<li><a href="/chat/{html.escape(line.key)}">{html.escape(line.name)}</a> '
        f"(<code>{html.escape(line.key)}</code>)</li>"
        for line in runtime.lines.all()
    )
    return HTMLResponse(
        DEVELOPMENT_PAGE.format(lines=lines or "<li>No line yet: lykta lines import</li>")
    )
