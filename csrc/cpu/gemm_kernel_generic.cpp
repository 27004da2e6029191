// Portable micro-kernels: plain C++ that the compiler vectorises for the baseline ISA (SSE2 on x86-64).
// They keep the AVX2 kernels' tile shapes so packing and blocking are shared. They multiply and add
// separately (a CPU without FMA would need a slow software std::fma), so their last bits may differ from
// the FMA kernels'; each path on its own is deterministic.
#include "gemm_kernels.h"

namespace fastnn::cpu::detail {
namespace {

template <typename T, int MR, int NR>
void generic_micro_kernel(int64_t k, const T* a, const T* b, T* c, int64_t ldc, T alpha, T beta) {
  T acc[MR][NR] = {};
  for (int64_t p = 0; p < k; ++p) {
    for (int i = 0; i < MR; ++i) {
      const T ai = a[p * MR + i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[p * NR + j];
    }
  }
  for (int i = 0; i < MR; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0)) {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
}

}  // namespace

GemmKernelSet<float> generic_kernels_f32() {
  return {"generic", 6, 16, 144, 256, 4080, &generic_micro_kernel<float, 6, 16>};
}
GemmKernelSet<double> generic_kernels_f64() {
  return {"generic", 6, 8, 72, 256, 4080, &generic_micro_kernel<double, 6, 8>};
}

}  // namespace fastnn::cpu::detail
