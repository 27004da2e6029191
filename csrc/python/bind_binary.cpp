// Bindings for the broadcasting elementwise kernels (fastnn/binary.h) and the reductions (fastnn/reduce.h).
// As in bind_elementwise.cpp: each function validates dtypes (TypeError naming them), shapes, broadcasting and
// C-contiguity (ValueError), allocates or checks the output, takes every pointer and size while it holds the GIL,
// releases it and calls exactly one kernel. Non-contiguous inputs are rejected, not copied: fastnn.backend's
// wrappers send those to NumPy.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "bindings.h"
#include "fastnn/binary.h"
#include "fastnn/reduce.h"

namespace fastnn::python {
namespace {

using Shape = std::vector<int64_t>;

Shape shape_of(const py::array& x) { return Shape(x.shape(), x.shape() + x.ndim()); }

std::string shape_text(const Shape& s) {
  std::string t = "(";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + (s.size() == 1 ? ",)" : ")");
}

void require_same_kind(const py::array& x, char kind, const py::array& ref, const std::string& op, const char* arg,
                       const char* ref_name) {
  if (float_kind(x, op.c_str(), arg) != kind)
    throw py::type_error(op + ": " + arg + " must have the dtype of " + ref_name + " (" +
                         std::string(py::str(ref.dtype())) + "), but received " + std::string(py::str(x.dtype())));
  require_c_contiguous(x, op, arg);
}

// A C-contiguous NumPy bool array (cond, mask).
void bool_input(const py::array& x, const std::string& op, const char* arg) {
  const py::dtype dt = x.dtype();
  if (dt.kind() != 'b' || dt.itemsize() != 1)
    throw py::type_error(op + ": " + arg + " must be a bool array, but received dtype " + std::string(py::str(dt)));
  require_c_contiguous(x, op, arg);
}

// NumPy's broadcasting rule over the given shapes (right-aligned; each size equal or 1).
Shape broadcast_shapes(const std::vector<Shape>& shapes, const std::string& op) {
  size_t nd = 0;
  for (const Shape& s : shapes) nd = std::max(nd, s.size());
  if (nd > static_cast<size_t>(kMaxBroadcastDims))
    throw py::value_error(op + ": at most " + std::to_string(kMaxBroadcastDims) + " dimensions are supported");
  Shape out(nd, 1);
  for (size_t d = 0; d < nd; ++d) {
    bool set = false;
    for (const Shape& s : shapes) {
      if (d + s.size() < nd) continue;
      const int64_t v = s[d + s.size() - nd];
      if (v == 1) continue;
      if (set && out[d] != v) {
        std::string msg = op + ": operands could not be broadcast together with shapes";
        for (const Shape& t : shapes) msg += " " + shape_text(t);
        throw py::value_error(msg);
      }
      out[d] = v;
      set = true;
    }
  }
  return out;
}

Broadcast make_broadcast(const Shape& out, const std::vector<Shape>& inputs) {
  Broadcast bc;
  broadcast_init(&bc, out.data(), static_cast<int>(out.size()));
  for (const Shape& s : inputs) broadcast_add_input(&bc, s.data(), static_cast<int>(s.size()));
  broadcast_finish(&bc);
  return bc;
}

// The output: a new array of `shape` and `dtype`, or the caller's `out`, which must be a writeable C-contiguous
// array of exactly that shape and dtype that either shares no memory with the inputs or is one of them exactly
// (same data, same shape: an in-place update such as add(a, b, out=a)).
py::array output(const py::object& out, const py::dtype& dtype, const Shape& shape, const std::vector<py::array>& inputs,
                 const std::string& op) {
  if (out.is_none()) return py::array(dtype, std::vector<py::ssize_t>(shape.begin(), shape.end()));
  if (!py::isinstance<py::array>(out))
    throw py::type_error(op + ": out must be a NumPy array or None, but received " +
                         std::string(py::str(py::type::of(out).attr("__name__"))));
  py::array o = py::reinterpret_borrow<py::array>(out);
  if (!o.dtype().is(dtype) && !o.dtype().equal(dtype))
    throw py::type_error(op + ": out must have dtype " + std::string(py::str(dtype)) + ", but received " +
                         std::string(py::str(o.dtype())));
  if (!o.dtype().equal(dtype) || !native_byte_order(o.dtype()))
    throw py::type_error(op + ": out must have dtype " + std::string(py::str(dtype)) + " in native byte order");
  require_aligned(o, op.c_str(), "out");
  require_c_contiguous(o, op, "out");
  if (!o.writeable()) throw py::value_error(op + ": out is read-only");
  if (shape_of(o) != shape)
    throw py::value_error(op + ": out must have shape " + shape_text(shape) + ", but received shape " +
                          shape_text(shape_of(o)));
  for (const py::array& x : inputs) {
    if (!may_overlap(o, x)) continue;
    if (x.data() == o.data() && shape_of(x) == shape && x.dtype().equal(o.dtype())) continue;
    throw py::value_error(op + ": out overlaps an input without being that input exactly (same memory, same "
                          "shape); pass a separate output array");
  }
  return o;
}

struct Ptr {
  void* p;
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
};
Ptr out_ptr(py::array& a) { return Ptr{a.mutable_data()}; }
Ptr in_ptr(const py::array& a) { return Ptr{const_cast<void*>(a.data())}; }

// Whether a finite double rounds to infinity as a float (|v| at or past the midpoint between FLT_MAX and 2^128);
// checked before the cast, which is undefined behaviour in C++ for such values.
bool overflows_float(double v) { return std::isfinite(v) && std::fabs(v) >= std::ldexp(1.0, 128) - std::ldexp(1.0, 103); }

BinaryOp parse_binary(const std::string& name) {
  if (name == "add") return BinaryOp::kAdd;
  if (name == "subtract") return BinaryOp::kSubtract;
  if (name == "multiply") return BinaryOp::kMultiply;
  if (name == "divide") return BinaryOp::kDivide;
  if (name == "maximum") return BinaryOp::kMaximum;
  if (name == "minimum") return BinaryOp::kMinimum;
  if (name == "add_relu") return BinaryOp::kAddRelu;
  throw py::value_error("binary: unknown op '" + name +
                        "'; expected one of add, subtract, multiply, divide, maximum, minimum, add_relu");
}

CompareOp parse_compare(const std::string& name) {
  if (name == "equal") return CompareOp::kEqual;
  if (name == "not_equal") return CompareOp::kNotEqual;
  if (name == "less") return CompareOp::kLess;
  if (name == "less_equal") return CompareOp::kLessEqual;
  if (name == "greater") return CompareOp::kGreater;
  if (name == "greater_equal") return CompareOp::kGreaterEqual;
  throw py::value_error("compare: unknown op '" + name +
                        "'; expected one of equal, not_equal, less, less_equal, greater, greater_equal");
}

py::array binary(const py::array& a, const py::array& b, const std::string& name, const py::object& out,
                 bool reference) {
  const BinaryOp op = parse_binary(name);
  const char k = float_input(a, name, "a");
  require_same_kind(b, k, a, name, "b", "a");
  const Shape sa = shape_of(a), sb = shape_of(b);
  const Shape shape = broadcast_shapes({sa, sb}, name);
  py::array o = output(out, a.dtype(), shape, {a, b}, name);
  const Broadcast bc = make_broadcast(shape, {sa, sb});
  const Ptr op_ = out_ptr(o), ap = in_ptr(a), bp = in_ptr(b);
  {
    py::gil_scoped_release release;
    if (k == 'f') (reference ? cpu::binary_ref<float> : cpu::binary<float>)(op_.as<float>(), ap.as<const float>(),
                                                                          bp.as<const float>(), bc, op);
    else (reference ? cpu::binary_ref<double> : cpu::binary<double>)(op_.as<double>(), ap.as<const double>(),
                                                                   bp.as<const double>(), bc, op);
  }
  return o;
}

py::array compare(const py::array& a, const py::array& b, const std::string& name, const py::object& out,
                  bool reference) {
  const CompareOp op = parse_compare(name);
  const char k = float_input(a, name, "a");
  require_same_kind(b, k, a, name, "b", "a");
  const Shape sa = shape_of(a), sb = shape_of(b);
  const Shape shape = broadcast_shapes({sa, sb}, name);
  py::array o = output(out, py::dtype::of<bool>(), shape, {a, b}, name);
  const Broadcast bc = make_broadcast(shape, {sa, sb});
  uint8_t* const op_ = static_cast<uint8_t*>(o.mutable_data());
  const Ptr ap = in_ptr(a), bp = in_ptr(b);
  {
    py::gil_scoped_release release;
    if (k == 'f') (reference ? cpu::compare_ref<float> : cpu::compare<float>)(op_, ap.as<const float>(),
                                                                            bp.as<const float>(), bc, op);
    else (reference ? cpu::compare_ref<double> : cpu::compare<double>)(op_, ap.as<const double>(),
                                                                     bp.as<const double>(), bc, op);
  }
  return o;
}

py::array where(const py::array& cond, const py::array& a, const py::array& b, const py::object& out,
                bool reference) {
  const std::string op = "where";
  bool_input(cond, op, "cond");
  const char k = float_input(a, op, "a");
  require_same_kind(b, k, a, op, "b", "a");
  const Shape sc = shape_of(cond), sa = shape_of(a), sb = shape_of(b);
  const Shape shape = broadcast_shapes({sc, sa, sb}, op);
  py::array o = output(out, a.dtype(), shape, {cond, a, b}, op);
  const Broadcast bc = make_broadcast(shape, {sc, sa, sb});
  const Ptr op_ = out_ptr(o), ap = in_ptr(a), bp = in_ptr(b);
  const uint8_t* const cp = static_cast<const uint8_t*>(cond.data());
  {
    py::gil_scoped_release release;
    if (k == 'f') (reference ? cpu::where_ref<float> : cpu::where<float>)(op_.as<float>(), cp, ap.as<const float>(),
                                                                        bp.as<const float>(), bc);
    else (reference ? cpu::where_ref<double> : cpu::where<double>)(op_.as<double>(), cp, ap.as<const double>(),
                                                                 bp.as<const double>(), bc);
  }
  return o;
}

// lo / hi: Python numbers or None, rounded to x's dtype (as NumPy does with a Python scalar bound).
py::array clip(const py::array& x, const py::object& lo, const py::object& hi, const py::object& out, bool reference) {
  const std::string op = "clip";
  const char k = float_input(x, op, "x");
  auto bound = [&](const py::object& v, const char* name) -> double {
    if (v.is_none()) return 0.0;
    if (py::isinstance<py::bool_>(v) || (!py::isinstance<py::float_>(v) && !py::isinstance<py::int_>(v)))
      throw py::type_error(op + ": " + name + " must be a float, an int or None, but received " +
                           std::string(py::str(py::type::of(v).attr("__name__"))));
    const double d = PyFloat_AsDouble(v.ptr());  // an int too large for a double raises OverflowError here
    if (d == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      throw py::value_error(op + ": " + name + " is out of the range of a double");
    }
    return d;
  };
  const double lo_v = bound(lo, "lo"), hi_v = bound(hi, "hi");
  const bool has_lo = !lo.is_none(), has_hi = !hi.is_none();
  // A finite bound that overflows float32 is NumPy's "overflow encountered in cast" warning: refuse it here (the
  // backend then lets NumPy warn) rather than clip silently at infinity.
  if (k == 'f') {
    for (const double v : {has_lo ? lo_v : 0.0, has_hi ? hi_v : 0.0})
      if (overflows_float(v)) throw py::value_error(op + ": bound " + std::to_string(v) + " overflows float32");
  }
  const Shape shape = shape_of(x);
  py::array o = output(out, x.dtype(), shape, {x}, op);
  const int64_t n = x.size();
  const Ptr op_ = out_ptr(o), xp = in_ptr(x);
  {
    py::gil_scoped_release release;
    if (k == 'f')
      (reference ? cpu::clip_ref<float> : cpu::clip<float>)(op_.as<float>(), xp.as<const float>(), n,
                                                            static_cast<float>(lo_v), static_cast<float>(hi_v),
                                                            has_lo, has_hi);
    else
      (reference ? cpu::clip_ref<double> : cpu::clip<double>)(op_.as<double>(), xp.as<const double>(), n, lo_v, hi_v,
                                                              has_lo, has_hi);
  }
  return o;
}

py::array relu_mask_multiply(const py::array& g, const py::array& y, const py::object& out, bool reference) {
  const std::string op = "relu_mask_multiply";
  const char k = float_input(g, op, "g");
  require_same_kind(y, k, g, op, "y", "g");
  const Shape shape = shape_of(g);
  if (shape_of(y) != shape)
    throw py::value_error(op + ": y must have the shape of g " + shape_text(shape) + ", but received shape " +
                          shape_text(shape_of(y)));
  py::array o = output(out, g.dtype(), shape, {g, y}, op);
  const int64_t n = g.size();
  const Ptr op_ = out_ptr(o), gp = in_ptr(g), yp = in_ptr(y);
  {
    py::gil_scoped_release release;
    if (k == 'f') (reference ? cpu::relu_mask_multiply_ref<float> : cpu::relu_mask_multiply<float>)(
        op_.as<float>(), gp.as<const float>(), yp.as<const float>(), n);
    else (reference ? cpu::relu_mask_multiply_ref<double> : cpu::relu_mask_multiply<double>)(
        op_.as<double>(), gp.as<const double>(), yp.as<const double>(), n);
  }
  return o;
}

// mask: bool, broadcastable to x's shape (Dropout's noise_shape); the output has x's shape.
py::array dropout_mask_multiply(const py::array& x, const py::array& mask, double scale, const py::object& out,
                                bool reference) {
  const std::string op = "dropout_mask_multiply";
  const char k = float_input(x, op, "x");
  bool_input(mask, op, "mask");
  if (k == 'f' && overflows_float(scale))
    throw py::value_error(op + ": scale " + std::to_string(scale) + " overflows float32");
  const Shape sx = shape_of(x), sm = shape_of(mask);
  const Shape shape = broadcast_shapes({sx, sm}, op);
  if (shape != sx)
    throw py::value_error(op + ": mask of shape " + shape_text(sm) + " must broadcast to x's shape " + shape_text(sx));
  py::array o = output(out, x.dtype(), shape, {x, mask}, op);
  const Broadcast bc = make_broadcast(shape, {sx, sm});
  const Ptr op_ = out_ptr(o), xp = in_ptr(x);
  const uint8_t* const mp = static_cast<const uint8_t*>(mask.data());
  {
    py::gil_scoped_release release;
    if (k == 'f') (reference ? cpu::dropout_mask_multiply_ref<float> : cpu::dropout_mask_multiply<float>)(
        op_.as<float>(), xp.as<const float>(), mp, static_cast<float>(scale), bc);
    else (reference ? cpu::dropout_mask_multiply_ref<double> : cpu::dropout_mask_multiply<double>)(
        op_.as<double>(), xp.as<const double>(), mp, scale, bc);
  }
  return o;
}

// -- reductions ---------------------------------------------------------------------------------------------------

// A reduction of `shape` over the axes flagged in `reduced`, seen as (outer, r, inner). Size-1 axes can go either
// way; the other reduced axes must be adjacent (NumPy's summation order is only reproduced for one run of axes).
struct Plan {
  int64_t outer = 1, r = 1, inner = 1;
};

Plan plan_reduction(const Shape& shape, const std::vector<bool>& reduced, const std::string& op) {
  Plan p;
  int stage = 0;  // 0: kept axes before the run, 1: inside the run, 2: kept axes after it
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (reduced[d]) {
      if (stage == 2)
        throw py::value_error(op + ": the reduced axes must be adjacent once size-1 axes are ignored (shape " +
                              shape_text(shape) + "); reduce in steps, or use NumPy");
      stage = 1;
      p.r *= shape[d];
    } else if (stage == 0) {
      p.outer *= shape[d];
    } else {
      stage = 2;
      p.inner *= shape[d];
    }
  }
  return p;
}

// axis: None (every axis), an int or a tuple/list of ints (negative counted from the end), as NumPy's.
std::vector<bool> parse_axes(const py::object& axis, size_t ndim, const std::string& op) {
  std::vector<bool> reduced(ndim, axis.is_none());
  if (axis.is_none()) return reduced;
  std::vector<py::object> items;
  if (py::isinstance<py::tuple>(axis)) {  // a list is a TypeError in NumPy too
    for (py::handle h : axis) items.push_back(py::reinterpret_borrow<py::object>(h));
  } else {
    items.push_back(axis);
  }
  for (const py::object& item : items) {
    if (py::isinstance<py::bool_>(item) || !py::isinstance<py::int_>(item))
      throw py::type_error(op + ": axis must be None, an int or a tuple of ints, but received " +
                           std::string(py::repr(axis)));
    const int64_t a = item.cast<int64_t>();
    const int64_t nd = static_cast<int64_t>(ndim);
    if (a < -nd || a >= nd)
      throw py::value_error(op + ": axis " + std::to_string(a) + " is out of bounds for an array of dimension " +
                            std::to_string(ndim));
    const size_t i = static_cast<size_t>(a < 0 ? a + nd : a);
    if (reduced[i]) throw py::value_error(op + ": duplicate value in axis " + std::string(py::repr(axis)));
    reduced[i] = true;
  }
  return reduced;
}

enum class Reduction { kSum, kMean, kMax };

py::array reduce(const py::array& x, const py::object& axis, bool keepdims, bool reference, Reduction kind) {
  const std::string op = kind == Reduction::kSum ? "reduce_sum" : kind == Reduction::kMean ? "reduce_mean" : "reduce_max";
  const char k = float_input(x, op, "x");
  const Shape shape = shape_of(x);
  const std::vector<bool> reduced = parse_axes(axis, shape.size(), op);
  const Plan p = plan_reduction(shape, reduced, op);
  int64_t count = 1;
  for (size_t d = 0; d < shape.size(); ++d) count *= reduced[d] ? shape[d] : 1;
  if (count == 0 && kind != Reduction::kSum)
    throw py::value_error(op + ": zero-size reduction (shape " + shape_text(shape) + ") has no " +
                          (kind == Reduction::kMax ? "maximum" : "mean"));
  Shape out_shape;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (!reduced[d]) out_shape.push_back(shape[d]);
    else if (keepdims) out_shape.push_back(1);
  }
  py::array o(x.dtype(), std::vector<py::ssize_t>(out_shape.begin(), out_shape.end()));
  const int64_t r = count == 0 ? 0 : p.r;
  const int64_t outer = count == 0 ? o.size() : p.outer, inner = count == 0 ? 1 : p.inner;
  const Ptr op_ = out_ptr(o), xp = in_ptr(x);
  {
    py::gil_scoped_release release;
    if (k == 'f') {
      auto f = kind == Reduction::kSum ? (reference ? cpu::reduce_sum_ref<float> : cpu::reduce_sum<float>)
             : kind == Reduction::kMean ? (reference ? cpu::reduce_mean_ref<float> : cpu::reduce_mean<float>)
                                        : (reference ? cpu::reduce_max_ref<float> : cpu::reduce_max<float>);
      f(op_.as<float>(), xp.as<const float>(), outer, r, inner);
    } else {
      auto f = kind == Reduction::kSum ? (reference ? cpu::reduce_sum_ref<double> : cpu::reduce_sum<double>)
             : kind == Reduction::kMean ? (reference ? cpu::reduce_mean_ref<double> : cpu::reduce_mean<double>)
                                        : (reference ? cpu::reduce_max_ref<double> : cpu::reduce_max<double>);
      f(op_.as<double>(), xp.as<const double>(), outer, r, inner);
    }
  }
  return o;
}

