// Internal to rnn.cpp and rnn_ref.cpp: the sequence recurrence (fastnn/rnn.h), written once over a Policy that
// supplies the GEMM, the activations, the column sums and the way batch-row blocks are run. `step_gemm` is a
// product against the recurrent kernel (or its transpose), which stays the same through one kernel call;
// `gemm` is any other product:
//   rnn.cpp      FastPolicy: step_gemm on the weights packed once per call and thread (cpu/gemm_prepacked.h),
//                cpu::gemm, the SIMD activation kernels of the active path, blocks of rows run in parallel
//                through parallel_for;
//   rnn_ref.cpp  RefPolicy: the textbook gemm_ref, the scalar activation twins (libm), one block, one thread.
//
// Forward, per block of rows (the whole sequence on one thread), per step s: the step's xproj rows are copied into
// the pre-activation buffer, the recurrent GEMM adds h_{s-1} @ R onto it (beta = 1), then a row loop applies the
// gate activations and the cell update, and the mask rule decides states and output. Backward, per block, from
// the last step: the output / state gradients give each gate's pre-activation gradient dZ (kept for all steps,
// (T, B, G*U) in processing order), dh_{s-1} = dZ @ R^T (+ the cell's direct terms), and after the sweep
// dR = sum_s h_{s-1}^T dZ_s is ONE GEMM over all T*B rows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "fastnn/common.h"
#include "fastnn/gemm.h"
#include "fastnn/parallel.h"
#include "fastnn/rnn.h"

namespace fastnn::cpu::rnn_detail {

// The calling thread's scratch (BoundedScratch, common.h: kept between calls up to kKeptScratchBytes, so a training
// loop's backward never page-faults on a fresh multi-megabyte buffer, which was a quarter of the LSTM backward's time
// at the benchmark shape; a larger request gets a buffer of its own). `slot` tells a call's buffers apart.
template <typename T>
class Scratch {
 public:
  Scratch(int64_t elements, int slot)
      : buffer_(kept(slot), sizeof(T) * static_cast<size_t>(elements > 0 ? elements : 1)) {}
  T* get() const { return static_cast<T*>(buffer_.get()); }

 private:
  static ScratchBuffer& kept(int slot) {
    static thread_local ScratchBuffer buffers[3];
    return buffers[slot];
  }
  BoundedScratch buffer_;
};

template <typename T>
void copy_rows(T* dst, const T* src, int64_t n) {
  if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(T));
}
template <typename T>
void zero(T* dst, int64_t n) {
  if (n > 0) std::memset(dst, 0, static_cast<size_t>(n) * sizeof(T));
}

// The backward's empty cases (no rows, no units or no steps): writes every output and returns true.
template <typename T>
bool degenerate_backward(const RnnParams& p, T* d_xproj, T* dR, T* d_h0, T* d_c0, T* d_rbias, const T* d_hl,
                         const T* d_cl) {
  const int64_t B = p.batch, S = p.steps, U = p.units, GU = rnn_gates(p.cell) * p.units;
  if (B > 0 && U > 0 && S > 0) return false;
  zero(d_xproj, B * S * GU);
  zero(dR, U * GU);
  if (d_rbias) zero(d_rbias, GU);
  if (d_hl) copy_rows(d_h0, d_hl, B * U); else zero(d_h0, B * U);
  if (d_c0) {
    if (d_cl) copy_rows(d_c0, d_cl, B * U); else zero(d_c0, B * U);
  }
  return true;
}

// Row loops of the cells with restrict-qualified rows (the compiler cannot otherwise prove the gate rows of one
// buffer distinct, and left the LSTM backward's loop scalar).
template <typename T>
void add_rows(T* FASTNN_RESTRICT y, const T* FASTNN_RESTRICT a, const T* FASTNN_RESTRICT b, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = a[j] + b[j];
}
template <typename T>
void mul_rows(T* FASTNN_RESTRICT y, const T* FASTNN_RESTRICT a, const T* FASTNN_RESTRICT b, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = a[j] * b[j];
}
// LSTM: c' = f*c + i*g.
template <typename T>
void lstm_cell(T* FASTNN_RESTRICT c_new, const T* FASTNN_RESTRICT ig, const T* FASTNN_RESTRICT fg,
               const T* FASTNN_RESTRICT gg, const T* FASTNN_RESTRICT c_prev, int64_t n) {
  for (int64_t j = 0; j < n; ++j) c_new[j] = fg[j] * c_prev[j] + ig[j] * gg[j];
}
// LSTM backward through c' = f*c + i*g: di holds act'(c') * d act(c') on entry; dc holds d c' from the next step
// on entry and d c_{s-1} on exit.
template <typename T>
void lstm_cell_backward(T* FASTNN_RESTRICT di, T* FASTNN_RESTRICT df, T* FASTNN_RESTRICT dgg, T* FASTNN_RESTRICT dc,
                        const T* FASTNN_RESTRICT ig, const T* FASTNN_RESTRICT fg, const T* FASTNN_RESTRICT gg,
                        const T* FASTNN_RESTRICT c_prev, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const T dcn = dc[j] + di[j];
    di[j] = dcn * gg[j];
    df[j] = dcn * c_prev[j];
    dgg[j] = dcn * ig[j];
    dc[j] = dcn * fg[j];
  }
}

