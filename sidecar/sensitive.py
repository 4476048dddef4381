"""A wrapper that keeps secret text out of reprs, logs and exception messages."""

from __future__ import annotations


class Sensitive:
    """Holds a secret string; ``str``/``repr`` never show it, ``reveal()`` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Sensitive('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sensitive) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Sensitive", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)
