// The thread pool behind parallel_for (see parallel.h): a region's chunks are dealt to its participants, the
// calling thread being participant 0, and the caller returns as soon as every chunk is done, never waiting for
// a worker that has not started.
//
// Why not an OpenMP team: an OpenMP region ends at a barrier that waits for every thread of the team, so a
// worker whose core is taken (another process, or NumPy's OpenBLAS pool, which spins on a core for ~0.1 s after
// each of its calls) costs the caller a scheduler time slice (2-12 ms) per region, and the oversubscription
// guard then had to run regions on one thread for a while. Here a late worker finds the chunks already taken
// and does nothing: the region runs at one-thread speed when the second core is busy and at two-thread speed
// the moment it is free, region by region. The only wait left is for chunks a running worker has claimed.
//
// Protocol. Each participant t owns the chunks [chunk_begin(chunks, P, t), chunk_begin(chunks, P, t + 1)) in a
// queue word (generation:32 | next:16 | end:16) on its own cache line. Participants claim their own chunks
// first, in order, then the others' (a compare-exchange that also checks the generation, so a worker that
// wakes late can never claim a chunk of a later region). A claimed chunk pins the region: the caller returns
// only when `finished` reaches `chunks`, so the region's description (invoke, ctx) that a worker reads after
// claiming is still the one it claimed for. Idle workers spin for 50 us (so back-to-back regions do not pay a
// wake-up), then spin with sched_yield for 20 ms (so a waiting worker does not keep another thread of its core
// off it), then sleep on a condition variable; a worker that finds itself on the caller's CPU moves off it
// (move_off_callers_cpu). The pool is created on first use, grows to the thread count in use and is never
// destroyed (workers may be asleep on its condition variable at exit); after fork() the child starts a new one.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>

#include "fastnn/parallel.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FASTNN_CPU_RELAX() _mm_pause()
#else
#define FASTNN_CPU_RELAX() ((void)0)
#endif

namespace fastnn::detail {
namespace {

constexpr int64_t kSpinNs = 50'000;      // pure spinning after a region: back-to-back regions start at once
constexpr int64_t kYieldNs = 20'000'000;  // then spinning with sched_yield, so another thread of this core runs
constexpr int kMaxChunksPerRegion = 65535;  // 16 bits in a queue word

uint64_t pack(uint32_t gen, uint32_t next, uint32_t end) {
  return (static_cast<uint64_t>(gen) << 32) | (static_cast<uint64_t>(next) << 16) | end;
}
uint32_t gen_of(uint64_t w) { return static_cast<uint32_t>(w >> 32); }
uint32_t next_of(uint64_t w) { return static_cast<uint32_t>((w >> 16) & 0xffff); }
uint32_t end_of(uint64_t w) { return static_cast<uint32_t>(w & 0xffff); }

struct alignas(64) QueueWord {
  std::atomic<uint64_t> word{0};
};

struct Pool {
  // The published region: generation (32) | participants (16). Written by the caller with seq_cst (so that a
  // worker going to sleep either sees it or is seen by the caller's check of `sleepers`).
  std::atomic<uint64_t> job{0};
  uint32_t generation = 0;  // the caller's, changed only by the (single) caller in flight
  // The region's description, valid while any of its chunks is claimed and unfinished.
  void (*invoke)(const void*, int64_t) = nullptr;
  const void* ctx = nullptr;
  std::atomic<int64_t> finished{0};
  std::atomic<int> ran{0};  // participants that ran at least one chunk of the current region
  std::exception_ptr error;
  std::mutex error_mutex;
  QueueWord queues[kMaxThreads];

