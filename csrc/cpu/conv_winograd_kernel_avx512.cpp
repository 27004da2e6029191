// The Winograd tile transforms for the avx512f path (see conv_winograd_kernel_impl.h).
#include "conv_winograd_kernel_impl.h"

namespace fastnn::cpu::detail {

WinogradTransforms<float> avx512_winograd_f32() { return make_winograd_transforms<float>("avx512f"); }
WinogradTransforms<double> avx512_winograd_f64() { return make_winograd_transforms<double>("avx512f"); }

}  // namespace fastnn::cpu::detail
