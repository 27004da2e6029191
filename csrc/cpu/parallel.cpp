// The oversubscription guard behind parallel_for (see parallel.h).
//
// An OpenMP region starts and ends at barriers that wait for every thread of the team. When another
// process keeps one of the cores busy, a worker may not run until the scheduler's next time slice, and the
// caller then waits 4-12 ms at a barrier for work it could have done itself (measured here: a 13 us GEMM took
// 8 ms on 2 threads while one other process spun). The guard notices regions whose barriers waited far
// longer than their work took, runs the following regions on the calling thread alone for a back-off
// period, then tries threads again; the period doubles while the machine stays busy and shrinks back once
// threads have run cleanly for a while. It acts on two slow regions in a row, not one: in a VM the first region after an idle spell
// also waits (the host takes up to several ms to wake a halted vCPU), but the next one does not.
#include <atomic>
#include <chrono>

#include "fastnn/parallel.h"

namespace fastnn::detail {
namespace {

constexpr int64_t kMinBackoffNs = 50'000'000;     // 50 ms
constexpr int64_t kMaxBackoffNs = 2'000'000'000;  // 2 s
constexpr int64_t kSlackNs = 200000;

std::atomic<int64_t> g_serial_until_ns{0};
std::atomic<int64_t> g_backoff_ns{kMinBackoffNs};
std::atomic<int64_t> g_contended_regions{0};
std::atomic<int64_t> g_first_slow_ns{0};  // start of the current run of slow regions (0: none)
constexpr int64_t kPersistNs = 20'000'000;  // 20 ms of nothing but slow regions means contention
std::atomic<int> g_clean_in_a_row{0};
constexpr int kCleanToReset = 16;  // clean regions in a row before the back-off period shrinks again

}  // namespace

int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool threads_allowed_now() {
  return monotonic_ns() >= g_serial_until_ns.load(std::memory_order_relaxed);
}

void report_region(int64_t start_ns, int64_t enter_ns, int64_t done_ns, int64_t end_ns) {
  // Both ends of a region can wait for a descheduled worker: the fork (libgomp docks the whole team
  // before starting it) and the join barrier.
  const int64_t work = done_ns - enter_ns;
  const int64_t waited = (enter_ns - start_ns) + (end_ns - done_ns);
  if (waited <= work + kSlackNs) {
    g_first_slow_ns.store(0, std::memory_order_relaxed);
    if (g_clean_in_a_row.fetch_add(1, std::memory_order_relaxed) + 1 >= kCleanToReset)
      g_backoff_ns.store(kMinBackoffNs, std::memory_order_relaxed);
    return;
  }
  g_clean_in_a_row.store(0, std::memory_order_relaxed);
  g_contended_regions.fetch_add(1, std::memory_order_relaxed);
  const int64_t first_slow = g_first_slow_ns.load(std::memory_order_relaxed);
  if (first_slow == 0) {
    g_first_slow_ns.store(start_ns, std::memory_order_relaxed);
  } else if (end_ns - first_slow >= kPersistNs) {
    g_first_slow_ns.store(0, std::memory_order_relaxed);
    const int64_t backoff = g_backoff_ns.load(std::memory_order_relaxed);
    g_serial_until_ns.store(end_ns + backoff, std::memory_order_relaxed);
    g_backoff_ns.store(backoff * 2 < kMaxBackoffNs ? backoff * 2 : kMaxBackoffNs, std::memory_order_relaxed);
  }
}

int64_t contended_regions() { return g_contended_regions.load(std::memory_order_relaxed); }

}  // namespace fastnn::detail
