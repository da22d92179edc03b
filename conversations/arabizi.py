"""Arabic written in Latin letters and digits ("Arabizi"): "abgha a3rf el awraq el matlooba".

Many beneficiaries write so on WhatsApp and SMS. Matched as English it finds little: the
knowledge base's words are Arabic, and the sentence embedding knows Arabizi poorly. So a
message that reads as Arabizi is spelt in Arabic letters before it is matched, consonant by
consonant, the way a reader would sound it out: the digits stand for the letters Latin lacks
(3 ع, 7 ح, 5 خ, 2 ء, 6 ط, 9 ص, 8 ق), short vowels inside a word are dropped as Arabic
spelling drops them, and "el"/"al" joins the next word as its article. The result is not
correct spelling ("el matlooba" becomes "المتلوبه"), but the normalised words, the character
n-grams and the embedding then have Arabic to compare with Arabic. The answer is given in
Arabic.

A message is taken as Arabizi when a word mixes those digits with letters ("3ndi", "a7tag")
or when it has more Arabizi words ("abi", "wesh", "kaif"...) than English ones, and no
Arabic letters.
"""

from __future__ import annotations

import re

from conversations.normalize import script_language

__all__ = ["is_arabizi", "language_of", "matchable", "to_arabic_letters"]

# Words of everyday Arabizi that are not English words (normalised to lower case).
_ARABIZI_WORDS = frozenset(
    """
    abi abgha abgh abga abghi abeh aby wesh wsh esh aish eish ayesh shno shnu shu wish
    ana anta enta enti inti kaif kef keef kif kaifa wain wein wen ween weyn mata emta meta
    3nd 3ndi 3ndy 3indi 3ndkom 3ndkum 3indkom 3ndk 3la 3ala hal yaani ya3ni yani inshallah
    insha2allah lazem lazim mumkin momken mmkn ba3d shlon shlonk fe fih feh 7ag 7agi hag hagi
    hagkom 7agkom wla walla wallah leesh lesh lish kam mn meen alhin alheen ilhin hina hena
    bokra bukra alyom elyom tayeb tayyib shukran shokran mashkor msa3da musa3ada mosa3ada
    talab talabi tlab el al
    """.split()
)
# English words that say a Latin message is English after all.
_ENGLISH_WORDS = frozenset(
    """
    the is are was were what how do does did i my me to can could for a an of you your where
    when need want please help with this that it in on and or be have has get not no yes am
    will would should any there which who about from by at if
    """.split()
)
_LATIN_WORD = re.compile(r"[A-Za-z0-9']+")
_ARABIC_LETTER = re.compile(r"[\u0600-\u06FF]")
_LETTER_DIGIT = re.compile(r"[235679]")
# "3rd", "5th", "2pm", "9kg": numbers with a unit or an ordinal, not letters.
_NUMBER_WITH_UNIT = re.compile(r"\d+(st|nd|rd|th|s|am|pm|k|m|kg|g|h|min|mins|sar|sr)?")

# Letters Latin writes with two characters, then one.
_PAIRS = {
    "sh": "ش",
    "kh": "خ",
    "gh": "غ",
    "th": "ث",
    "dh": "ذ",
    "ch": "تش",
    "3'": "غ",
    "7'": "خ",
    "9'": "ض",
    "6'": "ظ",
}
_ONE = {
    "2": "ء",
    "3": "ع",
    "5": "خ",
    "6": "ط",
    "7": "ح",
    "8": "ق",
    "9": "ص",
    "b": "ب",
    "t": "ت",
    "j": "ج",
    "d": "د",
    "r": "ر",
    "z": "ز",
    "s": "س",
    "f": "ف",
    "q": "ق",
    "k": "ك",
    "l": "ل",
    "m": "م",
    "n": "ن",
    "h": "ه",
    "w": "و",
    "y": "ي",
    "g": "ق",  # the Gulf g of "ygool", "wgaft"
    "v": "ف",
    "p": "ب",
    "x": "كس",
    "c": "ك",
}
# Long vowels and diphthongs: written in Arabic.
_LONG = {
    "aa": "ا",
    "ee": "ي",
    "ii": "ي",
    "oo": "و",
    "uu": "و",
    "ou": "و",
    "ai": "ي",
    "ay": "ي",
    "ei": "ي",
    "ey": "ي",
    "aw": "و",
    "ow": "و",
}
_ARTICLES = frozenset({"el", "al", "il", "l"})
_VOWELS = "aeiou"


def is_arabizi(text: str) -> bool:
    """Whether ``text`` reads as Arabic written in Latin letters (see the module's notes)."""
    if _ARABIC_LETTER.search(text):
        return False
    words = [w.lower() for w in _LATIN_WORD.findall(text)]
    mixed = sum(
        1
        for w in words
        if _LETTER_DIGIT.search(w)
        and any(c.isalpha() for c in w)
        and not _NUMBER_WITH_UNIT.fullmatch(w)
    )
    arabizi = sum(1 for w in words if w in _ARABIZI_WORDS)
    english = sum(1 for w in words if w in _ENGLISH_WORDS)
    if mixed:
        return english <= mixed + arabizi
    return arabizi > english


def language_of(text: str) -> str | None:
    """The language a message is written in: Arabic for Arabizi, else by its letters."""
    return "ar" if is_arabizi(text) else script_language(text)


def matchable(text: str) -> str:
    """``text`` in Arabic letters when it is Arabizi, else as it is."""
    return to_arabic_letters(text) if is_arabizi(text) else text


def to_arabic_letters(text: str) -> str:
    """Spell Arabizi in Arabic letters (what is not a Latin word is kept as it is)."""
    parts: list[str] = []
    article = False
    for piece in re.findall(r"[A-Za-z0-9']+|[^A-Za-z0-9']+", text):
        if not _LATIN_WORD.fullmatch(piece):
            if not article or piece.strip():
                parts.append(piece)
                article = False
            continue
        if piece.lower() in _ARTICLES:
            article = True  # joined to the next word
            continue
        word = _word(piece.lower())
        if article and not word.startswith("ال"):
            word = "ال" + word
        article = False
        parts.append(word)
    if article:
        parts.append("ال")
    return "".join(parts)


def _word(word: str) -> str:
    if word.isdigit():
        return word
    prefix = ""
    for article in ("el", "al", "il"):
        rest = word.removeprefix(article).lstrip("-")
        if rest != word and len(rest) > 2:
            prefix, word = "ال", rest
            break
    letters: list[str] = []
    at = 0
    last = len(word) - 1
    while at <= last:
        pair = word[at : at + 2]
        if pair in _PAIRS:
            letters.append(_PAIRS[pair])
            at += 2
            continue
        if pair in _LONG:
            # A word's first vowel needs its alef to carry it.
            letters.append(("ا" if at == 0 and _LONG[pair] != "ا" else "") + _LONG[pair])
            at += 2
            continue
        char = word[at]
        if char in _VOWELS:
            if at == 0:
                letters.append("ا")
            elif at == last:
                short = len(word) <= 3
                ending = {"a": "ا" if short else "ه", "e": "ي" if short else "ه"}
                letters.append(ending.get(char, "ي" if char == "i" else "و"))
            # a short vowel inside a word is not written
        elif char != "'":
            letters.append(_ONE.get(char, char))
        at += 1
    return prefix + "".join(letters)
