// Bindings for build facts, threads and the SIMD path.
#include <array>
#include <string>
#include <vector>

#include <pybind11/stl.h>

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
    d["malloc_tuning"] = malloc_tuning();  // "tuned", "off", "user-set" or "unavailable" (fastnn/runtime.h)
    // Top-level parallel regions since start-up: run on a team of more than one thread; whose end waited on a
    // late thread; run on the calling thread because the oversubscription guard was backing off; run on the
    // calling thread because another thread's region was in flight; of the team regions, those in which a worker
    // ran chunks too (the others ran on the caller alone, the workers arriving too late).
    d["parallel_regions"] = detail::parallel_regions();
    d["contended_regions"] = detail::contended_regions();
    d["serialized_regions"] = detail::serialized_regions();
    d["concurrent_regions"] = detail::concurrent_regions();
    d["shared_regions"] = detail::shared_regions();
    d["oversubscription_guard"] = guard_mode_name(detail::guard_mode());
    // The data caches the kernels block for (bytes), where they came from, and what CPUID / the OS reported.
    const CacheSizes caches = cache_sizes(), detected = detected_cache_sizes();
    d["cache_sizes"] = py::dict(py::arg("l1d") = caches.l1d, py::arg("l2") = caches.l2, py::arg("l3") = caches.l3);
    d["cache_source"] = cache_source();
    d["detected_cache_sizes"] =
        py::dict(py::arg("l1d") = detected.l1d, py::arg("l2") = detected.l2, py::arg("l3") = detected.l3);
    d["detected_cache_source"] = detected_cache_source();
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
    d["gemm_blocks_overridden"] = gemm_blocks_overridden();
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

  // Testing hook (not public API): runs the guard's decision rule from a fresh state over synthetic regions,
  // each (start, enter, done, end) in ns, and returns each region's (slow, serial_until_ns). The live guard is
  // not touched.
  m.def("_guard_judgement_trace", [](const std::vector<std::array<int64_t, 4>>& regions) {
    detail::GuardJudgement judgement;
    py::list out;
    for (const auto& r : regions) {
      if (!(r[0] <= r[1] && r[1] <= r[2] && r[2] <= r[3]))
        throw py::value_error("_guard_judgement_trace: each region needs start <= enter <= done <= end");
      const detail::GuardJudgement::Verdict v = judgement.judge(r[0], r[1], r[2], r[3]);
      out.append(py::make_tuple(v.slow, v.serial_until_ns));
    }
    return out;
  }, py::arg("regions"));

  m.def("cache_sizes", [] {
    const CacheSizes c = cache_sizes();
    return py::make_tuple(c.l1d, c.l2, c.l3);
  }, "(l1d, l2, l3) in bytes: the caches the kernels block for now.");
  m.def("set_cache_sizes", [](const py::object& spec) {
    CacheSizes sizes{0, 0, 0};
    if (spec.is_none()) {
      // back to the start-up sizes
    } else if (py::isinstance<py::str>(spec)) {
      const std::string text = spec.cast<std::string>();
      if (!parse_cache_sizes(text, sizes))
        throw py::value_error("set_cache_sizes: expected 'L1,L2' or 'L1,L2,L3' (bytes with an optional K/M/G suffix, "
                              "L1 in [4K, 64M], L2 >= L1), as FASTNN_CACHE takes it, but received '" + text + "'");
    } else if (py::isinstance<py::tuple>(spec) || py::isinstance<py::list>(spec)) {
      const py::sequence seq = spec.cast<py::sequence>();
      if (seq.size() != 2 && seq.size() != 3)
        throw py::value_error("set_cache_sizes: expected 2 or 3 sizes (l1d, l2[, l3]) in bytes, but received " +
                              std::to_string(seq.size()));
      int64_t v[3] = {0, 0, 0};
      for (size_t i = 0; i < seq.size(); ++i) {
        const py::object item = seq[i];
        if (!py::isinstance<py::int_>(item) || py::isinstance<py::bool_>(item))
          throw py::type_error("set_cache_sizes: sizes must be integers (bytes), but item " + std::to_string(i) +
                               " is " + std::string(py::str(py::type::of(item).attr("__name__"))));
        try {
          v[i] = item.cast<int64_t>();
        } catch (const py::cast_error&) {
          throw py::value_error("set_cache_sizes: size " + std::to_string(i) + " is out of range");
        }
      }
      sizes = CacheSizes{v[0], v[1], v[2]};
      if (!cache_sizes_valid(sizes))
        throw py::value_error("set_cache_sizes: implausible sizes (" + std::to_string(v[0]) + ", " +
                              std::to_string(v[1]) + ", " + std::to_string(v[2]) +
                              "): expected L1d in [4 KiB, 64 MiB], L2 >= L1d, L3 >= 0");
    } else {
      throw py::type_error("set_cache_sizes: expected None, a string 'L1,L2[,L3]' or a tuple of 2 or 3 byte sizes, "
                           "but received " + std::string(py::str(py::type::of(spec).attr("__name__"))));
    }
    fastnn::set_cache_sizes(sizes);
  }, py::arg("sizes"),
        "Overrides the cache sizes the kernels block for (for tests and tuning: '32K,512K,32M' gives the "
        "blocking of a Zen 3); None restores the start-up sizes.");

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
