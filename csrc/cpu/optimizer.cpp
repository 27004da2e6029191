// Fused optimizer updates (see fastnn/optimizer.h). Each element's arithmetic is independent of the others,
// so the results do not depend on the thread count. The formulas follow keras/src/optimizers/*.py, computed
// in the variable's dtype like Keras does. optimizer_update and sum_squares dispatch each chunk to the kernel
// set of the active SIMD path (elementwise_kernels.h); the scalar loops here are their reference twins, and
// Ftrl (std::pow), Lamb and Adafactor (per-variable norms over a fixed partition) run as scalar code.
#include "fastnn/optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "elementwise_kernels.h"
#include "fastnn/parallel.h"
#include "fastnn/runtime.h"

namespace fastnn::cpu {
namespace {

// Updates are memory-bound: only large tensors are worth splitting across threads.
constexpr int64_t kGrain = int64_t{1} << 17;

template <typename T>
inline T prep_grad(T g, T scale, T clip) {
  g *= scale;
  if (clip > T(0)) g = std::min(std::max(g, -clip), clip);
  return g;
}

}  // namespace

namespace detail {

template <>
const OptimizerKernelSet<float>& active_optimizer_kernels<float>() {
  static const OptimizerKernelSet<float> generic = generic_optimizer_f32();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
  if (active_simd_path() == SimdPath::kAvx2) {  // built only when active: that file's code needs the ISA
    static const OptimizerKernelSet<float> avx2 = avx2_optimizer_f32();
    return avx2;
  }
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
  if (active_simd_path() == SimdPath::kAvx512) {  // built only when active: that file's code needs the ISA
    static const OptimizerKernelSet<float> avx512 = avx512_optimizer_f32();
    return avx512;
  }
#endif
  return generic;
}

template <>
const OptimizerKernelSet<double>& active_optimizer_kernels<double>() {
  static const OptimizerKernelSet<double> generic = generic_optimizer_f64();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
  if (active_simd_path() == SimdPath::kAvx2) {  // built only when active: that file's code needs the ISA
    static const OptimizerKernelSet<double> avx2 = avx2_optimizer_f64();
    return avx2;
  }
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
  if (active_simd_path() == SimdPath::kAvx512) {  // built only when active: that file's code needs the ISA
    static const OptimizerKernelSet<double> avx512 = avx512_optimizer_f64();
    return avx512;
  }
#endif
  return generic;
}

}  // namespace detail

template <typename T>
void optimizer_update(T* var, T* s0, T* s1, T* s2, const T* grad, int64_t n, double grad_scale,
                      const OptimizerParams& p) {
  if (p.kind == OptKind::kLamb || p.kind == OptKind::kAdafactor || p.kind == OptKind::kFtrl) {
    optimizer_update_ref(var, s0, s1, s2, grad, n, grad_scale, p);
    return;
  }
  DenormalsAreZero ftz;
  const auto update = detail::active_optimizer_kernels<T>().update;
  auto at = [](T* a, int64_t lo) { return a ? a + lo : nullptr; };
  parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
    update(var + lo, at(s0, lo), at(s1, lo), at(s2, lo), grad + lo, hi - lo, grad_scale, p);
  });
}

