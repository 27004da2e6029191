// Internal to elementwise.cpp and optimizer.cpp: the per-ISA kernel sets they dispatch to.
//
// Like the GEMM (gemm_kernels.h), the arithmetic is compiled three times from elementwise_kernel_impl.h, in
// elementwise_kernel_generic.cpp (baseline ISA), _avx2.cpp (-mavx2 -mfma) and _avx512.cpp (-mavx512f), and the
// set for active_simd_path() is chosen at run time, so FASTNN_SIMD / set_simd_path switch these kernels too.
// A set holds only pure arithmetic over raw pointers: the drivers (threads through parallel_for, label checks,
// DenormalsAreZero, scratch memory) stay in the baseline translation units. Every function computes each element
// or row by the same vector code wherever it sits (tails are padded, not handled by a scalar loop), so results
// never depend on the thread count or chunk boundaries; sums use the fixed 16-way layout of vmath::Sum16.
#pragma once

#include <cstdint>

#include "fastnn/elementwise.h"
#include "fastnn/optimizer.h"

namespace fastnn::cpu::detail {

constexpr int kActKinds = static_cast<int>(ActKind::kHardSigmoid) + 1;
constexpr int kMathFns = static_cast<int>(MathFn::kSigmoid) + 1;

template <typename T>
struct ElementwiseKernelSet {
  const char* name;
  // y[i] = act(x[i]) / dx[i] = dy[i] act'(x[i]) for i < n, indexed by ActKind (null for kGelu: see elementwise.cpp).
  void (*act_forward[kActKinds])(T* y, const T* x, int64_t n, T alpha);
  void (*act_backward[kActKinds])(T* dx, const T* dy, const T* x, const T* y, int64_t n, T alpha);
  // Rows [0, rows) of (rows, cols) arrays, as in fastnn/elementwise.h.
  void (*softmax_forward)(T* y, const T* x, int64_t rows, int64_t cols);
  void (*softmax_backward)(T* dx, const T* dy, const T* y, int64_t rows, int64_t cols);
  void (*log_softmax_forward)(T* y, const T* x, int64_t rows, int64_t cols);
  void (*log_softmax_backward)(T* dx, const T* dy, const T* y, int64_t rows, int64_t cols);
  // One row: log(sum(exp(x))), max-shifted (NaN for a row with NaN or +inf or only -inf; -inf when empty).
  T (*row_lse)(const T* x, int64_t cols);
  // One row: d[j] = g exp(x[j] - lse).
  void (*scaled_softmax_row)(T* d, const T* x, T g, T lse, int64_t cols);
  // One row: sum_j t[j] (lse - x[j]).
  T (*dense_xent_row)(const T* x, const T* t, T lse, int64_t cols);
  // One row: d[j] = g (exp(x[j] - lse) sum_k t[k] - t[j]).
  void (*dense_xent_backward_row)(T* d, const T* x, const T* t, T g, T lse, int64_t cols);
  void (*bias_add_forward)(T* y, const T* x, const T* b, int64_t rows, int64_t cols);
  // acc[j] += sum over the rows of dy[r, j], rows added in order (one column's sum is the serial sum).
  void (*column_sums)(T* acc, const T* dy, int64_t rows, int64_t cols);
  // y[i] = f(x[i]) for the elementary functions (tests and benchmarks), indexed by MathFn.
  void (*math[kMathFns])(T* y, const T* x, int64_t n);
};

template <typename T>
struct OptimizerKernelSet {
  const char* name;
  // The update of elements [0, n) (pointers already offset to the chunk) for the kinds optimizer_update runs
  // element by element (not Lamb, Adafactor, or Ftrl, whose pow has no vector form here); the same IEEE
  // operations in the same order as optimizer_update_ref, so every ISA gives the reference's bits.
  void (*update)(T* var, T* s0, T* s1, T* s2, const T* grad, int64_t n, double grad_scale, const OptimizerParams& p);
  // sum(x * x) in double over n elements, in the Sum16 layout.
  double (*sum_squares)(const T* x, int64_t n);
};

ElementwiseKernelSet<float> generic_elementwise_f32();
ElementwiseKernelSet<double> generic_elementwise_f64();
OptimizerKernelSet<float> generic_optimizer_f32();
OptimizerKernelSet<double> generic_optimizer_f64();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
ElementwiseKernelSet<float> avx2_elementwise_f32();
ElementwiseKernelSet<double> avx2_elementwise_f64();
OptimizerKernelSet<float> avx2_optimizer_f32();
OptimizerKernelSet<double> avx2_optimizer_f64();
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
ElementwiseKernelSet<float> avx512_elementwise_f32();
ElementwiseKernelSet<double> avx512_elementwise_f64();
OptimizerKernelSet<float> avx512_optimizer_f32();
OptimizerKernelSet<double> avx512_optimizer_f64();
#endif

// The sets for the SIMD path active now (elementwise.cpp).
template <typename T>
const ElementwiseKernelSet<T>& active_elementwise_kernels();
template <typename T>
const OptimizerKernelSet<T>& active_optimizer_kernels();

}  // namespace fastnn::cpu::detail
