// Batch normalization over the channel axis of an (M, C) view (see fastnn/batchnorm.h). The channel axis is
// contiguous, so every inner loop runs over C with unit stride; the column sums over M go through fixed row blocks
// summed in parallel and combined in block order, so no result depends on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "fastnn/batchnorm.h"
#include "fastnn/parallel.h"

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

// out[s * C + j] = sum over rows r of the contributions add_row(r, acc) makes to acc[s * C + j] (s < sums), in
// double: each block of rows summed in row order, the block sums added in block order.
template <typename AddRow>
void column_sums(double* out, int64_t m, int64_t c, int sums, const AddRow& add_row) {
  const int64_t width = sums * c;
  const RowBlocks blocks = row_blocks(m, c);
  std::vector<double> partial(static_cast<size_t>(blocks.count * width));
  parallel_for(0, blocks.count, 1, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) {
      double* acc = partial.data() + blk * width;
      std::fill(acc, acc + width, 0.0);
      const int64_t r1 = std::min(m, (blk + 1) * blocks.rows);
      for (int64_t r = blk * blocks.rows; r < r1; ++r) add_row(r, acc);
    }
  });
  std::fill(out, out + width, 0.0);
  for (int64_t blk = 0; blk < blocks.count; ++blk) {
    const double* acc = partial.data() + blk * width;
    for (int64_t j = 0; j < width; ++j) out[j] += acc[j];
  }
}

// y[r, j] = (x[r, j] - shift[j]) * scale[j] + offset[j] in double, rounded once; rows split across threads.
template <typename T>
void normalize(T* y, const T* x, const double* shift, const double* scale, const double* offset, int64_t m,
               int64_t c) {
  parallel_for(0, m, std::max<int64_t>(1, kBlockElements / std::max<int64_t>(c, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* FASTNN_RESTRICT xr = x + r * c;
      T* FASTNN_RESTRICT yr = y + r * c;
      for (int64_t j = 0; j < c; ++j)
        yr[j] = static_cast<T>((static_cast<double>(xr[j]) - shift[j]) * scale[j] + offset[j]);
    }
  });
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
  std::vector<double> mu(c), sq(c), scale(c), offset(c);
  column_sums(mu.data(), m, c, 1, [&](int64_t r, double* FASTNN_RESTRICT acc) {
    const T* FASTNN_RESTRICT xr = x + r * c;
    for (int64_t j = 0; j < c; ++j) acc[j] += static_cast<double>(xr[j]);
  });
  for (int64_t j = 0; j < c; ++j) mu[j] /= static_cast<double>(m);
  const double* mu_p = mu.data();
  // Second pass: deviations from the double mean, so a large offset costs no precision.
  column_sums(sq.data(), m, c, 1, [&](int64_t r, double* FASTNN_RESTRICT acc) {
    const T* FASTNN_RESTRICT xr = x + r * c;
    for (int64_t j = 0; j < c; ++j) {
      const double d = static_cast<double>(xr[j]) - mu_p[j];
      acc[j] += d * d;
    }
  });
  for (int64_t j = 0; j < c; ++j) {
    const double v = sq[j] / static_cast<double>(m);
    const double rs = 1.0 / std::sqrt(v + p.epsilon);
    mean[j] = static_cast<T>(mu[j]);
    var[j] = static_cast<T>(v);
    rstd[j] = static_cast<T>(rs);
    scale[j] = param(gamma, j, 1.0) * rs;
    offset[j] = param(beta, j, 0.0);
  }
  normalize(y, x, mu.data(), scale.data(), offset.data(), m, c);
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
  normalize(y, x, shift.data(), scale.data(), offset.data(), p.m, c);
}

template <typename T>
void batch_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean, const T* rstd,
                         const T* gamma, const BatchNormParams& p) {
  DenormalsAreZero ftz;
  const int64_t m = p.m, c = p.c;
  if (c == 0) return;
  std::vector<double> mu(c), sums(2 * c);
  for (int64_t j = 0; j < c; ++j) mu[j] = static_cast<double>(mean[j]);
  const double* mu_p = mu.data();
  // sums[j] = sum dy, sums[c + j] = sum dy * (x - mean): both in one pass.
  column_sums(sums.data(), m, c, 2, [&](int64_t r, double* FASTNN_RESTRICT acc) {
    const T* FASTNN_RESTRICT xr = x + r * c;
    const T* FASTNN_RESTRICT gr = dy + r * c;
    for (int64_t j = 0; j < c; ++j) {
      const double g = static_cast<double>(gr[j]);
      acc[j] += g;
      acc[c + j] += g * (static_cast<double>(xr[j]) - mu_p[j]);
    }
  });
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
  parallel_for(0, m, std::max<int64_t>(1, kBlockElements / c), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* FASTNN_RESTRICT xr = x + r * c;
      const T* FASTNN_RESTRICT gr = dy + r * c;
      T* FASTNN_RESTRICT dxr = dx + r * c;
      for (int64_t j = 0; j < c; ++j)
        dxr[j] = static_cast<T>(
            a_p[j] * (static_cast<double>(gr[j]) - k1_p[j] - (static_cast<double>(xr[j]) - mu_p[j]) * k2_p[j]));
    }
  });
}

#define FASTNN_INSTANTIATE(T)                                                                                   \
  template void batch_norm_train_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*,                      \
                                            const BatchNormParams&);                                           \
  template void batch_norm_inference_forward<T>(T*, const T*, const T*, const T*, const T*, const T*,          \
                                                const BatchNormParams&);                                       \
  template void batch_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,           \
                                       const BatchNormParams&);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
