"""Surah names to numbers, for datasets whose surah column holds a name.

RetaSy/quranic_audio_dataset's `Surah` column names the surah (a transliteration such as
"Al-Faatihah"; the demo's RetaSy-like parquet writes the Arabic name, "الفاتحة"). Spellings of
transliterations vary (Al-Fatiha, Al-Faatihah, Surat al-Fatihah), so names are compared by a key
that drops what varies: the word "surah", the article, apostrophes and hyphens, doubled letters, a
final h after a vowel, and the usual vowel spellings (ee/i, oo/u, ay/ai, aw/au). Arabic names are
compared after the protocol's normalisation (quranft.quran.arabic.normalize), with and without "سورة".
"""

from __future__ import annotations

import re
from functools import lru_cache

from quranft.quran.arabic import normalize

# (transliteration as Tanzil's metadata spells it, Arabic name), in surah order.
NAMES: tuple[tuple[str, str], ...] = (
    ("Al-Faatiha", "الفاتحة"), ("Al-Baqara", "البقرة"), ("Aal-i-Imraan", "آل عمران"), ("An-Nisaa", "النساء"),
    ("Al-Maaida", "المائدة"), ("Al-An'aam", "الأنعام"), ("Al-A'raaf", "الأعراف"), ("Al-Anfaal", "الأنفال"),
    ("At-Tawba", "التوبة"), ("Yunus", "يونس"), ("Hud", "هود"), ("Yusuf", "يوسف"), ("Ar-Ra'd", "الرعد"),
    ("Ibrahim", "إبراهيم"), ("Al-Hijr", "الحجر"), ("An-Nahl", "النحل"), ("Al-Israa", "الإسراء"),
    ("Al-Kahf", "الكهف"), ("Maryam", "مريم"), ("Taa-Haa", "طه"), ("Al-Anbiyaa", "الأنبياء"), ("Al-Hajj", "الحج"),
    ("Al-Muminoon", "المؤمنون"), ("An-Noor", "النور"), ("Al-Furqaan", "الفرقان"), ("Ash-Shu'araa", "الشعراء"),
    ("An-Naml", "النمل"), ("Al-Qasas", "القصص"), ("Al-Ankaboot", "العنكبوت"), ("Ar-Room", "الروم"),
    ("Luqman", "لقمان"), ("As-Sajda", "السجدة"), ("Al-Ahzaab", "الأحزاب"), ("Saba", "سبإ"), ("Faatir", "فاطر"),
    ("Yaseen", "يس"), ("As-Saaffaat", "الصافات"), ("Saad", "ص"), ("Az-Zumar", "الزمر"), ("Ghafir", "غافر"),
    ("Fussilat", "فصلت"), ("Ash-Shura", "الشورى"), ("Az-Zukhruf", "الزخرف"), ("Ad-Dukhaan", "الدخان"),
    ("Al-Jaathiya", "الجاثية"), ("Al-Ahqaf", "الأحقاف"), ("Muhammad", "محمد"), ("Al-Fath", "الفتح"),
    ("Al-Hujuraat", "الحجرات"), ("Qaaf", "ق"), ("Adh-Dhaariyat", "الذاريات"), ("At-Tur", "الطور"),
    ("An-Najm", "النجم"), ("Al-Qamar", "القمر"), ("Ar-Rahmaan", "الرحمن"), ("Al-Waaqia", "الواقعة"),
    ("Al-Hadid", "الحديد"), ("Al-Mujaadila", "المجادلة"), ("Al-Hashr", "الحشر"), ("Al-Mumtahana", "الممتحنة"),
    ("As-Saff", "الصف"), ("Al-Jumu'a", "الجمعة"), ("Al-Munaafiqoon", "المنافقون"), ("At-Taghaabun", "التغابن"),
    ("At-Talaaq", "الطلاق"), ("At-Tahrim", "التحريم"), ("Al-Mulk", "الملك"), ("Al-Qalam", "القلم"),
    ("Al-Haaqqa", "الحاقة"), ("Al-Ma'aarij", "المعارج"), ("Nooh", "نوح"), ("Al-Jinn", "الجن"),
    ("Al-Muzzammil", "المزمل"), ("Al-Muddaththir", "المدثر"), ("Al-Qiyaama", "القيامة"), ("Al-Insaan", "الإنسان"),
    ("Al-Mursalaat", "المرسلات"), ("An-Naba", "النبإ"), ("An-Naazi'aat", "النازعات"), ("Abasa", "عبس"),
    ("At-Takwir", "التكوير"), ("Al-Infitaar", "الانفطار"), ("Al-Mutaffifin", "المطففين"),
    ("Al-Inshiqaaq", "الانشقاق"), ("Al-Burooj", "البروج"), ("At-Taariq", "الطارق"), ("Al-A'laa", "الأعلى"),
    ("Al-Ghaashiya", "الغاشية"), ("Al-Fajr", "الفجر"), ("Al-Balad", "البلد"), ("Ash-Shams", "الشمس"),
    ("Al-Lail", "الليل"), ("Ad-Dhuhaa", "الضحى"), ("Ash-Sharh", "الشرح"), ("At-Tin", "التين"), ("Al-Alaq", "العلق"),
    ("Al-Qadr", "القدر"), ("Al-Bayyina", "البينة"), ("Az-Zalzala", "الزلزلة"), ("Al-Aadiyaat", "العاديات"),
    ("Al-Qaari'a", "القارعة"), ("At-Takaathur", "التكاثر"), ("Al-Asr", "العصر"), ("Al-Humaza", "الهمزة"),
    ("Al-Fil", "الفيل"), ("Quraish", "قريش"), ("Al-Maa'un", "الماعون"), ("Al-Kawthar", "الكوثر"),
    ("Al-Kaafiroon", "الكافرون"), ("An-Nasr", "النصر"), ("Al-Masad", "المسد"), ("Al-Ikhlaas", "الإخلاص"),
    ("Al-Falaq", "الفلق"), ("An-Naas", "الناس"),
)

