"""Turning a question into the features the FAQ ranking compares.

Arabic and English text is normalised (one module for the whole engine), Gulf-dialect
words are mapped to the standard word they stand for, greetings and filler are dropped,
and words are lightly stemmed; character n-grams of the words absorb typos.
"""

from __future__ import annotations

import re
from functools import lru_cache

from nltk.stem.isri import ISRIStemmer
from nltk.stem.porter import PorterStemmer

from conversations.normalize import normalize_arabic

# Gulf and Saudi dialect words (normalised) → the standard word they stand for.
DIALECT = {
    "وش": "ما",
    "ايش": "ما",
    "شنو": "ما",
    "شو": "ما",
    "وشو": "ما",
    "ابغي": "اريد",
    "ابغا": "اريد",
    "ابغاه": "اريد",
    "ابي": "اريد",
    "ابيه": "اريد",
    "ودي": "اريد",
    "بغيت": "اريد",
    "نبغي": "نريد",
    "نبي": "نريد",
    "يبغي": "يريد",
    "يبي": "يريد",
    "تبغي": "تريد",
    "تبي": "تريد",
    "وين": "اين",
    "فين": "اين",
    "ليش": "لماذا",
    "ليه": "لماذا",
    "متي": "متى",
    "اقدر": "استطيع",
    "نقدر": "نستطيع",
    "يقدر": "يستطيع",
    "اشلون": "كيف",
    "شلون": "كيف",
    "كيفيه": "كيف",
    "الحين": "الان",
    "حقي": "لي",
    "حقنا": "لنا",
    "حقكم": "لكم",
    "عيال": "اطفال",
    "عيالي": "اطفالي",
    "فلوس": "مال",
    "زين": "جيد",
    "مره": "جدا",
    "وايد": "كثير",
    "ذي": "هذه",
    "هذي": "هذه",
    "ذا": "هذا",
    "عشان": "لان",
    "علشان": "لان",
    "يعطوني": "يعطونني",
    "اجهز": "احضر",
    "اطلع": "استخرج",
    "ياخذ": "يستغرق",
    "تاخذ": "تستغرق",
    "يطول": "يستغرق",
    "اكلم": "اتحدث",
    "كلم": "تحدث",
    "اتواصل": "اتصل",
    "نتواصل": "نتصل",
    "دوام": "عمل",
    "الدوام": "العمل",
    "اوراق": "مستندات",
    "الاوراق": "المستندات",
    "ورق": "مستندات",
    "الورق": "المستندات",
}

# Words that carry no meaning for matching: greetings, politeness, question words, particles.
STOPWORDS = frozenset(
    """
    السلام عليكم وعليكم ورحمه الله وبركاته مرحبا اهلا هلا هلا والله يا صباح مساء الخير النور لو
    سمحت سمحتي فضلك فضلكم ممكن الله يعافيك يعطيك العافيه يجزاك جزاك جزاكم خير خيرا شكرا تكفي
    تكفون اخوي اختي اخي استاذ استاذه عندي سوال سوالي استفسار اسال اريد نريد يريد تريد اعرف نعرف
    ابغي ابي ودي هل ما ماذا هي هو هم انا انت انتم نحن في على عن الى من مع و او ان انه اني لي لك
    لكم هذا هذه ذلك تلك التي الذي اللي كان كانت يكون تكون قد لقد كل بعض اي ايه ايش وش ثم او ام
    بل لا لم لن ليس غير سوي كيف متى اين كم لماذا hi hello hey dear salam please pls plz thanks
    thank you sir madam i im a an the is are am be been do does did can could would will shall
    should may might to of for in on at by from with about as it its this that these those
    there here my me we our us you your he she they them his her what how when where which who
    why want wanna need like know tell please ask question
    ابيك ابغاك يعطيكم يعافيكم مسا اود يمكن هناك تكفى
    تمام طيب اوكي اوك زين ماشي ok okay okey oki k
    ya hal fe fi 3la ala el al ana abi abgha abga law samaht mumkin kam wsh wesh eish ayesh
    """.split()
)

_DOUBLED = re.compile(r"([\u0621-\u064a])\1")

