"""CNI errors: JSON ``{cniVersion, code, msg, details}`` on stdout and a non-zero exit (SPEC "Error");
and the test hooks that crash (or pause) the plugin at a named point of an ADD."""

import os

# Well-known codes (SPEC "Well-known Error Codes")
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
CONTAINER_UNKNOWN = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
# cnilab's own (100+)
POOL_EXHAUSTED = 100
IFNAME_EXISTS = 101
CHECK_FAILED = 102
TODO = 103  # a workbook stub the student has not filled yet
INTERNAL = 199

#: every point of an ADD where CNILAB_CNI_FAULT can crash it, in the order an ADD passes them: each boundary
#: between steps that change what belongs to the attachment (the attachment lock taken, the three writes of a
#: reservation, the veth, the wiring of both ends, the NAT rule) up to the last step, the mark that the ADD is
#: complete. (The bridge, made or found before the reservation, is shared and outlives every pod, as the
#: reference's does: a crash right after it leaves the attachment as "after-lock" does. A crash after the mark
#: is a completed ADD whose answer was lost: a second ADD is then refused, as the spec demands of an
#: interface that exists, and DEL clears it.) cnilab/conformance/checks_lifecycle.py keeps the same list.
FAULT_POINTS = ("after-lock", "ipam-after-index", "ipam-after-temp", "ipam-after-record", "after-reserve",
                "after-veth", "after-wire", "after-masq", "before-done")


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


def fault(point: str) -> None:
    """Test hooks: CNILAB_CNI_FAULT=POINT kills the plugin there (as SIGKILL would), to prove that DEL and a
    new ADD clean up after a crash at any point. CNILAB_CNI_PAUSE=POINT stops it there until the file
    CNILAB_CNI_PAUSE_FILE (where it writes its pid on arrival) is removed, or 30 s pass: a test can then
    kill the call mid-ADD, as a runtime that gives up does."""
    if os.environ.get("CNILAB_CNI_FAULT") == point:
        os._exit(137)
    if os.environ.get("CNILAB_CNI_PAUSE") == point:
        _pause(os.environ.get("CNILAB_CNI_PAUSE_FILE", ""))


def _pause(path: str) -> None:
    import time

    if not path:
        return
    with open(f"{path}.tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(f"{path}.tmp", path)
    deadline = time.monotonic() + 30
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