// y += a (y and a distinct).
template <typename T>
void add_to(T* FASTNN_RESTRICT y, const T* FASTNN_RESTRICT a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] += a[j];
}
// y += a * b.
template <typename T>
void add_product(T* FASTNN_RESTRICT y, const T* FASTNN_RESTRICT a, const T* FASTNN_RESTRICT b, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] += a[j] * b[j];
}
// GRU: h' = z*h + (1-z)*hh.
template <typename T>
void gru_mix(T* FASTNN_RESTRICT h_new, const T* FASTNN_RESTRICT zg, const T* FASTNN_RESTRICT hh,
             const T* FASTNN_RESTRICT h, int64_t n) {
  for (int64_t j = 0; j < n; ++j) h_new[j] = zg[j] * h[j] + (T(1) - zg[j]) * hh[j];
}
// GRU backward through h' = z*h + (1-z)*hh: d z, d hh, and dh += d h' * z.
template <typename T>
void gru_mix_backward(T* FASTNN_RESTRICT dzg, T* FASTNN_RESTRICT dhh, T* FASTNN_RESTRICT dh,
                      const T* FASTNN_RESTRICT d, const T* FASTNN_RESTRICT zg, const T* FASTNN_RESTRICT hh,
                      const T* FASTNN_RESTRICT h, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    dzg[j] = d[j] * (h[j] - hh[j]);
    dhh[j] = d[j] * (T(1) - zg[j]);
    dh[j] += d[j] * zg[j];
  }
}

template <typename T, typename Policy>
struct Engine {
  using Act = typename Policy::Act;

  const RnnParams& p;
  const T* R;
  const uint8_t* mask;
  const T* rmasks;
  int64_t B, S, U, G, GU, M;
  Act act, ract;

  Engine(const RnnParams& params, const T* recurrent_kernel, const uint8_t* mask_, const T* recurrent_masks)
      : p(params),
        R(recurrent_kernel),
        mask(mask_),
        rmasks(recurrent_masks),
        B(params.batch),
        S(params.steps),
        U(params.units),
        G(rnn_gates(params.cell)),
        GU(rnn_gates(params.cell) * params.units),
        M(recurrent_masks ? params.num_recurrent_masks : 0),
        act(Policy::make_act(params.activation)),
        ract(Policy::make_act(params.recurrent_activation)) {}

  int64_t time_of(int64_t s) const { return p.reverse ? S - 1 - s : s; }
  bool kept(int64_t b, int64_t t) const { return mask == nullptr || mask[b * S + t] != 0; }
  // Recurrent mask of gate k for row b (null: none).
  const T* rmask(int64_t k, int64_t b) const {
    if (M == 0) return nullptr;
    return rmasks + ((M == 1 ? 0 : k) * B + b) * U;
  }

  // dst (nr rows, row stride ldc) = beta * dst + [(h * m_k) @ R_k for k in [k0, k1)] + bias[k0*U:k1*U].
  // h is (nr, U) contiguous, rows r0.. of the batch; hm is an (nr, U) scratch.
  void recurrent_product(T* dst, int64_t ldc, T beta, const T* bias, const T* h, int64_t r0, int64_t nr, int64_t k0,
                         int64_t k1, T* hm) const {
    GemmParams<T> g;
    g.m = nr;
    g.k = U;
    g.lda = U;
    g.ldb = GU;
    g.ldc = ldc;
    g.beta = beta;
    if (M <= 1) {
      const T* a = h;
      if (M == 1) {
        const T* m = rmask(0, r0);
        for (int64_t i = 0; i < nr * U; ++i) hm[i] = h[i] * m[i];
        a = hm;
      }
      g.n = (k1 - k0) * U;
      g.bias = bias ? bias + k0 * U : nullptr;
      Policy::step_gemm(dst, a, R + k0 * U, g);
      return;
    }
    g.n = U;
    for (int64_t k = k0; k < k1; ++k) {
      const T* m = rmask(k, r0);
      for (int64_t i = 0; i < nr * U; ++i) hm[i] = h[i] * m[i];
      g.bias = bias ? bias + k * U : nullptr;
      Policy::step_gemm(dst + (k - k0) * U, hm, R + k * U, g);
    }
  }

