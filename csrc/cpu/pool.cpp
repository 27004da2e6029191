// 2-D max / average pooling in NHWC (see fastnn/pool.h). The channel axis is contiguous, so every inner loop runs
// over C with unit stride (vectorised by the compiler); windows are clipped to the real input once per output row /
// column, so padding costs nothing. The max forward's inner loops are per ISA (pool_norm_kernel_impl.h).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "fastnn/parallel.h"
#include "fastnn/pool.h"
#include "fastnn/runtime.h"
#include "pool_norm_kernels.h"

namespace fastnn::cpu {
namespace {

constexpr int64_t kGrainElements = 1 << 14;  // elements touched per parallel chunk, about
constexpr int64_t kSplitElements = 1 << 16;  // the least work (elements) for which the max backward splits an image

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

}  // namespace

namespace detail {

template <>
const PoolNormKernelSet<float>& active_pool_norm_kernels<float>() {
  static const PoolNormKernelSet<float> generic = generic_pool_norm_f32();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
  if (active_simd_path() == SimdPath::kAvx2) {  // built only when active: that file's code needs the ISA
    static const PoolNormKernelSet<float> avx2 = avx2_pool_norm_f32();
    return avx2;
  }
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
  if (active_simd_path() == SimdPath::kAvx512) {  // built only when active: that file's code needs the ISA
    static const PoolNormKernelSet<float> avx512 = avx512_pool_norm_f32();
    return avx512;
  }
#endif
  return generic;
}

template <>
const PoolNormKernelSet<double>& active_pool_norm_kernels<double>() {
  static const PoolNormKernelSet<double> generic = generic_pool_norm_f64();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
  if (active_simd_path() == SimdPath::kAvx2) {  // built only when active: that file's code needs the ISA
    static const PoolNormKernelSet<double> avx2 = avx2_pool_norm_f64();
    return avx2;
  }
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
  if (active_simd_path() == SimdPath::kAvx512) {  // built only when active: that file's code needs the ISA
    static const PoolNormKernelSet<double> avx512 = avx512_pool_norm_f64();
    return avx512;
  }
#endif
  return generic;
}

}  // namespace detail

template <typename T>
void max_pool2d_forward(T* y, int64_t* argmax, const T* x, const Pool2dParams& p) {
  DenormalsAreZero ftz;
  // The largest offset (in elements) within a window is below pool_h * W * C; float keeps it in int32 lanes.
  const bool narrow = sizeof(T) == 8 || p.c == 0 || p.w * p.c < (int64_t{1} << 31) / p.pool_h;
  // The inner loops of the active SIMD path (pool_norm_kernel_*.cpp); every path gives the same bits.
  const auto rows = detail::active_pool_norm_kernels<T>().max_pool_rows;
  parallel_for(0, p.n * p.out_h(), grain_rows(p.out_w() * p.pool_h * p.pool_w * p.c), [&](int64_t b, int64_t e) {
    rows(y, argmax, x, p, b, e, narrow);
  });
}

namespace {

// Divisibility by a fixed d > 0 with one multiply instead of a division per test (Granlund and Montgomery; Hacker's
// Delight section 10-17): with d = odd * 2^shift, n is a multiple of d exactly when rotr(n * odd^-1 mod 2^64, shift)
// <= (2^64 - 1) / d. The argmax check runs it once per output, where a 64-bit `%` would dominate the backward.
class Divisibility {
 public:
  explicit Divisibility(uint64_t d) : limit_(~uint64_t{0} / d) {
    while ((d & 1) == 0) d >>= 1, ++shift_;
    inverse_ = d;  // correct to 3 bits (d * d = 1 mod 8 for odd d); each Newton step doubles them: 3 -> 96
    for (int i = 0; i < 5; ++i) inverse_ *= 2 - d * inverse_;
  }
  FASTNN_ALWAYS_INLINE bool divides(uint64_t n) const {
    const uint64_t q = n * inverse_;
    return (shift_ ? (q >> shift_) | (q << (64 - shift_)) : q) <= limit_;
  }

