// Elementwise and optimizer kernels for the baseline ISA: 128-bit SSE2 vectors on x86-64 (4 float / 2 double
// lanes, no FMA), split into scalars by the compiler elsewhere. Built with -ffp-contract=off like its twins.
#include "elementwise_kernel_impl.h"

namespace fastnn::cpu::detail {

ElementwiseKernelSet<float> generic_elementwise_f32() { return make_elementwise_kernel_set<float, 4>("generic"); }
ElementwiseKernelSet<double> generic_elementwise_f64() { return make_elementwise_kernel_set<double, 2>("generic"); }
OptimizerKernelSet<float> generic_optimizer_f32() { return make_optimizer_kernel_set<float, 4>("generic"); }
OptimizerKernelSet<double> generic_optimizer_f64() { return make_optimizer_kernel_set<double, 2>("generic"); }

}  // namespace fastnn::cpu::detail
