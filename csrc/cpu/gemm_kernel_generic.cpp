// Portable kernels for the baseline ISA (SSE2 on x86-64, scalar elsewhere). The same tile shapes as the
// AVX2 kernels would spill here (16 xmm registers), so they use 4 x 8 fp32 / 4 x 4 fp64 tiles.
#include "simd/vec_sse2.h"
// (the vector header must come first)
#include "gemm_kernel_impl.h"

namespace fastnn::cpu::detail {

GemmKernelSet<float> generic_kernels_f32() {
  constexpr int kNV = 8 / simd::GenericF32::kWidth;
  return make_kernel_set<simd::GenericF32, 4, kNV>("generic", 0.5);
}
GemmKernelSet<double> generic_kernels_f64() {
  constexpr int kNV = 4 / simd::GenericF64::kWidth;
  return make_kernel_set<simd::GenericF64, 4, kNV>("generic", 0.5);
}

}  // namespace fastnn::cpu::detail
