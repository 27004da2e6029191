// Elementwise kernels (see fastnn/elementwise.h): the drivers, which split the work over threads and dispatch
// each chunk to the kernel set of the active SIMD path (elementwise_kernels.h, compiled per ISA), and the scalar
// reference twins. Every loop is a parallel_for over independent elements or rows, so results do not depend on
// the thread count.
#include "fastnn/elementwise.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <type_traits>
#include <vector>

#include "elementwise_kernels.h"
#include "fastnn/parallel.h"
#include "fastnn/runtime.h"

namespace fastnn::cpu {
namespace {

constexpr int64_t kElemGrain = 1 << 14;   // elements per chunk for cheap per-element loops
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSqrt2OverPi = 0.79788456080286535587989211986876;
constexpr double kInvSqrt2 = 0.70710678118654752440084436210485;
constexpr double kInvSqrt2Pi = 0.39894228040143267793994605993438;
constexpr double kGeluCoeff = 0.044715;

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(cols, 1)); }

// The reference twins' scalar per-element formulas (libm). The per-ISA kernels (elementwise_kernel_impl.h) run
// the same formulas over vectors, with the library's own exp / expm1 / log1p / tanh / sigmoid.

// Stable logistic: never evaluates exp of a large positive number.
template <typename T>
FASTNN_ALWAYS_INLINE T sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);  // also the NaN path: NaN >= 0 is false and exp(NaN) is NaN
  return e / (T(1) + e);
}

// log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)).
template <typename T>
FASTNN_ALWAYS_INLINE T softplus(T x) {
  return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::fabs(x)));
}

// The comparisons are written so that NaN falls through to an expression that yields NaN.
template <typename T>
FASTNN_ALWAYS_INLINE T relu6(T x) {
  return x < T(0) ? T(0) : (x > T(6) ? T(6) : x);
}

template <ActKind K, typename T>
FASTNN_ALWAYS_INLINE T act_fwd(T x, T alpha) {
  if constexpr (K == ActKind::kRelu) return x < T(0) ? T(0) : x;
  else if constexpr (K == ActKind::kRelu6) return relu6(x);
  else if constexpr (K == ActKind::kSigmoid) return sigmoid(x);
  else if constexpr (K == ActKind::kTanh) return std::tanh(x);
  else if constexpr (K == ActKind::kElu) return x > T(0) ? x : alpha * std::expm1(x);
  else if constexpr (K == ActKind::kSelu)
    return T(kSeluScale) * (x > T(0) ? x : T(kSeluAlpha) * std::expm1(x));
  else if constexpr (K == ActKind::kGelu) return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
  else if constexpr (K == ActKind::kGeluTanh)  // 0.5 x (1 + tanh(u)) = x sigmoid(2u): accurate in the tails
    return x * sigmoid(T(2 * kSqrt2OverPi) * (x + T(kGeluCoeff) * x * x * x));
  else if constexpr (K == ActKind::kSilu) return x * sigmoid(x);
  else if constexpr (K == ActKind::kLeakyRelu) return x < T(0) ? alpha * x : x;
  else if constexpr (K == ActKind::kSoftplus) return softplus(x);
  else if constexpr (K == ActKind::kSoftsign) return x / (T(1) + std::fabs(x));
  else return relu6(x + T(3)) / T(6);  // kHardSigmoid
}

