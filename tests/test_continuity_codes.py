"""Continuity codes as pure code: entropy, the forms a code may be typed in, the keyed hash,
and the note sealed under a key derived from the code."""

from __future__ import annotations

import math

import pytest

from app.continuity import codes
from app.continuity.codes import KdfParams, SealedNote

# Cheap parameters for these unit tests only; the product's default is 64 MiB, 3 passes.
FAST = KdfParams(iterations=1, memory_kib=8 * 1024)


@pytest.mark.parametrize("language", ["sv", "en", "sv-FI", "es", "fr"])
def test_codes_have_at_least_50_bits_from_the_visitors_language(language: str) -> None:
    words = codes.word_list(language)
    assert len(words) >= 1024 and len(words) == len(set(words))
    # Typed without diacritics or case, no two words of a list become the same.
    assert len({codes.normalise(w) for w in words}) == len(words)
    assert all(w.isalpha() and w == w.lower() for w in words)
    code = codes.new_code(language)
    assert len(code.split()) == 5 and all(w in words for w in code.split())
    assert codes.code_bits(language) > 54
    assert codes.code_bits(language) >= codes.MIN_BITS
    assert codes.words_needed(1024) == 5 and codes.words_needed(256) == 7
    assert math.log2(256) * 7 >= codes.MIN_BITS


def test_no_word_in_a_code_looks_alarming_on_a_phone() -> None:
    for language in ("en", "sv"):
        excluded = set((codes.WORDS_DIR / f"{language}-excluded.txt").read_text().split())
        assert excluded and not excluded & set(codes.word_list(language))
    assert {"abuse", "police", "knife"} <= set(
        (codes.WORDS_DIR / "en-excluded.txt").read_text().split()
    )


def test_swedish_codes_use_the_swedish_list() -> None:
    assert codes.word_list("sv") != codes.word_list("en")
    assert "inte" in codes.word_list("sv") and "abandon" in codes.word_list("en")
    # A language without a list has digit codes (tests/test_visitor_languages.py).
    assert codes.word_list("ar") == ()


def test_a_code_is_matched_whatever_the_case_spacing_and_diacritics() -> None:
    expected = codes.normalise("sjön över fågel hjälp gård")
    assert expected == "sjon over fagel hjalp gard"
    for typed in [
        "SJÖN ÖVER FÅGEL HJÄLP GÅRD",
        "  sjön-över  fågel.hjälp,gård \n",
        "sjon over fagel hjalp gard",
        "Sjön\tÖver\u00a0Fågel Hjälp Gård",
        "sjo\u0308n o\u0308ver fa\u030agel hja\u0308lp ga\u030ard",  # decomposed
    ]:
        assert codes.normalise(typed) == expected, typed
    assert codes.normalise("") is None
    assert codes.normalise("  -- 123 !! ") is None
    assert codes.normalise("a " * 13) is None
    assert codes.normalise("a" * 201) is None


def test_the_digest_is_keyed_by_the_deployment_secret() -> None:
    one = codes.digest(codes.digest_key("secret one" * 4), "sjon over fagel")
    two = codes.digest(codes.digest_key("secret two" * 4), "sjon over fagel")
    assert one != two and len(one) == 64
    assert one == codes.digest(codes.digest_key("secret one" * 4), "sjon over fagel")
    assert "sjon" not in one


def test_the_note_opens_only_with_its_code_and_its_digest() -> None:
    code = "sjon over fagel hjalp gard"
    digest = codes.digest(codes.digest_key("k" * 40), code)
    sealed = codes.seal_note("canary: likes tea", code, digest, FAST)
    assert b"canary" not in sealed.sealed and b"tea" not in sealed.sealed
    assert codes.open_note(sealed, code, digest) == "canary: likes tea"
    assert codes.open_note(sealed, "sjon over fagel hjalp garn", digest) is None
    assert codes.open_note(sealed, code, "0" * 64) is None
    flipped = bytearray(sealed.sealed)
    flipped[-1] ^= 1
    assert (
        codes.open_note(SealedNote(sealed.salt, sealed.nonce, bytes(flipped)), code, digest) is None
    )
    # Each sealing has its own salt and nonce.
    other = codes.seal_note("canary: likes tea", code, digest, FAST)
    assert other.salt != sealed.salt and other.sealed != sealed.sealed


def test_the_kdf_cost_travels_with_the_note() -> None:
    """Changing the deployment's Argon2id settings later never strands older notes."""
    code = "a b c d e"
    digest = codes.digest(codes.digest_key("k" * 40), code)
    old = codes.seal_note("kept", code, digest, KdfParams(iterations=2, memory_kib=8 * 1024))
    assert codes.open_note(old, code, digest) == "kept"
    assert codes.open_note(SealedNote(old.salt, old.nonce, b"\x01"), code, digest) is None
    assert (
        codes.open_note(SealedNote(old.salt, old.nonce, b"\x09" + old.sealed[1:]), code, digest)
        is None
    )
