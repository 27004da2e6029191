// Broadcasting elementwise kernels (see fastnn/binary.h). The fast kernels walk the output in runs of its
// innermost (collapsed) axis, with a loop specialised for the inputs' innermost strides (1: contiguous, 0:
// broadcast) that the compiler vectorises; the reference twins compute every output element's input offsets from
// its multi-index, one element at a time.
#include "fastnn/binary.h"

#include <cmath>
#include <type_traits>

#include "fastnn/parallel.h"

namespace fastnn {

void broadcast_init(Broadcast* bc, const int64_t* out_shape, int out_ndim) {
  bc->ndim = out_ndim;
  bc->inputs = 0;
  for (int d = 0; d < out_ndim; ++d) bc->shape[d] = out_shape[d];
}

bool broadcast_add_input(Broadcast* bc, const int64_t* in_shape, int in_ndim) {
  if (bc->inputs >= 3 || in_ndim > bc->ndim) return false;
  const int lead = bc->ndim - in_ndim;
  int64_t* stride = bc->stride[bc->inputs];
  int64_t step = 1;  // the input's C-order element stride of the axis being visited (innermost first)
  for (int d = bc->ndim - 1; d >= 0; --d) {
    const int64_t size = d >= lead ? in_shape[d - lead] : 1;
    if (size != bc->shape[d] && size != 1) return false;
    stride[d] = size == 1 ? 0 : step;
    step *= size;
  }
  ++bc->inputs;
  return true;
}

void broadcast_finish(Broadcast* bc) {
  int nd = 0;
  for (int d = 0; d < bc->ndim; ++d) {
    if (bc->shape[d] == 1) continue;  // size-1 output axes: every operand's index there is 0
    if (nd > 0) {
      // Merge axis d into the previous kept axis when every operand's stride there is this axis's stride times
      // its size (both contiguous, or both broadcast).
      bool merge = true;
      for (int k = 0; k < bc->inputs; ++k) merge &= bc->stride[k][nd - 1] == bc->stride[k][d] * bc->shape[d];
      if (merge) {
        bc->shape[nd - 1] *= bc->shape[d];
        for (int k = 0; k < bc->inputs; ++k) bc->stride[k][nd - 1] = bc->stride[k][d];
        continue;
      }
    }
    bc->shape[nd] = bc->shape[d];
    for (int k = 0; k < bc->inputs; ++k) bc->stride[k][nd] = bc->stride[k][d];
    ++nd;
  }
  if (nd == 0) {  // a one-element output: one axis of size 1 (or an empty one, kept as it was)
    bool empty = false;
    for (int d = 0; d < bc->ndim; ++d) empty |= bc->shape[d] == 0;
    bc->shape[0] = empty ? 0 : 1;
    for (int k = 0; k < bc->inputs; ++k) bc->stride[k][0] = 0;
    nd = 1;
  }
  bc->ndim = nd;
}

namespace cpu {
namespace {

constexpr int64_t kElemGrain = 1 << 14;  // output elements per chunk

// Calls run(begin, len, off) for each run of consecutive output elements [begin, begin + len) in [begin, end) that
// lies along the innermost axis; off[k] is input k's element offset of the run's first element.
template <int N, typename Run>
FASTNN_ALWAYS_INLINE void for_each_run(const Broadcast& bc, int64_t begin, int64_t end, const Run& run) {
  const int nd = bc.ndim;
  const int64_t inner = bc.shape[nd - 1];
  int64_t idx[kMaxBroadcastDims];
  int64_t off[N] = {};
  int64_t rest = begin;
  for (int d = nd - 1; d >= 0; --d) {
    idx[d] = rest % bc.shape[d];
    rest /= bc.shape[d];
    for (int k = 0; k < N; ++k) off[k] += idx[d] * bc.stride[k][d];
  }
  int64_t pos = begin;
  while (pos < end) {
    const int64_t len = inner - idx[nd - 1] < end - pos ? inner - idx[nd - 1] : end - pos;
    run(pos, len, off);
    pos += len;
    idx[nd - 1] += len;
    for (int k = 0; k < N; ++k) off[k] += len * bc.stride[k][nd - 1];
    if (idx[nd - 1] < inner) break;  // the chunk ended inside this run
    // Carry into the outer axes.
    idx[nd - 1] = 0;
    for (int k = 0; k < N; ++k) off[k] -= inner * bc.stride[k][nd - 1];
    for (int d = nd - 2; d >= 0; --d) {
      ++idx[d];
      for (int k = 0; k < N; ++k) off[k] += bc.stride[k][d];
      if (idx[d] < bc.shape[d]) break;
      idx[d] = 0;
      for (int k = 0; k < N; ++k) off[k] -= bc.shape[d] * bc.stride[k][d];
    }
  }
}

// Input k's element offset for output element i (the reference twins' indexing).
FASTNN_ALWAYS_INLINE int64_t ref_offset(const Broadcast& bc, int k, int64_t i) {
  int64_t off = 0;
  for (int d = bc.ndim - 1; d >= 0; --d) {
    off += (i % bc.shape[d]) * bc.stride[k][d];
    i /= bc.shape[d];
  }
  return off;
}

// The binary operations, as NumPy's loops compute them.
template <BinaryOp Op, typename T>
FASTNN_ALWAYS_INLINE T apply(T a, T b) {
  if constexpr (Op == BinaryOp::kAdd) return a + b;
  else if constexpr (Op == BinaryOp::kSubtract) return a - b;
  else if constexpr (Op == BinaryOp::kMultiply) return a * b;
  else if constexpr (Op == BinaryOp::kDivide) return a / b;
  else if constexpr (Op == BinaryOp::kMaximum) return (a > b || a != a) ? a : b;  // NaN in a or b wins; a == b: b
  else if constexpr (Op == BinaryOp::kAddRelu) {  // fastnn's ReLU of the rounded sum: NaN and -0 pass
    const T s = a + b;
    return s < T(0) ? T(0) : s;
  }
  else return (a < b || a != a) ? a : b;                                           // kMinimum
}

template <CompareOp Op, typename T>
FASTNN_ALWAYS_INLINE uint8_t apply_compare(T a, T b) {
  if constexpr (Op == CompareOp::kEqual) return a == b;
  else if constexpr (Op == CompareOp::kNotEqual) return a != b;
  else if constexpr (Op == CompareOp::kLess) return a < b;
  else if constexpr (Op == CompareOp::kLessEqual) return a <= b;
  else if constexpr (Op == CompareOp::kGreater) return a > b;
  else return a >= b;
}

// One run of out[j] = f(a[j * sa], b[j * sb]) with the common stride pairs as their own loops (vectorised).
template <typename O, typename A, typename B, typename F>
FASTNN_ALWAYS_INLINE void run2(O* out, const A* a, int64_t sa, const B* b, int64_t sb, int64_t len, const F& f) {
  if (sa == 1 && sb == 1) {
    for (int64_t j = 0; j < len; ++j) out[j] = f(a[j], b[j]);
  } else if (sa == 1 && sb == 0) {
    const B bv = b[0];
    for (int64_t j = 0; j < len; ++j) out[j] = f(a[j], bv);
  } else if (sa == 0 && sb == 1) {
    const A av = a[0];
    for (int64_t j = 0; j < len; ++j) out[j] = f(av, b[j]);
  } else {
    for (int64_t j = 0; j < len; ++j) out[j] = f(a[j * sa], b[j * sb]);
  }
}

template <typename O, typename A, typename B, typename F>
void broadcast2(O* out, const A* a, const B* b, const Broadcast& bc, const F& f) {
  const int nd = bc.ndim;
  const int64_t sa = bc.stride[0][nd - 1], sb = bc.stride[1][nd - 1];
  parallel_for(0, bc.size(), kElemGrain, [&](int64_t begin, int64_t end) {
    for_each_run<2>(bc, begin, end, [&](int64_t pos, int64_t len, const int64_t* off) {
      run2(out + pos, a + off[0], sa, b + off[1], sb, len, f);
    });
  });
}

template <typename O, typename A, typename B, typename F>
void broadcast2_ref(O* out, const A* a, const B* b, const Broadcast& bc, const F& f) {
  const int64_t n = bc.size();
  for (int64_t i = 0; i < n; ++i) out[i] = f(a[ref_offset(bc, 0, i)], b[ref_offset(bc, 1, i)]);
}

template <typename F>
void dispatch_binary(BinaryOp op, const F& f) {
  switch (op) {
    case BinaryOp::kAdd: f(std::integral_constant<BinaryOp, BinaryOp::kAdd>{}); return;
    case BinaryOp::kSubtract: f(std::integral_constant<BinaryOp, BinaryOp::kSubtract>{}); return;
    case BinaryOp::kMultiply: f(std::integral_constant<BinaryOp, BinaryOp::kMultiply>{}); return;
    case BinaryOp::kDivide: f(std::integral_constant<BinaryOp, BinaryOp::kDivide>{}); return;
    case BinaryOp::kMaximum: f(std::integral_constant<BinaryOp, BinaryOp::kMaximum>{}); return;
    case BinaryOp::kMinimum: f(std::integral_constant<BinaryOp, BinaryOp::kMinimum>{}); return;
    case BinaryOp::kAddRelu: f(std::integral_constant<BinaryOp, BinaryOp::kAddRelu>{}); return;
  }
}

template <typename F>
void dispatch_compare(CompareOp op, const F& f) {
  switch (op) {
    case CompareOp::kEqual: f(std::integral_constant<CompareOp, CompareOp::kEqual>{}); return;
    case CompareOp::kNotEqual: f(std::integral_constant<CompareOp, CompareOp::kNotEqual>{}); return;
    case CompareOp::kLess: f(std::integral_constant<CompareOp, CompareOp::kLess>{}); return;
    case CompareOp::kLessEqual: f(std::integral_constant<CompareOp, CompareOp::kLessEqual>{}); return;
    case CompareOp::kGreater: f(std::integral_constant<CompareOp, CompareOp::kGreater>{}); return;
    case CompareOp::kGreaterEqual: f(std::integral_constant<CompareOp, CompareOp::kGreaterEqual>{}); return;
  }
}

// np.clip with both bounds runs NumPy's clip loop, which keeps x where it equals a bound (so clip(-0.0, 0, 0) is
// -0.0) and lets a NaN bound win; with one bound NumPy runs maximum / minimum, which return the bound on equality.
template <typename T>
FASTNN_ALWAYS_INLINE T clip_both(T x, T lo, T hi) {
  const T v = lo != lo ? lo : (x < lo ? lo : x);
  return hi != hi ? hi : (v > hi ? hi : v);
}

}  // namespace

template <typename T>
void binary(T* out, const T* a, const T* b, const Broadcast& bc, BinaryOp op) {
  DenormalsAreZero ftz;
  dispatch_binary(op, [&](auto k) {
    broadcast2(out, a, b, bc, [](T x, T y) { return apply<decltype(k)::value>(x, y); });
  });
}

template <typename T>
void binary_ref(T* out, const T* a, const T* b, const Broadcast& bc, BinaryOp op) {
  DenormalsAreZero ftz;
  dispatch_binary(op, [&](auto k) {
    broadcast2_ref(out, a, b, bc, [](T x, T y) { return apply<decltype(k)::value>(x, y); });
  });
}

template <typename T>
void compare(uint8_t* out, const T* a, const T* b, const Broadcast& bc, CompareOp op) {
  DenormalsAreZero ftz;
  dispatch_compare(op, [&](auto k) {
    broadcast2(out, a, b, bc, [](T x, T y) { return apply_compare<decltype(k)::value>(x, y); });
  });
}

template <typename T>
void compare_ref(uint8_t* out, const T* a, const T* b, const Broadcast& bc, CompareOp op) {
  DenormalsAreZero ftz;
  dispatch_compare(op, [&](auto k) {
    broadcast2_ref(out, a, b, bc, [](T x, T y) { return apply_compare<decltype(k)::value>(x, y); });
  });
}

template <typename T>
void where(T* out, const uint8_t* cond, const T* a, const T* b, const Broadcast& bc) {
  DenormalsAreZero ftz;
  const int nd = bc.ndim;
  const int64_t sc = bc.stride[0][nd - 1], sa = bc.stride[1][nd - 1], sb = bc.stride[2][nd - 1];
  parallel_for(0, bc.size(), kElemGrain, [&](int64_t begin, int64_t end) {
    for_each_run<3>(bc, begin, end, [&](int64_t pos, int64_t len, const int64_t* off) {
      const uint8_t* c = cond + off[0];
      const T* ar = a + off[1];
      const T* br = b + off[2];
      T* o = out + pos;
      // Both values are loaded before the select (no conditional load), so the loops vectorise as blends.
      if (sc == 1 && sa == 1 && sb == 1) {
        for (int64_t j = 0; j < len; ++j) {
          const T x = ar[j], y = br[j];
          o[j] = c[j] ? x : y;
        }
      } else if (sc == 1 && sa == 1 && sb == 0) {  // where(mask, x, 0.0)
        const T y = br[0];
        for (int64_t j = 0; j < len; ++j) {
          const T x = ar[j];
          o[j] = c[j] ? x : y;
        }
      } else if (sc == 1 && sa == 0 && sb == 1) {
        const T x = ar[0];
        for (int64_t j = 0; j < len; ++j) {
          const T y = br[j];
          o[j] = c[j] ? x : y;
        }
      } else {
        for (int64_t j = 0; j < len; ++j) o[j] = c[j * sc] ? ar[j * sa] : br[j * sb];
      }
    });
  });
}

template <typename T>
void where_ref(T* out, const uint8_t* cond, const T* a, const T* b, const Broadcast& bc) {
  DenormalsAreZero ftz;
  const int64_t n = bc.size();
  for (int64_t i = 0; i < n; ++i)
    out[i] = cond[ref_offset(bc, 0, i)] ? a[ref_offset(bc, 1, i)] : b[ref_offset(bc, 2, i)];
}

template <typename T>
void clip(T* out, const T* x, int64_t n, T lo, T hi, bool has_lo, bool has_hi) {
  DenormalsAreZero ftz;
  parallel_for(0, n, kElemGrain, [&](int64_t b, int64_t e) {
    if (has_lo && has_hi) {
      for (int64_t i = b; i < e; ++i) out[i] = clip_both(x[i], lo, hi);
    } else if (has_lo) {
      for (int64_t i = b; i < e; ++i) out[i] = apply<BinaryOp::kMaximum>(x[i], lo);
    } else if (has_hi) {
      for (int64_t i = b; i < e; ++i) out[i] = apply<BinaryOp::kMinimum>(x[i], hi);
    } else {
      for (int64_t i = b; i < e; ++i) out[i] = x[i];
    }
  });
}

template <typename T>
void clip_ref(T* out, const T* x, int64_t n, T lo, T hi, bool has_lo, bool has_hi) {
  DenormalsAreZero ftz;
  for (int64_t i = 0; i < n; ++i) {
    T v = x[i];
    if (has_lo && has_hi) {  // NumPy's clip loop: NaN anywhere gives NaN, x kept where it equals a bound
      if (std::isnan(lo) || std::isnan(hi) || std::isnan(v)) v = std::isnan(lo) ? lo : std::isnan(hi) ? hi : v;
      else if (v < lo) v = lo;
      else if (v > hi) v = hi;
      if (!std::isnan(v) && v > hi) v = hi;  // lo > hi: hi wins, as in minimum(maximum(x, lo), hi)
    } else if (has_lo) {  // np.maximum(x, lo): NaN wins, lo on equality
      v = std::isnan(v) ? v : (std::isnan(lo) || !(v > lo)) ? lo : v;
    } else if (has_hi) {  // np.minimum(x, hi)
      v = std::isnan(v) ? v : (std::isnan(hi) || !(v < hi)) ? hi : v;
    }
    out[i] = v;
  }
}

template <typename T>
void relu_mask_multiply(T* out, const T* g, const T* y, int64_t n) {
  DenormalsAreZero ftz;
  parallel_for(0, n, kElemGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = g[i] * T(y[i] > T(0));
  });
}

template <typename T>
void relu_mask_multiply_ref(T* out, const T* g, const T* y, int64_t n) {
  DenormalsAreZero ftz;
  for (int64_t i = 0; i < n; ++i) out[i] = y[i] > T(0) ? g[i] * T(1) : g[i] * T(0);
}

template <typename T>
void dropout_mask_multiply(T* out, const T* x, const uint8_t* mask, T scale, const Broadcast& bc) {
  DenormalsAreZero ftz;
  broadcast2(out, x, mask, bc, [scale](T v, uint8_t m) { return (v * T(m != 0)) * scale; });
}

template <typename T>
void dropout_mask_multiply_ref(T* out, const T* x, const uint8_t* mask, T scale, const Broadcast& bc) {
  DenormalsAreZero ftz;
  const int64_t n = bc.size();
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[ref_offset(bc, 0, i)];
    out[i] = (mask[ref_offset(bc, 1, i)] ? v * T(1) : v * T(0)) * scale;
  }
}

