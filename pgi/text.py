"""Text as a column holds it."""


def clip(value, limit: int) -> str:
    """`value` as text of at most `limit` characters that PostgreSQL can store: a gateway's words
    (or anyone's) may carry NUL or lone surrogates, which are replaced, never stored or raised on."""
    text = value if isinstance(value, str) else str(value or "")
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")[:limit]
