// Recurrence kernels: a whole sequence of an LSTM, GRU (reset_after and reset_before) or SimpleRNN cell, forward
// and backward (backpropagation through time). Tier 1: pure C++, C-contiguous buffers, outputs first, int64_t
// sizes, templates instantiated for float and double.
//
// Shapes (B batch, T steps, U units, G gates: lstm 4 (i, f, c, o), gru 3 (z, r, h), simple_rnn 1):
//   xproj (B, T, G*U)   the input projection x @ W (+ bias), computed by the caller as one large GEMM
//   R     (U, G*U)      the recurrent kernel (Keras layout); R_k = R[:, k*U:(k+1)*U]
//   h0, c0 (B, U)       initial states (c only for lstm)
//   mask  (B, T)        uint8 (0 = masked step), or null (every step kept)
//   rmasks (M, B, U)    recurrent (dropout) masks: M = 0 (null), 1 (one mask for every gate) or G (one per gate);
//                       gate k's recurrent product is (h * m_k) @ R_k
//   rbias (G*U,)        gru (reset_after) only: the recurrent bias (null = zeros)
//   outputs (B, T, U)   outputs[:, s] is the output of processing step s
//
// Per processing step s (input time t = s, or T-1-s when reverse):
//   lstm:             z = xproj_t + [(h*m_k) @ R_k]; i, f, o = ra(z_i, z_f, z_o); g = act(z_c);
//                     c' = f*c + i*g; h' = o*act(c')
//   gru:              rec = [(h*m_k) @ R_k] + rbias; z = ra(x_z + rec_z); r = ra(x_r + rec_r);
//                     hh = act(x_h + r*rec_h); h' = z*h + (1-z)*hh
//   gru_reset_before: z = ra(x_z + (h*m_0) @ R_z); r = ra(x_r + (h*m_1) @ R_r); hh = act(x_h + (r*h*m_2) @ R_h);
//                     h' = z*h + (1-z)*hh
//   simple_rnn:       h' = act(xproj_t + (h*m_0) @ R)
// A masked step (mask[b, t] == 0) keeps the states and outputs the previous step's output (zeros before the first
// step), or zeros when zero_output_for_mask (Keras's while-loop rule). The specification, with its exact
// gradient, is src/fastnn/testing/rnn_reference.py.
//
// Threads: the batch is split into fixed blocks of rows (fixed by B alone), each block runs the whole sequence on
// one thread (no barrier per step); the weight gradient is one large GEMM after the sweep. Results are
// bit-identical for every thread count.
#pragma once

#include <cstdint>

#include "fastnn/elementwise.h"

namespace fastnn {

enum class RnnCell : int { kLstm = 0, kGru = 1, kGruResetBefore = 2, kSimpleRnn = 3 };

// Gates per cell: 4, 3, 3, 1.
inline int64_t rnn_gates(RnnCell cell) {
  return cell == RnnCell::kLstm ? 4 : cell == RnnCell::kSimpleRnn ? 1 : 3;
}

// An activation of the cell: one of the ActKind kinds (not kGelu) or the identity ("linear").
struct RnnActivation {
  bool identity = false;
  ActKind kind = ActKind::kTanh;
  double alpha = 1.0;  // elu's alpha, leaky_relu's slope
};

struct RnnParams {
  RnnCell cell = RnnCell::kLstm;
  int64_t batch = 0, steps = 0, units = 0;
  int64_t num_recurrent_masks = 0;  // M: 0, 1 or rnn_gates(cell)
  RnnActivation activation{false, ActKind::kTanh, 1.0};
  RnnActivation recurrent_activation{false, ActKind::kSigmoid, 1.0};
  bool reverse = false;
  bool zero_output_for_mask = false;
};

// What the backward needs, written by the forward (all null in a forward without save_for_backward).
//   h_states (T+1, B, U): the carried h before step 0 (h0) and after each step
//   c_states (T+1, B, U): the same for c (lstm; null otherwise)
//   pre      (T, B, G*U): each gate's pre-activation (the h gate of gru: x_h + r*rec_h, of gru_reset_before:
//                         x_h + (r*h*m_2) @ R_h)
//   gates    (T, B, G*U): each gate's activation (the candidate hh for the gru h gate; h' for simple_rnn)
//   extra    (T, B, U):   lstm act(c'); gru rec_h; gru_reset_before r*h*m_2; null for simple_rnn
// Rows of masked steps hold the candidate values (never read by the backward).
template <typename T>
struct RnnWorkspace {
  T* h_states = nullptr;
  T* c_states = nullptr;
  T* pre = nullptr;
  T* gates = nullptr;
  T* extra = nullptr;
};

// Element counts of the workspace buffers (0 where the cell has none).
struct RnnWorkspaceSizes {
  int64_t h_states = 0, c_states = 0, pre = 0, gates = 0, extra = 0;
};
RnnWorkspaceSizes rnn_workspace_sizes(const RnnParams& p);

namespace cpu {

// outputs (B, T, U), h_last (B, U), c_last (B, U) (lstm; null otherwise). ws: null for inference (nothing kept).
template <typename T>
void rnn_forward(const RnnParams& p, T* outputs, T* h_last, T* c_last, const T* xproj, const T* recurrent_kernel,
                 const T* h0, const T* c0, const uint8_t* mask, const T* recurrent_masks, const T* recurrent_bias,
                 const RnnWorkspace<T>* ws);
template <typename T>
void rnn_forward_ref(const RnnParams& p, T* outputs, T* h_last, T* c_last, const T* xproj, const T* recurrent_kernel,
                     const T* h0, const T* c0, const uint8_t* mask, const T* recurrent_masks,
                     const T* recurrent_bias, const RnnWorkspace<T>* ws);

// The gradient of the forward above (same p, mask, recurrent masks; ws as the forward wrote it):
// d_xproj (B, T, G*U), d_recurrent_kernel (U, G*U), d_h0 (B, U), d_c0 (B, U) (lstm; null otherwise),
// d_recurrent_bias (G*U,) (gru; null otherwise), all overwritten. d_outputs (B, T, U), d_h_last, d_c_last (B, U)
// may be null (zeros).
template <typename T>
void rnn_backward(const RnnParams& p, T* d_xproj, T* d_recurrent_kernel, T* d_h0, T* d_c0, T* d_recurrent_bias,
                  const RnnWorkspace<T>& ws, const T* recurrent_kernel, const T* d_outputs, const T* d_h_last,
                  const T* d_c_last, const uint8_t* mask, const T* recurrent_masks);
template <typename T>
void rnn_backward_ref(const RnnParams& p, T* d_xproj, T* d_recurrent_kernel, T* d_h0, T* d_c0, T* d_recurrent_bias,
                      const RnnWorkspace<T>& ws, const T* recurrent_kernel, const T* d_outputs, const T* d_h_last,
                      const T* d_c_last, const uint8_t* mask, const T* recurrent_masks);

}  // namespace cpu
}  // namespace fastnn
