// The fast convolutions (conv.h): im2col / col2im over bounded tiles of output pixels + cpu::gemm, and the direct
// depthwise kernels (at the end of the file).
//
// Output pixels are numbered p = (n * OH + oh) * OW + ow, so y viewed as (N*OH*OW, F) has one row per pixel and a
// tile of consecutive pixels [p0, p1) is a block of consecutive rows (it may span images). The column matrix of a
// tile has one row per pixel and KH*KW*C columns laid out (group, kh, kw, c_in_group): group g's columns are the
// contiguous block [g * KH*KW*Cg, (g+1) * KH*KW*Cg), so each group is one GEMM on a slice with leading dimension
// KH*KW*C, against w viewed as (KH*KW*Cg, F) restricted to the group's F/groups columns.
//
//   forward:          y[tile]  = act(col(tile) @ w + b)               (GEMM epilogue; tiles in parallel, each on one
//                                                                       thread so its column block stays in the L2)
//   backward input:   stride 1: the forward kernel on dy with w flipped in space and (Cg, Fg) transposed;
//                     else dcol = dy[tile] @ w^T, dx += col2im(dcol)   (dx zeroed first; a gather, so each dx element
//                                                                       is written by one thread in a fixed order)
//   backward weight:  dw      += sum over partitions of (col(tile)^T @ dy[tile] over the partition's tiles)
//                                                                      (partials added in partition order, in double)
//
// Tile sizes and partition counts depend only on the shapes and the cache sizes; the GEMM is bit-identical for every
// thread count; im2col is a copy and the col2im gather sums each dx element over the taps in a fixed (kh, kw) order,
// so every result is bit-identical for every thread count.

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "fastnn/common.h"
#include "fastnn/conv.h"
#include "fastnn/gemm.h"
#include "fastnn/parallel.h"
#include "fastnn/runtime.h"
#include "elementwise_kernels.h"
#include "gemm_kernels.h"

namespace fastnn::cpu {
namespace {

struct Geometry {
  Conv2dShape s;
  Conv2dParams p;
  int64_t cg = 0, fg = 0;  // channels and filters per group
  int64_t kkcg = 0;        // KH*KW*Cg: one group's column width (and the rows of its weight matrix)
  int64_t kkc = 0;         // KH*KW*C: a column row
  int64_t pixels = 0;      // N*OH*OW: rows of y
  bool pointwise = false;  // 1x1, stride 1, no padding: y = x @ w with no im2col

  Geometry(const Conv2dShape& shape, const Conv2dParams& params) : s(shape), p(params) {
    cg = s.c / p.groups;
    fg = s.f / p.groups;
    kkcg = s.kh * s.kw * cg;
    kkc = kkcg * p.groups;
    pixels = s.n * s.oh * s.ow;
    pointwise = s.kh == 1 && s.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 &&
                p.pad_bottom == 0 && p.pad_left == 0 && p.pad_right == 0;
  }

  // Pixels per tile of the tile-parallel paths (forward, backward-weight): a tile's column block (rows x KH*KW*C)
  // takes about a quarter of the L2, so the GEMM reads it back from the L2 right after im2col wrote it, and a tile
  // is at most an eighth of the pixels, so one batch splits across threads. Depends on the shapes and the cache
  // sizes only, never on the thread count.
  template <typename T>
  int64_t tile_pixels() const {
    constexpr int64_t kMinRows = 48;  // a multiple of every micro-kernel's MR (6, 8, 12)
    const int64_t row_bytes = std::max<int64_t>(1, kkc) * static_cast<int64_t>(sizeof(T));
    int64_t rows = std::max<int64_t>(kMinRows, l2_cache_bytes() / 4 / row_bytes);
    if (rows > 24) rows -= rows % 24;
    rows = std::min(rows, std::max<int64_t>(kMinRows, ceil_div(pixels, 8)));
    rows = std::min(rows, std::max<int64_t>(1, kConvColumnBudgetBytes / row_bytes));
    return std::max<int64_t>(1, std::min(rows, pixels));
  }

  // Pixels per tile of the sequential col2im path (strided backward-input): as many as fit the budget, each tile's
  // GEMM and col2im threaded inside.
  template <typename T>
  int64_t budget_tile_pixels() const {
    const int64_t row_bytes = std::max<int64_t>(1, kkc) * static_cast<int64_t>(sizeof(T));
    return std::max<int64_t>(1, std::min(pixels, kConvColumnBudgetBytes / row_bytes));
  }
};

// The calling thread's column buffer, kept between calls when it fits the budget (so training steps do not
// allocate); a larger request (one column row above the budget) gets a buffer of its own, freed with the call.
template <typename T>
class ColumnBuffer {
 public:
  explicit ColumnBuffer(int64_t elements) {
    const size_t bytes = sizeof(T) * static_cast<size_t>(std::max<int64_t>(1, elements));
    static thread_local ScratchBuffer kept;
    data_ = static_cast<T*>(bytes <= static_cast<size_t>(kConvColumnBudgetBytes) ? kept.reserve(bytes)
                                                                                 : own_.reserve(bytes));
  }
  T* data() const { return data_; }