 private:
  uint64_t inverse_ = 1, limit_;
  int shift_ = 0;
};

// One (image, channel block) unit of the max backward: zero dx of image n in channels [c0, c1), then add dy at each
// argmax of those channels in output order. With `check`, each index is first tested to lie in image n and in its
// output's channel (so the unit writes only its own dx elements: units never race); the first one that does not
// stops the unit and is returned (its flat position in argmax), else -1.
template <typename T, bool check>
int64_t max_backward_unit(T* dx, const T* dy, const int64_t* argmax, int64_t n, int64_t image, int64_t outputs,
                          int64_t C, int64_t c0, int64_t c1, const Divisibility& by_c) {
  T* FASTNN_RESTRICT dxn = dx + n * image;
  if (c0 == 0 && c1 == C) std::fill(dxn, dxn + image, T(0));
  else
    for (int64_t pixel = 0; pixel < image; pixel += C) std::fill(dxn + pixel + c0, dxn + pixel + c1, T(0));
  const T* dyn = dy + n * outputs;
  const int64_t* an = argmax + n * outputs;
  const int64_t lo = n * image;
  for (int64_t s = 0; s < outputs; s += C)
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t i = an[s + c];
      if (check) {
        // i - lo in [0, image) and i - lo - c a multiple of C (unsigned: a negative difference wraps past image).
        const uint64_t u = static_cast<uint64_t>(i) - static_cast<uint64_t>(lo);
        if (u >= static_cast<uint64_t>(image) || u < static_cast<uint64_t>(c) || !by_c.divides(u - c))
          return n * outputs + s + c;
      }
      dx[i] += dyn[s + c];
    }
  return -1;
}

// The max backward's driver: units of (image, channel block). Whole images when there are enough of them to keep
// every thread busy; otherwise each image's channels are cut into blocks of whole cache lines (16 floats / doubles
// are one or two 64-byte lines), so a batch of one image still uses every thread. Each dx element belongs to one
// unit and receives its gradients in output order, so the cut never changes a bit.
template <typename T, bool check>
int64_t max_backward(T* dx, const T* dy, const int64_t* argmax, int64_t images, int64_t image, int64_t outputs,
                     int64_t C) {
  if (images == 0 || image == 0) return -1;
  constexpr int64_t kLine = 16;
  const int64_t threads = get_num_threads();
  int64_t blocks = 1;
  // (A small image is not worth a second thread: a fork costs about what 64K elements of this loop do.)
  if (images < 2 * threads && image + outputs >= 2 * kSplitElements)
    blocks = std::min({ceil_div(C, kLine), ceil_div(2 * threads, images), (image + outputs) / kSplitElements});
  const int64_t block_c = round_up(ceil_div(C, blocks), kLine);
  blocks = ceil_div(C, block_c);
  const Divisibility by_c(static_cast<uint64_t>(C));
  std::atomic<int64_t> first_bad{std::numeric_limits<int64_t>::max()};
  const int64_t unit_elements = (image + outputs) / blocks;
  parallel_for(0, images * blocks, grain_rows(unit_elements), [&](int64_t b, int64_t e) {
    for (int64_t unit = b; unit < e; ++unit) {
      const int64_t n = unit / blocks, c0 = (unit % blocks) * block_c, c1 = std::min(C, c0 + block_c);
      const int64_t bad = max_backward_unit<T, check>(dx, dy, argmax, n, image, outputs, C, c0, c1, by_c);
      if (check && bad >= 0) {
        // The smallest bad position over all units: the first in flat order, whatever the split.
        int64_t seen = first_bad.load(std::memory_order_relaxed);
        while (bad < seen && !first_bad.compare_exchange_weak(seen, bad, std::memory_order_relaxed)) {
        }
      }
    }
  });
  const int64_t bad = first_bad.load();
  return bad == std::numeric_limits<int64_t>::max() ? -1 : bad;
}

}  // namespace

template <typename T>
void max_pool2d_backward(T* dx, const T* dy, const int64_t* argmax, int64_t images, int64_t image, int64_t outputs) {
  DenormalsAreZero ftz;
  // Without the channel count the units are whole images (each image's argmax points into that image only).
  max_backward<T, false>(dx, dy, argmax, images, image, outputs, 1);
}

template <typename T>
int64_t max_pool2d_backward_checked(T* dx, const T* dy, const int64_t* argmax, int64_t images, int64_t image,
                                    int64_t outputs, int64_t c) {
  DenormalsAreZero ftz;
  if (c <= 0) return -1;
  return max_backward<T, true>(dx, dy, argmax, images, image, outputs, c);
}

