// Fused optimizer updates: one call updates every variable of a model (Keras 3's update formulas).
// Tier 1: pure C++, contiguous buffers, outputs first, int64_t sizes, templates for float and double.
// The caller (fastnn.optimizers) computes the step-dependent scalars (bias corrections, Nadam's momentum
// schedule) once per step and passes them in OptimizerParams; the kernel does the per-element work:
//   g = clip(g * grad_scale, -clipvalue, clipvalue)     (clipnorm / global_clipnorm give grad_scale)
//   var -= var * weight_decay * lr                       (decoupled weight decay, before the update)
//   the optimizer's update of var and its slot arrays s0, s1, s2.
#pragma once

#include <cstdint>

namespace fastnn {

enum class OptKind : int { kSGD = 0, kAdam, kAdagrad, kRMSprop, kAdadelta, kAdamax, kNadam, kLion, kFtrl, kLamb, kAdafactor };

struct OptimizerParams {
  OptKind kind = OptKind::kSGD;
  double lr = 0.01;
  double momentum = 0.0;   // SGD, RMSprop
  bool nesterov = false;   // SGD
  bool amsgrad = false;    // Adam: s2 holds v_hat
  bool centered = false;   // RMSprop: s2 holds the average gradient
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-7;
  double rho = 0.9;        // RMSprop, Adadelta
  double alpha = 0.0;      // Adam: lr * sqrt(1 - beta2^t) / (1 - beta1^t); Adamax: lr / (1 - beta1^t)
  double u_t = 0.0, u_t1 = 0.0, u_prod_t = 1.0, u_prod_t1 = 1.0, beta2_power = 1.0;  // Nadam
  // Ftrl: learning_rate_power, l1 / l2 / l2-shrinkage regularization strengths, beta (from the FTRL paper)
  double lr_power = -0.5, l1 = 0.0, l2 = 0.0, l2_shrinkage = 0.0, ftrl_beta = 0.0;
  double beta1_power = 0.0;  // Lamb: beta1^t (beta2^t is beta2_power)
  // Adafactor: the step t (1-based), beta_2_t = 1 - t^beta_2_decay, epsilon_1 added to g^2, epsilon_2 the floor
  // of rms(var), clip_threshold the rms the update is clipped to
  double local_step = 1.0, beta_2_decay = -0.8, epsilon_1 = 1e-30, epsilon_2 = 1e-3, clip_threshold = 1.0;
  double weight_decay = 0.0;  // var -= var * weight_decay * lr before the update (0: none)
  double clipvalue = 0.0;        // > 0: clip each gradient element to [-clipvalue, clipvalue]
};

namespace cpu {

// Slot arrays per kind (null where unused), each with n elements like var and grad:
//   SGD: s0 = momentum (when momentum != 0)      Adam: s0 = m, s1 = v, s2 = v_hat (amsgrad)
//   Adagrad: s0 = accumulator                      RMSprop: s0 = velocity, s1 = momentum, s2 = average gradient
//   Adadelta: s0 = accumulated grad, s1 = accumulated delta    Adamax: s0 = m, s1 = u    Nadam: s0 = m, s1 = v
//   Lion: s0 = momentum (beta1 / beta2 as in Keras's Lion)     Ftrl: s0 = accumulator, s1 = linear
//   Lamb: s0 = m, s1 = v (runs lamb_update: per-variable trust ratio)
//   Adafactor: not here (adafactor_update takes the shape); optimizer_update throws std::invalid_argument
// Runs on the active SIMD path; every path performs the reference's IEEE operations in the reference's order, so
// the results are bit-identical to optimizer_update_ref (the plain scalar loop) on every ISA.
template <typename T>
void optimizer_update(T* var, T* s0, T* s1, T* s2, const T* grad, int64_t n, double grad_scale,
                      const OptimizerParams& p);
template <typename T>
void optimizer_update_ref(T* var, T* s0, T* s1, T* s2, const T* grad, int64_t n, double grad_scale,
                          const OptimizerParams& p);

// Lamb (keras/src/optimizers/lamb.py), one variable: s0 = m, s1 = v; Adam's bias-corrected step u scaled by the
// trust ratio ||var|| / ||u|| (norms accumulated in double over fixed blocks: thread-count independent).
template <typename T>
void lamb_update(T* var, T* m, T* v, const T* grad, int64_t n, double grad_scale, const OptimizerParams& p);

// Adafactor (keras/src/optimizers/adafactor.py), one variable seen as batch x rows x cols (its last two axes;
// batch = 1, rows = 1, cols = n when it has fewer than 2): factored: r (batch x rows) and c (batch x cols) are the
// decayed row and column means of g^2 + epsilon_1 and v = (r / mean(r)) (outer) c is stored; not factored: r and
// c are unused placeholders and v is the decayed g^2 + epsilon_1. Then var -= alpha_t * u / max(1, rms(u) /
// clip_threshold), u = g / sqrt(v), alpha_t = max(epsilon_2, rms(var)) * min(lr, 1 / sqrt(t)). Reductions in
// double over a fixed partition: thread-count independent.
template <typename T>
void adafactor_update(T* var, T* r, T* c, T* v, const T* grad, int64_t batch, int64_t rows, int64_t cols,
                      bool factored, double grad_scale, const OptimizerParams& p);

// sum(x * x) in double (for clipnorm / global_clipnorm); fixed blocks of 4096 elements, each summed in 16 interleaved
// partial sums (element i into sum i % 16, combined by a fixed tree), then the blocks in order: the same bits for
// any thread count and on every SIMD path. sum_squares_ref is the serial sum.
template <typename T>
double sum_squares(const T* x, int64_t n);
template <typename T>
double sum_squares_ref(const T* x, int64_t n);

// Adam's step for an embedding table with Keras's second moment on TensorFlow (IndexedSlices: each lookup's row
// squared before the rows are summed, so `sq` is the per-row sum of squared lookup gradients, not g * g):
//   m += (g - m) * b1c;  v += (sq - v) * b2c;  [amsgrad: vhat = max(vhat, v), v = vhat];
//   var -= (m * alpha) / (sqrt(v) + eps)
// every operation rounded to T in this order (the NumPy formula of fastnn's Adam._update_rows, bit for bit; b1c,
// b2c and alpha are the caller's, already in T as Keras rounds them). vhat null: no
// amsgrad. Elementwise, split over threads: the same bits for any thread count.
template <typename T>
void adam_rows_update(T* var, T* m, T* v, T* vhat, const T* g, const T* sq, int64_t n, T b1c, T b2c, T alpha, T eps);

}  // namespace cpu
}  // namespace fastnn
