"""`sq cat-object ID`: one object's content, from a bundle or the carrier,
checked against its id before any of it is given out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial

import blake3

from squirrel.errors import BadBundle, ContentUnavailable, CorruptCarrier
from squirrel.plumbing.bundle import BundleReader
from squirrel.plumbing.carrier import Carrier
from squirrel.plumbing.progress import Meter, ProgressCallback


def cat_object(
    oid: bytes, bundle: str | None = None, carrier: str | None = None, progress: ProgressCallback | None = None
) -> Iterator[bytes]:
    """The content of `oid` in blocks. The object is read twice: once whole,
    to check it against its id (what `progress` hears of), then again to
    hand it out."""
    meter = Meter(f"checking object {oid.hex()[:16]}", progress, 1)
    if bundle is not None:
        with BundleReader(bundle) as reader:
            if oid not in reader.objects:
                raise ContentUnavailable(f"object {oid.hex()} is not in {bundle}")
            meter.expect(0, reader.objects[oid].size)
            if not _matches(oid, lambda: meter.stream(reader.object_chunks(oid))):
                raise BadBundle(f"object {oid.hex()} in {bundle} does not match its id")
            yield from reader.object_chunks(oid)
        return
    assert carrier is not None
    store = Carrier(carrier)
    for vid in store.vault_ids():
        vault = store.open_vault(vid)
        try:
            if vault.store.has(oid):
                meter.expect(0, vault.store.size(oid))
                if not _matches(oid, partial(meter.stream, vault.store.chunks(oid))):
                    raise CorruptCarrier(f"object {oid.hex()} in the carrier {carrier} does not match its id")
                yield from vault.store.chunks(oid)
                return
        finally:
            vault.close()
    raise ContentUnavailable(f"object {oid.hex()} is not in the carrier {carrier}")


def _matches(oid: bytes, chunks: Callable[[], Iterable[bytes]]) -> bool:
    h = blake3.blake3()
    for chunk in chunks():
        h.update(chunk)
    return h.digest() == oid