 private:
  ScratchBuffer own_;
  T* data_ = nullptr;
};

// Elements copied per parallel_for chunk of the memory-bound loops (im2col, col2im, fills).
constexpr int64_t kCopyGrainElements = 16384;

// col[(q - p0) * kkc + (g * kkcg + (kh * KW + kw) * Cg + c)] = x[n, ih, iw, g * Cg + c] (0 in the padding), for the
// pixels q in [p0, p1).
template <typename T>
void im2col(T* col, const T* x, const Geometry& G, int64_t p0, int64_t p1) {
  const Conv2dShape& s = G.s;
  const Conv2dParams& p = G.p;
  const int64_t grain = std::max<int64_t>(1, kCopyGrainElements / std::max<int64_t>(1, G.kkc));
  // One pixel's column row, tap by tap (any groups, dilation, padding).
  auto general_pixel = [&](T* row, int64_t n, int64_t oh, int64_t ow) {
    const int64_t iw0 = ow * p.stride_w - p.pad_left;
    for (int64_t kh = 0; kh < s.kh; ++kh) {
      const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dilation_h;
      const bool row_inside = ih >= 0 && ih < s.h;
      for (int64_t kw = 0; kw < s.kw; ++kw) {
        const int64_t iw = iw0 + kw * p.dilation_w;
        const int64_t tap = (kh * s.kw + kw) * G.cg;
        if (row_inside && iw >= 0 && iw < s.w) {
          const T* src = x + ((n * s.h + ih) * s.w + iw) * s.c;
          for (int64_t g = 0; g < p.groups; ++g)
            std::memcpy(row + g * G.kkcg + tap, src + g * G.cg, sizeof(T) * static_cast<size_t>(G.cg));
        } else {
          for (int64_t g = 0; g < p.groups; ++g) {
            T* dst = row + g * G.kkcg + tap;
            std::fill(dst, dst + G.cg, T(0));
          }
        }
      }
    }
  };
  // With one group and unit dilation along W, a kernel row's KW taps are KW adjacent pixels of x and KW*C
  // consecutive column entries: for the output pixels whose window lies inside the image along W, one copy of
  // KW*C elements per kernel row (a 3x3 conv on 3 channels copies 3 runs of 9 floats instead of 9 of 3), from
  // source rows found once per output row. Thin layers' runs (up to 16 elements) are copied by code specialised
  // to their length: a library call or a loop over a run of 3 cost more than the copy.
  const bool rows_of_taps = p.groups == 1 && p.dilation_w == 1;
  const int64_t run = s.kw * s.c;
  // Output columns whose window is inside along W: iw0 = ow * stride - pad_left >= 0 and iw0 + KW <= W.
  const int64_t ow_lo = std::min<int64_t>(s.ow, ceil_div(p.pad_left, p.stride_w));
  const int64_t last_start = s.w - s.kw + p.pad_left;  // the largest ow * stride_w whose window fits
  const int64_t ow_hi = last_start < 0 ? 0 : std::min<int64_t>(s.ow, last_start / p.stride_w + 1);
  auto interior = [&](auto length, T* row, const T* const* sources, int64_t ow_begin, int64_t ow_end) {
    const int64_t count = decltype(length)::value > 0 ? decltype(length)::value : run;
    for (int64_t ow = ow_begin; ow < ow_end; ++ow, row += G.kkc) {
      const int64_t offset = (ow * p.stride_w - p.pad_left) * s.c;
      for (int64_t kh = 0; kh < s.kh; ++kh) {
        T* dst = row + kh * count;
        if (sources[kh] == nullptr) {
          std::fill(dst, dst + count, T(0));
        } else if (decltype(length)::value > 0) {
          const T* src = sources[kh] + offset;
          for (int64_t i = 0; i < count; ++i) dst[i] = src[i];
        } else {
          std::memcpy(dst, sources[kh] + offset, sizeof(T) * static_cast<size_t>(count));
        }
      }
    }
  };
  parallel_for(p0, p1, grain, [&](int64_t q0, int64_t q1) {
    const T* sources[64];  // kernel rows' source rows of x (null: outside the image); KH <= 64 on this path
    const bool use_rows = rows_of_taps && s.kh <= 64;
    for (int64_t q = q0; q < q1;) {
      // The run of pixels [q, q_end) shares one output row (n, oh).
      const int64_t n = q / (s.oh * s.ow), oh = (q % (s.oh * s.ow)) / s.ow, ow_first = q % s.ow;
      const int64_t q_end = std::min(q1, q - ow_first + s.ow), ow_last = ow_first + (q_end - q);
      T* row0 = col + (q - p0) * G.kkc - ow_first * G.kkc;  // the column row of pixel (n, oh, 0)
      if (!use_rows) {
        for (int64_t ow = ow_first; ow < ow_last; ++ow) general_pixel(row0 + ow * G.kkc, n, oh, ow);
        q = q_end;
        continue;
      }
      for (int64_t kh = 0; kh < s.kh; ++kh) {
        const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dilation_h;
        sources[kh] = ih >= 0 && ih < s.h ? x + (n * s.h + ih) * s.w * s.c : nullptr;
      }
      const int64_t in_lo = std::max(ow_first, std::min(ow_lo, ow_last));
      const int64_t in_hi = std::max(in_lo, std::min(ow_hi, ow_last));
      for (int64_t ow = ow_first; ow < in_lo; ++ow) general_pixel(row0 + ow * G.kkc, n, oh, ow);
      T* first = row0 + in_lo * G.kkc;
      switch (run) {
#define FASTNN_IM2COL_RUN(N) \
  case N: interior(std::integral_constant<int64_t, N>{}, first, sources, in_lo, in_hi); break;
        FASTNN_IM2COL_RUN(1) FASTNN_IM2COL_RUN(2) FASTNN_IM2COL_RUN(3) FASTNN_IM2COL_RUN(4)
        FASTNN_IM2COL_RUN(5) FASTNN_IM2COL_RUN(6) FASTNN_IM2COL_RUN(7) FASTNN_IM2COL_RUN(8)
        FASTNN_IM2COL_RUN(9) FASTNN_IM2COL_RUN(10) FASTNN_IM2COL_RUN(12) FASTNN_IM2COL_RUN(15)
        FASTNN_IM2COL_RUN(16)
#undef FASTNN_IM2COL_RUN
        default: interior(std::integral_constant<int64_t, 0>{}, first, sources, in_lo, in_hi); break;
      }
      for (int64_t ow = in_hi; ow < ow_last; ++ow) general_pixel(row0 + ow * G.kkc, n, oh, ow);
      q = q_end;
    }
  });
}

// dx[n, ih, iw, :] += the column entries of the tile's pixels [p0, p1) that im2col read from (ih, iw): the adjoint of
// im2col, as a gather over input rows (each dx row written by one thread; taps summed in (kh, kw) order).
template <typename T>
void col2im_add(T* dx, const T* dcol, const Geometry& G, int64_t p0, int64_t p1) {
  const Conv2dShape& s = G.s;
  const Conv2dParams& p = G.p;
  const int64_t per_image = s.oh * s.ow;
  const int64_t n0 = p0 / per_image, n1 = (p1 - 1) / per_image;
  const int64_t oh_first = (p0 % per_image) / s.ow, oh_last = ((p1 - 1) % per_image) / s.ow;
  // Input rows the tile can touch: from its first output row's first tap to its last output row's last tap.
  const int64_t ih_lo = std::max<int64_t>(0, oh_first * p.stride_h - p.pad_top);
  const int64_t ih_hi = std::min<int64_t>(s.h - 1, oh_last * p.stride_h - p.pad_top + (s.kh - 1) * p.dilation_h);
  const int64_t r_lo = n0 * s.h + ih_lo, r_hi = n1 * s.h + ih_hi + 1;
  if (r_hi <= r_lo) return;
  const int64_t grain = std::max<int64_t>(1, kCopyGrainElements / std::max<int64_t>(1, s.w * s.c * s.kh));
  parallel_for(r_lo, r_hi, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / s.h, ih = r % s.h;
      T* dx_row = dx + r * s.w * s.c;
      for (int64_t kh = 0; kh < s.kh; ++kh) {
        const int64_t t = ih + p.pad_top - kh * p.dilation_h;  // = oh * stride_h for the output row using this tap
        if (t < 0 || t % p.stride_h != 0) continue;
        const int64_t oh = t / p.stride_h;
        if (oh >= s.oh) continue;
        const int64_t row_pixel = (n * s.oh + oh) * s.ow;
        for (int64_t iw = 0; iw < s.w; ++iw) {
          T* dst = dx_row + iw * s.c;
          for (int64_t kw = 0; kw < s.kw; ++kw) {
            const int64_t u = iw + p.pad_left - kw * p.dilation_w;
            if (u < 0 || u % p.stride_w != 0) continue;
            const int64_t ow = u / p.stride_w;
            if (ow >= s.ow) continue;
            const int64_t q = row_pixel + ow;
            if (q < p0 || q >= p1) continue;
            const T* src = dcol + (q - p0) * G.kkc + (kh * s.kw + kw) * G.cg;
            for (int64_t g = 0; g < p.groups; ++g) {
              const T* sg = src + g * G.kkcg;
              T* dg = dst + g * G.cg;
              for (int64_t c = 0; c < G.cg; ++c) dg[c] += sg[c];
            }
          }
        }
      }
    }
  });
}

