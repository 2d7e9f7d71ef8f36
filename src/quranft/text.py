"""Text against the base model's tokenizer: what it cannot encode, and the option that maps it.

The tokenizer is never replaced (a new one would randomise the decoders). Characters it lacks would
become unknown tokens; `coverage` counts them. The `map_missing` option composes letters with
their maddah or hamza (Unicode NFC) and rewrites only the characters the tokenizer lacks, with
Uthmani-script fallbacks (alef wasla to alef, the Uthmani sukun to the common sukun, the Quranic
small marks and pause signs dropped); the tashkeel stays.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable

TEXT_OPTIONS = ("keep", "map_missing")

# Uthmani characters and what to write instead when the tokenizer lacks them ("" drops them).
UTHMANI_FALLBACKS: dict[str, str] = {
    "\u0671": "\u0627",  # alef wasla -> alef
    "\u06e1": "\u0652",  # small high dotless head of khah (Uthmani sukun) -> sukun
    "\u08f0": "\u064b",  # open fathatan -> fathatan
    "\u08f1": "\u064c",  # open dammatan -> dammatan
    "\u08f2": "\u064d",  # open kasratan -> kasratan
    "\u0640": "",  # tatweel
    "\u0653": "",  # maddah above, where NFC could not compose it with an alef
    **{chr(c): "" for c in range(0x06D6, 0x06DD)},  # small high ligatures: pause marks
    "\u06de": "",  # rub el hizb
    "\u06df": "",  # small high rounded zero
    "\u06e0": "",  # small high upright rectangular zero
    "\u06e2": "",  # small high meem (iqlab)
    "\u06e3": "",  # small low seen
    "\u06e4": "",  # small high madda
    "\u06e5": "",  # small waw
    "\u06e6": "",  # small yeh
    "\u06e7": "",  # small high yeh
    "\u06e8": "",  # small high noon
    "\u06e9": "",  # place of sajdah
    "\u06ea": "",  # empty centre low stop
    "\u06eb": "",  # empty centre high stop
    "\u06ec": "",  # rounded high stop with filled centre
    "\u06ed": "",  # small low meem
}


def missing_characters(texts: Iterable[str], can_encode: Callable[[str], bool]) -> Counter[str]:
    """Occurrences of each character (space aside) that `can_encode` rejects."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    counts.pop(" ", None)
    return Counter({char: n for char, n in counts.items() if not can_encode(char)})


def describe(counts: Counter[str]) -> list[dict]:
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
    return lambda text: " ".join(unicodedata.normalize("NFC", text).translate(table).split())
