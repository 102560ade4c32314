"""Knowledge files (docs/formats/knowledge.md): golden file, round trip from a
real replica, inherited sync times, and garbage.

To regenerate the golden file after a deliberate format change (and a
version bump): `.venv/bin/python -m tests.plumbing.test_knowledge`.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from squirrel.errors import BadBundle, BadPath, UnsupportedFormat, WrongVault
from squirrel.plumbing.idset import ObjectIds
from squirrel.plumbing.knowledge import Knowledge
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.vtime import VectorTime
from squirrel.porcelain.init import init
from squirrel.porcelain.pack import pack
from squirrel.porcelain.push import push
from tests.helpers import make_tree

DATA = Path(__file__).resolve().parent.parent / "data"
GOLDEN = DATA / "golden-knowledge-v1.json"

VAULT = "5157554952524c31"
ME = "b0b000000000000b"
OTHER = "a11ce0000000000a"
THIRD = "c0ffee000000000c"
OIDS = sorted(blake3.blake3(b"object %d" % i).digest() for i in range(3))


def golden_knowledge() -> Knowledge:
    stored = {
        b"": VectorTime({OTHER: 7, THIRD: 2}),
        b"photos": VectorTime({OTHER: 9, THIRD: 2}),
        b"photos/2024/caf\xc3\xa9": VectorTime({OTHER: 3}),
        b"bin\xff": VectorTime(),
    }
    return Knowledge(VAULT, ME, 12, stored, None, ObjectIds.build(OIDS))


def test_golden_knowledge_reads_as_its_inputs() -> None:
    k = Knowledge.read(str(GOLDEN))
    g = golden_knowledge()
    assert (k.vault, k.replica, k.counter) == (VAULT, ME, 12)
    assert k.stored == g.stored
    assert set(k.objects) == set(OIDS)
    assert k.index is None
    assert k.sync_time(b"photos/2024/x.jpg") == VectorTime({OTHER: 9, THIRD: 2, ME: 12})
    assert k.sync_time(b"photos/2024/caf\xc3\xa9/y") == VectorTime({OTHER: 3, ME: 12})
    assert k.sync_time(b"bin\xff") == VectorTime({ME: 12})
    assert k.sync_time(b"other") == VectorTime({OTHER: 7, THIRD: 2, ME: 12})
    assert k.held_among({*OIDS, bytes(32)}) == set(OIDS)


def test_golden_knowledge_is_written_again_byte_for_byte(tmp_path: Path) -> None:
    golden_knowledge().write(str(tmp_path / "k.json"))
    assert (tmp_path / "k.json").read_bytes() == GOLDEN.read_bytes()


def test_golden_knowledge_fields_match_the_spec() -> None:
    doc = json.loads(GOLDEN.read_bytes())
    assert set(doc) == {"format", "vault", "replica", "counter", "sync", "objects"}
    assert doc["format"] == 1
    assert base64.b64decode(doc["objects"]) == b"".join(OIDS)
    assert {"path_b64": "", "s": {OTHER: 7, THIRD: 2}} in doc["sync"]


def test_knowledge_of_a_replica_round_trips_through_a_file(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    make_tree(a, {"x/1.txt": "one", "x/2.txt": "two", "y/3.txt": "three"})
    make_tree(b, {"mine.txt": "mine"})
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    push(str(a), str(b), [str(a / "x")])
    with Replica.open(str(b), write=False) as rep:
        live = Knowledge.of_replica(rep)
        live.write(str(tmp_path / "k.json"))
        back = Knowledge.read(str(tmp_path / "k.json"))
        assert (back.vault, back.replica, back.counter) == (rep.identity.vault, rep.id, rep.index.counter)
        for p in (b"", b"x", b"x/1.txt", b"y", b"y/3.txt", b"mine.txt", b"new/deep/path"):
            assert back.sync_time(p) == rep.index.sync_time(p), p
        assert set(back.objects) == set(rep.index.object_ids())
        assert len(back.objects) == 3  # one.txt, two.txt, mine.txt


def test_a_knowledge_file_of_another_vault_is_refused_by_pack(tmp_path: Path) -> None:
    a, z = tmp_path / "A", tmp_path / "Z"
    make_tree(a, {"f": "f"})
    z.mkdir()
    init(str(a), name="A")
    init(str(z), name="Z")
    with Replica.open(str(z), write=False) as rep:
        Knowledge.of_replica(rep).write(str(tmp_path / "z.json"))
    with pytest.raises(WrongVault):
        pack(str(a), str(tmp_path / "b.sqb"), base=str(tmp_path / "z.json"))
    assert not (tmp_path / "b.sqb").exists()


def test_a_newer_format_is_unsupported(tmp_path: Path) -> None:
    doc = json.loads(GOLDEN.read_bytes())
    doc["format"] = 2
    (tmp_path / "k.json").write_text(json.dumps(doc))
    with pytest.raises(UnsupportedFormat, match="upgrade"):
        Knowledge.read(str(tmp_path / "k.json"))


def test_a_missing_file_is_a_wrong_path_not_a_damaged_file(tmp_path: Path) -> None:
    with pytest.raises(BadPath, match="no such knowledge file"):
        Knowledge.read(str(tmp_path / "nope.json"))


def golden_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(GOLDEN.read_bytes())
    return doc


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d.update(vault="not-an-id"), id="vault"),
        pytest.param(lambda d: d.update(replica="XYZ"), id="replica"),
        pytest.param(lambda d: d.update(counter=-1), id="negative-counter"),
        pytest.param(lambda d: d.update(counter="3"), id="string-counter"),
        pytest.param(lambda d: d.update(format="1"), id="string-format"),
        pytest.param(lambda d: d.pop("sync"), id="no-sync"),
        pytest.param(lambda d: d.update(objects="AAAA"), id="objects-not-32-bytes"),
        pytest.param(lambda d: d.update(objects="!!"), id="objects-not-base64"),
        pytest.param(lambda d: d["sync"].append({"path_b64": "Li4=", "s": {}}), id="dotdot-path"),
        pytest.param(lambda d: d["sync"].append({"path_b64": "L2V0Yw==", "s": {}}), id="absolute-path"),
        pytest.param(lambda d: d["sync"].append({"path_b64": "LnNxdWlycmVs", "s": {}}), id="squirrel-path"),
        pytest.param(lambda d: d["sync"].append({"path_b64": "", "s": {"zz": 1}}), id="bad-replica-id"),
        pytest.param(lambda d: d["sync"].append({"path_b64": "", "s": {OTHER: -4}}), id="negative-time"),
        pytest.param(lambda d: d["sync"].append({"path_b64": "", "s": {OTHER: 1 << 64}}), id="huge-time"),
        pytest.param(lambda d: d["sync"].append([1, 2]), id="item-not-an-object"),
    ],
)
def test_malformed_knowledge_is_refused(tmp_path: Path, change: Any) -> None:
    doc = golden_doc()
    change(doc)
    (tmp_path / "k.json").write_text(json.dumps(doc))
    with pytest.raises(BadBundle, match="not a knowledge file"):
        Knowledge.read(str(tmp_path / "k.json"))


GARBAGE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def read_garbage(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        Knowledge.read(str(path))
    except (BadBundle, UnsupportedFormat):
        pass


@GARBAGE
@given(data=st.binary(max_size=300))
def test_garbage_bytes_raise_only_knowledge_errors(tmp_path: Path, data: bytes) -> None:
    read_garbage(tmp_path / "k.json", data)


@GARBAGE
@given(doc=JSON)
def test_garbage_json_raises_only_knowledge_errors(tmp_path: Path, doc: Any) -> None:
    read_garbage(tmp_path / "k.json", json.dumps(doc).encode())


@GARBAGE
@given(
    changes=st.dictionaries(
        st.sampled_from(["format", "vault", "replica", "counter", "sync", "objects"]), JSON, min_size=1, max_size=3
    ),
    item=st.dictionaries(st.sampled_from(["path_b64", "s"]), JSON, max_size=2),
)
def test_a_hostile_knowledge_file_raises_only_knowledge_errors(
    tmp_path: Path, changes: dict[str, Any], item: dict[str, Any]
) -> None:
    doc = golden_doc()
    doc["sync"].append(item)
    read_garbage(tmp_path / "k1.json", json.dumps(doc).encode())
    doc.update(changes)
    read_garbage(tmp_path / "k2.json", json.dumps(doc).encode())


def test_a_deeply_nested_knowledge_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "k.json").write_bytes(b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(BadBundle):
        Knowledge.read(str(tmp_path / "k.json"))


if __name__ == "__main__":
    DATA.mkdir(exist_ok=True)
    golden_knowledge().write(str(GOLDEN))
    sys.stdout.write(f"wrote {GOLDEN}\n")
