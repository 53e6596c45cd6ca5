"""Hypothesis strategies: the values a JSON answer or message holds."""

from hypothesis import strategies as st


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy:
    """Text from `text`, whole numbers within 64 bits, booleans, null, exact amounts (any, and with two
    places), and arrays and objects of these."""
    leaf = (
        text
        | st.integers(min_value=-(2**63), max_value=2**63 - 1)
        | st.booleans()
        | st.none()
        | st.decimals(allow_nan=False, allow_infinity=False)
        | st.decimals(allow_nan=False, allow_infinity=False, places=2)
    )
    return st.recursive(leaf, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5),
                        max_leaves=30)
