// Bindings for the elementwise kernels: activations, softmax / log-softmax, fused crossentropy, bias add.
// Each function validates dtype (TypeError naming it), shape and C-contiguity (ValueError), allocates the
// outputs, takes every pointer and size it needs while it holds the GIL (no py::array accessor runs after the
// GIL is released: a free-threaded CPython may change an array beside it), releases the GIL and calls exactly
// one kernel. Callers (fastnn.autograd) pass contiguous arrays. Contents are never validated before the GIL is
// released and trusted after it (another thread may write the buffer in between): the kernels check labels as
// they read them and report back.
#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "bindings.h"
#include "fastnn/elementwise.h"

namespace fastnn::python {
namespace {

ActKind parse_kind(const std::string& name) {
  static const std::unordered_map<std::string, ActKind> kinds = {
      {"relu", ActKind::kRelu},         {"relu6", ActKind::kRelu6},           {"sigmoid", ActKind::kSigmoid},
      {"tanh", ActKind::kTanh},         {"elu", ActKind::kElu},               {"selu", ActKind::kSelu},
      {"gelu", ActKind::kGelu},         {"gelu_tanh", ActKind::kGeluTanh},    {"silu", ActKind::kSilu},
      {"leaky_relu", ActKind::kLeakyRelu}, {"softplus", ActKind::kSoftplus}, {"softsign", ActKind::kSoftsign},
      {"hard_sigmoid", ActKind::kHardSigmoid}};
  auto it = kinds.find(name);
  if (it == kinds.end())
    throw py::value_error("activation: unknown activation '" + name +
                          "'; expected one of relu, relu6, sigmoid, tanh, elu, selu, gelu, gelu_tanh, silu, "
                          "leaky_relu, softplus, softsign, hard_sigmoid");
  return it->second;
}

void require_like(const py::array& x, const py::array& ref, char kind, const std::string& op, const char* arg,
                  const char* ref_name) {
  if (float_kind(x, op.c_str(), arg) != kind)
    throw py::type_error(op + ": " + arg + " must have the dtype of " + ref_name + " (" +
                         std::string(py::str(ref.dtype())) + "), but received " + std::string(py::str(x.dtype())));
  require_c_contiguous(x, op, arg);
  bool same = x.ndim() == ref.ndim();
  for (py::ssize_t i = 0; same && i < x.ndim(); ++i) same = x.shape(i) == ref.shape(i);
  if (!same)
    throw py::value_error(op + ": " + arg + " must have the shape of " + ref_name + " " + shape_str(ref) +
                          ", but received shape " + shape_str(x));
}

int64_t size_without_last(const py::array& x) {
  int64_t n = 1;
  for (py::ssize_t i = 0; i + 1 < x.ndim(); ++i) n *= x.shape(i);
  return n;
}

// x must be a C-contiguous 1-D array of `rows` elements of kind `kind`.
void require_vector(const py::array& x, int64_t rows, char kind, const std::string& op, const char* arg) {
  if (float_kind(x, op.c_str(), arg) != kind)
    throw py::type_error(op + ": " + arg + " must have the dtype of the logits, but received " +
                         std::string(py::str(x.dtype())));
  require_c_contiguous(x, op, arg);
  if (x.ndim() != 1 || x.shape(0) != rows)
    throw py::value_error(op + ": " + arg + " must have shape (" + std::to_string(rows) + ",), but received shape " +
                          shape_str(x));
}

py::array new_like(const py::array& x) { return py::array(x.dtype(), std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim())); }

// An array's data pointer, taken with the GIL held (before a gil_scoped_release) and cast at the kernel call by
// the kind ('f' or 'd').
struct Ptr {
  void* p;
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
};
Ptr out_ptr(py::array& a) { return Ptr{a.mutable_data()}; }
Ptr in_ptr(const py::array& a) { return Ptr{const_cast<void*>(a.data())}; }

py::array activation_forward(const py::array& x, const std::string& name, double alpha, bool reference) {
  const std::string op = name;
  ActivationParams p{parse_kind(name), alpha};
  const char k = float_input(x, op, "x");
  py::array y = new_like(x);
  const int64_t n = x.size();
  const Ptr yp = out_ptr(y), xp = in_ptr(x);
  {
    py::gil_scoped_release release;
    if (k == 'f') (reference ? cpu::activation_forward_ref<float> : cpu::activation_forward<float>)(yp.as<float>(), xp.as<const float>(), n, p);
    else (reference ? cpu::activation_forward_ref<double> : cpu::activation_forward<double>)(yp.as<double>(), xp.as<const double>(), n, p);
  }
  return y;
}

py::array activation_backward(const py::array& dy, const py::array& x, const py::array& y, const std::string& name,
                              double alpha, bool reference) {
  const std::string op = name + " (backward)";
  ActivationParams p{parse_kind(name), alpha};
  const char k = float_input(x, op, "x");
  require_like(dy, x, k, op, "dy", "x");
  require_like(y, x, k, op, "y", "x");
  py::array dx = new_like(x);
  const int64_t n = x.size();
  const Ptr dxp = out_ptr(dx), dyp = in_ptr(dy), xp = in_ptr(x), yp = in_ptr(y);
  {
    py::gil_scoped_release release;
    if (k == 'f')
      (reference ? cpu::activation_backward_ref<float> : cpu::activation_backward<float>)(
          dxp.as<float>(), dyp.as<const float>(), xp.as<const float>(), yp.as<const float>(), n, p);
    else
      (reference ? cpu::activation_backward_ref<double> : cpu::activation_backward<double>)(
          dxp.as<double>(), dyp.as<const double>(), xp.as<const double>(), yp.as<const double>(), n, p);
  }
  return dx;
}

// y = f(x) for the SIMD kernels' elementary functions (for tests and benchmarks).
py::array vector_math(const py::array& x, const std::string& name) {
  static const std::unordered_map<std::string, cpu::MathFn> fns = {
      {"exp", cpu::MathFn::kExp}, {"expm1", cpu::MathFn::kExpm1}, {"log", cpu::MathFn::kLog},
      {"log1p", cpu::MathFn::kLog1p}, {"tanh", cpu::MathFn::kTanh}, {"sigmoid", cpu::MathFn::kSigmoid}};
  auto it = fns.find(name);
  if (it == fns.end())
    throw py::value_error("vector_math: unknown function '" + name + "'; expected exp, expm1, log, log1p, tanh or sigmoid");
  const char k = float_input(x, "vector_math", "x");
  py::array y = new_like(x);
  const int64_t n = x.size();
  const Ptr yp = out_ptr(y), xp = in_ptr(x);
  {
    py::gil_scoped_release release;
    if (k == 'f') cpu::vector_math(yp.as<float>(), xp.as<const float>(), n, it->second);
    else cpu::vector_math(yp.as<double>(), xp.as<const double>(), n, it->second);
  }
  return y;
}

// softmax / log_softmax over the last axis, fast or reference.
py::array softmax_like_forward(const py::array& x, bool log, bool reference) {
  const std::string op = log ? "log_softmax" : "softmax";
  const char k = float_input(x, op, "x");
  if (x.ndim() == 0) throw py::value_error(op + ": x must have at least 1 dimension, but received shape ()");
  py::array y = new_like(x);
  const int64_t cols = x.shape(x.ndim() - 1);
  const int64_t rows = size_without_last(x);
  const Ptr yp = out_ptr(y), xp = in_ptr(x);
  {
    py::gil_scoped_release release;
    if (k == 'f') {
      auto f = log ? (reference ? cpu::log_softmax_forward_ref<float> : cpu::log_softmax_forward<float>)
                   : (reference ? cpu::softmax_forward_ref<float> : cpu::softmax_forward<float>);
      f(yp.as<float>(), xp.as<const float>(), rows, cols);
    } else {
      auto f = log ? (reference ? cpu::log_softmax_forward_ref<double> : cpu::log_softmax_forward<double>)
                   : (reference ? cpu::softmax_forward_ref<double> : cpu::softmax_forward<double>);
      f(yp.as<double>(), xp.as<const double>(), rows, cols);
    }
  }
  return y;
}

py::array softmax_like_backward(const py::array& dy, const py::array& y, bool log, bool reference) {
  const std::string op = std::string(log ? "log_softmax" : "softmax") + " (backward)";
  const char k = float_input(y, op, "y");
  require_like(dy, y, k, op, "dy", "y");
  if (y.ndim() == 0) throw py::value_error(op + ": y must have at least 1 dimension, but received shape ()");
  py::array dx = new_like(y);
  const int64_t cols = y.shape(y.ndim() - 1);
  const int64_t rows = size_without_last(y);
  const Ptr dxp = out_ptr(dx), dyp = in_ptr(dy), yp = in_ptr(y);
  {
    py::gil_scoped_release release;
    if (k == 'f') {
      auto f = log ? (reference ? cpu::log_softmax_backward_ref<float> : cpu::log_softmax_backward<float>)
                   : (reference ? cpu::softmax_backward_ref<float> : cpu::softmax_backward<float>);
      f(dxp.as<float>(), dyp.as<const float>(), yp.as<const float>(), rows, cols);
    } else {
      auto f = log ? (reference ? cpu::log_softmax_backward_ref<double> : cpu::log_softmax_backward<double>)
                   : (reference ? cpu::softmax_backward_ref<double> : cpu::softmax_backward<double>);
      f(dxp.as<double>(), dyp.as<const double>(), yp.as<const double>(), rows, cols);
    }
  }
  return dx;
}

// logits (rows, cols), labels (rows,) int64. The range [0, cols) is checked by the kernel as it reads each
// label (a check here, before the GIL is released, would not hold once another thread can write the labels).
void check_labels(const py::array& logits, const py::array& labels, const std::string& op) {
  if (logits.ndim() != 2)
    throw py::value_error(op + ": logits must be 2-D (rows, classes), but received shape " + shape_str(logits));
  const py::dtype ldt = labels.dtype();
  if (ldt.kind() != 'i' || ldt.itemsize() != 8 || !native_byte_order(ldt))
    throw py::type_error(op + ": labels must be int64 in native byte order, but received dtype " +
                         std::string(py::str(ldt)));
  require_aligned(labels, op.c_str(), "labels");
  require_c_contiguous(labels, op, "labels");
  if (labels.ndim() != 1 || labels.shape(0) != logits.shape(0))
    throw py::value_error(op + ": labels must have shape (" + std::to_string(logits.shape(0)) +
                          ",), but received shape " + shape_str(labels));
}

// Raises the ValueError for the out-of-range label a kernel reported (called with the GIL held again).
void raise_label_error(const cpu::LabelError& bad, int64_t cols, const std::string& op) {
  if (bad.row < 0) return;
  throw py::value_error(op + ": label " + std::to_string(bad.label) + " at position " + std::to_string(bad.row) +
                        " is outside the valid range [0, " + std::to_string(cols) + ")");
}

py::tuple sparse_xent_forward(const py::array& logits, const py::array& labels, bool reference) {
  const std::string op = "sparse_categorical_crossentropy";
  const char k = float_input(logits, op, "logits");
  check_labels(logits, labels, op);
  const int64_t rows = logits.shape(0), cols = logits.shape(1);
  py::array loss(logits.dtype(), std::vector<py::ssize_t>{rows});
  py::array lse(logits.dtype(), std::vector<py::ssize_t>{rows});
  const int64_t* lp = static_cast<const int64_t*>(labels.data());
  const Ptr lossp = out_ptr(loss), lsep = out_ptr(lse), xp = in_ptr(logits);
  cpu::LabelError bad;
  {
    py::gil_scoped_release release;
    if (k == 'f') {
      auto f = reference ? cpu::sparse_xent_forward_ref<float> : cpu::sparse_xent_forward<float>;
      bad = f(lossp.as<float>(), lsep.as<float>(), xp.as<const float>(), lp, rows, cols);
    } else {
      auto f = reference ? cpu::sparse_xent_forward_ref<double> : cpu::sparse_xent_forward<double>;
      bad = f(lossp.as<double>(), lsep.as<double>(), xp.as<const double>(), lp, rows, cols);
    }
  }
  raise_label_error(bad, cols, op);
  return py::make_tuple(loss, lse);
}

py::array sparse_xent_backward(const py::array& dloss, const py::array& logits, const py::array& lse,
                               const py::array& labels) {
  const std::string op = "sparse_categorical_crossentropy (backward)";
  const char k = float_input(logits, op, "logits");
  check_labels(logits, labels, op);
  require_vector(dloss, logits.shape(0), k, op, "dloss");
  require_vector(lse, logits.shape(0), k, op, "lse");
  const int64_t rows = logits.shape(0), cols = logits.shape(1);
  py::array d = new_like(logits);
  const int64_t* lp = static_cast<const int64_t*>(labels.data());
  const Ptr dp = out_ptr(d), dlossp = in_ptr(dloss), xp = in_ptr(logits), lsep = in_ptr(lse);
  cpu::LabelError bad;
  {
    py::gil_scoped_release release;
    if (k == 'f')
      bad = cpu::sparse_xent_backward(dp.as<float>(), dlossp.as<const float>(), xp.as<const float>(),
                                      lsep.as<const float>(), lp, rows, cols);
    else
      bad = cpu::sparse_xent_backward(dp.as<double>(), dlossp.as<const double>(), xp.as<const double>(),
                                      lsep.as<const double>(), lp, rows, cols);
  }
  raise_label_error(bad, cols, op);
  return d;
}

py::tuple dense_xent_forward(const py::array& logits, const py::array& target, bool reference) {
  const std::string op = "categorical_crossentropy";
  const char k = float_input(logits, op, "logits");
  if (logits.ndim() != 2)
    throw py::value_error(op + ": logits must be 2-D (rows, classes), but received shape " + shape_str(logits));
  require_like(target, logits, k, op, "target", "logits");
  const int64_t rows = logits.shape(0), cols = logits.shape(1);
  py::array loss(logits.dtype(), std::vector<py::ssize_t>{rows});
  py::array lse(logits.dtype(), std::vector<py::ssize_t>{rows});
  const Ptr lossp = out_ptr(loss), lsep = out_ptr(lse), xp = in_ptr(logits), tp = in_ptr(target);
  {
    py::gil_scoped_release release;
    if (k == 'f') {
      auto f = reference ? cpu::dense_xent_forward_ref<float> : cpu::dense_xent_forward<float>;
      f(lossp.as<float>(), lsep.as<float>(), xp.as<const float>(), tp.as<const float>(), rows, cols);
    } else {
      auto f = reference ? cpu::dense_xent_forward_ref<double> : cpu::dense_xent_forward<double>;
      f(lossp.as<double>(), lsep.as<double>(), xp.as<const double>(), tp.as<const double>(), rows, cols);
    }
  }
  return py::make_tuple(loss, lse);
}

py::array dense_xent_backward(const py::array& dloss, const py::array& logits, const py::array& lse,
                              const py::array& target) {
  const std::string op = "categorical_crossentropy (backward)";
  const char k = float_input(logits, op, "logits");
  if (logits.ndim() != 2)
    throw py::value_error(op + ": logits must be 2-D (rows, classes), but received shape " + shape_str(logits));
  require_like(target, logits, k, op, "target", "logits");
  require_vector(dloss, logits.shape(0), k, op, "dloss");
  require_vector(lse, logits.shape(0), k, op, "lse");
  const int64_t rows = logits.shape(0), cols = logits.shape(1);
  py::array d = new_like(logits);
  const Ptr dp = out_ptr(d), dlossp = in_ptr(dloss), xp = in_ptr(logits), lsep = in_ptr(lse), tp = in_ptr(target);
  {
    py::gil_scoped_release release;
    if (k == 'f')
      cpu::dense_xent_backward(dp.as<float>(), dlossp.as<const float>(), xp.as<const float>(), lsep.as<const float>(),
                               tp.as<const float>(), rows, cols);
    else
      cpu::dense_xent_backward(dp.as<double>(), dlossp.as<const double>(), xp.as<const double>(),
                               lsep.as<const double>(), tp.as<const double>(), rows, cols);
  }
  return d;
}

py::array bias_add_forward(const py::array& x, const py::array& b) {
  const std::string op = "bias_add";
  const char k = float_input(x, op, "x");
  if (float_kind(b, op.c_str(), "bias") != k)
    throw py::type_error(op + ": bias must have the dtype of x (" + std::string(py::str(x.dtype())) +
                         "), but received " + std::string(py::str(b.dtype())));
  require_c_contiguous(b, op, "bias");
  if (x.ndim() == 0 || b.ndim() != 1 || b.shape(0) != x.shape(x.ndim() - 1))
    throw py::value_error(op + ": bias must be 1-D with the size of x's last axis; received x of shape " +
                          shape_str(x) + " and bias of shape " + shape_str(b));
  py::array y = new_like(x);
  const int64_t cols = b.shape(0), rows = size_without_last(x);
  const Ptr yp = out_ptr(y), xp = in_ptr(x), bp = in_ptr(b);
  {
    py::gil_scoped_release release;
    if (k == 'f') cpu::bias_add_forward(yp.as<float>(), xp.as<const float>(), bp.as<const float>(), rows, cols);
    else cpu::bias_add_forward(yp.as<double>(), xp.as<const double>(), bp.as<const double>(), rows, cols);
  }
  return y;
}

// Returns the column sums of dy over all leading axes (a new zero-initialised array accumulated into).
py::array bias_add_backward(const py::array& dy, bool reference) {
  const std::string op = "bias_add (backward)";
  const char k = float_input(dy, op, "dy");
  if (dy.ndim() == 0) throw py::value_error(op + ": dy must have at least 1 dimension, but received shape ()");
  const int64_t cols = dy.shape(dy.ndim() - 1), rows = size_without_last(dy);
  py::array db(dy.dtype(), std::vector<py::ssize_t>{cols});
  const Ptr dbp = out_ptr(db), dyp = in_ptr(dy);
  {
    py::gil_scoped_release release;
    if (k == 'f') {
      std::fill_n(dbp.as<float>(), cols, 0.0f);
      (reference ? cpu::bias_add_backward_ref<float> : cpu::bias_add_backward<float>)(dbp.as<float>(),
                                                                                      dyp.as<const float>(), rows, cols);
    } else {
      std::fill_n(dbp.as<double>(), cols, 0.0);
      (reference ? cpu::bias_add_backward_ref<double> : cpu::bias_add_backward<double>)(dbp.as<double>(),
                                                                                        dyp.as<const double>(), rows, cols);
    }
  }
  return db;
}

}  // namespace

