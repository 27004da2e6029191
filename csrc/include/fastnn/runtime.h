// Build and CPU facts, and the choice of SIMD code path made at run time from CPUID.
#pragma once

#include <string>

namespace fastnn {

enum class SimdPath { kGeneric = 0, kAvx2 = 1 };

// True when this CPU and OS can run the AVX2+FMA kernels and the library was built with them.
bool cpu_supports_avx2_fma();
// The path the kernels currently dispatch to (the best supported one unless overridden).
SimdPath active_simd_path();
// Forces a path, e.g. to test the portable kernels on an AVX2 machine. Returns false (and changes
// nothing) when the requested path is not available on this CPU/build.
bool set_simd_path(SimdPath path);
const char* simd_path_name(SimdPath path);

struct BuildInfo {
  std::string version;
  std::string compiler;
  std::string build_type;
  bool openmp;
  bool cuda;
  bool avx2_kernels_compiled;
};
BuildInfo build_info();

}  // namespace fastnn
