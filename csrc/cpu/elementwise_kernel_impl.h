// The elementwise and optimizer kernels of one ISA (see elementwise_kernels.h), written once over W-lane vectors
// and compiled per ISA. Include after the translation unit has chosen its flags; everything here has internal
// linkage. The formulas are the scalar ones of the reference twins (elementwise.cpp, optimizer.cpp), operation by
// operation; only exp / expm1 / log1p / tanh / sigmoid are this library's own (simd/vec_math.h) instead of libm.
#pragma once

#include <cstdint>

#include "elementwise_kernels.h"
#include "simd/vec_math.h"

namespace fastnn::cpu::detail {
namespace {

constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSqrt2OverPi = 0.79788456080286535587989211986876;
constexpr double kGeluCoeff = 0.044715;

template <typename T, int W>
struct Kernels {
  using M = vmath::Vec<T, W>;
  using V = typename M::V;
  using I = typename M::I;
  using Sum = vmath::Sum16<T, W>;

  static FASTNN_ALWAYS_INLINE V c(double x) { return M::splat(static_cast<T>(x)); }

  // ---- activations -------------------------------------------------------------------------------------
  // The comparisons are written so that NaN falls through to an expression that yields NaN.
  static FASTNN_ALWAYS_INLINE V relu6(V x) {
    return M::select(x < c(0), c(0), M::select(x > c(6), c(6), x));
  }

  template <ActKind K>
  static FASTNN_ALWAYS_INLINE V act_fwd(V x, T alpha) {
    if constexpr (K == ActKind::kRelu) return M::select(x < c(0), c(0), x);
    else if constexpr (K == ActKind::kRelu6) return relu6(x);
    else if constexpr (K == ActKind::kSigmoid) return M::sigmoid(x);
    else if constexpr (K == ActKind::kTanh) return M::tanh(x);
    else if constexpr (K == ActKind::kElu) return M::select(x > c(0), x, M::splat(alpha) * M::expm1(x));
    else if constexpr (K == ActKind::kSelu)
      return c(kSeluScale) * M::select(x > c(0), x, c(kSeluAlpha) * M::expm1(x));
    else if constexpr (K == ActKind::kGeluTanh)  // 0.5 x (1 + tanh(u)) = x sigmoid(2u): accurate in the tails
      return x * M::sigmoid(c(2 * kSqrt2OverPi) * (x + c(kGeluCoeff) * x * x * x));
    else if constexpr (K == ActKind::kSilu) return x * M::sigmoid(x);
    else if constexpr (K == ActKind::kLeakyRelu) return M::select(x < c(0), M::splat(alpha) * x, x);
    else if constexpr (K == ActKind::kSoftplus)  // max(x, 0) + log1p(exp(-|x|))
      return M::select(x > c(0), x, c(0)) + M::log1p(M::exp(-M::abs(x)));
    else if constexpr (K == ActKind::kSoftsign) return x / (c(1) + M::abs(x));
    else return relu6(x + c(3)) / c(6);  // kHardSigmoid
  }

  template <ActKind K>
  static FASTNN_ALWAYS_INLINE V act_bwd(V dy, V x, V y, T alpha) {
    if constexpr (K == ActKind::kRelu) return M::select(x > c(0), dy, c(0));
    else if constexpr (K == ActKind::kRelu6) return M::select((x > c(0)) & (x < c(6)), dy, c(0));
    else if constexpr (K == ActKind::kSigmoid) return dy * y * (c(1) - y);
    else if constexpr (K == ActKind::kTanh) return dy * (c(1) - y * y);
    else if constexpr (K == ActKind::kElu) return M::select(x > c(0), dy, dy * (y + M::splat(alpha)));
    else if constexpr (K == ActKind::kSelu)
      return M::select(x >= c(0), dy * c(kSeluScale), dy * (y + c(kSeluScale * kSeluAlpha)));
    else if constexpr (K == ActKind::kGeluTanh) {
      // Beyond |x| = 30 the limit (1 or 0): see the reference twin for why.
      const V x2 = x * x;
      const V s = M::sigmoid(c(2 * kSqrt2OverPi) * (x + c(kGeluCoeff) * x2 * x));
      const V du = c(kSqrt2OverPi) * (c(1) + c(3 * kGeluCoeff) * x2);
      const V inner = dy * (s + c(2) * x * s * (c(1) - s) * du);
      const V tail = M::select(x > c(0), dy, c(0) * dy);
      return M::select(M::abs(x) > c(30), tail, inner);
    } else if constexpr (K == ActKind::kSilu) {
      const V s = M::sigmoid(x);
      return dy * s * (c(1) + x * (c(1) - s));
    } else if constexpr (K == ActKind::kLeakyRelu) return M::select(x > c(0), dy, dy * M::splat(alpha));
    else if constexpr (K == ActKind::kSoftplus) return dy * M::sigmoid(x);
    else if constexpr (K == ActKind::kSoftsign) {
      const V d = c(1) + M::abs(x);
      return dy / (d * d);
    } else return M::select((x > c(-3)) & (x < c(3)), dy / c(6), c(0));  // kHardSigmoid
  }

