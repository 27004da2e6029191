// Pooling and batch-normalization inner loops for AVX2 + FMA (32-byte vectors; this file alone is compiled with
// -mavx2 -mfma).
// pool.cpp and batchnorm.cpp dispatch here only on this set's SIMD path (active_simd_path()).
#define FASTNN_POOL_NORM_VECTOR_BYTES 32
#include "pool_norm_kernel_impl.h"

namespace fastnn::cpu::detail {

PoolNormKernelSet<float> avx2_pool_norm_f32() { return make_pool_norm_kernel_set<float>("avx2"); }
PoolNormKernelSet<double> avx2_pool_norm_f64() { return make_pool_norm_kernel_set<double>("avx2"); }

}  // namespace fastnn::cpu::detail
