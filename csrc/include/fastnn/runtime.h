// Build and CPU facts, and the choice of SIMD code path made at run time from CPUID.
#pragma once

#include <cstdint>
#include <string>

namespace fastnn {

enum class SimdPath { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// True when this CPU and OS can run the AVX2+FMA kernels and the library was built with them.
bool cpu_supports_avx2_fma();
// True when this CPU and OS can run the AVX-512F kernels and the library was built with them.
bool cpu_supports_avx512();
// Whether `path` can run here (compiled in, and supported by this CPU and OS).
bool simd_path_available(SimdPath path);
// The path the kernels currently dispatch to (the best available one unless overridden).
SimdPath active_simd_path();
// Forces a path, e.g. to test the portable kernels on an AVX2 machine. Returns false (and changes
// nothing) when the requested path is not available on this CPU/build.
bool set_simd_path(SimdPath path);
const char* simd_path_name(SimdPath path);

// Per-core L2 cache size in bytes as the OS reports it (512 KiB when it does not say). Kernels size
// their working sets by it.
int64_t l2_cache_bytes();

// The register tile and cache blocks of the GEMM kernel set active now (for float32, or float64 when `f64`):
// tests size their shapes by them so that every blocking edge is crossed on whichever CPU runs them.
struct GemmBlocking {
  int mr, nr;
  int64_t mc, kc, nc;
};
GemmBlocking gemm_blocking(bool f64);

struct BuildInfo {
  std::string version;
  std::string compiler;
  std::string build_type;
  bool openmp;
  bool cuda;
  bool avx2_kernels_compiled;
  bool avx512_kernels_compiled;
};
BuildInfo build_info();

}  // namespace fastnn
