// Batch normalization over the channel axis of an (M, C) view (see fastnn/batchnorm.h). The channel axis is
// contiguous, so every inner loop runs over C with unit stride; the column sums over M go through fixed row blocks
// summed in parallel and combined in block order, so no result depends on the thread count. The per-row loops are
// per ISA (pool_norm_kernel_impl.h): in double, SSE2's two lanes made these kernels compute-bound, not memory-bound.
#include <algorithm>
#include <cmath>
#include <vector>

#include "fastnn/batchnorm.h"
#include "fastnn/parallel.h"
#include "pool_norm_kernels.h"

namespace fastnn::cpu {
namespace {

constexpr int64_t kBlockElements = 1 << 14;  // elements per row block (and per parallel chunk of the elementwise pass)
constexpr int64_t kMaxBlocks = 256;          // row blocks at most: the partial sums stay small (256 * C doubles)

// The row blocks of an (M, C) column reduction: a function of M and C alone, never of the thread count.
struct RowBlocks {
  int64_t rows = 1, count = 0;
};
RowBlocks row_blocks(int64_t m, int64_t c) {
  RowBlocks b;
  b.rows = std::max<int64_t>({int64_t{1}, ceil_div(kBlockElements, std::max<int64_t>(c, 1)), ceil_div(m, kMaxBlocks)});
  b.count = ceil_div(m, b.rows);
  return b;
}

// out[s * C + j] = sum over rows of the contributions add_rows(r0, r1, acc) makes to acc[s * C + j] (s < sums) for
// the rows [r0, r1) of one block, in double: each block of rows summed in row order (acc starts at zero), the
// block sums added in block order.
template <typename AddRows>
void column_sums(double* out, int64_t m, int64_t c, int sums, const AddRows& add_rows) {
  const int64_t width = sums * c;
  const RowBlocks blocks = row_blocks(m, c);
  std::vector<double> partial(static_cast<size_t>(blocks.count * width));
  parallel_for(0, blocks.count, 1, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) {
      double* acc = partial.data() + blk * width;
      std::fill(acc, acc + width, 0.0);
      add_rows(blk * blocks.rows, std::min(m, (blk + 1) * blocks.rows), acc);
    }
  });
  std::fill(out, out + width, 0.0);
  for (int64_t blk = 0; blk < blocks.count; ++blk) {
    const double* acc = partial.data() + blk * width;
    for (int64_t j = 0; j < width; ++j) out[j] += acc[j];
  }
}

template <typename T>
const detail::PoolNormKernelSet<T>& kernels() {
  return detail::active_pool_norm_kernels<T>();
}

// y[r, j] = (x[r, j] - shift[j]) * scale[j] + offset[j] in double, rounded once (then the ReLU with relu); rows
// split across threads.
template <typename T>
void normalize(T* y, const T* x, const double* shift, const double* scale, const double* offset, int64_t m,
               int64_t c, bool relu) {
  const auto rows = kernels<T>().bn_normalize;
  parallel_for(0, m, std::max<int64_t>(1, kBlockElements / std::max<int64_t>(c, 1)),
               [&](int64_t b, int64_t e) { rows(y, x, shift, scale, offset, b, e, c, relu); });
}

template <typename T>
double param(const T* v, int64_t j, double absent) {
  return v ? static_cast<double>(v[j]) : absent;
}

}  // namespace

