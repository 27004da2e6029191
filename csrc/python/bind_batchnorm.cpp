// Bindings for batch normalization over the channel axis of an (M, C) view (fastnn/batchnorm.h). Each function
// validates dtypes (TypeError), ranks, shapes and epsilon (ValueError, naming the function and the values), allocates
// the outputs, releases the GIL and calls one kernel. The caller reshapes NHWC images to (N * H * W, C).
#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "bindings.h"
#include "fastnn/batchnorm.h"

namespace fastnn::python {
namespace {

std::string dtype_name(char kind) { return kind == 'f' ? "float32" : "float64"; }

// x (M, C) float32 / float64, C-contiguous; returns its kind.
char rows_input(const py::array& x, const std::string& op, const char* arg) {
  const char k = float_input(x, op, arg);
  require_ndim(x, 2, op.c_str(), arg);
  return k;
}

void require_kind(const py::array& a, char kind, const std::string& op, const char* arg) {
  if (float_input(a, op, arg) != kind)
    throw py::type_error(op + ": " + arg + " must have x's dtype (" + dtype_name(kind) + "), but received " +
                         std::string(py::str(a.dtype())));
}

// A (C,) vector of x's dtype, or None when `optional` (returns a null pointer then). `keep` holds the array.
const void* channel_vector(const py::object& obj, char kind, int64_t c, bool optional, const std::string& op,
                           const char* arg, py::array* keep) {
  if (obj.is_none()) {
    if (optional) return nullptr;
    throw py::type_error(op + ": " + arg + " must be an array, but received None");
  }
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(op + ": " + arg + " must be a NumPy array" + (optional ? " or None" : "") + ", but received " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  *keep = py::reinterpret_borrow<py::array>(obj);
  require_kind(*keep, kind, op, arg);
  if (keep->ndim() != 1 || keep->shape(0) != c)
    throw py::value_error(op + ": " + arg + " must have shape (" + std::to_string(c) + ",) (x's channel count), but "
                          "received shape " + shape_str(*keep));
  return keep->data();
}

void require_epsilon(double epsilon, const std::string& op) {
  if (!(epsilon > 0) || !std::isfinite(epsilon))
    throw py::value_error(op + ": epsilon must be positive and finite, but received " + std::to_string(epsilon));
}

void require_rows(const py::array& x, const std::string& op, const char* arg) {
  if (x.shape(0) == 0)
    throw py::value_error(op + ": " + arg + " has no rows (shape " + shape_str(x) +
                          "): batch statistics need at least one");
}

// "linear" or "relu" (the fused ReLU of the forwards); anything else a ValueError naming the function.
bool relu_activation(const std::string& activation, const std::string& op) {
  if (activation == "relu") return true;
  if (activation == "linear") return false;
  throw py::value_error(op + ": activation must be \"linear\" or \"relu\", but received \"" + activation + "\"");
}

BatchNormParams params(const py::array& x, double epsilon) {
  BatchNormParams p;
  p.m = x.shape(0);
  p.c = x.shape(1);
  p.epsilon = epsilon;
  return p;
}

py::array vec(const py::array& x) { return py::array(x.dtype(), std::vector<py::ssize_t>{x.shape(1)}); }

template <typename T>
T* mut(py::array& a) { return static_cast<T*>(a.mutable_data()); }
// A pointer taken (with the GIL held) from an array, as the kernel's element type: a plain cast, safe without the GIL.
template <typename T>
const T* typed(const void* p) { return static_cast<const T*>(p); }

std::tuple<py::array, py::array, py::array, py::array> train_forward(const py::array& x, const py::object& gamma,
                                                                     const py::object& beta, double epsilon,
                                                                     bool reference, const std::string& activation) {
  const std::string op = "batch_norm_train_forward";
  const char k = rows_input(x, op, "x");
  require_rows(x, op, "x");
  require_epsilon(epsilon, op);
  const bool relu = relu_activation(activation, op);
  py::array g_keep, b_keep;
  const void* g = channel_vector(gamma, k, x.shape(1), true, op, "gamma", &g_keep);
  const void* b = channel_vector(beta, k, x.shape(1), true, op, "beta", &b_keep);
  BatchNormParams p = params(x, epsilon);
  p.relu = relu;
  py::array y(x.dtype(), std::vector<py::ssize_t>{x.shape(0), x.shape(1)});
  py::array mean = vec(x), var = vec(x), rstd = vec(x);
  const void* xp = x.data();
  if (k == 'f') {
    float *yp = mut<float>(y), *mp = mut<float>(mean), *vp = mut<float>(var), *rp = mut<float>(rstd);
    py::gil_scoped_release release;
    (reference ? cpu::batch_norm_train_forward_ref<float> : cpu::batch_norm_train_forward<float>)(
        yp, mp, vp, rp, typed<float>(xp), typed<float>(g), typed<float>(b), p);
  } else {
    double *yp = mut<double>(y), *mp = mut<double>(mean), *vp = mut<double>(var), *rp = mut<double>(rstd);
    py::gil_scoped_release release;
    (reference ? cpu::batch_norm_train_forward_ref<double> : cpu::batch_norm_train_forward<double>)(
        yp, mp, vp, rp, typed<double>(xp), typed<double>(g), typed<double>(b), p);
  }
  return {y, mean, var, rstd};
}

py::array inference_forward(const py::array& x, const py::object& mean, const py::object& var,
                            const py::object& gamma, const py::object& beta, double epsilon, bool reference,
                            const std::string& activation) {
  const std::string op = "batch_norm_inference_forward";
  const char k = rows_input(x, op, "x");
  require_epsilon(epsilon, op);
  const bool relu = relu_activation(activation, op);
  py::array m_keep, v_keep, g_keep, b_keep;
  const int64_t c = x.shape(1);
  const void* mp = channel_vector(mean, k, c, false, op, "mean", &m_keep);
  const void* vp = channel_vector(var, k, c, false, op, "var", &v_keep);
  const void* g = channel_vector(gamma, k, c, true, op, "gamma", &g_keep);
  const void* b = channel_vector(beta, k, c, true, op, "beta", &b_keep);
  BatchNormParams p = params(x, epsilon);
  p.relu = relu;
  py::array y(x.dtype(), std::vector<py::ssize_t>{x.shape(0), x.shape(1)});
  const void* xp = x.data();
  void* yp = y.mutable_data();
  {
    py::gil_scoped_release release;
    if (k == 'f')
      (reference ? cpu::batch_norm_inference_forward_ref<float> : cpu::batch_norm_inference_forward<float>)(
          static_cast<float*>(yp), typed<float>(xp), typed<float>(mp), typed<float>(vp), typed<float>(g), typed<float>(b),
          p);
    else
      (reference ? cpu::batch_norm_inference_forward_ref<double> : cpu::batch_norm_inference_forward<double>)(
          static_cast<double*>(yp), typed<double>(xp), typed<double>(mp), typed<double>(vp), typed<double>(g),
          typed<double>(b), p);
  }
  return y;
}

std::tuple<py::array, py::array, py::array> backward(const py::array& dy, const py::array& x, const py::object& mean,
                                                     const py::object& rstd, const py::object& gamma, bool reference,
                                                     const py::object& relu_y) {
  const std::string op = "batch_norm_backward";
  const char k = rows_input(x, op, "x");
  require_kind(dy, k, op, "dy");
  if (dy.ndim() != 2 || dy.shape(0) != x.shape(0) || dy.shape(1) != x.shape(1))
    throw py::value_error(op + ": dy must have x's shape " + shape_str(x) + ", but received shape " + shape_str(dy));
  require_rows(x, op, "x");
  py::array m_keep, r_keep, g_keep;
  const int64_t c = x.shape(1);
  const void* mp = channel_vector(mean, k, c, false, op, "mean", &m_keep);
  const void* rp = channel_vector(rstd, k, c, false, op, "rstd", &r_keep);
  const void* g = channel_vector(gamma, k, c, true, op, "gamma", &g_keep);
  // relu_y: the output of a forward with activation="relu" (x's dtype and shape, C-contiguous), or None.
  const void* yp = nullptr;
  py::array y_keep;
  if (!relu_y.is_none()) {
    if (!py::isinstance<py::array>(relu_y))
      throw py::type_error(op + ": relu_y must be a NumPy array or None, but received " +
                           std::string(py::str(py::type::of(relu_y).attr("__name__"))));
    y_keep = py::reinterpret_borrow<py::array>(relu_y);
    require_kind(y_keep, k, op, "relu_y");
    if (y_keep.ndim() != 2 || y_keep.shape(0) != x.shape(0) || y_keep.shape(1) != x.shape(1))
      throw py::value_error(op + ": relu_y must have x's shape " + shape_str(x) + ", but received shape " +
                            shape_str(y_keep));
    yp = y_keep.data();
  }
  const BatchNormParams p = params(x, 1.0);  // epsilon is already in rstd
  py::array dx(x.dtype(), std::vector<py::ssize_t>{x.shape(0), x.shape(1)});
  py::array dgamma = vec(x), dbeta = vec(x);
  const void *xp = x.data(), *dyp = dy.data();
  if (k == 'f') {
    float *dxp = mut<float>(dx), *dgp = mut<float>(dgamma), *dbp = mut<float>(dbeta);
    std::fill(dgp, dgp + c, 0.0f);
    std::fill(dbp, dbp + c, 0.0f);
    py::gil_scoped_release release;
    (reference ? cpu::batch_norm_backward_ref<float> : cpu::batch_norm_backward<float>)(
        dxp, dgp, dbp, typed<float>(dyp), typed<float>(xp), typed<float>(mp), typed<float>(rp), typed<float>(g), p,
        typed<float>(yp));
  } else {
    double *dxp = mut<double>(dx), *dgp = mut<double>(dgamma), *dbp = mut<double>(dbeta);
    std::fill(dgp, dgp + c, 0.0);
    std::fill(dbp, dbp + c, 0.0);
    py::gil_scoped_release release;
    (reference ? cpu::batch_norm_backward_ref<double> : cpu::batch_norm_backward<double>)(
        dxp, dgp, dbp, typed<double>(dyp), typed<double>(xp), typed<double>(mp), typed<double>(rp), typed<double>(g), p,
        typed<double>(yp));
  }
  return {dx, dgamma, dbeta};
}

}  // namespace

void bind_batchnorm(py::module_& m) {
  m.def("batch_norm_train_forward", &train_forward, py::arg("x"), py::arg("gamma") = py::none(),
        py::arg("beta") = py::none(), py::arg("epsilon") = 1e-3, py::arg("reference") = false,
        py::arg("activation") = "linear",
        "(y, mean, var, rstd) over the channel axis of x (M, C), M > 0: the batch mean, the biased batch variance "
        "(for Keras's moving statistics), rstd = 1 / sqrt(var + epsilon) and y = gamma * (x - mean) * rstd + beta; "
        "statistics accumulated in double; gamma / beta (C,) or None (scale=False / center=False); "
        "activation=\"relu\": y = relu(y), the bits of the ReLU kernel applied after.");
  m.def("batch_norm_inference_forward", &inference_forward, py::arg("x"), py::arg("mean"), py::arg("var"),
        py::arg("gamma") = py::none(), py::arg("beta") = py::none(), py::arg("epsilon") = 1e-3,
        py::arg("reference") = false, py::arg("activation") = "linear",
        "y = gamma * (x - mean) / sqrt(var + epsilon) + beta over the channel axis of x (M, C), given statistics; "
        "activation=\"relu\": y = relu(y), the bits of the ReLU kernel applied after.");
  m.def("batch_norm_backward", &backward, py::arg("dy"), py::arg("x"), py::arg("mean"), py::arg("rstd"),
        py::arg("gamma") = py::none(), py::arg("reference") = false, py::arg("relu_y") = py::none(),
        "(dx, dgamma, dbeta) of batch_norm_train_forward from its saved mean and rstd (gamma None: scale=False); "
        "relu_y: the y of a forward with activation=\"relu\" (dy masked by relu_y > 0 first, as the ReLU backward).");
}

}  // namespace fastnn::python