  // dh (nr, U) += [(dZ_k @ R_k^T) * m_k for k in [k0, k1)]; dZ rows have stride GU (gate k at column k*U);
  // rt is R^T (G*U, U) contiguous (a product against it runs without transposed packing); tmp is an (nr, U)
  // scratch.
  void recurrent_product_backward(T* dh, const T* dz, const T* rt, int64_t r0, int64_t nr, int64_t k0, int64_t k1,
                                  T* tmp) const {
    GemmParams<T> g;
    g.m = nr;
    g.n = U;
    g.lda = GU;
    g.ldb = U;
    g.ldc = U;
    if (M == 0) {
      g.k = (k1 - k0) * U;
      g.beta = 1;
      Policy::step_gemm(dh, dz + k0 * U, rt + k0 * U * U, g);
      return;
    }
    if (M == 1) {
      g.k = (k1 - k0) * U;
      Policy::step_gemm(tmp, dz + k0 * U, rt + k0 * U * U, g);
      const T* m = rmask(0, r0);
      for (int64_t i = 0; i < nr * U; ++i) dh[i] += tmp[i] * m[i];
      return;
    }
    g.k = U;
    for (int64_t k = k0; k < k1; ++k) {
      Policy::step_gemm(tmp, dz + k * U, rt + k * U * U, g);
      const T* m = rmask(k, r0);
      for (int64_t i = 0; i < nr * U; ++i) dh[i] += tmp[i] * m[i];
    }
  }

