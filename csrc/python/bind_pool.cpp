// Bindings for the NHWC pooling kernels (fastnn/pool.h): max / average pooling 2D forward and backward, global
// average / max pooling. Each function validates dtypes (TypeError), ranks, shapes, hyper-parameters and the argmax
// (ValueError, naming the function and the values), allocates the outputs, releases the GIL and calls one kernel.
// Non-contiguous inputs are rejected, not copied (the backend's wrappers pass C-contiguous buffers).
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "bindings.h"
#include "fastnn/pool.h"

namespace fastnn::python {
namespace {

using Shape = std::vector<int64_t>;

// Hyper-parameters (window, strides, padding) and shape entries above this are refused: no real input is that
// large, and the bound keeps every size computed from them far from int64 overflow.
constexpr int64_t kMaxHyper = int64_t{1} << 40;
// The most elements an input or output of these bindings may have (far beyond any memory; keeps products exact).
constexpr double kMaxElements = 0x1p52;

std::string text(const Shape& s) {
  std::string t = "(";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + (s.size() == 1 ? ",)" : ")");
}

Shape shape_of(const py::array& x) { return Shape(x.shape(), x.shape() + x.ndim()); }

// A Python int (not a bool) in [lo, kMaxHyper].
int64_t parse_int(py::handle h, int64_t lo, const std::string& op, const std::string& what, const py::object& whole) {
  if (py::isinstance<py::bool_>(h) || !py::isinstance<py::int_>(h))
    throw py::type_error(op + ": " + what + " must be made of ints, but received " + std::string(py::repr(whole)));
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(h.ptr(), &overflow);
  if (overflow != 0 || v < lo || v > kMaxHyper)
    throw py::value_error(op + ": " + what + " must be " + (lo > 0 ? "positive" : "non-negative") +
                          " and at most 2^40, but received " + std::string(py::repr(whole)));
  return static_cast<int64_t>(v);
}

// An int or a tuple / list of `count` ints, each in [lo, 2^40].
std::vector<int64_t> parse_ints(const py::object& obj, size_t count, int64_t lo, const std::string& op,
                                const std::string& what, bool allow_scalar) {
  std::vector<int64_t> out;
  if (allow_scalar && py::isinstance<py::int_>(obj) && !py::isinstance<py::bool_>(obj)) {
    out.assign(count, parse_int(obj, lo, op, what, obj));
    return out;
  }
  if (!py::isinstance<py::tuple>(obj) && !py::isinstance<py::list>(obj))
    throw py::type_error(op + ": " + what + " must be " + (allow_scalar ? "an int or " : "") + "a tuple of " +
                         std::to_string(count) + " ints, but received " + std::string(py::repr(obj)));
  const py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  if (seq.size() != count)
    throw py::value_error(op + ": " + what + " must have " + std::to_string(count) + " entries, but received " +
                          std::string(py::repr(obj)));
  for (py::handle h : seq) out.push_back(parse_int(h, lo, op, what, obj));
  return out;
}

// x (N, H, W, C) of float32 / float64, C-contiguous; returns its kind.
char nhwc_input(const py::array& x, const std::string& op, const char* arg) {
  const char k = float_input(x, op, arg);
  require_ndim(x, 4, op.c_str(), arg);
  return k;
}

void require_kind(const py::array& x, char kind, const std::string& op, const char* arg, const char* ref) {
  if (float_input(x, op, arg) != kind)
    throw py::type_error(op + ": " + arg + " must have the dtype of " + ref + " (" +
                         (kind == 'f' ? "float32" : "float64") + "), but received " + std::string(py::str(x.dtype())));
}

// An int64 index array (the argmax) of dy's shape, native and C-contiguous.
void require_argmax(const py::array& a, const Shape& shape, const std::string& op) {
  const py::dtype dt = a.dtype();
  if (dt.kind() != 'i' || dt.itemsize() != 8 || !native_byte_order(dt))
    throw py::type_error(op + ": argmax must be an int64 array (from the forward), but received dtype " +
                         std::string(py::str(dt)));
  require_aligned(a, op.c_str(), "argmax");
  require_c_contiguous(a, op, "argmax");
  if (shape_of(a) != shape)
    throw py::value_error(op + ": argmax must have dy's shape " + text(shape) + ", but received shape " +
                          text(shape_of(a)));
}

void require_small(const Shape& s, const std::string& op, const char* what) {
  double elements = 1;
  for (int64_t d : s) elements *= static_cast<double>(d);
  if (elements > kMaxElements)
    throw py::value_error(op + ": " + what + " " + text(s) + " is too large (more than 2^52 elements)");
}

// input_shape: 4 non-negative ints (N, H, W, C) with H, W >= 1.
Shape parse_input_shape(const py::object& obj, const std::string& op) {
  const Shape s = parse_ints(obj, 4, 0, op, "input_shape", false);
  if (s[1] == 0 || s[2] == 0)
    throw py::value_error(op + ": input_shape " + text(s) + " has an empty spatial axis (H and W must be positive)");
  require_small(s, op, "input_shape");
  return s;
}

// The pooling window of an (N, H, W, C) input: pool and strides an int or a pair, padding "valid", "same" or
// (top, bottom, left, right), each pad smaller than the window along its axis and the window no larger than the
// padded input.
Pool2dParams pool_params(const Shape& in, const py::object& pool, const py::object& strides, const py::object& padding,
                         const std::string& op) {
  if (in[1] == 0 || in[2] == 0)
    throw py::value_error(op + ": the input " + text(in) + " has an empty spatial axis (H and W must be positive)");
  Pool2dParams p;
  p.n = in[0], p.h = in[1], p.w = in[2], p.c = in[3];
  const auto k = parse_ints(pool, 2, 1, op, "pool", true);
  const auto s = parse_ints(strides, 2, 1, op, "strides", true);
  p.pool_h = k[0], p.pool_w = k[1], p.stride_h = s[0], p.stride_w = s[1];
  if (py::isinstance<py::str>(padding)) {
    const std::string mode = padding.cast<std::string>();
    if (mode == "same") {
      const AxisPadding ph = same_padding(p.h, p.pool_h, p.stride_h), pw = same_padding(p.w, p.pool_w, p.stride_w);
      p.pad_top = ph.before, p.pad_bottom = ph.after, p.pad_left = pw.before, p.pad_right = pw.after;
    } else if (mode != "valid") {
      throw py::value_error(op + ": padding must be 'valid', 'same' or (top, bottom, left, right), but received '" +
                            mode + "'");
    }
  } else {
    const auto pad = parse_ints(padding, 4, 0, op, "padding", false);
    p.pad_top = pad[0], p.pad_bottom = pad[1], p.pad_left = pad[2], p.pad_right = pad[3];
  }
  const Shape window{p.pool_h, p.pool_w}, pads{p.pad_top, p.pad_bottom, p.pad_left, p.pad_right};
  if (p.pad_top >= p.pool_h || p.pad_bottom >= p.pool_h || p.pad_left >= p.pool_w || p.pad_right >= p.pool_w)
    throw py::value_error(op + ": padding " + text(pads) + " must be smaller than the pool window " + text(window) +
                          " on each side (a window of padding alone has no value)");
  if (p.pool_h > p.h + p.pad_top + p.pad_bottom || p.pool_w > p.w + p.pad_left + p.pad_right)
    throw py::value_error(op + ": pool window " + text(window) + " is larger than the padded input (" +
                          std::to_string(p.h + p.pad_top + p.pad_bottom) + ", " +
                          std::to_string(p.w + p.pad_left + p.pad_right) + ") (input shape " + text(in) +
                          ", padding " + text(pads) + ")");
  require_small({p.n, p.out_h(), p.out_w(), p.c}, op, "the output shape");
  return p;
}

Shape out_shape(const Pool2dParams& p) { return {p.n, p.out_h(), p.out_w(), p.c}; }

py::array new_array(const py::dtype& dt, const Shape& s) {
  return py::array(dt, std::vector<py::ssize_t>(s.begin(), s.end()));
}

template <typename T>
T* mut(py::array& a) { return static_cast<T*>(a.mutable_data()); }
template <typename T>
const T* cptr(const py::array& a) { return static_cast<const T*>(a.data()); }

// -- max pooling --------------------------------------------------------------------------------------------------

std::tuple<py::array, py::array> max_forward(const py::array& x, const Pool2dParams& p, char k, bool reference) {
  py::array y = new_array(x.dtype(), out_shape(p));
  py::array argmax = new_array(py::dtype::of<int64_t>(), out_shape(p));
  int64_t* ap = mut<int64_t>(argmax);
  void* yp = y.mutable_data();
  const void* xp = x.data();
  {
    py::gil_scoped_release release;
    if (k == 'f') (reference ? cpu::max_pool2d_forward_ref<float> : cpu::max_pool2d_forward<float>)(
        static_cast<float*>(yp), ap, static_cast<const float*>(xp), p);
    else (reference ? cpu::max_pool2d_forward_ref<double> : cpu::max_pool2d_forward<double>)(
        static_cast<double*>(yp), ap, static_cast<const double*>(xp), p);
  }
  return {y, argmax};
}

std::tuple<py::array, py::array> max_pool2d_forward(const py::array& x, const py::object& pool,
                                                    const py::object& strides, const py::object& padding,
                                                    bool reference) {
  const std::string op = "max_pool2d_forward";
  const char k = nhwc_input(x, op, "x");
  return max_forward(x, pool_params(shape_of(x), pool, strides, padding, op), k, reference);
}

// dy / argmax of `dy_shape` (N, ..., C) against an input of `in` (N, H, W, C): the shared max backward.
py::array max_backward(const py::array& dy, const py::array& argmax, const Shape& in, char k, bool reference,
                       const std::string& op) {
  const Shape ds = shape_of(dy);
  require_argmax(argmax, ds, op);
  if (ds.front() != in[0] || ds.back() != in[3])
    throw py::value_error(op + ": dy of shape " + text(ds) + " does not match input_shape " + text(in) +
                          " (the batch and channel sizes must agree)");
  py::array dx = new_array(dy.dtype(), in);
  const int64_t images = in[0], image = in[1] * in[2] * in[3];
  const int64_t outputs = images > 0 ? dy.size() / images : 0;
  const int64_t* ap = cptr<int64_t>(argmax);
  void* dxp = dx.mutable_data();
  const void* dyp = dy.data();
  int64_t bad = -1;
  {
    py::gil_scoped_release release;
    if (!reference) {
      // The fast kernel tests each index as it goes (one pass over argmax).
      if (k == 'f') bad = cpu::max_pool2d_backward_checked<float>(static_cast<float*>(dxp),
                                                                   static_cast<const float*>(dyp), ap, images, image,
                                                                   outputs, in[3]);
      else bad = cpu::max_pool2d_backward_checked<double>(static_cast<double*>(dxp), static_cast<const double*>(dyp),
                                                            ap, images, image, outputs, in[3]);
    } else {
      if (in[3] > 0) bad = cpu::max_pool2d_check_argmax(ap, images, image, outputs, in[3]);
      if (bad < 0) {
        if (k == 'f') cpu::max_pool2d_backward_ref<float>(static_cast<float*>(dxp), static_cast<const float*>(dyp),
                                                          ap, images, image, outputs);
        else cpu::max_pool2d_backward_ref<double>(static_cast<double*>(dxp), static_cast<const double*>(dyp), ap,
                                                  images, image, outputs);
      }
    }
  }
  if (bad >= 0)
    throw py::value_error(op + ": argmax (flat position " + std::to_string(bad) + ") holds " +
                          std::to_string(ap[bad]) + ", which is not an index into image " +
                          std::to_string(bad / outputs) + ", channel " + std::to_string(bad % in[3]) +
                          " of an input of shape " + text(in) + " (argmax must come from the forward of this shape)");
  return dx;
}

py::array max_pool2d_backward(const py::array& dy, const py::array& argmax, const py::object& input_shape,
                              bool reference) {
  const std::string op = "max_pool2d_backward";
  const char k = nhwc_input(dy, op, "dy");
  return max_backward(dy, argmax, parse_input_shape(input_shape, op), k, reference, op);
}

// -- average pooling ----------------------------------------------------------------------------------------------

py::array avg_forward(const py::array& x, const Pool2dParams& p, char k, bool reference) {
  py::array y = new_array(x.dtype(), out_shape(p));
  void* yp = y.mutable_data();
  const void* xp = x.data();
  {
    py::gil_scoped_release release;
    if (k == 'f') (reference ? cpu::avg_pool2d_forward_ref<float> : cpu::avg_pool2d_forward<float>)(
        static_cast<float*>(yp), static_cast<const float*>(xp), p);
    else (reference ? cpu::avg_pool2d_forward_ref<double> : cpu::avg_pool2d_forward<double>)(
        static_cast<double*>(yp), static_cast<const double*>(xp), p);
  }
  return y;
}

py::array avg_pool2d_forward(const py::array& x, const py::object& pool, const py::object& strides,
                             const py::object& padding, bool reference) {
  const std::string op = "avg_pool2d_forward";
  const char k = nhwc_input(x, op, "x");
  return avg_forward(x, pool_params(shape_of(x), pool, strides, padding, op), k, reference);
}

py::array avg_backward(const py::array& dy, const Shape& in, const Pool2dParams& p, char k, bool reference) {
  py::array dx = new_array(dy.dtype(), in);
  void* dxp = dx.mutable_data();
  const void* dyp = dy.data();
  {
    py::gil_scoped_release release;
    if (k == 'f') (reference ? cpu::avg_pool2d_backward_ref<float> : cpu::avg_pool2d_backward<float>)(
        static_cast<float*>(dxp), static_cast<const float*>(dyp), p);
    else (reference ? cpu::avg_pool2d_backward_ref<double> : cpu::avg_pool2d_backward<double>)(
        static_cast<double*>(dxp), static_cast<const double*>(dyp), p);
  }
  return dx;
}

py::array avg_pool2d_backward(const py::array& dy, const py::object& input_shape, const py::object& pool,
                              const py::object& strides, const py::object& padding, bool reference) {
  const std::string op = "avg_pool2d_backward";
  const char k = nhwc_input(dy, op, "dy");
  const Shape in = parse_input_shape(input_shape, op);
  const Pool2dParams p = pool_params(in, pool, strides, padding, op);
  if (shape_of(dy) != out_shape(p))
    throw py::value_error(op + ": dy must have the forward's output shape " + text(out_shape(p)) + " (input_shape " +
                          text(in) + "), but received shape " + text(shape_of(dy)));
  return avg_backward(dy, in, p, k, reference);
}

// -- global pooling: the window covering (H, W); y and dy are (N, C) ----------------------------------------------

Shape global_input(const py::array& x, const std::string& op) {
  const Shape in = shape_of(x);
  if (in[1] == 0 || in[2] == 0)
    throw py::value_error(op + ": x of shape " + text(in) + " has an empty spatial axis (H and W must be positive)");
  return in;
}

// dy (N, C) for an input of `in`, as the (N, 1, 1, C) array the kernels see.
py::array global_dy(const py::array& dy, const Shape& in, const std::string& op) {
  float_input(dy, op, "dy");
  require_ndim(dy, 2, op.c_str(), "dy");
  if (dy.shape(0) != in[0] || dy.shape(1) != in[3])
    throw py::value_error(op + ": dy must have shape " + text({in[0], in[3]}) + " for input_shape " + text(in) +
                          ", but received shape " + text(shape_of(dy)));
  py::array view = dy;
  return view.reshape(std::vector<py::ssize_t>{in[0], 1, 1, in[3]});
}

py::array flat_nc(py::array y) { return y.reshape(std::vector<py::ssize_t>{y.shape(0), y.shape(3)}); }

py::array global_avg_pool2d_forward(const py::array& x, bool reference) {
  const std::string op = "global_avg_pool2d_forward";
  const char k = nhwc_input(x, op, "x");
  const Shape in = global_input(x, op);
  return flat_nc(avg_forward(x, global_pool2d_params(in[0], in[1], in[2], in[3]), k, reference));
}

py::array global_avg_pool2d_backward(const py::array& dy, const py::object& input_shape, bool reference) {
  const std::string op = "global_avg_pool2d_backward";
  const Shape in = parse_input_shape(input_shape, op);
  const py::array dy4 = global_dy(dy, in, op);
  return avg_backward(dy4, in, global_pool2d_params(in[0], in[1], in[2], in[3]), float_kind(dy, op.c_str(), "dy"),
                      reference);
}

std::tuple<py::array, py::array> global_max_pool2d_forward(const py::array& x, bool reference) {
  const std::string op = "global_max_pool2d_forward";
  const char k = nhwc_input(x, op, "x");
  const Shape in = global_input(x, op);
  auto [y, argmax] = max_forward(x, global_pool2d_params(in[0], in[1], in[2], in[3]), k, reference);
  return {flat_nc(y), flat_nc(argmax)};
}

py::array global_max_pool2d_backward(const py::array& dy, const py::array& argmax, const py::object& input_shape,
                                     bool reference) {
  const std::string op = "global_max_pool2d_backward";
  const char k = float_input(dy, op, "dy");
  require_ndim(dy, 2, op.c_str(), "dy");
  const Shape in = parse_input_shape(input_shape, op);
  return max_backward(dy, argmax, in, k, reference, op);
}

}  // namespace

void bind_pool(py::module_& m) {
  const char* pool_doc =
      " x is (N, H, W, C) float32 / float64, C-contiguous; pool and strides an int or a pair; padding 'valid', "
      "'same' (TensorFlow's: the extra row / column at the bottom / right) or (top, bottom, left, right), each pad "
      "smaller than the window.";
  m.def("max_pool2d_forward", &max_pool2d_forward, py::arg("x"), py::arg("pool"), py::arg("strides"),
        py::arg("padding") = "valid", py::arg("reference") = false,
        (std::string("(y, argmax): max pooling 2D in NHWC, padding never wins; argmax (int64, y's shape) is the flat "
                     "index into x of each maximum (the first in window order; a NaN propagates).") + pool_doc)
            .c_str());
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("dy"), py::arg("argmax"), py::arg("input_shape"),
        py::arg("reference") = false,
        "dx of input_shape (N, H, W, C): zero plus dy added at each argmax (overlapping windows add up). argmax "
        "must point into its own image and channel (checked: ValueError otherwise).");
  m.def("avg_pool2d_forward", &avg_pool2d_forward, py::arg("x"), py::arg("pool"), py::arg("strides"),
        py::arg("padding") = "valid", py::arg("reference") = false,
        (std::string("y: average pooling 2D in NHWC, padded positions excluded from each window's count "
                     "(TensorFlow).") + pool_doc).c_str());
  m.def("avg_pool2d_backward", &avg_pool2d_backward, py::arg("dy"), py::arg("input_shape"), py::arg("pool"),
        py::arg("strides"), py::arg("padding") = "valid", py::arg("reference") = false,
        "dx of input_shape: each window's dy divided by its real-position count, added over the windows containing "
        "each position; dy must have the forward's output shape.");
  m.def("global_avg_pool2d_forward", &global_avg_pool2d_forward, py::arg("x"), py::arg("reference") = false,
        "y (N, C): the mean of x (N, H, W, C) over H and W.");
  m.def("global_avg_pool2d_backward", &global_avg_pool2d_backward, py::arg("dy"), py::arg("input_shape"),
        py::arg("reference") = false, "dx of input_shape (N, H, W, C) = dy (N, C) / (H * W) at every position.");
  m.def("global_max_pool2d_forward", &global_max_pool2d_forward, py::arg("x"), py::arg("reference") = false,
        "(y, argmax), both (N, C): the maximum of x (N, H, W, C) over H and W and its flat index into x.");
  m.def("global_max_pool2d_backward", &global_max_pool2d_backward, py::arg("dy"), py::arg("argmax"),
        py::arg("input_shape"), py::arg("reference") = false,
        "dx of input_shape: zero plus dy (N, C) at each argmax (checked as for max_pool2d_backward).");
}

}  // namespace fastnn::python
