// The GEMM kernel bodies, written once over a SIMD vector type V (simd/vec_*.h provides F32x8, F64x4,
// F32x16, ...). Each ISA's translation unit includes its vector header, then this file, and instantiates
// the templates for its own types inside its anonymous namespace, so the same source yields the AVX-512,
// AVX2 and baseline kernels without any of them leaking into another through the linker.
#pragma once

#include <cstdint>

#include "fastnn/common.h"
#include "gemm_kernels.h"

namespace fastnn::cpu::detail {
namespace {

// The register tile: MR rows of NV vectors of accumulators.
template <class V, int MR, int NV>
FASTNN_ALWAYS_INLINE void zero_tile(V (&acc)[MR][NV]) {
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();
}

// One rank-1 update of the tile: acc[i][j] += a[i * rs] * b[j], with a[i * rs] broadcast from memory.
template <class V, int MR, int NV>
FASTNN_ALWAYS_INLINE void rank1_update(V (&acc)[MR][NV], const V (&bv)[NV], const typename V::Scalar* a,
                                       int64_t rs) {
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    const V av = V::broadcast(a + i * rs);
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j] = fmadd(av, bv[j], acc[i][j]);
  }
}

// C[i, j] = alpha * acc[i][j] + beta * C[i, j] for i < m, j < n (beta == 0: C is not read).
template <class V, int MR, int NV>
FASTNN_ALWAYS_INLINE void store_tile(const V (&acc)[MR][NV], typename V::Scalar* c, int64_t ldc,
                                     typename V::Scalar alpha, typename V::Scalar beta, int m, int n) {
  using T = typename V::Scalar;
  constexpr int W = V::kWidth;
  const V va = V::set1(alpha);
  const V vb = V::set1(beta);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    T* ci = c + i * ldc;
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      const int nj = n - j * W;
      if (nj <= 0) break;
      V r = mul(va, acc[i][j]);
      if (nj >= W) {
        if (beta != T(0)) r = fmadd(vb, V::loadu(ci + j * W), r);
        r.storeu(ci + j * W);
      } else {
        if (beta != T(0)) r = fmadd(vb, V::load_first(ci + j * W, nj), r);
        r.store_first(ci + j * W, nj);
      }
    }
  }
}

// Prefetch distances of the packed micro-kernel, in bytes ahead of the current k step. The A sliver streams
// from L2 (the MC x KC block), so it is fetched ~8 steps ahead, more than an L2 round trip at two FMAs a cycle;
// the B panel is in L1 after the first row tile, but the first one reads it from L3, hence its longer distance.
constexpr int kPrefetchAheadA = 512;
constexpr int kPrefetchAheadB = 1024;

// Prefetches the C tile's rows for writing, so that the read-modify-write at the end of the micro-kernel does
// not stall on rows that the K loop has had time to bring in (C rows are ldc apart: no hardware prefetcher
// follows them). Both the first and last byte of each row, in case the row straddles a cache line.
template <class V, int MR, int NV>
FASTNN_ALWAYS_INLINE void prefetch_c_tile(const typename V::Scalar* c, int64_t ldc) {
  constexpr int W = V::kWidth;
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    __builtin_prefetch(c + i * ldc, 1, 3);
    __builtin_prefetch(c + i * ldc + NV * W - 1, 1, 3);
  }
}

// One k step of the packed micro-kernel: the B row's NV vectors, then MR broadcasts of A into the tile.
template <class V, int MR, int NV>
FASTNN_ALWAYS_INLINE void packed_step(V (&acc)[MR][NV], const typename V::Scalar* a, const typename V::Scalar* b) {
  constexpr int W = V::kWidth;
  V bv[NV];
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) bv[j] = V::load(b + j * W);
  rank1_update<V, MR, NV>(acc, bv, a, 1);
}