  template <ActKind K>
  static void fwd_loop(T* y, const T* x, int64_t n, T alpha) {
    int64_t i = 0;
    for (; i + W <= n; i += W) M::store(y + i, act_fwd<K>(M::load(x + i), alpha));
    if (i < n) M::store_first(y + i, act_fwd<K>(M::load_first(x + i, n - i, T(0)), alpha), n - i);
  }

  template <ActKind K>
  static void bwd_loop(T* dx, const T* dy, const T* x, const T* y, int64_t n, T alpha) {
    int64_t i = 0;
    for (; i + W <= n; i += W)
      M::store(dx + i, act_bwd<K>(M::load(dy + i), M::load(x + i), M::load(y + i), alpha));
    if (i < n) {
      const int64_t r = n - i;
      M::store_first(dx + i, act_bwd<K>(M::load_first(dy + i, r, T(0)), M::load_first(x + i, r, T(0)),
                                        M::load_first(y + i, r, T(0)), alpha), r);
    }
  }

  // ---- elementary functions (tests, benchmarks) -----------------------------------------------------------
  template <MathFn F>
  static FASTNN_ALWAYS_INLINE V math_fn(V x) {
    if constexpr (F == MathFn::kExp) return M::exp(x);
    else if constexpr (F == MathFn::kExpm1) return M::expm1(x);
    else if constexpr (F == MathFn::kLog) return M::log(x);
    else if constexpr (F == MathFn::kLog1p) return M::log1p(x);
    else if constexpr (F == MathFn::kTanh) return M::tanh(x);
    else return M::sigmoid(x);
  }
  template <MathFn F>
  static void math_loop(T* y, const T* x, int64_t n) {
    int64_t i = 0;
    for (; i + W <= n; i += W) M::store(y + i, math_fn<F>(M::load(x + i)));
    if (i < n) M::store_first(y + i, math_fn<F>(M::load_first(x + i, n - i, T(1))), n - i);
  }

  // ---- rows ----------------------------------------------------------------------------------------------
  // Max of a row; NaN anywhere makes it NaN (like NumPy's max-shifted reference); -inf for an empty row.
  static FASTNN_ALWAYS_INLINE T row_max(const T* x, int64_t cols) {
    const T inf = static_cast<T>(__builtin_huge_val());
    V m = M::splat(-inf);
    I nan = m != m;
    int64_t j = 0;
    for (; j + W <= cols; j += W) {
      const V v = M::load(x + j);
      m = M::select(v > m, v, m);
      nan |= v != v;
    }
    if (j < cols) {
      const V v = M::load_first(x + j, cols - j, -inf);
      m = M::select(v > m, v, m);
      nan |= v != v;
    }
    return M::any(nan) ? static_cast<T>(__builtin_nan("")) : M::max_lanes(m);
  }

  // sum_j exp(x[j] - m), optionally storing the terms into y.
  static FASTNN_ALWAYS_INLINE T sum_exp_shifted(T* y, const T* x, T m, int64_t cols) {
    Sum sum;
    const V mv = M::splat(m);
    vmath::for_each_vector16<W>(cols, [&](int k, int64_t j, int64_t count) {
      if (count == W) {
        const V e = M::exp(M::load(x + j) - mv);
        if (y) M::store(y + j, e);
        sum.add(k, e);
      } else {
        const V e = M::exp(M::load_first(x + j, count, T(0)) - mv);
        if (y) M::store_first(y + j, e, count);
        sum.add_first(k, e, count);
      }
    });
    return sum.total();
  }