// Derivative times dy. x is the input, y the forward output.
template <ActKind K, typename T>
FASTNN_ALWAYS_INLINE T act_bwd(T dy, T x, T y, T alpha) {
  if constexpr (K == ActKind::kRelu) return x > T(0) ? dy : T(0);
  else if constexpr (K == ActKind::kRelu6) return (x > T(0) && x < T(6)) ? dy : T(0);
  else if constexpr (K == ActKind::kSigmoid) return dy * y * (T(1) - y);
  else if constexpr (K == ActKind::kTanh) return dy * (T(1) - y * y);
  else if constexpr (K == ActKind::kElu) return x > T(0) ? dy : dy * (y + alpha);
  else if constexpr (K == ActKind::kSelu)  // at x = 0 TensorFlow takes the linear side's slope, scale (not scale*alpha)
    return x >= T(0) ? dy * T(kSeluScale) : dy * (y + T(kSeluScale * kSeluAlpha));
  else if constexpr (K == ActKind::kGelu) {
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2)));
    const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    return dy * (cdf + x * pdf);
  } else if constexpr (K == ActKind::kGeluTanh) {
    // d/dx [x s(2u)] = s + x * 2 s (1 - s) u', with s = sigmoid(2u) = (1 + tanh(u)) / 2. Beyond |x| = 30,
    // s (1 - s) is below e^-1900 (exactly 0 in float and double) while x * u' overflows in float32 for
    // |x| > 1e19, and 0 * inf would make the gradient NaN: return the limit (1 or 0) there.
    if (std::fabs(x) > T(30)) return x > T(0) ? dy : T(0) * dy;
    const T x2 = x * x;
    const T s = sigmoid(T(2 * kSqrt2OverPi) * (x + T(kGeluCoeff) * x2 * x));
    const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCoeff) * x2);
    return dy * (s + T(2) * x * s * (T(1) - s) * du);
  } else if constexpr (K == ActKind::kSilu) {
    const T s = sigmoid(x);
    return dy * s * (T(1) + x * (T(1) - s));
  } else if constexpr (K == ActKind::kLeakyRelu) return x > T(0) ? dy : dy * alpha;
  else if constexpr (K == ActKind::kSoftplus) return dy * sigmoid(x);
  else if constexpr (K == ActKind::kSoftsign) {
    const T d = T(1) + std::fabs(x);
    return dy / (d * d);
  } else return (x > T(-3) && x < T(3)) ? dy / T(6) : T(0);  // kHardSigmoid
}

template <ActKind K, typename T>
void fwd_loop(T* y, const T* x, int64_t n, T alpha) {
  parallel_for(0, n, kElemGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = act_fwd<K>(x[i], alpha);
  });
}

template <ActKind K, typename T>
void bwd_loop(T* dx, const T* dy, const T* x, const T* y, int64_t n, T alpha) {
  parallel_for(0, n, kElemGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = act_bwd<K>(dy[i], x[i], y[i], alpha);
  });
}

// Calls f(std::integral_constant<ActKind, k>{}) so each kind gets its own inlined loop.
template <typename F>
void dispatch(ActKind k, const F& f) {
#define FASTNN_CASE(K) \
  case ActKind::K:     \
    f(std::integral_constant<ActKind, ActKind::K>{}); return;
  switch (k) {
    FASTNN_CASE(kRelu) FASTNN_CASE(kRelu6) FASTNN_CASE(kSigmoid) FASTNN_CASE(kTanh) FASTNN_CASE(kElu)
    FASTNN_CASE(kSelu) FASTNN_CASE(kGelu) FASTNN_CASE(kGeluTanh) FASTNN_CASE(kSilu) FASTNN_CASE(kLeakyRelu)
    FASTNN_CASE(kSoftplus) FASTNN_CASE(kSoftsign) FASTNN_CASE(kHardSigmoid)
  }
#undef FASTNN_CASE
}

}  // namespace

