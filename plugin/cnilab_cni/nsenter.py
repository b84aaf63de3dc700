"""Enter a namespace (setns) without importing ctypes: the plugin's one way in (the daemon's children
enter their caller's mount and network namespaces with it too).

``os.setns`` exists from Python 3.12; Debian 12 ships 3.11, where ``ctypes``
costs ~4.5 ms to import. ``_ctypes`` (the C half, 0.4 ms) can call libc directly.
"""

import os

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000

if hasattr(os, "setns"):
    def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
        os.setns(fd, nstype)
else:
    import _ctypes

    class _Int(_ctypes._SimpleCData):
        _type_ = "i"

    class _CFunc(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = _Int
        _argtypes_ = (_Int, _Int)

    _setns = _CFunc(_ctypes.dlsym(_ctypes.dlopen(None), "setns"))

    def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
        if _setns(fd, nstype) != 0:
            err = _ctypes.get_errno()
            raise OSError(err, os.strerror(err))


class InNetns:
    """``with InNetns(path):`` runs the block with the calling thread in that namespace."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self) -> "InNetns":
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            setns(target)
        finally:
            os.close(target)
        return self

    def __exit__(self, *exc) -> None:
        setns(self.home)
        os.close(self.home)
