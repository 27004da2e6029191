// The pooling and batch-normalization inner loops of one ISA (see pool_norm_kernels.h), written once and compiled
// per ISA. Define FASTNN_POOL_NORM_VECTOR_BYTES (16, 32 or 64: the native vector width of the translation unit's
// -m flags) before including. Everything here has internal linkage, and nothing here calls an inline function with
// external linkage (no std::min, no Pool2dParams::out_h): the linker could otherwise keep this ISA's copy of it for
// the baseline code too.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "fastnn/common.h"
#include "pool_norm_kernels.h"

#ifndef FASTNN_POOL_NORM_VECTOR_BYTES
#error "define FASTNN_POOL_NORM_VECTOR_BYTES before including pool_norm_kernel_impl.h"
#endif

namespace fastnn::cpu::detail {
namespace {

constexpr int kVectorBytes = FASTNN_POOL_NORM_VECTOR_BYTES;

template <typename T>
struct PosOf {  // the integer lane of T's width: the max pool keeps window offsets in it
  using type = int64_t;
};
template <>
struct PosOf<float> {
  using type = int32_t;
};

FASTNN_ALWAYS_INLINE int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }
FASTNN_ALWAYS_INLINE int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

// v replaces the running maximum m: strictly greater (the first maximum wins ties), or the first NaN.
template <typename T>
FASTNN_ALWAYS_INLINE bool takes_max(T v, T m) {
  return v > m || (v != v && m == m);
}

// ---- max pooling forward ------------------------------------------------------------------------------------------

// The running maximum of G native vectors of channels of one window (GCC / Clang vector extensions, lowered to
// this translation unit's registers), with the winner's offset from the window's first real position
// (((ih - h0) * W + (iw - w0)) * C, in elements of x) in integer lanes of T's width, so one compare mask selects
// both. The select is
// branch-free (a branch per channel mispredicts on about every other window position) and bitwise: GCC lowers a
// vector `?:` without SSE4.1's blend to one branch per lane.
template <typename T, int G>
struct MaxLanes {
  using Pos = typename PosOf<T>::type;
  static constexpr int kLanes = kVectorBytes / static_cast<int>(sizeof(T));
  static constexpr int kWidth = G * kLanes;  // channels per call
  typedef T V __attribute__((vector_size(kVectorBytes)));
  typedef Pos P __attribute__((vector_size(kVectorBytes)));

  // Channels [c, c + kWidth): x0 points at channel c of the window's first real position, rows x cols real
  // positions, W input columns, C channels, first_flat the flat index of x0.
  static FASTNN_ALWAYS_INLINE void window(T* yo, int64_t* ao, const T* x0, int64_t rows, int64_t cols, int64_t W,
                                          int64_t C, int64_t first_flat) {
    V m[G];
    P pos[G];
    for (int g = 0; g < G; ++g) {
      __builtin_memcpy(&m[g], x0 + g * kLanes, sizeof(V));  // unaligned loads and stores (memcpy, not a cast)
      pos[g] = P{};
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t q = 0; q < cols; ++q) {
        const int64_t offset = r * W + q;
        if (offset == 0) continue;
        const P off = P{} + static_cast<Pos>(offset * C);
        for (int g = 0; g < G; ++g) {
          V v;
          __builtin_memcpy(&v, x0 + offset * C + g * kLanes, sizeof(V));
          // takes_max as masks: !(v <= m) (greater, or v NaN) and m not NaN (a NaN maximum stays).
          const P take = ~(v <= m[g]) & (m[g] == m[g]);
          m[g] = reinterpret_cast<V>((reinterpret_cast<P>(v) & take) | (reinterpret_cast<P>(m[g]) & ~take));
          pos[g] = (off & take) | (pos[g] & ~take);
        }
      }
    // pos holds offset * C: the flat index is one widening add per lane (no 64-bit multiply, which AVX-512F and
    // AVX2 lack as a vector instruction).
    Pos scaled[kWidth];
    for (int g = 0; g < G; ++g) {
      __builtin_memcpy(yo + g * kLanes, &m[g], sizeof(V));
      __builtin_memcpy(scaled + g * kLanes, &pos[g], sizeof(P));
    }
    for (int k = 0; k < kWidth; ++k) ao[k] = first_flat + k + static_cast<int64_t>(scaled[k]);
  }
};

// One channel (the tail of C), and every channel of a float window whose offsets pass int32 (W >= 2^31 / pool_h).
template <typename T>
FASTNN_ALWAYS_INLINE void max_window_scalar(T* yo, int64_t* ao, const T* x0, int64_t rows, int64_t cols, int64_t W,
                                            int64_t C, int64_t first_flat) {
  T m = x0[0];
  int64_t pos = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t q = 0; q < cols; ++q) {
      const int64_t offset = r * W + q;
      const T v = x0[offset * C];
      const bool take = takes_max(v, m);
      m = take ? v : m;
      pos = take ? offset : pos;
    }
  *yo = m;
  *ao = first_flat + pos * C;
}

