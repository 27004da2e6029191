// Reference GEMM: the textbook triple loop, kept beside the fast kernel so tests can check one against
// the other. Same contract as cpu::gemm (gemm.h), including beta == 0 not reading C and the epilogue.
#include <algorithm>

#include "fastnn/gemm.h"
#include "fastnn/parallel.h"

namespace fastnn::cpu {

template <typename T>
void gemm_ref(T* c, const T* a, const T* b, const GemmParams<T>& p) {
  DenormalsAreZero ftz;  // the fast kernel's rule, so the twins agree on denormal inputs too
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = 0; j < p.n; ++j) {
      T sum = 0;
      // alpha == 0 or K == 0: no product (BLAS semantics, as cpu::gemm): NaN in A, B or alpha does not propagate.
      const bool product = p.alpha != T(0) && p.k > 0;
      for (int64_t k = 0; product && k < p.k; ++k) {
        const T aik = p.trans_a ? a[k * p.lda + i] : a[i * p.lda + k];
        const T bkj = p.trans_b ? b[j * p.ldb + k] : b[k * p.ldb + j];
        sum += aik * bkj;
      }
      T& cij = c[i * p.ldc + j];
      T value = (product ? p.alpha * sum : T(0)) + (p.beta == T(0) ? T(0) : p.beta * cij);
      if (p.bias != nullptr) value += p.bias[j];
      if (p.activation == Activation::kRelu && value < T(0)) value = T(0);  // NaN stays NaN
      cij = value;
    }
  }
}

template void gemm_ref<float>(float*, const float*, const float*, const GemmParams<float>&);
template void gemm_ref<double>(double*, const double*, const double*, const GemmParams<double>&);

}  // namespace fastnn::cpu