namespace detail {

template <>
const ElementwiseKernelSet<float>& active_elementwise_kernels<float>() {
  static const ElementwiseKernelSet<float> generic = generic_elementwise_f32();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
  if (active_simd_path() == SimdPath::kAvx2) {  // built only when active: that file's code needs the ISA
    static const ElementwiseKernelSet<float> avx2 = avx2_elementwise_f32();
    return avx2;
  }
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
  if (active_simd_path() == SimdPath::kAvx512) {  // built only when active: that file's code needs the ISA
    static const ElementwiseKernelSet<float> avx512 = avx512_elementwise_f32();
    return avx512;
  }
#endif
  return generic;
}

template <>
const ElementwiseKernelSet<double>& active_elementwise_kernels<double>() {
  static const ElementwiseKernelSet<double> generic = generic_elementwise_f64();
#if defined(FASTNN_HAVE_AVX2_KERNELS)
  if (active_simd_path() == SimdPath::kAvx2) {  // built only when active: that file's code needs the ISA
    static const ElementwiseKernelSet<double> avx2 = avx2_elementwise_f64();
    return avx2;
  }
#endif
#if defined(FASTNN_HAVE_AVX512_KERNELS)
  if (active_simd_path() == SimdPath::kAvx512) {  // built only when active: that file's code needs the ISA
    static const ElementwiseKernelSet<double> avx512 = avx512_elementwise_f64();
    return avx512;
  }
#endif
  return generic;
}

}  // namespace detail

namespace {
template <typename T>
const detail::ElementwiseKernelSet<T>& kernels() {
  return detail::active_elementwise_kernels<T>();
}
}  // namespace

// The exact GELU needs erf, which the vector math does not have: it runs the scalar twin (libm's erf) on every SIMD
// path. Calling libm per lane from the vector code was slower than the scalar loop on AVX-512 (legacy-SSE libm
// code entered with dirty upper vector state); gelu_tanh, Keras's default GELU, is vectorized.
template <typename T>
void activation_forward(T* y, const T* x, int64_t n, const ActivationParams& p) {
  if (p.kind == ActKind::kGelu) return activation_forward_ref(y, x, n, p);
  DenormalsAreZero ftz;
  const T alpha = static_cast<T>(p.alpha);
  const auto f = kernels<T>().act_forward[static_cast<int>(p.kind)];
  parallel_for(0, n, kElemGrain, [&](int64_t b, int64_t e) { f(y + b, x + b, e - b, alpha); });
}

template <typename T>
void activation_forward_ref(T* y, const T* x, int64_t n, const ActivationParams& p) {
  DenormalsAreZero ftz;
  const T alpha = static_cast<T>(p.alpha);
  dispatch(p.kind, [&](auto k) { fwd_loop<decltype(k)::value>(y, x, n, alpha); });
}

template <typename T>
void activation_backward(T* dx, const T* dy, const T* x, const T* y, int64_t n, const ActivationParams& p) {
  if (p.kind == ActKind::kGelu) return activation_backward_ref(dx, dy, x, y, n, p);  // erf: see activation_forward
  DenormalsAreZero ftz;
  const T alpha = static_cast<T>(p.alpha);
  const auto f = kernels<T>().act_backward[static_cast<int>(p.kind)];
  parallel_for(0, n, kElemGrain, [&](int64_t b, int64_t e) { f(dx + b, dy + b, x + b, y + b, e - b, alpha); });
}

template <typename T>
void activation_backward_ref(T* dx, const T* dy, const T* x, const T* y, int64_t n, const ActivationParams& p) {
  DenormalsAreZero ftz;
  const T alpha = static_cast<T>(p.alpha);
  dispatch(p.kind, [&](auto k) { bwd_loop<decltype(k)::value>(dx, dy, x, y, n, alpha); });
}

template <typename T>
void vector_math(T* y, const T* x, int64_t n, MathFn fn) {
  DenormalsAreZero ftz;
  const auto f = kernels<T>().math[static_cast<int>(fn)];
  parallel_for(0, n, kElemGrain, [&](int64_t b, int64_t e) { f(y + b, x + b, e - b); });
}

template <typename T>
void softmax_forward(T* y, const T* x, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  const auto f = kernels<T>().softmax_forward;
  parallel_for(0, rows, row_grain(cols), [&](int64_t b, int64_t e) { f(y + b * cols, x + b * cols, e - b, cols); });
}

