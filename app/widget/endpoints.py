"""Serving the widget: the loader and assets under /widget/, the chat page at /chat/<line>,
and the safety page. Visitor pages: no cookies and `Cache-Control: no-store` (app/web/headers.py
adds both to every /widget/ and /chat/ answer), nothing from another origin, and everything
compressed once (app/widget/compressed.py) in the encoding the client accepts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import HTMLResponse

from app.broker.base import BrokerUnavailableError
from app.deps import RuntimeDep
from app.kit.errors import ApiError
from app.lines.public import hidden, public_line
from app.staff.permissions import public
from app.widget import compressed, pages

# Pages and files for browsers, not API: outside the OpenAPI document, like the console's.
router = APIRouter(tags=["widget"], include_in_schema=False)

# `?exit=`: where quick exit goes from the full page (checked by pages.clean_exit_url).
ExitParam = Annotated[str | None, Query(alias="exit")]
AcceptEncoding = Annotated[str, Header(include_in_schema=False)]
# The browser's languages, only to choose the page's language; never stored or logged.
AcceptLanguage = Annotated[str, Header(include_in_schema=False)]

# A browser cache is a trace on a shared or watched phone: nothing a visitor loads is kept
# (docs/widget.md says what that costs).
NO_STORE = "no-store"
_pages = compressed.PageCache()


def _send(
    encoded: compressed.Encoded, media_type: str, accept_encoding: str, vary: str = ""
) -> Response:
    body, coding = compressed.pick(encoded, accept_encoding)
    headers = {"Cache-Control": NO_STORE, "Vary": "Accept-Encoding" + vary}
    if coding is not None:
        headers["Content-Encoding"] = coding
    return Response(body, media_type=media_type, headers=headers)


def _page(body: str, accept_encoding: str) -> Response:
    # The language may come from Accept-Language.
    return _send(
        _pages.get(body.encode()), "text/html; charset=utf-8", accept_encoding, ", Accept-Language"
    )


@router.get("/widget/safety", response_class=HTMLResponse, dependencies=[public()])
async def safety_page(
    runtime: RuntimeDep,
    lang: str | None = None,
    exit_url: ExitParam = None,
    accept_encoding: AcceptEncoding = "",
    accept_language: AcceptLanguage = "",
) -> Response:
    """What quick exit can and cannot erase, and how to browse privately."""
    languages = list(pages.catalogues())
    choice = pages.choose_language(
        lang,
        sorted(languages, key=lambda c: c != "sv"),
        pages.browser_languages(accept_language),
    )
    notice = pages.text(choice.language, "unknown_language") if choice.fell_back else ""
    return _page(
        pages.render(
            "safety.html",
            choice.language,
            {
                "notice": notice,
                "exit_url": pages.clean_exit_url(exit_url, runtime.settings.widget_exit_url),
                "language_links": pages.language_links(languages, choice.language),
            },
        ),
        accept_encoding,
    )


@router.get("/widget/i18n/{name}", dependencies=[public()])
async def catalogue(name: str, accept_encoding: AcceptEncoding = "") -> Response:
    """One language's catalogue, fetched when the visitor picks another language."""
    tag, dot, suffix = name.rpartition(".")
    if not dot or suffix != "json" or pages.base_tag(tag) is None:
        raise ApiError("bad_language", "Not a language tag.", status=400)
    found = pages.assets().get(f"i18n/{tag}.json")
    if found is None:
        raise ApiError("unknown_language", "The widget does not speak that language.", 404)
    encoded, kind = found
    return _send(encoded, kind, accept_encoding)


@router.get("/widget/{asset:path}", dependencies=[public()])
async def widget_asset(asset: str, accept_encoding: AcceptEncoding = "") -> Response:
    """The loader (embed.js), the chat page's script and style, the catalogues, the icon."""
    found = pages.assets().get(asset)
    if found is None:
        return Response(b"not found", status_code=404, media_type="text/plain")
    encoded, kind = found
    return _send(encoded, kind, accept_encoding)


@router.get("/chat/{key}", response_class=HTMLResponse, dependencies=[public()])
async def chat_page(
    key: str,
    request: Request,
    runtime: RuntimeDep,
    lang: str | None = None,
    embed: str | None = None,
    colour: str | None = None,
    exit_url: ExitParam = None,
    accept_encoding: AcceptEncoding = "",
    accept_language: AcceptLanguage = "",
) -> Response:
    """The chat, as a full page or inside the loader's iframe (`embed=1`).

    Unknown lines and languages fall back (to the first line, to the line's first language)
    with a notice the visitor sees; bad colours and exit addresses are ignored. A practice
    line is unknown to all but staff who may play its visitor, and never a fallback. The page
    carries the visitor's catalogue and the line's state, so the script needs no further
    request before the visitor can start.
    """
    line = runtime.lines.get(key)
    if await hidden(runtime, request, line):
        line = None
    fallback_line = line is None
    if line is None:
        lines = [other for other in runtime.lines.all() if not other.practice]
        line = lines[0] if lines else None
    offered = pages.widget_languages(line.languages if line is not None else [])
    # The host page's data-language (or ?lang=), else the browser's languages, else the
    # line's first (docs/widget.md).
    choice = pages.choose_language(lang, offered, pages.browser_languages(accept_language))
    texts = pages.catalogues()[choice.language]
    notices = []
    if line is None:
        notices.append(pages.text(choice.language, "no_lines"))
    elif fallback_line:
        notices.append(pages.text(choice.language, "unknown_line").replace("{name}", line.name))
    if choice.fell_back:
        notices.append(pages.text(choice.language, "unknown_language"))
    try:
        state = await public_line(runtime, line) if line is not None else None
    except BrokerUnavailableError:
        # Whether the line is open lives in the broker: the page comes all the same, and its
        # script asks again, saying meanwhile that the chat cannot be reached.
        state = None
    boot = {
        "texts": pages.page_texts(texts),
        "line": state.model_dump(mode="json") if state else None,
    }
    return _page(
        pages.render(
            "chat.html",
            choice.language,
            {
                "line": line.key if line is not None else "",
                "line_name": line.name if line is not None else "",
                "languages": " ".join(offered),
                "chosen_by": choice.source,
                "language_options": pages.language_options(offered, choice.language),
                "language_field": "" if len(offered) > 1 else " hidden",
                "boot": pages.script_json(boot),
                "embed": "1" if embed == "1" else "0",
                "colour": pages.clean_colour(colour),
                "exit_url": pages.clean_exit_url(exit_url, runtime.settings.widget_exit_url),
                "notice": " ".join(notices),
                # A practice line's chat says so in its header (a raw hole: fixed text).
                "practice_hidden": "" if line is not None and line.practice else " hidden",
            },
        ),
        accept_encoding,
    )