# Word by word work is remembered: words repeat from one stored question to the next, so a
# knowledge base loads seconds sooner (10,000 entries), and loads again (a reload) in a
# fraction of the first time. Only so many: a server that ran for months would otherwise keep
# every word ever written to it (typos, names, numbers), and 200,000 distinct words take
# about 320 MB in these caches. Enough for the shipped knowledge base's vocabulary (about
# 10,000 words): about 250 bytes a word...
WORDS_REMEMBERED = 32_768
# ... but a word's character n-grams take about 1 KB, and are quick to work out again.
GRAMS_REMEMBERED = 4096


@lru_cache(maxsize=WORDS_REMEMBERED)
def squeeze(word: str) -> str:
    """A doubled Arabic letter as one ("الاورااق", "علييكم"): stretched words match."""
    return _DOUBLED.sub(r"\1", word)


DIALECT = {squeeze(k): v for k, v in DIALECT.items()}
STOPWORDS = frozenset(squeeze(w) for w in STOPWORDS)

_isri = ISRIStemmer()
_porter = PorterStemmer()


def _is_arabic(word: str) -> bool:
    return any("\u0600" <= ch <= "\u06ff" for ch in word)


@lru_cache(maxsize=WORDS_REMEMBERED)
def stem(word: str) -> str:
    if _is_arabic(word):
        if len(word) <= 3:
            return word
        stemmed = str(_isri.stem(word))
        return stemmed if len(stemmed) >= 2 else word
    return str(_porter.stem(word))


def content_words(text: str) -> list[str]:
    """Normalised words that carry meaning, dialect mapped to the standard word."""
    return meaningful(normalize_arabic(text))


def meaningful(normalized: str) -> list[str]:
    """``content_words`` of a text already normalised with ``normalize_arabic``."""
    words = []
    for token in normalized.split():
        token = squeeze(token)
        token = DIALECT.get(token, token)
        if token in STOPWORDS or len(token) < 2:
            continue
        # The conjunction "و" glued to a word ("والأوراق") is not part of it.
        if token.startswith("و") and len(token) > 4 and _is_arabic(token):
            rest = DIALECT.get(token[1:], token[1:])
            if rest.startswith("ال"):
                token = rest
        words.append(token)
    return words


def word_features(words: list[str]) -> list[str]:
    return [stem(w) for w in words]


def char_features(words: list[str], sizes: tuple[int, ...] = (3, 4)) -> list[str]:
    """Character n-grams of each word, with its edges marked, definite article dropped."""
    grams: list[str] = []
    for word in words:
        grams.extend(_word_grams(word, sizes))
    return grams


@lru_cache(maxsize=GRAMS_REMEMBERED)
def _word_grams(word: str, sizes: tuple[int, ...]) -> tuple[str, ...]:
    if _is_arabic(word) and word.startswith("ال") and len(word) > 4:
        word = word[2:]
    padded = f"#{word}#"
    return tuple(padded[i : i + size] for size in sizes for i in range(len(padded) - size + 1))


_SENTENCE_END = re.compile(r"(?<=[.!?؟\n])\s*")


def answer_lead(answer: str) -> str | None:
    """An answer's first sentence of three words or more: it says what the entry is about in
    words of its own, which the questions may not use."""
    for sentence in _SENTENCE_END.split(answer):
        if len(sentence.split()) >= 3:
            return sentence.strip()
    return None


def without_greetings(text: str) -> str:
    """The text as written, less the greeting and filler words around the question."""
    kept = [raw for raw in text.split() if _normal_word(raw) not in GREETINGS]
    return " ".join(kept) or text


@lru_cache(maxsize=WORDS_REMEMBERED)
def _normal_word(word: str) -> str:
    return normalize_arabic(word)


GREETINGS = frozenset(
    normalize_arabic(w)
    for w in """
    السلام عليكم وعليكم ورحمة الله وبركاته مرحبا اهلا هلا صباح مساء الخير النور لو سمحت سمحتي
    فضلك فضلكم الله يعافيك يعطيك العافية جزاك جزاكم خيرا شكرا تكفى تكفون hi hello hey dear
    salam please pls plz thanks thank
    """.split()
)
