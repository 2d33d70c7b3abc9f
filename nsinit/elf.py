"""Is an executable static?  For what nsinit puts into a container from the
host (busybox for ``nsinit rootfs``, tini for ``exec --init``): the
container has no libc or dynamic loader for a dynamic one.  Only ``struct``:
``exec --init`` reads it on the create path."""
from __future__ import annotations

import struct

_PT_INTERP = 3


def is_static_elf(path: str) -> bool:
    """True when ``path`` is an ELF file without a PT_INTERP program header.

    That is what ``ldd`` checks before printing "not a dynamic executable";
    static-pie binaries have no PT_INTERP either and run fine without a libc.
    """
    try:
        with open(path, "rb") as f:
            ident = f.read(16)
            if len(ident) < 16 or ident[:4] != b"\x7fELF":
                return False
            is64 = ident[4] == 2
            endian = "<" if ident[5] == 1 else ">"
            if is64:
                header = f.read(48)
                phoff, = struct.unpack_from(endian + "Q", header, 16)
                phentsize, phnum = struct.unpack_from(endian + "HH", header, 38)
            else:
                header = f.read(36)
                phoff, = struct.unpack_from(endian + "I", header, 12)
                phentsize, phnum = struct.unpack_from(endian + "HH", header, 26)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except (OSError, struct.error):
        return False
    if len(table) < phentsize * phnum or phentsize < 4:
        return False
    for i in range(phnum):
        p_type, = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == _PT_INTERP:
            return False
    return True
