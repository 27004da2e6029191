// Internal to the GEMM: the micro-kernel contract and the kernel sets the driver dispatches to.
#pragma once

#include <cstdint>

namespace fastnn::cpu::detail {

// A micro-kernel computes one full MR x NR tile of C from packed panels:
//   a_panel holds op(A)[i, p] at a_panel[p * MR + i]   (k columns of MR values)
//   b_panel holds op(B)[p, j] at b_panel[p * NR + j]   (k rows of NR values, 64-byte aligned)
//   C[i, j] = alpha * sum_p a[i, p] * b[p, j] + beta * C[i, j]   (beta == 0: C is not read)
// The sum over p runs in increasing p, so a C element's rounding depends only on K and the KC blocking,
// never on the tile's position or the thread count.
template <typename T>
using MicroKernel = void (*)(int64_t k, const T* a_panel, const T* b_panel, T* c, int64_t ldc, T alpha, T beta);

// The direct kernel for small products (no packing): an m x n tile, m <= MR, n <= NR, of
//   C = alpha * A B + beta * C  with A[i, p] at a[i * rs_a + p * cs_a] and B[p, j] at b[p * ldb + j],
// summing the whole K in registers. Partial tiles use masked loads and stores, never reading past the edge.
template <typename T>
using DirectKernel = void (*)(int m, int n, int64_t k, const T* a, int64_t rs_a, int64_t cs_a, const T* b,
                              int64_t ldb, T* c, int64_t ldc, T alpha, T beta);

// Matrix-vector products, y written (not accumulated), x and y contiguous:
//   dot form:  y[i] = sum_p a[i * lda + p] * x[p], i < m      (rows of the matrix along K)
//   axpy form: y[j] = sum_p x[p] * a[p * lda + j], j < n      (rows of the matrix along the output)
template <typename T>
using GemvKernel = void (*)(int64_t rows_or_cols, int64_t k, const T* a, int64_t lda, const T* x, T* y);

// The fused epilogue on an m x n tile of C just stored (still in L1): C[i, j] = act(C[i, j] + bias[j]) (bias may
// be null; relu: x < 0 becomes 0, NaN stays NaN). Compiled per ISA so it runs at vector width: in the baseline
// translation unit it cost as much as the product itself for a small K (a 3x3 conv on 3 channels, K = 27).
template <typename T>
using EpilogueKernel = void (*)(T* c, int64_t ldc, int m, int n, const T* bias, bool relu);

// The direct kernel over several (A, B) pairs summed in registers: an m x n tile (m <= MR, n <= NR) of
//   C = sum over s < nseg of A_s B_s,  A_s[i, p] at a[s][i * rs_a + p] (p < k), B_s row p at b[s] + p * ldb,
// the segments in order and each one's p in increasing order, then the epilogue as the GEMM's (+ bias[j] if not
// null, then ReLU if asked) in registers, then stored (C not read). A thin convolution's forward: segment s is
// kernel row s, A_s the consecutive output pixels' KW*C taps of that input row.
template <typename T>
using SegmentsKernel = void (*)(int m, int n, int nseg, const T* const* a, int64_t rs_a, int64_t k,
                                const T* const* b, int64_t ldb, T* c, int64_t ldc, const T* bias, bool relu);

// The kernels of one ISA, and the cache blocking the driver uses with them (blocked_kernels fills mc, kc, nc
// from the cache sizes in effect; the sets as made by each ISA's file leave them 0).
template <typename T>
struct GemmKernelSet {
  const char* name;
  int mr, nr;          // register tile
  int64_t mc, kc, nc;  // cache blocks: an MC x KC block of A stays in L2, a KC x NR panel of B in L1
  // The KC x NR panel of B as a share of L1d (gemm_blocking.cpp): 0.5 keeps it in L1 (BLIS's rule, right for
  // the 6 x 16 AVX2 tile); the 12 x 32 AVX-512 tile does 24 FMAs per two B vectors, so its panel may stream
  // from L2 and a longer KC amortises the C tile's read-modify-write (2.0: KC 768 on a 48 KiB L1d, measured
  // best on Zen 5 and Sapphire Rapids, where KC 192 lost 5-10% on large squares).
  double kc_l1_share;
  MicroKernel<T> kernel;
  DirectKernel<T> direct;
  GemvKernel<T> gemv_dot;
  GemvKernel<T> gemv_axpy;
  EpilogueKernel<T> epilogue;
  SegmentsKernel<T> direct_segments;
};

GemmKernelSet<float> generic_kernels_f32();
GemmKernelSet<double> generic_kernels_f64();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
GemmKernelSet<float> avx2_kernels_f32();
GemmKernelSet<double> avx2_kernels_f64();
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
GemmKernelSet<float> avx512_kernels_f32();
GemmKernelSet<double> avx512_kernels_f64();
#endif

// The set for the SIMD path active now (runtime.h), blocking not filled in.
template <typename T>
const GemmKernelSet<T>& active_kernels();

// The active set with its cache blocking derived from cache_sizes() (gemm_blocking.cpp): what every GEMM call
// runs with. A few integer operations, so it is recomputed per call and follows set_cache_sizes at once.
template <typename T>
GemmKernelSet<T> blocked_kernels();
// Whether FASTNN_GEMM_BLOCKS (parsed once, at the first GEMM) replaced the derived blocks.
bool gemm_blocks_overridden();

}  // namespace fastnn::cpu::detail
