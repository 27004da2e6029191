// AVX-512F kernels. This translation unit alone is compiled with -mavx512f; runtime.cpp dispatches here
// only after CPUID reports AVX-512F (and OS support for the zmm state). 12 x 32 fp32 / 12 x 16 fp64 tiles:
// 24 accumulators and 2 B vectors of the 32 zmm registers; A elements are broadcast from memory.
#include "simd/vec_avx512.h"
// (the vector header must come first)
#include "gemm_kernel_impl.h"

namespace fastnn::cpu::detail {

GemmKernelSet<float> avx512_kernels_f32() {
  return make_kernel_set<simd::F32x16, 12, 2>("avx512", 2.0);
}
GemmKernelSet<double> avx512_kernels_f64() {
  return make_kernel_set<simd::F64x8, 12, 2>("avx512", 2.0);
}

}  // namespace fastnn::cpu::detail
