// 2-D convolution in NHWC with Keras's kernel layout, forward and backward side by side.
//
//   x  is (N, H, W, C)               input
//   w  is (KH, KW, C / groups, F)    kernel (Keras Conv2D layout: kernel_size + (in / groups, filters))
//   b  is (F,)                       optional bias
//   y  is (N, OH, OW, F)             output, OH = (H + pad_top + pad_bottom - dilation_h * (KH - 1) - 1) / stride_h + 1
//
// Group g (0 <= g < groups) convolves input channels [g * C/groups, (g+1) * C/groups) with kernel columns
// [g * F/groups, (g+1) * F/groups) into the same output channels. All arrays are dense and row-major (C-contiguous).
//
// conv2d_forward:          y  = act(conv(x, w) + b)                                     (assigns y)
// conv2d_backward_input:   dx = conv^T(dy, w)  (col2im of dy @ w^T)                     (assigns dx)
// conv2d_backward_weight:  dw += conv_w^T(x, dy) (im2col(x)^T @ dy), db += sum of dy    (ACCUMULATES, DESIGN §3)
// The backward kernels take dy of the pre-activation output: the caller applies the activation's derivative.
//
// The fast kernels run im2col + cpu::gemm over tiles of output pixels sized to a quarter of the L2 (and at most
// kConvColumnBudgetBytes), the tiles in parallel with each tile's im2col and GEMM on one thread; the backward-weight
// splits the pixel sum into a fixed number of partitions (from the shapes) whose partial sums are added in order;
// the backward-input of a stride-1 convolution is the forward kernel on dy with the weights flipped (else col2im).
// 1x1 stride-1 unpadded convolutions skip im2col and run the GEMM on x itself viewed as (N*H*W, C). Tile sizes and
// partitions depend only on the shapes and cache sizes, and the GEMM and the col2im gather are
// bit-identical for every thread count, so every result is too. The *_ref twins are direct 7-loop convolutions.

//
// depthwise_conv2d_*: w is (KH, KW, C, M) (Keras DepthwiseConv2D, M = depth_multiplier, passed as Conv2dShape::f),
// y is (N, OH, OW, C*M) with y[..., c*M + m] = sum_{kh,kw} x[..., c] * w[kh, kw, c, m], bias (C*M,); p.groups is
// ignored. Its own direct kernels (a GEMM per channel would be slow): rows of outputs / inputs in parallel, dw per
// block of channels; the reference twins run conv2d_*_ref with groups = C (the same weight memory layout).
#pragma once

#include <cstdint>

#include "fastnn/gemm.h"

namespace fastnn {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t groups = 1;  // conv2d only; depthwise ignores it
};

// The column buffer budget of one im2col tile per thread (bytes); at least one output pixel's row is always taken.
constexpr int64_t kConvColumnBudgetBytes = int64_t{4} << 20;

// Output length along one axis; < 1 means the (dilated) kernel is larger than the padded input.
inline int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad_begin,
                                int64_t pad_end) {
  const int64_t span = in + pad_begin + pad_end - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

// TensorFlow's "same" padding along one axis: out = ceil(in / stride), and the total padding needed for it split
// with the extra element at the end (bottom / right). Returns {pad_begin, pad_end}.
struct ConvPadding {
  int64_t begin = 0, end = 0;
};
inline ConvPadding same_padding(int64_t in, int64_t kernel, int64_t stride, int64_t dilation) {
  const int64_t out = (in + stride - 1) / stride;
  int64_t total = (out - 1) * stride + (kernel - 1) * dilation + 1 - in;
  if (total < 0) total = 0;
  return {total / 2, total - total / 2};
}

// The full geometry of one convolution (what every kernel needs besides the pointers).
struct Conv2dShape {
  int64_t n = 0, h = 0, w = 0, c = 0;  // input
  int64_t kh = 0, kw = 0, f = 0;       // kernel (F = filters; for depthwise, the depth multiplier M)
  int64_t oh = 0, ow = 0;              // output (the caller computes them with conv_output_size)
};

namespace cpu {

template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dShape& s, const Conv2dParams& p,
                    Activation act);
template <typename T>
void conv2d_backward_input(T* dx, const T* dy, const T* w, const Conv2dShape& s, const Conv2dParams& p);
// db may be null (no bias).
template <typename T>
void conv2d_backward_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dShape& s, const Conv2dParams& p);

// Winograd F(2x2, 3x3) (conv_winograd.cpp): conv2d_forward's path for 3x3 stride-1 undilated ungrouped
// convolutions with at least 16 input and output channels, unless disabled (FASTNN_CONV_WINOGRAD=0 at start-up, or
// set_conv2d_winograd(false), which returns the previous setting). Same contract as conv2d_forward.
bool conv2d_winograd_enabled();
bool set_conv2d_winograd(bool enabled);
bool conv2d_winograd_applies(const Conv2dShape& s, const Conv2dParams& p);
template <typename T>
void conv2d_forward_winograd(T* y, const T* x, const T* w, const T* bias, const Conv2dShape& s,
                             const Conv2dParams& p, Activation act);
// db[f] += sum over pixels of dy[q, f] (every backward-weight path's bias gradient; block sums in double, ranges
// fixed by the shape: bit-identical for every thread count).
template <typename T>
void conv_bias_grad_add(T* db, const T* dy, int64_t pixels, int64_t f_count);
// The weight gradient by the same transform (F(3x3, 2x2) read as the forward's adjoint), same contract as
// conv2d_backward_weight (accumulates; db may be null).
template <typename T>
void conv2d_backward_weight_winograd(T* dw, T* db, const T* x, const T* dy, const Conv2dShape& s,
                                     const Conv2dParams& p);

// The reference twins (conv_ref.cpp): direct loops, same contracts.
template <typename T>
void conv2d_forward_ref(T* y, const T* x, const T* w, const T* bias, const Conv2dShape& s, const Conv2dParams& p,
                        Activation act);
template <typename T>
void conv2d_backward_input_ref(T* dx, const T* dy, const T* w, const Conv2dShape& s, const Conv2dParams& p);
template <typename T>
void conv2d_backward_weight_ref(T* dw, T* db, const T* x, const T* dy, const Conv2dShape& s, const Conv2dParams& p);

// Depthwise: s.f is the depth multiplier M. Same assign / accumulate rules as conv2d; db may be null.
template <typename T>
void depthwise_conv2d_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dShape& s,
                              const Conv2dParams& p, Activation act);
template <typename T>
void depthwise_conv2d_backward_input(T* dx, const T* dy, const T* w, const Conv2dShape& s, const Conv2dParams& p);
template <typename T>
void depthwise_conv2d_backward_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dShape& s,
                                      const Conv2dParams& p);
template <typename T>
void depthwise_conv2d_forward_ref(T* y, const T* x, const T* w, const T* bias, const Conv2dShape& s,
                                  const Conv2dParams& p, Activation act);
template <typename T>
void depthwise_conv2d_backward_input_ref(T* dx, const T* dy, const T* w, const Conv2dShape& s,
                                         const Conv2dParams& p);
template <typename T>
void depthwise_conv2d_backward_weight_ref(T* dw, T* db, const T* x, const T* dy, const Conv2dShape& s,
                                          const Conv2dParams& p);

}  // namespace cpu
}  // namespace fastnn
