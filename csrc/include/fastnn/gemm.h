// General matrix multiply: C = act(alpha * op(A) * op(B) + beta * C + bias).
//
// Row-major storage. op(A) is (M, K): A is stored (M, K) with row stride lda, or (K, M) when trans_a.
// op(B) is (K, N): B is stored (K, N) with row stride ldb, or (N, K) when trans_b. C is (M, N) with row
// stride ldc. Elements within a row are contiguous; row strides may be any int64 (zero and negative
// included), so broadcast and reversed views need no copy. C must not overlap A or B.
// beta == 0 overwrites C without reading it (NaN in C does not propagate), and alpha == 0 (or K == 0) reads
// neither A nor B (C = beta * C + bias), as in BLAS.
#pragma once

#include <cstdint>

namespace fastnn {

enum class Activation : int { kIdentity = 0, kRelu = 1 };

template <typename T>
struct GemmParams {
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  int64_t lda = 0, ldb = 0, ldc = 0;
  T alpha = 1, beta = 0;
  // Fused epilogue, applied once per element of C after the full K reduction.
  const T* bias = nullptr;  // length N, added to every row of C (a Dense / Conv bias); may be null
  Activation activation = Activation::kIdentity;
};

namespace cpu {

// The fast kernel: packed panels, cache blocking, SIMD micro-kernels, OpenMP.
template <typename T>
void gemm(T* c, const T* a, const T* b, const GemmParams<T>& p);

// The reference twin: the textbook triple loop, used by tests to check gemm().
template <typename T>
void gemm_ref(T* c, const T* a, const T* b, const GemmParams<T>& p);

// `batch` independent products; matrix i uses a + i*stride_a, b + i*stride_b, c + i*stride_c.
// Strides may be zero (a broadcast operand). Each product obeys `p`.
template <typename T>
void gemm_strided_batched(T* c, int64_t stride_c, const T* a, int64_t stride_a, const T* b, int64_t stride_b,
                          int64_t batch, const GemmParams<T>& p);

// Which algorithm gemm() uses. kAuto (the default) picks by shape: matrix-vector kernels when M or N is 1,
// the direct (unpacked) kernel for small products, the packed BLIS-style path otherwise. Tests force each
// path over the same shape sweep. kGemv exists only where M or N is 1: forced, gemm() of any other shape throws
// std::invalid_argument (a forced path never silently runs another). kPrepacked packs op(B) whole, then runs the
// recurrence kernels' product on it on the calling thread (cpu/gemm_prepacked.h), so the shape sweeps test it too.
enum class GemmPath : int { kAuto = 0, kPacked = 1, kDirect = 2, kGemv = 3, kPrepacked = 4 };
void set_gemm_path(GemmPath path);
GemmPath gemm_path();

}  // namespace cpu
}  // namespace fastnn
