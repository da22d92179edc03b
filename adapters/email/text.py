"""What the beneficiary wrote, out of a mail body: HTML turned into text, quoted history,
forwarded headers and signatures cut off, in Arabic and English alike."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, Tag
from bs4.element import (
    Comment,
    Declaration,
    Doctype,
    NavigableString,
    ProcessingInstruction,
)

# Bidirectional marks Gmail and Outlook put around Arabic attribution lines.
BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

# "On Sun, 22 Nov 2026 at 10:00, Name <a@b> wrote:" (Gmail, Apple Mail, Thunderbird),
# possibly wrapped over two or three lines.
WROTE_EN = re.compile(r"^on\b.{4,}\bwrote\s*:?$", re.IGNORECASE | re.DOTALL)
# "في الأحد، 22 نوفمبر 2026 في 10:00 ص كتب فلان <a@b>:" and "... فلان <a@b> كتب:".
WROTE_AR = re.compile(r"^في\s.{4,}\sكتب(?:\s.*)?:$", re.DOTALL)
# The marks below are matched against a line as ``_normal`` writes it: without tashkeel or
# the article, hamza, taa marbuta and alef maqsura written plainly, so that "أُرسلت:" and
# "ارسلت:", "الرسالة المُعاد توجيهها" and "رسالة معاد توجيهها" are each one mark.
# Outlook's header block before the quoted message, in English and Arabic.
HEADER_FROM = re.compile(r"^\*?(from|من)\s*:\*?\s*\S", re.IGNORECASE)
HEADER_NEXT = re.compile(
    r"^\*?(sent|date|to|subject|cc|تاريخ ارسال|تم ارسال|ارسلت|تاريخ|الي|موضوع|نسخه)\s*:",
    re.IGNORECASE,
)
# Only a mail program writes "Sent:" ("أُرسلت:"); a letter typed by hand may well have
# From/To/Subject.
HEADER_SENT = re.compile(r"^\*?(sent|تاريخ ارسال|تم ارسال|ارسلت)\s*:", re.IGNORECASE)
# Marks of quoted or forwarded history (Gmail, Outlook, Apple Mail).
FORWARDED = r"(forwarded message|رساله (تمت )?(معاد|اعاده) توجيه(ها)?)"
SEPARATORS = re.compile(
    r"^(-{2,}\s*(original message|رساله اصليه)\s*-{2,}"
    r"|_{10,}"
    rf"|-{{5,}}\s*{FORWARDED}\s*-{{5,}}"
    r"|begin forwarded message:|بدايه رساله (معاد|اعاده) توجيه(ها)?:)$",
    re.IGNORECASE,
)
FORWARD_MARK = re.compile(
    rf"^-{{5,}}\s*{FORWARDED}\s*-{{5,}}$"
    r"|^(begin forwarded message:|بدايه رساله (معاد|اعاده) توجيه(ها)?:)$",
    re.IGNORECASE,
)
# What phones add under every message.
SIGN_OFFS = re.compile(
    r"^(sent from my \w+.*|get outlook for \w+.*|sent from (yahoo )?mail for \w+.*"
    r"|أرسلت من \S+.*|أُرسلت من \S+.*|تم الإرسال من \S+.*|مرسل من \S+.*)$",
    re.IGNORECASE,
)

# A closing line ("مع التحية", "Best regards") under which only a name or two follow.
CLOSINGS = re.compile(
    r"^(مع\s+(خالص\s+|وافر\s+)?(التحية|التحيات|تحياتي|الشكر|التقدير)(\s+والتقدير|\s+والاحترام)?"
    r"|و?شكرا(\s+لكم|\s+لك|\s+جزيلا)?|تحياتي|دمتم\s+بخير|والسلام(\s+عليكم)?"
    r"|و?تقبلوا\s+(فائق\s+)?(الاحترام|التحية)(\s+والتقدير)?"
    r"|((best|kind|warm|warmest)\s+)?regards|best(\s+wishes)?|many\s+thanks|thanks?(\s+you)?"
    r"(\s+so\s+much)?|sincerely(\s+yours)?|yours\s+(sincerely|faithfully|truly)|cheers)"
    r"\s*[,.،!]*$",
    re.IGNORECASE,
)
TASHKEEL = re.compile("[\u064b-\u065f\u0670]")
PLAIN_LETTERS = str.maketrans("أإآٱةى", "ااااهي")
# "ال" before a word of two letters or more ("الى" is a word of its own).
ARTICLE = re.compile(r"(?<![^\s*(])ال(?=\w\w)")
DIGIT = re.compile(r"[0-9\u0660-\u0669\u06f0-\u06f9]")
GREETING_LINE = re.compile(
    r"^(السلام عليكم.*|مرحبا.*|اهلا.*|أهلا.*|hi\b.*|hello\b.*|dear\b.*"
    r"|good (morning|afternoon|evening)\b.*)$",
    re.IGNORECASE,
)
# What may stand under a closing: a name, a title, the association's name (up to three
# lines), and with contact lines up to eight.
CLOSING_TAIL_LINES = 3
CLOSING_TAIL_LINES_WITH_CONTACTS = 8
CLOSING_TAIL_LENGTH = 40
# The line a signature starts under ("-- ", "__", "—").
SIGNATURE_RULE = re.compile(r"^(-{2,4}|_{2,9}|[—–]{1,3})$")
# A contact line of a signature, as ``_normal`` writes it: a labelled number or address
# ("جوال 0551234567", "ت: 0114567890", "Mobile: +966 55 123 4567", "البريد: a@b.org").
DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
PHONE = r"\+?[\d(][\d\s()./-]{5,}"
CONTACT_LABELLED = re.compile(
    r"^(((رقم\s+)?(جوال|جوالي|هاتف|هاتفي|تليفون|تلفون|موبايل|فاكس|ناسوخ|واتساب|واتس)"
    r"|mobile|mob|tel|telephone|phone|cell|fax|whatsapp)\s*[:.\-]?"
    r"|(ت|ج|ف|م|ه|m|t|p|f|w)\s*[:/])\s*"
    rf"{PHONE}$",
    re.IGNORECASE,
)
EMAIL_OR_SITE = re.compile(
    r"^(\S+(\s+\S+)?\s*[:.]?\s*)?([\w.+-]+@[\w-]+(\.[\w-]+)+|(https?://|www\.)\S+"
    r"|[\w-]+(\.[\w-]+)*\.(org|com|net|edu|gov|sa)(\.sa)?/?)$",
    re.IGNORECASE,
)
# A telephone number alone (not a national ID, "1012345672", which may be an answer).
BARE_PHONE = re.compile(r"^(\+|00|0|966)[\d\s()./-]{6,}$")
# A line under which a number is the one asked about ("رقمي الجديد / 0551234567").
NUMBER_WORDS = re.compile(r"رقم|جوال|هاتف|هويه|اقامه|number|mobile|phone|\bid\b", re.IGNORECASE)

# HTML containers of quoted history and signatures (Gmail, Outlook, Apple Mail, Yahoo).
QUOTE_SELECTORS = (
    "blockquote",
    "div.gmail_quote",
    "div.gmail_signature",
    "div.moz-cite-prefix",
    "div.yahoo_quoted",
    "div#Signature",
    "div#divRplyFwdMsg",
)
# Elements that stand on their own lines, and those followed by an empty line.
BLOCKS = {"div", "tr", "li", "ul", "ol", "table", "pre", "hr", "section", "article", "header"}
BLOCKS |= {"footer", "blockquote", "dd", "dt", "dl", "center", "address"}
PARAGRAPHS = {"p", "h1", "h2", "h3", "h4", "h5", "h6"}


def html_to_text(html: str, *, keep_quotes: bool = False) -> str:
    """Readable text of an HTML body: one line per block, quoted history dropped."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "head", "title", "meta"]):
        tag.decompose()
    if not keep_quotes:
        for selector in QUOTE_SELECTORS:
            for tag in soup.select(selector):
                tag.decompose()
        # Outlook on the web: everything after the "append on send" marker is history.
        marker = soup.find(id="appendonsend")
        if isinstance(marker, Tag):
            for sibling in list(marker.find_next_siblings()):
                sibling.decompose()
            marker.decompose()
    out = _Text()
    out.render(soup)
    return tidy(out.value())


