// Batch normalization over the last (channel) axis: x, y, dy, dx are (M, C) C-contiguous (M = N * H * W for NHWC
// images, N for dense features); mean, var, rstd, gamma, beta, dgamma, dbeta are (C,). Tier 1: pure C++, outputs
// first, int64_t sizes, templates instantiated for float and double.
//
// Every statistic is accumulated in double, whatever T (a two-pass variance: within each row block the mean, then
// the squared deviations from it while the block is in cache; the blocks combined as
// sum_b [M2_b + rows_b (mean_b - mean)^2]), so a float32 batch of a million rows around a large mean keeps its
// variance. The sums over M run over fixed blocks of rows (their size depends only on M and C), each block summed
// in row order and the block sums added in block order: results are bit-identical for every thread count and
// every SIMD path (the inner loops are per ISA, pool_norm_kernel_*.cpp). The per-element work is done in double
// and rounded once.
//
// gamma / beta may be null (Keras's scale=False / center=False): gamma = 1, beta = 0.
#pragma once

#include <cstdint>

namespace fastnn {

struct BatchNormParams {
  int64_t m = 0, c = 0;   // rows and channels of the (M, C) view
  double epsilon = 1e-3;  // added to the variance (Keras's default); positive
  // The forwards only: y = relu(bn(x)) with the elementwise ReLU's rule on the rounded value (y < 0 ? 0 : y), the
  // bits of batch norm then the ReLU kernel, one pass over y fewer (a BatchNormalization followed by a ReLU, fused
  // by a caller that sees both: the compiled step's tracer). The backward's counterpart is its relu_y argument.
  bool relu = false;
};

namespace cpu {

// Training forward: mean and var are the batch mean and the biased batch variance (sum (x - mean)^2 / M, what
// Keras normalizes with and feeds to its moving statistics: moving = moving * momentum + batch * (1 - momentum),
// the caller's job), rstd = 1 / sqrt(var + epsilon), y = gamma * (x - mean) * rstd + beta. M must be positive.
template <typename T>
void batch_norm_train_forward(T* y, T* mean, T* var, T* rstd, const T* x, const T* gamma, const T* beta,
                              const BatchNormParams& p);
template <typename T>
void batch_norm_train_forward_ref(T* y, T* mean, T* var, T* rstd, const T* x, const T* gamma, const T* beta,
                                  const BatchNormParams& p);

// Inference forward with given statistics: y = gamma * (x - mean) / sqrt(var + epsilon) + beta.
template <typename T>
void batch_norm_inference_forward(T* y, const T* x, const T* mean, const T* var, const T* gamma, const T* beta,
                                  const BatchNormParams& p);
template <typename T>
void batch_norm_inference_forward_ref(T* y, const T* x, const T* mean, const T* var, const T* gamma, const T* beta,
                                      const BatchNormParams& p);

// The backward of the training forward, from its saved mean and rstd (xhat = (x - mean) * rstd):
//   dbeta += sum dy, dgamma += sum dy * xhat   (parameter gradients accumulate, DESIGN.md section 3),
//   dx = gamma * rstd * (dy - mean(dy) - xhat * mean(dy * xhat))   (assigned).
// M must be positive. relu_y non-null (an (M, C) array: the output of the forward with p.relu): dy is first masked
// as the ReLU backward does (relu_y > 0 ? dy : 0), the bits of the ReLU backward then this one, without its pass.
template <typename T>
void batch_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean, const T* rstd,
                         const T* gamma, const BatchNormParams& p, const T* relu_y = nullptr);
template <typename T>
void batch_norm_backward_ref(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean, const T* rstd,
                             const T* gamma, const BatchNormParams& p, const T* relu_y = nullptr);

}  // namespace cpu
}  // namespace fastnn