  // ---------------------------------------------------------------- forward
  void forward(T* outputs, T* h_last, T* c_last, const T* xproj, const T* h0, const T* c0, const T* rbias,
               const RnnWorkspace<T>* ws) const {
    const bool lstm = p.cell == RnnCell::kLstm;
    const int64_t blocks = Policy::blocks(B);
    Policy::for_blocks(blocks, [&](int64_t blk) {
      const int64_t r0 = fastnn::detail::chunk_begin(B, blocks, blk);
      const int64_t nr = fastnn::detail::chunk_begin(B, blocks, blk + 1) - r0;
      if (nr <= 0) return;
      const int64_t nU = nr * U, nGU = nr * GU;
      // Scratch: double-buffered states and per-step buffers when nothing is saved; always the masked-h and
      // recurrent-product buffers; the kept rows' states gathered (and, when saved, their step buffers).
      std::vector<T> scratch(static_cast<size_t>(12 * nU + 5 * nGU));
      T* hm = scratch.data();
      T* tmpU = hm + nU;
      T* rec = tmpU + nU;  // gru: the recurrent product (nr, G*U)
      T* hbuf[2] = {rec + nGU, rec + nGU + nU};
      T* cbuf[2] = {hbuf[1] + nU, hbuf[1] + 2 * nU};
      T* prebuf = cbuf[1] + nU;
      T* gatebuf = prebuf + nGU;
      T* extrabuf = gatebuf + nGU;
      T* kept_h[2] = {extrabuf + nU, extrabuf + 2 * nU};  // h_{s-1}, h_s of the kept rows
      T* kept_c[2] = {kept_h[1] + nU, kept_h[1] + 2 * nU};
      T* kept_pre = kept_c[1] + nU;  // when saved: pre, gates, extra of the kept rows, scattered to ws after
      T* kept_gates = kept_pre + nGU;
      T* kept_extra = kept_gates + nGU;
      std::vector<int64_t> rows(static_cast<size_t>(nr));
      auto h_at = [&](int64_t s) { return ws ? ws->h_states + (s * B + r0) * U : hbuf[s & 1]; };
      auto c_at = [&](int64_t s) { return ws ? ws->c_states + (s * B + r0) * U : cbuf[s & 1]; };
      copy_rows(h_at(0), h0 + r0 * U, nU);
      if (lstm) copy_rows(c_at(0), c0 + r0 * U, nU);
      for (int64_t s = 0; s < S; ++s) {
        const int64_t t = time_of(s);
        T* hp = h_at(s);
        T* hn = h_at(s + 1);
        T* cp = lstm ? c_at(s) : nullptr;
        T* cn = lstm ? c_at(s + 1) : nullptr;
        T* pre = ws ? ws->pre + (s * B + r0) * GU : prebuf;
        T* gates = ws ? ws->gates + (s * B + r0) * GU : gatebuf;
        T* extra = ws ? (ws->extra ? ws->extra + (s * B + r0) * U : nullptr) : extrabuf;
        // The rows this step computes: all of them, or (a mask without recurrent masks, which are per row) only
        // the kept ones, gathered, so padding costs no GEMM rows. The GEMM's row results do not depend on the
        // other rows (Policy::step_gemm), so a row's bits are the same either way.
        int64_t nk = nr;
        if (mask && M == 0) {
          nk = 0;
          for (int64_t i = 0; i < nr; ++i)
            if (kept(r0 + i, t)) rows[nk++] = i;
        }
        if (nk == nr) {
          for (int64_t i = 0; i < nr; ++i) copy_rows(pre + i * GU, xproj + ((r0 + i) * S + t) * GU, GU);
          step_forward(hp, hn, cp, cn, pre, gates, extra, rec, hm, tmpU, rbias, r0, nr);
        } else if (nk > 0) {
          T* kpre = ws ? kept_pre : prebuf;
          T* kgates = ws ? kept_gates : gatebuf;
          T* kextra = ws ? (ws->extra ? kept_extra : nullptr) : extrabuf;
          for (int64_t k = 0; k < nk; ++k) {
            const int64_t i = rows[k];
            copy_rows(kpre + k * GU, xproj + ((r0 + i) * S + t) * GU, GU);
            copy_rows(kept_h[0] + k * U, hp + i * U, U);
            if (lstm) copy_rows(kept_c[0] + k * U, cp + i * U, U);
          }
          step_forward(kept_h[0], kept_h[1], kept_c[0], kept_c[1], kpre, kgates, kextra, rec, hm, tmpU, rbias, r0,
                       nk);
          for (int64_t k = 0; k < nk; ++k) {
            const int64_t i = rows[k];
            copy_rows(hn + i * U, kept_h[1] + k * U, U);
            if (lstm) copy_rows(cn + i * U, kept_c[1] + k * U, U);
          }
        }
        if (ws && nk < nr) {  // the saved step buffers: the kept rows' values, zeros for the masked rows
          for (int64_t i = 0, k = 0; i < nr; ++i) {
            const bool computed = k < nk && rows[k] == i;
            if (computed) {
              copy_rows(pre + i * GU, kept_pre + k * GU, GU);
              copy_rows(gates + i * GU, kept_gates + k * GU, GU);
              if (extra) copy_rows(extra + i * U, kept_extra + k * U, U);
              ++k;
            } else {
              zero(pre + i * GU, GU);
              zero(gates + i * GU, GU);
              if (extra) zero(extra + i * U, U);
            }
          }
        }
        // The mask rule: a masked row keeps its states and repeats the previous output (or zeros).
        for (int64_t i = 0; i < nr; ++i) {
          const int64_t b = r0 + i;
          T* y = outputs + (b * S + s) * U;
          if (kept(b, t)) {
            copy_rows(y, hn + i * U, U);
            continue;
          }
          copy_rows(hn + i * U, hp + i * U, U);
          if (lstm) copy_rows(cn + i * U, cp + i * U, U);
          if (p.zero_output_for_mask || s == 0)
            zero(y, U);
          else
            copy_rows(y, y - U, U);
        }
      }
      copy_rows(h_last + r0 * U, h_at(S), nU);
      if (lstm) copy_rows(c_last + r0 * U, c_at(S), nU);
    });
  }

