"""A local stand-in for Huawei IAM + CBR: a real HTTP server on loopback, for `make run` and the tests.

It never imports `cbr_checkpointer`: a misreading of the wire format shared by the client and this
fake would hide in both.
"""

from cbr_emulator.server import Emulator
from cbr_emulator.state import Fault, RateLimit, RecordedRequest

__all__ = ["Emulator", "Fault", "RateLimit", "RecordedRequest"]