// Large windows (global pooling): every channel of a position at once, the running maxima and offsets in arrays
// (L1) rather than registers, each input position's channels read contiguously; the compiler vectorises the channel
// loop. On the ResNet's global pool (32x32 window, 64 channels) this beats the register blocks, which walk the
// window once per block.
constexpr int64_t kLargeWindow = 64;
constexpr int64_t kMaxAllChannels = 1024;  // the offsets array on the stack (larger C: register blocks)

template <typename T>
FASTNN_ALWAYS_INLINE void max_window_all_channels(T* FASTNN_RESTRICT yo, int64_t* FASTNN_RESTRICT ao, const T* x0,
                                                  int64_t rows, int64_t cols, int64_t W, int64_t C,
                                                  int64_t first_flat) {
  using Pos = typename PosOf<T>::type;
  Pos po[kMaxAllChannels];
  for (int64_t c = 0; c < C; ++c) yo[c] = x0[c], po[c] = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t q = 0; q < cols; ++q) {
      const int64_t offset = r * W + q;
      if (offset == 0) continue;
      const T* FASTNN_RESTRICT xp = x0 + offset * C;
      const Pos off = static_cast<Pos>(offset * C);
      for (int64_t c = 0; c < C; ++c) {
        const T v = xp[c];
        const bool take = takes_max(v, yo[c]);
        yo[c] = take ? v : yo[c];
        po[c] = take ? off : po[c];
      }
    }
  for (int64_t c = 0; c < C; ++c) ao[c] = first_flat + c + static_cast<int64_t>(po[c]);
}

// Output rows [row_begin, row_end) of the max forward. Channels in blocks of four native vectors, then one, then
// one at a time: each channel's maximum is taken in window order whatever block it falls in (the reference's).
template <typename T>
void max_pool_rows(T* y, int64_t* argmax, const T* x, const Pool2dParams& p, int64_t row_begin, int64_t row_end,
                   bool narrow) {
  using Wide = MaxLanes<T, 4>;
  using One = MaxLanes<T, 1>;
  const int64_t oh_n = (p.h + p.pad_top + p.pad_bottom - p.pool_h) / p.stride_h + 1;
  const int64_t ow_n = (p.w + p.pad_left + p.pad_right - p.pool_w) / p.stride_w + 1;
  const int64_t C = p.c, W = p.w, H = p.h;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / oh_n, oh = row % oh_n;
    const int64_t h0 = oh * p.stride_h - p.pad_top;
    const int64_t hb = max_i64(h0, 0), he = min_i64(h0 + p.pool_h, H);
    for (int64_t ow = 0; ow < ow_n; ++ow) {
      const int64_t w0 = ow * p.stride_w - p.pad_left;
      const int64_t wb = max_i64(w0, 0), we = min_i64(w0 + p.pool_w, W);
      T* yo = y + (row * ow_n + ow) * C;
      int64_t* ao = argmax + (row * ow_n + ow) * C;
      const int64_t first = ((n * H + hb) * W + wb) * C;
      const int64_t rows = he - hb, cols = we - wb;
      int64_t c = 0;
      if (narrow) {
        if (rows * cols >= kLargeWindow && C <= kMaxAllChannels) {
          max_window_all_channels(yo, ao, x + first, rows, cols, W, C, first);
          continue;
        }
        for (; c + Wide::kWidth <= C; c += Wide::kWidth)
          Wide::window(yo + c, ao + c, x + first + c, rows, cols, W, C, first + c);
        for (; c + One::kWidth <= C; c += One::kWidth)
          One::window(yo + c, ao + c, x + first + c, rows, cols, W, C, first + c);
      }
      for (; c < C; ++c) max_window_scalar(yo + c, ao + c, x + first + c, rows, cols, W, C, first + c);
    }
  }
}

// ---- batch normalization --------------------------------------------------------------------------------------------

template <typename T>
void bn_block_stats(double* FASTNN_RESTRICT sum, double* FASTNN_RESTRICT m2, double* FASTNN_RESTRICT mean,
                    const T* x, int64_t r0, int64_t r1, int64_t c) {
  for (int64_t j = 0; j < c; ++j) sum[j] = 0.0, m2[j] = 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    const T* FASTNN_RESTRICT xr = x + r * c;
    for (int64_t j = 0; j < c; ++j) sum[j] += static_cast<double>(xr[j]);
  }
  const double rows = static_cast<double>(r1 - r0);
  for (int64_t j = 0; j < c; ++j) mean[j] = sum[j] / rows;
  for (int64_t r = r0; r < r1; ++r) {
    const T* FASTNN_RESTRICT xr = x + r * c;
    for (int64_t j = 0; j < c; ++j) {
      const double d = static_cast<double>(xr[j]) - mean[j];
      m2[j] += d * d;
    }
  }
}