  static T row_lse(const T* x, int64_t cols) {
    const T m = row_max(x, cols);
    const T s = sum_exp_shifted(nullptr, x, m, cols);
    // The vector log on one lane rather than libm's: no call out of the vector code per row (a legacy-SSE libm
    // routine entered with dirty upper vector state runs several times slower), and the same bits on every call.
    return m + M::log(M::splat(s))[0];
  }

  // sum_j a[j] * b[j] (b == nullptr: sum_j a[j]).
  static FASTNN_ALWAYS_INLINE T row_dot(const T* a, const T* b, int64_t cols) {
    Sum sum;
    vmath::for_each_vector16<W>(cols, [&](int k, int64_t j, int64_t count) {
      if (count == W) sum.add(k, b ? M::load(a + j) * M::load(b + j) : M::load(a + j));
      else {
        const V av = M::load_first(a + j, count, T(0));
        sum.add_first(k, b ? av * M::load_first(b + j, count, T(0)) : av, count);
      }
    });
    return sum.total();
  }

  // y[j] = f(j-th vectors...) over a row, full vectors then one padded tail.
  template <typename F>
  static FASTNN_ALWAYS_INLINE void map_row(T* y, int64_t cols, const F& f) {
    int64_t j = 0;
    for (; j + W <= cols; j += W) M::store(y + j, f(j, int64_t{W}));
    if (j < cols) M::store_first(y + j, f(j, cols - j), cols - j);
  }
  static FASTNN_ALWAYS_INLINE V ld(const T* p, int64_t count) { return count == W ? M::load(p) : M::load_first(p, count, T(0)); }

  static void softmax_forward(T* y, const T* x, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      const T m = row_max(xr, cols);
      const T s = sum_exp_shifted(yr, xr, m, cols);
      const V inv = M::splat(T(1) / s);
      map_row(yr, cols, [&](int64_t j, int64_t n) { return ld(yr + j, n) * inv; });
    }
  }

  static void softmax_backward(T* dx, const T* dy, const T* y, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
      const T* dyr = dy + r * cols;
      const T* yr = y + r * cols;
      const V dot = M::splat(row_dot(dyr, yr, cols));
      map_row(dx + r * cols, cols, [&](int64_t j, int64_t n) { return ld(yr + j, n) * (ld(dyr + j, n) - dot); });
    }
  }