template <typename T>
void parallel_zero(T* data, int64_t count) {
  parallel_for(0, count, kCopyGrainElements * 4,
               [&](int64_t i0, int64_t i1) { std::fill(data + i0, data + i1, T(0)); });
}

// acc[f] += sum over rows [0, rows) of dy[r, f]: blocks of 256 rows summed by the SIMD column-sum kernel (in T,
// rows in order), the block sums added in double, so a large batch loses no precision. `block_sum` holds F.
template <typename T>
void add_column_sums(double* acc, const T* dy, int64_t rows, int64_t f_count, T* block_sum) {
  constexpr int64_t kRowBlock = 256;
  const auto column_sums = detail::active_elementwise_kernels<T>().column_sums;
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    std::fill(block_sum, block_sum + f_count, T(0));
    column_sums(block_sum, dy + r0 * f_count, std::min(kRowBlock, rows - r0), f_count);
    for (int64_t f = 0; f < f_count; ++f) acc[f] += static_cast<double>(block_sum[f]);
  }
}

}  // namespace

// db[f] += sum over pixels of dy[q, f] (conv.h's helper for every backward-weight path): the pixels in at most 8
// ranges fixed by the shape, each summed on one thread (add_column_sums), the ranges' sums added in order.
template <typename T>
void conv_bias_grad_add(T* db, const T* dy, int64_t pixels, int64_t f_count) {
  if (pixels <= 0 || f_count <= 0) return;
  const int64_t ranges = std::min<int64_t>(8, ceil_div(pixels, 2048));
  std::vector<double> sums(static_cast<size_t>(ranges * f_count), 0.0);
  parallel_for(0, ranges, 1, [&](int64_t r0, int64_t r1) {
    std::vector<T> block_sum(static_cast<size_t>(f_count));
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t q0 = r * pixels / ranges, q1 = (r + 1) * pixels / ranges;
      add_column_sums(sums.data() + r * f_count, dy + q0 * f_count, q1 - q0, f_count, block_sum.data());
    }
  });
  for (int64_t f = 0; f < f_count; ++f) {
    double sum = 0.0;
    for (int64_t r = 0; r < ranges; ++r) sum += sums[r * f_count + f];
    db[f] = static_cast<T>(static_cast<double>(db[f]) + sum);
  }
}
template void conv_bias_grad_add<float>(float*, const float*, int64_t, int64_t);
template void conv_bias_grad_add<double>(double*, const double*, int64_t, int64_t);


