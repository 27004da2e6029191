// Internal to pool.cpp and batchnorm.cpp: the per-ISA inner loops of the pooling and batch-normalization kernels.
//
// As for the elementwise kernels (elementwise_kernels.h), the loops are written once in pool_norm_kernel_impl.h and
// compiled three times: pool_norm_kernel_generic.cpp (baseline ISA), _avx2.cpp (-mavx2 -mfma) and _avx512.cpp
// (-mavx512f), all with -ffp-contract=off; the set for active_simd_path() is picked at run time, so FASTNN_SIMD /
// set_simd_path switch these kernels too. A set holds only arithmetic over raw pointers and row ranges; the drivers
// (threads, DenormalsAreZero, scratch memory) stay in pool.cpp / batchnorm.cpp. Each element is computed by the
// same IEEE operations in the same order on every path (the max pool only compares and selects; the batch-norm
// loops accumulate each channel over the rows in row order in double, lanes running across channels), so every
// path gives the same bits, and the fast kernels' agreement with their reference twins does not depend on the ISA.
#pragma once

#include <cstdint>

#include "fastnn/pool.h"

namespace fastnn::cpu::detail {

template <typename T>
struct PoolNormKernelSet {
  const char* name;
  // Output rows [row_begin, row_end) (of N * OH) of the max forward: y and argmax. narrow: every window offset in
  // elements (((ih - h0) * W + (iw - w0)) * C < pool_h * W * C) fits in int32 (always true for double, whose lanes
  // are int64); otherwise a scalar loop keeps it in int64.
  void (*max_pool_rows)(T* y, int64_t* argmax, const T* x, const Pool2dParams& p, int64_t row_begin,
                        int64_t row_end, bool narrow);
  // Batch norm over rows [r0, r1) of an (M, C) array, accumulating in double, each channel in row order:
  // block statistics (assigned): sum[j] = sum x, mean[j] = sum[j] / rows, m2[j] = sum (x - mean[j])^2 (the
  // block's own two-pass variance, the block read twice while it sits in cache).
  void (*bn_block_stats)(double* sum, double* m2, double* mean, const T* x, int64_t r0, int64_t r1, int64_t c);
  // y = (x - shift) * scale + offset in double, rounded once; relu: then y < 0 ? 0 : y (the ReLU kernel's rule).
  void (*bn_normalize)(T* y, const T* x, const double* shift, const double* scale, const double* offset, int64_t r0,
                       int64_t r1, int64_t c, bool relu);
  // acc[j] += g, acc[c + j] += g * (x - mu)   (the backward's sums), g = dy, or with relu_y non-null
  // g = relu_y > 0 ? dy : 0 (the ReLU backward's mask, from the fused forward's output).
  void (*bn_backward_sums)(double* acc, const T* dy, const T* x, const T* relu_y, const double* mu, int64_t r0,
                           int64_t r1, int64_t c);
  // dx = a * (g - k1 - (x - mu) * k2) in double, rounded once, g as above.
  void (*bn_backward_dx)(T* dx, const T* dy, const T* x, const T* relu_y, const double* mu, const double* a,
                         const double* k1, const double* k2, int64_t r0, int64_t r1, int64_t c);
};

PoolNormKernelSet<float> generic_pool_norm_f32();
PoolNormKernelSet<double> generic_pool_norm_f64();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
PoolNormKernelSet<float> avx2_pool_norm_f32();
PoolNormKernelSet<double> avx2_pool_norm_f64();
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
PoolNormKernelSet<float> avx512_pool_norm_f32();
PoolNormKernelSet<double> avx512_pool_norm_f64();
#endif

// The set for the SIMD path active now (pool.cpp).
template <typename T>
const PoolNormKernelSet<T>& active_pool_norm_kernels();

}  // namespace fastnn::cpu::detail
