// Pooling and batch-normalization inner loops for AVX-512F (64-byte vectors; this file alone is compiled with
// -mavx512f).
// pool.cpp and batchnorm.cpp dispatch here only on this set's SIMD path (active_simd_path()).
#define FASTNN_POOL_NORM_VECTOR_BYTES 64
#include "pool_norm_kernel_impl.h"

namespace fastnn::cpu::detail {

PoolNormKernelSet<float> avx512_pool_norm_f32() { return make_pool_norm_kernel_set<float>("avx512"); }
PoolNormKernelSet<double> avx512_pool_norm_f64() { return make_pool_norm_kernel_set<double>("avx512"); }

}  // namespace fastnn::cpu::detail