namespace {

// Thin convolutions (a kernel row's KW*C taps at most 16 elements: the first layers, 1-5 channels): the forward
// without im2col. For one output row, kernel row kh reads input row ih = oh * stride_h - pad_top + kh * dilation_h,
// and the taps of consecutive output pixels are consecutive KW*C runs of it, stride_w*C apart: a strided matrix.
// Each of those rows is copied once, zero-padded left and right (a row of zeros for kernel rows outside the image),
// and a tile of output pixels x filters sums its kernel rows in kh order and adds the bias / applies the ReLU in
// registers (SegmentsKernel): im2col's products in im2col's order, without the column matrix.
constexpr int64_t kThinRun = 16;

bool thin_rows_apply(const Conv2dShape& s, const Conv2dParams& p) {
  if (!(p.groups == 1 && p.dilation_w == 1 && s.kw * s.c <= kThinRun && s.kh <= 16 && s.f > 0 && s.ow > 0))
    return false;
  // Each thread copies kh + 1 padded rows of span * C elements. Wide rows (or strides that skip most of a row) go
  // through im2col instead, whose tiles are bounded: a 2^30-column stride would otherwise copy gigabytes per row.
  const int64_t span = (s.ow - 1) * p.stride_w + s.kw;
  return span <= kConvColumnBudgetBytes / static_cast<int64_t>(sizeof(double) * (s.kh + 1) * std::max<int64_t>(1, s.c));
}

template <typename T>
void thin_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dShape& s, const Conv2dParams& p,
                  Activation act) {
  const detail::GemmKernelSet<T> ks = detail::blocked_kernels<T>();
  const int64_t run = s.kw * s.c, MR = ks.mr, NR = ks.nr;
  // A padded row holds input columns [-pad_left, span - pad_left): every output pixel's window.
  const int64_t span = (s.ow - 1) * p.stride_w + s.kw;
  const int64_t row_elems = span * s.c;
  const int64_t rows = s.n * s.oh;
  const int64_t grain = std::max<int64_t>(1, kCopyGrainElements / std::max<int64_t>(1, s.ow * s.f));
  parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    static thread_local ScratchBuffer padded_scratch;
    // kh rows, then one of zeros for the kernel rows outside the image: they still multiply their weights, as im2col's
    // zeros do (an inf weight there gives NaN, as with an explicitly padded input).
    BoundedScratch padded_buffer(padded_scratch, sizeof(T) * static_cast<size_t>((s.kh + 1) * row_elems));
    T* padded = static_cast<T*>(padded_buffer.get());
    T* zero_row = padded + s.kh * row_elems;
    std::fill(zero_row, zero_row + row_elems, T(0));
    const T* a[16];
    const T* b[16];
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / s.oh, oh = r % s.oh;
      int nseg = 0;
      for (int64_t kh = 0; kh < s.kh; ++kh) {
        const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dilation_h;
        b[nseg] = w + kh * run * s.f;
        if (ih < 0 || ih >= s.h) {
          a[nseg++] = zero_row;
          continue;
        }
        T* dst = padded + nseg * row_elems;
        const T* src = x + (n * s.h + ih) * s.w * s.c;
        const int64_t lo = std::min<int64_t>(span, p.pad_left);  // the padding columns at the left
        const int64_t hi = std::max<int64_t>(lo, std::min<int64_t>(span, p.pad_left + s.w));  // the image's end
        std::fill(dst, dst + lo * s.c, T(0));
        if (hi > lo)  // lo == pad_left here: the image's first column
          std::memcpy(dst + lo * s.c, src, sizeof(T) * static_cast<size_t>((hi - lo) * s.c));
        std::fill(dst + hi * s.c, dst + row_elems, T(0));
        a[nseg++] = dst;
      }
      T* y_row = y + r * s.ow * s.f;
      for (int64_t ow0 = 0; ow0 < s.ow; ow0 += MR) {
        const int m = static_cast<int>(std::min(MR, s.ow - ow0));
        const T* a_tile[16];
        for (int i = 0; i < nseg; ++i) a_tile[i] = a[i] + ow0 * p.stride_w * s.c;
        for (int64_t f0 = 0; f0 < s.f; f0 += NR) {
          const int nn = static_cast<int>(std::min(NR, s.f - f0));
          const T* b_tile[16];
          for (int i = 0; i < nseg; ++i) b_tile[i] = b[i] + f0;
          T* c = y_row + ow0 * s.f + f0;
          ks.direct_segments(m, nn, nseg, a_tile, p.stride_w * s.c, run, b_tile, s.f, c, s.f,
                             bias != nullptr ? bias + f0 : nullptr, act == Activation::kRelu);
        }
      }
    }
  });
}

}  // namespace