#define FASTNN_INSTANTIATE(T)                                                                        \
  template void binary<T>(T*, const T*, const T*, const Broadcast&, BinaryOp);                       \
  template void binary_ref<T>(T*, const T*, const T*, const Broadcast&, BinaryOp);                   \
  template void compare<T>(uint8_t*, const T*, const T*, const Broadcast&, CompareOp);               \
  template void compare_ref<T>(uint8_t*, const T*, const T*, const Broadcast&, CompareOp);           \
  template void where<T>(T*, const uint8_t*, const T*, const T*, const Broadcast&);                  \
  template void where_ref<T>(T*, const uint8_t*, const T*, const T*, const Broadcast&);              \
  template void clip<T>(T*, const T*, int64_t, T, T, bool, bool);                                    \
  template void clip_ref<T>(T*, const T*, int64_t, T, T, bool, bool);                                \
  template void relu_mask_multiply<T>(T*, const T*, const T*, int64_t);                              \
  template void relu_mask_multiply_ref<T>(T*, const T*, const T*, int64_t);                          \
  template void dropout_mask_multiply<T>(T*, const T*, const uint8_t*, T, const Broadcast&);         \
  template void dropout_mask_multiply_ref<T>(T*, const T*, const uint8_t*, T, const Broadcast&);

FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace cpu
}  // namespace fastnn
