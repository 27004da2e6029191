// Broadcasting elementwise kernels: binary arithmetic (add, subtract, multiply, divide, maximum, minimum),
// comparisons producing bool, where(cond, a, b), clip, and the fused mask multiplies of the ReLU and dropout
// backward/forward. Tier 1: pure C++, outputs first, int64_t sizes, templates instantiated for float and double.
//
// Every result is the same IEEE operation NumPy's ufunc performs on the same two values (a + b, a * b, ...; maximum
// and minimum propagate NaN and return b when a == b, as NumPy's loops do), so results are bit-identical to NumPy
// except for denormals: like every fastnn kernel these run with denormals-are-zero (parallel.h), so a denormal input
// counts as zero and no arithmetic result is denormal. Every loop is a parallel_for over independent output
// elements: results are bit-identical for every thread count.
#pragma once

#include <cstdint>

namespace fastnn {

// NumPy's own limit on the number of axes (NPY_MAXDIMS in NumPy 2).
constexpr int kMaxBroadcastDims = 64;

// The iteration space of one broadcasting call: a C-contiguous output of `ndim` axes of sizes shape[] and up to
// three inputs, input k read at element offset sum_d index[d] * stride[k][d] (stride 0 along the axes where input
// k is broadcast). Build it with broadcast_add_input / broadcast_finish: they collapse adjacent axes that every
// operand walks contiguously, so the common cases (same shape, a row vector, a column vector, a scalar) become one
// or two axes.
struct Broadcast {
  int ndim = 0;
  int inputs = 0;
  int64_t shape[kMaxBroadcastDims];
  int64_t stride[3][kMaxBroadcastDims];
  int64_t size() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= shape[d];
    return n;
  }
};

// Starts a Broadcast of the output shape out_shape (out_ndim axes; the caller computed it with NumPy's rule).
void broadcast_init(Broadcast* bc, const int64_t* out_shape, int out_ndim);
// Adds the next C-contiguous input of shape in_shape (in_ndim <= out_ndim axes, right-aligned to the output; each
// size equal to the output's or 1). Returns false, changing nothing, when it does not broadcast to the output.
bool broadcast_add_input(Broadcast* bc, const int64_t* in_shape, int in_ndim);
// Drops size-1 axes and merges adjacent axes that every operand walks contiguously (at least one axis remains).
void broadcast_finish(Broadcast* bc);

// kAddRelu: relu(a + b), the ReLU kernel's rule on the rounded sum (s < 0 ? 0 : s): a residual Add then its ReLU
// in one pass (for a caller that sees both, the compiled step's tracer).
enum class BinaryOp : int { kAdd = 0, kSubtract, kMultiply, kDivide, kMaximum, kMinimum, kAddRelu };
enum class CompareOp : int { kEqual = 0, kNotEqual, kLess, kLessEqual, kGreater, kGreaterEqual };

namespace cpu {

// out = a (op) b with broadcasting (bc has two inputs: a, b). out may be the same buffer as a or b when that input
// is not broadcast (the caller checks).
template <typename T>
void binary(T* out, const T* a, const T* b, const Broadcast& bc, BinaryOp op);
template <typename T>
void binary_ref(T* out, const T* a, const T* b, const Broadcast& bc, BinaryOp op);

// out[i] = a (op) b as bool (1 or 0 bytes; NaN compares unequal to everything, as in IEEE and NumPy).
template <typename T>
void compare(uint8_t* out, const T* a, const T* b, const Broadcast& bc, CompareOp op);
template <typename T>
void compare_ref(uint8_t* out, const T* a, const T* b, const Broadcast& bc, CompareOp op);

// out = cond ? a : b with broadcasting (bc has three inputs: cond, a, b; cond bytes are nonzero for true).
template <typename T>
void where(T* out, const uint8_t* cond, const T* a, const T* b, const Broadcast& bc);
template <typename T>
void where_ref(T* out, const uint8_t* cond, const T* a, const T* b, const Broadcast& bc);

// out = np.clip(x, lo, hi), n elements: minimum(maximum(x, lo), hi), NaN (in x or a bound) propagating; where x
// equals a bound x is kept (NumPy's clip loop: clip(-0.0, 0.0, 0.0) is -0.0). has_lo / has_hi false: that bound is
// absent and, as NumPy then does, np.maximum(x, lo) / np.minimum(x, hi) is computed (the bound on equality). out
// may alias x.
template <typename T>
void clip(T* out, const T* x, int64_t n, T lo, T hi, bool has_lo, bool has_hi);
template <typename T>
void clip_ref(T* out, const T* x, int64_t n, T lo, T hi, bool has_lo, bool has_hi);

// The ReLU backward's mask multiply: out = g * (y > 0), the product with 1 or 0 as NumPy computes it (so a
// negative g gives -0 and an infinite or NaN g gives NaN where y <= 0), n elements. out may alias g or y.
template <typename T>
void relu_mask_multiply(T* out, const T* g, const T* y, int64_t n);
template <typename T>
void relu_mask_multiply_ref(T* out, const T* g, const T* y, int64_t n);

// Dropout: out = (x * mask) * scale, mask bool bytes broadcast to x (bc has two inputs: x, mask), each product
// rounded to T as NumPy's multiply(multiply(x, mask), scale) does.
template <typename T>
void dropout_mask_multiply(T* out, const T* x, const uint8_t* mask, T scale, const Broadcast& bc);
template <typename T>
void dropout_mask_multiply_ref(T* out, const T* x, const uint8_t* mask, T scale, const Broadcast& bc);

}  // namespace cpu
}  // namespace fastnn