template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dShape& s, const Conv2dParams& p,
                    Activation act) {
  DenormalsAreZero ftz;
  const Geometry G(s, p);
  if (G.pixels == 0 || s.f == 0) return;
  // One GEMM per group: rows are pixels, the group's output columns of y; w's group columns with ldb = F.
  auto gemm_groups = [&](T* y_rows, const T* a, int64_t rows, int64_t lda, int64_t k, int64_t a_group_step) {
    for (int64_t g = 0; g < p.groups; ++g) {
      GemmParams<T> gp;
      gp.m = rows;
      gp.n = G.fg;
      gp.k = k;
      gp.lda = lda;
      gp.ldb = s.f;
      gp.ldc = s.f;
      gp.bias = bias != nullptr ? bias + g * G.fg : nullptr;
      gp.activation = act;
      gemm(y_rows + g * G.fg, a + g * a_group_step, w + g * G.fg, gp);
    }
  };
  if (G.pointwise) {
    gemm_groups(y, x, G.pixels, s.c, G.cg, G.cg);  // x viewed as (N*H*W, C), group g = columns [g*Cg, (g+1)*Cg)
    return;
  }
  if (conv2d_winograd_applies(s, p)) {
    conv2d_forward_winograd(y, x, w, bias, s, p, act);
    return;
  }
  if (thin_rows_apply(s, p)) {
    thin_forward(y, x, w, bias, s, p, act);
    return;
  }
  // Tiles of output rows are independent: each runs im2col then its GEMMs on one thread, the column block still in
  // that core's L2 (a parallel_for nested in a chunk runs inline). One tile: the GEMM threads itself.
  const int64_t tile = G.template tile_pixels<T>();
  const int64_t tiles = ceil_div(G.pixels, tile);
  parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
    ColumnBuffer<T> col(tile * G.kkc);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t p0 = t * tile, p1 = std::min(G.pixels, p0 + tile);
      im2col(col.data(), x, G, p0, p1);
      gemm_groups(y + p0 * s.f, col.data(), p1 - p0, G.kkc, G.kkcg, G.kkcg);
    }
  });
}

namespace {

// Whether the backward-input of this convolution is itself a forward convolution (stride 1, each padding at most
// the dilated kernel's reach): dx = conv(dy, w flipped in space with in / out swapped), padded by the complement.
bool backward_input_is_a_convolution(const Conv2dShape& s, const Conv2dParams& p) {
  const int64_t reach_h = p.dilation_h * (s.kh - 1), reach_w = p.dilation_w * (s.kw - 1);
  return p.stride_h == 1 && p.stride_w == 1 && p.pad_top <= reach_h && p.pad_bottom <= reach_h &&
         p.pad_left <= reach_w && p.pad_right <= reach_w;
}

}  // namespace

template <typename T>
void conv2d_backward_input(T* dx, const T* dy, const T* w, const Conv2dShape& s, const Conv2dParams& p) {
  DenormalsAreZero ftz;
  const Geometry G(s, p);
  const int64_t dx_count = s.n * s.h * s.w * s.c;
  // dcol rows (or dx rows) = dy rows @ w^T per group: op(B) = w's group columns transposed, (Fg, KH*KW*Cg).
  auto gemm_groups = [&](T* c_rows, int64_t ldc, int64_t c_group_step, const T* dy_rows, int64_t rows) {
    for (int64_t g = 0; g < p.groups; ++g) {
      GemmParams<T> gp;
      gp.m = rows;
      gp.n = G.kkcg;
      gp.k = G.fg;
      gp.trans_b = true;
      gp.lda = s.f;
      gp.ldb = s.f;
      gp.ldc = ldc;
      gemm(c_rows + g * c_group_step, dy_rows + g * G.fg, w + g * G.fg, gp);
    }
  };
  if (G.pointwise && G.pixels > 0) {
    gemm_groups(dx, s.c, G.cg, dy, G.pixels);  // beta = 0: assigns every dx element (K = 0 writes zeros)
    return;
  }
  // The flipped forward's GEMM is Cg wide: below 16 columns it runs far under the GEMM rate, and the col2im path
  // (Fg x KH*KW*Cg GEMM) is faster.
  if (G.pixels > 0 && s.f > 0 && G.cg >= 16 && backward_input_is_a_convolution(s, p)) {
    // dx[ih] = sum_kh dy[ih + pad_top - kh * d] w[kh] = sum_k' dy[ih - pad' + k' * d] w[KH-1-k'] with
    // pad' = d (KH-1) - pad_top: the forward kernel (tile-parallel, no col2im) on dy with the weights flipped in
    // space and each group's (Cg, Fg) block transposed to (Fg, Cg); output size H since pad_bottom' = d (KH-1) -
    // pad_bottom.
    std::vector<T> flipped(static_cast<size_t>(s.kh * s.kw * G.fg * s.c));
    // Per tap and group, a (Cg, Fg) block transposed in 16 x 16 squares (element by element, the writes C apart
    // missed the cache on every element of a wide layer).
    constexpr int64_t kSquare = 16;
    const int64_t taps = s.kh * s.kw, squares_c = ceil_div(G.cg, kSquare);
    parallel_for(0, taps * p.groups * squares_c, 1, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t tap = j / (p.groups * squares_c), g = (j / squares_c) % p.groups;
        const int64_t c0 = (j % squares_c) * kSquare, c1 = std::min(G.cg, c0 + kSquare);
        const int64_t kh = tap / s.kw, kw = tap % s.kw;
        const T* src = w + ((s.kh - 1 - kh) * s.kw + (s.kw - 1 - kw)) * G.cg * s.f + g * G.fg;  // (Cg, F) rows
        T* dst = flipped.data() + tap * G.fg * s.c + g * G.cg;                                    // (Fg, C) rows
        for (int64_t f0 = 0; f0 < G.fg; f0 += kSquare) {
          const int64_t f1 = std::min(G.fg, f0 + kSquare);
          for (int64_t fi = f0; fi < f1; ++fi)
            for (int64_t ci = c0; ci < c1; ++ci) dst[fi * s.c + ci] = src[ci * s.f + fi];
        }
      }
    });
    Conv2dShape bs;
    bs.n = s.n, bs.h = s.oh, bs.w = s.ow, bs.c = s.f, bs.kh = s.kh, bs.kw = s.kw, bs.f = s.c, bs.oh = s.h,
    bs.ow = s.w;
    Conv2dParams bp = p;
    bp.pad_top = p.dilation_h * (s.kh - 1) - p.pad_top;
    bp.pad_bottom = p.dilation_h * (s.kh - 1) - p.pad_bottom;
    bp.pad_left = p.dilation_w * (s.kw - 1) - p.pad_left;
    bp.pad_right = p.dilation_w * (s.kw - 1) - p.pad_right;
    conv2d_forward(dx, dy, flipped.data(), static_cast<const T*>(nullptr), bs, bp, Activation::kIdentity);
    return;
  }
  parallel_zero(dx, dx_count);
  if (G.pixels == 0) return;
  // Strided (or over-padded) convolutions: tiles in order, each tile's GEMM and col2im gather threaded inside.
  const int64_t tile = G.template budget_tile_pixels<T>();
  ColumnBuffer<T> dcol(tile * G.kkc);
  for (int64_t p0 = 0; p0 < G.pixels; p0 += tile) {
    const int64_t p1 = std::min(G.pixels, p0 + tile);
    gemm_groups(dcol.data(), G.kkc, G.kkcg, dy + p0 * s.f, p1 - p0);
    col2im_add(dx, dcol.data(), G, p0, p1);
  }
}

