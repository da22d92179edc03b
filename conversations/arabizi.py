"""Arabic written in Latin letters and digits ("Arabizi"): "abgha a3rf el awraq el matlooba".

Many beneficiaries write so on WhatsApp and SMS. Matched as English it finds little: the
knowledge base's words are Arabic, and the sentence embedding knows Arabizi poorly. So a
message that reads as Arabizi is spelt in Arabic letters before it is matched, consonant by
consonant, the way a reader would sound it out: the digits stand for the letters Latin lacks
(3 ع, 7 ح, 5 خ, 2 ء, 6 ط, 9 ص, 8 ق), short vowels inside a word are dropped as Arabic
spelling drops them, and "el"/"al" joins the next word as its article. Sounding out cannot
tell a long vowel written short, nor t from ط or z from ظ ("matlooba" would be "متلوبه"), so
everyday words of beneficiaries' messages are looked up first, with their pronoun endings
("talabi" طلبي, "7alatkom" حالتكم). The result is not always correct spelling, but the
normalised words, the character n-grams and the embedding then have Arabic to compare with
Arabic. The answer is given in Arabic.

A message is taken as Arabizi when a word mixes those digits with letters ("3ndi", "a7tag")
or when it has more Arabizi words ("abi", "wesh", "kaif"...) than English ones, and no
Arabic letters.
"""

from __future__ import annotations

import re

from conversations.normalize import script_language
from conversations.references import without_references

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

# Words sounding out spells wrongly (a long vowel written short, t for ط, z for ظ, a final
# alef maqsura): everyday words of a beneficiary's message, as Arabic writes them. Several
# Latin spellings of a word share one line. A word may carry a pronoun ending ("talabi",
# "7alati", "maqarkom"), looked up without it.
_SPELT = {
    latin: arabic
    for line in """
    ابغى abgha abgh abga abgha2 abaa
    ابي abi aby abee abbi
    على 3la 3ala 3ly
    عليكم 3likom 3laikom 3alaikom 3lekom
    متى mata emta meta mta
    في fe fi fee fy fey fiy fii
    فيه fih feh feeh
    فيها feeha fiha feha
    حق hag ha8 7ag 7ag8
    الحين alheen alhin elheen elhin ilhin al7een al7in
    طلب talab tlab talb 6alab 6lab
    طلبات talabat tlabat 6alabat
    مساعده mosa3ada musa3ada msa3da mosa3da mosaada musaada mosa3adah
    موظف mowathaf mowazaf mwazaf mowadhaf mowa6af mwthf mowazzaf
    موظفين mowathafeen mowazafeen mwazafeen mowa6afeen mowathfeen
    معلومات ma3lomat ma3loomat ma3lumat m3lomat maalomat
    بيانات bayanat byanat
    اوراق awraq awra8 awrag awra2
    وثائق watha2eq wathayeq wathaeq watha2iq
    مطلوب matloob matlob matlub ma6loob
    مطلوبه matlooba matlouba matloba ma6looba matlubah
    جوال jawal jwal jawwal
    خدمات khadamat 5adamat khdamat
    خدمه khedma 5edma khidma khedmah
    واحد wa7ed wahed wa7id
    دوام dawam dwam dawaam
    مقر maqar ma8ar mgar maqarr
    جمعيه jam3iya jam3eya jam3ya jm3ya jam3iyah jam3yah
    رقم raqam ra8am ragam rakam rgm
    هويه hawiya hawya hwiya hawiyah
    تسجيل tasjeel tasjil tsjeel
    اسجل asajel asajil asajjel asjl
    دعم da3m
    سله salla sallah
    غذائيه ghetha2iya ghitha2ia ghetha2eya ghtha2iya
    موعد maw3ed maw3id mawe3d
    مواعيد mawa3eed mawa3id
    حاله 7ala 7alah 7aala halah
    شكوى shakwa shakwah
    عيد eid
    يصير ysir yseer ysyr
    رسمي rasmi rasmy
    عنوان 3nwan 3enwan 3unwan 3onwan
    قريب qareeb gareeb 8areeb qarib
    جديد jadeed jdeed jadid
    ايجار ejar ijar eejar
    كهرباء kahraba kahraba2
    فاتوره fatora fatoora fatoorah
    علاج 3elaj 3ilaj 3laj
    لجنه lajna lajnah
    قرار qarar 8arar garar
    تجديد tajdeed tajdid
    تحديث ta7deeth ta7deth tahdeeth ta7dith
    تطوع tatawo3 ta6awo3 tatawu3
    اتطوع atatawa3 at6awa3 at6wa3
    متطوع motatawe3 mt6wa3 mutatawi3
    تبرع tabaro3 tbr3 tabarru3
    اتبرع atabara3 atbr3
    زكاه zakat zakah
    مبلغ mablagh mblgh mablag
    سداد sadad sdad
    مره marra mara
    يوم yom youm
    ايام ayam ayyam
    ساعه sa3a sa3ah
    شهر shahr shahar
    شهور shhoor shuhoor
    اكلم akalem akallem akalim
    نكلم nkalem nkallem
    عائله 3a2ela 3ayla 3aila 3a2ila
    عيالي 3yali 3eyali 3yaly
    يتيم yateem yatim
    ايتام aytam aytaam
    ارمله armala armalah
    مطلقه motalaqa mutallaqa mo6alaqa mtlqa
    طلاق talaq 6alaq
    مريض mareed mared
    تعليم ta3leem ta3lim
    مدرسه madrasa madrasah
    """.strip().splitlines()
    for arabic, *spellings in [line.split()]
    for latin in spellings
}
# Pronoun endings of a word looked up in _SPELT, (Latin, Arabic). A word in ة takes them
# after a t ("7alati", "7alatkom": حالتي، حالتكم).
_ENDINGS = (
    ("kom", "كم"),
    ("kum", "كم"),
    ("hom", "هم"),
    ("hum", "هم"),
    ("ak", "ك"),
    ("ik", "ك"),
    ("ek", "ك"),
    ("na", "نا"),
    ("ha", "ها"),
    ("i", "ي"),
    ("y", "ي"),
    ("k", "ك"),
)


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


