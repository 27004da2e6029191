// The Winograd tile transforms for the avx2+fma path (see conv_winograd_kernel_impl.h).
#include "conv_winograd_kernel_impl.h"

namespace fastnn::cpu::detail {

WinogradTransforms<float> avx2_winograd_f32() { return make_winograd_transforms<float>("avx2+fma"); }
WinogradTransforms<double> avx2_winograd_f64() { return make_winograd_transforms<double>("avx2+fma"); }

}  // namespace fastnn::cpu::detail