  void step_forward(const T* hp, T* hn, const T* cp, T* cn, T* pre, T* gates, T* extra, T* rec, T* hm, T* tmpU,
                    const T* rbias, int64_t r0, int64_t nr) const {
    (void)tmpU;
    switch (p.cell) {
      case RnnCell::kLstm: {
        recurrent_product(pre, GU, T(1), nullptr, hp, r0, nr, 0, 4, hm);
        for (int64_t i = 0; i < nr; ++i) {
          const T* z = pre + i * GU;
          T* a = gates + i * GU;
          ract.forward(a, z, 2 * U);                  // i, f
          act.forward(a + 2 * U, z + 2 * U, U);       // g
          ract.forward(a + 3 * U, z + 3 * U, U);      // o
          const T *ig = a, *fg = a + U, *gg = a + 2 * U, *og = a + 3 * U;
          const T* c_prev = cp + i * U;
          T* c_new = cn + i * U;
          lstm_cell(c_new, ig, fg, gg, c_prev, U);
          T* tc = extra + i * U;
          act.forward(tc, c_new, U);
          T* h_new = hn + i * U;
          mul_rows(h_new, og, tc, U);
        }
        break;
      }
      case RnnCell::kGru: {
        recurrent_product(rec, GU, T(0), rbias, hp, r0, nr, 0, 3, hm);
        for (int64_t i = 0; i < nr; ++i) {
          T* z = pre + i * GU;
          T* a = gates + i * GU;
          const T* r_ = rec + i * GU;
          add_to(z, r_, 2 * U);
          ract.forward(a, z, 2 * U);  // z, r
          const T* rg = a + U;
          T* rec_h = extra + i * U;
          copy_rows(rec_h, r_ + 2 * U, U);
          add_product(z + 2 * U, rg, rec_h, U);
          act.forward(a + 2 * U, z + 2 * U, U);  // hh
          mix(hn + i * U, a, a + 2 * U, hp + i * U);
        }
        break;
      }
      case RnnCell::kGruResetBefore: {
        recurrent_product(pre, GU, T(1), nullptr, hp, r0, nr, 0, 2, hm);
        for (int64_t i = 0; i < nr; ++i) {
          ract.forward(gates + i * GU, pre + i * GU, 2 * U);
          const T* rg = gates + i * GU + U;
          const T* h = hp + i * U;
          const T* m = rmask(2, r0 + i);
          T* rh = extra + i * U;
          if (m)
            for (int64_t j = 0; j < U; ++j) rh[j] = rg[j] * h[j] * m[j];
          else
            for (int64_t j = 0; j < U; ++j) rh[j] = rg[j] * h[j];
        }
        GemmParams<T> g;
        g.m = nr;
        g.n = U;
        g.k = U;
        g.lda = U;
        g.ldb = GU;
        g.ldc = GU;
        g.beta = 1;
        Policy::step_gemm(pre + 2 * U, extra, R + 2 * U, g);
        for (int64_t i = 0; i < nr; ++i) {
          T* a = gates + i * GU;
          act.forward(a + 2 * U, pre + i * GU + 2 * U, U);
          mix(hn + i * U, a, a + 2 * U, hp + i * U);
        }
        break;
      }
      case RnnCell::kSimpleRnn: {
        recurrent_product(pre, GU, T(1), nullptr, hp, r0, nr, 0, 1, hm);
        act.forward(gates, pre, nr * U);
        copy_rows(hn, gates, nr * U);
        break;
      }
    }
  }

  // GRU: h' = z*h + (1-z)*hh.
  void mix(T* h_new, const T* zg, const T* hh, const T* h) const { gru_mix(h_new, zg, hh, h, U); }

