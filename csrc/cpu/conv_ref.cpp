// Reference convolutions: the direct loops over every output, kernel tap and channel, kept beside the fast kernels
// (conv.cpp) so tests can check one against the other. Same contracts as conv.h: forward and backward input assign,
// backward weight accumulates. No tiling, no GEMM, no threads.
#include <algorithm>

#include "fastnn/conv.h"
#include "fastnn/parallel.h"

namespace fastnn::cpu {
namespace {

// Input coordinate read by output coordinate `o` through kernel tap `k` (may be outside [0, in): padding).
inline int64_t input_coord(int64_t o, int64_t k, int64_t stride, int64_t dilation, int64_t pad_begin) {
  return o * stride - pad_begin + k * dilation;
}

}  // namespace

template <typename T>
void conv2d_forward_ref(T* y, const T* x, const T* w, const T* bias, const Conv2dShape& s, const Conv2dParams& p,
                        Activation act) {
  DenormalsAreZero ftz;
  const int64_t cg = s.c / p.groups, fg = s.f / p.groups;
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t oh = 0; oh < s.oh; ++oh)
      for (int64_t ow = 0; ow < s.ow; ++ow)
        for (int64_t f = 0; f < s.f; ++f) {
          const int64_t g = f / fg;
          T sum = 0;
          for (int64_t kh = 0; kh < s.kh; ++kh) {
            const int64_t ih = input_coord(oh, kh, p.stride_h, p.dilation_h, p.pad_top);
            for (int64_t kw = 0; kw < s.kw; ++kw) {
              const int64_t iw = input_coord(ow, kw, p.stride_w, p.dilation_w, p.pad_left);
              const bool inside = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
              const T* xp = inside ? x + ((n * s.h + ih) * s.w + iw) * s.c + g * cg : nullptr;
              const T* wp = w + (kh * s.kw + kw) * cg * s.f + f;
              // A padded position is a zero that multiplies the weight (0 * inf = NaN, as with an explicitly
              // zero-padded input and the fast kernel's im2col).
              for (int64_t c = 0; c < cg; ++c) sum += (inside ? xp[c] : T(0)) * wp[c * s.f];
            }
          }
          if (bias != nullptr) sum += bias[f];
          if (act == Activation::kRelu && sum < T(0)) sum = T(0);  // NaN stays NaN
          y[((n * s.oh + oh) * s.ow + ow) * s.f + f] = sum;
        }
}

template <typename T>
void conv2d_backward_input_ref(T* dx, const T* dy, const T* w, const Conv2dShape& s, const Conv2dParams& p) {
  DenormalsAreZero ftz;
  const int64_t cg = s.c / p.groups, fg = s.f / p.groups;
  std::fill(dx, dx + s.n * s.h * s.w * s.c, T(0));
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t oh = 0; oh < s.oh; ++oh)
      for (int64_t ow = 0; ow < s.ow; ++ow)
        for (int64_t f = 0; f < s.f; ++f) {
          const int64_t g = f / fg;
          const T d = dy[((n * s.oh + oh) * s.ow + ow) * s.f + f];
          for (int64_t kh = 0; kh < s.kh; ++kh) {
            const int64_t ih = input_coord(oh, kh, p.stride_h, p.dilation_h, p.pad_top);
            if (ih < 0 || ih >= s.h) continue;
            for (int64_t kw = 0; kw < s.kw; ++kw) {
              const int64_t iw = input_coord(ow, kw, p.stride_w, p.dilation_w, p.pad_left);
              if (iw < 0 || iw >= s.w) continue;
              T* xp = dx + ((n * s.h + ih) * s.w + iw) * s.c + g * cg;
              const T* wp = w + (kh * s.kw + kw) * cg * s.f + f;
              for (int64_t c = 0; c < cg; ++c) xp[c] += d * wp[c * s.f];
            }
          }
        }
}