namespace {

// The reference twins' shared first pass over a row, in double: its max m (NaN if any element is NaN) and
// s = sum_j exp(x[j] - m).
template <typename T>
void ref_row_max_sum_exp(const T* x, int64_t cols, double* max_out, double* sum_out) {
  double m = -std::numeric_limits<double>::infinity();
  bool nan = false;
  for (int64_t j = 0; j < cols; ++j) {
    m = std::max<double>(m, x[j]);
    nan |= std::isnan(x[j]);
  }
  if (nan) m = std::numeric_limits<double>::quiet_NaN();
  double s = 0;
  for (int64_t j = 0; j < cols; ++j) s += std::exp(double(x[j]) - m);
  *max_out = m;
  *sum_out = s;
}

}  // namespace

template <typename T>
void softmax_forward_ref(T* y, const T* x, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  for (int64_t r = 0; r < rows; ++r) {
    double m, s;
    ref_row_max_sum_exp(x + r * cols, cols, &m, &s);
    for (int64_t j = 0; j < cols; ++j) y[r * cols + j] = static_cast<T>(std::exp(double(x[r * cols + j]) - m) / s);
  }
}

template <typename T>
void softmax_backward(T* dx, const T* dy, const T* y, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  const auto f = kernels<T>().softmax_backward;
  parallel_for(0, rows, row_grain(cols), [&](int64_t b, int64_t e) {
    f(dx + b * cols, dy + b * cols, y + b * cols, e - b, cols);
  });
}

template <typename T>
void softmax_backward_ref(T* dx, const T* dy, const T* y, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  for (int64_t r = 0; r < rows; ++r) {
    double dot = 0;
    for (int64_t j = 0; j < cols; ++j) dot += double(dy[r * cols + j]) * y[r * cols + j];
    for (int64_t j = 0; j < cols; ++j)
      dx[r * cols + j] = static_cast<T>(double(y[r * cols + j]) * (double(dy[r * cols + j]) - dot));
  }
}

template <typename T>
void log_softmax_forward(T* y, const T* x, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  const auto f = kernels<T>().log_softmax_forward;
  parallel_for(0, rows, row_grain(cols), [&](int64_t b, int64_t e) { f(y + b * cols, x + b * cols, e - b, cols); });
}

template <typename T>
void log_softmax_forward_ref(T* y, const T* x, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  for (int64_t r = 0; r < rows; ++r) {
    double m, s;
    ref_row_max_sum_exp(x + r * cols, cols, &m, &s);
    const double lse = m + std::log(s);
    for (int64_t j = 0; j < cols; ++j) y[r * cols + j] = static_cast<T>(double(x[r * cols + j]) - lse);
  }
}

template <typename T>
void log_softmax_backward(T* dx, const T* dy, const T* y, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  const auto f = kernels<T>().log_softmax_backward;
  parallel_for(0, rows, row_grain(cols), [&](int64_t b, int64_t e) {
    f(dx + b * cols, dy + b * cols, y + b * cols, e - b, cols);
  });
}

template <typename T>
void log_softmax_backward_ref(T* dx, const T* dy, const T* y, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t j = 0; j < cols; ++j) s += dy[r * cols + j];
    for (int64_t j = 0; j < cols; ++j)
      dx[r * cols + j] = static_cast<T>(double(dy[r * cols + j]) - std::exp(double(y[r * cols + j])) * s);
  }
}

namespace {

// The first out-of-range label the rows [b, e) of one chunk met, merged into the kernel's report. The label is
// read once, checked and used as read: the caller's buffer may change meanwhile (another Python thread), and a
// second read could pass a check the first failed.
class LabelChecker {
 public:
  explicit LabelChecker(int64_t cols) : cols_(cols) {}
  // Returns false (and records it) when `label`, read for row r, is outside [0, cols).
  bool ok(int64_t r, int64_t label) {
    if (label >= 0 && label < cols_) return true;
    std::lock_guard<std::mutex> lock(mutex_);
    if (first_.row < 0 || r < first_.row) first_ = LabelError{r, label};
    return false;
  }
  LabelError result() const { return first_; }

