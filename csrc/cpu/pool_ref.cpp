// The reference twins of the pooling kernels (fastnn/pool.h): one output element at a time, every window position
// tested against the input bounds, the backwards scattering in output order. Single-threaded and obviously right;
// the fast kernels must match them bit for bit.
#include <cstdint>

#include "fastnn/parallel.h"
#include "fastnn/pool.h"

namespace fastnn::cpu {
namespace {

bool inside(int64_t i, int64_t n) { return i >= 0 && i < n; }

}  // namespace

template <typename T>
void max_pool2d_forward_ref(T* y, int64_t* argmax, const T* x, const Pool2dParams& p) {
  DenormalsAreZero ftz;
  const int64_t OH = p.out_h(), OW = p.out_w();
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t c = 0; c < p.c; ++c) {
          bool any = false;
          T best = 0;
          int64_t best_i = -1;
          for (int64_t kh = 0; kh < p.pool_h; ++kh)
            for (int64_t kw = 0; kw < p.pool_w; ++kw) {
              const int64_t ih = oh * p.stride_h - p.pad_top + kh, iw = ow * p.stride_w - p.pad_left + kw;
              if (!inside(ih, p.h) || !inside(iw, p.w)) continue;  // padding is -inf: it never wins
              const int64_t i = ((n * p.h + ih) * p.w + iw) * p.c + c;
              const T v = x[i];
              // the first maximum wins ties; the first NaN wins and stays
              if (!any || v > best || (v != v && best == best)) {
                best = v;
                best_i = i;
              }
              any = true;
            }
          const int64_t o = ((n * OH + oh) * OW + ow) * p.c + c;
          y[o] = best;
          argmax[o] = best_i;
        }
}

template <typename T>
void max_pool2d_backward_ref(T* dx, const T* dy, const int64_t* argmax, int64_t n, int64_t image, int64_t outputs) {
  DenormalsAreZero ftz;
  for (int64_t i = 0; i < n * image; ++i) dx[i] = T(0);
  for (int64_t o = 0; o < n * outputs; ++o) dx[argmax[o]] += dy[o];
}

template <typename T>
void avg_pool2d_forward_ref(T* y, const T* x, const Pool2dParams& p) {
  DenormalsAreZero ftz;
  const int64_t OH = p.out_h(), OW = p.out_w();
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t c = 0; c < p.c; ++c) {
          T sum = 0;
          int64_t count = 0;
          for (int64_t kh = 0; kh < p.pool_h; ++kh)
            for (int64_t kw = 0; kw < p.pool_w; ++kw) {
              const int64_t ih = oh * p.stride_h - p.pad_top + kh, iw = ow * p.stride_w - p.pad_left + kw;
              if (!inside(ih, p.h) || !inside(iw, p.w)) continue;  // padding is not counted
              sum += x[((n * p.h + ih) * p.w + iw) * p.c + c];
              ++count;
            }
          y[((n * OH + oh) * OW + ow) * p.c + c] = sum / static_cast<T>(count);
        }
}

template <typename T>
void avg_pool2d_backward_ref(T* dx, const T* dy, const Pool2dParams& p) {
  DenormalsAreZero ftz;
  const int64_t OH = p.out_h(), OW = p.out_w();
  for (int64_t i = 0; i < p.n * p.h * p.w * p.c; ++i) dx[i] = T(0);
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t c = 0; c < p.c; ++c) {
          int64_t count = 0;
          for (int64_t kh = 0; kh < p.pool_h; ++kh)
            for (int64_t kw = 0; kw < p.pool_w; ++kw) {
              const int64_t ih = oh * p.stride_h - p.pad_top + kh, iw = ow * p.stride_w - p.pad_left + kw;
              count += inside(ih, p.h) && inside(iw, p.w);
            }
          const T g = dy[((n * OH + oh) * OW + ow) * p.c + c] / static_cast<T>(count);
          for (int64_t kh = 0; kh < p.pool_h; ++kh)
            for (int64_t kw = 0; kw < p.pool_w; ++kw) {
              const int64_t ih = oh * p.stride_h - p.pad_top + kh, iw = ow * p.stride_w - p.pad_left + kw;
              if (inside(ih, p.h) && inside(iw, p.w)) dx[((n * p.h + ih) * p.w + iw) * p.c + c] += g;
            }
        }
}

#define FASTNN_INSTANTIATE(T)                                                                        \
  template void max_pool2d_forward_ref<T>(T*, int64_t*, const T*, const Pool2dParams&);             \
  template void max_pool2d_backward_ref<T>(T*, const T*, const int64_t*, int64_t, int64_t, int64_t);  \
  template void avg_pool2d_forward_ref<T>(T*, const T*, const Pool2dParams&);                       \
  template void avg_pool2d_backward_ref<T>(T*, const T*, const Pool2dParams&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