template <typename T>
void optimizer_update_ref(T* var, T* s0, T* s1, T* s2, const T* grad, int64_t n, double grad_scale,
                          const OptimizerParams& p) {
  DenormalsAreZero ftz;  // one rule for every kernel entry: the serial parts run flushed too
  if (p.kind == OptKind::kLamb) {  // per-variable norms: its own two-pass kernel
    lamb_update(var, s0, s1, grad, n, grad_scale, p);
    return;
  }
  if (p.kind == OptKind::kAdafactor)  // needs the variable's shape
    throw std::invalid_argument("optimizer_update: adafactor runs through adafactor_update (it needs the shape)");
  const T scale = static_cast<T>(grad_scale);
  const T clip = static_cast<T>(p.clipvalue);
  const T wd = static_cast<T>(p.weight_decay);
  const T lr = static_cast<T>(p.lr);
  const T eps = static_cast<T>(p.epsilon);
  const T b1 = static_cast<T>(p.beta1), b2 = static_cast<T>(p.beta2);
  const T one = T(1);
  parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T g = prep_grad(grad[i], scale, clip);
      T w = var[i];
      if (wd != T(0)) w -= w * wd * lr;  // Keras's order: (var * weight_decay) * lr
      switch (p.kind) {
        case OptKind::kSGD: {
          const T mom = static_cast<T>(p.momentum);
          if (s0) {  // m = momentum * m - lr * g
            const T m = -g * lr + s0[i] * mom;
            s0[i] = m;
            w += p.nesterov ? (-g * lr + m * mom) : m;
          } else {
            w -= g * lr;
          }
          break;
        }
        case OptKind::kAdam: {
          const T m = s0[i] + (g - s0[i]) * (one - b1);
          T v = s1[i] + (g * g - s1[i]) * (one - b2);
          s0[i] = m;
          s1[i] = v;
          if (p.amsgrad) {
            v = std::max(s2[i], v);
            s2[i] = v;
          }
          w -= (m * static_cast<T>(p.alpha)) / (std::sqrt(v) + eps);
          break;
        }
        case OptKind::kAdagrad: {
          const T acc = s0[i] + g * g;
          s0[i] = acc;
          w -= (lr * g) / std::sqrt(acc + eps);
          break;
        }
        case OptKind::kRMSprop: {
          const T rho = static_cast<T>(p.rho);
          const T vel = rho * s0[i] + (one - rho) * g * g;
          s0[i] = vel;
          T denom = vel + eps;
          if (p.centered) {
            const T avg = rho * s2[i] + (one - rho) * g;
            s2[i] = avg;
            denom = vel - avg * avg + eps;
          }
          const T inc = lr * g / std::sqrt(denom);
          if (s1) {
            const T m = static_cast<T>(p.momentum) * s1[i] + inc;
            s1[i] = m;
            w -= m;
          } else {
            w -= inc;
          }
          break;
        }
        case OptKind::kAdadelta: {
          const T rho = static_cast<T>(p.rho);
          const T ag = rho * s0[i] + (one - rho) * g * g;
          s0[i] = ag;
          const T delta = -std::sqrt(s1[i] + eps) * g / std::sqrt(ag + eps);
          s1[i] = rho * s1[i] + (one - rho) * delta * delta;
          w += lr * delta;
          break;
        }
        case OptKind::kAdamax: {
          const T m = s0[i] + (g - s0[i]) * (one - b1);
          const T u = std::max(b2 * s1[i], std::abs(g));
          s0[i] = m;
          s1[i] = u;
          w -= static_cast<T>(p.alpha) * m / (u + eps);
          break;
        }
        case OptKind::kNadam: {
          const T m = s0[i] + (g - s0[i]) * (one - b1);
          const T v = s1[i] + (g * g - s1[i]) * (one - b2);
          s0[i] = m;
          s1[i] = v;
          const T m_hat = static_cast<T>(p.u_t1) * m / (one - static_cast<T>(p.u_prod_t1)) +
                          (one - static_cast<T>(p.u_t)) * g / (one - static_cast<T>(p.u_prod_t));
          const T v_hat = v / (one - static_cast<T>(p.beta2_power));
          w -= (m_hat * lr) / (std::sqrt(v_hat) + eps);
          break;
        }
        case OptKind::kLion: {  // var -= lr * sign(b1 m + (1 - b1) g); m = b2 m + (1 - b2) g
          const T c = s0[i] * b1 + g * (one - b1);
          w -= lr * static_cast<T>((c > T(0)) - (c < T(0)));
          s0[i] = s0[i] * b2 + g * (one - b2);
          break;
        }
        case OptKind::kFtrl: {  // keras/src/optimizers/ftrl.py, term by term
          const T neg_power = static_cast<T>(-p.lr_power);
          const T l1 = static_cast<T>(p.l1);
          const T l2_reg = static_cast<T>(p.l2) + static_cast<T>(p.ftrl_beta) / (T(2) * lr);
          const T grad_to_use = g + static_cast<T>(2.0 * p.l2_shrinkage) * w;
          const T accum = s0[i];
          const T new_accum = accum + g * g;
          const T new_accum_pow = std::pow(new_accum, neg_power);
          const T linear = s1[i] + (grad_to_use - (new_accum_pow - std::pow(accum, neg_power)) / lr * w);
          const T quadratic = new_accum_pow / lr + T(2) * l2_reg;
          const T linear_clipped = std::min(std::max(linear, -l1), l1);
          s1[i] = linear;
          s0[i] = new_accum;
          w = (linear_clipped - linear) / quadratic;
          break;
        }
        case OptKind::kLamb:  // handled by lamb_update above
        case OptKind::kAdafactor:  // rejected above
          break;
      }
      var[i] = w;
    }
  });
}