  static void log_softmax_forward(T* y, const T* x, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = x + r * cols;
      const V shift = M::splat(row_lse(xr, cols));
      map_row(y + r * cols, cols, [&](int64_t j, int64_t n) { return ld(xr + j, n) - shift; });
    }
  }

  static void log_softmax_backward(T* dx, const T* dy, const T* y, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
      const T* dyr = dy + r * cols;
      const T* yr = y + r * cols;
      const V s = M::splat(row_dot(dyr, nullptr, cols));
      map_row(dx + r * cols, cols, [&](int64_t j, int64_t n) { return ld(dyr + j, n) - M::exp(ld(yr + j, n)) * s; });
    }
  }

  static void scaled_softmax_row(T* d, const T* x, T g, T lse, int64_t cols) {
    const V gv = M::splat(g), lv = M::splat(lse);
    map_row(d, cols, [&](int64_t j, int64_t n) { return gv * M::exp(ld(x + j, n) - lv); });
  }

  static T dense_xent_row(const T* x, const T* t, T lse, int64_t cols) {
    Sum sum;
    const V lv = M::splat(lse);
    vmath::for_each_vector16<W>(cols, [&](int k, int64_t j, int64_t count) {
      const V term = ld(t + j, count) * (lv - ld(x + j, count));
      if (count == W) sum.add(k, term);
      else sum.add_first(k, term, count);
    });
    return sum.total();
  }

  static void dense_xent_backward_row(T* d, const T* x, const T* t, T g, T lse, int64_t cols) {
    const V tsum = M::splat(row_dot(t, nullptr, cols));
    const V gv = M::splat(g), lv = M::splat(lse);
    map_row(d, cols, [&](int64_t j, int64_t n) {
      return gv * (M::exp(ld(x + j, n) - lv) * tsum - ld(t + j, n));
    });
  }

  static void bias_add_forward(T* y, const T* x, const T* b, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = x + r * cols;
      map_row(y + r * cols, cols, [&](int64_t j, int64_t n) { return ld(xr + j, n) + ld(b + j, n); });
    }
  }

  static void column_sums(T* acc, const T* dy, int64_t rows, int64_t cols) {
    // Columns in strips of 4 vectors kept in registers over all the rows: each column still adds its rows in
    // order, so a column's sum is the serial sum whatever the width.
    constexpr int64_t kStrip = 4 * W;
    int64_t j = 0;
    for (; j + kStrip <= cols; j += kStrip) {
      V s0 = M::load(acc + j), s1 = M::load(acc + j + W), s2 = M::load(acc + j + 2 * W), s3 = M::load(acc + j + 3 * W);
      for (int64_t r = 0; r < rows; ++r) {
        const T* d = dy + r * cols + j;
        s0 = s0 + M::load(d);
        s1 = s1 + M::load(d + W);
        s2 = s2 + M::load(d + 2 * W);
        s3 = s3 + M::load(d + 3 * W);
      }
      M::store(acc + j, s0);
      M::store(acc + j + W, s1);
      M::store(acc + j + 2 * W, s2);
      M::store(acc + j + 3 * W, s3);
    }
    for (; j < cols; j += W) {
      const int64_t n = cols - j < W ? cols - j : W;
      V s = ld(acc + j, n);
      for (int64_t r = 0; r < rows; ++r) s = s + ld(dy + r * cols + j, n);
      if (n == W) M::store(acc + j, s);
      else M::store_first(acc + j, s, n);
    }
  }

  // ---- optimizers ----------------------------------------------------------------------------------------
  // One vector of elements: the arithmetic of optimizer_update_ref's loop body, operation for operation.
  struct OptConsts {
    V scale, clip, neg_clip, wd, lr, eps, b1c, b2c, mom, alpha, rho, rhoc, one;
    V u_t1, u_prod_t1c, u_tc, u_prod_tc, beta2_powerc, b1, b2;
    bool clipping, decay;
  };

  static FASTNN_ALWAYS_INLINE void opt_vector(OptKind kind, const OptimizerParams& p, const OptConsts& k, V* var, V* s0,
                                              V* s1, V* s2, V gin, bool has_s0, bool has_s1) {
    V g = gin * k.scale;
    if (k.clipping) g = M::min_like_std(M::max_like_std(g, k.neg_clip), k.clip);
    V w = *var;
    if (k.decay) w = w - w * k.wd * k.lr;
    switch (kind) {
      case OptKind::kSGD:
        if (has_s0) {
          const V m = -g * k.lr + *s0 * k.mom;
          *s0 = m;
          w = w + (p.nesterov ? (-g * k.lr + m * k.mom) : m);
        } else {
          w = w - g * k.lr;
        }
        break;
      case OptKind::kAdam: {
        const V m = *s0 + (g - *s0) * k.b1c;
        V v = *s1 + (g * g - *s1) * k.b2c;
        *s0 = m;
        *s1 = v;
        if (p.amsgrad) {
          v = M::max_like_std(*s2, v);
          *s2 = v;
        }
        w = w - (m * k.alpha) / (M::sqrt(v) + k.eps);
        break;
      }
      case OptKind::kAdagrad: {
        const V acc = *s0 + g * g;
        *s0 = acc;
        w = w - (k.lr * g) / M::sqrt(acc + k.eps);
        break;
      }
      case OptKind::kRMSprop: {
        const V vel = k.rho * *s0 + k.rhoc * g * g;
        *s0 = vel;
        V denom = vel + k.eps;
        if (p.centered) {
          const V avg = k.rho * *s2 + k.rhoc * g;
          *s2 = avg;
          denom = vel - avg * avg + k.eps;
        }
        const V inc = k.lr * g / M::sqrt(denom);
        if (has_s1) {
          const V m = k.mom * *s1 + inc;
          *s1 = m;
          w = w - m;
        } else {
          w = w - inc;
        }
        break;
      }
      case OptKind::kAdadelta: {
        const V ag = k.rho * *s0 + k.rhoc * g * g;
        *s0 = ag;
        const V delta = -M::sqrt(*s1 + k.eps) * g / M::sqrt(ag + k.eps);
        *s1 = k.rho * *s1 + k.rhoc * delta * delta;
        w = w + k.lr * delta;
        break;
      }
      case OptKind::kAdamax: {
        const V m = *s0 + (g - *s0) * k.b1c;
        const V u = M::max_like_std(k.b2 * *s1, M::abs(g));
        *s0 = m;
        *s1 = u;
        w = w - k.alpha * m / (u + k.eps);
        break;
      }
      case OptKind::kNadam: {
        const V m = *s0 + (g - *s0) * k.b1c;
        const V v = *s1 + (g * g - *s1) * k.b2c;
        *s0 = m;
        *s1 = v;
        const V m_hat = k.u_t1 * m / k.u_prod_t1c + k.u_tc * g / k.u_prod_tc;
        const V v_hat = v / k.beta2_powerc;
        w = w - (m_hat * k.lr) / (M::sqrt(v_hat) + k.eps);
        break;
      }
      case OptKind::kLion: {
        const V cm = *s0 * k.b1 + g * k.b1c;
        const V sign = M::select(cm > c(0), c(1), M::select(cm < c(0), c(-1), c(0)));
        w = w - k.lr * sign;
        *s0 = *s0 * k.b2 + g * k.b2c;
        break;
      }
      default:  // Ftrl, Lamb, Adafactor: not here (see OptimizerKernelSet)
        break;
    }
    *var = w;
  }

  static void optimizer_update(T* var, T* s0, T* s1, T* s2, const T* grad, int64_t n, double grad_scale,
                               const OptimizerParams& p) {
    OptConsts k;
    const T one = T(1);
    k.one = M::splat(one);
    k.scale = M::splat(static_cast<T>(grad_scale));
    const T clip = static_cast<T>(p.clipvalue);
    k.clipping = clip > T(0);
    k.clip = M::splat(clip);
    k.neg_clip = M::splat(-clip);
    const T wd = static_cast<T>(p.weight_decay);
    k.decay = wd != T(0);
    k.wd = M::splat(wd);
    k.lr = M::splat(static_cast<T>(p.lr));
    k.eps = M::splat(static_cast<T>(p.epsilon));
    const T b1 = static_cast<T>(p.beta1), b2 = static_cast<T>(p.beta2);
    k.b1 = M::splat(b1);
    k.b2 = M::splat(b2);
    k.b1c = M::splat(one - b1);
    k.b2c = M::splat(one - b2);
    k.mom = M::splat(static_cast<T>(p.momentum));
    k.alpha = M::splat(static_cast<T>(p.alpha));
    const T rho = static_cast<T>(p.rho);
    k.rho = M::splat(rho);
    k.rhoc = M::splat(one - rho);
    k.u_t1 = M::splat(static_cast<T>(p.u_t1));
    k.u_prod_t1c = M::splat(one - static_cast<T>(p.u_prod_t1));
    k.u_tc = M::splat(one - static_cast<T>(p.u_t));
    k.u_prod_tc = M::splat(one - static_cast<T>(p.u_prod_t));
    k.beta2_powerc = M::splat(one - static_cast<T>(p.beta2_power));
    const bool has0 = s0 != nullptr, has1 = s1 != nullptr, has2 = s2 != nullptr;
    auto step = [&](int64_t i, int64_t count) {
      const bool full = count == W;
      auto get = [&](const T* a) { return full ? M::load(a + i) : M::load_first(a + i, count, T(0)); };
      auto put = [&](T* a, V v) {
        if (full) M::store(a + i, v);
        else M::store_first(a + i, v, count);
      };
      V w = get(var), a0 = has0 ? get(s0) : c(0), a1 = has1 ? get(s1) : c(0), a2 = has2 ? get(s2) : c(0);
      opt_vector(p.kind, p, k, &w, &a0, &a1, &a2, get(grad), has0, has1);
      put(var, w);
      if (has0) put(s0, a0);
      if (has1) put(s1, a1);
      if (has2) put(s2, a2);
    };
    int64_t i = 0;
    for (; i + W <= n; i += W) step(i, W);
    if (i < n) step(i, n - i);
  }

  static double sum_squares(const T* x, int64_t n) {
    // In double whatever T is (float products are exact in double), in the Sum16 layout.
    constexpr int kWd = W * sizeof(T) / sizeof(double) < 1 ? 1 : static_cast<int>(W * sizeof(T) / sizeof(double));
    using MD = vmath::Vec<double, kWd>;
    using VD = typename MD::V;
    vmath::Sum16<double, kWd> sum;
    vmath::for_each_vector16<kWd>(n, [&](int k, int64_t j, int64_t count) {
      VD v;
      if constexpr (sizeof(T) == sizeof(double)) {
        v = count == kWd ? MD::load(reinterpret_cast<const double*>(x) + j)
                         : MD::load_first(reinterpret_cast<const double*>(x) + j, count, 0.0);
      } else {
        using MN = vmath::Vec<T, kWd>;  // kWd floats, widened to kWd doubles
        const typename MN::V narrow = count == kWd ? MN::load(x + j) : MN::load_first(x + j, count, T(0));
        v = __builtin_convertvector(narrow, VD);
      }
      if (count == kWd) sum.add(k, v * v);
      else sum.add_first(k, v * v, count);
    });
    return sum.total();
  }
};

