"""Text against the base model's tokenizer: what it cannot encode, and the option that maps it.

The tokenizer is never replaced (a new one would randomise the decoders). Characters it lacks would
become unknown tokens; `coverage` counts them. The `map_missing` option composes letters with
their maddah or hamza (Unicode NFC) and rewrites only the characters the tokenizer lacks, with
Uthmani-script fallbacks (quranft.quran.arabic.UTHMANI_FALLBACKS: alef wasla to alef, the Uthmani
sukun to the common sukun, the Quranic small marks and pause signs dropped); the tashkeel stays.

Pure text against a tokenizer's alphabet (given as a `can_encode` callable): training maps its
targets with it and the CTC matcher its candidate verses, so that both write what the model can.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable

from quranft.quran.arabic import UTHMANI_FALLBACKS, collapse_spaces

TEXT_OPTIONS = ("keep", "map_missing")


def missing_characters(texts: Iterable[str], can_encode: Callable[[str], bool]) -> Counter[str]:
    """Occurrences of each character (space aside) that `can_encode` rejects."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    counts.pop(" ", None)
    return Counter({char: n for char, n in counts.items() if not can_encode(char)})


def coverage_rows(counts: Counter[str]) -> list[dict]:
    """Missing characters as JSON-friendly rows, most frequent first."""
    return [
        {"char": char, "codepoint": f"U+{ord(char):04X}", "name": unicodedata.name(char, "?"), "count": n,
         "mapped_to": UTHMANI_FALLBACKS.get(char)}
        for char, n in counts.most_common()
    ]


def make_mapper(option: str, missing: Iterable[str]) -> Callable[[str], str]:
    """The text transform of a trial's `text_option`, given the characters the tokenizer lacks."""
    if option not in TEXT_OPTIONS:
        raise ValueError(f"text_option must be one of {TEXT_OPTIONS}, got {option!r}")
    if option == "keep":
        return lambda text: text
    table = str.maketrans({char: UTHMANI_FALLBACKS[char] for char in missing if char in UTHMANI_FALLBACKS})
    # NFC first: alef + maddah (or hamza) becomes the precomposed letter most tokenizers know.
    return lambda text: collapse_spaces(unicodedata.normalize("NFC", text).translate(table))