template <typename T>
void batch_norm_train_forward(T* y, T* mean, T* var, T* rstd, const T* x, const T* gamma, const T* beta,
                              const BatchNormParams& p) {
  DenormalsAreZero ftz;
  const int64_t m = p.m, c = p.c;
  if (c == 0) return;
  // One read of x for both statistics: each row block (a function of M and C alone, 64 KB of float: it stays in
  // L2) is summed, then its squared deviations from its own mean are summed while it is still in cache (a
  // two-pass variance per block, in double). The blocks combine exactly as one two-pass over all rows would:
  //   sum (x - mean)^2 = sum_b [ M2_b + rows_b * (mean_b - mean)^2 ],
  // both terms sums of squares, so a large offset of the data costs no precision (the requirement).
  // (Was: a pass for the mean and a second full pass for the deviations, three reads of x with the normalize.)
  // Per block: [sum (C), m2 (C), block mean (C)].
  const RowBlocks blocks = row_blocks(m, c);
  std::vector<double> partial(static_cast<size_t>(blocks.count * 3 * c));
  const auto block_stats = kernels<T>().bn_block_stats;
  parallel_for(0, blocks.count, 1, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) {
      double* sum = partial.data() + blk * 3 * c;
      block_stats(sum, sum + c, sum + 2 * c, x, blk * blocks.rows, std::min(m, (blk + 1) * blocks.rows), c);
    }
  });
  // The mean: block sums added in block order (as column_sums does); then the deviations, block by block.
  std::vector<double> mu(c, 0.0), sq(c, 0.0), scale(c), offset(c);
  for (int64_t blk = 0; blk < blocks.count; ++blk)
    for (int64_t j = 0; j < c; ++j) mu[j] += partial[blk * 3 * c + j];
  for (int64_t j = 0; j < c; ++j) mu[j] /= static_cast<double>(m);
  for (int64_t blk = 0; blk < blocks.count; ++blk) {
    const double rows = static_cast<double>(std::min(m, (blk + 1) * blocks.rows) - blk * blocks.rows);
    const double* m2 = partial.data() + blk * 3 * c + c;
    const double* block_mean = m2 + c;
    for (int64_t j = 0; j < c; ++j) {
      const double d = block_mean[j] - mu[j];
      sq[j] += m2[j] + rows * d * d;
    }
  }
  for (int64_t j = 0; j < c; ++j) {
    const double v = sq[j] / static_cast<double>(m);
    const double rs = 1.0 / std::sqrt(v + p.epsilon);
    mean[j] = static_cast<T>(mu[j]);
    var[j] = static_cast<T>(v);
    rstd[j] = static_cast<T>(rs);
    scale[j] = param(gamma, j, 1.0) * rs;
    offset[j] = param(beta, j, 0.0);
  }
  normalize(y, x, mu.data(), scale.data(), offset.data(), m, c, p.relu);
}

template <typename T>
void batch_norm_inference_forward(T* y, const T* x, const T* mean, const T* var, const T* gamma, const T* beta,
                                  const BatchNormParams& p) {
  DenormalsAreZero ftz;
  const int64_t c = p.c;
  std::vector<double> shift(c), scale(c), offset(c);
  for (int64_t j = 0; j < c; ++j) {
    shift[j] = static_cast<double>(mean[j]);
    scale[j] = param(gamma, j, 1.0) / std::sqrt(static_cast<double>(var[j]) + p.epsilon);
    offset[j] = param(beta, j, 0.0);
  }
  normalize(y, x, shift.data(), scale.data(), offset.data(), p.m, c, p.relu);
}

template <typename T>
void batch_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean, const T* rstd,
                         const T* gamma, const BatchNormParams& p, const T* relu_y) {
  DenormalsAreZero ftz;
  const int64_t m = p.m, c = p.c;
  if (c == 0) return;
  std::vector<double> mu(c), sums(2 * c);
  for (int64_t j = 0; j < c; ++j) mu[j] = static_cast<double>(mean[j]);
  const double* mu_p = mu.data();
  // sums[j] = sum dy, sums[c + j] = sum dy * (x - mean): both in one pass.
  const auto backward_sums = kernels<T>().bn_backward_sums;
  column_sums(sums.data(), m, c, 2,
              [&](int64_t r0, int64_t r1, double* acc) { backward_sums(acc, dy, x, relu_y, mu_p, r0, r1, c); });
  std::vector<double> a(c), k1(c), k2(c);
  const double inv_m = 1.0 / static_cast<double>(m);
  for (int64_t j = 0; j < c; ++j) {
    const double rs = static_cast<double>(rstd[j]);
    dbeta[j] = static_cast<T>(static_cast<double>(dbeta[j]) + sums[j]);
    dgamma[j] = static_cast<T>(static_cast<double>(dgamma[j]) + sums[c + j] * rs);
    a[j] = param(gamma, j, 1.0) * rs;
    k1[j] = sums[j] * inv_m;
    k2[j] = sums[c + j] * rs * rs * inv_m;
  }
  const double *a_p = a.data(), *k1_p = k1.data(), *k2_p = k2.data();
  const auto backward_dx = kernels<T>().bn_backward_dx;
  parallel_for(0, m, std::max<int64_t>(1, kBlockElements / c),
               [&](int64_t b, int64_t e) { backward_dx(dx, dy, x, relu_y, mu_p, a_p, k1_p, k2_p, b, e, c); });
}

#define FASTNN_INSTANTIATE(T)                                                                                   \
  template void batch_norm_train_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*,                      \
                                            const BatchNormParams&);                                           \
  template void batch_norm_inference_forward<T>(T*, const T*, const T*, const T*, const T*, const T*,          \
                                                const BatchNormParams&);                                       \
  template void batch_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,           \
                                       const BatchNormParams&, const T*);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
