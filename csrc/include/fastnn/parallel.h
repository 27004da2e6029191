// The one place kernels get threads from: parallel_for over the thread pool (thread_pool.cpp). OpenMP, when the
// build has it, only supplies the default thread count (OMP_NUM_THREADS, the CPUs this process may use).
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

// The thread pool (thread_pool.cpp). run_on_pool calls invoke(ctx, c) once for every chunk c in [0, chunks)
// (chunks <= 65535) on up to `threads` participants, the calling thread being participant 0; participant t owns
// a contiguous run of chunks (chunk_begin over the participants) and runs its own first, then helps with the
// others'. It returns when every chunk is done, without waiting for a worker that never started, and rethrows
// on the caller the first exception a chunk threw (the chunks nobody had claimed yet are then skipped).
struct PoolRegion {
  int participants = 1;  // threads the region was offered to
  int ran = 0;           // threads that ran at least one of its chunks
  int64_t start_ns = 0, enter_ns = 0, done_ns = 0, end_ns = 0;  // published, caller starts, caller's share done, all done
};
PoolRegion run_on_pool(int threads, int64_t chunks, void (*invoke)(const void*, int64_t), const void* ctx);
// True on a thread while it runs a chunk of a pool region (a parallel_for nested in it runs inline).
bool in_pool_chunk();
// Pool regions since start-up in which more than one thread ran chunks (the rest of parallel_regions ran on the
// caller alone: the workers came too late to find a chunk left).
int64_t shared_regions();
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
// chunks of at least `grain` iterations (a few per thread), on the thread pool. Runs inline when the range is
// small, when one thread is configured, inside another region's chunk (no nesting), while the oversubscription
// guard backs off, or when another Python thread's region is running (its region already holds the cores).
//
// Each thread runs its own share of the chunks first (the same share every call, for cache affinity), then
// helps with the others'. The caller never waits for a worker that has not started: a worker whose core is
// busy (another process, NumPy's spinning OpenBLAS pool) finds its chunks done by the others. Chunk
// boundaries depend only on the range, the grain and the thread count, and no kernel's arithmetic depends on
// them, so results are bit-identical for any thread count and any assignment of chunks to threads.
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
  if (threads > 1 && !detail::in_pool_chunk() && !detail::running_inline()) {
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
    const int64_t chunks = max_chunks < threads * kChunksPerThread ? max_chunks : threads * kChunksPerThread;
    // Thread t owns chunks [t * chunks / threads, (t + 1) * chunks / threads) and runs those first, so the same
    // thread gets the same part of the data call after call (and finds it in its own L2: a 2-thread GEMV of a
    // 4 MB matrix ran at 36-58 GFLOP/s with chunks handed out first come, first served, 60 this way).
    struct Context {
      const Body& body;
      int64_t begin, range, chunks;
    } ctx{body, begin, range, chunks};
    const auto invoke = [](const void* c, int64_t chunk) {
      const Context& x = *static_cast<const Context*>(c);
      x.body(x.begin + detail::chunk_begin(x.range, x.chunks, chunk),
             x.begin + detail::chunk_begin(x.range, x.chunks, chunk + 1));
    };
    detail::PoolRegion r;
    try {
      r = detail::run_on_pool(threads, chunks, invoke, &ctx);
    } catch (...) {
      detail::leave_region(entry, 1, 0, 0, 0, 0);  // leave_region runs however the region ends
      throw;
    }
    detail::leave_region(entry, r.participants, r.start_ns, r.enter_ns, r.done_ns, r.end_ns);
    return;
  }
#endif
  body(begin, end);
}

}  // namespace fastnn
