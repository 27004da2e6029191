// 2-D max / average pooling in NHWC (see fastnn/pool.h). The channel axis is contiguous, so every inner loop runs
// over C with unit stride (vectorised by the compiler); windows are clipped to the real input once per output row /
// column, so padding costs nothing.
#include <algorithm>
#include <cstring>
#include <vector>

#include "fastnn/parallel.h"
#include "fastnn/pool.h"

namespace fastnn::cpu {
namespace {

constexpr int64_t kGrainElements = 1 << 14;  // elements touched per parallel chunk, about

// The real part [begin, end) of the window starting at `start` of length k along an axis of length n.
struct Span {
  int64_t begin, end;
};
FASTNN_ALWAYS_INLINE Span clip_window(int64_t start, int64_t k, int64_t n) {
  return {std::max<int64_t>(start, 0), std::min<int64_t>(start + k, n)};
}

// Floor division for a possibly negative numerator (b > 0).
FASTNN_ALWAYS_INLINE int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Outputs of one axis whose windows contain input position i: [lo, hi].
FASTNN_ALWAYS_INLINE Span windows_containing(int64_t i, int64_t pad, int64_t k, int64_t stride, int64_t out) {
  const int64_t lo = std::max<int64_t>(floor_div(i + pad - k, stride) + 1, 0);
  const int64_t hi = std::min<int64_t>(floor_div(i + pad, stride), out - 1);
  return {lo, hi + 1};
}

// Rows of a parallel split touching about kGrainElements elements each.
int64_t grain_rows(int64_t elements_per_row) {
  return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(elements_per_row, 1));
}

// v replaces the running maximum m: strictly greater (the first maximum wins ties), or the first NaN.
template <typename T>
FASTNN_ALWAYS_INLINE bool takes_max(T v, T m) {
  return v > m || (v != v && m == m);
}

}  // namespace

// One chunk of output rows of the max forward. The running argmax is kept per channel as the winner's spatial offset
// from the window's first real position ((ih - h0) * W + (iw - w0)), in `Pos`: int32 for float, so that the
// compare-and-select over the channels runs in lanes of one width and vectorises; the flat index is formed once per
// output.
template <typename T, typename Pos>
void max_pool_rows(T* y, int64_t* argmax, const T* x, const Pool2dParams& p, int64_t row_begin, int64_t row_end) {
  const int64_t oh_n = p.out_h(), ow_n = p.out_w(), C = p.c, W = p.w, H = p.h;
  std::vector<Pos> pos(static_cast<size_t>(C));
  Pos* FASTNN_RESTRICT po = pos.data();
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / oh_n, oh = row % oh_n;
    const Span hs = clip_window(oh * p.stride_h - p.pad_top, p.pool_h, H);
    for (int64_t ow = 0; ow < ow_n; ++ow) {
      const Span ws = clip_window(ow * p.stride_w - p.pad_left, p.pool_w, W);
      T* FASTNN_RESTRICT yo = y + (row * ow_n + ow) * C;
      int64_t* FASTNN_RESTRICT ao = argmax + (row * ow_n + ow) * C;
      const int64_t first = ((n * H + hs.begin) * W + ws.begin) * C;
      for (int64_t c = 0; c < C; ++c) {
        yo[c] = x[first + c];
        po[c] = 0;
      }
      for (int64_t ih = hs.begin; ih < hs.end; ++ih)
        for (int64_t iw = ws.begin; iw < ws.end; ++iw) {
          const Pos offset = static_cast<Pos>((ih - hs.begin) * W + (iw - ws.begin));
          if (offset == 0) continue;
          const T* FASTNN_RESTRICT xp = x + first + static_cast<int64_t>(offset) * C;
          for (int64_t c = 0; c < C; ++c) {
            const T v = xp[c];
            const bool take = takes_max(v, yo[c]);
            yo[c] = take ? v : yo[c];
            po[c] = take ? offset : po[c];
          }
        }
      for (int64_t c = 0; c < C; ++c) ao[c] = first + static_cast<int64_t>(po[c]) * C + c;
    }
  }
}

template <typename T>
void max_pool2d_forward(T* y, int64_t* argmax, const T* x, const Pool2dParams& p) {
  DenormalsAreZero ftz;
  // The largest spatial offset within a window is below pool_h * W.
  const bool narrow = sizeof(T) == 4 && p.w < (int64_t{1} << 31) / p.pool_h;
  parallel_for(0, p.n * p.out_h(), grain_rows(p.out_w() * p.pool_h * p.pool_w * p.c), [&](int64_t b, int64_t e) {
    if (narrow) max_pool_rows<T, int32_t>(y, argmax, x, p, b, e);
    else max_pool_rows<T, int64_t>(y, argmax, x, p, b, e);
  });
}

