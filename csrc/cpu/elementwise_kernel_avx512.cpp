// Elementwise and optimizer kernels for AVX-512F: 512-bit vectors (16 float / 8 double lanes). This translation
// unit alone is compiled with -mavx512f -ffp-contract=off; elementwise.cpp dispatches here only after CPUID
// reports AVX-512F (and OS support for the zmm state), the GEMM's test.
#include "elementwise_kernel_impl.h"

namespace fastnn::cpu::detail {

ElementwiseKernelSet<float> avx512_elementwise_f32() { return make_elementwise_kernel_set<float, 16>("avx512"); }
ElementwiseKernelSet<double> avx512_elementwise_f64() { return make_elementwise_kernel_set<double, 8>("avx512"); }
OptimizerKernelSet<float> avx512_optimizer_f32() { return make_optimizer_kernel_set<float, 16>("avx512"); }
OptimizerKernelSet<double> avx512_optimizer_f64() { return make_optimizer_kernel_set<double, 8>("avx512"); }

}  // namespace fastnn::cpu::detail
