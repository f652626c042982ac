"""How the report writes numbers (shared by every section's table)."""


def fmt_number(value, digits=1):
    """A table cell: thousands separated from 100 up, `n/a` for `None`.

    Args:
        value: float, int, other value or `None`.
        digits: int. Decimals below 100.

    Returns:
        str.
    """
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def fmt_ratio(value):
    """A ratio such as `1.54x`, `n/a` for `None`."""
    return "n/a" if value is None else f"{value:.2f}x"
