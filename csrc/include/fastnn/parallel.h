// The one place that speaks OpenMP. Kernels parallelise with parallel_for and never write `omp`.
#pragma once

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

// Thread count used by every kernel. Defaults to OpenMP's (which honours OMP_NUM_THREADS); always 1 in a
// build without OpenMP.
int get_num_threads();
// Sets the thread count for subsequent kernels (n >= 1; clamped to 1 without OpenMP).
void set_num_threads(int n);
bool openmp_enabled();

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

// Calls body(chunk_begin, chunk_end) over [begin, end) split into at most get_num_threads() contiguous
// chunks of at least `grain` iterations. Runs inline when the range is small, when one thread is
// configured, or when already inside a parallel region (no nested teams). The split is static and
// depends only on the range and the thread count, so a kernel whose per-element arithmetic does not depend
// on the chunking gives bit-identical results for any thread count.
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
  if (threads > 1 && !omp_in_parallel()) {
    // An exception may not leave an OpenMP region (it would terminate the process): the first one a
    // worker throws (e.g. std::bad_alloc) is carried out and rethrown on the calling thread.
    std::exception_ptr error;
#pragma omp parallel num_threads(threads)
    {
      try {
        DenormalsAreZero ftz;
        const int64_t tid = omp_get_thread_num();
        const int64_t team = omp_get_num_threads();
        const int64_t chunk_begin = begin + range * tid / team;
        const int64_t chunk_end = begin + range * (tid + 1) / team;
        if (chunk_begin < chunk_end) body(chunk_begin, chunk_end);
      } catch (...) {
#pragma omp critical(fastnn_parallel_for_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    return;
  }
#endif
  DenormalsAreZero ftz;
  body(begin, end);
}

}  // namespace fastnn