class _Text:
    """Text as a browser lays it out: source line breaks are spaces, blocks start on a new
    line, paragraphs leave an empty line, ``<br>`` breaks the line where it stands."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def value(self) -> str:
        return "".join(self.parts)

    def _tail(self) -> str:
        return "".join(self.parts[-3:]).rstrip(" ")

    def _break(self, blank: bool = False) -> None:
        tail = self._tail()
        if tail and not tail.endswith("\n"):
            self.parts.append("\n")
        if blank and tail and not self._tail().endswith("\n\n"):
            self.parts.append("\n")

    def render(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if isinstance(child, (Comment, Doctype, Declaration, ProcessingInstruction)):
                    continue
                inside_pre = any(p.name == "pre" for p in child.parents)
                text = str(child) if inside_pre else re.sub(r"\s+", " ", str(child))
                if text.strip() or not self._tail().endswith("\n"):
                    self.parts.append(text)
            elif isinstance(child, Tag):
                if child.name == "br":
                    self.parts.append("\n")
                elif child.name in BLOCKS or child.name in PARAGRAPHS:
                    paragraph = child.name in PARAGRAPHS
                    self._break(blank=paragraph)
                    if child.name == "li":
                        self.parts.append("- ")
                    self.render(child)
                    self._break(blank=paragraph)
                else:
                    self.render(child)


def tidy(text: str) -> str:
    """Spaces collapsed within lines, at most one empty line in a row, no edge blanks."""
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _plain(line: str) -> str:
    return BIDI.sub("", line).strip()


def _normal(line: str) -> str:
    """A line as the marks of history are written: see ``HEADER_FROM``."""
    line = TASHKEEL.sub("", _plain(line)).replace("\u0640", "").translate(PLAIN_LETTERS)
    return ARTICLE.sub("", line)


def is_forward_mark(line: str) -> bool:
    """Whether the line announces a forwarded message ("---------- Forwarded message ---")."""
    return bool(FORWARD_MARK.match(_normal(line)))


def _attribution_end(lines: list[str], index: int) -> int | None:
    """The last line of an "On ... wrote:" / "في ... كتب:" line starting at ``index``."""
    first = _plain(lines[index])
    if not first.lower().startswith("on ") and not first.startswith("في "):
        return None
    joined = first
    for end in range(index, min(index + 3, len(lines))):
        if end > index:
            joined = f"{joined} {_plain(lines[end])}"
        if WROTE_EN.match(joined) or WROTE_AR.match(joined):
            return end
    return None


def _header_block(lines: list[str], index: int, *, strict: bool) -> int | None:
    """The end of an Outlook "From:/Sent:/To:/Subject:" block starting at ``index``.

    ``strict`` asks for a "Sent:" line, for blocks not announced by a separator line.
    """
    if not HEADER_FROM.match(_normal(lines[index])):
        return None
    end = index
    seen = 0
    sent = False
    for probe in range(index + 1, min(index + 8, len(lines))):
        line = _normal(lines[probe])
        if HEADER_NEXT.match(line):
            seen += 1
            sent = sent or bool(HEADER_SENT.match(line))
            end = probe
        elif line and seen:
            break
    if seen == 0 or (strict and not sent):
        return None
    return end


def _own_part(lines: list[str]) -> tuple[list[str], list[str]]:
    """The lines before the first mark of quoted or forwarded history, and the lines after
    that mark's header block (the history itself)."""
    for index, raw in enumerate(lines):
        if SEPARATORS.match(_normal(raw)):
            rest = lines[index + 1 :]
            start = 0
            while start < len(rest) and not _plain(rest[start]):
                start += 1
            block = _header_block(rest, start, strict=False) if start < len(rest) else None
            return lines[:index], rest[block + 1 :] if block is not None else rest
        end = _attribution_end(lines, index)
        if end is not None:
            return lines[:index], lines[end + 1 :]
        block = _header_block(lines, index, strict=True)
        if block is not None:
            return lines[:index], lines[block + 1 :]
    return lines, []


