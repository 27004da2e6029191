// Elementwise and optimizer kernels for AVX2 + FMA: 256-bit vectors (8 float / 4 double lanes). This translation
// unit alone is compiled with -mavx2 -mfma -ffp-contract=off; elementwise.cpp dispatches here only after CPUID
// reports both (the same test as the GEMM's).
#include "elementwise_kernel_impl.h"

namespace fastnn::cpu::detail {

ElementwiseKernelSet<float> avx2_elementwise_f32() { return make_elementwise_kernel_set<float, 8>("avx2+fma"); }
ElementwiseKernelSet<double> avx2_elementwise_f64() { return make_elementwise_kernel_set<double, 4>("avx2+fma"); }
OptimizerKernelSet<float> avx2_optimizer_f32() { return make_optimizer_kernel_set<float, 8>("avx2+fma"); }
OptimizerKernelSet<double> avx2_optimizer_f64() { return make_optimizer_kernel_set<double, 4>("avx2+fma"); }

}  // namespace fastnn::cpu::detail
