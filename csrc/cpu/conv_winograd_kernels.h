// Internal to conv_winograd.cpp: the per-ISA sets of Winograd F(2x2, 3x3) tile transforms
// (conv_winograd_kernel_impl.h compiled as generic, AVX2 and AVX-512F translation units).
#pragma once

#include <cstdint>

#include "fastnn/conv.h"
#include "fastnn/gemm.h"

namespace fastnn::cpu::detail {

template <typename T>
struct WinogradTransforms {
  const char* name;
  // v[k * plane + (t - t0) * C + c] = (B^T d B)[k] of tile t's 4x4 input patch (zeros outside the image).
  void (*input_tiles)(T* v, int64_t plane, const T* x, const Conv2dShape& s, const Conv2dParams& p, int64_t t0,
                      int64_t t1, const T* zero_row);
  // y's 2x2 outputs of tile t = act(A^T m A + bias) from m[k * plane + (t - t0) * F + f]; bias never null (zeros);
  // scratch holds 4 * F elements.
  void (*output_tiles)(T* y, const T* m, int64_t plane, const T* bias, Activation act, const Conv2dShape& s,
                       int64_t t0, int64_t t1, T* scratch);
  // w[k * plane + (t - t0) * F + f] = (A e A^T)[k] of tile t's 2x2 block e of dy (zeros beyond OH / OW).
  void (*gradient_tiles)(T* w, int64_t plane, const T* dy, const Conv2dShape& s, int64_t t0, int64_t t1,
                         const T* zero_row);
};

WinogradTransforms<float> generic_winograd_f32();
WinogradTransforms<double> generic_winograd_f64();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
WinogradTransforms<float> avx2_winograd_f32();
WinogradTransforms<double> avx2_winograd_f64();
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
WinogradTransforms<float> avx512_winograd_f32();
WinogradTransforms<double> avx512_winograd_f64();
#endif

}  // namespace fastnn::cpu::detail
