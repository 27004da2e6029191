// The fast recurrence kernels (fastnn/rnn.h): the engine of rnn_impl.h over cpu::gemm, the SIMD activation
// kernels of the active path (elementwise_kernels.h: the same vector sigmoid / tanh the activation ops use) and
// blocks of batch rows run in parallel, each through the whole sequence on one thread.
#include "fastnn/rnn.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "elementwise_kernels.h"
#include "gemm_prepacked.h"
#include "rnn_impl.h"

namespace fastnn {

RnnWorkspaceSizes rnn_workspace_sizes(const RnnParams& p) {
  const int64_t B = p.batch, S = p.steps, U = p.units, G = rnn_gates(p.cell);
  RnnWorkspaceSizes w;
  w.h_states = (S + 1) * B * U;
  w.c_states = p.cell == RnnCell::kLstm ? (S + 1) * B * U : 0;
  w.pre = S * B * G * U;
  w.gates = S * B * G * U;
  w.extra = p.cell == RnnCell::kSimpleRnn ? 0 : S * B * U;
  return w;
}

namespace cpu {
namespace {

// The weights packed for the kernel call running now, shared by its threads and freed when it returns: the
// recurrent kernel does not change during a call, and between calls the optimizer updates it in place, so nothing
// is reused across calls (each call draws a new number). Calls from two Python threads at once are told apart by
// their numbers only approximately (a worker reads the latest number): the worst case is a repack, never a stale
// panel, since a pointer's contents are constant while any call that reads them runs.
std::atomic<uint64_t> g_rnn_calls{0};

template <typename T>
class CallWeights {
 public:
  static CallWeights& instance() {
    static CallWeights weights;
    return weights;
  }
  std::shared_ptr<const PackedB<T>> get(const T* b, const GemmParams<T>& p) {
    const uint64_t call = g_rnn_calls.load(std::memory_order_acquire);
    std::lock_guard<std::mutex> lock(mutex_);
    for (const Entry& e : entries_)
      if (e.call == call && e.b == b && e.k == p.k && e.n == p.n && e.ldb == p.ldb) return e.packed;
    // Bounded: entries a finished call could not release (packed under a later call's number) age out.
    if (entries_.size() >= kMaxEntries) entries_.erase(entries_.begin());
    // Only a K within one KC block: then the prepacked product has the bits of cpu::gemm's direct and packed paths
    // (one chain over K). A longer K (the backward's dZ @ R^T over all gates, K = G*U) would be cut into KC
    // blocks and A repacked at every step; cpu::gemm's direct path reads it in place, faster there (29 vs 34 ms
    // per LSTM backward on one Zen 3 core). Null: cpu::gemm.
    std::shared_ptr<const PackedB<T>> packed;
    if (p.k <= detail::blocked_kernels<T>().kc) packed = std::make_shared<const PackedB<T>>(b, p.k, p.n, p.ldb, false);
    entries_.push_back({call, b, p.k, p.n, p.ldb, std::move(packed)});
    return entries_.back().packed;
  }
  void release(uint64_t call) {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.erase(std::remove_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.call == call; }),
                   entries_.end());
  }

 private:
  struct Entry {
    uint64_t call;
    const T* b;
    int64_t k, n, ldb;
    std::shared_ptr<const PackedB<T>> packed;
  };
  static constexpr size_t kMaxEntries = 16;  // a call packs at most G slices of R and G of R^T
  std::mutex mutex_;
  std::vector<Entry> entries_;
};

// Numbers one kernel call and frees its packed weights when it ends (an exception included).
template <typename T>
class CallScope {
 public:
  CallScope() : call_(g_rnn_calls.fetch_add(1, std::memory_order_acq_rel) + 1) {}
  ~CallScope() { CallWeights<T>::instance().release(call_); }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;