// The packed micro-kernel (contract in gemm_kernels.h): an MR x (NV * W) tile from packed panels. One A and one B
// prefetch per k step keep the load ports far from saturated (2 FMAs and at most ~1.5 loads a cycle). The K loop
// is deliberately not unrolled: GCC then interleaves the steps and spills accumulators of the 6 x 16 AVX2 tile
// (16 ymm registers, 15 in use), which cost 15% at 2048^3.
template <class V, int MR, int NV>
void packed_kernel(int64_t k, const typename V::Scalar* a, const typename V::Scalar* b, typename V::Scalar* c,
                   int64_t ldc, typename V::Scalar alpha, typename V::Scalar beta) {
  constexpr int W = V::kWidth;
  prefetch_c_tile<V, MR, NV>(c, ldc);
  V acc[MR][NV];
  zero_tile<V, MR, NV>(acc);
  int64_t p = 0;
  // Unrolled by 2 only where registers allow: the 12 x 32 AVX-512 tile's 24 accumulators leave too few of the 32
  // zmm registers for two steps' B vectors (GCC then spills one accumulator per iteration).
  constexpr bool kUnroll2 = MR * NV <= 16;
  if constexpr (kUnroll2) {
    for (; p + 2 <= k; p += 2) {
      __builtin_prefetch(reinterpret_cast<const char*>(a) + kPrefetchAheadA, 0, 3);
      packed_step<V, MR, NV>(acc, a, b);
      __builtin_prefetch(reinterpret_cast<const char*>(b) + kPrefetchAheadB, 0, 3);
      packed_step<V, MR, NV>(acc, a + MR, b + NV * W);
      a += 2 * MR;
      b += 2 * NV * W;
    }
  }
  for (; p < k; ++p) {
    __builtin_prefetch(reinterpret_cast<const char*>(a) + kPrefetchAheadA, 0, 3);
    __builtin_prefetch(reinterpret_cast<const char*>(b) + kPrefetchAheadB, 0, 3);
    packed_step<V, MR, NV>(acc, a, b);
    a += MR;
    b += NV * W;
  }
  store_tile<V, MR, NV>(acc, c, ldc, alpha, beta, MR, NV * W);
}

constexpr int64_t kDirectPrefetchRows = 12;

// The direct (unpacked) kernel for small products: an m x n tile (m = MR rows exactly, n <= NV * W) of
// C = alpha * A B + beta * C, reading A[i, p] at a[i * rs_a + p * cs_a] and row p of B at b + p * ldb.
// kFullN: n == NV * W, so B rows load without masks.
template <class V, int MR, int NV, bool kFullN>
void direct_tile(int n, int64_t k, const typename V::Scalar* a, int64_t rs_a, int64_t cs_a,
                 const typename V::Scalar* b, int64_t ldb, typename V::Scalar* c, int64_t ldc,
                 typename V::Scalar alpha, typename V::Scalar beta) {
  constexpr int W = V::kWidth;
  V acc[MR][NV];
  zero_tile<V, MR, NV>(acc);
  for (int64_t p = 0; p < k; ++p) {
    V bv[NV];
    const typename V::Scalar* bp = b + p * ldb;
    // B's rows are ldb apart, often more than a page, where no hardware prefetcher follows them: fetch the
    // row kDirectPrefetchRows ahead (its first and last byte; a no-op once this panel is in L1).
    if (p + kDirectPrefetchRows < k) {
      __builtin_prefetch(bp + kDirectPrefetchRows * ldb, 0, 3);
      __builtin_prefetch(bp + kDirectPrefetchRows * ldb + n - 1, 0, 3);
    }
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      if (kFullN) {
        bv[j] = V::loadu(bp + j * W);
      } else {
        const int nj = n - j * W;  // >= 1: the dispatcher picked NV = ceil(n / W)
        bv[j] = V::load_first(bp + j * W, nj < W ? nj : W);
      }
    }
    const typename V::Scalar* ap = a + p * cs_a;
    rank1_update<V, MR, NV>(acc, bv, ap, rs_a);
  }
  store_tile<V, MR, NV>(acc, c, ldc, alpha, beta, MR, n);
}

// Dispatches a direct tile of m <= MR rows and n <= NV * W columns to the instantiation with exactly m
// rows and ceil(n / W) vectors.
template <class V, int MR, int NV>
void direct_kernel(int m, int n, int64_t k, const typename V::Scalar* a, int64_t rs_a, int64_t cs_a,
                   const typename V::Scalar* b, int64_t ldb, typename V::Scalar* c, int64_t ldc,
                   typename V::Scalar alpha, typename V::Scalar beta) {
  if constexpr (MR > 1) {
    if (m < MR) {
      direct_kernel<V, MR - 1, NV>(m, n, k, a, rs_a, cs_a, b, ldb, c, ldc, alpha, beta);
      return;
    }
  }
  constexpr int W = V::kWidth;
  if constexpr (NV > 1) {
    if (n <= (NV - 1) * W) {
      direct_kernel<V, MR, NV - 1>(m, n, k, a, rs_a, cs_a, b, ldb, c, ldc, alpha, beta);
      return;
    }
  }
  if (n == NV * W) direct_tile<V, MR, NV, true>(n, k, a, rs_a, cs_a, b, ldb, c, ldc, alpha, beta);
  else direct_tile<V, MR, NV, false>(n, k, a, rs_a, cs_a, b, ldb, c, ldc, alpha, beta);
}