// Lamb needs two norms per variable before it can move any element: pass 1 applies weight decay, updates m and
// v and sums var^2 and u^2 (u = m_hat / (sqrt(v_hat) + epsilon)) per fixed block of kBlock elements; pass 2
// recomputes u from the stored m and v (the same operations on the same values: the same bits) and applies
// var -= ratio * lr * u. The block partial sums are added in block order, so the result does not depend on the
// thread count.
template <typename T>
void lamb_update(T* var, T* m, T* v, const T* grad, int64_t n, double grad_scale, const OptimizerParams& p) {
  DenormalsAreZero ftz;
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const T scale = static_cast<T>(grad_scale);
  const T clip = static_cast<T>(p.clipvalue);
  const T wd = static_cast<T>(p.weight_decay);
  const T lr = static_cast<T>(p.lr);
  const T eps = static_cast<T>(p.epsilon);
  const T one = T(1);
  const T b1 = static_cast<T>(p.beta1), b2 = static_cast<T>(p.beta2);
  const T bias1 = one - static_cast<T>(p.beta1_power), bias2 = one - static_cast<T>(p.beta2_power);
  auto step_of = [&](int64_t i) { return (m[i] / bias1) / (std::sqrt(v[i] / bias2) + eps); };
  std::vector<double> w_sq(static_cast<size_t>(std::max<int64_t>(blocks, 1)), 0.0);
  std::vector<double> u_sq(w_sq.size(), 0.0);
  parallel_for(0, blocks, std::max<int64_t>(kGrain / kBlock, 1), [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      double ws = 0.0, us = 0.0;
      const int64_t end = std::min(n, (b + 1) * kBlock);
      for (int64_t i = b * kBlock; i < end; ++i) {
        const T g = prep_grad(grad[i], scale, clip);
        T w = var[i];
        if (wd != T(0)) w -= w * wd * lr;
        var[i] = w;
        m[i] += (g - m[i]) * (one - b1);
        v[i] += (g * g - v[i]) * (one - b2);
        const T u = step_of(i);
        ws += static_cast<double>(w) * static_cast<double>(w);
        us += static_cast<double>(u) * static_cast<double>(u);
      }
      w_sq[static_cast<size_t>(b)] = ws;
      u_sq[static_cast<size_t>(b)] = us;
    }
  });
  double ws = 0.0, us = 0.0;
  for (int64_t b = 0; b < blocks; ++b) {
    ws += w_sq[static_cast<size_t>(b)];
    us += u_sq[static_cast<size_t>(b)];
  }
  const T w_norm = static_cast<T>(std::sqrt(ws)), u_norm = static_cast<T>(std::sqrt(us));
  const T ratio = (w_norm > T(0) && u_norm > T(0)) ? w_norm / u_norm : one;  // Keras: 1 when either norm is 0
  const T step = ratio * lr;
  parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) var[i] -= step * step_of(i);
  });
}