  // ---------------------------------------------------------------- backward
  void backward(T* d_xproj, T* dR, T* d_h0, T* d_c0, T* d_rbias, const RnnWorkspace<T>& ws, const T* d_out,
                const T* d_hl, const T* d_cl) const {
    const bool lstm = p.cell == RnnCell::kLstm;
    const bool rb = p.cell == RnnCell::kGruResetBefore;
    // dZ of every step in processing order: the recurrent-product side of each gate's pre-activation gradient.
    // With a mask and no recurrent masks only the kept rows are stored (a masked row's dZ is zero: it adds
    // nothing to dR), so the weight-gradient GEMM below runs over the kept rows alone: the rows of step s, block
    // blk start at row base[s * blocks + blk]; the h_{s-1} (and GRU-reset-before r*h) rows beside them are
    // gathered into kept_h / kept_rh. Otherwise every row, masked ones as zeros, at s * B + b.
    const int64_t blocks = Policy::blocks(B);
    const bool compact = mask != nullptr && M == 0;
    std::vector<int64_t> base(static_cast<size_t>(S * blocks));
    int64_t rows_kept = 0;
    for (int64_t s = 0; s < S; ++s)
      for (int64_t blk = 0; blk < blocks; ++blk) {
        base[s * blocks + blk] = rows_kept;
        const int64_t r0 = fastnn::detail::chunk_begin(B, blocks, blk);
        const int64_t r1 = fastnn::detail::chunk_begin(B, blocks, blk + 1);
        for (int64_t b = r0; b < r1; ++b) rows_kept += !compact || kept(b, time_of(s));
      }
    Scratch<T> dz_all(rows_kept * GU, 0);  // (not zero-filled: every row is written)
    Scratch<T> kept_h(compact ? rows_kept * U : 0, 2);
    std::unique_ptr<T[]> kept_rh(compact && rb ? new T[static_cast<size_t>(std::max<int64_t>(rows_kept * U, 1))]
                                              : nullptr);
    // R^T (G*U, U): the per-step products dZ @ R^T read it without transposition.
    std::unique_ptr<T[]> rt(new T[static_cast<size_t>(GU * U)]);
    for (int64_t j = 0; j < U; ++j)
      for (int64_t c = 0; c < GU; ++c) rt[c * U + j] = R[j * GU + c];
    Policy::for_blocks(blocks, [&](int64_t blk) {
      const int64_t r0 = fastnn::detail::chunk_begin(B, blocks, blk);
      const int64_t nr = fastnn::detail::chunk_begin(B, blocks, blk + 1) - r0;
      if (nr <= 0) return;
      const int64_t nU = nr * U, nGU = nr * GU;
      std::vector<T> scratch(static_cast<size_t>(7 * nU + 3 * nGU));
      std::vector<int64_t> rows(static_cast<size_t>(nr));
      T* dh = scratch.data();
      T* dh_next = dh + nU;
      T* dc = dh_next + nU;
      T* carry = dc + nU;  // gradient reaching y_{s} through a masked step s+1's repeated output
      T* dhn = carry + nU;  // gradient of the step's candidate h'
      T* tmpU = dhn + nU;
      T* dgate = tmpU + nU;  // gradient of each gate's activated value (nr, G*U)
      T* dxrow = dgate + nGU;  // gru: the d_xproj rows of the block (nr, G*U)
      T* kept_dz = dxrow + nGU;  // the kept rows of dz and dh_next, gathered for the step's product
      T* kept_dh = kept_dz + nGU;
      if (d_hl) copy_rows(dh, d_hl + r0 * U, nU); else zero(dh, nU);
      if (lstm) { if (d_cl) copy_rows(dc, d_cl + r0 * U, nU); else zero(dc, nU); }
      zero(carry, nU);
      for (int64_t s = S - 1; s >= 0; --s) {
        const int64_t t = time_of(s);
        const T* hp = ws.h_states + (s * B + r0) * U;
        const T* pre = ws.pre + (s * B + r0) * GU;
        const T* gates = ws.gates + (s * B + r0) * GU;
        const T* extra = ws.extra ? ws.extra + (s * B + r0) * U : nullptr;
        // The rows this step computes (as in the forward): all, or the kept ones (rows[0..nk)).
        int64_t nk = nr;
        if (compact) {
          nk = 0;
          for (int64_t i = 0; i < nr; ++i)
            if (kept(r0 + i, t)) rows[nk++] = i;
        }
        T* dz_kept = dz_all.get() + base[s * blocks + blk] * GU;  // this step's stored rows
        T* dz = nk == nr ? dz_kept : kept_dz;  // the block's dz rows (masked rows: zeros)
        // Split the incoming gradient between the candidate (kept rows) and the carries (masked rows).
        for (int64_t i = 0; i < nr; ++i) {
          const int64_t b = r0 + i;
          T* gy = tmpU + i * U;
          const T* dyo = d_out ? d_out + (b * S + s) * U : nullptr;
          if (dyo) add_rows(gy, carry + i * U, dyo, U); else copy_rows(gy, carry + i * U, U);
          if (kept(b, t)) {
            add_rows(dhn + i * U, dh + i * U, gy, U);
            zero(carry + i * U, U);
            zero(dh_next + i * U, U);  // the direct terms are added by the cell below
          } else {
            zero(dhn + i * U, U);
            if (p.zero_output_for_mask) zero(carry + i * U, U); else copy_rows(carry + i * U, gy, U);
            copy_rows(dh_next + i * U, dh + i * U, U);  // the state carries through; dc stays as it is
            zero(dz + i * GU, GU);
          }
        }
        const T* cp = lstm ? ws.c_states + (s * B + r0) * U : nullptr;
        const T* cn = lstm ? ws.c_states + ((s + 1) * B + r0) * U : nullptr;
        step_backward(dz, dxrow, dgate, dh_next, dc, dhn, tmpU, hp, pre, gates, extra, cp, cn, rt.get(), r0, nr, t);
        // d_xproj rows of this step's input time (masked rows: zeros).
        const bool gru = p.cell == RnnCell::kGru;
        for (int64_t i = 0; i < nr; ++i) {
          T* dst = d_xproj + ((r0 + i) * S + t) * GU;
          if (!kept(r0 + i, t)) zero(dst, GU);
          else copy_rows(dst, gru ? dxrow + i * GU : dz + i * GU, GU);
        }
        if (compact) {  // the kept rows' h_{s-1} (and r*h) beside their stored dz rows, for the dR GEMM
          const int64_t k0 = base[s * blocks + blk];
          for (int64_t k = 0; k < nk; ++k) {
            copy_rows(kept_h.get() + (k0 + k) * U, hp + rows[k] * U, U);
            if (rb) copy_rows(kept_rh.get() + (k0 + k) * U, extra + rows[k] * U, U);
          }
        }
        // dh_{s-1} += dZ @ R^T: for all rows, or (as in the forward) only the kept ones, gathered: a masked row's
        // dz is zero, and the product's row results do not depend on the other rows.
        if (nk == nr) {
          recurrent_product_backward(dh_next, dz, rt.get(), r0, nr, 0, rb ? 2 : G, tmpU);
        } else if (nk > 0) {
          for (int64_t k = 0; k < nk; ++k) {
            copy_rows(dz_kept + k * GU, dz + rows[k] * GU, GU);
            copy_rows(kept_dh + k * U, dh_next + rows[k] * U, U);
          }
          recurrent_product_backward(kept_dh, dz_kept, rt.get(), r0, nk, 0, rb ? 2 : G, tmpU);
          for (int64_t k = 0; k < nk; ++k) copy_rows(dh_next + rows[k] * U, kept_dh + k * U, U);
        }
        std::swap(dh, dh_next);
      }
      copy_rows(d_h0 + r0 * U, dh, nU);
      if (lstm) copy_rows(d_c0 + r0 * U, dc, nU);
    });

    // dR = sum over all T*B rows (or the kept ones) of (h_{s-1} * m_k)^T dZ_k: one GEMM (one per gate with
    // per-gate masks).
    const int64_t rows = rows_kept;
    const int64_t k_end = rb ? 2 : G;
    GemmParams<T> g;
    g.m = U;
    g.k = rows;
    g.trans_a = true;
    g.lda = U;
    g.ldb = GU;
    g.ldc = GU;
    if (M == 0) {
      g.n = k_end * U;
      Policy::gemm(dR, compact ? kept_h.get() : ws.h_states, dz_all.get(), g);
    } else {
      Scratch<T> hm(rows * U, 1);
      const int64_t per = M == 1 ? k_end : 1;
      for (int64_t k = 0; k < k_end; k += per) {
        for (int64_t s = 0; s < S; ++s)
          for (int64_t b = 0; b < B; ++b) {
            const T* h = ws.h_states + (s * B + b) * U;
            const T* m = rmask(k, b);
            T* o = hm.get() + (s * B + b) * U;
            for (int64_t j = 0; j < U; ++j) o[j] = h[j] * m[j];
          }
        g.n = per * U;
        Policy::gemm(dR + k * U, hm.get(), dz_all.get() + k * U, g);
      }
    }
    if (rb) {  // the h gate's product is (r*h*m_2) @ R_h
      g.n = U;
      Policy::gemm(dR + 2 * U, compact ? kept_rh.get() : ws.extra, dz_all.get() + 2 * U, g);
    }
    if (d_rbias) {
      zero(d_rbias, GU);
      Policy::column_sums(d_rbias, dz_all.get(), rows, GU);
    }
  }

