"""The endpoint's malloc tuning (ADR 0013): request-body-sized buffers come from the heap.

Without it glibc maps every buffer above 128 KiB with mmap and unmaps it on free, so each
256 KiB chunk of an insert body cost fresh zeroed pages (two thirds of the CPU uvicorn spent
receiving a 66 MB body). Checked in a fresh interpreter, whose malloc state is the default.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from trackhouse.settings import PROJECT_ROOT

PROBE = """
import ctypes, json, sys
sys.path.insert(0, sys.argv[1])
from warehouse.server import keep_body_buffers_in_the_heap

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2

def mapped_chunks_while_holding_body_chunks():
    before = mallinfo2().hblks
    held = [b"x" * (256 << 10) + bytes([n]) for n in range(16)]
    during = mallinfo2().hblks
    del held
    return during - before

default = mapped_chunks_while_holding_body_chunks()
tuned = keep_body_buffers_in_the_heap()
print(json.dumps({"default": default, "tuned": tuned,
                  "after": mapped_chunks_while_holding_body_chunks()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_body_sized_buffers_come_from_the_heap_once_tuned() -> None:
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(PROJECT_ROOT)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    figures = json.loads(run.stdout)
    assert figures["default"] >= 8, figures  # the probe does see mmapped chunks
    assert figures["tuned"] is True
    assert figures["after"] == 0, figures