void bind_elementwise(py::module_& m) {
  m.def("activation_forward", &activation_forward, py::arg("x"), py::arg("name"), py::arg("alpha") = 1.0,
        py::arg("reference") = false,
        "y = act(x) elementwise for a C-contiguous float32/float64 x; name is one of relu, relu6, sigmoid, tanh, "
        "elu, selu, gelu, gelu_tanh, silu, leaky_relu, softplus, softsign, hard_sigmoid; alpha is elu's alpha "
        "or leaky_relu's negative slope; reference=True runs the scalar libm twin.");
  m.def("activation_backward", &activation_backward, py::arg("dy"), py::arg("x"), py::arg("y"), py::arg("name"),
        py::arg("alpha") = 1.0, py::arg("reference") = false,
        "dx = dy * act'(x), given x and the forward output y; reference=True runs the scalar libm twin.");
  m.def("vector_math", &vector_math, py::arg("x"), py::arg("name"),
        "For tests and benchmarks: the SIMD kernels' own exp, expm1, log, log1p, tanh or sigmoid of x, on the active "
        "SIMD path (denormals flushed like every kernel).");
  m.def("softmax_forward", [](const py::array& x, bool reference) { return softmax_like_forward(x, false, reference); },
        py::arg("x"), py::arg("reference") = false, "softmax over the last axis");
  m.def("softmax_backward",
        [](const py::array& dy, const py::array& y, bool reference) { return softmax_like_backward(dy, y, false, reference); },
        py::arg("dy"), py::arg("y"), py::arg("reference") = false, "dx = y * (dy - sum(dy * y, -1))");
  m.def("log_softmax_forward", [](const py::array& x, bool reference) { return softmax_like_forward(x, true, reference); },
        py::arg("x"), py::arg("reference") = false, "log-softmax over the last axis");
  m.def("log_softmax_backward",
        [](const py::array& dy, const py::array& y, bool reference) { return softmax_like_backward(dy, y, true, reference); },
        py::arg("dy"), py::arg("y"), py::arg("reference") = false, "dx = dy - exp(y) * sum(dy, -1)");
  m.def("sparse_xent_forward", &sparse_xent_forward, py::arg("logits"), py::arg("labels"),
        py::arg("reference") = false, "(loss, lse) for 2-D logits and int64 labels");
  m.def("sparse_xent_backward", &sparse_xent_backward, py::arg("dloss"), py::arg("logits"), py::arg("lse"),
        py::arg("labels"), "gradient w.r.t. the logits");
  m.def("dense_xent_forward", &dense_xent_forward, py::arg("logits"), py::arg("target"), py::arg("reference") = false,
        "(loss, lse) for 2-D logits and same-shape targets");
  m.def("dense_xent_backward", &dense_xent_backward, py::arg("dloss"), py::arg("logits"), py::arg("lse"),
        py::arg("target"), "gradient w.r.t. the logits");
  m.def("bias_add_forward", &bias_add_forward, py::arg("x"), py::arg("bias"), "x + bias over the last axis");
  m.def("bias_add_backward", &bias_add_backward, py::arg("dy"), py::arg("reference") = false,
        "column sums of dy over all leading axes");
}

}  // namespace fastnn::python