 private:
  int64_t cols_;
  std::mutex mutex_;
  LabelError first_;
};

}  // namespace

template <typename T>
LabelError sparse_xent_forward(T* loss, T* lse, const T* logits, const int64_t* labels, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  LabelChecker check(cols);
  const auto lse_of = kernels<T>().row_lse;
  parallel_for(0, rows, row_grain(cols), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = logits + r * cols;
      const int64_t label = labels[r];
      lse[r] = lse_of(xr, cols);
      loss[r] = check.ok(r, label) ? lse[r] - xr[label] : std::numeric_limits<T>::quiet_NaN();
    }
  });
  return check.result();
}

template <typename T>
LabelError sparse_xent_forward_ref(T* loss, T* lse, const T* logits, const int64_t* labels, int64_t rows,
                                   int64_t cols) {
  DenormalsAreZero ftz;
  LabelChecker check(cols);
  for (int64_t r = 0; r < rows; ++r) {
    double m, s;
    ref_row_max_sum_exp(logits + r * cols, cols, &m, &s);
    const double l = m + std::log(s);
    const int64_t label = labels[r];
    lse[r] = static_cast<T>(l);
    loss[r] = check.ok(r, label) ? static_cast<T>(l - double(logits[r * cols + label]))
                                 : std::numeric_limits<T>::quiet_NaN();
  }
  return check.result();
}

template <typename T>
LabelError sparse_xent_backward(T* dlogits, const T* dloss, const T* logits, const T* lse, const int64_t* labels,
                                int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  LabelChecker check(cols);
  const auto scaled_softmax = kernels<T>().scaled_softmax_row;
  parallel_for(0, rows, row_grain(cols), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = logits + r * cols;
      T* dr = dlogits + r * cols;
      const T g = dloss[r];
      const T l = lse[r];
      const int64_t label = labels[r];
      scaled_softmax(dr, xr, g, l, cols);  // dr[j] = g * exp(xr[j] - l)
      if (check.ok(r, label)) dr[label] -= g;
    }
  });
  return check.result();
}

template <typename T>
void dense_xent_forward(T* loss, T* lse, const T* logits, const T* target, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  const auto& ks = kernels<T>();
  parallel_for(0, rows, row_grain(cols), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = logits + r * cols;
      const T l = ks.row_lse(xr, cols);
      lse[r] = l;
      loss[r] = ks.dense_xent_row(xr, target + r * cols, l, cols);  // sum_j t[j] (l - x[j])
    }
  });
}

template <typename T>
void dense_xent_forward_ref(T* loss, T* lse, const T* logits, const T* target, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  for (int64_t r = 0; r < rows; ++r) {
    double m, s;
    ref_row_max_sum_exp(logits + r * cols, cols, &m, &s);
    const double l = m + std::log(s);
    double acc = 0;
    for (int64_t j = 0; j < cols; ++j) acc -= double(target[r * cols + j]) * (double(logits[r * cols + j]) - l);
    lse[r] = static_cast<T>(l);
    loss[r] = static_cast<T>(acc);
  }
}

template <typename T>
void dense_xent_backward(T* dlogits, const T* dloss, const T* logits, const T* lse, const T* target, int64_t rows,
                         int64_t cols) {
  DenormalsAreZero ftz;
  const auto f = kernels<T>().dense_xent_backward_row;
  parallel_for(0, rows, row_grain(cols), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) f(dlogits + r * cols, logits + r * cols, target + r * cols, dloss[r], lse[r], cols);
  });
}

template <typename T>
void bias_add_forward(T* y, const T* x, const T* b, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  const auto f = kernels<T>().bias_add_forward;
  parallel_for(0, rows, row_grain(cols), [&](int64_t rb, int64_t re) { f(y + rb * cols, x + rb * cols, b, re - rb, cols); });
}

