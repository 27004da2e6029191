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

// A micro-kernel and the cache blocking tuned for it.
template <typename T>
struct GemmKernelSet {
  const char* name;
  int mr, nr;       // register tile
  int64_t mc, kc, nc;  // cache blocks: an MC x KC block of A stays in L2, a KC x NR panel of B in L1
  MicroKernel<T> kernel;
};

GemmKernelSet<float> generic_kernels_f32();
GemmKernelSet<double> generic_kernels_f64();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
GemmKernelSet<float> avx2_kernels_f32();
GemmKernelSet<double> avx2_kernels_f64();
#endif

// The set for the SIMD path active now (runtime.h).
template <typename T>
const GemmKernelSet<T>& active_kernels();

}  // namespace fastnn::cpu::detail
