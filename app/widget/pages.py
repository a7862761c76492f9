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

# A language tag as BCP 47 writes it, loosely: a 2-3 letter language, then subtags
# ("ro", "pt-BR", "sr-Latn-RS"). Only the base decides which catalogue a visitor gets.
_TAG = re.compile(r"^([A-Za-z]{2,3})(-[A-Za-z0-9]{1,8})*$")
MAX_TAG_CHARS = 35
# At most this many entries of an Accept-Language header are looked at.
MAX_BROWSER_LANGUAGES = 20
# Each catalogue says how far it has been checked: "drafted", or "reviewed" by a native
# speaker (with the date); kept out of the texts the page carries.
REVIEW_KEY = "_review"
REVIEW_STATES = ("drafted", "reviewed")

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


# A text is a string, or for a count a string per CLDR plural category ({"plural": the
# placeholder that counts, "one": ..., "other": ...}; the widget picks with Intl.PluralRules).
Text = str | dict[str, str]


@lru_cache(maxsize=1)
def _files() -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for path in sorted((WIDGET_DIR / "i18n").glob("*.json")):
        out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return out


# The mailbox's texts the chat page itself shows; the rest of the mailbox's come with its
# catalogue when the visitor opens the mailbox (widget/mailbox.js), not with every page.
PAGE_MAILBOX_TEXTS = frozenset(
    {"mailbox_box_heading", "mailbox_offer", "mailbox_read_heading", "mailbox_read_only"}
)


def page_texts(texts: dict[str, Text]) -> dict[str, Text]:
    """The catalogue as the chat page carries it: without the mailbox's own texts."""
    return {
        key: value
        for key, value in texts.items()
        if not key.startswith("mailbox_") or key in PAGE_MAILBOX_TEXTS
    }


@lru_cache(maxsize=1)
def catalogues() -> dict[str, dict[str, Text]]:
    """The texts of each language the widget speaks, by language code (one file each)."""
    return {
        code: {k: v for k, v in texts.items() if k != REVIEW_KEY}  # type: ignore[misc]
        for code, texts in _files().items()
    }


def review(language: str) -> dict[str, str]:
    """A catalogue's review state: {"state": "drafted" | "reviewed", "date": ..., ...}."""
    found = _files()[language].get(REVIEW_KEY)
    return dict(found) if isinstance(found, dict) else {}


def text(language: str, key: str) -> str:
    """One plain text of a catalogue (a page hole or a notice, never a counted one)."""
    value = catalogues()[language][key]
    return value if isinstance(value, str) else value["other"]


def base_tag(tag: str | None) -> str | None:
    """The lowercase base language of a well-formed tag ("pt" for "pt-BR"), else None: a
    malformed or oversized tag is ignored, never echoed."""
    if not tag or len(tag) > MAX_TAG_CHARS:
        return None
    match = _TAG.match(tag)
    return match.group(1).lower() if match else None


def browser_languages(header: str | None) -> list[str]:
    """The base languages of an Accept-Language header, most wanted first (q=0 left out);
    malformed entries are skipped."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((header or "")[:1000].split(",")[:MAX_BROWSER_LANGUAGES]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        base = base_tag(tag.strip())
        if base is not None and 0 < quality <= 1:
            ranked.append((-quality, index, base))
    out: list[str] = []
    for _, _, base in sorted(ranked):
        if base not in out:
            out.append(base)
    return out


@lru_cache(maxsize=4)
def template(name: str) -> str:
    return (WIDGET_DIR / name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class LanguageChoice:
    language: str
    # The visitor asked for a language that is not offered: say so on the page.
    fell_back: bool
    # What decided: "asked" (data-language or ?lang=), "browser" (its languages) or "line"
    # (the line's first): the page's script may still match navigator.languages for "line".
    source: str = "asked"


def widget_languages(line_languages: Sequence[str]) -> list[str]:
    """The line's languages the widget has a catalogue for, in the line's order."""
    known = catalogues()
    offered = [code for code in line_languages if code in known]
    return offered or [FALLBACK_LANGUAGE]


def choose_language(
    asked: str | None, offered: Sequence[str], browser: Sequence[str] = ()
) -> LanguageChoice:
    """The asked language if offered, else the browser's first offered one, else the first
    offered; a notice only when a well-formed language was asked for and is not offered."""
    base = base_tag(asked)
    if base is not None and base in offered:
        return LanguageChoice(base, fell_back=False, source="asked")
    for wanted in browser:
        if wanted in offered:
            return LanguageChoice(wanted, fell_back=base is not None, source="browser")
    return LanguageChoice(offered[0], fell_back=base is not None, source="line")


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
            value = texts[key]
            return html.escape(value if isinstance(value, str) else value["other"])
        if key in RAW_HOLES:
            return values.get(key, "")
        if key == "lang":
            return html.escape(language)
        if key == "dir":
            return html.escape(text(language, "dir"))
        return html.escape(values.get(key, ""))

    return _HOLE.sub(fill, template(name))


def language_links(languages: Sequence[str], current: str) -> str:
    """The safety page in each language the widget speaks, as list items."""
    items = []
    for code in languages:
        name = html.escape(text(code, "language_name"))
        if code == current:
            items.append(f'<li><span lang="{code}" aria-current="page">{name}</span></li>')
        else:
            items.append(
                f'<li><a href="/widget/safety?lang={code}" lang="{code}" hreflang="{code}">'
                f"{name}</a></li>"
            )
    return "".join(items)


def language_options(languages: Sequence[str], current: str) -> str:
    """The chat page's language choice, each language under its own name."""
    return "".join(
        f'<option value="{code}" lang="{code}"{" selected" if code == current else ""}>'
        f"{html.escape(text(code, 'language_name'))}</option>"
        for code in languages
    )


def script_json(value: object) -> str:
    """JSON for a `<script type="application/json">` block: nothing in it can end the block."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
