"""Card numbers kept out of PGI: the one detector, and the masking of account identifiers.

A card number here is 13 to 19 digits passing the Luhn check, written whole or in groups joined by
one kind of separator (a space or a dash), anywhere in a text, not glued to a letter or digit (so
an IBAN's digits, which follow its letters, are never one). PGI takes no card data (PCI DSS): every
field that holds one is refused, and logs redact it. The long story: docs/04-operations.md, "Card
data and retention".
"""

import re
import unicodedata
from collections.abc import Iterator
from decimal import Decimal

from stdnum import iban

MIN_DIGITS, MAX_DIGITS = 13, 19
# A run of digit groups, each group joined to the next by one space or dash; letters and digits
# around it end it. The groups inside a run are tried in every window of consecutive groups.
_RUN = re.compile(r"(?<![0-9A-Za-z])[0-9]+(?:[ -][0-9]+)*(?![0-9A-Za-z])")
_GROUP = re.compile(r"[0-9]+")
# Thirteen digits in a row, or in groups joined by one space or dash: no card number can be found in a
# text without them (every window _card_spans tries is such a sequence), so most texts (a log line's
# time, status and size) are passed over at the cost of one regular expression.
_THIRTEEN_DIGITS = re.compile(r"[0-9](?:[ -]?[0-9]){12}")
# An IBAN as printed (`DE89 3704 0044 0532 0130 00`) or compact: a country, two check digits and 11
# to 30 more letters or digits, optionally in groups. Its digit groups are account data, not a card
# number; without this a printed IBAN's groups pass Luhn about one time in four.
_IBAN = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}(?: ?[0-9A-Za-z]){11,30}")

REFUSAL_CODE = "CARD_NUMBER_NOT_ACCEPTED"
REFUSAL_MESSAGE = (
    "Looks like a card number (13 to 19 digits passing the Luhn check); PGI does not accept card numbers."
)
KEY_PLACEHOLDER = "<card number>"  # a card-shaped JSON key, in the path naming where it was


def _iban_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each valid IBAN in `text` (the longest valid one from each start)."""
    spans = []
    for candidate in _IBAN.finditer(text):
        start, piece = candidate.start(), candidate.group()
        for length in range(len(piece), 14, -1):
            after = text[start + length : start + length + 1]
            if piece[length - 1] != " " and not after.isalnum() and iban.is_valid(piece[:length]):
                spans.append((start, start + length))
                break
    return spans


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = ord(digit) - 48
        total += _LUHN_DOUBLED[value] if position % 2 else value
    return total % 10 == 0


_LUHN_DOUBLED = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]


def _card_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each card number in `text`, longest first within a run, not overlapping;
    digits inside a valid IBAN are not one.

    Each window grows from its first group by one group at a time, and stops past 19 digits or at a
    second kind of separator: linear in the text (a run of one-digit groups, `1 1 1 …`, costs at most
    19 windows per group), so a long text cannot tie up the process that checks or logs it."""
    if _THIRTEEN_DIGITS.search(text) is not None:
        yield from _card_spans_searched(text)


def _card_spans_searched(text: str) -> Iterator[tuple[int, int]]:
    """_card_spans without the first look for thirteen digits."""
    ibans = _iban_spans(text) if any(c.isalpha() for c in text) else []
    for run in _RUN.finditer(text):
        groups = [(m.start() + run.start(), m.end() + run.start()) for m in _GROUP.finditer(run.group())]
        taken_until = -1
        for first in range(len(groups)):
            if groups[first][0] < taken_until:
                continue
            found, digits, separator = None, "", None
            for last in range(first, len(groups)):
                start, end = groups[first][0], groups[last][1]
                if last > first:
                    joined_by = text[groups[last - 1][1]]
                    if separator is not None and joined_by != separator:
                        break  # one kind of separator per number: "2024-05-17 2024-05-18" is two dates
                    separator = joined_by
                digits += text[groups[last][0] : end]
                if len(digits) > MAX_DIGITS:
                    break
                if len(digits) >= MIN_DIGITS and _luhn_valid(digits):
                    if not any(start < iban_end and iban_start < end for iban_start, iban_end in ibans):
                        found = (start, end)  # keep growing: the longest window is the number
            if found:
                taken_until = found[1]
                yield found


# How a card number may be disguised, undone before looking again: any run of white space (no-break
# and thin spaces, tabs, line breaks) or invisible characters (soft hyphen, zero-width space) is one
# space; any dash (en dash, minus sign, full-width hyphen) is '-'; digits of other scripts
# (full-width, Arabic-Indic) are ASCII digits. (A dash with spaces round it stays three characters:
# "2024-05-17 - 2024-05-18" is two dates, not 16 digits.)
_BLANKS = re.compile(r"[\s\u00ad\u180e\u200b-\u200d\u2060\ufeff]+")
_DASHES = re.compile(r"[\u2010-\u2015\u2212\ufe58\ufe63\uff0d]")


def _normalized(text: str) -> str:
    if not text.isascii():
        text = "".join(str(unicodedata.decimal(c)) if c.isdecimal() and not c.isascii() else c for c in text)
        text = _DASHES.sub("-", text)
    return _BLANKS.sub(" ", text)


def has_card_number(text: str) -> bool:
    """Whether `text` holds anything shaped like a card number, as written or once disguises are
    undone (other spaces and dashes, other scripts' digits: _normalized)."""
    if next(_card_spans(text), None) is not None:
        return True
    normalized = _normalized(text)
    return normalized != text and next(_card_spans(normalized), None) is not None


def redact(text: str) -> str:
    """`text` with every card number replaced by `[card ****1111]` (bracketed, so that its last four
    digits cannot join the digits after it into another number). A card number found only once
    disguises are undone is redacted in the undone text (its spaces and dashes plain)."""
    normalized = _normalized(text)
    if normalized != text and next(_card_spans(normalized), None) is not None:
        text = normalized
    spans = list(_card_spans(text))
    for start, end in reversed(spans):
        text = text[:start] + f"[card {mask(text[start:end])}]" + text[end:]
    return text


def mask(value: str) -> str:
    """An account identifier with only its last four characters shown: `****3000`; `****` for one
    of four characters or fewer. The masked form never shows how long the identifier is."""
    return "****" + value[-4:] if len(value) > 4 else "****"


def card_number_paths(data, path: str = "") -> list[str]:
    """Where, in decoded JSON (dicts, lists, strings, numbers), a card number is: the dotted paths
    the error format names (`fromAccount`, `metadata.note`, `items[2]`). Keys are looked at as well
    as values; a card-shaped key is named as KEY_PLACEHOLDER, never as itself."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            name = KEY_PLACEHOLDER if isinstance(key, str) and has_card_number(key) else str(key)
            where = f"{path}.{name}" if path else name
            if name == KEY_PLACEHOLDER:
                found.append(where)
            found.extend(card_number_paths(value, where))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.extend(card_number_paths(value, f"{path}[{index}]"))
    elif isinstance(data, str):
        if has_card_number(data):
            found.append(path)
    elif isinstance(data, (int, Decimal)) and not isinstance(data, bool):
        digits = format(data, "f") if isinstance(data, Decimal) else str(data)  # an int's "f" is a float's
        if has_card_number(digits):
            found.append(path)
    return found
