"""The widget's files and pages as pure code: catalogues, language choice, page rendering.

The files live in the top-level `widget/` folder and are served as they are (no build step,
compressed once when first read); the two HTML pages are templates whose `{{name}}` and
`{{t:key}}` holes are filled here, always HTML-escaped but for the few filled with markup or
JSON built here (`RAW_HOLES`).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from app.kit.migrate import project_root
from app.widget.compressed import Encoded, encode

# The checkout's widget/ (development), or the image's working directory (the Dockerfile
# copies widget/ next to migrations/).
WIDGET_DIR = project_root() / "widget"

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
}
# The language the widget falls back to when a line offers none with a catalogue.
FALLBACK_LANGUAGE = "en"

# Holes filled with markup built in this module, never with text from a request.
RAW_HOLES = frozenset(
    {"language_links", "language_options", "language_field", "boot", "practice_hidden"}
)

_HOLE = re.compile(r"\{\{(t:)?([a-z_]+)\}\}")
_COLOUR = re.compile(r"^#?([0-9a-fA-F]{6})$")


@lru_cache(maxsize=1)
def assets() -> dict[str, tuple[Encoded, str]]:
    """Every servable file by its path under /widget/, read and compressed once (templates
    are not served)."""
    found: dict[str, tuple[Encoded, str]] = {}
    for path in sorted(WIDGET_DIR.rglob("*")):
        kind = CONTENT_TYPES.get(path.suffix)
        if kind is not None and path.is_file():
            found[path.relative_to(WIDGET_DIR).as_posix()] = (encode(path.read_bytes()), kind)
    return found


@lru_cache(maxsize=1)
def catalogues() -> dict[str, dict[str, str]]:
    """The texts of each language the widget speaks, by language code (one file each)."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted((WIDGET_DIR / "i18n").glob("*.json")):
        out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return out


@lru_cache(maxsize=4)
def template(name: str) -> str:
    return (WIDGET_DIR / name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class LanguageChoice:
    language: str
    # The visitor asked for a language that is not offered: say so on the page.
    fell_back: bool


def widget_languages(line_languages: Sequence[str]) -> list[str]:
    """The line's languages the widget has a catalogue for, in the line's order."""
    known = catalogues()
    offered = [code for code in line_languages if code in known]
    return offered or [FALLBACK_LANGUAGE]


def choose_language(asked: str | None, offered: Sequence[str]) -> LanguageChoice:
    """The asked language if offered, else the first offered (a notice if one was asked)."""
    if asked and asked in offered:
        return LanguageChoice(asked, fell_back=False)
    return LanguageChoice(offered[0], fell_back=bool(asked))


def clean_colour(value: str | None) -> str:
    """`#rrggbb` or empty: anything else is ignored rather than put into a page."""
    match = _COLOUR.match(value or "")
    return f"#{match.group(1).lower()}" if match else ""


def clean_exit_url(value: str | None, default: str) -> str:
    """An http(s) URL the visitor leaves to; anything else (javascript:, data:, junk) is not."""
    if not value or len(value) > 2000 or any(ord(ch) < 0x21 for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return default
    return value


def render(name: str, language: str, values: Mapping[str, str]) -> str:
    """Fill a page template: `{{t:key}}` from the language's catalogue, `{{name}}` from values.

    Values are escaped here, except those of `RAW_HOLES`: markup and JSON built below.
    """
    texts = catalogues()[language]

    def fill(match: re.Match[str]) -> str:
        key = match.group(2)
        if match.group(1):
            return html.escape(texts[key])
        if key in RAW_HOLES:
            return values.get(key, "")
        if key == "lang":
            return html.escape(language)
        if key == "dir":
            return html.escape(texts.get("dir", "ltr"))
        return html.escape(values.get(key, ""))

    return _HOLE.sub(fill, template(name))


def language_links(languages: Sequence[str], current: str) -> str:
    """The safety page in each language the widget speaks, as list items."""
    known = catalogues()
    items = []
    for code in languages:
        name = html.escape(known[code]["language_name"])
        if code == current:
            items.append(f'<li><span lang="{code}" aria-current="page">{name}</span></li>')
        else:
            items.append(f'<li><a href="/widget/safety?lang={code}" lang="{code}">{name}</a></li>')
    return "".join(items)


def language_options(languages: Sequence[str], current: str) -> str:
    """The chat page's language choice, each language under its own name."""
    known = catalogues()
    return "".join(
        f'<option value="{code}" lang="{code}"{" selected" if code == current else ""}>'
        f"{html.escape(known[code]['language_name'])}</option>"
        for code in languages
    )


def script_json(value: object) -> str:
    """JSON for a `<script type="application/json">` block: nothing in it can end the block."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