def _strip_signature(lines: list[str]) -> list[str]:
    for index, raw in enumerate(lines):
        if SIGNATURE_RULE.match(_plain(raw)):
            lines = lines[:index]
            break
    while lines and (not _plain(lines[-1]) or SIGN_OFFS.match(_plain(lines[-1]))):
        lines = lines[:-1]
    return lines


def _contact(line: str, *, after_name: bool) -> bool:
    """Whether a line under a closing is a signature's contact line: a labelled number, an
    address, a website, or a telephone number alone under a name ("أحمد الغامدي /
    0551234567")."""
    line = _normal(line).translate(DIGITS)
    if CONTACT_LABELLED.match(line) or EMAIL_OR_SITE.match(line):
        return True
    return after_name and bool(BARE_PHONE.match(line))


def _signature(tail: list[str]) -> list[bool] | None:
    """Which lines under a closing are contact lines, when all of them are a signature's: a
    name, a title, the association's name (short, without digits) or contact lines. None
    when they are the answer to a question: a number right under the closing ("Thanks /
    1012345672"), a long line."""
    kinds: list[bool] = []
    for index, line in enumerate(tail):
        after_name = index > 0 and not NUMBER_WORDS.search(_normal(tail[index - 1]))
        if _contact(line, after_name=after_name):
            kinds.append(True)
        elif len(line) <= CLOSING_TAIL_LENGTH and not DIGIT.search(line):
            kinds.append(False)
        else:
            return None
    return kinds