# Links, addresses and references are Latin whatever the language they are written in.
_NOT_WORDS = re.compile(r"\S*(?:https?://|www\.|@)\S*", re.IGNORECASE)


def language_of(text: str) -> str | None:
    """The language a message is written in: Arabic for Arabizi, else by its letters (not
    counting the letters of a link, an email address or a request's reference)."""
    words = _NOT_WORDS.sub(" ", without_references(text))
    return "ar" if is_arabizi(words) else script_language(words)


def matchable(text: str) -> str:
    """``text`` in Arabic letters when it is Arabizi, else as it is."""
    return to_arabic_letters(text) if is_arabizi(text) else text


def to_arabic_letters(text: str) -> str:
    """Spell Arabizi in Arabic letters (what is not a Latin word is kept as it is)."""
    parts: list[str] = []
    article = False
    for piece in re.findall(r"[A-Za-z0-9']+|[^A-Za-z0-9']+", text):
        if not _LATIN_WORD.fullmatch(piece):
            if article and piece.strip() == "-":  # "el-talab": the article's hyphen
                continue
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


def _spelt(word: str) -> str | None:
    """``word`` as _SPELT has it, with a pronoun ending it carries; None when it has not."""
    if word in _SPELT:
        return _SPELT[word]
    for latin, arabic in _ENDINGS:
        stem = word.removesuffix(latin)
        if stem == word:
            continue
        spelt = _SPELT.get(stem)
        if spelt is not None and not spelt.endswith("ه"):
            if spelt == "على":  # علي، عليكم
                return "علي" + ("" if arabic == "ي" else arabic)
            if spelt.endswith("ى"):  # شكوى + ك: شكواك
                return spelt[:-1] + "ا" + arabic
            if spelt.endswith("ي") and arabic == "ي":  # في + ي: في
                return spelt
            return spelt + arabic
        spelt = _SPELT.get(stem.removesuffix("t")) if stem.endswith("t") else None
        if spelt is not None and spelt.endswith("ه"):  # 7ala-t-i: حاله becomes حالتي
            return spelt[:-1] + "ت" + arabic
    return None


def _word(word: str) -> str:
    if word.isdigit():
        return word
    known = _spelt(word)
    if known is not None:
        return known
    prefix = ""
    for article in ("el", "al", "il"):
        rest = word.removeprefix(article).lstrip("-")
        if rest != word and len(rest) > 2:
            prefix, word = "ال", rest
            known = _spelt(word)
            if known is not None:
                return prefix + known
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