namespace {

// Bytes of the per-partition dw partial sums the backward-weight kernel may hold, and the most partitions.
constexpr int64_t kWeightPartialBudgetBytes = int64_t{8} << 20;
constexpr int64_t kMaxWeightPartitions = 8;

}  // namespace

template <typename T>
void conv2d_backward_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dShape& s, const Conv2dParams& p) {
  DenormalsAreZero ftz;
  const Geometry G(s, p);
  if (G.pixels == 0 || s.f == 0) return;
  if (conv2d_winograd_applies(s, p)) {
    conv2d_backward_weight_winograd(dw, db, x, dy, s, p);
    return;
  }
  // out (viewed as (KH*KW*Cg, F)), group g's columns += col(tile)^T @ dy(tile): op(A) = the group's column block
  // transposed, (KH*KW*Cg, rows); beta = 1 accumulates, tile after tile in order.
  auto gemm_groups = [&](T* out, const T* a, int64_t lda, int64_t a_group_step, const T* dy_rows, int64_t rows,
                         T beta) {
    for (int64_t g = 0; g < p.groups; ++g) {
      GemmParams<T> gp;
      gp.m = G.kkcg;
      gp.n = G.fg;
      gp.k = rows;
      gp.trans_a = true;
      gp.lda = lda;
      gp.ldb = s.f;
      gp.ldc = s.f;
      gp.beta = beta;
      gemm(out + g * G.fg, a + g * a_group_step, dy_rows + g * G.fg, gp);
    }
  };
  // A tile's columns: x itself for a pointwise convolution, else im2col into the thread's buffer.
  const int64_t tile = G.pointwise ? std::min<int64_t>(G.pixels, 1024) : G.template tile_pixels<T>();
  const int64_t tiles = ceil_div(G.pixels, tile);
  // first_beta 0: the first tile assigns `out` (a fresh partial), 1: it accumulates into it (dw itself).
  auto accumulate_tiles = [&](T* out, double* bias_out, int64_t t0, int64_t t1, T first_beta) {
    ColumnBuffer<T> col(G.pointwise ? 0 : tile * G.kkc);
    std::vector<T> block_sum(bias_out != nullptr ? static_cast<size_t>(s.f) : 0);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t p0 = t * tile, p1 = std::min(G.pixels, p0 + tile);
      const T* dy_rows = dy + p0 * s.f;
      const T beta = t == t0 ? first_beta : T(1);
      if (G.pointwise) {
        gemm_groups(out, x + p0 * s.c, s.c, G.cg, dy_rows, p1 - p0, beta);
      } else {
        im2col(col.data(), x, G, p0, p1);
        gemm_groups(out, col.data(), G.kkc, G.kkcg, dy_rows, p1 - p0, beta);
      }
      if (bias_out != nullptr) add_column_sums(bias_out, dy_rows, p1 - p0, s.f, block_sum.data());
    }
  };
  // The pixel sum splits into a fixed number of partitions (from the shapes only, so every thread count gives the
  // same sums): each partition accumulates its tiles on one thread into its own partial, the partials are then
  // added in partition order. A GEMM with few output tiles (KH*KW*Cg x F is small next to the pixel count) has
  // little parallelism of its own; the partitions give it. One partition: the GEMMs thread themselves.
  const int64_t dw_count = G.kkcg * s.f;
  const int64_t partitions = std::min<int64_t>(
      {tiles, kMaxWeightPartitions,
       std::max<int64_t>(1, kWeightPartialBudgetBytes /
                                (std::max<int64_t>(1, dw_count) * static_cast<int64_t>(sizeof(T))))});
  if (partitions == 1) {
    if (db != nullptr) conv_bias_grad_add(db, dy, G.pixels, s.f);
    accumulate_tiles(dw, nullptr, 0, tiles, T(1));
    return;
  }
  // The partials live in the calling thread's kept scratch (no page faults per training step); each partition's
  // first GEMM assigns its partial, so nothing needs zeroing.
  static thread_local ScratchBuffer partial_scratch;
  BoundedScratch partial_buffer(partial_scratch, sizeof(T) * static_cast<size_t>(partitions * dw_count));
  T* partial = static_cast<T*>(partial_buffer.get());
  std::vector<double> bias_partial(db != nullptr ? static_cast<size_t>(partitions * s.f) : 0, 0.0);
  parallel_for(0, partitions, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q)
      accumulate_tiles(partial + q * dw_count, db != nullptr ? bias_partial.data() + q * s.f : nullptr,
                       q * tiles / partitions, (q + 1) * tiles / partitions, T(0));
  });
  // By chunks, each partial's row read contiguously (element by element, the partials would be up to 9 streams
  // dw_count apart, often a multiple of 4 KiB: one cache set, more streams than an 8-way L1 has ways).
  constexpr int64_t kChunk = 512;
  parallel_for(0, ceil_div(dw_count, kChunk), 1, [&](int64_t c0, int64_t c1) {
    double sum[kChunk];
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      const int64_t i0 = chunk * kChunk, width = std::min(kChunk, dw_count - i0);
      std::fill(sum, sum + width, 0.0);
      for (int64_t q = 0; q < partitions; ++q) {
        const T* row = partial + q * dw_count + i0;
        for (int64_t j = 0; j < width; ++j) sum[j] += static_cast<double>(row[j]);
      }
      for (int64_t j = 0; j < width; ++j) dw[i0 + j] = static_cast<T>(static_cast<double>(dw[i0 + j]) + sum[j]);
    }
  });
  for (int64_t f = 0; f < (db != nullptr ? s.f : 0); ++f) {
    double sum = 0.0;
    for (int64_t q = 0; q < partitions; ++q) sum += bias_partial[q * s.f + f];
    db[f] = static_cast<T>(static_cast<double>(db[f]) + sum);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Depthwise: direct kernels. Channel c of x meets only w[:, :, c, :], so each output pixel is KH*KW vector
// multiply-adds over the C*M contiguous channels (M = depth multiplier = s.f). A padded position is a zero that
// multiplies the weight, as in im2col (so an inf weight gives NaN there, as with conv2d and an explicitly padded
// input). Each output / dx element / dw element is summed by one thread in a fixed order: bit-identical for every
// thread count.
// ---------------------------------------------------------------------------------------------------------------
namespace {

// Rows (of outputs or inputs) per parallel_for chunk so that a chunk holds at least ~32K multiply-adds.
int64_t row_grain(int64_t work_per_row) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_row));
}

