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
// The oversubscription guard (parallel.cpp): after a region whose end waited far longer than its work took
// (a worker descheduled by another process), regions run on the calling thread alone for a back-off period.
int64_t monotonic_ns();
bool threads_allowed_now();
// Times of the calling thread: before the fork, on entering the region, when its share was done, after the join.
void report_region(int64_t start_ns, int64_t enter_ns, int64_t done_ns, int64_t end_ns);
// How many regions waited on a late thread since start-up (for build_info and tests).
int64_t contended_regions();
}  // namespace detail

// Flush denormals to zero (FTZ) and treat denormal inputs as zero (DAZ) for the lifetime of the guard,
// restoring the caller's floating-point mode afterwards so the user's NumPy code is unaffected.
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

// Calls body(chunk_begin, chunk_end) over [begin, end) split into contiguous chunks of at least `grain`
// iterations (a few per thread). Runs inline when the range is small, when one thread is configured, or
// when already inside a parallel region (no nested teams).
//
// Chunks are claimed dynamically: a thread that starts late (its core busy with another process) finds the
// chunks already done by the others instead of holding them back; and when a region's end still had to
// wait for such a thread, the guard in parallel.cpp runs the next regions on the calling thread alone for
// a while, so a loaded machine degrades to one-thread speed instead of losing a scheduler time slice per
// call. Chunk boundaries depend only on
// the range, the grain and the thread count, and no kernel's arithmetic depends on them, so results are
// bit-identical for any thread count and any assignment of chunks to threads.
template <typename Body>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const Body& body) {
  if (end <= begin) return;
  const int64_t range = end - begin;
  if (grain < 1) grain = 1;
  int64_t max_chunks = range / grain;
  if (max_chunks < 1) max_chunks = 1;
  int threads = get_num_threads();
  if (threads > max_chunks) threads = static_cast<int>(max_chunks);
#if defined(FASTNN_WITH_OPENMP)
  if (threads > 1 && !omp_in_parallel() && detail::threads_allowed_now()) {
    constexpr int64_t kChunksPerThread = 4;
    const int64_t start_ns = detail::monotonic_ns();
    int64_t enter_ns = start_ns, done_ns = start_ns;
    const int64_t chunks = max_chunks < threads * kChunksPerThread ? max_chunks : threads * kChunksPerThread;
    std::atomic<int64_t> next_chunk{0};
    // An exception may not leave an OpenMP region (it would terminate the process): the first one a
    // worker throws (e.g. std::bad_alloc) is carried out and rethrown on the calling thread.
    std::exception_ptr error;
#pragma omp parallel num_threads(threads)
    {
      if (omp_get_thread_num() == 0) enter_ns = detail::monotonic_ns();
      try {
        DenormalsAreZero ftz;
        for (int64_t c = next_chunk.fetch_add(1, std::memory_order_relaxed); c < chunks;
             c = next_chunk.fetch_add(1, std::memory_order_relaxed)) {
          body(begin + range * c / chunks, begin + range * (c + 1) / chunks);
        }
        if (omp_get_thread_num() == 0) done_ns = detail::monotonic_ns();
      } catch (...) {
        next_chunk.store(chunks, std::memory_order_relaxed);  // the others stop claiming
#pragma omp critical(fastnn_parallel_for_error)
        if (!error) error = std::current_exception();
      }
    }
    detail::report_region(start_ns, enter_ns, done_ns, detail::monotonic_ns());
    if (error) std::rethrow_exception(error);
    return;
  }
#endif
  DenormalsAreZero ftz;
  body(begin, end);
}

}  // namespace fastnn
