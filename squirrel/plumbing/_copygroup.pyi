# A group of small files copied into temporary files, in C (_copygroup.c): its documentation is there.

def copy(
    dir_fd: int,
    items: list[tuple[int, int, int, bytes, int, int, int | None, bytes | None, int | None]],
    buffer: bytearray,
    /,
) -> list[int]: ...
