"""Text as a database column holds it: one helper instead of a slice at every call site."""


def clip(value, limit: int) -> str:
    """`value` as text of at most `limit` characters that PostgreSQL can store.

    A gateway's words may carry NUL (PostgreSQL's text refuses it: it becomes U+FFFD) or lone
    surrogates (from JSON's \\ud800 escapes; UTF-8 cannot encode them: each becomes "?"). None
    and other empty values are "", anything else that is not text is its str(). Cut after the
    replacements, so the result never exceeds `limit`."""
    text = value if isinstance(value, str) else str(value or "")
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")[:limit]


def a_or_an(word: str, *, start: bool = False) -> str:
    """`word` with its indefinite article, by its first letter: "an Authorized", "a Completed";
    with `start`, as the start of a sentence ("An Authorized")."""
    article = "an" if word[:1].lower() in "aeiou" else "a"
    return f"{article.title() if start else article} {word}"


# Bidirectional overrides and isolates: invisible, they make a name read differently than it is.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def control_characters(value: str) -> list[str]:
    """The control characters in `value` (C0 and C1 controls, tab and line breaks included, line and
    paragraph separators, lone surrogates, bidirectional overrides), each as U+XXXX, once."""
    import unicodedata

    found = [
        c for c in value if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") or c in BIDI_CONTROLS
    ]
    return sorted({f"U+{ord(c):04X}" for c in found})