// The backward of broadcasting: g summed over the axes along which `shape` was broadcast to g's shape (its
// leading axes and the axes where `shape` has size 1), in one NumPy-ordered pass; the result has `shape`.
py::array unbroadcast(const py::array& g, const py::object& shape_arg, bool reference) {
  const std::string op = "unbroadcast";
  const char k = float_input(g, op, "g");
  if (!py::isinstance<py::tuple>(shape_arg) && !py::isinstance<py::list>(shape_arg))
    throw py::type_error(op + ": shape must be a tuple of ints, but received " + std::string(py::repr(shape_arg)));
  Shape shape;
  for (py::handle h : shape_arg) {
    if (py::isinstance<py::bool_>(h) || !py::isinstance<py::int_>(h))
      throw py::type_error(op + ": shape must be a tuple of ints, but received " + std::string(py::repr(shape_arg)));
    shape.push_back(h.cast<int64_t>());
  }
  const Shape gs = shape_of(g);
  if (shape.size() > gs.size())
    throw py::value_error(op + ": shape " + shape_text(shape) + " has more dimensions than g's shape " +
                          shape_text(gs));
  const size_t lead = gs.size() - shape.size();
  std::vector<bool> reduced(gs.size(), false);
  for (size_t d = 0; d < gs.size(); ++d) {
    if (d < lead) {
      reduced[d] = true;
      continue;
    }
    const int64_t t = shape[d - lead];
    if (t < 0) throw py::value_error(op + ": shape " + shape_text(shape) + " has a negative size");
    if (t != gs[d] && t != 1)
      throw py::value_error(op + ": shape " + shape_text(shape) + " does not broadcast to g's shape " +
                            shape_text(gs));
    reduced[d] = t == 1 && gs[d] != 1;
  }
  const Plan p = plan_reduction(gs, reduced, op);
  py::array o(g.dtype(), std::vector<py::ssize_t>(shape.begin(), shape.end()));
  int64_t count = 1;
  for (size_t d = 0; d < gs.size(); ++d) count *= reduced[d] ? gs[d] : 1;
  const int64_t r = count == 0 ? 0 : p.r;
  const int64_t outer = count == 0 ? o.size() : p.outer, inner = count == 0 ? 1 : p.inner;
  const Ptr op_ = out_ptr(o), gp = in_ptr(g);
  {
    py::gil_scoped_release release;
    if (k == 'f') (reference ? cpu::reduce_sum_ref<float> : cpu::reduce_sum<float>)(op_.as<float>(),
                                                                                  gp.as<const float>(), outer, r, inner);
    else (reference ? cpu::reduce_sum_ref<double> : cpu::reduce_sum<double>)(op_.as<double>(), gp.as<const double>(),
                                                                           outer, r, inner);
  }
  return o;
}

}  // namespace