template <typename T>
void bias_add_backward(T* db, const T* dy, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  // Fixed-size row blocks summed into per-block partials, then the partials reduced in block order: the
  // summation order depends only on rows and cols, never on the thread count.
  constexpr int64_t kRowBlock = 256;
  const int64_t blocks = ceil_div(rows, kRowBlock);
  const auto column_sums = kernels<T>().column_sums;  // acc[j] += rows of dy added in order
  if (blocks <= 1) {
    column_sums(db, dy, rows, cols);
    return;
  }
  std::vector<T> partial(static_cast<size_t>(blocks * cols), T(0));
  T* part = partial.data();
  parallel_for(0, blocks, 1, [&](int64_t bb, int64_t be) {
    for (int64_t blk = bb; blk < be; ++blk) {
      const int64_t r0 = blk * kRowBlock, r1 = std::min(rows, (blk + 1) * kRowBlock);
      column_sums(part + blk * cols, dy + r0 * cols, r1 - r0, cols);
    }
  });
  parallel_for(0, cols, 1024, [&](int64_t jb, int64_t je) {
    for (int64_t blk = 0; blk < blocks; ++blk)
      for (int64_t j = jb; j < je; ++j) db[j] += part[blk * cols + j];
  });
}

template <typename T>
void bias_add_backward_ref(T* db, const T* dy, int64_t rows, int64_t cols) {
  DenormalsAreZero ftz;
  for (int64_t j = 0; j < cols; ++j) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) s += dy[r * cols + j];
    db[j] += static_cast<T>(s);
  }
}

#define FASTNN_INSTANTIATE(T)                                                                                    \
  template void activation_forward<T>(T*, const T*, int64_t, const ActivationParams&);                           \
  template void activation_forward_ref<T>(T*, const T*, int64_t, const ActivationParams&);                       \
  template void activation_backward<T>(T*, const T*, const T*, const T*, int64_t, const ActivationParams&);      \
  template void activation_backward_ref<T>(T*, const T*, const T*, const T*, int64_t, const ActivationParams&);  \
  template void vector_math<T>(T*, const T*, int64_t, MathFn);                                                   \
  template void softmax_forward<T>(T*, const T*, int64_t, int64_t);                                              \
  template void softmax_forward_ref<T>(T*, const T*, int64_t, int64_t);                                          \
  template void softmax_backward<T>(T*, const T*, const T*, int64_t, int64_t);                                   \
  template void softmax_backward_ref<T>(T*, const T*, const T*, int64_t, int64_t);                               \
  template void log_softmax_forward<T>(T*, const T*, int64_t, int64_t);                                          \
  template void log_softmax_forward_ref<T>(T*, const T*, int64_t, int64_t);                                      \
  template void log_softmax_backward<T>(T*, const T*, const T*, int64_t, int64_t);                               \
  template void log_softmax_backward_ref<T>(T*, const T*, const T*, int64_t, int64_t);                           \
  template LabelError sparse_xent_forward<T>(T*, T*, const T*, const int64_t*, int64_t, int64_t);                \
  template LabelError sparse_xent_forward_ref<T>(T*, T*, const T*, const int64_t*, int64_t, int64_t);            \
  template LabelError sparse_xent_backward<T>(T*, const T*, const T*, const T*, const int64_t*, int64_t, int64_t); \
  template void dense_xent_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t);                             \
  template void dense_xent_forward_ref<T>(T*, T*, const T*, const T*, int64_t, int64_t);                         \
  template void dense_xent_backward<T>(T*, const T*, const T*, const T*, const T*, int64_t, int64_t);            \
  template void bias_add_forward<T>(T*, const T*, const T*, int64_t, int64_t);                                   \
  template void bias_add_backward<T>(T*, const T*, int64_t, int64_t);                                           \
  template void bias_add_backward_ref<T>(T*, const T*, int64_t, int64_t);

FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn::cpu
