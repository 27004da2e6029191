"""parallel_for's chunking at the edges of int64 (compiled and run as a small C++ program against
csrc/include/fastnn/parallel.h, csrc/cpu/parallel.cpp and csrc/cpu/thread_pool.cpp, under UndefinedBehaviorSanitizer where the compiler has
it). Chunk c used to start at begin + range * c / chunks: for a range above 2^63 / chunks the product overflows
(undefined behaviour; in practice chunks that overlap or run backwards)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CXX = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")

PROGRAM = r"""
#include <cstdint>
#include <cstdio>
#include <limits>
#include <mutex>
#include <utility>
#include <vector>
#include <algorithm>

#include "fastnn/parallel.h"

namespace fastnn {
int get_num_threads() { return 2; }  // the library's version lives in runtime.cpp, not linked here
}

int main() {
  const int64_t max = std::numeric_limits<int64_t>::max(), min = std::numeric_limits<int64_t>::min();
  // Every range whose length end - begin fits in int64 (the contract), up to the limits.
  const std::pair<int64_t, int64_t> ranges[] = {{0, max}, {min + 1, 0}, {min, -1}, {max - 7, max}, {-5, 5},
                                                {0, (int64_t(1) << 62) + 3}, {-(int64_t(1) << 61), int64_t(1) << 62}};
  const int64_t grains[] = {1, 3, int64_t(1) << 60};
  for (auto [begin, end] : ranges) {
    for (int64_t grain : grains) {
      std::mutex m;
      std::vector<std::pair<int64_t, int64_t>> chunks;
      fastnn::parallel_for(begin, end, grain, [&](int64_t b, int64_t e) {
        std::lock_guard<std::mutex> lock(m);
        chunks.emplace_back(b, e);
      });
      std::sort(chunks.begin(), chunks.end());
      // The chunks tile [begin, end) exactly: no gap, no overlap, none empty or reversed.
      int64_t at = begin;
      for (auto [b, e] : chunks) {
        if (b != at || e <= b) { std::printf("bad chunk [%lld, %lld) at %lld\n", (long long)b, (long long)e, (long long)at); return 1; }
        at = e;
      }
      if (at != end) { std::printf("chunks end at %lld, not %lld\n", (long long)at, (long long)end); return 1; }
    }
  }
  std::printf("ok\n");
  return 0;
}
"""


@pytest.mark.skipif(CXX is None, reason="needs a C++ compiler")
@pytest.mark.skipif(not (ROOT / "csrc" / "cpu" / "parallel.cpp").exists(), reason="needs the source tree (csrc)")
def test_chunks_tile_ranges_up_to_the_int64_limits(tmp_path):
    src = tmp_path / "chunks.cpp"
    src.write_text(PROGRAM)
    exe = tmp_path / "chunks"
    base = [CXX, "-std=c++17", "-O1", "-fopenmp", "-DFASTNN_WITH_OPENMP", f"-I{ROOT / 'csrc' / 'include'}",
            str(src), str(ROOT / "csrc" / "cpu" / "parallel.cpp"), str(ROOT / "csrc" / "cpu" / "thread_pool.cpp"),
            "-pthread", "-o", str(exe)]
    # Not under .ci/sanitize's preloaded ASan runtime: the compiler would report its own leaks.
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    ubsan = ["-fsanitize=undefined", "-fno-sanitize-recover=all"]
    build = subprocess.run(base[:1] + ubsan + base[1:], capture_output=True, text=True, env=env)
    if build.returncode != 0:  # no UBSan runtime here: the tiling check alone still catches the overflow
        build = subprocess.run(base, capture_output=True, text=True, env=env)
    if build.returncode != 0 and "fopenmp" in build.stderr:
        pytest.skip("the compiler has no OpenMP")
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120,
                         env=dict(env, OMP_NUM_THREADS="2"))
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr[-3000:]


POOL_STRESS = r"""
#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>
#include "fastnn/parallel.h"
namespace fastnn { int get_num_threads() { return 3; } }
int main() {
  std::atomic<long> total{0};
  for (int rep = 0; rep < 20000; ++rep) {
    const int64_t n = 1 + rep % 97;
    std::vector<int> hits(n, 0);
    fastnn::parallel_for(0, n, 1, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) hits[i]++; });
    for (int64_t i = 0; i < n; ++i) if (hits[i] != 1) { printf("bad %d\n", rep); return 1; }
    if (rep % 1000 == 7) {
      try {
        fastnn::parallel_for(0, 64, 1, [&](int64_t b, int64_t e) { if (b <= 5 && 5 < e) throw std::runtime_error("x"); });
        printf("no throw\n"); return 1;
      } catch (const std::runtime_error&) {}
    }
    if (rep % 3000 == 11) std::this_thread::sleep_for(std::chrono::milliseconds(3));  // let workers sleep
  }
  // two caller threads at once
  std::thread t1([&] { for (int r = 0; r < 3000; ++r) fastnn::parallel_for(0, 50, 1, [&](int64_t b, int64_t e) { total += e - b; }); });
  std::thread t2([&] { for (int r = 0; r < 3000; ++r) fastnn::parallel_for(0, 50, 1, [&](int64_t b, int64_t e) { total += e - b; }); });
  t1.join(); t2.join();
  if (total != 2L * 3000 * 50) { printf("total %ld\n", total.load()); return 1; }
  printf("ok\n");
}
"""


@pytest.mark.skipif(CXX is None, reason="needs a C++ compiler")
@pytest.mark.skipif(not (ROOT / "csrc" / "cpu" / "thread_pool.cpp").exists(), reason="needs the source tree (csrc)")
def test_thread_pool_runs_every_chunk_once_under_stress(tmp_path):
    """20,000 regions of 1-97 chunks on 3 participants (more than this machine's cores, so workers are often
    late or descheduled), some throwing, some after the workers fell asleep, then two caller threads at once:
    every chunk runs exactly once and every exception reaches its caller. Under ThreadSanitizer where the
    compiler has it (the lock-free claim protocol of thread_pool.cpp), else UndefinedBehaviorSanitizer, else
    plain."""
    src = tmp_path / "stress.cpp"
    src.write_text(POOL_STRESS)
    exe = tmp_path / "stress"
    base = [CXX, "-std=c++17", "-O1", "-g", "-fopenmp", "-DFASTNN_WITH_OPENMP", f"-I{ROOT / 'csrc' / 'include'}",
            str(src), str(ROOT / "csrc" / "cpu" / "parallel.cpp"), str(ROOT / "csrc" / "cpu" / "thread_pool.cpp"),
            "-pthread", "-o", str(exe)]
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    for flags in (["-fsanitize=thread"], ["-fsanitize=undefined", "-fno-sanitize-recover=all"], []):
        build = subprocess.run(base[:1] + flags + base[1:], capture_output=True, text=True, env=env)
        if build.returncode == 0:
            run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300,
                                 env=dict(env, TSAN_OPTIONS="halt_on_error=1"))
            # A sanitizer runtime that cannot start here (TSan needs its memory layout) is not a finding: next.
            if flags and run.returncode != 0 and ("FATAL: ThreadSanitizer" in run.stderr
                                                  or "unexpected memory mapping" in run.stderr):
                continue
            assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr[-3000:]
            return
    if "fopenmp" in build.stderr:
        pytest.skip("the compiler has no OpenMP")
    raise AssertionError(build.stderr[-3000:])