void bind_binary(py::module_& m) {
  m.def("binary", &binary, py::arg("a"), py::arg("b"), py::arg("op"), py::arg("out") = py::none(),
        py::arg("reference") = false,
        "a (op) b with NumPy broadcasting for C-contiguous float32/float64 arrays of one dtype; op is add, "
        "subtract, multiply, divide, maximum, minimum or add_relu (relu(a + b), the ReLU kernel's rule on the rounded "
        "sum); out: an optional C-contiguous output of the result's "
        "shape and dtype.");
  m.def("compare", &compare, py::arg("a"), py::arg("b"), py::arg("op"), py::arg("out") = py::none(),
        py::arg("reference") = false,
        "a (op) b as a bool array with broadcasting; op is equal, not_equal, less, less_equal, greater or "
        "greater_equal.");
  m.def("where", &where, py::arg("cond"), py::arg("a"), py::arg("b"), py::arg("out") = py::none(),
        py::arg("reference") = false, "cond ? a : b with broadcasting; cond a bool array, a and b one float dtype.");
  m.def("clip", &clip, py::arg("x"), py::arg("lo"), py::arg("hi"), py::arg("out") = py::none(),
        py::arg("reference") = false,
        "minimum(maximum(x, lo), hi) (NumPy's clip, NaN propagating); lo / hi Python numbers (rounded to x's "
        "dtype) or None.");
  m.def("relu_mask_multiply", &relu_mask_multiply, py::arg("g"), py::arg("y"), py::arg("out") = py::none(),
        py::arg("reference") = false, "g * (y > 0) for same-shape g and y (the ReLU backward), one pass.");
  m.def("dropout_mask_multiply", &dropout_mask_multiply, py::arg("x"), py::arg("mask"), py::arg("scale"),
        py::arg("out") = py::none(), py::arg("reference") = false,
        "(x * mask) * scale, mask a bool array broadcast to x's shape, scale rounded to x's dtype; one pass.");
  m.def("reduce_sum",
        [](const py::array& x, const py::object& axis, bool keepdims, bool reference) {
          return reduce(x, axis, keepdims, reference, Reduction::kSum);
        },
        py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false, py::arg("reference") = false,
        "np.sum(x, axis, keepdims) bit for bit (NumPy's pairwise order) over adjacent axes of a C-contiguous array; "
        "always returns an array (0-D for a full reduction).");
  m.def("reduce_mean",
        [](const py::array& x, const py::object& axis, bool keepdims, bool reference) {
          return reduce(x, axis, keepdims, reference, Reduction::kMean);
        },
        py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false, py::arg("reference") = false,
        "np.mean(x, axis, keepdims) bit for bit over adjacent axes of a C-contiguous array.");
  m.def("reduce_max",
        [](const py::array& x, const py::object& axis, bool keepdims, bool reference) {
          return reduce(x, axis, keepdims, reference, Reduction::kMax);
        },
        py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false, py::arg("reference") = false,
        "np.max(x, axis, keepdims) over adjacent axes of a C-contiguous array (NaN propagating).");
  m.def("unbroadcast", &unbroadcast, py::arg("g"), py::arg("shape"), py::arg("reference") = false,
        "g summed down to `shape` (the axes along which shape broadcasts to g.shape) in one NumPy-ordered pass.");
}

}  // namespace fastnn::python