// Adafactor. Every reduction (the sums of var^2 and u^2, the row and column means) is accumulated in double over
// a fixed partition (rows, or blocks of columns) and combined in a fixed order, so the result does not depend on
// the thread count. Each pass recomputes the prepared gradient from grad instead of storing it.
template <typename T>
void adafactor_update(T* var, T* r, T* c, T* v, const T* grad, int64_t batch, int64_t rows, int64_t cols,
                      bool factored, double grad_scale, const OptimizerParams& p) {
  DenormalsAreZero ftz;
  const int64_t n = batch * rows * cols;
  if (n == 0) return;
  const T scale = static_cast<T>(grad_scale);
  const T clip = static_cast<T>(p.clipvalue);
  const T wd = static_cast<T>(p.weight_decay);
  const T lr = static_cast<T>(p.lr);
  const T one = T(1);
  const T local_step = static_cast<T>(p.local_step);
  const T rho_t = std::min(lr, one / std::sqrt(local_step));
  const T eps1 = static_cast<T>(p.epsilon_1);
  const T beta_2_t = one - static_cast<T>(std::pow(local_step, static_cast<T>(p.beta_2_decay)));
  // The variable as nrows contiguous spans: its rows of cols elements (factored), or fixed blocks (not factored).
  const int64_t span = factored ? cols : int64_t{4096};
  const int64_t nrows = factored ? batch * rows : (n + span - 1) / span;
  const int64_t row_grain = std::max<int64_t>(kGrain / span, 1);
  auto row_end = [&](int64_t row) { return std::min(n, (row + 1) * span); };
  std::vector<double> w_sq(static_cast<size_t>(nrows), 0.0), u_sq(static_cast<size_t>(nrows), 0.0);
  auto regulated = [&](int64_t k) {
    const T g = prep_grad(grad[k], scale, clip);
    return g * g + eps1;
  };
  // Pass 1, per row: weight decay and sum(var^2); the row moment r (factored) or v itself (not factored).
  parallel_for(0, nrows, row_grain, [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      double ws = 0.0, gs = 0.0;
      for (int64_t k = row * span; k < row_end(row); ++k) {
        T w = var[k];
        if (wd != T(0)) w -= w * wd * lr;
        var[k] = w;
        ws += static_cast<double>(w) * static_cast<double>(w);
        if (factored) gs += static_cast<double>(regulated(k));
        else v[k] = beta_2_t * v[k] + (one - beta_2_t) * regulated(k);
      }
      w_sq[static_cast<size_t>(row)] = ws;
      if (factored) r[row] = beta_2_t * r[row] + (one - beta_2_t) * static_cast<T>(gs / static_cast<double>(cols));
    }
  });
  if (factored) {
    // Pass 2, per (matrix, block of columns): the column moment c = mean over the rows of g^2 + epsilon_1.
    constexpr int64_t kColBlock = 256;
    const int64_t col_blocks = (cols + kColBlock - 1) / kColBlock;
    parallel_for(0, batch * col_blocks, std::max<int64_t>(kGrain / (kColBlock * std::max<int64_t>(rows, 1)), 1),
                 [&](int64_t lo, int64_t hi) {
      std::vector<double> sums(static_cast<size_t>(kColBlock));
      for (int64_t task = lo; task < hi; ++task) {
        const int64_t b = task / col_blocks, j0 = (task % col_blocks) * kColBlock;
        const int64_t j1 = std::min(cols, j0 + kColBlock);
        std::fill(sums.begin(), sums.end(), 0.0);
        for (int64_t i = 0; i < rows; ++i) {
          const int64_t base = (b * rows + i) * cols;
          for (int64_t j = j0; j < j1; ++j) sums[static_cast<size_t>(j - j0)] += static_cast<double>(regulated(base + j));
        }
        for (int64_t j = j0; j < j1; ++j)
          c[b * cols + j] = beta_2_t * c[b * cols + j] +
                            (one - beta_2_t) * static_cast<T>(sums[static_cast<size_t>(j - j0)] / static_cast<double>(rows));
      }
    });
    // Pass 3, per row: v = (r / mean(r)) (outer) c, and sum(u^2) with u = g / sqrt(v).
    std::vector<T> r_mean(static_cast<size_t>(batch));
    for (int64_t b = 0; b < batch; ++b) {
      double sum = 0.0;
      for (int64_t i = 0; i < rows; ++i) sum += static_cast<double>(r[b * rows + i]);
      r_mean[static_cast<size_t>(b)] = static_cast<T>(sum / static_cast<double>(rows));
    }
    parallel_for(0, nrows, row_grain, [&](int64_t lo, int64_t hi) {
      for (int64_t row = lo; row < hi; ++row) {
        const int64_t b = row / rows;
        const T row_factor = r[row] / r_mean[static_cast<size_t>(b)];
        double us = 0.0;
        for (int64_t j = 0; j < cols; ++j) {
          const int64_t k = row * cols + j;
          v[k] = row_factor * c[b * cols + j];
          const T u = prep_grad(grad[k], scale, clip) / std::sqrt(v[k]);
          us += static_cast<double>(u) * static_cast<double>(u);
        }
        u_sq[static_cast<size_t>(row)] = us;
      }
    });
  } else {
    parallel_for(0, nrows, row_grain, [&](int64_t lo, int64_t hi) {
      for (int64_t row = lo; row < hi; ++row) {
        double us = 0.0;
        for (int64_t k = row * span; k < row_end(row); ++k) {
          const T u = prep_grad(grad[k], scale, clip) / std::sqrt(v[k]);
          us += static_cast<double>(u) * static_cast<double>(u);
        }
        u_sq[static_cast<size_t>(row)] = us;
      }
    });
  }
  double ws = 0.0, us = 0.0;
  for (int64_t row = 0; row < nrows; ++row) {
    ws += w_sq[static_cast<size_t>(row)];
    us += u_sq[static_cast<size_t>(row)];
  }
  const T rms_w = static_cast<T>(std::sqrt(ws / static_cast<double>(n)));
  const T rms_u = static_cast<T>(std::sqrt(us / static_cast<double>(n)));
  const T alpha_t = std::max(static_cast<T>(p.epsilon_2), rms_w) * rho_t;
  const T denom = std::max(one, rms_u / static_cast<T>(p.clip_threshold));
  // Pass 4: var -= alpha_t * (u / max(1, rms(u) / clip_threshold)).
  parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k) var[k] -= alpha_t * ((prep_grad(grad[k], scale, clip) / std::sqrt(v[k])) / denom);
  });
}

