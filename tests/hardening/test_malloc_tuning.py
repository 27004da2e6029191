"""glibc malloc tuning at import (csrc/cpu/runtime.cpp tune_malloc): buffers up to 64 MB are reused from the heap, so
a loop that allocates and frees the same large buffers stops page-faulting; FASTNN_MALLOC_TUNING=0 and any glibc
MALLOC_* variable of the user's leave malloc alone. Each case runs in a fresh interpreter (the setting is per
process)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")

PROBE = """
import json, resource
import numpy as np
import fastnn
x = np.ones((4096, 3072), np.float32)   # 48 MB: above the 32 MB glibc's own adaptive threshold stops at
for _ in range(3):
    np.add(x, 1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.add(x, 1.0)                      # a fresh 48 MB output each time
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"tuning": fastnn.build_info()["malloc_tuning"], "faults": faults}))
"""


def _probe(**env_changes):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "FASTNN_MALLOC", "GLIBC_TUNABLES"))}
    env.update(env_changes)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(bool(os.environ.get("FASTNN_UNDER_SANITIZER")), reason="ASan replaces malloc")
def test_tuned_malloc_reuses_large_buffers():
    tuned = _probe()
    assert tuned["tuning"] == "tuned"
    untuned = _probe(FASTNN_MALLOC_TUNING="0")
    assert untuned["tuning"] == "off"
    # 20 fresh 48 MB outputs fault in (thousands of faults even with transparent huge pages); reused heap memory
    # takes almost none
    assert untuned["faults"] > 2000, untuned  # the probe measures what the tuning removes
    assert tuned["faults"] < untuned["faults"] // 10, (tuned, untuned)


@pytest.mark.parametrize("var", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX"])
def test_a_users_malloc_setting_wins(var):
    assert _probe(**{var: "131072" if "MMAP" in var else "4"})["tuning"] == "user-set"
