"""The visitor side in every language: complete catalogues with plural forms and a review
state, the language chosen from data-language, then the browser, then the line; malformed tags
ignored on pages and refused where a tag is the request; codes in every language with the
same strength."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest

from app.continuity import codes
from app.widget import pages
from tests.conftest import ServerFactory
from tests.support.seed import add_line
from tests.support.server import RunningServer
from tests.test_widget import Page

# The visitor languages (docs/widget.md says why these).
LANGUAGES = ("sv", "en", "ar", "ro", "bg", "hu", "es", "th", "ru", "uk", "pl", "fr")
# CLDR's cardinal plural categories (CLDR 44, what Intl.PluralRules answers in Chromium; the
# browser test checks the catalogues against Intl itself as well).
CLDR_PLURALS = {
    "sv": {"one", "other"},
    "en": {"one", "other"},
    "ar": {"zero", "one", "two", "few", "many", "other"},
    "ro": {"one", "few", "other"},
    "bg": {"one", "other"},
    "hu": {"one", "other"},
    "es": {"one", "many", "other"},
    "th": {"other"},
    "ru": {"one", "few", "many", "other"},
    "uk": {"one", "few", "many", "other"},
    "pl": {"one", "few", "many", "other"},
    "fr": {"one", "many", "other"},
}
RIGHT_TO_LEFT = {"ar"}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def variants(value: pages.Text) -> dict[str, str]:
    return {"other": value} if isinstance(value, str) else value


# Catalogues -------------------------------------------------------------------------------


def test_the_widget_speaks_the_twelve_languages() -> None:
    assert set(LANGUAGES) <= set(pages.catalogues())
    for code in LANGUAGES:
        expected = "rtl" if code in RIGHT_TO_LEFT else "ltr"
        assert pages.text(code, "dir") == expected, code


@pytest.mark.parametrize("code", sorted(pages.catalogues()))
def test_every_catalogue_has_every_key_and_placeholder_of_english(code: str) -> None:
    reference = pages.catalogues()["en"]
    texts = pages.catalogues()[code]
    assert set(texts) == set(reference), (
        f"{code}: missing {sorted(set(reference) - set(texts))}, "
        f"unknown {sorted(set(texts) - set(reference))}"
    )
    for key, english in reference.items():
        value = texts[key]
        wanted = placeholders(variants(english)["other"])
        assert isinstance(value, str) == isinstance(english, str), (code, key)
        for category, text in variants(value).items():
            if category == "plural":
                continue
            assert isinstance(text, str) and text.strip(), (code, key, category)
            assert "<" not in text, (code, key)  # shown as text: markup would show as such
            found = placeholders(text)
            # Every form keeps the same placeholders, except that a form for one number (say,
            # Arabic's "two minutes") may leave out the number it counts.
            counted = {value["plural"]} if isinstance(value, dict) else set()
            assert found <= wanted, (code, key, category, found - wanted)
            if category == "other":
                assert found == wanted, (code, key, wanted - found)
            else:
                assert wanted - found <= counted, (code, key, category, wanted - found)


@pytest.mark.parametrize("code", sorted(pages.catalogues()))
def test_counted_texts_have_the_plural_forms_of_their_language(code: str) -> None:
    counted = {k: v for k, v in pages.catalogues()["en"].items() if isinstance(v, dict)}
    assert {"queue_wait", "count", "too_long"} <= set(counted)
    for key, english in counted.items():
        value = pages.catalogues()[code][key]
        assert isinstance(value, dict)
        # The placeholder that counts is the same as in English.
        assert value["plural"] == english["plural"], (code, key)
        assert set(value) - {"plural"} == CLDR_PLURALS[code], (code, key)


@pytest.mark.parametrize("code", sorted(pages.catalogues()))
def test_every_catalogue_says_how_far_it_was_reviewed(code: str) -> None:
    review = pages.review(code)
    assert review["state"] in pages.REVIEW_STATES, code
    date.fromisoformat(review["date"])
    # Not sent to the visitor: the page carries only texts.
    assert pages.REVIEW_KEY not in pages.catalogues()[code]


def test_swedish_and_english_are_reviewed_by_native_speakers_the_others_drafted() -> None:
    assert pages.review("sv")["state"] == pages.review("en")["state"] == "reviewed"
    for code in set(LANGUAGES) - {"sv", "en"}:
        assert pages.review(code)["state"] == "drafted", code


def test_a_languages_own_name_and_its_unknown_language_notice() -> None:
    names = [pages.text(code, "language_name") for code in LANGUAGES]
    assert len(set(names)) == len(names)
    assert pages.text("ro", "language_name") == "Română"
    assert pages.text("th", "language_name") == "ไทย"


# Choosing the language --------------------------------------------------------------------


@pytest.fixture
async def lines(lykta: ServerFactory) -> AsyncIterator[RunningServer]:
    async with lykta() as server:
        await add_line(server.runtime, "support", languages=list(LANGUAGES))
        await add_line(server.runtime, "youth", languages=["sv", "en"])
        yield server


async def page(server: RunningServer, path: str, accept_language: str = "") -> Page:
    headers = {"Accept-Language": accept_language} if accept_language else {}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        response = await http.get(path)
    assert response.status_code == 200
    assert "Accept-Language" in response.headers["vary"]
    return Page(response.text)


@pytest.mark.parametrize(
    ("path", "accept_language", "expected", "chosen_by"),
    [
        # The browser's languages, first match by base language.
        ("/chat/support", "ro-RO,ro;q=0.9,en;q=0.8", "ro", "browser"),
        ("/chat/support", "de-DE, th;q=0.7, en;q=0.5", "th", "browser"),
        ("/chat/support", "en;q=0.2, uk;q=0.9", "uk", "browser"),
        # data-language (?lang=) wins over the browser.
        ("/chat/support?lang=bg", "ro-RO,ro", "bg", "asked"),
        ("/chat/support?lang=pt-BR", "pl", "pl", "browser"),
        # Nothing offered: the line's first language.
        ("/chat/support", "de, it", "sv", "line"),
        ("/chat/youth", "ro-RO", "sv", "line"),
        ("/chat/support", "", "sv", "line"),
        # Malformed headers are ignored, never an error.
        ("/chat/support", "ro;q=abc, ;;, " + "x" * 900, "sv", "line"),
        ("/chat/support", "<script>, ar;q=0.5", "ar", "browser"),
    ],
)
async def test_the_language_comes_from_data_language_then_the_browser_then_the_line(
    lines: RunningServer, path: str, accept_language: str, expected: str, chosen_by: str
) -> None:
    found = await page(lines, path, accept_language)
    assert found.attrs["html"]["lang"] == expected
    assert found.attrs["body"]["data-lang"] == expected
    assert found.attrs["body"]["data-chosen-by"] == chosen_by
    assert found.attrs["html"]["dir"] == ("rtl" if expected == "ar" else "ltr")
    assert pages.text(expected, "quick_exit") in found.all_text


async def test_every_language_serves_its_own_page_and_safety_page(lines: RunningServer) -> None:
    for code in LANGUAGES:
        chat = await page(lines, f"/chat/support?lang={code}")
        assert chat.attrs["html"]["lang"] == code and chat.title == pages.text(code, "page_title")
        assert chat.attrs["option"] is not None
        safety = await page(lines, f"/widget/safety?lang={code}")
        assert safety.attrs["html"] == {"lang": code, "dir": pages.text(code, "dir")}
        for key in ("safety_heading", "safety_exit", "safety_cannot", "safety_private"):
            assert pages.text(code, key) in safety.all_text, (code, key)
        # Every other language is one link away, under its own name.
        for other in LANGUAGES:
            assert pages.text(other, "language_name") in safety.all_text
    # The safety page follows the browser too.
    assert (await page(lines, "/widget/safety", "hu-HU")).attrs["html"]["lang"] == "hu"


@pytest.mark.parametrize(
    "tag", ["<script>", "x" * 50, "r0", "ro_RO", "ro-", "--", "%00", "ro-RO-" + "a" * 40]
)
async def test_a_malformed_language_tag_on_a_page_is_ignored_without_echo(
    lines: RunningServer, tag: str
) -> None:
    async with httpx.AsyncClient(base_url=lines.url) as http:
        response = await http.get("/chat/support", params={"lang": tag})
    assert response.status_code == 200
    found = Page(response.text)
    assert found.attrs["html"]["lang"] == "sv"
    # Not a language at all: nothing to say it is not offered.
    assert '<p id="notice" class="notice" role="status"></p>' in response.text
    assert tag not in response.text


async def test_a_well_formed_but_unknown_language_falls_back_with_a_notice(
    lines: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=lines.url, headers={"Accept-Language": "ro"}) as http:
        response = await http.get("/chat/support?lang=de")
    # The browser's Romanian is used, and the notice is in Romanian.
    assert Page(response.text).attrs["html"]["lang"] == "ro"
    notice = pages.text("ro", "unknown_language")
    assert f'role="status">{notice}</p>' in response.text


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("ro.json", 200, None),
        ("th.json", 200, None),
        ("de.json", 404, "unknown_language"),
        ("<x>.json", 400, "bad_language"),
        ("ro", 400, "bad_language"),
        ("ro.js", 400, "bad_language"),
        ("r0.json", 400, "bad_language"),
        ("x" * 300 + ".json", 400, "bad_language"),
    ],
)
async def test_a_catalogue_is_asked_for_by_a_well_formed_tag(
    lines: RunningServer, name: str, status: int, code: str | None
) -> None:
    async with httpx.AsyncClient(base_url=lines.url) as http:
        response = await http.get(f"/widget/i18n/{name}")
    assert response.status_code == status, name
    if code is not None:
        assert response.json()["code"] == code
        assert "<x>" not in response.text and "x" * 50 not in response.text
    else:
        assert response.headers["cache-control"] == "no-store"
        assert response.json()["language_name"] == pages.text(name[:2], "language_name")


def test_browser_languages_are_read_in_order_of_preference() -> None:
    assert pages.browser_languages("ro-RO,ro;q=0.9,en-US;q=0.8,en;q=0.7") == ["ro", "en"]
    assert pages.browser_languages("en;q=0.1, ar;q=0.9, fr") == ["fr", "ar", "en"]
    assert pages.browser_languages("de;q=0, sv") == ["sv"]
    assert pages.browser_languages("*, ro;q=x, ;q=1, uk;q=2") == []
    assert pages.browser_languages(None) == []
    assert len(pages.browser_languages(",".join(["aa"] * 500))) == 1


# Codes in every language ------------------------------------------------------------------


@pytest.mark.parametrize("code", LANGUAGES)
def test_codes_are_equally_strong_in_every_language(code: str) -> None:
    assert codes.code_bits(code) >= codes.MIN_BITS
    # Within two bits of each other: no language gets a weaker code.
    assert max(codes.code_bits(c) for c in LANGUAGES) - codes.code_bits(code) < 2
    issued = codes.new_code(code)
    normal = codes.normalise(issued)
    assert normal is not None
    words = codes.word_list(code)
    if words:
        assert len(issued.split()) == codes.words_needed(len(words))
        assert all(w in words for w in issued.split())
    else:
        # Four groups of four digits.
        assert re.fullmatch(r"\d{4} \d{4} \d{4} \d{4}", issued), issued
        assert codes.code_bits(code) == pytest.approx(16 * math.log2(10))


def test_word_codes_where_a_good_list_exists_digits_elsewhere() -> None:
    assert codes.word_languages() == ["en", "es", "fr", "sv"]
    for code in ("ar", "ro", "bg", "hu", "th", "ru", "uk", "pl"):
        assert codes.word_list(code) == ()


@pytest.mark.parametrize("language", ["es", "fr"])
def test_each_word_list_is_big_distinct_and_screened(language: str) -> None:
    words = codes.word_list(language)
    assert len(words) >= 1800
    assert len({codes.normalise(w) for w in words}) == len(words)
    assert all(w.isalpha() and w == w.lower() for w in words)
    assert all(unicodedata.is_normalized("NFC", w) for w in words)
    excluded = set((codes.WORDS_DIR / f"{language}-excluded.txt").read_text("utf-8").split())
    assert len(excluded) > 150 and not excluded & set(words)
    alarming = {"es": {"policía", "droga", "muerte", "sexo"}, "fr": {"prison", "couteau", "virus"}}
    assert alarming[language] <= excluded


def test_a_digit_code_is_matched_however_it_is_typed() -> None:
    expected = "4821093755621184"
    for typed in [
        "4821 0937 5562 1184",
        "4821-0937-5562-1184",
        " 4821093755621184 ",
        "48 21 09 37 55 62 11 84",
        "4821.0937/5562 – 1184",
        "٤٨٢١ ٠٩٣٧ ٥٥٦٢ ١١٨٤",  # Arabic-Indic digits
        "๔๘๒๑ ๐๙๓๗ ๕๕๖๒ ๑๑๘๔",  # Thai digits
        "４８２１ ０９３７ ５５６２ １１８４",  # full-width
    ]:
        assert codes.normalise(typed) == expected, typed
    assert codes.normalise("4821 0937 5562 118") is None  # a digit short
    assert codes.normalise("4821 0937 5562 11845") is None
    assert codes.normalise("4821 0937 sol 1184") is None  # letters and digits mixed


def test_a_code_works_whatever_language_the_page_is_in_now() -> None:
    # The digest is over the normalised form, which does not depend on any language: a code
    # from a Romanian chat or a Spanish one opens the same row from a Swedish page.
    key = codes.digest_key("secret")
    for language in ("ro", "es", "fr", "ar"):
        issued = codes.new_code(language)
        normal = codes.normalise(issued)
        assert normal is not None
        retyped = codes.normalise(issued.upper().replace(" ", " - "))
        assert retyped == normal
        assert codes.digest(key, retyped) == codes.digest(key, normal)