template <typename T, int W>
ElementwiseKernelSet<T> make_elementwise_kernel_set(const char* name) {
  using K = Kernels<T, W>;
  ElementwiseKernelSet<T> s{};
  s.name = name;
#define FASTNN_ACT(KIND)                                                                  \
  s.act_forward[static_cast<int>(ActKind::KIND)] = &K::template fwd_loop<ActKind::KIND>; \
  s.act_backward[static_cast<int>(ActKind::KIND)] = &K::template bwd_loop<ActKind::KIND>;
  FASTNN_ACT(kRelu) FASTNN_ACT(kRelu6) FASTNN_ACT(kSigmoid) FASTNN_ACT(kTanh) FASTNN_ACT(kElu) FASTNN_ACT(kSelu)
  FASTNN_ACT(kGeluTanh) FASTNN_ACT(kSilu) FASTNN_ACT(kLeakyRelu) FASTNN_ACT(kSoftplus)
  FASTNN_ACT(kSoftsign) FASTNN_ACT(kHardSigmoid)
#undef FASTNN_ACT
  // kGelu (erf) has no entry: the driver runs the scalar twin (elementwise.cpp says why).
#define FASTNN_MATH(FN) s.math[static_cast<int>(MathFn::FN)] = &K::template math_loop<MathFn::FN>;
  FASTNN_MATH(kExp) FASTNN_MATH(kExpm1) FASTNN_MATH(kLog) FASTNN_MATH(kLog1p) FASTNN_MATH(kTanh) FASTNN_MATH(kSigmoid)
#undef FASTNN_MATH
  s.softmax_forward = &K::softmax_forward;
  s.softmax_backward = &K::softmax_backward;
  s.log_softmax_forward = &K::log_softmax_forward;
  s.log_softmax_backward = &K::log_softmax_backward;
  s.row_lse = &K::row_lse;
  s.scaled_softmax_row = &K::scaled_softmax_row;
  s.dense_xent_row = &K::dense_xent_row;
  s.dense_xent_backward_row = &K::dense_xent_backward_row;
  s.bias_add_forward = &K::bias_add_forward;
  s.column_sums = &K::column_sums;
  return s;
}

template <typename T, int W>
OptimizerKernelSet<T> make_optimizer_kernel_set(const char* name) {
  using K = Kernels<T, W>;
  OptimizerKernelSet<T> s{};
  s.name = name;
  s.update = &K::optimizer_update;
  s.sum_squares = &K::sum_squares;
  return s;
}

}  // namespace
}  // namespace fastnn::cpu::detail
