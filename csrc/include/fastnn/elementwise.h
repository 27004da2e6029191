// Elementwise kernels: activations (forward + backward), softmax / log-softmax over the last axis, fused
// log-softmax + crossentropy, bias add. Tier 1: pure C++, contiguous buffers, outputs first, int64_t sizes,
// templates instantiated for float and double. Numerically stable forms throughout (sigmoid and softplus for
// large |x|, max-shifted softmax and log-sum-exp). NaN inputs propagate to NaN outputs like NumPy.
#pragma once

#include <cstdint>

namespace fastnn {

enum class ActKind : int {
  kRelu = 0,
  kRelu6,
  kSigmoid,
  kTanh,
  kElu,          // alpha * expm1(x) for x <= 0
  kSelu,         // scale * elu(x, alpha) with the fixed SELU constants
  kGelu,         // exact: 0.5 x (1 + erf(x / sqrt 2))
  kGeluTanh,     // tanh approximation (keras.ops.gelu's default approximate=True)
  kSilu,         // x * sigmoid(x)
  kLeakyRelu,    // x < 0 ? alpha * x : x
  kSoftplus,     // log(1 + exp(x)), stable
  kSoftsign,     // x / (1 + |x|)
  kHardSigmoid,  // relu6(x + 3) / 6 (Keras 3)
};

struct ActivationParams {
  ActKind kind = ActKind::kRelu;
  double alpha = 1.0;  // elu: alpha; leaky_relu: negative slope; unused otherwise
};

namespace cpu {

// The kernels below run on the SIMD path active now (fastnn/runtime.h: AVX-512, AVX2+FMA or the baseline ISA),
// with this library's own vectorized exp / expm1 / log / log1p / tanh / sigmoid (at most 2 ulp in float32 and
// float64); the exact gelu (erf) runs its scalar libm twin on every path. Each path's results are deterministic and independent of the thread count;
// the reference twins (*_ref) are the plain scalar code with libm (the softmax and crossentropy ones in double).

// y = act(x); x and y have n elements (may be the same buffer).
template <typename T>
void activation_forward(T* y, const T* x, int64_t n, const ActivationParams& p);
template <typename T>
void activation_forward_ref(T* y, const T* x, int64_t n, const ActivationParams& p);

// dx = dy * act'(x). y = act(x) is the forward output (used by sigmoid, tanh, elu, selu); dx may alias dy.
// At a kink the derivative is TensorFlow's: relu 0 at 0; relu6 0 at 0 and 6; leaky_relu alpha at 0; elu and selu
// the linear side's slope (1, scale) at 0; hard_sigmoid 0 at -3 and 3.
template <typename T>
void activation_backward(T* dx, const T* dy, const T* x, const T* y, int64_t n, const ActivationParams& p);
template <typename T>
void activation_backward_ref(T* dx, const T* dy, const T* x, const T* y, int64_t n, const ActivationParams& p);

// The elementary functions the SIMD kernels use, exposed for tests (accuracy against libm) and benchmarks:
// y[i] = f(x[i]) on the active SIMD path, with denormals flushed like every kernel.
enum class MathFn : int { kExp = 0, kExpm1, kLog, kLog1p, kTanh, kSigmoid };
template <typename T>
void vector_math(T* y, const T* x, int64_t n, MathFn fn);

// x, y are (rows, cols) row-major: y = softmax(x) along each row (max-shifted).
template <typename T>
void softmax_forward(T* y, const T* x, int64_t rows, int64_t cols);
template <typename T>
void softmax_forward_ref(T* y, const T* x, int64_t rows, int64_t cols);
// dx = y * (dy - sum(dy * y)) per row.
template <typename T>
void softmax_backward(T* dx, const T* dy, const T* y, int64_t rows, int64_t cols);
template <typename T>
void softmax_backward_ref(T* dx, const T* dy, const T* y, int64_t rows, int64_t cols);

// y = x - logsumexp(x) per row.
template <typename T>
void log_softmax_forward(T* y, const T* x, int64_t rows, int64_t cols);
template <typename T>
void log_softmax_forward_ref(T* y, const T* x, int64_t rows, int64_t cols);
// dx = dy - exp(y) * sum(dy) per row.
template <typename T>
void log_softmax_backward(T* dx, const T* dy, const T* y, int64_t rows, int64_t cols);
template <typename T>
void log_softmax_backward_ref(T* dx, const T* dy, const T* y, int64_t rows, int64_t cols);

// Fused log-softmax + crossentropy. logits is (rows, cols). Forward writes the per-row loss and the per-row
// log-sum-exp `lse` (what the backward needs).
//   sparse: loss[r] = lse[r] - logits[r, labels[r]].
//   dense:  loss[r] = sum_j target[r, j] * (lse[r] - logits[r, j]).
// The sparse kernels check each label as they read it (once: the caller's buffer may be changing under them,
// another thread writing it) and never index with one outside [0, cols): such a row gets a NaN loss (forward)
// or no label term (backward), and the first such row is returned so the caller can raise. row == -1: all valid.
struct LabelError {
  int64_t row = -1;
  int64_t label = 0;  // the value read at that row
};
template <typename T>
LabelError sparse_xent_forward(T* loss, T* lse, const T* logits, const int64_t* labels, int64_t rows, int64_t cols);
template <typename T>
LabelError sparse_xent_forward_ref(T* loss, T* lse, const T* logits, const int64_t* labels, int64_t rows,
                                   int64_t cols);
// dlogits[r, j] = dloss[r] * (exp(logits[r, j] - lse[r]) - [j == labels[r]]).
template <typename T>
LabelError sparse_xent_backward(T* dlogits, const T* dloss, const T* logits, const T* lse, const int64_t* labels,
                                int64_t rows, int64_t cols);
template <typename T>
void dense_xent_forward(T* loss, T* lse, const T* logits, const T* target, int64_t rows, int64_t cols);
template <typename T>
void dense_xent_forward_ref(T* loss, T* lse, const T* logits, const T* target, int64_t rows, int64_t cols);
// dlogits[r, j] = dloss[r] * (exp(logits[r, j] - lse[r]) * sum_k target[r, k] - target[r, j]).
template <typename T>
void dense_xent_backward(T* dlogits, const T* dloss, const T* logits, const T* lse, const T* target, int64_t rows,
                         int64_t cols);

// x, y are (rows, cols), b is (cols,): y = x + b (broadcast over rows). y may alias x.
template <typename T>
void bias_add_forward(T* y, const T* x, const T* b, int64_t rows, int64_t cols);
// db += column sums of dy (parameter gradients accumulate). Summation order depends only on rows and cols,
// so the result is bit-identical for any thread count.
template <typename T>
void bias_add_backward(T* db, const T* dy, int64_t rows, int64_t cols);
template <typename T>
void bias_add_backward_ref(T* db, const T* dy, int64_t rows, int64_t cols);

}  // namespace cpu
}  // namespace fastnn
