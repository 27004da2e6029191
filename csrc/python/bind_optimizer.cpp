// Bindings for the fused optimizer kernels: one call updates every variable. Validates the lists (same
// length, float32/float64, C-contiguous, writeable where written, matching dtypes and shapes, no array that
// is written overlapping any other array of the call), releases the GIL and loops over the tensors in C++.
#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <pybind11/stl.h>

#include "bindings.h"
#include "fastnn/optimizer.h"

namespace fastnn::python {
namespace {

struct Tensors {
  std::vector<py::array> vars, grads;
  std::vector<std::vector<py::array>> slots;  // [slot][tensor]; empty vector: slot unused
};

OptKind parse_kind(const std::string& name) {
  static const std::unordered_map<std::string, OptKind> kinds = {
      {"sgd", OptKind::kSGD},           {"adam", OptKind::kAdam},     {"adagrad", OptKind::kAdagrad},
      {"rmsprop", OptKind::kRMSprop},   {"adadelta", OptKind::kAdadelta}, {"adamax", OptKind::kAdamax},
      {"nadam", OptKind::kNadam},       {"lion", OptKind::kLion},     {"ftrl", OptKind::kFtrl},
      {"lamb", OptKind::kLamb},         {"adafactor", OptKind::kAdafactor}};
  auto it = kinds.find(name);
  if (it == kinds.end())
    throw py::value_error("optimizer_update: unknown kind '" + name +
                          "'; expected one of sgd, adam, adagrad, rmsprop, adadelta, adamax, nadam, lion, ftrl, lamb, adafactor");
  return it->second;
}

// `shape`: the shape `a` must have (null: ref's shape).
void check_array(const py::array& a, const py::array& ref, bool writeable, const std::string& what, size_t i,
                 const std::vector<py::ssize_t>* shape = nullptr) {
  const std::string name = what + "[" + std::to_string(i) + "]";
  const char k = float_kind(a, "optimizer_update", name.c_str());
  if (k != float_kind(ref, "optimizer_update", "variables"))
    throw py::type_error("optimizer_update: " + name + " has dtype " + std::string(py::str(a.dtype())) +
                         ", but variables[" + std::to_string(i) + "] has dtype " + std::string(py::str(ref.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error("optimizer_update: " + name + " must be C-contiguous, but received element strides " +
                          strides_str(a));
  if (writeable && !a.writeable())
    throw py::value_error("optimizer_update: " + name + " must be writeable");
  if (shape) {
    bool same = a.ndim() == static_cast<py::ssize_t>(shape->size());
    for (py::ssize_t d = 0; same && d < a.ndim(); ++d) same = a.shape(d) == (*shape)[static_cast<size_t>(d)];
    if (!same) {
      std::string want = "(";
      for (size_t d = 0; d < shape->size(); ++d) want += (d ? ", " : "") + std::to_string((*shape)[d]);
      want += shape->size() == 1 ? ",)" : ")";
      throw py::value_error("optimizer_update: " + name + " must have shape " + want + " for variables[" +
                            std::to_string(i) + "] of shape " + shape_str(ref) + ", but received shape " +
                            shape_str(a));
    }
    return;
  }
  bool same = a.ndim() == ref.ndim();
  for (py::ssize_t d = 0; same && d < a.ndim(); ++d) same = a.shape(d) == ref.shape(d);
  if (!same)
    throw py::value_error("optimizer_update: " + name + " has shape " + shape_str(a) + ", but variables[" +
                          std::to_string(i) + "] has shape " + shape_str(ref));
}

// Adafactor's slots 0 and 1 (the row and column moments) for a variable of rank >= 2: shape[:-1] and
// shape[:-2] + shape[-1:]; below rank 2 they are 0-d placeholders. Slot 2 (v) has the variable's shape.
std::vector<py::ssize_t> adafactor_moment_shape(const py::array& var, size_t slot) {
  std::vector<py::ssize_t> shape;
  if (var.ndim() < 2) return shape;
  for (py::ssize_t d = 0; d < var.ndim(); ++d)
    if (d != var.ndim() - (slot == 0 ? 1 : 2)) shape.push_back(var.shape(d));
  return shape;
}

std::vector<py::array> to_arrays(const py::sequence& seq, const std::string& what) {
  std::vector<py::array> out;
  out.reserve(py::len(seq));
  for (size_t i = 0; i < py::len(seq); ++i) {
    py::object o = seq[i];
    if (!py::isinstance<py::array>(o))
      throw py::type_error("optimizer_update: " + what + "[" + std::to_string(i) + "] must be a NumPy array, but "
                           "received " + std::string(py::str(py::type::of(o).attr("__name__"))));
    out.push_back(py::reinterpret_borrow<py::array>(o));
  }
  return out;
}

double get(const py::dict& d, const char* key, double dflt) {
  if (!d.contains(key)) return dflt;
  try {
    return py::cast<double>(d[key]);
  } catch (const py::cast_error&) {  // pybind11 reports a failed cast as RuntimeError; the contract is TypeError
    throw py::type_error(std::string("optimizer_update: params['") + key + "'] must be a number, but received " +
                         std::string(py::str(py::type::of(d[key]).attr("__name__"))));
  }
}

// One variable's raw pointers and size, taken while the GIL is held: py::array accessors may touch reference
// counts (pybind11 asserts the GIL for that in builds without NDEBUG), so none runs after the GIL is released.
struct Raw {
  void* var;
  void* slot[3];
  const void* grad;
  int64_t n;
  int64_t batch, rows, cols;  // Adafactor: the variable as batch x rows x cols (its last two axes)
  bool factored;              // Adafactor: rank >= 2
};

std::vector<Raw> raw_pointers(const Tensors& t) {
  std::vector<Raw> out(t.vars.size());
  for (size_t i = 0; i < t.vars.size(); ++i) {
    out[i].var = const_cast<void*>(t.vars[i].data());
    for (size_t s = 0; s < 3; ++s)
      out[i].slot[s] = s < t.slots.size() && !t.slots[s].empty() ? const_cast<void*>(t.slots[s][i].data()) : nullptr;
    out[i].grad = t.grads[i].data();
    out[i].n = static_cast<int64_t>(t.vars[i].size());
    const py::array& v = t.vars[i];
    out[i].factored = v.ndim() >= 2;
    out[i].rows = out[i].factored ? static_cast<int64_t>(v.shape(v.ndim() - 2)) : 1;
    out[i].cols = out[i].factored ? static_cast<int64_t>(v.shape(v.ndim() - 1)) : out[i].n;
    out[i].batch = out[i].rows * out[i].cols ? out[i].n / (out[i].rows * out[i].cols) : 0;
  }
  return out;
}

// The kernel reads every grad while it writes the variables and slots, possibly on several threads: an array
// that is written must not share a byte with any other array of the call (another variable's grad or slot
// included, not only its own variable's). All arrays are C-contiguous by now, so each occupies the byte range
// [data, data + nbytes); sorting the ranges by start finds any overlap in O(n log n). Two read-only grads may
// share memory (the same gradient passed for two variables is only read).
struct Extent {
  std::uintptr_t begin, end;
  int list;  // -1: variables, -2: grads, s >= 0: slots[s]
  size_t index;
  bool written() const { return list != -2; }
  std::string name() const {
    const std::string idx = "[" + std::to_string(index) + "]";
    return list == -1 ? "variables" + idx : list == -2 ? "grads" + idx : "slots[" + std::to_string(list) + "]" + idx;
  }
};

void check_no_overlap(std::vector<Extent> extents) {
  extents.erase(std::remove_if(extents.begin(), extents.end(), [](const Extent& e) { return e.begin == e.end; }),
                extents.end());
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) { return a.begin < b.begin; });
  const Extent* reach_any = nullptr;      // the earlier extent reaching furthest
  const Extent* reach_written = nullptr;  // the earlier written extent reaching furthest
  for (const Extent& e : extents) {
    const Extent* other = nullptr;
    if (reach_written && reach_written->end > e.begin) other = reach_written;
    else if (e.written() && reach_any && reach_any->end > e.begin) other = reach_any;
    if (other)
      throw py::value_error("optimizer_update: " + e.name() + " overlaps " + other->name() +
                            " (an array that is updated must not share memory with any other array of the call)");
    if (!reach_any || e.end > reach_any->end) reach_any = &e;
    if (e.written() && (!reach_written || e.end > reach_written->end)) reach_written = &e;
  }
}

template <typename T>
void run(const std::vector<Raw>& raw, const std::vector<double>& scales, const OptimizerParams& p, bool reference) {
  for (size_t i = 0; i < raw.size(); ++i) {
    const Raw& r = raw[i];
    if (p.kind == OptKind::kAdafactor) {
      cpu::adafactor_update<T>(static_cast<T*>(r.var), static_cast<T*>(r.slot[0]), static_cast<T*>(r.slot[1]),
                               static_cast<T*>(r.slot[2]), static_cast<const T*>(r.grad), r.batch, r.rows, r.cols,
                               r.factored, scales.empty() ? 1.0 : scales[i], p);
      continue;
    }
    (reference ? cpu::optimizer_update_ref<T> : cpu::optimizer_update<T>)(static_cast<T*>(r.var), static_cast<T*>(r.slot[0]), static_cast<T*>(r.slot[1]),
                             static_cast<T*>(r.slot[2]), static_cast<const T*>(r.grad), r.n,
                             scales.empty() ? 1.0 : scales[i], p);
  }
}

}  // namespace

void bind_optimizer(py::module_& m) {
  m.def("optimizer_update", [](const std::string& kind, const py::sequence& variables, const py::sequence& grads,
                               const py::sequence& slots, py::object grad_scales, const py::dict& params,
                               bool reference) {
    OptimizerParams p;
    p.kind = parse_kind(kind);
    p.lr = get(params, "lr", 0.01);
    p.momentum = get(params, "momentum", 0.0);
    p.nesterov = get(params, "nesterov", 0.0) != 0.0;
    p.amsgrad = get(params, "amsgrad", 0.0) != 0.0;
    p.centered = get(params, "centered", 0.0) != 0.0;
    p.beta1 = get(params, "beta1", 0.9);
    p.beta2 = get(params, "beta2", 0.999);
    p.epsilon = get(params, "epsilon", 1e-7);
    p.rho = get(params, "rho", 0.9);
    p.alpha = get(params, "alpha", 0.0);
    p.u_t = get(params, "u_t", 0.0);
    p.u_t1 = get(params, "u_t1", 0.0);
    p.u_prod_t = get(params, "u_prod_t", 1.0);
    p.u_prod_t1 = get(params, "u_prod_t1", 1.0);
    p.beta2_power = get(params, "beta2_power", 1.0);
    p.weight_decay = get(params, "weight_decay", 0.0);
    p.clipvalue = get(params, "clipvalue", 0.0);
    p.lr_power = get(params, "lr_power", -0.5);
    p.l1 = get(params, "l1", 0.0);
    p.l2 = get(params, "l2", 0.0);
    p.l2_shrinkage = get(params, "l2_shrinkage", 0.0);
    p.ftrl_beta = get(params, "ftrl_beta", 0.0);
    p.beta1_power = get(params, "beta1_power", 0.0);
    p.local_step = get(params, "local_step", 1.0);
    p.beta_2_decay = get(params, "beta_2_decay", -0.8);
    p.epsilon_1 = get(params, "epsilon_1", 1e-30);
    p.epsilon_2 = get(params, "epsilon_2", 1e-3);
    p.clip_threshold = get(params, "clip_threshold", 1.0);

    Tensors t;
    t.vars = to_arrays(variables, "variables");
    t.grads = to_arrays(grads, "grads");
    if (t.grads.size() != t.vars.size())
      throw py::value_error("optimizer_update: " + std::to_string(t.vars.size()) + " variables but " +
                            std::to_string(t.grads.size()) + " gradients");
    if (py::len(slots) > 3)
      throw py::value_error("optimizer_update: at most 3 slot lists, but received " + std::to_string(py::len(slots)));
    for (size_t s = 0; s < py::len(slots); ++s) {
      py::object o = slots[s];
      if (o.is_none()) { t.slots.emplace_back(); continue; }
      auto arrays = to_arrays(py::reinterpret_borrow<py::sequence>(o), "slots[" + std::to_string(s) + "]");
      if (!arrays.empty() && arrays.size() != t.vars.size())
        throw py::value_error("optimizer_update: slots[" + std::to_string(s) + "] has " + std::to_string(arrays.size()) +
                              " arrays for " + std::to_string(t.vars.size()) + " variables");
      t.slots.push_back(std::move(arrays));
    }
    auto has = [&](size_t s) { return s < t.slots.size() && !t.slots[s].empty(); };
    auto need = [&](size_t s, const char* what) {
      if (!has(s) && !t.vars.empty())
        throw py::value_error("optimizer_update: " + kind + " needs slots[" + std::to_string(s) + "] (" + what + ")");
    };
    switch (p.kind) {
      case OptKind::kSGD: if (p.momentum != 0.0) need(0, "momentums"); break;
      case OptKind::kAdam: need(0, "m"); need(1, "v"); if (p.amsgrad) need(2, "v_hat"); break;
      case OptKind::kAdagrad: need(0, "accumulators"); break;
      case OptKind::kRMSprop: need(0, "velocities"); if (p.momentum > 0.0) need(1, "momentums");
                              if (p.centered) need(2, "average gradients"); break;
      case OptKind::kAdadelta: need(0, "accumulated grads"); need(1, "accumulated deltas"); break;
      case OptKind::kAdamax: need(0, "m"); need(1, "u"); break;
      case OptKind::kNadam: need(0, "m"); need(1, "v"); break;
      case OptKind::kLion: need(0, "momentums"); break;
      case OptKind::kFtrl: need(0, "accumulators"); need(1, "linears"); break;
      case OptKind::kLamb: need(0, "m"); need(1, "v"); break;
      case OptKind::kAdafactor: need(0, "row moments"); need(1, "column moments"); need(2, "velocities"); break;
    }
    if (p.kind == OptKind::kSGD && p.momentum == 0.0 && has(0)) t.slots[0].clear();
    if (p.kind == OptKind::kRMSprop && p.momentum <= 0.0 && has(1)) t.slots[1].clear();
    for (size_t i = 0; i < t.vars.size(); ++i) {
      float_kind(t.vars[i], "optimizer_update", ("variables[" + std::to_string(i) + "]").c_str());
      check_array(t.vars[i], t.vars[i], true, "variables", i);
      check_array(t.grads[i], t.vars[i], false, "grads", i);
      for (size_t s = 0; s < t.slots.size(); ++s) {
        if (t.slots[s].empty()) continue;
        if (p.kind == OptKind::kAdafactor && s < 2) {
          const auto shape = adafactor_moment_shape(t.vars[i], s);
          check_array(t.slots[s][i], t.vars[i], true, "slots[" + std::to_string(s) + "]", i, &shape);
        } else {
          check_array(t.slots[s][i], t.vars[i], true, "slots[" + std::to_string(s) + "]", i);
        }
      }
    }
    {
      std::vector<Extent> extents;
      extents.reserve(t.vars.size() * (2 + t.slots.size()));
      auto add = [&](const py::array& a, int list, size_t i) {
        const auto begin = reinterpret_cast<std::uintptr_t>(a.data());
        extents.push_back({begin, begin + static_cast<std::uintptr_t>(a.nbytes()), list, i});
      };
      for (size_t i = 0; i < t.vars.size(); ++i) {
        add(t.vars[i], -1, i);
        add(t.grads[i], -2, i);
        for (size_t s = 0; s < t.slots.size(); ++s)
          if (!t.slots[s].empty()) add(t.slots[s][i], static_cast<int>(s), i);
      }
      check_no_overlap(std::move(extents));
    }
    std::vector<double> scales;
    if (!grad_scales.is_none()) {
      try {
        scales = py::cast<std::vector<double>>(grad_scales);
      } catch (const py::cast_error&) {
        throw py::type_error("optimizer_update: grad_scales must be a sequence of numbers or None, but received " +
                             std::string(py::str(grad_scales)).substr(0, 80));
      }
      if (scales.size() != t.vars.size())
        throw py::value_error("optimizer_update: " + std::to_string(scales.size()) + " grad_scales for " +
                              std::to_string(t.vars.size()) + " variables");
    }
    if (t.vars.empty()) return;
    const bool is_f32 = float_kind(t.vars[0], "optimizer_update", "variables[0]") == 'f';
    for (size_t i = 1; i < t.vars.size(); ++i) {
      if ((float_kind(t.vars[i], "optimizer_update", "variables") == 'f') != is_f32)
        throw py::type_error("optimizer_update: all variables must share one dtype; pass float32 and float64 "
                             "variables in separate calls");
    }
    const std::vector<Raw> raw = raw_pointers(t);
    py::gil_scoped_release release;
    if (is_f32) run<float>(raw, scales, p, reference); else run<double>(raw, scales, p, reference);
  }, py::arg("kind"), py::arg("variables"), py::arg("grads"), py::arg("slots"), py::arg("grad_scales") = py::none(),
     py::arg("params") = py::dict(), py::arg("reference") = false,
     "Updates every variable in place with one optimizer step (Keras 3 formulas); see fastnn/optimizer.h. "
     "reference=True runs the scalar twin (tests: every SIMD path must give its bits).");

  m.def("adam_rows_update", [](py::array var, py::array m_, py::array v, py::object vhat_obj, py::array g,
                                py::array squares, double b1c, double b2c, double alpha, double epsilon) {
    const char* op = "adam_rows_update";
    const char k = float_input(var, op, "var");
    std::vector<std::pair<py::array, const char*>> arrays = {{m_, "m"}, {v, "v"}, {g, "g"}, {squares, "squares"}};
    py::array vhat;
    if (!vhat_obj.is_none()) {
      if (!py::isinstance<py::array>(vhat_obj))
        throw py::type_error("adam_rows_update: vhat must be a NumPy array or None");
      vhat = py::reinterpret_borrow<py::array>(vhat_obj);
      arrays.push_back({vhat, "vhat"});
    }
    for (auto& [a, name] : arrays) {
      if (float_input(a, op, name) != k)
        throw py::type_error(std::string("adam_rows_update: ") + name + " has dtype " + std::string(py::str(a.dtype())) +
                             ", but var has dtype " + std::string(py::str(var.dtype())));
      bool same = a.ndim() == var.ndim();
      for (py::ssize_t d = 0; same && d < a.ndim(); ++d) same = a.shape(d) == var.shape(d);
      if (!same)
        throw py::value_error(std::string("adam_rows_update: ") + name + " has shape " + shape_str(a) +
                              ", but var has shape " + shape_str(var));
    }
    // var, m, v and vhat are written: each writeable, and no array may share memory with a written one.
    std::vector<std::pair<py::array, const char*>> all = {{var, "var"}};
    all.insert(all.end(), arrays.begin(), arrays.end());
    const size_t bytes = static_cast<size_t>(var.nbytes());
    for (size_t i = 0; i < all.size(); ++i) {
      const bool written = i == 0 || i == 1 || i == 2 || std::string(all[i].second) == "vhat";
      if (written && !all[i].first.writeable())
        throw py::value_error(std::string("adam_rows_update: ") + all[i].second + " must be writeable");
      for (size_t j = 0; j < i; ++j) {
        const bool j_written = j == 0 || j == 1 || j == 2;
        if (!written && !j_written) continue;
        const char* a = static_cast<const char*>(all[i].first.data());
        const char* b = static_cast<const char*>(all[j].first.data());
        if (bytes > 0 && a < b + bytes && b < a + bytes)
          throw py::value_error(std::string("adam_rows_update: ") + all[i].second + " and " + all[j].second +
                                " share memory; a written array must not overlap another argument");
      }
    }
    const int64_t n = static_cast<int64_t>(var.size());
    void* pv = var.mutable_data();
    void* pm = m_.mutable_data();
    void* pvv = v.mutable_data();
    void* ph = vhat_obj.is_none() ? nullptr : vhat.mutable_data();
    const void* pg = g.data();
    const void* ps = squares.data();
    py::gil_scoped_release release;
    if (k == 'f')
      cpu::adam_rows_update<float>(static_cast<float*>(pv), static_cast<float*>(pm), static_cast<float*>(pvv),
                                   static_cast<float*>(ph), static_cast<const float*>(pg),
                                   static_cast<const float*>(ps), n, static_cast<float>(b1c),
                                   static_cast<float>(b2c), static_cast<float>(alpha), static_cast<float>(epsilon));
    else
      cpu::adam_rows_update<double>(static_cast<double*>(pv), static_cast<double*>(pm), static_cast<double*>(pvv),
                                    static_cast<double*>(ph), static_cast<const double*>(pg),
                                    static_cast<const double*>(ps), n, b1c, b2c, alpha, epsilon);
  }, py::arg("var"), py::arg("m"), py::arg("v"), py::arg("vhat"), py::arg("g"), py::arg("squares"), py::arg("b1c"),
     py::arg("b2c"), py::arg("alpha"), py::arg("epsilon"),
     "Adam's step for an embedding table with Keras's per-lookup second moment, in place (fastnn/optimizer.h); "
     "b1c, b2c, alpha, epsilon are rounded to the arrays' dtype.");

  m.def("sum_squares", [](const py::sequence& arrays, bool reference) {
    auto xs = to_arrays(arrays, "arrays");
    std::vector<double> out(xs.size());
    for (size_t i = 0; i < xs.size(); ++i) {
      float_kind(xs[i], "sum_squares", ("arrays[" + std::to_string(i) + "]").c_str());
      if (!(xs[i].flags() & py::array::c_style))
        throw py::value_error("sum_squares: arrays[" + std::to_string(i) + "] must be C-contiguous");
    }
    // Sizes, item sizes and pointers are read with the GIL held (itemsize() goes through a dtype object).
    std::vector<const void*> data(xs.size());
    std::vector<int64_t> sizes(xs.size());
    std::vector<bool> is_f32(xs.size());
    for (size_t i = 0; i < xs.size(); ++i) {
      data[i] = xs[i].data();
      sizes[i] = static_cast<int64_t>(xs[i].size());
      is_f32[i] = xs[i].itemsize() == 4;
    }
    {
      py::gil_scoped_release release;
      for (size_t i = 0; i < xs.size(); ++i)
        out[i] = is_f32[i] ? (reference ? cpu::sum_squares_ref<float> : cpu::sum_squares<float>)(
                                 static_cast<const float*>(data[i]), sizes[i])
                           : (reference ? cpu::sum_squares_ref<double> : cpu::sum_squares<double>)(
                                 static_cast<const double*>(data[i]), sizes[i]);
    }
    return out;
  }, py::arg("arrays"), py::arg("reference") = false,
     "Per-array sum of squares (float64 accumulation), for gradient clipping by norm; reference=True: the serial sum.");
}

}  // namespace fastnn::python