  std::mutex sleep_mutex;
  std::condition_variable wake;
  std::atomic<int> sleepers{0};
  std::mutex grow_mutex;
  std::atomic<int> workers{0};  // started workers: participants 1..workers
  std::atomic<int> caller_cpu{-1};  // the CPU the caller of the current region published it from
};

std::atomic<Pool*> g_pool{nullptr};
std::once_flag g_atfork_once;

void reset_after_fork() {
  // The child has only the thread that called fork(): the parent's workers (and any lock they held) are gone.
  g_pool.store(new Pool, std::memory_order_release);  // the old one is leaked on purpose
}

Pool& pool() {
  std::call_once(g_atfork_once, [] {
    g_pool.store(new Pool, std::memory_order_release);
    pthread_atfork(nullptr, nullptr, reset_after_fork);
  });
  return *g_pool.load(std::memory_order_acquire);
}

thread_local bool t_in_chunk = false;
std::atomic<int64_t> g_shared_regions{0};  // pool regions in which more than one thread ran chunks

// Claims and runs chunks of region `gen` over `participants` queues, own queue first (counting itself in `ran`
// at its first chunk). Returns whether it ran any.
bool work(Pool& p, uint32_t gen, int participants, int me) {
  bool ran_any = false;
  for (int i = 0; i < participants; ++i) {
    QueueWord& q = p.queues[(me + i) % participants];
    uint64_t w = q.word.load(std::memory_order_acquire);
    for (;;) {
      if (gen_of(w) != gen) return ran_any;  // the region is over (a later one may have started)
      if (next_of(w) >= end_of(w)) break;
      if (!q.word.compare_exchange_weak(w, w + (uint64_t{1} << 16), std::memory_order_acq_rel,
                                        std::memory_order_acquire))
        continue;
      const int64_t chunk = next_of(w);
      if (!ran_any) p.ran.fetch_add(1, std::memory_order_relaxed);  // before its finished count: the caller sees it
      ran_any = true;
      t_in_chunk = true;
      try {
        DenormalsAreZero ftz;
        p.invoke(p.ctx, chunk);
      } catch (...) {
        {
          std::lock_guard<std::mutex> lock(p.error_mutex);
          if (!p.error) p.error = std::current_exception();
        }
        // Cancel what nobody has claimed yet: those chunks count as finished.
        for (int t = 0; t < participants; ++t) {
          uint64_t v = p.queues[t].word.load(std::memory_order_acquire);
          while (gen_of(v) == gen && next_of(v) < end_of(v)) {
            const uint64_t done = pack(gen, end_of(v), end_of(v));
            if (p.queues[t].word.compare_exchange_weak(v, done, std::memory_order_acq_rel, std::memory_order_acquire)) {
              p.finished.fetch_add(end_of(v) - next_of(v), std::memory_order_acq_rel);
              break;
            }
          }
        }
      }
      t_in_chunk = false;
      p.finished.fetch_add(1, std::memory_order_acq_rel);
      w = q.word.load(std::memory_order_acquire);
    }
  }
  return ran_any;
}

// A worker woken from sleep is often placed on its waker's CPU (the scheduler's wake-affine heuristic), and a
// worker that then keeps running (spinning between regions) counts as cache-hot, so the load balancer leaves it
// there for tens of ms: caller and worker share one core while the other idles, and every chunk is the caller's
// (measured here: whole blocks of 2-thread 64x512x128 products at one-thread speed). A worker that finds itself
// on the caller's CPU therefore moves itself off it: it drops that CPU from its affinity mask (the kernel
// migrates it at once) and restores the mask, which leaves it where it landed. At most once per millisecond.
void move_off_callers_cpu(Pool& p, int64_t& last_move_ns) {
#if defined(__linux__)
  const int here = sched_getcpu();
  if (here < 0 || here != p.caller_cpu.load(std::memory_order_relaxed)) return;
  const int64_t now = monotonic_ns();
  if (now - last_move_ns < 1'000'000) return;
  last_move_ns = now;
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return;
  cpu_set_t elsewhere = allowed;
  CPU_CLR(here, &elsewhere);
  if (CPU_COUNT(&elsewhere) == 0) return;  // this process may use one CPU only: nowhere to go
  if (sched_setaffinity(0, sizeof(elsewhere), &elsewhere) == 0) sched_setaffinity(0, sizeof(allowed), &allowed);
#else
  (void)p;
  (void)last_move_ns;
#endif
}

void worker_main(Pool* p, int me) {
  int64_t last_move_ns = 0;
  uint64_t seen = p->job.load(std::memory_order_acquire);
  for (;;) {
    // Wait for a region newer than `seen`: spin, then yield, then sleep.
    uint64_t job = p->job.load(std::memory_order_acquire);
    if (job == seen) {
      const int64_t start = monotonic_ns();
      for (int i = 0;; ++i) {
        job = p->job.load(std::memory_order_acquire);
        if (job != seen) break;
        if ((i & 63) == 63) {
          const int64_t idle = monotonic_ns() - start;
          if (idle > kYieldNs) {
            std::unique_lock<std::mutex> lock(p->sleep_mutex);
            p->sleepers.fetch_add(1, std::memory_order_seq_cst);
            while ((job = p->job.load(std::memory_order_seq_cst)) == seen) p->wake.wait(lock);
            p->sleepers.fetch_sub(1, std::memory_order_seq_cst);
            lock.unlock();
            move_off_callers_cpu(*p, last_move_ns);  // woken: likely onto the caller's CPU
            break;
          }
          move_off_callers_cpu(*p, last_move_ns);
          if (idle > kSpinNs) sched_yield();
        }
        FASTNN_CPU_RELAX();
      }
    }
    seen = job;
    const uint32_t gen = static_cast<uint32_t>(job >> 16);
    const int participants = static_cast<int>(job & 0xffff);
    if (me >= participants) continue;
    move_off_callers_cpu(*p, last_move_ns);
    work(*p, gen, participants, me);
  }
}

// Starts workers up to `participants - 1`; returns how many participants the pool can field now.
int ensure_workers(Pool& p, int participants) {
  if (p.workers.load(std::memory_order_acquire) + 1 >= participants) return participants;
  std::lock_guard<std::mutex> lock(p.grow_mutex);
  int have = p.workers.load(std::memory_order_relaxed);
  while (have + 1 < participants) {
    try {
      std::thread(worker_main, &p, have + 1).detach();
    } catch (const std::system_error&) {
      break;  // no more threads: run with those there are
    }
    ++have;
    p.workers.store(have, std::memory_order_release);
  }
  return std::min(participants, have + 1);
}

}  // namespace

bool in_pool_chunk() { return t_in_chunk; }
int64_t shared_regions() { return g_shared_regions.load(std::memory_order_relaxed); }

PoolRegion run_on_pool(int threads, int64_t chunks, void (*invoke)(const void*, int64_t), const void* ctx) {
  Pool& p = pool();
  PoolRegion r;
  const int participants = ensure_workers(p, std::min(threads, kMaxThreads));
  chunks = std::min<int64_t>(chunks, kMaxChunksPerRegion);
  r.participants = participants;
  r.start_ns = monotonic_ns();
  // Describe the region, then publish it: queue words first (a worker that sees the new job finds them), the
  // job word last.
  const uint32_t gen = ++p.generation;
  p.invoke = invoke;
  p.ctx = ctx;
  p.error = nullptr;
  p.finished.store(0, std::memory_order_relaxed);
  p.ran.store(0, std::memory_order_relaxed);
  for (int t = 0; t < participants; ++t) {
    const auto b = static_cast<uint32_t>(chunk_begin(chunks, participants, t));
    const auto e = static_cast<uint32_t>(chunk_begin(chunks, participants, t + 1));
    p.queues[t].word.store(pack(gen, b, e), std::memory_order_release);
  }
#if defined(__linux__)
  p.caller_cpu.store(sched_getcpu(), std::memory_order_relaxed);
#endif
  p.job.store((static_cast<uint64_t>(gen) << 16) | static_cast<uint64_t>(participants), std::memory_order_seq_cst);
  if (p.sleepers.load(std::memory_order_seq_cst) > 0) {
    {
      std::lock_guard<std::mutex> lock(p.sleep_mutex);
      p.wake.notify_all();
    }
    // A woken worker is often queued on this very CPU (wake-affine) and would wait for this thread's time slice to
    // end (a few ms) before it could move elsewhere: give it the CPU once, so it runs move_off_callers_cpu now.
    sched_yield();
  }
  r.enter_ns = monotonic_ns();
  work(p, gen, participants, 0);
  r.done_ns = monotonic_ns();
  // Only chunks that a running worker claimed can be outstanding now. If that worker lost its core mid-chunk,
  // yielding lets it back on when it shares ours.
  for (int i = 0; p.finished.load(std::memory_order_acquire) < chunks; ++i) {
    if ((i & 1023) == 1023 && monotonic_ns() - r.done_ns > kSpinNs) sched_yield();
    FASTNN_CPU_RELAX();
  }
  r.end_ns = monotonic_ns();
  r.ran = p.ran.load(std::memory_order_relaxed);
  if (r.ran > 1) g_shared_regions.fetch_add(1, std::memory_order_relaxed);
  if (p.error) {
    std::exception_ptr e = p.error;
    p.error = nullptr;
    std::rethrow_exception(e);
  }
  return r;
}

}  // namespace fastnn::detail
