"""The Arabic text normalisations every stage shares: one letter class, one white-space rule.

- `normalize`: the benchmark protocol's (verse matching, transcript WER, the ASR benchmark's
  `plain` figures): tashkeel, the superscript alef and the Quranic small marks, tatweel, BOM and
  punctuation stripped; alef variants (alef wasla included) to bare alef; ta marbuta to ha and
  alef maqsura to ya.
- `diacritized`: the ASR benchmark's figures with diacritics: Unicode NFC, the Uthmani forms mapped
  to the common ones (UTHMANI_FALLBACKS), anything but letters and tashkeel to spaces.
- `collapse_spaces`: runs of white space to one space, trimmed (manifest texts, every normalisation).

UTHMANI_FALLBACKS is also what a trial's `text_option: map_missing` writes for the characters a
tokenizer lacks (quranft.quran.tokenizer_coverage).
"""

from __future__ import annotations

import re
import unicodedata

# The Arabic letters: hamza to ghain, feh to yeh (not tatweel, U+0640, nor the Persian and Urdu
# letters beyond yeh).
LETTERS = "\u0621-\u063a\u0641-\u064a"
# Harakat, tanween, shadda, sukun, maddah and hamza above and below, and the superscript alef.
TASHKEEL = "\u064b-\u065f\u0670"
ALEF_WASLA = "\u0671"

# Uthmani characters and what to write instead when a tokenizer lacks them ("" drops them).
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

_TASHKEEL_AND_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u08d3-\u08ff\u0640\ufeff\u200b-\u200f]")
_ALEFS = str.maketrans({"\u0623": "\u0627", "\u0625": "\u0627", "\u0622": "\u0627", "\u0671": "\u0627",
                        "\u0672": "\u0627", "\u0673": "\u0627", "\u0675": "\u0627",
                        "\u0629": "\u0647", "\u0649": "\u064a"})
_NOT_LETTER_OR_SPACE = re.compile(f"[^{LETTERS}\\s]")
_NOT_LETTER_MARK_OR_SPACE = re.compile(f"[^{LETTERS}{TASHKEEL}\\s]")
_NOT_LETTER = re.compile(f"[^{LETTERS}{ALEF_WASLA}]")
_FALLBACKS = str.maketrans(UTHMANI_FALLBACKS)


def collapse_spaces(text: str) -> str:
    """Runs of white space (newlines and tabs included) to one space, trimmed; nothing else."""
    return " ".join(text.split())


def normalize(text: str) -> str:
    """The protocol's normalisation: bare letters, single spaces."""
    text = _TASHKEEL_AND_MARKS.sub("", text).translate(_ALEFS)
    return collapse_spaces(_NOT_LETTER_OR_SPACE.sub(" ", text))


def diacritized(text: str) -> str:
    """Letters and tashkeel, Uthmani forms mapped, single spaces."""
    text = unicodedata.normalize("NFC", text).translate(_FALLBACKS)
    return collapse_spaces(_NOT_LETTER_MARK_OR_SPACE.sub(" ", text))


def letters_only(word: str) -> str:
    """A word's letters alone (alef wasla as alef): what two spellings of one word share across the
    Tanzil variants, whose tashkeel and Quranic marks differ."""
    return _NOT_LETTER.sub("", word).replace(ALEF_WASLA, "\u0627")
