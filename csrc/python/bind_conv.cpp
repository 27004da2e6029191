// Bindings for the convolutions (fastnn/conv.h): conv2d and depthwise_conv2d forward / backward input / backward
// weight and their reference twins. Inputs must be C-contiguous, aligned, native float32 / float64 (one dtype per
// call); outputs are fresh arrays. Hyper-parameters: strides and dilation an int or a pair (>= 1); padding "valid", "same"
// (TensorFlow's: the extra row / column at the bottom / right), an int or (top, bottom, left, right) (>= 0).
#include <algorithm>
#include <string>
#include <vector>

#include "bindings.h"
#include "fastnn/conv.h"

namespace fastnn::python {
namespace {

// Hyper-parameter values above this are refused, so no index computation of the kernels can overflow int64.
constexpr int64_t kMaxConvParam = int64_t{1} << 30;

std::string tuple_str(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + (v.size() == 1 ? ",)" : ")");
}

// One Python integer (bool, float and anything without __index__ refused) as int64.
bool as_int64(const py::handle& h, int64_t& out) {
  if (PyBool_Check(h.ptr()) || !PyIndex_Check(h.ptr())) return false;
  PyObject* index = PyNumber_Index(h.ptr());
  if (index == nullptr) {
    PyErr_Clear();
    return false;
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
  Py_DECREF(index);
  if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    return false;
  }
  out = static_cast<int64_t>(v);
  return true;
}

// An int (repeated `count` times) or a tuple / list of `count` ints.
std::vector<int64_t> int_tuple(const py::object& obj, size_t count, const std::string& op, const char* arg) {
  std::vector<int64_t> v;
  int64_t one = 0;
  if (as_int64(obj, one)) return std::vector<int64_t>(count, one);
  const bool seq = py::isinstance<py::tuple>(obj) || py::isinstance<py::list>(obj);
  if (seq && py::len(obj) == count) {
    for (const py::handle item : obj) {
      if (!as_int64(item, one)) break;
      v.push_back(one);
    }
    if (v.size() == count) return v;
  }
  throw py::type_error(op + ": " + arg + " must be an int or a tuple of " + std::to_string(count) +
                       " ints, but received " + std::string(py::repr(obj)));
}

Activation parse_activation(const std::string& name, const std::string& op) {
  if (name == "linear" || name == "identity") return Activation::kIdentity;
  if (name == "relu") return Activation::kRelu;
  throw py::value_error(op + ": activation must be one of 'linear', 'relu', but received '" + name + "'");
}

std::string kind_name(char kind) { return kind == 'f' ? "float32" : "float64"; }

void require_kind(const py::array& x, char kind, const std::string& op, const char* arg, const char* first) {
  if (float_input(x, op, arg) != kind)
    throw py::type_error(op + ": " + arg + " must have the same dtype as " + first + " (" + kind_name(kind) +
                         "), but received " + std::string(py::str(x.dtype())));
}

// A shape argument: a tuple / list of 4 non-negative ints.
std::vector<int64_t> shape_arg(const py::object& obj, const std::string& op, const char* arg) {
  if (!(py::isinstance<py::tuple>(obj) || py::isinstance<py::list>(obj)) || py::len(obj) != 4)
    throw py::type_error(op + ": " + arg + " must be a tuple of 4 ints, but received " + std::string(py::repr(obj)));
  std::vector<int64_t> v = int_tuple(obj, 4, op, arg);
  for (int64_t d : v)
    if (d < 0) throw py::value_error(op + ": " + arg + " must not have negative sizes, but received " + tuple_str(v));
  return v;
}

std::vector<int64_t> shape_of(const py::array& x) {
  std::vector<int64_t> v;
  for (py::ssize_t i = 0; i < x.ndim(); ++i) v.push_back(static_cast<int64_t>(x.shape(i)));
  return v;
}

// The product of non-negative sizes, or a ValueError with `message` when it reaches 2**62 (a zero anywhere gives 0).
int64_t checked_product(const std::vector<int64_t>& terms, const std::string& message) {
  for (int64_t t : terms)
    if (t == 0) return 0;
  __int128 product = 1;
  for (int64_t t : terms) {
    product *= t;
    if (product >= (static_cast<__int128>(1) << 62)) throw py::value_error(message);
  }
  return static_cast<int64_t>(product);
}

struct ConvSpec {
  Conv2dShape shape;
  Conv2dParams params;
};

// Validates the geometry of one convolution: input (N, H, W, C), kernel (KH, KW, C / groups, F), the
// hyper-parameters, and computes the output size. Every refusal names op and the values received.
ConvSpec conv_spec(const std::string& op, const std::vector<int64_t>& in, const std::vector<int64_t>& ker,
                   const py::object& strides, const py::object& padding, const py::object& dilation, int64_t groups) {
  ConvSpec spec;
  Conv2dShape& s = spec.shape;
  Conv2dParams& p = spec.params;
  s.n = in[0], s.h = in[1], s.w = in[2], s.c = in[3];
  s.kh = ker[0], s.kw = ker[1], s.f = ker[3];
  const std::vector<int64_t> st = int_tuple(strides, 2, op, "strides");
  const std::vector<int64_t> dil = int_tuple(dilation, 2, op, "dilation");
  for (auto [v, name] : {std::pair<const std::vector<int64_t>*, const char*>{&st, "strides"}, {&dil, "dilation"}})
    for (int64_t d : *v)
      if (d < 1 || d > kMaxConvParam)
        throw py::value_error(op + ": " + name + " must be >= 1 (and at most 2**30), but received " + tuple_str(*v));
  p.stride_h = st[0], p.stride_w = st[1], p.dilation_h = dil[0], p.dilation_w = dil[1];
  if (groups < 1 || groups > kMaxConvParam)
    throw py::value_error(op + ": groups must be >= 1, but received " + std::to_string(groups));
  p.groups = groups;
  if (s.kh < 1 || s.kw < 1)
    throw py::value_error(op + ": the kernel must be at least 1x1, but its shape is " + tuple_str(ker));
  if (s.c % groups != 0 || s.f % groups != 0)
    throw py::value_error(op + ": groups=" + std::to_string(groups) + " must divide the input channels (" +
                          std::to_string(s.c) + ") and the filters (" + std::to_string(s.f) + ")");
  if (static_cast<__int128>(ker[2]) * groups != s.c)
    throw py::value_error(op + ": the kernel of shape " + tuple_str(ker) + " takes " + std::to_string(ker[2]) +
                          " input channels per group, but the input of shape " + tuple_str(in) + " has " +
                          std::to_string(s.c) + " channels in " + std::to_string(groups) + " group(s)");
  // Padding: "valid", "same", an int or (top, bottom, left, right).
  if (py::isinstance<py::str>(padding)) {
    const std::string mode = py::cast<std::string>(padding);
    if (mode == "same") {
      const ConvPadding ph = same_padding(s.h, s.kh, p.stride_h, p.dilation_h);
      const ConvPadding pw = same_padding(s.w, s.kw, p.stride_w, p.dilation_w);
      p.pad_top = ph.begin, p.pad_bottom = ph.end, p.pad_left = pw.begin, p.pad_right = pw.end;
    } else if (mode != "valid") {
      throw py::value_error(op + ": padding must be 'valid', 'same', an int or (top, bottom, left, right), but "
                                 "received '" + mode + "'");
    }
  } else {
    const std::vector<int64_t> pad = int_tuple(padding, 4, op, "padding");
    for (int64_t d : pad)
      if (d < 0 || d > kMaxConvParam)
        throw py::value_error(op + ": padding must be >= 0 (and at most 2**30), but received " + tuple_str(pad));
    p.pad_top = pad[0], p.pad_bottom = pad[1], p.pad_left = pad[2], p.pad_right = pad[3];
  }
  if (p.pad_top > kMaxConvParam || p.pad_bottom > kMaxConvParam || p.pad_left > kMaxConvParam ||
      p.pad_right > kMaxConvParam)
    throw py::value_error(op + ": the 'same' padding of this shape exceeds 2**30");
  // The dilated kernel must fit the padded input (computed in 128 bits: a huge kernel times a large dilation).
  const __int128 span_h = static_cast<__int128>(p.dilation_h) * (s.kh - 1) + 1;
  const __int128 span_w = static_cast<__int128>(p.dilation_w) * (s.kw - 1) + 1;
  const __int128 padded_h = static_cast<__int128>(s.h) + p.pad_top + p.pad_bottom;
  const __int128 padded_w = static_cast<__int128>(s.w) + p.pad_left + p.pad_right;
  if (span_h > padded_h || span_w > padded_w)
    throw py::value_error(op + ": the kernel " + tuple_str({s.kh, s.kw}) + " with dilation " + tuple_str(dil) +
                          " spans " + tuple_str({static_cast<int64_t>(span_h), static_cast<int64_t>(span_w)}) +
                          ", larger than the padded input " +
                          tuple_str({static_cast<int64_t>(padded_h), static_cast<int64_t>(padded_w)}) +
                          " (input of shape " + tuple_str(in) + ", padding (top, bottom, left, right) = " +
                          tuple_str({p.pad_top, p.pad_bottom, p.pad_left, p.pad_right}) + ")");
  s.oh = conv_output_size(s.h, s.kh, p.stride_h, p.dilation_h, p.pad_top, p.pad_bottom);
  s.ow = conv_output_size(s.w, s.kw, p.stride_w, p.dilation_w, p.pad_left, p.pad_right);
  // Every element count the kernels form (pixels x column width, the arrays) must fit int64 with room to spare.
  const std::string too_large = op + ": the convolution of input " + tuple_str(in) + " with kernel " +
                                tuple_str(ker) + " is too large (element counts above 2**62)";
  const std::vector<int64_t> pixels_terms = {s.n, s.oh, s.ow};
  const int64_t pixels = checked_product(pixels_terms, too_large);
  checked_product({pixels, std::max<int64_t>(checked_product({s.kh, s.kw, s.c}, too_large), s.f)}, too_large);
  checked_product({s.n, s.h, s.w, s.c}, too_large);
  checked_product({s.kh, s.kw, s.c, s.f}, too_large);
  return spec;
}

// Depthwise: the kernel (KH, KW, C, M) must take the input's C channels; the geometry is then checked as the grouped
// convolution it is (groups = C, kernel (KH, KW, 1, C*M)), and the spec's shape carries f = M for the kernels.
ConvSpec depthwise_spec(const std::string& op, const std::vector<int64_t>& in, const std::vector<int64_t>& ker,
                        const py::object& strides, const py::object& padding, const py::object& dilation) {
  if (ker[2] != in[3])
    throw py::value_error(op + ": the depthwise kernel of shape " + tuple_str(ker) + " (KH, KW, C, multiplier) takes " +
                          std::to_string(ker[2]) + " input channels, but the input of shape " + tuple_str(in) +
                          " has " + std::to_string(in[3]));
  const int64_t c = in[3];
  const std::vector<int64_t> grouped = {ker[0], ker[1], c > 0 ? 1 : 0, c > 0 ? c * ker[3] : ker[3]};
  if (c > 0 && static_cast<__int128>(c) * ker[3] >= (static_cast<__int128>(1) << 62))
    throw py::value_error(op + ": the depthwise kernel of shape " + tuple_str(ker) + " is too large");
  ConvSpec spec = conv_spec(op, in, grouped, strides, padding, dilation, c > 0 ? c : 1);
  spec.shape.f = ker[3];
  spec.params.groups = 1;
  return spec;
}

// (N, OH, OW, F) for conv2d, (N, OH, OW, C*M) for depthwise.
std::vector<int64_t> output_shape(const ConvSpec& c, bool depthwise = false) {
  return {c.shape.n, c.shape.oh, c.shape.ow, depthwise ? c.shape.c * c.shape.f : c.shape.f};
}

template <typename T>
py::array forward_impl(const py::array& x, const py::array& w, const py::array* bias,
                       const ConvSpec& spec, Activation act, bool reference, bool depthwise) {
  py::array_t<T> y(output_shape(spec, depthwise));
  const T* xp = static_cast<const T*>(x.data());
  const T* wp = static_cast<const T*>(w.data());
  const T* bp = bias != nullptr ? static_cast<const T*>(bias->data()) : nullptr;
  T* yp = y.mutable_data();
  {
    // The GIL is back before y is converted to the returned py::array (that touches Python objects).
    py::gil_scoped_release release;
    if (depthwise && reference) cpu::depthwise_conv2d_forward_ref(yp, xp, wp, bp, spec.shape, spec.params, act);
    else if (depthwise) cpu::depthwise_conv2d_forward(yp, xp, wp, bp, spec.shape, spec.params, act);
    else if (reference) cpu::conv2d_forward_ref(yp, xp, wp, bp, spec.shape, spec.params, act);
    else cpu::conv2d_forward(yp, xp, wp, bp, spec.shape, spec.params, act);
  }
  return std::move(y);
}

py::array conv2d_forward(const py::array& x, const py::array& w, const py::object& bias_obj, const py::object& strides,
                         const py::object& padding, const py::object& dilation, int64_t groups,
                         const std::string& activation, bool reference, bool depthwise) {
  const std::string op = std::string(depthwise ? "depthwise_" : "") + "conv2d_forward" + (reference ? "_ref" : "");
  const char kind = float_input(x, op, "x");
  require_kind(w, kind, op, "w", "x");
  require_ndim(x, 4, op.c_str(), "x");
  require_ndim(w, 4, op.c_str(), "w");
  const Activation act = parse_activation(activation, op);
  const ConvSpec spec = depthwise ? depthwise_spec(op, shape_of(x), shape_of(w), strides, padding, dilation)
                                  : conv_spec(op, shape_of(x), shape_of(w), strides, padding, dilation, groups);
  const int64_t channels_out = output_shape(spec, depthwise)[3];
  py::array bias;
  if (!bias_obj.is_none()) {
    bias = py::cast<py::array>(bias_obj);
    require_kind(bias, kind, op, "bias", "x");
    if (bias.ndim() != 1 || bias.shape(0) != channels_out)
      throw py::value_error(op + ": bias must have shape (" + std::to_string(channels_out) +
                            ",) (the output channels), but received shape " + shape_str(bias));
  }
  const py::array* bp = bias_obj.is_none() ? nullptr : &bias;
  if (kind == 'f') return forward_impl<float>(x, w, bp, spec, act, reference, depthwise);
  return forward_impl<double>(x, w, bp, spec, act, reference, depthwise);
}

void require_dy_shape(const std::string& op, const py::array& dy, const ConvSpec& spec, bool depthwise) {
  const std::vector<int64_t> want = output_shape(spec, depthwise);
  if (shape_of(dy) != want)
    throw py::value_error(op + ": dy must have the convolution's output shape " + tuple_str(want) +
                          ", but received shape " + shape_str(dy));
}

template <typename T>
py::array backward_input_impl(const py::array& dy, const py::array& w, const ConvSpec& spec, bool reference,
                              bool depthwise) {
  const Conv2dShape& s = spec.shape;
  py::array_t<T> dx(std::vector<int64_t>{s.n, s.h, s.w, s.c});
  const T* dyp = static_cast<const T*>(dy.data());
  const T* wp = static_cast<const T*>(w.data());
  T* dxp = dx.mutable_data();
  {
    py::gil_scoped_release release;
    if (depthwise && reference) cpu::depthwise_conv2d_backward_input_ref(dxp, dyp, wp, s, spec.params);
    else if (depthwise) cpu::depthwise_conv2d_backward_input(dxp, dyp, wp, s, spec.params);
    else if (reference) cpu::conv2d_backward_input_ref(dxp, dyp, wp, s, spec.params);
    else cpu::conv2d_backward_input(dxp, dyp, wp, s, spec.params);
  }
  return std::move(dx);
}

py::array conv2d_backward_input(const py::array& dy, const py::array& w, const py::object& input_shape,
                                const py::object& strides, const py::object& padding, const py::object& dilation,
                                int64_t groups, bool reference, bool depthwise) {
  const std::string op =
      std::string(depthwise ? "depthwise_" : "") + "conv2d_backward_input" + (reference ? "_ref" : "");
  const char kind = float_input(dy, op, "dy");
  require_kind(w, kind, op, "w", "dy");
  require_ndim(dy, 4, op.c_str(), "dy");
  require_ndim(w, 4, op.c_str(), "w");
  const std::vector<int64_t> in = shape_arg(input_shape, op, "input_shape");
  const ConvSpec spec = depthwise ? depthwise_spec(op, in, shape_of(w), strides, padding, dilation)
                                  : conv_spec(op, in, shape_of(w), strides, padding, dilation, groups);
  require_dy_shape(op, dy, spec, depthwise);
  if (kind == 'f') return backward_input_impl<float>(dy, w, spec, reference, depthwise);
  return backward_input_impl<double>(dy, w, spec, reference, depthwise);
}

// An accumulation target given by the caller: the kernel's dtype, the expected shape, C-contiguous, writeable, and
// sharing no memory with the inputs.
void require_accumulator(const py::array& out, char kind, const std::vector<int64_t>& shape, const std::string& op,
                         const char* arg, const py::array& x, const py::array& dy) {
  require_kind(out, kind, op, arg, "x");
  if (shape_of(out) != shape)
    throw py::value_error(op + ": " + arg + " must have shape " + tuple_str(shape) + ", but received shape " +
                          shape_str(out));
  if (!out.writeable()) throw py::value_error(op + ": " + arg + " is read-only");
  if (may_overlap(out, x) || may_overlap(out, dy))
    throw py::value_error(op + ": " + arg + " must not share memory with x or dy");
}

template <typename T>
py::tuple backward_weight_impl(const py::array& x, const py::array& dy, const std::vector<int64_t>& kernel_shape,
                               const ConvSpec& spec, bool with_bias, py::object dw_obj, py::object db_obj,
                               bool reference, bool depthwise) {
  // Fresh zeroed arrays unless the caller passed ones to accumulate into (dw += ..., db += ...).
  if (dw_obj.is_none()) {
    py::array_t<T> dw(kernel_shape);
    std::fill(dw.mutable_data(), dw.mutable_data() + dw.size(), T(0));
    dw_obj = std::move(dw);
  }
  if (with_bias && db_obj.is_none()) {
    py::array_t<T> db(std::vector<int64_t>{output_shape(spec, depthwise)[3]});
    std::fill(db.mutable_data(), db.mutable_data() + db.size(), T(0));
    db_obj = std::move(db);
  }
  py::array dw = py::cast<py::array>(dw_obj);
  T* dwp = static_cast<T*>(dw.mutable_data());
  T* dbp = with_bias ? static_cast<T*>(py::cast<py::array>(db_obj).mutable_data()) : nullptr;
  const T* xp = static_cast<const T*>(x.data());
  const T* dyp = static_cast<const T*>(dy.data());
  {
    py::gil_scoped_release release;
    if (depthwise && reference) cpu::depthwise_conv2d_backward_weight_ref(dwp, dbp, xp, dyp, spec.shape, spec.params);
    else if (depthwise) cpu::depthwise_conv2d_backward_weight(dwp, dbp, xp, dyp, spec.shape, spec.params);
    else if (reference) cpu::conv2d_backward_weight_ref(dwp, dbp, xp, dyp, spec.shape, spec.params);
    else cpu::conv2d_backward_weight(dwp, dbp, xp, dyp, spec.shape, spec.params);
  }
  return py::make_tuple(dw, with_bias ? db_obj : py::none());
}

py::tuple conv2d_backward_weight(const py::array& x, const py::array& dy, const py::object& kernel_shape,
                                 const py::object& strides, const py::object& padding, const py::object& dilation,
                                 int64_t groups, bool with_bias, const py::object& dw, const py::object& db,
                                 bool reference, bool depthwise) {
  const std::string op =
      std::string(depthwise ? "depthwise_" : "") + "conv2d_backward_weight" + (reference ? "_ref" : "");
  const char kind = float_input(x, op, "x");
  require_kind(dy, kind, op, "dy", "x");
  require_ndim(x, 4, op.c_str(), "x");
  require_ndim(dy, 4, op.c_str(), "dy");
  const std::vector<int64_t> ker = shape_arg(kernel_shape, op, "kernel_shape");
  const ConvSpec spec = depthwise ? depthwise_spec(op, shape_of(x), ker, strides, padding, dilation)
                                  : conv_spec(op, shape_of(x), ker, strides, padding, dilation, groups);
  require_dy_shape(op, dy, spec, depthwise);
  if (!dw.is_none()) require_accumulator(py::cast<py::array>(dw), kind, ker, op, "dw", x, dy);
  if (!db.is_none()) {
    if (!with_bias) throw py::value_error(op + ": db was given but with_bias is False");
    require_accumulator(py::cast<py::array>(db), kind, {output_shape(spec, depthwise)[3]}, op, "db", x, dy);
    if (!dw.is_none() && may_overlap(py::cast<py::array>(dw), py::cast<py::array>(db)))
      throw py::value_error(op + ": dw and db must not share memory");
  }
  if (kind == 'f') return backward_weight_impl<float>(x, dy, ker, spec, with_bias, dw, db, reference, depthwise);
  return backward_weight_impl<double>(x, dy, ker, spec, with_bias, dw, db, reference, depthwise);
}

}  // namespace

void bind_conv(py::module_& m) {
  for (bool reference : {false, true}) {
    const std::string suffix = reference ? "_ref" : "";
    const std::string twin = reference ? " The reference twin (direct loops) of the function without _ref." : "";
    m.def(("conv2d_forward" + suffix).c_str(),
          [reference](const py::array& x, const py::array& w, const py::object& bias, const py::object& strides,
                      const py::object& padding, const py::object& dilation, int64_t groups,
                      const std::string& activation) {
            return conv2d_forward(x, w, bias, strides, padding, dilation, groups, activation, reference, false);
          },
          py::arg("x"), py::arg("w"), py::arg("bias") = py::none(), py::kw_only(), py::arg("strides") = 1,
          py::arg("padding") = "valid", py::arg("dilation") = 1, py::arg("groups") = 1,
          py::arg("activation") = "linear",
          ("y = act(conv2d(x, w) + bias): x (N, H, W, C), w (KH, KW, C // groups, F), bias (F,) or None -> new "
           "(N, OH, OW, F). strides / dilation: int or pair >= 1; padding: 'valid', 'same' (TensorFlow's), an int or "
           "(top, bottom, left, right); activation 'linear' or 'relu'." + twin).c_str());
    m.def(("conv2d_backward_input" + suffix).c_str(),
          [reference](const py::array& dy, const py::array& w, const py::object& input_shape,
                      const py::object& strides, const py::object& padding, const py::object& dilation,
                      int64_t groups) {
            return conv2d_backward_input(dy, w, input_shape, strides, padding, dilation, groups, reference, false);
          },
          py::arg("dy"), py::arg("w"), py::arg("input_shape"), py::kw_only(), py::arg("strides") = 1,
          py::arg("padding") = "valid", py::arg("dilation") = 1, py::arg("groups") = 1,
          ("dx of conv2d (the transposed convolution of dy): dy (N, OH, OW, F) of the pre-activation output, w, "
           "input_shape (N, H, W, C) -> new dx (N, H, W, C). Same hyper-parameters as conv2d_forward." + twin).c_str());
    m.def(("conv2d_backward_weight" + suffix).c_str(),
          [reference](const py::array& x, const py::array& dy, const py::object& kernel_shape,
                      const py::object& strides, const py::object& padding, const py::object& dilation,
                      int64_t groups, bool with_bias, const py::object& dw, const py::object& db) {
            return conv2d_backward_weight(x, dy, kernel_shape, strides, padding, dilation, groups, with_bias, dw,
                                          db, reference, false);
          },
          py::arg("x"), py::arg("dy"), py::arg("kernel_shape"), py::kw_only(), py::arg("strides") = 1,
          py::arg("padding") = "valid", py::arg("dilation") = 1, py::arg("groups") = 1, py::arg("with_bias") = true,
          py::arg("dw") = py::none(), py::arg("db") = py::none(),
          ("(dw, db) of conv2d: x (N, H, W, C), dy (N, OH, OW, F) of the pre-activation output, kernel_shape "
           "(KH, KW, C // groups, F) -> new dw of that shape and db (F,) (None when with_bias is False). Given dw / db "
           "(C-contiguous, that shape and dtype), the gradients are ADDED to them in place and they are returned. "
           "Same hyper-parameters as conv2d_forward." + twin).c_str());
    m.def(("depthwise_conv2d_forward" + suffix).c_str(),
          [reference](const py::array& x, const py::array& w, const py::object& bias, const py::object& strides,
                      const py::object& padding, const py::object& dilation, const std::string& activation) {
            return conv2d_forward(x, w, bias, strides, padding, dilation, 1, activation, reference, true);
          },
          py::arg("x"), py::arg("w"), py::arg("bias") = py::none(), py::kw_only(), py::arg("strides") = 1,
          py::arg("padding") = "valid", py::arg("dilation") = 1, py::arg("activation") = "linear",
          ("y = act(depthwise_conv2d(x, w) + bias): x (N, H, W, C), w (KH, KW, C, M) (Keras DepthwiseConv2D, M the "
           "depth multiplier), bias (C*M,) or None -> new (N, OH, OW, C*M), channel c*M + m from input channel c. "
           "Hyper-parameters as conv2d_forward (no groups)." + twin).c_str());
    m.def(("depthwise_conv2d_backward_input" + suffix).c_str(),
          [reference](const py::array& dy, const py::array& w, const py::object& input_shape,
                      const py::object& strides, const py::object& padding, const py::object& dilation) {
            return conv2d_backward_input(dy, w, input_shape, strides, padding, dilation, 1, reference, true);
          },
          py::arg("dy"), py::arg("w"), py::arg("input_shape"), py::kw_only(), py::arg("strides") = 1,
          py::arg("padding") = "valid", py::arg("dilation") = 1,
          ("dx of depthwise_conv2d: dy (N, OH, OW, C*M) of the pre-activation output, w (KH, KW, C, M), input_shape "
           "(N, H, W, C) -> new dx." + twin).c_str());
    m.def(("depthwise_conv2d_backward_weight" + suffix).c_str(),
          [reference](const py::array& x, const py::array& dy, const py::object& kernel_shape,
                      const py::object& strides, const py::object& padding, const py::object& dilation,
                      bool with_bias, const py::object& dw, const py::object& db) {
            return conv2d_backward_weight(x, dy, kernel_shape, strides, padding, dilation, 1, with_bias, dw, db,
                                          reference, true);
          },
          py::arg("x"), py::arg("dy"), py::arg("kernel_shape"), py::kw_only(), py::arg("strides") = 1,
          py::arg("padding") = "valid", py::arg("dilation") = 1, py::arg("with_bias") = true,
          py::arg("dw") = py::none(), py::arg("db") = py::none(),
          ("(dw, db) of depthwise_conv2d: x, dy (N, OH, OW, C*M), kernel_shape (KH, KW, C, M) -> new dw and db "
           "(C*M,) (None without bias), or ADDED into given dw / db, as conv2d_backward_weight." + twin).c_str());
  }
  m.def("conv_same_padding",
        [](int64_t in, int64_t kernel, int64_t stride, int64_t dilation) {
          if (in < 0 || kernel < 1 || stride < 1 || dilation < 1 || in > kMaxConvParam || kernel > kMaxConvParam ||
              stride > kMaxConvParam || dilation > kMaxConvParam)
            throw py::value_error("conv_same_padding: expected 0 <= size and 1 <= kernel, stride, dilation (all at "
                                  "most 2**30), but received size=" + std::to_string(in) + ", kernel=" +
                                  std::to_string(kernel) + ", stride=" + std::to_string(stride) + ", dilation=" +
                                  std::to_string(dilation));
          const ConvPadding pad = same_padding(in, kernel, stride, dilation);
          return py::make_tuple(pad.begin, pad.end);
        },
        py::arg("size"), py::arg("kernel"), py::arg("stride") = 1, py::arg("dilation") = 1,
        "TensorFlow's 'same' padding along one axis: (begin, end), the extra element at the end.");
  m.def("set_conv2d_winograd",
        [](const py::object& enabled) {
          if (!py::isinstance<py::bool_>(enabled))  // not pybind11's bool caster: it would take None as False
            throw py::type_error("set_conv2d_winograd: expected True or False, but received " +
                                 std::string(py::str(py::type::of(enabled).attr("__name__"))));
          return cpu::set_conv2d_winograd(enabled.cast<bool>());
        },
        py::arg("enabled"),
        "Whether conv2d_forward (and the stride-1 backward-input) may use Winograd F(2x2, 3x3) for 3x3 stride-1 "
        "undilated ungrouped convolutions with >= 16 channels in and out (default on; FASTNN_CONV_WINOGRAD=0 at "
        "start-up turns it off). Returns the previous setting.");
  m.def("conv2d_winograd_enabled", []() { return cpu::conv2d_winograd_enabled(); },
        "Whether conv2d_forward may use Winograd F(2x2, 3x3) (see set_conv2d_winograd).");
}

}  // namespace fastnn::python
