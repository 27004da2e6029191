// 2-D pooling in NHWC: x is (N, H, W, C), y / dy / argmax are (N, OH, OW, C). Tier 1: pure C++, outputs first,
// int64_t sizes and index math throughout, templates instantiated for float and double.
//
// Window (oh, ow) covers input rows [oh * stride_h - pad_top, + pool_h) and columns [ow * stride_w - pad_left,
// + pool_w); positions outside the input are padding, and padding never takes part:
//   - max pooling pads with -inf (TensorFlow): the maximum and its argmax come from real positions only. The first
//     maximum in row-major window order wins ties; a NaN propagates (the first NaN of the window wins and stays).
//     argmax is the flat index into x (n * H * W * C + h * W * C + w * C + c) of the element that won.
//   - average pooling divides by the number of real positions in the window (TensorFlow's "same" semantics),
//     summing them in row-major window order in T.
// The 1-D forms are the caller's job: a (N, L, C) input is the (N, 1, L, C) case with pool_h = stride_h = 1 and
// no vertical padding. Global pooling is the window covering the whole input (global_pool2d_params).
//
// Preconditions (the bindings check them): every size and stride positive, H and W positive, each pad smaller
// than the window along its axis (pad_top, pad_bottom < pool_h; pad_left, pad_right < pool_w) and the window no
// larger than the padded input. Then every window holds at least one real position.
//
// Threads: the forwards and the average backward split output / input rows (N * OH or N * H), each element written
// by one chunk; the max backward splits images, and the channels of each image into blocks when there are fewer
// images than twice the threads (every argmax of image n points into image n, channel c into channel c), adding
// the gradients of overlapping windows in output order. Results are bit-identical for every
// thread count, and the fast kernels are bit-identical to their _ref twins.
#pragma once

#include <algorithm>
#include <cstdint>

namespace fastnn {

struct Pool2dParams {
  int64_t n = 0, h = 0, w = 0, c = 0;  // input (N, H, W, C)
  int64_t pool_h = 1, pool_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;

  int64_t out_h() const { return (h + pad_top + pad_bottom - pool_h) / stride_h + 1; }
  int64_t out_w() const { return (w + pad_left + pad_right - pool_w) / stride_w + 1; }
};

// TensorFlow's "same" padding along one axis: out = ceil(in / stride), total = max((out - 1) * stride + k - in, 0),
// the smaller half before (top / left) and the extra one after (bottom / right).
struct AxisPadding {
  int64_t before = 0, after = 0;
};
inline AxisPadding same_padding(int64_t in, int64_t k, int64_t stride) {
  const int64_t out = (in + stride - 1) / stride;
  const int64_t total = std::max<int64_t>((out - 1) * stride + k - in, 0);
  return {total / 2, total - total / 2};
}

// The window covering the whole (H, W) input: global average / max pooling, y of shape (N, 1, 1, C).
inline Pool2dParams global_pool2d_params(int64_t n, int64_t h, int64_t w, int64_t c) {
  Pool2dParams p;
  p.n = n, p.h = h, p.w = w, p.c = c;
  p.pool_h = p.stride_h = h;
  p.pool_w = p.stride_w = w;
  return p;
}

namespace cpu {

// y = max over each window, argmax = where it came from.
template <typename T>
void max_pool2d_forward(T* y, int64_t* argmax, const T* x, const Pool2dParams& p);
template <typename T>
void max_pool2d_forward_ref(T* y, int64_t* argmax, const T* x, const Pool2dParams& p);

// The max backward needs only the argmax: dx is `n` images of `image` elements each (H * W * C), dy and argmax `n`
// images of `outputs` elements each (OH * OW * C, any window shape: global pooling too). dx is assigned: zero, plus
// dy added at each argmax. argmax must come from max_pool2d_forward of this shape (max_pool2d_check_argmax tells).
template <typename T>
void max_pool2d_backward(T* dx, const T* dy, const int64_t* argmax, int64_t n, int64_t image, int64_t outputs);
template <typename T>
void max_pool2d_backward_ref(T* dx, const T* dy, const int64_t* argmax, int64_t n, int64_t image, int64_t outputs);
// The backward with max_pool2d_check_argmax's test fused in (one pass over argmax; c is the channel count, > 0):
// returns -1 with dx assigned as max_pool2d_backward does, or the first bad position max_pool2d_check_argmax would
// return (dx then holds no meaning). Safe whatever argmax holds; N = 1 is split over channel blocks.
template <typename T>
int64_t max_pool2d_backward_checked(T* dx, const T* dy, const int64_t* argmax, int64_t n, int64_t image,
                                    int64_t outputs, int64_t c);

// The first position (flat index into argmax) whose index does not lie in its own image and channel of x
// (0 <= index < n * image, index / image == its image, index % c == its channel), or -1 when every one does: what
// makes the backward safe (in bounds, and race-free across images) whatever argmax holds. image and outputs are
// multiples of c (c > 0).
int64_t max_pool2d_check_argmax(const int64_t* argmax, int64_t n, int64_t image, int64_t outputs, int64_t c);

// y = the mean of the real positions of each window.
template <typename T>
void avg_pool2d_forward(T* y, const T* x, const Pool2dParams& p);
template <typename T>
void avg_pool2d_forward_ref(T* y, const T* x, const Pool2dParams& p);

// dx (assigned) = sum over the windows containing each position of dy / (the window's real-position count), added
// in output order.
template <typename T>
void avg_pool2d_backward(T* dx, const T* dy, const Pool2dParams& p);
template <typename T>
void avg_pool2d_backward_ref(T* dx, const T* dy, const Pool2dParams& p);

}  // namespace cpu
}  // namespace fastnn