int64_t max_pool2d_check_argmax(const int64_t* argmax, int64_t images, int64_t image, int64_t outputs, int64_t C) {
  const Divisibility by_c(static_cast<uint64_t>(C));
  std::atomic<int64_t> first_bad{std::numeric_limits<int64_t>::max()};
  parallel_for(0, images, grain_rows(outputs), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const int64_t lo = n * image;
      const int64_t* an = argmax + n * outputs;
      for (int64_t s = 0; s < outputs; s += C)
        for (int64_t c = 0; c < C; ++c) {
          const uint64_t u = static_cast<uint64_t>(an[s + c]) - static_cast<uint64_t>(lo);
          if (u >= static_cast<uint64_t>(image) || u < static_cast<uint64_t>(c) || !by_c.divides(u - c)) {
            const int64_t bad = n * outputs + s + c;
            int64_t seen = first_bad.load(std::memory_order_relaxed);
            while (bad < seen && !first_bad.compare_exchange_weak(seen, bad, std::memory_order_relaxed)) {
            }
            return;  // later images of this chunk hold only later positions
          }
        }
    }
  });
  const int64_t bad = first_bad.load();
  return bad == std::numeric_limits<int64_t>::max() ? -1 : bad;
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

// The average backward's gather, per input row (each dx element written by one chunk): the gradient shares of the
// outputs whose windows contain it, in output order, which is the order the reference's scatter adds them in.
// With `shared`, g holds each output's share dy / count already; without, it is computed here, per contribution.
template <typename T, bool shared>
void avg_backward_gather(T* dx, const T* g, const Pool2dParams& p) {
  const int64_t oh_n = p.out_h(), ow_n = p.out_w(), C = p.c, W = p.w, H = p.h;
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
            const T* FASTNN_RESTRICT gp = g + ((n * oh_n + oh) * ow_n + ow) * C;
            if (shared) {
              for (int64_t c = 0; c < C; ++c) dxp[c] += gp[c];
            } else {
              const Span ws = clip_window(ow * p.stride_w - p.pad_left, p.pool_w, W);
              const T count = static_cast<T>((hs.end - hs.begin) * (ws.end - ws.begin));
              for (int64_t c = 0; c < C; ++c) dxp[c] += gp[c] / count;
            }
          }
        }
      }
    }
  });
}

template <typename T>
void avg_pool2d_backward(T* dx, const T* dy, const Pool2dParams& p) {
  DenormalsAreZero ftz;
  const int64_t oh_n = p.out_h(), ow_n = p.out_w(), C = p.c, W = p.w, H = p.h;
  if (p.n * H * W * C == 0) return;
  // Small windows divide per contribution (a 2x2 pool: four divisions per dy element, cheaper than a pass through
  // a buffer). Large ones (3x3 and up, the global pools: H * W divisions per output) first compute each output's
  // share dy / count once, as the reference does, then gather those: the same quotients either way.
  constexpr int64_t kShareFirst = 8;
  if (p.pool_h * p.pool_w < kShareFirst) return avg_backward_gather<T, false>(dx, dy, p);
  std::unique_ptr<T[]> share(new T[static_cast<size_t>(p.n * oh_n * ow_n * C)]);
  T* const g = share.get();
  parallel_for(0, p.n * oh_n, grain_rows(ow_n * C), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const Span hs = clip_window((row % oh_n) * p.stride_h - p.pad_top, p.pool_h, H);
      for (int64_t ow = 0; ow < ow_n; ++ow) {
        const Span ws = clip_window(ow * p.stride_w - p.pad_left, p.pool_w, W);
        const T count = static_cast<T>((hs.end - hs.begin) * (ws.end - ws.begin));
        const T* FASTNN_RESTRICT dyp = dy + (row * ow_n + ow) * C;
        T* FASTNN_RESTRICT gp = g + (row * ow_n + ow) * C;
        for (int64_t c = 0; c < C; ++c) gp[c] = dyp[c] / count;
      }
    }
  });
  avg_backward_gather<T, true>(dx, g, p);
}

#define FASTNN_INSTANTIATE(T)                                                                        \
  template void max_pool2d_forward<T>(T*, int64_t*, const T*, const Pool2dParams&);                 \
  template void max_pool2d_backward<T>(T*, const T*, const int64_t*, int64_t, int64_t, int64_t);      \
  template int64_t max_pool2d_backward_checked<T>(T*, const T*, const int64_t*, int64_t, int64_t, int64_t,  \
                                                  int64_t);                                              \
  template void avg_pool2d_forward<T>(T*, const T*, const Pool2dParams&);                           \
  template void avg_pool2d_backward<T>(T*, const T*, const Pool2dParams&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
