"""String enums whose members are their values wherever a string is expected."""

from __future__ import annotations

from enum import Enum


class ValueEnum(str, Enum):
    """A `str` enum whose `str()` and `format()` are its value (what `enum.StrEnum` does from Python 3.11),
    so a member written into a message, a log line or JSON reads as the plain string."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return str(self.value).__format__(spec)
