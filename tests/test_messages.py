"""Every count in a message agrees with its noun: "1 version", "2 versions".

Messages count through one helper, `squirrel.text.counted`. The source
check reads every f-string of the package (its `ast`) and fails where a
value is written straight before a plural noun (`f"{n} versions"`), which
reads "1 versions" when n is 1.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from squirrel.text import counted, listed, plural

PKG = Path(__file__).resolve().parent.parent / "squirrel"

# The nouns sq counts in its messages, in the plural; an adjective may stand
# between the number and the noun ("2 open conflicts", "3 known drives").
NOUNS = (
    "versions changes conflicts paths files dirs directories folders objects entries problems drives vaults"
    " items bytes copies replicas events records bundles"
).split()
ADJECTIVES = "open pending known new other more".split()
PLURAL_AFTER_VALUE = re.compile(r"^ (?:(?:" + "|".join(ADJECTIVES) + r") )?(?:" + "|".join(NOUNS) + r")\b")


def plural_after_value(path: Path, root: Path = PKG.parent) -> list[str]:
    """`file:line: text` for each f-string that writes a value straight before a plural noun."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.JoinedStr):
            continue
        parts = node.values
        for value, after in zip(parts, parts[1:], strict=False):
            if (
                isinstance(value, ast.FormattedValue)
                and isinstance(after, ast.Constant)
                and isinstance(after.value, str)
                and PLURAL_AFTER_VALUE.match(after.value)
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {after.value.strip()[:40]!r}")
    return found


def test_no_message_writes_a_number_before_a_plural_noun() -> None:
    bad = [hit for path in sorted(PKG.rglob("*.py")) for hit in plural_after_value(path)]
    assert bad == [], "count these with squirrel.text.counted:\n" + "\n".join(bad)


def test_the_check_finds_a_plural_after_a_value(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text('a = f"{n} versions"\nb = f"took {n} changes"\nc = f"{n} open conflicts"\nd = f"{n} more"\n')
    assert [hit.split(": ", 1)[1] for hit in plural_after_value(src, tmp_path)] == [
        "'versions'",
        "'changes'",
        "'open conflicts'",
    ]


@pytest.mark.parametrize(
    ("n", "noun", "text"),
    [
        (0, "version", "0 versions"),
        (1, "version", "1 version"),
        (2, "version", "2 versions"),
        (1, "open conflict", "1 open conflict"),
        (3, "open conflict", "3 open conflicts"),
        (1, "entry", "1 entry"),
        (2, "entry", "2 entries"),
        (2, "copy", "2 copies"),
        (2, "day", "2 days"),
        (2, "pending change", "2 pending changes"),
        (1, "byte", "1 byte"),
    ],
)
def test_counted_agrees_with_its_number(n: int, noun: str, text: str) -> None:
    assert counted(n, noun) == text


def test_an_irregular_plural_is_given() -> None:
    assert counted(2, "directory") == "2 directories"
    assert counted(2, "man", "men") == "2 men"
    assert plural("box") == "boxes"


def test_names_are_listed_as_in_a_sentence() -> None:
    assert [listed(["a"]), listed(["a", "b"]), listed(["a", "b", "c"])] == ["a", "a and b", "a, b and c"]
