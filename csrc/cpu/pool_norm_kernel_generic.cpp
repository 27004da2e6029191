// Pooling and batch-normalization inner loops for the baseline ISA (SSE2 on x86-64: 16-byte vectors).
// pool.cpp and batchnorm.cpp dispatch here only on this set's SIMD path (active_simd_path()).
#define FASTNN_POOL_NORM_VECTOR_BYTES 16
#include "pool_norm_kernel_impl.h"

namespace fastnn::cpu::detail {

PoolNormKernelSet<float> generic_pool_norm_f32() { return make_pool_norm_kernel_set<float>("generic"); }
PoolNormKernelSet<double> generic_pool_norm_f64() { return make_pool_norm_kernel_set<double>("generic"); }

}  // namespace fastnn::cpu::detail
