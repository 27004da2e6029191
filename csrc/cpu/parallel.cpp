// The oversubscription guard behind parallel_for (see parallel.h).
//
// An OpenMP region starts and ends at barriers that wait for every thread of the team. When another
// thread keeps one of the cores busy, a worker may not run until the scheduler's next time slice, and the
// caller then waits 4-12 ms at a barrier for work it could have done itself (measured here: a 13 us GEMM took
// 8 ms on 2 threads while one other process spun). The commonest such thread is in this very process: after
// each call NumPy's OpenBLAS pool spins on a core (without yielding) for about 0.1 s, so a user loop that
// mixes NumPy and fastnn products keeps one core busy all the time.
//
// The guard notices regions whose barriers waited far longer than their work took, runs the following regions
// on the calling thread alone for a back-off period, then probes with one team region:
//   * a clean probe returns to threads at once (the core is free again: OpenBLAS's pool went to sleep, the
//     other process ended);
//   * a slow probe backs off again at once, for twice as long, up to kMaxBackoffNs (200 ms), so a machine that
//     stays busy costs one slow region per 200 ms (1-2% at a 2-4 ms time slice) and a core that comes free is
//     used again within 200 ms, not 2 s as before.
// Outside probes it acts on slow regions that persist for 20 ms, not on one: in a VM the first region after an
// idle spell also waits (the host takes up to several ms to wake a halted vCPU), but the next one does not.
// A process's first regions are slow too (a new worker thread runs on its parent's core until the load balancer
// moves it: the first six 256^3 products took 4-7 ms each, then 0.1); the short first back-off and the probe
// after it make that cost 25 ms on one thread, once.
//
// Several Python threads may call kernels at once. Only one top-level region of the process runs a team at a
// time; a region that starts while another is in flight runs on its calling thread (the cores are taken), and
// a team region that another thread entered a region beside is not judged: its waits were caused by this
// process, not by another one. The guard's state changes under a mutex (once per region, far below the cost
// of the region itself); the counters are atomic increments.
#include <atomic>
#include <chrono>
#include <mutex>

#include "fastnn/parallel.h"

namespace fastnn::detail {
namespace {

constexpr int64_t kMinBackoffNs = GuardJudgement::kMinBackoffNs;
constexpr int64_t kMaxBackoffNs = 200'000'000;      // 200 ms
constexpr int64_t kSlackNs = 200000;
constexpr int64_t kPersistNs = 20'000'000;  // 20 ms of nothing but slow regions means contention
constexpr int kCleanToReset = 16;           // clean regions in a row before the back-off period shrinks again

std::atomic<int> g_mode{static_cast<int>(GuardMode::kAuto)};
std::atomic<int64_t> g_serial_until_ns{0};  // read without the lock by every region; written under it

// The live guard's judgement, changed only under g_guard_mutex.
std::mutex g_guard_mutex;
GuardJudgement g_judgement;

// Threads inside an eligible top-level region now (forked or inline), and a count bumped by each one that
// entered while another was inside.
std::atomic<int> g_callers_in_flight{0};
std::atomic<int64_t> g_overlap_epoch{0};

std::atomic<int64_t> g_parallel_regions{0};
std::atomic<int64_t> g_contended_regions{0};
std::atomic<int64_t> g_serialized_regions{0};
std::atomic<int64_t> g_concurrent_regions{0};

// Judges one team region that no other region overlapped (the former load-then-store sequence, now atomic
// as a whole).
void judge(int64_t start_ns, int64_t enter_ns, int64_t done_ns, int64_t end_ns) {
  std::lock_guard<std::mutex> lock(g_guard_mutex);
  const GuardJudgement::Verdict v = g_judgement.judge(start_ns, enter_ns, done_ns, end_ns);
  if (v.slow) g_contended_regions.fetch_add(1, std::memory_order_relaxed);
  if (v.serial_until_ns != 0) g_serial_until_ns.store(v.serial_until_ns, std::memory_order_relaxed);
}

}  // namespace

GuardJudgement::Verdict GuardJudgement::judge(int64_t start_ns, int64_t enter_ns, int64_t done_ns, int64_t end_ns) {
  // Both ends of a region can wait for a descheduled worker: the fork (libgomp docks the whole team
  // before starting it) and the join barrier.
  const int64_t work = done_ns - enter_ns;
  const int64_t waited = (enter_ns - start_ns) + (end_ns - done_ns);
  Verdict v;
  v.slow = waited > work + kSlackNs;
  if (!v.slow) {
    first_slow_ns = 0;
    probing = false;
    if (++clean_in_a_row >= kCleanToReset) backoff_ns = kMinBackoffNs;
    return v;
  }
  clean_in_a_row = 0;
  const bool contended = probing || (first_slow_ns != 0 && end_ns - first_slow_ns >= kPersistNs);
  if (!contended) {
    if (first_slow_ns == 0) first_slow_ns = start_ns;
    return v;
  }
  // A probe that was slow means the core is still taken: no need to wait 20 ms to be sure again.
  first_slow_ns = 0;
  probing = true;
  v.serial_until_ns = end_ns + backoff_ns;
  backoff_ns = backoff_ns * 2 < kMaxBackoffNs ? backoff_ns * 2 : kMaxBackoffNs;
  return v;
}

int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void set_guard_mode(GuardMode mode) {
  g_mode.store(static_cast<int>(mode), std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(g_guard_mutex);  // a fresh start: no back-off carried over
  g_serial_until_ns.store(0, std::memory_order_relaxed);
  g_judgement = GuardJudgement{};
}

GuardMode guard_mode() { return static_cast<GuardMode>(g_mode.load(std::memory_order_relaxed)); }

RegionEntry enter_region() {
  RegionEntry entry;
  const bool alone = g_callers_in_flight.fetch_add(1, std::memory_order_acq_rel) == 0;
  if (!alone) {
    g_overlap_epoch.fetch_add(1, std::memory_order_acq_rel);
    g_concurrent_regions.fetch_add(1, std::memory_order_relaxed);
    return entry;
  }
  const GuardMode mode = guard_mode();
  const bool backing_off = mode == GuardMode::kSerial ||
                           (mode == GuardMode::kAuto &&
                            monotonic_ns() < g_serial_until_ns.load(std::memory_order_relaxed));
  if (backing_off) {
    g_serialized_regions.fetch_add(1, std::memory_order_relaxed);
    return entry;
  }
  entry.fork = true;
  entry.overlap_epoch = g_overlap_epoch.load(std::memory_order_acquire);
  return entry;
}

void leave_region(const RegionEntry& entry, int team, int64_t start_ns, int64_t enter_ns, int64_t done_ns,
                  int64_t end_ns) {
  const bool overlapped = entry.fork && g_overlap_epoch.load(std::memory_order_acquire) != entry.overlap_epoch;
  g_callers_in_flight.fetch_sub(1, std::memory_order_acq_rel);
  if (!entry.fork || team <= 1) return;
  g_parallel_regions.fetch_add(1, std::memory_order_relaxed);
  if (overlapped || guard_mode() != GuardMode::kAuto) return;
  judge(start_ns, enter_ns, done_ns, end_ns);
}

bool& running_inline() {
  static thread_local bool inline_now = false;
  return inline_now;
}

int64_t parallel_regions() { return g_parallel_regions.load(std::memory_order_relaxed); }
int64_t contended_regions() { return g_contended_regions.load(std::memory_order_relaxed); }
int64_t serialized_regions() { return g_serialized_regions.load(std::memory_order_relaxed); }
int64_t concurrent_regions() { return g_concurrent_regions.load(std::memory_order_relaxed); }

}  // namespace fastnn::detail
