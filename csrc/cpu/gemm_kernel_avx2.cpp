// AVX2 + FMA kernels. This translation unit alone is compiled with -mavx2 -mfma; runtime.cpp dispatches
// here only after CPUID reports both. 6 x 16 fp32 / 6 x 8 fp64 tiles: 12 accumulators, 2 B vectors and
// one broadcast A element fill 15 of the 16 ymm registers.
#include "simd/vec_avx2.h"
// (the vector header must come first)
#include "gemm_kernel_impl.h"

namespace fastnn::cpu::detail {

GemmKernelSet<float> avx2_kernels_f32() { return make_kernel_set<simd::F32x8, 6, 2>("avx2+fma", 0.5); }
GemmKernelSet<double> avx2_kernels_f64() { return make_kernel_set<simd::F64x4, 6, 2>("avx2+fma", 0.5); }

}  // namespace fastnn::cpu::detail
