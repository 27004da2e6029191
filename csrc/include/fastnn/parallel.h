// The one place that speaks OpenMP. Kernels parallelise with parallel_for and never write `omp`.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>

#include "fastnn/common.h"

#if defined(FASTNN_WITH_OPENMP)
#include <omp.h>
#endif

#if defined(__SSE__) || defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define FASTNN_HAVE_MXCSR 1
#endif

namespace fastnn {

// The most threads set_num_threads accepts (a team of a million threads would exhaust the process).
constexpr int kMaxThreads = 1024;

// Thread count used by every kernel. Defaults to OpenMP's (which honours OMP_NUM_THREADS); always 1 in a
// build without OpenMP.
int get_num_threads();
// Sets the thread count for subsequent kernels (clamped to [1, kMaxThreads]; always 1 without OpenMP).
void set_num_threads(int n);
bool openmp_enabled();

namespace detail {
// The oversubscription guard (parallel.cpp): after regions whose ends waited far longer than their work took
// (a worker descheduled by another process), regions run on the calling thread alone for a back-off period.
int64_t monotonic_ns();

// How the guard decides (set_guard_mode; for tests): kAuto detects contention and backs off; kOff never backs
// off; kSerial runs every region on its calling thread, as during a back-off period.
enum class GuardMode : int { kAuto = 0, kOff = 1, kSerial = 2 };
void set_guard_mode(GuardMode mode);
GuardMode guard_mode();

// The guard's decision rule (parallel.cpp), a pure state machine over the four times of each judged team region
// (before the fork, entering, share done, after the join), so tests can drive it with synthetic clocks
// (_C._guard_judgement_trace). serial_until_ns != 0: run regions inline until then.
struct GuardJudgement {
  static constexpr int64_t kMinBackoffNs = 25'000'000;  // 25 ms
  struct Verdict {
    bool slow = false;            // its barriers waited far longer than its work took
    int64_t serial_until_ns = 0;  // a back-off period starts: regions run inline until this time
  };
  Verdict judge(int64_t start_ns, int64_t enter_ns, int64_t done_ns, int64_t end_ns);

  int64_t backoff_ns = kMinBackoffNs;  // the next back-off period
  int64_t first_slow_ns = 0;           // start of the current run of slow regions (0: none)
  int clean_in_a_row = 0;
  bool probing = false;  // a back-off period was set: the next judged region decides at once
};

// One top-level parallel_for that could use several threads. `fork` says whether it may start a team: not
// while the guard backs off, and not while another thread of this process is inside such a region (that
// region's team already holds the cores: a second team would only oversubscribe them, and each team's waits
// for the other would look like contention). Every entered region is left once, forked or not.
struct RegionEntry {
  bool fork = false;
  int64_t overlap_epoch = 0;  // changes when another thread enters a region while this one runs
};
RegionEntry enter_region();
// team: threads the region actually ran on (1 when it ran inline). Times of the calling thread: before the
// fork, on entering the region, when its share was done, after the join (all 0 when it ran inline).
void leave_region(const RegionEntry& entry, int team, int64_t start_ns, int64_t enter_ns, int64_t done_ns,
                  int64_t end_ns);

// True on a thread while it runs a region's body inline after enter_region refused it a team: a parallel_for
// nested in that body stays inline too, and is not counted as a region of its own.
bool& running_inline();

// Counters since start-up (for build_info and tests): regions that ran on a team of more than one thread;
// regions whose end waited on a late thread (contention); regions run inline because the guard was backing off;
// regions run inline because another thread's region was in flight.
int64_t parallel_regions();
int64_t contended_regions();
int64_t serialized_regions();
int64_t concurrent_regions();

// Bounds of chunk c of [0, range) split into `chunks` near-equal contiguous parts (the first range % chunks
// parts one longer). No intermediate product, so no overflow for any int64 range.
inline int64_t chunk_begin(int64_t range, int64_t chunks, int64_t c) {
  const int64_t base = range / chunks, extra = range % chunks;
  return base * c + (c < extra ? c : extra);
}

// The chunks of one parallel_for region, dealt out to its threads: thread t owns a contiguous run of them
// (chunk_begin over threads) and claims its own first, in order, then the rest of the others'. Every chunk is
// claimed exactly once (a fetch_add on its owner's cursor). claim() returns -1 when none is left.
class ChunkQueues {
 public:
  ChunkQueues(int threads, int64_t chunks) : threads_(threads), queues_(new Queue[threads]) {
    for (int t = 0; t < threads; ++t) {
      queues_[t].next.store(chunk_begin(chunks, threads, t), std::memory_order_relaxed);
      queues_[t].end = chunk_begin(chunks, threads, t + 1);
    }
  }
  ~ChunkQueues() { delete[] queues_; }
  ChunkQueues(const ChunkQueues&) = delete;
  ChunkQueues& operator=(const ChunkQueues&) = delete;

