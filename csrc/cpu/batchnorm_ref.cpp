// The reference twins of the batch-normalization kernels (fastnn/batchnorm.h): one channel at a time, every sum a
// plain loop over the rows in double, the textbook formulas. Single-threaded; the fast kernels must agree with them
// to rounding.
#include <cmath>
#include <cstdint>

#include "fastnn/batchnorm.h"
#include "fastnn/parallel.h"

namespace fastnn::cpu {
namespace {

// The elementwise ReLU's rule on a rounded value (NaN and -0 pass), when relu.
template <typename T>
T relu_if(T v, bool relu) { return relu && v < T(0) ? T(0) : v; }

// dy as the ReLU backward passes it (relu_y > 0 ? dy : 0), or dy without relu_y.
template <typename T>
double masked(const T* dy, const T* relu_y, int64_t i) {
  return static_cast<double>(relu_y == nullptr || relu_y[i] > T(0) ? dy[i] : T(0));
}

}  // namespace

template <typename T>
void batch_norm_train_forward_ref(T* y, T* mean, T* var, T* rstd, const T* x, const T* gamma, const T* beta,
                                  const BatchNormParams& p) {
  DenormalsAreZero ftz;
  for (int64_t j = 0; j < p.c; ++j) {
    double s = 0;
    for (int64_t r = 0; r < p.m; ++r) s += static_cast<double>(x[r * p.c + j]);
    const double mu = s / static_cast<double>(p.m);
    double q = 0;
    for (int64_t r = 0; r < p.m; ++r) {
      const double d = static_cast<double>(x[r * p.c + j]) - mu;
      q += d * d;
    }
    const double v = q / static_cast<double>(p.m);
    const double rs = 1.0 / std::sqrt(v + p.epsilon);
    const double g = gamma ? static_cast<double>(gamma[j]) : 1.0, b = beta ? static_cast<double>(beta[j]) : 0.0;
    for (int64_t r = 0; r < p.m; ++r)
      y[r * p.c + j] = relu_if(static_cast<T>(g * (static_cast<double>(x[r * p.c + j]) - mu) * rs + b), p.relu);
    mean[j] = static_cast<T>(mu);
    var[j] = static_cast<T>(v);
    rstd[j] = static_cast<T>(rs);
  }
}

template <typename T>
void batch_norm_inference_forward_ref(T* y, const T* x, const T* mean, const T* var, const T* gamma, const T* beta,
                                      const BatchNormParams& p) {
  DenormalsAreZero ftz;
  for (int64_t j = 0; j < p.c; ++j) {
    const double g = gamma ? static_cast<double>(gamma[j]) : 1.0, b = beta ? static_cast<double>(beta[j]) : 0.0;
    const double sd = std::sqrt(static_cast<double>(var[j]) + p.epsilon);
    for (int64_t r = 0; r < p.m; ++r)
      y[r * p.c + j] = relu_if(
          static_cast<T>(g * (static_cast<double>(x[r * p.c + j]) - static_cast<double>(mean[j])) / sd + b), p.relu);
  }
}

template <typename T>
void batch_norm_backward_ref(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean, const T* rstd,
                             const T* gamma, const BatchNormParams& p, const T* relu_y) {
  DenormalsAreZero ftz;
  const double m = static_cast<double>(p.m);
  for (int64_t j = 0; j < p.c; ++j) {
    const double mu = static_cast<double>(mean[j]), rs = static_cast<double>(rstd[j]);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t r = 0; r < p.m; ++r) {
      const double g = masked(dy, relu_y, r * p.c + j);
      sum_dy += g;
      sum_dy_xhat += g * (static_cast<double>(x[r * p.c + j]) - mu) * rs;
    }
    dbeta[j] = static_cast<T>(static_cast<double>(dbeta[j]) + sum_dy);
    dgamma[j] = static_cast<T>(static_cast<double>(dgamma[j]) + sum_dy_xhat);
    const double gm = gamma ? static_cast<double>(gamma[j]) : 1.0;
    for (int64_t r = 0; r < p.m; ++r) {
      const double xhat = (static_cast<double>(x[r * p.c + j]) - mu) * rs;
      dx[r * p.c + j] =
          static_cast<T>(gm * rs * (masked(dy, relu_y, r * p.c + j) - sum_dy / m - xhat * sum_dy_xhat / m));
    }
  }
}

#define FASTNN_INSTANTIATE(T)                                                                                   \
  template void batch_norm_train_forward_ref<T>(T*, T*, T*, T*, const T*, const T*, const T*,                  \
                                                const BatchNormParams&);                                       \
  template void batch_norm_inference_forward_ref<T>(T*, const T*, const T*, const T*, const T*, const T*,      \
                                                    const BatchNormParams&);                                   \
  template void batch_norm_backward_ref<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,       \
                                           const BatchNormParams&, const T*);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