// With relu, y = max(round(v), 0) as the elementwise ReLU computes it on the rounded value (x < 0 ? 0 : x: NaN and
// -0 pass through), so BN then ReLU fused gives the bits of the two kernels in a row, with one pass over y fewer.
template <typename T, bool kRelu>
void bn_normalize_rows(T* y, const T* x, const double* FASTNN_RESTRICT shift, const double* FASTNN_RESTRICT scale,
                       const double* FASTNN_RESTRICT offset, int64_t r0, int64_t r1, int64_t c) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* FASTNN_RESTRICT xr = x + r * c;
    T* FASTNN_RESTRICT yr = y + r * c;
    for (int64_t j = 0; j < c; ++j) {
      const T v = static_cast<T>((static_cast<double>(xr[j]) - shift[j]) * scale[j] + offset[j]);
      if constexpr (kRelu) yr[j] = v < T(0) ? T(0) : v;
      else yr[j] = v;
    }
  }
}

template <typename T>
void bn_normalize(T* y, const T* x, const double* FASTNN_RESTRICT shift, const double* FASTNN_RESTRICT scale,
                  const double* FASTNN_RESTRICT offset, int64_t r0, int64_t r1, int64_t c, bool relu) {
  if (relu) bn_normalize_rows<T, true>(y, x, shift, scale, offset, r0, r1, c);
  else bn_normalize_rows<T, false>(y, x, shift, scale, offset, r0, r1, c);
}

// g where y > 0, else +0 (the ReLU backward's select), as a bit mask: the ternary form compiled to a branch per
// element here (a random mask: 4x slower than the two unfused kernels), the AND of the bits vectorizes.
template <typename T>
inline T relu_pass(T g, T y) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  U bits;
  std::memcpy(&bits, &g, sizeof bits);
  bits &= U(0) - static_cast<U>(y > T(0));
  T out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

// relu_y (the fused forward's output) non-null: dy is first masked as the elementwise ReLU backward does,
// g = relu_y > 0 ? dy : 0 (relu_y > 0 exactly where the pre-activation was > 0), in T, then used as dy.
template <typename T, bool kMask>
void bn_backward_sums_rows(double* FASTNN_RESTRICT acc, const T* dy, const T* x, const T* relu_y,
                           const double* FASTNN_RESTRICT mu, int64_t r0, int64_t r1, int64_t c) {
  double* FASTNN_RESTRICT acc_dy_x = acc + c;
  for (int64_t r = r0; r < r1; ++r) {
    const T* FASTNN_RESTRICT xr = x + r * c;
    const T* FASTNN_RESTRICT gr = dy + r * c;
    const T* FASTNN_RESTRICT yr = kMask ? relu_y + r * c : nullptr;
    for (int64_t j = 0; j < c; ++j) {
      T gt = gr[j];
      if constexpr (kMask) gt = relu_pass(gt, yr[j]);
      const double g = static_cast<double>(gt);
      acc[j] += g;
      acc_dy_x[j] += g * (static_cast<double>(xr[j]) - mu[j]);
    }
  }
}

template <typename T>
void bn_backward_sums(double* acc, const T* dy, const T* x, const T* relu_y, const double* mu, int64_t r0,
                      int64_t r1, int64_t c) {
  if (relu_y != nullptr) bn_backward_sums_rows<T, true>(acc, dy, x, relu_y, mu, r0, r1, c);
  else bn_backward_sums_rows<T, false>(acc, dy, x, relu_y, mu, r0, r1, c);
}

template <typename T, bool kMask>
void bn_backward_dx_rows(T* dx, const T* dy, const T* x, const T* relu_y, const double* FASTNN_RESTRICT mu,
                         const double* FASTNN_RESTRICT a, const double* FASTNN_RESTRICT k1,
                         const double* FASTNN_RESTRICT k2, int64_t r0, int64_t r1, int64_t c) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* FASTNN_RESTRICT xr = x + r * c;
    const T* FASTNN_RESTRICT gr = dy + r * c;
    const T* FASTNN_RESTRICT yr = kMask ? relu_y + r * c : nullptr;
    T* FASTNN_RESTRICT dxr = dx + r * c;
    for (int64_t j = 0; j < c; ++j) {
      T gt = gr[j];
      if constexpr (kMask) gt = relu_pass(gt, yr[j]);
      dxr[j] = static_cast<T>(
          a[j] * (static_cast<double>(gt) - k1[j] - (static_cast<double>(xr[j]) - mu[j]) * k2[j]));
    }
  }
}

template <typename T>
void bn_backward_dx(T* dx, const T* dy, const T* x, const T* relu_y, const double* mu, const double* a,
                    const double* k1, const double* k2, int64_t r0, int64_t r1, int64_t c) {
  if (relu_y != nullptr) bn_backward_dx_rows<T, true>(dx, dy, x, relu_y, mu, a, k1, k2, r0, r1, c);
  else bn_backward_dx_rows<T, false>(dx, dy, x, relu_y, mu, a, k1, k2, r0, r1, c);
}

template <typename T>
PoolNormKernelSet<T> make_pool_norm_kernel_set(const char* name) {
  PoolNormKernelSet<T> s;
  s.name = name;
  s.max_pool_rows = &max_pool_rows<T>;
  s.bn_block_stats = &bn_block_stats<T>;
  s.bn_normalize = &bn_normalize<T>;
  s.bn_backward_sums = &bn_backward_sums<T>;
  s.bn_backward_dx = &bn_backward_dx<T>;
  return s;
}

}  // namespace
}  // namespace fastnn::cpu::detail