  int64_t claim(int me) {
    for (int i = 0; i < threads_; ++i) {
      Queue& q = queues_[(me + i) % threads_];
      if (q.next.load(std::memory_order_relaxed) >= q.end) continue;
      const int64_t c = q.next.fetch_add(1, std::memory_order_relaxed);
      if (c < q.end) return c;
    }
    return -1;
  }
  void cancel() {
    for (int t = 0; t < threads_; ++t) queues_[t].next.store(queues_[t].end, std::memory_order_relaxed);
  }

 private:
  struct alignas(64) Queue {  // one cache line each: the owners' cursors do not share a line
    std::atomic<int64_t> next{0};
    int64_t end = 0;
  };
  int threads_;
  Queue* queues_;
};
}  // namespace detail

// Flush denormals to zero (FTZ) and treat denormal inputs as zero (DAZ) for the lifetime of the guard,
// restoring the caller's floating-point mode afterwards so the user's NumPy code is unaffected. Every kernel
// entry point holds one (and parallel_for sets it on each worker), so one rule holds on every code path:
// denormal inputs count as zero and no result is denormal.
class DenormalsAreZero {
 public:
#if defined(FASTNN_HAVE_MXCSR)
  DenormalsAreZero() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~DenormalsAreZero() { _mm_setcsr(saved_); }

 private:
  unsigned int saved_;
#else
  DenormalsAreZero() = default;
#endif
};

// Calls body(chunk_begin, chunk_end) over [begin, end) (end - begin must fit in int64) split into contiguous
// chunks of at least `grain` iterations (a few per thread). Runs inline when the range is small, when one thread is configured, when
// already inside a parallel region (no nested teams), or when another Python thread's region is running
// (its team already holds the cores).
//
// Each thread runs its own share of the chunks first (the same share every call, for cache affinity), then
// helps with the others': a thread that starts late (its core busy with another process) finds its chunks
// already done by the others instead of holding them back; and when a region's end still had to
// wait for such a thread, the guard in parallel.cpp runs the next regions on the calling thread alone for
// a while, so a loaded machine degrades to one-thread speed instead of losing a scheduler time slice per
// call. Chunk boundaries depend only on the range, the grain and the thread count, and no kernel's arithmetic depends on them, so results are
// bit-identical for any thread count and any assignment of chunks to threads.
template <typename Body>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const Body& body) {
  if (end <= begin) return;
  DenormalsAreZero ftz;  // the calling thread's share (the workers set their own below)
  const int64_t range = end - begin;
  if (grain < 1) grain = 1;
  int64_t max_chunks = range / grain;
  if (max_chunks < 1) max_chunks = 1;
  int threads = get_num_threads();
  if (threads > max_chunks) threads = static_cast<int>(max_chunks);
#if defined(FASTNN_WITH_OPENMP)
  if (threads > 1 && !omp_in_parallel() && !detail::running_inline()) {
    const detail::RegionEntry entry = detail::enter_region();
    if (!entry.fork) {
      // Inline; leave_region runs however body ends (an exception included).
      struct Leave {
        const detail::RegionEntry& e;
        ~Leave() {
          detail::running_inline() = false;
          detail::leave_region(e, 1, 0, 0, 0, 0);
        }
      } leave{entry};
      detail::running_inline() = true;
      body(begin, end);
      return;
    }
    constexpr int64_t kChunksPerThread = 4;
    const int64_t start_ns = detail::monotonic_ns();
    int64_t enter_ns = start_ns, done_ns = start_ns;
    int team = 1;
    const int64_t chunks = max_chunks < threads * kChunksPerThread ? max_chunks : threads * kChunksPerThread;
    // Thread t owns chunks [t * chunks / threads, (t + 1) * chunks / threads): it runs those first, in order, so
    // the same thread gets the same part of the data call after call (and finds it in its own L2: a 2-thread
    // GEMV of a 4 MB matrix ran at 36-58 GFLOP/s with chunks handed out first come, first served, 60 this way),
    // then takes what is left of the others' (a thread that starts late, its core busy elsewhere, holds nobody
    // back).
    detail::ChunkQueues queues(threads, chunks);
    // An exception may not leave an OpenMP region (it would terminate the process): the first one a
    // worker throws (e.g. std::bad_alloc) is carried out and rethrown on the calling thread.
    std::exception_ptr error;
#pragma omp parallel num_threads(threads)
    {
      const int me = omp_get_thread_num();
      if (me == 0) {
        enter_ns = detail::monotonic_ns();
        team = omp_get_num_threads();
      }
      try {
        DenormalsAreZero worker_ftz;
        for (int64_t c = queues.claim(me); c >= 0; c = queues.claim(me)) {
          body(begin + detail::chunk_begin(range, chunks, c), begin + detail::chunk_begin(range, chunks, c + 1));
        }
        if (me == 0) done_ns = detail::monotonic_ns();
      } catch (...) {
        queues.cancel();  // the others stop claiming
#pragma omp critical(fastnn_parallel_for_error)
        if (!error) error = std::current_exception();
      }
    }
    detail::leave_region(entry, team, start_ns, enter_ns, done_ns, detail::monotonic_ns());
    if (error) std::rethrow_exception(error);
    return;
  }
#endif
  body(begin, end);
}

}  // namespace fastnn
