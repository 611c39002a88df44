"""A value that must never be printed: its repr and str are masked, so it can travel as an
argument (e.g. an API key to a ProviderActor) without reaching a log line."""
from __future__ import annotations


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self):
        return (Secret, (self._value,))
