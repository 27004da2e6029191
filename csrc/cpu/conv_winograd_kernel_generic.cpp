// The Winograd tile transforms for the generic path (see conv_winograd_kernel_impl.h).
#include "conv_winograd_kernel_impl.h"

namespace fastnn::cpu::detail {

WinogradTransforms<float> generic_winograd_f32() { return make_winograd_transforms<float>("generic"); }
WinogradTransforms<double> generic_winograd_f64() { return make_winograd_transforms<double>("generic"); }

}  // namespace fastnn::cpu::detail