// acc[c*M + m] += xv[c] * wv[c*M + m] over c < C (xv null: the padding, zeros).
template <typename T>
inline void depthwise_tap(T* FASTNN_RESTRICT acc, const T* FASTNN_RESTRICT xv, const T* FASTNN_RESTRICT wv,
                          int64_t C, int64_t M) {
  if (M == 1) {
    if (xv != nullptr) for (int64_t c = 0; c < C; ++c) acc[c] += xv[c] * wv[c];
    else for (int64_t c = 0; c < C; ++c) acc[c] += T(0) * wv[c];
    return;
  }
  for (int64_t c = 0; c < C; ++c) {
    const T v = xv != nullptr ? xv[c] : T(0);
    for (int64_t m = 0; m < M; ++m) acc[c * M + m] += v * wv[c * M + m];
  }
}

}  // namespace

template <typename T>
void depthwise_conv2d_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dShape& s,
                              const Conv2dParams& p, Activation act) {
  DenormalsAreZero ftz;
  const int64_t C = s.c, M = s.f, CM = C * M;
  if (CM == 0) return;
  parallel_for(0, s.n * s.oh, row_grain(s.ow * s.kh * s.kw * CM), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / s.oh, oh = r % s.oh;
      for (int64_t ow = 0; ow < s.ow; ++ow) {
        T* acc = y + (r * s.ow + ow) * CM;
        std::fill(acc, acc + CM, T(0));
        for (int64_t kh = 0; kh < s.kh; ++kh) {
          const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dilation_h;
          for (int64_t kw = 0; kw < s.kw; ++kw) {
            const int64_t iw = ow * p.stride_w - p.pad_left + kw * p.dilation_w;
            const bool inside = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
            depthwise_tap(acc, inside ? x + ((n * s.h + ih) * s.w + iw) * C : nullptr, w + (kh * s.kw + kw) * CM, C, M);
          }
        }
        if (bias != nullptr)
          for (int64_t j = 0; j < CM; ++j) acc[j] += bias[j];
        if (act == Activation::kRelu)
          for (int64_t j = 0; j < CM; ++j) acc[j] = acc[j] < T(0) ? T(0) : acc[j];  // NaN stays NaN
      }
    }
  });
}