template <typename T>
void conv2d_backward_weight_ref(T* dw, T* db, const T* x, const T* dy, const Conv2dShape& s, const Conv2dParams& p) {
  DenormalsAreZero ftz;
  const int64_t cg = s.c / p.groups, fg = s.f / p.groups;
  for (int64_t kh = 0; kh < s.kh; ++kh)
    for (int64_t kw = 0; kw < s.kw; ++kw)
      for (int64_t c = 0; c < cg; ++c)
        for (int64_t f = 0; f < s.f; ++f) {
          const int64_t g = f / fg;
          T sum = 0;
          for (int64_t n = 0; n < s.n; ++n)
            for (int64_t oh = 0; oh < s.oh; ++oh) {
              const int64_t ih = input_coord(oh, kh, p.stride_h, p.dilation_h, p.pad_top);
              for (int64_t ow = 0; ow < s.ow; ++ow) {
                const int64_t iw = input_coord(ow, kw, p.stride_w, p.dilation_w, p.pad_left);
                const bool inside = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
                const T xv = inside ? x[((n * s.h + ih) * s.w + iw) * s.c + g * cg + c] : T(0);  // padding: a zero
                sum += xv * dy[((n * s.oh + oh) * s.ow + ow) * s.f + f];
              }
            }
          dw[((kh * s.kw + kw) * cg + c) * s.f + f] += sum;
        }
  if (db != nullptr)
    for (int64_t f = 0; f < s.f; ++f) {
      T sum = 0;
      for (int64_t q = 0; q < s.n * s.oh * s.ow; ++q) sum += dy[q * s.f + f];
      db[f] += sum;
    }
}

// Depthwise = grouped convolution with one input channel per group: groups = C, F = C * M, and the (KH, KW, C, M)
// kernel is already the (KH, KW, 1, C * M) grouped kernel in memory.
namespace {
bool as_grouped(const Conv2dShape& s, const Conv2dParams& p, Conv2dShape& gs, Conv2dParams& gp) {
  if (s.c == 0) return false;  // no channels: no groups (the outputs are empty)
  gs = s;
  gs.f = s.c * s.f;
  gp = p;
  gp.groups = s.c;
  return true;
}
}  // namespace

template <typename T>
void depthwise_conv2d_forward_ref(T* y, const T* x, const T* w, const T* bias, const Conv2dShape& s,
                                  const Conv2dParams& p, Activation act) {
  Conv2dShape gs;
  Conv2dParams gp;
  if (as_grouped(s, p, gs, gp)) conv2d_forward_ref(y, x, w, bias, gs, gp, act);
}

template <typename T>
void depthwise_conv2d_backward_input_ref(T* dx, const T* dy, const T* w, const Conv2dShape& s,
                                         const Conv2dParams& p) {
  Conv2dShape gs;
  Conv2dParams gp;
  if (as_grouped(s, p, gs, gp)) conv2d_backward_input_ref(dx, dy, w, gs, gp);
}

template <typename T>
void depthwise_conv2d_backward_weight_ref(T* dw, T* db, const T* x, const T* dy, const Conv2dShape& s,
                                          const Conv2dParams& p) {
  Conv2dShape gs;
  Conv2dParams gp;
  if (as_grouped(s, p, gs, gp)) conv2d_backward_weight_ref(dw, db, x, dy, gs, gp);
}

#define FASTNN_INSTANTIATE_CONV_REF(T)                                                                              \
  template void conv2d_forward_ref<T>(T*, const T*, const T*, const T*, const Conv2dShape&, const Conv2dParams&, \
                                      Activation);                                                              \
  template void conv2d_backward_input_ref<T>(T*, const T*, const T*, const Conv2dShape&, const Conv2dParams&);     \
  template void conv2d_backward_weight_ref<T>(T*, T*, const T*, const T*, const Conv2dShape&, const Conv2dParams&); \
  template void depthwise_conv2d_forward_ref<T>(T*, const T*, const T*, const T*, const Conv2dShape&,             \
                                                const Conv2dParams&, Activation);                                 \
  template void depthwise_conv2d_backward_input_ref<T>(T*, const T*, const T*, const Conv2dShape&,                \
                                                       const Conv2dParams&);                                      \
  template void depthwise_conv2d_backward_weight_ref<T>(T*, T*, const T*, const T*, const Conv2dShape&,           \
                                                        const Conv2dParams&);
FASTNN_INSTANTIATE_CONV_REF(float)
FASTNN_INSTANTIATE_CONV_REF(double)
#undef FASTNN_INSTANTIATE_CONV_REF

}  // namespace fastnn::cpu
