"""The endpoint's malloc tuning (ADR 0013): request-body-sized buffers reuse heap memory.

With glibc's defaults each 192-320 KiB chunk of a request body is served with fresh pages
(an mmap per chunk, or a heap top trimmed and grown again), and touching them faults: two
thirds of the CPU uvicorn spent receiving a 66 MB body. The probe passes a body's worth of
such chunks through a fresh interpreter and counts the page faults before and after.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from trackhouse.settings import PROJECT_ROOT

PROBE = """
import json, resource, sys

def faults_receiving(chunks=200):
    # minor page faults while a body passes through in 192-320 KiB chunks, two held at once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    held = []
    for n in range(chunks):
        held.append(b"\\x01" * ((192 << 10) + (n % 9) * (16 << 10)))
        if len(held) > 2:
            held.pop(0)
    held.clear()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

default = faults_receiving()
sys.path.insert(0, sys.argv[1])
from warehouse.allocator import keep_body_buffers_in_the_heap
tuned = keep_body_buffers_in_the_heap()
faults_receiving()  # the heap grows once
print(json.dumps({"default": default, "tuned": tuned, "after": faults_receiving()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_body_sized_buffers_come_from_the_heap_once_tuned() -> None:
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(PROJECT_ROOT)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    figures = json.loads(run.stdout)
    assert figures["default"] > 1000, figures  # glibc's default: fresh pages per chunk
    assert figures["tuned"] is True
    assert figures["after"] < 50, figures
