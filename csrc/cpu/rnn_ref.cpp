// The reference twin of the recurrence kernels (fastnn/rnn.h): the same engine (rnn_impl.h) over the textbook
// gemm_ref, the scalar activation twins (libm) and one block of all rows on one thread, so tests can check the
// fast kernel's GEMM paths, SIMD activations and row blocking against plain code (the semantics themselves are
// checked against the NumPy specification, fastnn/testing/rnn_reference.py).
#include "fastnn/elementwise.h"
#include "fastnn/rnn.h"
#include "rnn_impl.h"

namespace fastnn::cpu {
namespace {

template <typename T>
struct RefPolicy {
  struct Act {
    bool identity = false;
    ActivationParams params;
    void forward(T* y, const T* x, int64_t n) const {
      if (identity) {
        if (y != x) rnn_detail::copy_rows(y, x, n);
      } else {
        activation_forward_ref(y, x, n, params);
      }
    }
    void backward(T* dx, const T* dy, const T* x, const T* y, int64_t n) const {
      if (identity) {
        if (dx != dy) rnn_detail::copy_rows(dx, dy, n);
      } else {
        activation_backward_ref(dx, dy, x, y, n, params);
      }
    }
  };
  static Act make_act(const RnnActivation& a) {
    Act r;
    r.identity = a.identity;
    r.params.kind = a.kind;
    r.params.alpha = a.alpha;
    return r;
  }
  static void gemm(T* c, const T* a, const T* b, const GemmParams<T>& p) { cpu::gemm_ref(c, a, b, p); }
  static void step_gemm(T* c, const T* a, const T* b, const GemmParams<T>& p) { cpu::gemm_ref(c, a, b, p); }
  static void column_sums(T* acc, const T* x, int64_t rows, int64_t cols) {
    cpu::bias_add_backward_ref(acc, x, rows, cols);
  }
  static int64_t blocks(int64_t) { return 1; }
  template <typename F>
  static void for_blocks(int64_t n, const F& f) {
    for (int64_t i = 0; i < n; ++i) f(i);
  }
};

}  // namespace

template <typename T>
void rnn_forward_ref(const RnnParams& p, T* outputs, T* h_last, T* c_last, const T* xproj, const T* recurrent_kernel,
                     const T* h0, const T* c0, const uint8_t* mask, const T* recurrent_masks,
                     const T* recurrent_bias, const RnnWorkspace<T>* ws) {
  DenormalsAreZero ftz;
  if (p.batch <= 0 || p.units <= 0) return;
  rnn_detail::Engine<T, RefPolicy<T>> e(p, recurrent_kernel, mask, recurrent_masks);
  e.forward(outputs, h_last, c_last, xproj, h0, c0, recurrent_bias, ws);
}

template <typename T>
void rnn_backward_ref(const RnnParams& p, T* d_xproj, T* d_recurrent_kernel, T* d_h0, T* d_c0, T* d_recurrent_bias,
                      const RnnWorkspace<T>& ws, const T* recurrent_kernel, const T* d_outputs, const T* d_h_last,
                      const T* d_c_last, const uint8_t* mask, const T* recurrent_masks) {
  DenormalsAreZero ftz;
  if (rnn_detail::degenerate_backward(p, d_xproj, d_recurrent_kernel, d_h0, d_c0, d_recurrent_bias, d_h_last,
                                      d_c_last))
    return;
  rnn_detail::Engine<T, RefPolicy<T>> e(p, recurrent_kernel, mask, recurrent_masks);
  e.backward(d_xproj, d_recurrent_kernel, d_h0, d_c0, d_recurrent_bias, ws, d_outputs, d_h_last, d_c_last);
}

#define FASTNN_RNN_INSTANTIATE(T)                                                                               \
  template void rnn_forward_ref<T>(const RnnParams&, T*, T*, T*, const T*, const T*, const T*, const T*,       \
                                   const uint8_t*, const T*, const T*, const RnnWorkspace<T>*);                \
  template void rnn_backward_ref<T>(const RnnParams&, T*, T*, T*, T*, T*, const RnnWorkspace<T>&, const T*,   \
                                    const T*, const T*, const T*, const uint8_t*, const T*);
FASTNN_RNN_INSTANTIATE(float)
FASTNN_RNN_INSTANTIATE(double)
#undef FASTNN_RNN_INSTANTIATE

}  // namespace fastnn::cpu