template <typename T>
double sum_squares(const T* x, int64_t n) {
  DenormalsAreZero ftz;  // the final sum of the partials runs on the caller, outside parallel_for
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const auto block_sum = detail::active_optimizer_kernels<T>().sum_squares;
  std::vector<double> partial(static_cast<size_t>(std::max<int64_t>(blocks, 1)), 0.0);
  parallel_for(0, blocks, 4, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b)
      partial[static_cast<size_t>(b)] = block_sum(x + b * kBlock, std::min(n, (b + 1) * kBlock) - b * kBlock);
  });
  double total = 0.0;
  for (int64_t b = 0; b < blocks; ++b) total += partial[static_cast<size_t>(b)];
  return total;
}

template <typename T>
double sum_squares_ref(const T* x, int64_t n) {
  DenormalsAreZero ftz;
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return total;
}

template <typename T>
void adam_rows_update(T* var, T* m, T* v, T* vhat, const T* g, const T* sq, int64_t n, T b1c, T b2c, T alpha, T eps) {
  DenormalsAreZero ftz;
  parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t j = lo; j < hi; ++j) {
      const T mj = m[j] + (g[j] - m[j]) * b1c;
      T vj = v[j] + (sq[j] - v[j]) * b2c;
      m[j] = mj;
      v[j] = vj;
      if (vhat != nullptr) {
        // np.maximum: NaN if either is NaN
        const T h = vhat[j];
        vj = (h != h || vj != vj) ? (h != h ? h : vj) : (h > vj ? h : vj);
        vhat[j] = vj;
      }
      var[j] = var[j] - (mj * alpha) / (std::sqrt(vj) + eps);
    }
  });
}

template void adam_rows_update<float>(float*, float*, float*, float*, const float*, const float*, int64_t, float, float,
                                      float, float);
template void adam_rows_update<double>(double*, double*, double*, double*, const double*, const double*, int64_t, double,
                                       double, double, double);

template void optimizer_update<float>(float*, float*, float*, float*, const float*, int64_t, double,
                                      const OptimizerParams&);
template void optimizer_update<double>(double*, double*, double*, double*, const double*, int64_t, double,
                                       const OptimizerParams&);
template void optimizer_update_ref<float>(float*, float*, float*, float*, const float*, int64_t, double,
                                          const OptimizerParams&);
template void optimizer_update_ref<double>(double*, double*, double*, double*, const double*, int64_t, double,
                                           const OptimizerParams&);
template void lamb_update<float>(float*, float*, float*, const float*, int64_t, double, const OptimizerParams&);
template void lamb_update<double>(double*, double*, double*, const double*, int64_t, double, const OptimizerParams&);
template void adafactor_update<float>(float*, float*, float*, float*, const float*, int64_t, int64_t, int64_t, bool,
                                      double, const OptimizerParams&);
template void adafactor_update<double>(double*, double*, double*, double*, const double*, int64_t, int64_t, int64_t,
                                       bool, double, const OptimizerParams&);
template double sum_squares<float>(const float*, int64_t);
template double sum_squares<double>(const double*, int64_t);
template double sum_squares_ref<float>(const float*, int64_t);
template double sum_squares_ref<double>(const double*, int64_t);

}  // namespace fastnn::cpu
