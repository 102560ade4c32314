"""Words shared by the messages of every layer.

A count in a message agrees with its noun: `counted(1, "version")` is
"1 version", `counted(3, "version")` "3 versions". Every message that
counts something goes through `counted` (tests/test_messages.py checks the
source for a number written straight before a plural noun).
"""

from __future__ import annotations

_VOWELS = "aeiou"


def plural(noun: str) -> str:
    """The plural of a noun or noun phrase (its last word changes):
    "version" -> "versions", "entry" -> "entries", "open conflict" ->
    "open conflicts"."""
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in _VOWELS:
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def counted(n: int, noun: str, many: str | None = None) -> str:
    """`n` and its noun, singular for exactly one: "1 file", "0 files",
    "2 files". `many` gives a plural that `plural` does not know."""
    return f"{n} {noun if n == 1 else many or plural(noun)}"


def listed(names: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
