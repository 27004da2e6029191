// Bindings for build facts, threads and the SIMD path.
#include <string>

#include "bindings.h"
#include "fastnn/parallel.h"
#include "fastnn/runtime.h"

namespace fastnn::python {
namespace {

const char* guard_mode_name(detail::GuardMode mode) {
  switch (mode) {
    case detail::GuardMode::kOff: return "off";
    case detail::GuardMode::kSerial: return "serial";
    case detail::GuardMode::kAuto: break;
  }
  return "auto";
}

}  // namespace

void bind_runtime(py::module_& m) {
  m.def("build_info", [] {
    const BuildInfo info = fastnn::build_info();
    py::dict d;
    d["version"] = info.version;
    d["openmp"] = info.openmp;
    d["cuda"] = info.cuda;
    d["simd"] = simd_path_name(active_simd_path());
    py::list compiled;
    compiled.append("generic");
    if (info.avx2_kernels_compiled) compiled.append("avx2+fma");
    if (info.avx512_kernels_compiled) compiled.append("avx512");
    d["simd_compiled"] = compiled;
    py::list available;
    for (SimdPath path : {SimdPath::kGeneric, SimdPath::kAvx2, SimdPath::kAvx512})
      if (simd_path_available(path)) available.append(simd_path_name(path));
    d["simd_available"] = available;
    d["cpu_avx2_fma"] = cpu_supports_avx2_fma();
    d["cpu_avx512"] = cpu_supports_avx512();
    d["compiler"] = info.compiler;
    d["build_type"] = info.build_type;
    d["num_threads"] = get_num_threads();
    // Top-level parallel regions since start-up: run on a team of more than one thread; whose end waited on a
    // late thread; run on the calling thread because the oversubscription guard was backing off; run on the
    // calling thread because another thread's region was in flight.
    d["parallel_regions"] = detail::parallel_regions();
    d["contended_regions"] = detail::contended_regions();
    d["serialized_regions"] = detail::serialized_regions();
    d["concurrent_regions"] = detail::concurrent_regions();
    d["oversubscription_guard"] = guard_mode_name(detail::guard_mode());
    // The active GEMM kernel set's register tile (mr x nr) and cache blocks (mc, kc, nc), per dtype.
    py::dict blocking;
    for (bool f64 : {false, true}) {
      const GemmBlocking b = gemm_blocking(f64);
      py::dict one;
      one["mr"] = b.mr;
      one["nr"] = b.nr;
      one["mc"] = b.mc;
      one["kc"] = b.kc;
      one["nc"] = b.nc;
      blocking[f64 ? "float64" : "float32"] = one;
    }
    d["gemm_blocking"] = blocking;
    return d;
  }, "Facts about this build and the code path chosen for this CPU.");

  m.def("get_num_threads", &fastnn::get_num_threads, "Threads the kernels use.");
  m.def("set_num_threads", [](int n) {
    if (n < 1 || n > kMaxThreads)
      throw py::value_error("set_num_threads: n must be an integer in [1, " + std::to_string(kMaxThreads) +
                            "], but received " + std::to_string(n));
    fastnn::set_num_threads(n);
  }, py::arg("n"), "Sets the number of threads the kernels use (1 in a build without OpenMP).");

  m.def("oversubscription_guard", [] { return std::string(guard_mode_name(detail::guard_mode())); },
        "The oversubscription guard's mode: 'auto', 'off' or 'serial'.");
  m.def("set_oversubscription_guard", [](const std::string& name) {
    if (name == "auto") detail::set_guard_mode(detail::GuardMode::kAuto);
    else if (name == "off") detail::set_guard_mode(detail::GuardMode::kOff);
    else if (name == "serial") detail::set_guard_mode(detail::GuardMode::kSerial);
    else
      throw py::value_error("set_oversubscription_guard: expected 'auto', 'off' or 'serial', but received '" + name +
                            "'");
  }, py::arg("name"),
        "For tests: 'auto' (the default) backs off to the calling thread while another process holds a core; "
        "'off' never backs off; 'serial' runs every parallel region on its calling thread, as during a back-off.");

  m.def("simd_path", [] { return std::string(simd_path_name(active_simd_path())); });
  m.def("set_simd_path", [](const std::string& name) {
    SimdPath path;
    if (name == "generic") path = SimdPath::kGeneric;
    else if (name == "avx2+fma" || name == "avx2") path = SimdPath::kAvx2;
    else if (name == "avx512") path = SimdPath::kAvx512;
    else throw py::value_error("set_simd_path: expected 'generic', 'avx2+fma' or 'avx512', but received '" + name + "'");
    if (!fastnn::set_simd_path(path))
      throw py::value_error("set_simd_path: '" + name + "' is not available on this CPU or build");
  }, py::arg("name"), "Selects the kernel code path (for tests); 'generic' always works.");
}

}  // namespace fastnn::python
