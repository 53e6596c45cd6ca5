"""Text and accounts as a payout file may carry them: the SEPA character set, the SEPA scheme's
countries, a spreadsheet-safe CSV cell. Pure helpers; docs/08-batch-processing.md has the rules.
"""

import re
import unicodedata

# The EPC's basic Latin character set for SEPA credit transfers (its "Guidance on the use of the
# character set"): what every SEPA bank accepts in a name or a remittance text.
SEPA_CHARACTERS = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]")
# Letters that do not decompose into a base letter and accents (NFKD leaves them whole).
LETTERS = {
    "ß": "ss", "ẞ": "SS", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Ø": "O", "ø": "o", "Đ": "D",
    "đ": "d", "Ð": "D", "ð": "d", "Ł": "L", "ł": "l", "Þ": "TH", "þ": "th", "ı": "i", "Ħ": "H", "ħ": "h",
    "&": "+", "_": "-", "@": "(at)", "–": "-", "—": "-", "‘": "'", "’": "'", "“": "'", "”": "'", "\"": "'",
}


def sepa_text(value: str, limit: int) -> str:
    """`value` in the SEPA character set, at most `limit` characters, with no space at either end.

    Accented Latin letters lose their accents (é → e, Ü → U), the letters of LETTERS are spelled
    out (ß → ss, & → +), control characters and every other character become a space, and runs of
    spaces one space. Cut at `limit`, then trimmed: a cut never leaves a trailing space."""
    out = []
    for char in unicodedata.normalize("NFKD", value):
        if unicodedata.combining(char):
            continue
        char = LETTERS.get(char, char)
        out.append(char if all(SEPA_CHARACTERS.fullmatch(c) for c in char) else " ")
    return re.sub(r" +", " ", "".join(out)).strip()[:limit].rstrip()


def in_sepa_scheme(iban: str) -> bool:
    """True when the IBAN's country is in the SEPA scheme (schwifty's registry says which)."""
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    try:
        return IBAN(iban).in_sepa_zone
    except SchwiftyException:
        return False


def account_problem(iban: str, bic: str) -> str:
    """What is wrong with an IBAN and its BIC (empty BIC allowed), or "" when both are valid."""
    from schwifty import BIC, IBAN
    from schwifty.exceptions import SchwiftyException

    from pgi.merchants.models import bic_fits_iban

    try:
        IBAN(iban)
    except SchwiftyException as exc:
        return f"IBAN {iban!r} is not valid: {exc}"
    if bic:
        try:
            BIC(bic)
        except SchwiftyException as exc:
            return f"BIC {bic!r} is not valid: {exc}"
        if not bic_fits_iban(iban, bic):
            return f"BIC {bic} is of another country than IBAN {iban[:2]}…"
    return ""


# A cell a spreadsheet would read as a formula (=, +, -, @) or whose tab or CR would be
# dropped before it: OWASP's "CSV injection" advice.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str) -> str:
    """A text cell of a CSV file for people and spreadsheets: a cell that starts as a formula
    would is prefixed with an apostrophe (shown, never evaluated), and any line break or other
    control character becomes a space, so a row stays one line. Amounts are not text cells:
    their minus sign stays."""
    if value.startswith(FORMULA_START):
        value = "'" + value
    return "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in value)