template <typename T>
void max_pool2d_backward(T* dx, const T* dy, const int64_t* argmax, int64_t images, int64_t image, int64_t outputs) {
  DenormalsAreZero ftz;
  // One image per task: each image's argmax points into that image only, so images never race, and within one
  // image the gradients of overlapping windows add up in output order whatever the thread count.
  parallel_for(0, images, grain_rows(image + outputs), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      std::fill(dx + n * image, dx + (n + 1) * image, T(0));
      const T* dyn = dy + n * outputs;
      const int64_t* an = argmax + n * outputs;
      for (int64_t o = 0; o < outputs; ++o) dx[an[o]] += dyn[o];
    }
  });
}

int64_t max_pool2d_check_argmax(const int64_t* argmax, int64_t images, int64_t image, int64_t outputs, int64_t C) {
  int64_t first_bad = -1;
  for (int64_t n = 0; n < images && first_bad < 0; ++n) {
    const int64_t lo = n * image, hi = lo + image;
    const int64_t* an = argmax + n * outputs;
    for (int64_t o = 0; o < outputs; ++o) {
      const int64_t i = an[o];
      if (i < lo || i >= hi || i % C != o % C) {
        first_bad = n * outputs + o;
        break;
      }
    }
  }
  return first_bad;
}

template <typename T>
void avg_pool2d_forward(T* y, const T* x, const Pool2dParams& p) {
  DenormalsAreZero ftz;
  const int64_t oh_n = p.out_h(), ow_n = p.out_w(), C = p.c, W = p.w, H = p.h;
  parallel_for(0, p.n * oh_n, grain_rows(ow_n * p.pool_h * p.pool_w * C), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const int64_t n = row / oh_n, oh = row % oh_n;
      const Span hs = clip_window(oh * p.stride_h - p.pad_top, p.pool_h, H);
      for (int64_t ow = 0; ow < ow_n; ++ow) {
        const Span ws = clip_window(ow * p.stride_w - p.pad_left, p.pool_w, W);
        T* FASTNN_RESTRICT yo = y + (row * ow_n + ow) * C;
        for (int64_t c = 0; c < C; ++c) yo[c] = T(0);
        for (int64_t ih = hs.begin; ih < hs.end; ++ih)
          for (int64_t iw = ws.begin; iw < ws.end; ++iw) {
            const T* FASTNN_RESTRICT xp = x + ((n * H + ih) * W + iw) * C;
            for (int64_t c = 0; c < C; ++c) yo[c] += xp[c];
          }
        const T count = static_cast<T>((hs.end - hs.begin) * (ws.end - ws.begin));
        for (int64_t c = 0; c < C; ++c) yo[c] /= count;
      }
    }
  });
}

template <typename T>
void avg_pool2d_backward(T* dx, const T* dy, const Pool2dParams& p) {
  DenormalsAreZero ftz;
  const int64_t oh_n = p.out_h(), ow_n = p.out_w(), C = p.c, W = p.w, H = p.h;
  // Gathered per input row (each dx element written by one chunk): the outputs whose windows contain it, in
  // output order, which is the order the reference's scatter adds them in.
  const int64_t windows_per_row = (p.pool_h / p.stride_h + 1) * (p.pool_w / p.stride_w + 1);
  parallel_for(0, p.n * H, grain_rows(W * C * windows_per_row), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const int64_t n = row / H, ih = row % H;
      const Span ohs = windows_containing(ih, p.pad_top, p.pool_h, p.stride_h, oh_n);
      for (int64_t iw = 0; iw < W; ++iw) {
        const Span ows = windows_containing(iw, p.pad_left, p.pool_w, p.stride_w, ow_n);
        T* FASTNN_RESTRICT dxp = dx + (row * W + iw) * C;
        for (int64_t c = 0; c < C; ++c) dxp[c] = T(0);
        for (int64_t oh = ohs.begin; oh < ohs.end; ++oh) {
          const Span hs = clip_window(oh * p.stride_h - p.pad_top, p.pool_h, H);
          for (int64_t ow = ows.begin; ow < ows.end; ++ow) {
            const Span ws = clip_window(ow * p.stride_w - p.pad_left, p.pool_w, W);
            const T count = static_cast<T>((hs.end - hs.begin) * (ws.end - ws.begin));
            const T* FASTNN_RESTRICT dyp = dy + ((n * oh_n + oh) * ow_n + ow) * C;
            for (int64_t c = 0; c < C; ++c) dxp[c] += dyp[c] / count;
          }
        }
      }
    }
  });
}

#define FASTNN_INSTANTIATE(T)                                                                        \
  template void max_pool2d_forward<T>(T*, int64_t*, const T*, const Pool2dParams&);                 \
  template void max_pool2d_backward<T>(T*, const T*, const int64_t*, int64_t, int64_t, int64_t);      \
  template void avg_pool2d_forward<T>(T*, const T*, const Pool2dParams&);                           \
  template void avg_pool2d_backward<T>(T*, const T*, const Pool2dParams&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
