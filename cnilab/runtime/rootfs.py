"""The only content of the lab's container images: a static busybox and its applets as links (nothing is
ever pulled). The Docker nodes of stage 06 and the pods of stage 07's containerd tier are built from it."""

from __future__ import annotations

import io
import os
import tarfile
from typing import Iterable

BUSYBOX = "/bin/busybox"


def is_static(path: str = BUSYBOX) -> bool:
    """A busybox that runs in an empty image: no dynamic loader named in it (Debian's busybox-static)."""
    if not os.path.exists(path):
        return False
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    return b"/lib64/ld-linux" not in head and b"/lib/ld-linux" not in head


def busybox_rootfs(applets: Iterable[str], dirs: Iterable[str] = ()) -> bytes:
    """A rootfs tar: bin/busybox, bin/APPLET -> busybox for each applet, and empty ``dirs``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in applets:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
    return out.getvalue()