// See SegmentsKernel: direct_tile's loop over each segment in turn, one accumulator tile for all of them.
template <class V, int MR, int NV, bool kFullN>
void segments_tile(int n, int nseg, const typename V::Scalar* const* a, int64_t rs_a, int64_t k,
                   const typename V::Scalar* const* b, int64_t ldb, typename V::Scalar* c, int64_t ldc,
                   const typename V::Scalar* bias, bool relu_after) {
  constexpr int W = V::kWidth;
  V acc[MR][NV];
  zero_tile<V, MR, NV>(acc);
  for (int s = 0; s < nseg; ++s) {
    const typename V::Scalar* as = a[s];
    const typename V::Scalar* bs = b[s];
    for (int64_t p = 0; p < k; ++p) {
      V bv[NV];
      const typename V::Scalar* bp = bs + p * ldb;
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        if (kFullN) {
          bv[j] = V::loadu(bp + j * W);
        } else {
          const int nj = n - j * W;
          bv[j] = V::load_first(bp + j * W, nj < W ? nj : W);
        }
      }
      rank1_update<V, MR, NV>(acc, bv, as + p, rs_a);
    }
  }
  if (bias != nullptr) {
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      const int nj = n - j * W;
      const V bj = kFullN ? V::loadu(bias + j * W) : V::load_first(bias + j * W, nj < W ? nj : W);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) acc[i][j] = add(acc[i][j], bj);
    }
  }
  if (relu_after) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = relu(acc[i][j]);
  }
  using T = typename V::Scalar;
  store_tile<V, MR, NV>(acc, c, ldc, T(1), T(0), MR, n);
}

template <class V, int MR, int NV>
void segments_kernel(int m, int n, int nseg, const typename V::Scalar* const* a, int64_t rs_a, int64_t k,
                     const typename V::Scalar* const* b, int64_t ldb, typename V::Scalar* c, int64_t ldc,
                     const typename V::Scalar* bias, bool relu_after) {
  if constexpr (MR > 1) {
    if (m < MR) {
      segments_kernel<V, MR - 1, NV>(m, n, nseg, a, rs_a, k, b, ldb, c, ldc, bias, relu_after);
      return;
    }
  }
  constexpr int W = V::kWidth;
  if constexpr (NV > 1) {
    if (n <= (NV - 1) * W) {
      segments_kernel<V, MR, NV - 1>(m, n, nseg, a, rs_a, k, b, ldb, c, ldc, bias, relu_after);
      return;
    }
  }
  if (n == NV * W) segments_tile<V, MR, NV, true>(n, nseg, a, rs_a, k, b, ldb, c, ldc, bias, relu_after);
  else segments_tile<V, MR, NV, false>(n, nseg, a, rs_a, k, b, ldb, c, ldc, bias, relu_after);
}

// Dot form of matrix-vector: y[i] = sum_p a[i * lda + p] * x[p] for i < m (rows of a and x contiguous).
// Every row is summed the same way (two interleaved vector accumulators, then a masked tail), so the
// result for a row does not depend on which rows share its group.
template <class V>
void gemv_dot(int64_t m, int64_t k, const typename V::Scalar* a, int64_t lda, const typename V::Scalar* x,
              typename V::Scalar* y) {
  constexpr int W = V::kWidth;
  // Rows per group: 2R independent accumulators (8 of the 16 ymm registers with AVX2, 16 of the 32 zmm with
  // AVX-512, where more rows in flight keep more L2 misses outstanding).
  constexpr int R = sizeof(typename V::Scalar) * W == 64 ? 8 : 4;
  int64_t i = 0;
  for (; i + R <= m; i += R) {
    V acc0[R], acc1[R];
    for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = V::zero();
    int64_t p = 0;
    for (; p + 2 * W <= k; p += 2 * W) {
      const V x0 = V::loadu(x + p), x1 = V::loadu(x + p + W);
      for (int r = 0; r < R; ++r) {
        acc0[r] = fmadd(V::loadu(a + (i + r) * lda + p), x0, acc0[r]);
        acc1[r] = fmadd(V::loadu(a + (i + r) * lda + p + W), x1, acc1[r]);
      }
    }
    for (; p < k; p += W) {
      const int left = k - p < W ? static_cast<int>(k - p) : W;
      const V x0 = V::load_first(x + p, left);
      for (int r = 0; r < R; ++r) acc0[r] = fmadd(V::load_first(a + (i + r) * lda + p, left), x0, acc0[r]);
    }
    for (int r = 0; r < R; ++r) y[i + r] = add(acc0[r], acc1[r]).reduce_add();
  }
  for (; i < m; ++i) {
    V acc0 = V::zero(), acc1 = V::zero();
    int64_t p = 0;
    for (; p + 2 * W <= k; p += 2 * W) {
      acc0 = fmadd(V::loadu(a + i * lda + p), V::loadu(x + p), acc0);
      acc1 = fmadd(V::loadu(a + i * lda + p + W), V::loadu(x + p + W), acc1);
    }
    for (; p < k; p += W) {
      const int left = k - p < W ? static_cast<int>(k - p) : W;
      acc0 = fmadd(V::load_first(a + i * lda + p, left), V::load_first(x + p, left), acc0);
    }
    y[i] = add(acc0, acc1).reduce_add();
  }
}