 private:
  uint64_t call_;
};

// Rows per block: the batch is cut into ceil(B / 32) near-equal blocks (a function of B alone, so the work
// and every result are the same for any thread count). 32 rows keep the per-step GEMM (rows x G*U x U) large
// enough to run near the micro-kernel's speed and give two blocks (two threads' work) at the benchmark's B = 64.
// A batch of 16 to 32 rows (Keras's default batch is 32) is still cut in two: as one block it ran on one thread
// (LSTM predict at batch 32, 2 threads, Zen 4: 0.93x PyTorch), and halves of 8-16 rows need fewer micro-kernel row
// tiles each (16 = 12 + 4 against 32 = 12 + 12 + 8 with AVX-512's 12-row tiles). Below 16 rows one tile holds the
// batch, and a second block would only repeat the reading of R.
constexpr int64_t kBlockRows = 32;
constexpr int64_t kMinRowsToSplit = 16;

template <typename T>
struct FastPolicy {
  struct Act {
    bool identity = false;
    T alpha = 1;
    void (*fwd)(T*, const T*, int64_t, T) = nullptr;
    void (*bwd)(T*, const T*, const T*, const T*, int64_t, T) = nullptr;
    void forward(T* y, const T* x, int64_t n) const {
      if (identity) {
        if (y != x) rnn_detail::copy_rows(y, x, n);
      } else {
        fwd(y, x, n, alpha);
      }
    }
    void backward(T* dx, const T* dy, const T* x, const T* y, int64_t n) const {
      if (identity) {
        if (dx != dy) rnn_detail::copy_rows(dx, dy, n);
      } else {
        bwd(dx, dy, x, y, n, alpha);
      }
    }
  };
  static Act make_act(const RnnActivation& a) {
    Act r;
    r.identity = a.identity;
    r.alpha = static_cast<T>(a.alpha);
    if (!a.identity) {
      const auto& k = detail::active_elementwise_kernels<T>();
      r.fwd = k.act_forward[static_cast<int>(a.kind)];
      r.bwd = k.act_backward[static_cast<int>(a.kind)];
    }
    return r;
  }
  static void gemm(T* c, const T* a, const T* b, const GemmParams<T>& p) { cpu::gemm(c, a, b, p); }
  // A step's product against the recurrent kernel R (forward) or R^T (backward): B packed once per kernel call
  // (CallWeights), then every step multiplies the block's few rows by the packed panels. cpu::gemm would read R
  // by rows ldb apart at every step (its direct path: 2 KiB apart for the benchmark's 128 x 512 kernel; one Zen 3
  // core: the LSTM forward 26.6 -> 17.7 ms) or repack it, and would take its GEMV kernels for a single row, whose
  // bits differ: the prepacked product's row results do not depend on the number of rows.
  static void step_gemm(T* c, const T* a, const T* b, const GemmParams<T>& p) {
    const std::shared_ptr<const PackedB<T>> packed = CallWeights<T>::instance().get(b, p);
    if (packed) gemm_prepacked(c, a, *packed, p);
    else cpu::gemm(c, a, b, p);
  }
  static void column_sums(T* acc, const T* x, int64_t rows, int64_t cols) {
    cpu::bias_add_backward(acc, x, rows, cols);
  }
  static int64_t blocks(int64_t batch) {
    const int64_t n = (batch + kBlockRows - 1) / kBlockRows;
    return batch >= kMinRowsToSplit ? std::max<int64_t>(n, 2) : n;
  }
  template <typename F>
  static void for_blocks(int64_t n, const F& f) {
    parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) f(i);
    });
  }
};

bool gelu(const RnnParams& p) {
  return (!p.activation.identity && p.activation.kind == ActKind::kGelu) ||
         (!p.recurrent_activation.identity && p.recurrent_activation.kind == ActKind::kGelu);
}

}  // namespace

template <typename T>
void rnn_forward(const RnnParams& p, T* outputs, T* h_last, T* c_last, const T* xproj, const T* recurrent_kernel,
                 const T* h0, const T* c0, const uint8_t* mask, const T* recurrent_masks, const T* recurrent_bias,
                 const RnnWorkspace<T>* ws) {
  // The exact gelu has no vector kernel (erf): the twin runs it (the bindings do not offer it anyway).
  if (gelu(p))
    return rnn_forward_ref(p, outputs, h_last, c_last, xproj, recurrent_kernel, h0, c0, mask, recurrent_masks,
                           recurrent_bias, ws);
  DenormalsAreZero ftz;
  if (p.batch <= 0 || p.units <= 0) return;
  CallScope<T> call;
  rnn_detail::Engine<T, FastPolicy<T>> e(p, recurrent_kernel, mask, recurrent_masks);
  e.forward(outputs, h_last, c_last, xproj, h0, c0, recurrent_bias, ws);
}

template <typename T>
void rnn_backward(const RnnParams& p, T* d_xproj, T* d_recurrent_kernel, T* d_h0, T* d_c0, T* d_recurrent_bias,
                  const RnnWorkspace<T>& ws, const T* recurrent_kernel, const T* d_outputs, const T* d_h_last,
                  const T* d_c_last, const uint8_t* mask, const T* recurrent_masks) {
  if (gelu(p))
    return rnn_backward_ref(p, d_xproj, d_recurrent_kernel, d_h0, d_c0, d_recurrent_bias, ws, recurrent_kernel,
                            d_outputs, d_h_last, d_c_last, mask, recurrent_masks);
  DenormalsAreZero ftz;
  CallScope<T> call;
  rnn_detail::Engine<T, FastPolicy<T>> e(p, recurrent_kernel, mask, recurrent_masks);
  if (rnn_detail::degenerate_backward(p, d_xproj, d_recurrent_kernel, d_h0, d_c0, d_recurrent_bias, d_h_last,
                                      d_c_last))
    return;
  e.backward(d_xproj, d_recurrent_kernel, d_h0, d_c0, d_recurrent_bias, ws, d_outputs, d_h_last, d_c_last);
}

#define FASTNN_RNN_INSTANTIATE(T)                                                                               \
  template void rnn_forward<T>(const RnnParams&, T*, T*, T*, const T*, const T*, const T*, const T*,           \
                               const uint8_t*, const T*, const T*, const RnnWorkspace<T>*);                    \
  template void rnn_backward<T>(const RnnParams&, T*, T*, T*, T*, T*, const RnnWorkspace<T>&, const T*,       \
                                const T*, const T*, const T*, const uint8_t*, const T*);
FASTNN_RNN_INSTANTIATE(float)
FASTNN_RNN_INSTANTIATE(double)
#undef FASTNN_RNN_INSTANTIATE

}  // namespace cpu
}  // namespace fastnn