def _strip_closing(lines: list[str]) -> list[str]:
    """The lines above a closing formula and the signature under it, when words other than
    a greeting stand above, or a greeting and a signature with contact lines."""
    filled = [i for i, line in enumerate(lines) if _plain(line)]
    for index in reversed(filled[-(CLOSING_TAIL_LINES_WITH_CONTACTS + 1) :]):
        if not CLOSINGS.match(TASHKEEL.sub("", _plain(lines[index]))):
            continue
        under = [i for i in filled if i > index]
        kinds = _signature([_plain(lines[i]) for i in under])
        if kinds is None or (len(under) > CLOSING_TAIL_LINES and not any(kinds)):
            break  # a number right under it ("Thanks / 1012345672") is what was asked for
        above = [i for i in filled if i < index]
        if not above:
            break  # the closing is the whole message: what stands under it is the answer
        if all(GREETING_LINE.match(_plain(lines[i])) for i in above) and not any(kinds):
            break  # nothing but a greeting above: the name under the closing is the answer
        return lines[: above[-1] + 1]
    return lines


def own_words(text: str, *, forwarded: bool = False) -> str:
    """What the sender wrote: without quoted lines, the quoted history, the signature.

    A forwarded message whose sender added nothing keeps the forwarded text, since that
    is what they want read.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = [line for line in lines if not _plain(line).startswith(">")]
    own, history = _own_part(lines)
    # The closing and the name under it go too: what is left is the answer to a question.
    own = _strip_closing(_strip_signature(own))
    result = tidy("\n".join(own))
    if not result and (forwarded or any(is_forward_mark(x) for x in lines)):
        result = tidy("\n".join(_strip_signature(history)))
    return result