template <typename T>
void depthwise_conv2d_backward_input(T* dx, const T* dy, const T* w, const Conv2dShape& s, const Conv2dParams& p) {
  DenormalsAreZero ftz;
  const int64_t C = s.c, M = s.f, CM = C * M;
  if (C == 0) return;
  // A gather over input rows: dx[n, ih, iw, c] = sum over the taps that read (ih, iw) of dy . w (over m).
  parallel_for(0, s.n * s.h, row_grain(s.w * s.kh * s.kw * std::max<int64_t>(1, CM)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / s.h, ih = r % s.h;
      T* dx_row = dx + r * s.w * C;
      std::fill(dx_row, dx_row + s.w * C, T(0));
      for (int64_t kh = 0; kh < s.kh; ++kh) {
        const int64_t t = ih + p.pad_top - kh * p.dilation_h;
        if (t < 0 || t % p.stride_h != 0 || t / p.stride_h >= s.oh) continue;
        const int64_t oh = t / p.stride_h;
        for (int64_t iw = 0; iw < s.w; ++iw) {
          T* FASTNN_RESTRICT acc = dx_row + iw * C;
          for (int64_t kw = 0; kw < s.kw; ++kw) {
            const int64_t u = iw + p.pad_left - kw * p.dilation_w;
            if (u < 0 || u % p.stride_w != 0 || u / p.stride_w >= s.ow) continue;
            const T* FASTNN_RESTRICT g = dy + ((n * s.oh + oh) * s.ow + u / p.stride_w) * CM;
            const T* FASTNN_RESTRICT wv = w + (kh * s.kw + kw) * CM;
            if (M == 1) {
              for (int64_t c = 0; c < C; ++c) acc[c] += g[c] * wv[c];
            } else {
              for (int64_t c = 0; c < C; ++c) {
                T sum = 0;
                for (int64_t m = 0; m < M; ++m) sum += g[c * M + m] * wv[c * M + m];
                acc[c] += sum;
              }
            }
          }
        }
      }
    }
  });
}

template <typename T>
void depthwise_conv2d_backward_weight(T* dw, T* db, const T* x, const T* dy, const Conv2dShape& s,
                                      const Conv2dParams& p) {
  DenormalsAreZero ftz;
  const int64_t C = s.c, M = s.f, CM = C * M, taps = s.kh * s.kw;
  const int64_t pixels = s.n * s.oh * s.ow;
  if (CM == 0 || pixels == 0) return;
  // Blocks of channels in parallel: each channel's dw (all taps) and db are summed by one thread over the pixels in
  // order, into a local accumulator, then added to dw / db once.
  // At least 16 channels a block (whole vectors for the inner loops) unless the work is small anyway; which thread
  // sums a channel changes nothing.
  constexpr int64_t kMinChannels = 16;
  const int64_t grain = std::max(row_grain(pixels * taps * M), std::min<int64_t>(C, kMinChannels));
  parallel_for(0, C, grain, [&](int64_t c0, int64_t c1) {
    const int64_t width = (c1 - c0) * M;
    std::vector<T> acc(static_cast<size_t>(taps * width), T(0));
    std::vector<double> bias_acc(static_cast<size_t>(db != nullptr ? width : 0), 0.0);
    for (int64_t q = 0; q < pixels; ++q) {
      const int64_t n = q / (s.oh * s.ow), rem = q % (s.oh * s.ow), oh = rem / s.ow, ow = rem % s.ow;
      const T* g = dy + q * CM + c0 * M;
      for (int64_t kh = 0; kh < s.kh; ++kh) {
        const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dilation_h;
        for (int64_t kw = 0; kw < s.kw; ++kw) {
          const int64_t iw = ow * p.stride_w - p.pad_left + kw * p.dilation_w;
          const bool inside = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
          // dw[tap, c, m] += x[c] * dy[c, m]: the forward's tap with x and w swapped for x and dy.
          const T* xv = inside ? x + ((n * s.h + ih) * s.w + iw) * C + c0 : nullptr;
          depthwise_tap(acc.data() + (kh * s.kw + kw) * width, xv, g, c1 - c0, M);
        }
      }
      for (int64_t j = 0; j < static_cast<int64_t>(bias_acc.size()); ++j) bias_acc[j] += static_cast<double>(g[j]);
    }
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t j = 0; j < width; ++j) dw[t * CM + c0 * M + j] += acc[t * width + j];
    for (int64_t j = 0; j < static_cast<int64_t>(bias_acc.size()); ++j)
      db[c0 * M + j] = static_cast<T>(static_cast<double>(db[c0 * M + j]) + bias_acc[j]);
  });
}

#define FASTNN_INSTANTIATE_CONV(T)                                                                               \
  template void conv2d_forward<T>(T*, const T*, const T*, const T*, const Conv2dShape&, const Conv2dParams&,    \
                                  Activation);                                                                  \
  template void conv2d_backward_input<T>(T*, const T*, const T*, const Conv2dShape&, const Conv2dParams&);     \
  template void conv2d_backward_weight<T>(T*, T*, const T*, const T*, const Conv2dShape&, const Conv2dParams&);  \
  template void depthwise_conv2d_forward<T>(T*, const T*, const T*, const T*, const Conv2dShape&,              \
                                            const Conv2dParams&, Activation);                                  \
  template void depthwise_conv2d_backward_input<T>(T*, const T*, const T*, const Conv2dShape&,                 \
                                                   const Conv2dParams&);                                       \
  template void depthwise_conv2d_backward_weight<T>(T*, T*, const T*, const T*, const Conv2dShape&,            \
                                                    const Conv2dParams&);
FASTNN_INSTANTIATE_CONV(float)
FASTNN_INSTANTIATE_CONV(double)
#undef FASTNN_INSTANTIATE_CONV

}  // namespace fastnn::cpu