  // One step's gate gradients for the kept rows of the block (masked rows: dz already zero): dz (the recurrent
  // side of each gate's pre-activation gradient), dxrow (gru: the d_xproj row, whose h gate differs from dz's),
  // dh_next += the cell's direct terms (the GEMM part is added by the caller), dc (lstm) becomes dc_{s-1}.
  void step_backward(T* dz, T* dxrow, T* dgate, T* dh_next, T* dc, const T* dhn, T* tmp, const T* hp, const T* pre,
                     const T* gates, const T* extra, const T* cp, const T* cn, const T* rt, int64_t r0,
                     int64_t nr, int64_t t) const {
    switch (p.cell) {
      case RnnCell::kLstm:
        for (int64_t i = 0; i < nr; ++i) {
          if (!kept(r0 + i, t)) continue;
          const T* a = gates + i * GU;
          const T* z = pre + i * GU;
          const T* tc = extra + i * U;
          const T* d = dhn + i * U;
          const T* c_prev = cp + i * U;
          T* dg = dgate + i * GU;
          T* dtc = tmp + i * U;
          T* dcr = dc + i * U;
          mul_rows(dg + 3 * U, d, tc, U);  // d o
          mul_rows(dtc, d, a + 3 * U, U);  // d act(c')
          act.backward(dg, dtc, cn + i * U, tc, U);  // dg[0:U) = act'(c') * d act(c'), read back at once below
          lstm_cell_backward(dg, dg + U, dg + 2 * U, dcr, a, a + U, a + 2 * U, c_prev, U);
          T* dzr = dz + i * GU;
          ract.backward(dzr, dg, z, a, 2 * U);
          act.backward(dzr + 2 * U, dg + 2 * U, z + 2 * U, a + 2 * U, U);
          ract.backward(dzr + 3 * U, dg + 3 * U, z + 3 * U, a + 3 * U, U);
        }
        break;
      case RnnCell::kGru:
        for (int64_t i = 0; i < nr; ++i) {
          if (!kept(r0 + i, t)) continue;
          const T* a = gates + i * GU;
          const T* z = pre + i * GU;
          const T* rec_h = extra + i * U;
          const T* d = dhn + i * U;
          const T* h = hp + i * U;
          T* dg = dgate + i * GU;
          T* dx = dxrow + i * GU;
          T* dzr = dz + i * GU;
          T* dhr = dh_next + i * U;
          gru_mix_backward(dg, dg + 2 * U, dhr, d, a, a + 2 * U, h, U);  // d z, d hh, dh += d h' * z
          act.backward(dx + 2 * U, dg + 2 * U, z + 2 * U, a + 2 * U, U);  // d (x_h + r*rec_h)
          mul_rows(dg + U, dx + 2 * U, rec_h, U);                          // d r
          mul_rows(dzr + 2 * U, dx + 2 * U, a + U, U);                     // d rec_h
          ract.backward(dx, dg, z, a, 2 * U);
          copy_rows(dzr, dx, 2 * U);
        }
        break;
      case RnnCell::kGruResetBefore: {
        for (int64_t i = 0; i < nr; ++i) {
          if (!kept(r0 + i, t)) continue;
          const T* a = gates + i * GU;
          const T* d = dhn + i * U;
          const T* h = hp + i * U;
          T* dg = dgate + i * GU;
          T* dhr = dh_next + i * U;
          gru_mix_backward(dg, dg + 2 * U, dhr, d, a, a + 2 * U, h, U);
          act.backward(dz + i * GU + 2 * U, dg + 2 * U, pre + i * GU + 2 * U, a + 2 * U, U);
        }
        // d (r*h*m_2) = d a_h @ R_h^T for the block (masked rows: zero rows of dz give zeros).
        GemmParams<T> g;
        g.m = nr;
        g.n = U;
        g.k = U;
        g.lda = GU;
        g.ldb = U;
        g.ldc = U;
        Policy::step_gemm(tmp, dz + 2 * U, rt + 2 * U * U, g);
        for (int64_t i = 0; i < nr; ++i) {
          if (!kept(r0 + i, t)) continue;
          const T* a = gates + i * GU;
          const T* h = hp + i * U;
          const T* m = rmask(2, r0 + i);
          const T* w = tmp + i * U;
          T* dg = dgate + i * GU;
          T* dhr = dh_next + i * U;
          for (int64_t j = 0; j < U; ++j) {
            const T wm = m ? w[j] * m[j] : w[j];
            dg[U + j] = wm * h[j];       // d r
            dhr[j] += wm * a[U + j];     // through r*h
          }
          ract.backward(dz + i * GU, dg, pre + i * GU, a, 2 * U);
        }
        break;
      }
      case RnnCell::kSimpleRnn:
        for (int64_t i = 0; i < nr; ++i) {
          if (!kept(r0 + i, t)) continue;
          act.backward(dz + i * GU, dhn + i * U, pre + i * GU, gates + i * GU, U);
        }
        break;
    }
  }
};

}  // namespace fastnn::cpu::rnn_detail