// Axpy form of matrix-vector: y[j] = sum_p x[p] * a[p * lda + j] for j < n (rows of a contiguous).
// The matrix is streamed row by row (four rows at a time) over a block of y that stays in L1, so every load
// of a is sequential: walking down columns instead touched a new page per row, which the hardware prefetchers
// do not follow (1x1000x1000: 14 GFLOP/s that way, against OpenBLAS's 33 on two threads). Each y[j] is still
// one FMA chain over p in increasing order, so the result does not depend on the blocking.
template <class V>
void gemv_axpy(int64_t n, int64_t k, const typename V::Scalar* a, int64_t lda, const typename V::Scalar* x,
               typename V::Scalar* y) {
  using T = typename V::Scalar;
  constexpr int W = V::kWidth;
  constexpr int64_t kBlock = 4096 / sizeof(T);  // y block: 4 KiB of L1
  constexpr int R = 4;                          // rows per pass over the block
  for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
    const int64_t width = n - j0 < kBlock ? n - j0 : kBlock;
    T* yb = y + j0;
    const T* ab = a + j0;
    int64_t p = 0;
    for (; p < k; p += R) {
      const int rows = k - p < R ? static_cast<int>(k - p) : R;
      V xp[R];
      for (int r = 0; r < rows; ++r) xp[r] = V::broadcast(x + p + r);
      const T* ap = ab + p * lda;
      int64_t j = 0;
      for (; j + W <= width; j += W) {
        V acc = p == 0 ? V::zero() : V::loadu(yb + j);
        if (rows == R) {
#pragma GCC unroll 4
          for (int r = 0; r < R; ++r) acc = fmadd(xp[r], V::loadu(ap + r * lda + j), acc);
        } else {
          for (int r = 0; r < rows; ++r) acc = fmadd(xp[r], V::loadu(ap + r * lda + j), acc);
        }
        acc.storeu(yb + j);
      }
      if (j < width) {
        const int left = static_cast<int>(width - j);
        V acc = p == 0 ? V::zero() : V::load_first(yb + j, left);
        for (int r = 0; r < rows; ++r) acc = fmadd(xp[r], V::load_first(ap + r * lda + j, left), acc);
        acc.store_first(yb + j, left);
      }
    }
  }
}

// See EpilogueKernel: plain loops the ISA's -m flags vectorize (the add and the select round nothing, so every
// path gives the same bits).
template <typename T>
void epilogue_tile(T* c, int64_t ldc, int m, int n, const T* bias, bool relu) {
  for (int i = 0; i < m; ++i) {
    T* FASTNN_RESTRICT ci = c + i * ldc;
    if (bias != nullptr)
      for (int j = 0; j < n; ++j) ci[j] += bias[j];
    if (relu)
      for (int j = 0; j < n; ++j) ci[j] = ci[j] < T(0) ? T(0) : ci[j];  // NaN stays NaN
  }
}

template <class V, int MR, int NV>
GemmKernelSet<typename V::Scalar> make_kernel_set(const char* name, double kc_l1_share) {
  GemmKernelSet<typename V::Scalar> set;
  set.name = name;
  set.mr = MR;
  set.nr = NV * V::kWidth;
  set.mc = set.kc = set.nc = 0;  // blocked_kernels derives them from the caches
  set.kc_l1_share = kc_l1_share;
  set.kernel = &packed_kernel<V, MR, NV>;
  set.direct = &direct_kernel<V, MR, NV>;
  set.gemv_dot = &gemv_dot<V>;
  set.gemv_axpy = &gemv_axpy<V>;
  set.epilogue = &epilogue_tile<typename V::Scalar>;
  set.direct_segments = &segments_kernel<V, MR, NV>;
  return set;
}

}  // namespace
}  // namespace fastnn::cpu::detail