# Other spellings in common use whose key differs from the table's (the key already absorbs
# doubled vowels, a final h, the article and punctuation).
ALIASES: dict[str, int] = {
    "Ali Imran": 3, "Al-Imran": 3, "Al-Mu'minun": 23, "Ya-Sin": 36, "Sad": 38, "Ad-Duha": 93, "Al-Inshirah": 94,
    "Al-Layl": 92, "Al-Kafirun": 109, "Al-Isra": 17, "Ta-Ha": 20, "Qaf": 50, "Al-Qari'ah": 101, "Lahab": 111,
    "Al-Lahab": 111, "Al-Muddathir": 74, "Al-Insan": 76, "Ad-Dahr": 76, "Ghaafir": 40, "Al-Mu'min": 40, "Ha-Mim Sajda": 41,
    "Bani Isra'il": 17, "At-Tawbah": 9, "Bara'ah": 9, "Al-Zalzalah": 99, "Al-Bayyinah": 98,
}

_ARTICLE = re.compile(r"^(?:al|an|ar|as|ash|at|ath|ad|adh|az)[-\s]+")
_SURAH_WORD = re.compile(r"^(?:surah|surat|sura|soorah)[-\s]+")
_VOWELS = (("ee", "i"), ("ii", "i"), ("oo", "u"), ("ou", "u"), ("uu", "u"), ("ay", "ai"), ("aw", "au"))
_ARABIC_SURAH_WORD = "سوره "


def latin_key(name: str) -> str:
    """The comparison key of a transliterated name: 'Al-Faatihah', 'surat al-fatiha' -> 'fatiha'."""
    text = _SURAH_WORD.sub("", name.strip().lower())
    text = _ARTICLE.sub("", text)
    text = re.sub(r"[^a-z]", "", text)
    for spelled, plain in _VOWELS:
        text = text.replace(spelled, plain)
    text = re.sub(r"(.)\1+", r"\1", text)
    return re.sub(r"(?<=[aeiou])h$", "", text)


def arabic_key(name: str) -> str:
    """The comparison key of an Arabic name: normalised letters, without the word سورة."""
    text = normalize(name)
    return text[len(_ARABIC_SURAH_WORD):] if text.startswith(_ARABIC_SURAH_WORD) else text


@lru_cache(maxsize=None)
def _table() -> dict[str, int]:
    table: dict[str, int] = {}
    for number, (latin, arabic) in enumerate(NAMES, start=1):
        table[latin_key(latin)] = number
        table[arabic_key(arabic)] = number
    for alias, number in ALIASES.items():
        table.setdefault(latin_key(alias), number)
    return table


def surah_number(value) -> int | None:
    """The surah a column value names: a number (1-114, also as text), an Arabic name or a
    transliteration; None when it names none."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = int(value)
        return number if 1 <= number <= 114 and number == value else None
    text = str(value).strip()
    if text.isdigit():
        return surah_number(int(text))
    if not text:
        return None
    key = arabic_key(text) if re.search("[\u0600-\u06ff]", text) else latin_key(text)
    return _table().get(key)
