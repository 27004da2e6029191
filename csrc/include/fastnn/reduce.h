// Reductions over one run of adjacent axes (what losses, metrics and the broadcasting backward need): x is seen as
// (outer, r, inner) C-contiguous and reduced over r into out (outer, inner). Tier 1: pure C++, outputs first,
// int64_t sizes, templates instantiated for float and double.
//
// The sums add in NumPy's order, so they are bit-identical to np.add.reduce of a C-contiguous array (float32
// accumulated in float32, float64 in float64):
//   inner == 1 (the reduced axes are the last ones): out[o] = 0 + pairwise(x[o, 0:r]), NumPy's pairwise summation
//     (numpy/_core/src/umath/loops_utils.h.src): runs below 8 added in order, runs up to 128 with 8 interleaved
//     accumulators combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)) plus the tail in order, longer runs split at
//     n/2 rounded down to a multiple of 8 and the halves added. Its error bound grows like O(log r) eps.
//   inner > 1: out[o, j] = ((0 + x[o, 0, j]) + x[o, 1, j]) + ... in order of r (NumPy's loop over an outer reduced
//     axis); error O(r) eps.
// Threads split the independent outputs, and a long pairwise run is split along its own recursion tree (the same
// additions in the same order), so every result is bit-identical for any thread count.
#pragma once

#include <cstdint>

namespace fastnn {
namespace cpu {

template <typename T>
void reduce_sum(T* out, const T* x, int64_t outer, int64_t r, int64_t inner);
// The reference twin: each output summed in double in index order, then rounded once.
template <typename T>
void reduce_sum_ref(T* out, const T* x, int64_t outer, int64_t r, int64_t inner);

// out = sum / r, the division done in double and rounded once, as np.mean does for float32 (it divides the
// float32 sum by an intp count, which promotes to float64) and float64. r must be positive.
template <typename T>
void reduce_mean(T* out, const T* x, int64_t outer, int64_t r, int64_t inner);
template <typename T>
void reduce_mean_ref(T* out, const T* x, int64_t outer, int64_t r, int64_t inner);

// out = the maximum over r, NaN when any reduced element is NaN (np.max). r must be positive. The value is exact and
// so is the sign of a zero maximum for outer-axis reductions (inner > 1) and runs of up to 16 float32 / 8 float64
// elements (ties give the later element, as NumPy's loops); for longer contiguous runs whose maximum is a zero with
// both +0 and -0 present, which zero comes out may differ from NumPy's (its SIMD lane order decides there).
template <typename T>
void reduce_max(T* out, const T* x, int64_t outer, int64_t r, int64_t inner);
template <typename T>
void reduce_max_ref(T* out, const T* x, int64_t outer, int64_t r, int64_t inner);

}  // namespace cpu
}  // namespace fastnn
