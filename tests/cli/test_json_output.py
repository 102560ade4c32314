"""The JSON every `--json` prints: one line, exactly what `json.dumps` makes
of the document, even where a list is given as an iterator and written as
it is made (a new drive's first visit may defer a million files)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squirrel.cli import output

leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
documents = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


def as_iterators(doc: Any, lazy: bool) -> Any:
    """`doc` with the lists that are values of an object made iterators
    (when `lazy`), as a report gives its long lists."""
    if isinstance(doc, dict):
        return {k: as_iterators(v, lazy) for k, v in doc.items()}
    if isinstance(doc, list) and lazy:
        return iter(doc)
    return doc


@given(documents, st.booleans())
def test_what_is_written_is_what_json_dumps_makes(doc: Any, lazy: bool) -> None:
    written: list[str] = []
    with pytest.MonkeyPatch.context() as m:
        m.setattr(output.click, "echo", lambda text, nl=True: written.append(text + ("\n" if nl else "")))
        output.emit_json(as_iterators(doc, lazy))
    assert "".join(written) == json.dumps(doc, ensure_ascii=False) + "\n"


def test_a_long_list_is_written_in_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A list of 100,000 items goes out in pieces of about `WRITE_STEP`
    characters, never as one string."""
    items = ({"path": f"album/f{i:06d}.jpg", "reason": "waits"} for i in range(100_000))
    written: list[str] = []
    monkeypatch.setattr(output.click, "echo", lambda text, nl=True: written.append(text))
    output.emit_json({"created": 0, "deferred": items})
    doc = json.loads("".join(written))
    assert len(doc["deferred"]) == 100_000 and doc["deferred"][-1]["path"] == "album/f099999.jpg"
    assert len(written) > 10 and max(map(len, written)) < 2 * output.WRITE_STEP
