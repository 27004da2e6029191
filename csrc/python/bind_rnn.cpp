// Bindings for the recurrence kernels (fastnn/rnn.h): rnn_forward / rnn_backward and their reference twins
// (rnn_forward_ref / rnn_backward_ref). Every argument is validated (cell and activation names, dtypes, shapes,
// C-contiguity, which optional arguments the cell takes) with the GIL held, pointers and sizes are taken, the GIL is
// released around the one kernel call.
//
// The workspace the forward returns is a tuple (cell, h_states, c_states, pre, gates, extra) of the buffers
// fastnn/rnn.h describes (None where the cell has none). rnn_backward checks that it belongs to the same cell
// and that every buffer has exactly the shape and dtype the other arguments imply, so a wrong workspace is a
// ValueError, never an out-of-bounds read (its contents are only ever used as numbers).
#include <string>
#include <unordered_map>
#include <vector>

#include "bindings.h"
#include "fastnn/rnn.h"

namespace fastnn::python {
namespace {

const char* kCells = "'lstm', 'gru', 'gru_reset_before', 'simple_rnn'";

RnnCell parse_cell(const std::string& name, const std::string& op) {
  if (name == "lstm") return RnnCell::kLstm;
  if (name == "gru") return RnnCell::kGru;
  if (name == "gru_reset_before") return RnnCell::kGruResetBefore;
  if (name == "simple_rnn") return RnnCell::kSimpleRnn;
  throw py::value_error(op + ": cell must be one of " + kCells + ", but received '" + name + "'");
}

const char* cell_name(RnnCell cell) {
  switch (cell) {
    case RnnCell::kLstm: return "lstm";
    case RnnCell::kGru: return "gru";
    case RnnCell::kGruResetBefore: return "gru_reset_before";
    case RnnCell::kSimpleRnn: return "simple_rnn";
  }
  return "?";
}

RnnActivation parse_activation(const std::string& name, const std::string& op, const char* arg) {
  static const std::unordered_map<std::string, RnnActivation> kinds = {
      {"tanh", {false, ActKind::kTanh, 1.0}},
      {"sigmoid", {false, ActKind::kSigmoid, 1.0}},
      {"relu", {false, ActKind::kRelu, 1.0}},
      {"linear", {true, ActKind::kRelu, 1.0}},
      {"hard_sigmoid", {false, ActKind::kHardSigmoid, 1.0}},
      {"relu6", {false, ActKind::kRelu6, 1.0}},
      {"elu", {false, ActKind::kElu, 1.0}},
      {"selu", {false, ActKind::kSelu, 1.0}},
      {"softplus", {false, ActKind::kSoftplus, 1.0}},
      {"softsign", {false, ActKind::kSoftsign, 1.0}},
      {"silu", {false, ActKind::kSilu, 1.0}},
      {"swish", {false, ActKind::kSilu, 1.0}},
      {"leaky_relu", {false, ActKind::kLeakyRelu, 0.2}},  // keras.activations.leaky_relu's negative_slope
  };
  auto it = kinds.find(name);
  if (it == kinds.end())
    throw py::value_error(op + ": " + arg +
                          " must be one of 'tanh', 'sigmoid', 'relu', 'linear', 'hard_sigmoid', 'relu6', 'elu', "
                          "'selu', 'softplus', 'softsign', 'silu', 'swish', 'leaky_relu', but received '" +
                          name + "'");
  return it->second;
}

std::string dims(std::initializer_list<int64_t> d) {
  std::string s = "(";
  bool first = true;
  for (int64_t v : d) {
    if (!first) s += ", ";
    s += std::to_string(v);
    first = false;
  }
  if (d.size() == 1) s += ",";
  return s + ")";
}

py::array as_array(const py::handle& obj, const std::string& op, const char* arg, bool optional) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(op + ": " + arg + " must be a NumPy array" + (optional ? " or None" : "") +
                         ", but received " + std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  return py::reinterpret_borrow<py::array>(obj);
}

// x must be a C-contiguous array of the float kind `kind` with exactly the shape `shape`.
void require_float(const py::array& x, char kind, std::initializer_list<int64_t> shape, const std::string& op,
                   const char* arg) {
  if (float_kind(x, op.c_str(), arg) != kind)
    throw py::type_error(op + ": " + arg + " must have the dtype of xproj (" + (kind == 'f' ? "float32" : "float64") +
                         "), but received " + std::string(py::str(x.dtype())));
  bool same = x.ndim() == static_cast<py::ssize_t>(shape.size());
  py::ssize_t i = 0;
  for (int64_t d : shape) {
    if (!same) break;
    same = x.shape(i++) == d;
  }
  if (!same)
    throw py::value_error(op + ": " + arg + " must have shape " + dims(shape) + ", but received shape " +
                          shape_str(x));
  require_c_contiguous(x, op, arg);
}

// The optional arguments shared by forward and backward, validated against (B, T, U) and the cell.
struct Options {
  const uint8_t* mask = nullptr;
  const void* rmasks = nullptr;
  int64_t num_rmasks = 0;
  const void* rbias = nullptr;
  py::array keep_mask, keep_rmasks, keep_rbias;  // hold the arrays while the kernel runs
};

Options parse_options(const py::object& mask, const py::object& recurrent_masks, const py::object& recurrent_bias,
                      RnnCell cell, char kind, int64_t B, int64_t T, int64_t U, const std::string& op) {
  Options o;
  const int64_t G = rnn_gates(cell);
  if (!mask.is_none()) {
    py::array m = as_array(mask, op, "mask", true);
    if (m.dtype().kind() != 'b')
      throw py::type_error(op + ": mask must be a bool array, but received dtype " + std::string(py::str(m.dtype())));
    if (m.ndim() != 2 || m.shape(0) != B || m.shape(1) != T)
      throw py::value_error(op + ": mask must have shape (batch, steps) = " + dims({B, T}) +
                            ", but received shape " + shape_str(m));
    require_c_contiguous(m, op, "mask");
    o.mask = static_cast<const uint8_t*>(m.data());
    o.keep_mask = m;
  }
  if (!recurrent_masks.is_none()) {
    py::array rm = as_array(recurrent_masks, op, "recurrent_masks", true);
    if (rm.ndim() != 3 || (rm.shape(0) != 1 && rm.shape(0) != G))
      throw py::value_error(op + ": recurrent_masks must have shape (M, batch, units) with M = 1 or M = " +
                            std::to_string(G) + " (the gates of this cell), but received shape " + shape_str(rm));
    require_float(rm, kind, {rm.shape(0), B, U}, op, "recurrent_masks");
    o.rmasks = rm.data();
    o.num_rmasks = rm.shape(0);
    o.keep_rmasks = rm;
  }
  if (!recurrent_bias.is_none()) {
    if (cell != RnnCell::kGru)
      throw py::value_error(op + ": recurrent_bias is only for the 'gru' cell (reset_after), but it was given with '" +
                            cell_name(cell) + "'");
    py::array b = as_array(recurrent_bias, op, "recurrent_bias", true);
    require_float(b, kind, {G * U}, op, "recurrent_bias");
    o.rbias = b.data();
    o.keep_rbias = b;
  }
  return o;
}

// (B, T, U, kind) from xproj and the recurrent kernel, after checking them.
struct Dims {
  char kind;
  int64_t B, T, U;
};

Dims check_kernel(const py::array& recurrent_kernel, char kind, RnnCell cell, const std::string& op) {
  const int64_t G = rnn_gates(cell);
  if (float_kind(recurrent_kernel, op.c_str(), "recurrent_kernel") != kind)
    throw py::type_error(op + ": recurrent_kernel must have the dtype of xproj, but received " +
                         std::string(py::str(recurrent_kernel.dtype())));
  if (recurrent_kernel.ndim() != 2 || recurrent_kernel.shape(1) != G * recurrent_kernel.shape(0))
    throw py::value_error(op + ": recurrent_kernel must have shape (units, " + std::to_string(G) +
                          " * units) for this cell, but received shape " + shape_str(recurrent_kernel));
  require_c_contiguous(recurrent_kernel, op, "recurrent_kernel");
  return Dims{kind, 0, 0, recurrent_kernel.shape(0)};
}

// Data pointers (taken with the GIL held); an absent optional array (held as None) gives null.
template <typename T>
T* data_of(const py::object& a) {
  return a.is_none() ? nullptr : static_cast<T*>(py::reinterpret_borrow<py::array>(a).mutable_data());
}
template <typename T>
const T* cdata_of(const py::object& a) {
  return a.is_none() ? nullptr : static_cast<const T*>(py::reinterpret_borrow<py::array>(a).data());
}

py::array new_float(char kind, std::vector<py::ssize_t> shape) {
  return kind == 'f' ? py::array(py::dtype::of<float>(), shape) : py::array(py::dtype::of<double>(), shape);
}

py::tuple rnn_forward(const std::string& cell_name, const py::object& xproj_obj, const py::object& kernel_obj,
                      const py::object& h0_obj, const py::object& c0_obj, const py::object& mask,
                      const py::object& recurrent_masks, const py::object& recurrent_bias,
                      const std::string& activation, const std::string& recurrent_activation, bool reverse,
                      bool zero_output_for_mask, bool save_for_backward, bool reference) {
  const std::string op = reference ? "rnn_forward_ref" : "rnn_forward";
  const RnnCell cell = parse_cell(cell_name, op);
  const int64_t G = rnn_gates(cell);
  const py::array xproj = as_array(xproj_obj, op, "xproj", false);
  const py::array recurrent_kernel = as_array(kernel_obj, op, "recurrent_kernel", false);
  const py::array h0 = as_array(h0_obj, op, "h0", false);
  const char kind = float_kind(xproj, op.c_str(), "xproj");
  Dims d = check_kernel(recurrent_kernel, kind, cell, op);
  const int64_t U = d.U;
  if (xproj.ndim() != 3 || xproj.shape(2) != G * U)
    throw py::value_error(op + ": xproj must have shape (batch, steps, " + std::to_string(G) + " * units = " +
                          std::to_string(G * U) + ") for recurrent_kernel of shape " + shape_str(recurrent_kernel) +
                          ", but received shape " + shape_str(xproj));
  require_c_contiguous(xproj, op, "xproj");
  const int64_t B = xproj.shape(0), T = xproj.shape(1);
  require_float(h0, kind, {B, U}, op, "h0");
  py::object c0 = py::none();
  if (cell == RnnCell::kLstm) {
    if (c0_obj.is_none())
      throw py::value_error(op + ": the 'lstm' cell needs c0 of shape " + dims({B, U}) + ", but received None");
    c0 = as_array(c0_obj, op, "c0", false);
    require_float(py::reinterpret_borrow<py::array>(c0), kind, {B, U}, op, "c0");
  } else if (!c0_obj.is_none()) {
    throw py::value_error(op + ": c0 is only for the 'lstm' cell; pass None for '" + cell_name + "'");
  }
  Options o = parse_options(mask, recurrent_masks, recurrent_bias, cell, kind, B, T, U, op);
  RnnParams p;
  p.cell = cell;
  p.batch = B;
  p.steps = T;
  p.units = U;
  p.num_recurrent_masks = o.num_rmasks;
  p.activation = parse_activation(activation, op, "activation");
  p.recurrent_activation = parse_activation(recurrent_activation, op, "recurrent_activation");
  p.reverse = reverse;
  p.zero_output_for_mask = zero_output_for_mask;

  py::array outputs = new_float(kind, {B, T, U});
  py::array h_last = new_float(kind, {B, U});
  py::object c_last = py::none();
  if (cell == RnnCell::kLstm) c_last = new_float(kind, {B, U});
  py::object workspace = py::none();
  py::object ws_h = py::none(), ws_c = py::none(), ws_pre = py::none(), ws_gates = py::none(), ws_extra = py::none();
  if (save_for_backward) {
    ws_h = new_float(kind, {T + 1, B, U});
    ws_pre = new_float(kind, {T, B, G * U});
    ws_gates = new_float(kind, {T, B, G * U});
    if (cell == RnnCell::kLstm) ws_c = new_float(kind, {T + 1, B, U});
    if (cell != RnnCell::kSimpleRnn) ws_extra = new_float(kind, {T, B, U});
    workspace = py::make_tuple(cell_name, ws_h, ws_c, ws_pre, ws_gates, ws_extra);
  }
  auto run = [&](auto tag) {
    using T_ = decltype(tag);
    RnnWorkspace<T_> ws;
    ws.h_states = data_of<T_>(ws_h);
    ws.c_states = data_of<T_>(ws_c);
    ws.pre = data_of<T_>(ws_pre);
    ws.gates = data_of<T_>(ws_gates);
    ws.extra = data_of<T_>(ws_extra);
    T_* out = data_of<T_>(outputs);
    T_* hl = data_of<T_>(h_last);
    T_* cl = data_of<T_>(c_last);
    const T_* x = cdata_of<T_>(xproj);
    const T_* r = cdata_of<T_>(recurrent_kernel);
    const T_* h = cdata_of<T_>(h0);
    const T_* c = cdata_of<T_>(c0);
    const T_* rm = static_cast<const T_*>(o.rmasks);
    const T_* rb = static_cast<const T_*>(o.rbias);
    const RnnWorkspace<T_>* wsp = save_for_backward ? &ws : nullptr;
    py::gil_scoped_release release;
    (reference ? cpu::rnn_forward_ref<T_> : cpu::rnn_forward<T_>)(p, out, hl, cl, x, r, h, c, o.mask, rm, rb, wsp);
  };
  if (kind == 'f') run(float{}); else run(double{});
  return py::make_tuple(outputs, h_last, c_last, workspace);
}

py::tuple rnn_backward(const std::string& cell_name, const py::object& workspace, const py::object& kernel_obj,
                       const py::object& d_outputs_obj, const py::object& d_h_last_obj,
                       const py::object& d_c_last_obj, const py::object& mask, const py::object& recurrent_masks,
                       const py::object& recurrent_bias, const std::string& activation,
                       const std::string& recurrent_activation, bool reverse, bool zero_output_for_mask,
                       bool reference) {
  const std::string op = reference ? "rnn_backward_ref" : "rnn_backward";
  const RnnCell cell = parse_cell(cell_name, op);
  const int64_t G = rnn_gates(cell);
  // The workspace: (cell, h_states, c_states, pre, gates, extra) as rnn_forward returned it.
  if (workspace.is_none())
    throw py::value_error(op + ": workspace is None: run rnn_forward with save_for_backward=True first");
  if (!py::isinstance<py::tuple>(workspace) || py::len(workspace) != 6 ||
      !py::isinstance<py::str>(py::reinterpret_borrow<py::tuple>(workspace)[0]))
    throw py::value_error(op + ": workspace must be the tuple rnn_forward returned (cell, h_states, c_states, pre, "
                               "gates, extra), but received " +
                          std::string(py::str(py::type::handle_of(workspace).attr("__name__"))));
  const py::tuple ws = py::reinterpret_borrow<py::tuple>(workspace);
  const std::string ws_cell = py::cast<std::string>(ws[0]);
  if (ws_cell != cell_name)
    throw py::value_error(op + ": workspace was made by the '" + ws_cell + "' cell, but cell is '" + cell_name + "'");
  py::array ws_h = as_array(ws[1], op, "workspace h_states", false);
  const char kind = float_kind(ws_h, op.c_str(), "workspace h_states");
  const py::array recurrent_kernel = as_array(kernel_obj, op, "recurrent_kernel", false);
  Dims d = check_kernel(recurrent_kernel, kind, cell, op);
  const int64_t U = d.U;
  if (ws_h.ndim() != 3 || ws_h.shape(0) < 1 || ws_h.shape(2) != U)
    throw py::value_error(op + ": workspace h_states must have shape (steps + 1, batch, " + std::to_string(U) +
                          ") for recurrent_kernel of shape " + shape_str(recurrent_kernel) + ", but received shape " +
                          shape_str(ws_h));
  const int64_t T = ws_h.shape(0) - 1, B = ws_h.shape(1);
  require_float(ws_h, kind, {T + 1, B, U}, op, "workspace h_states");
  py::object ws_c = py::none(), ws_extra = py::none();
  if (cell == RnnCell::kLstm) {
    ws_c = as_array(ws[2], op, "workspace c_states", false);
    require_float(py::reinterpret_borrow<py::array>(ws_c), kind, {T + 1, B, U}, op, "workspace c_states");
  } else if (!ws[2].is_none()) {
    throw py::value_error(op + ": workspace c_states must be None for the '" + cell_name + "' cell");
  }
  py::array ws_pre = as_array(ws[3], op, "workspace pre", false);
  require_float(ws_pre, kind, {T, B, G * U}, op, "workspace pre");
  py::array ws_gates = as_array(ws[4], op, "workspace gates", false);
  require_float(ws_gates, kind, {T, B, G * U}, op, "workspace gates");
  if (cell != RnnCell::kSimpleRnn) {
    ws_extra = as_array(ws[5], op, "workspace extra", false);
    require_float(py::reinterpret_borrow<py::array>(ws_extra), kind, {T, B, U}, op, "workspace extra");
  } else if (!ws[5].is_none()) {
    throw py::value_error(op + ": workspace extra must be None for the 'simple_rnn' cell");
  }
  const py::object d_out = d_outputs_obj, d_hl = d_h_last_obj, d_cl = d_c_last_obj;
  if (!d_out.is_none()) require_float(as_array(d_out, op, "d_outputs", true), kind, {B, T, U}, op, "d_outputs");
  if (!d_hl.is_none()) require_float(as_array(d_hl, op, "d_h_last", true), kind, {B, U}, op, "d_h_last");
  if (!d_c_last_obj.is_none()) {
    if (cell != RnnCell::kLstm)
      throw py::value_error(op + ": d_c_last is only for the 'lstm' cell; pass None for '" + cell_name + "'");
    require_float(as_array(d_cl, op, "d_c_last", true), kind, {B, U}, op, "d_c_last");
  }
  Options o = parse_options(mask, recurrent_masks, recurrent_bias, cell, kind, B, T, U, op);
  RnnParams p;
  p.cell = cell;
  p.batch = B;
  p.steps = T;
  p.units = U;
  p.num_recurrent_masks = o.num_rmasks;
  p.activation = parse_activation(activation, op, "activation");
  p.recurrent_activation = parse_activation(recurrent_activation, op, "recurrent_activation");
  p.reverse = reverse;
  p.zero_output_for_mask = zero_output_for_mask;

  py::array d_xproj = new_float(kind, {B, T, G * U});
  py::array d_r = new_float(kind, {U, G * U});
  py::array d_h0 = new_float(kind, {B, U});
  py::object d_c0 = py::none(), d_rb = py::none();
  if (cell == RnnCell::kLstm) d_c0 = new_float(kind, {B, U});
  if (cell == RnnCell::kGru) d_rb = new_float(kind, {G * U});
  auto run = [&](auto tag) {
    using T_ = decltype(tag);
    RnnWorkspace<T_> w;
    // The backward only reads the workspace (a read-only copy of it is fine).
    w.h_states = const_cast<T_*>(cdata_of<T_>(ws_h));
    w.c_states = const_cast<T_*>(cdata_of<T_>(ws_c));
    w.pre = const_cast<T_*>(cdata_of<T_>(ws_pre));
    w.gates = const_cast<T_*>(cdata_of<T_>(ws_gates));
    w.extra = const_cast<T_*>(cdata_of<T_>(ws_extra));
    T_* dx = data_of<T_>(d_xproj);
    T_* dr = data_of<T_>(d_r);
    T_* dh0 = data_of<T_>(d_h0);
    T_* dc0 = data_of<T_>(d_c0);
    T_* drb = data_of<T_>(d_rb);
    const T_* r = cdata_of<T_>(recurrent_kernel);
    const T_* dout = cdata_of<T_>(d_out);
    const T_* dhl = cdata_of<T_>(d_hl);
    const T_* dcl = cdata_of<T_>(d_cl);
    const T_* rm = static_cast<const T_*>(o.rmasks);
    py::gil_scoped_release release;
    (reference ? cpu::rnn_backward_ref<T_> : cpu::rnn_backward<T_>)(p, dx, dr, dh0, dc0, drb, w, r, dout, dhl, dcl,
                                                                     o.mask, rm);
  };
  if (kind == 'f') run(float{}); else run(double{});
  return py::make_tuple(d_xproj, d_r, d_h0, d_c0, d_rb);
}

}  // namespace

void bind_rnn(py::module_& m) {
  for (bool reference : {false, true}) {
    const char* fwd = reference ? "rnn_forward_ref" : "rnn_forward";
    const char* bwd = reference ? "rnn_backward_ref" : "rnn_backward";
    m.def(
        fwd,
        [reference](const std::string& cell, const py::object& xproj, const py::object& recurrent_kernel,
                    const py::object& h0, const py::object& c0, const py::object& mask,
                    const py::object& recurrent_masks, const py::object& recurrent_bias, const std::string& activation,
                    const std::string& recurrent_activation, bool reverse, bool zero_output_for_mask,
                    bool save_for_backward) {
          return rnn_forward(cell, xproj, recurrent_kernel, h0, c0, mask, recurrent_masks, recurrent_bias, activation,
                             recurrent_activation, reverse, zero_output_for_mask, save_for_backward, reference);
        },
        py::arg("cell"), py::arg("xproj"), py::arg("recurrent_kernel"),
        py::arg("h0"), py::arg("c0") = py::none(), py::kw_only(), py::arg("mask") = py::none(),
        py::arg("recurrent_masks") = py::none(), py::arg("recurrent_bias") = py::none(),
        py::arg("activation") = "tanh", py::arg("recurrent_activation") = "sigmoid", py::arg("reverse") = false,
        py::arg("zero_output_for_mask") = false, py::arg("save_for_backward") = true,
        reference ? "The reference twin of rnn_forward (gemm_ref, scalar activations, one thread)."
                  : "A whole recurrent sequence (fastnn/rnn.h): -> (outputs (B, T, U), h_last (B, U), c_last (B, U) "
                    "or None, workspace or None).");
    m.def(
        bwd,
        [reference](const std::string& cell, const py::object& workspace, const py::object& recurrent_kernel,
                    const py::object& d_outputs, const py::object& d_h_last, const py::object& d_c_last,
                    const py::object& mask, const py::object& recurrent_masks, const py::object& recurrent_bias,
                    const std::string& activation, const std::string& recurrent_activation, bool reverse,
                    bool zero_output_for_mask) {
          return rnn_backward(cell, workspace, recurrent_kernel, d_outputs, d_h_last, d_c_last, mask, recurrent_masks,
                              recurrent_bias, activation, recurrent_activation, reverse, zero_output_for_mask,
                              reference);
        },
        py::arg("cell"), py::arg("workspace"), py::arg("recurrent_kernel"), py::arg("d_outputs"),
        py::arg("d_h_last"), py::arg("d_c_last"), py::kw_only(), py::arg("mask") = py::none(),
        py::arg("recurrent_masks") = py::none(), py::arg("recurrent_bias") = py::none(),
        py::arg("activation") = "tanh", py::arg("recurrent_activation") = "sigmoid", py::arg("reverse") = false,
        py::arg("zero_output_for_mask") = false,
        reference ? "The reference twin of rnn_backward."
                  : "The gradient of rnn_forward: -> (d_xproj, d_recurrent_kernel, d_h0, d_c0 or None, "
                    "d_recurrent_bias or None).");
  }
}

}  // namespace fastnn::python
