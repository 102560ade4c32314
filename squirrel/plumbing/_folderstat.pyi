# The sweep's comparison in C (_folderstat.c): its documentation is there.
import os

def compare(
    folder: str | bytes | os.PathLike[str] | os.PathLike[bytes], records: dict[bytes, bytes], /
) -> tuple[bool, int, list[bytes], list[bytes]]: ...
