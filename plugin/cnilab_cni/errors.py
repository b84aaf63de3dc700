"""CNI errors: JSON ``{cniVersion, code, msg, details}`` on stdout and a non-zero exit (SPEC "Error");
and the test hook that crashes the plugin at a named point of an ADD."""

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

#: every point of an ADD where CNILAB_CNI_FAULT can crash it, in the order an ADD passes them
FAULT_POINTS = ("after-lock", "ipam-after-index", "ipam-after-temp", "ipam-after-record", "after-reserve",
                "after-veth", "after-wire", "after-masq", "before-done")


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


def fault(point: str) -> None:
    """Test hook: CNILAB_CNI_FAULT=POINT kills the plugin there (as SIGKILL would), to prove that DEL and a
    new ADD clean up after a crash at any point."""
    if os.environ.get("CNILAB_CNI_FAULT") == point:
        os._exit(137)
