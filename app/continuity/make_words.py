"""Make a continuity-code word list from a BIP-39 list: `python -m app.continuity.make_words es`.

Run once, by hand, with the `mnemonic` package (0.21) installed (not a dependency of Lykta:
only its word lists are read). Words in `<lang>-excluded.txt` are left out (a code is read on a
phone someone else may inspect: see words/README.md), and so is a word whose form as matched
(`codes.normalise`: no case, no diacritics) repeats an earlier one.
"""

from __future__ import annotations

import importlib.util
import sys
import unicodedata
from pathlib import Path

from app.continuity import codes

BIP39_NAMES = {"en": "english", "es": "spanish", "fr": "french"}


def make(language: str) -> list[str]:
    """The screened list for a language, in BIP-39's order."""
    spec = importlib.util.find_spec("mnemonic")
    if spec is None or spec.origin is None:
        raise SystemExit("install the mnemonic package (0.21) first")
    source = Path(spec.origin).parent / "wordlist" / f"{BIP39_NAMES[language]}.txt"
    excluded_path = codes.WORDS_DIR / f"{language}-excluded.txt"
    excluded = set(excluded_path.read_text("utf-8").split())
    kept: list[str] = []
    seen: set[str] = set()
    # BIP-39 lists are stored decomposed (NFKD); ours are composed, as people type.
    for word in unicodedata.normalize("NFC", source.read_text("utf-8")).split():
        folded = codes.normalise(word)
        if word in excluded or folded is None or folded in seen or not word.isalpha():
            continue
        seen.add(folded)
        kept.append(word)
    return kept


def main() -> None:
    for language in sys.argv[1:]:
        words = make(language)
        (codes.WORDS_DIR / f"{language}.txt").write_text("\n".join(words) + "\n", "utf-8")
        print(f"{language}: {len(words)} words")


if __name__ == "__main__":
    main()
