// Bindings for GEMM: the BLAS-style gemm (and its reference twin) and a batched matmul over strided views.
#include <string>

#include "bindings.h"
#include "fastnn/gemm.h"

namespace fastnn::python {
namespace {

// How a strided (rows x cols) matrix maps onto GEMM's row-major storage: element (r, c) lives at
// r * row_stride + c * col_stride. With unit column stride it is stored as is (ld = row stride); with unit
// row stride it is the transpose of a row-major (cols x rows) matrix (ld = col stride). A stride along an
// axis of length 1 is never used, so such an axis counts as unit-stride.
struct Storage {
  bool ok = false;
  bool trans = false;
  int64_t ld = 0;
};

Storage describe(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  if (col_stride == 1 || cols == 1) return {true, false, row_stride};
  if (row_stride == 1 || rows == 1) return {true, true, col_stride};
  return {};
}

Activation parse_activation(const std::string& name, const char* op) {
  if (name == "linear" || name == "identity") return Activation::kIdentity;
  if (name == "relu") return Activation::kRelu;
  throw py::value_error(std::string(op) + ": activation must be one of 'linear', 'relu', but received '" + name +
                        "'");
}

void require_same_dtype(const py::array& x, char kind, const char* op, const char* arg) {
  if (float_kind(x, op, arg) != kind)
    throw py::type_error(std::string(op) + ": " + arg + " must have the same dtype as a (" +
                         (kind == 'f' ? "float32" : "float64") + "), but received " +
                         std::string(py::str(x.dtype())));
}

template <typename T>
py::array gemm_impl(const py::array& a, const py::array& b, py::object c_obj, bool trans_a, bool trans_b,
                    double alpha, double beta, py::object bias_obj, const std::string& activation,
                    bool reference) {
  const char* op = reference ? "gemm_ref" : "gemm";
  GemmParams<T> p;
  p.trans_a = trans_a;
  p.trans_b = trans_b;
  p.alpha = static_cast<T>(alpha);
  p.beta = static_cast<T>(beta);
  p.activation = parse_activation(activation, op);

  for (auto [x, name] : {std::pair<const py::array*, const char*>{&a, "a"}, {&b, "b"}}) {
    require_ndim(*x, 2, op, name);
    if (x->size() > 0 && x->shape(1) > 1 && elem_stride(*x, 1, op, name) != 1)
      throw py::value_error(std::string(op) + ": " + name +
                            " must be contiguous along its last axis (use fastnn.ops.matmul for arbitrary "
                            "views), but received element strides " + strides_str(*x));
  }
  p.m = trans_a ? a.shape(1) : a.shape(0);
  p.k = trans_a ? a.shape(0) : a.shape(1);
  const int64_t kb = trans_b ? b.shape(1) : b.shape(0);
  p.n = trans_b ? b.shape(0) : b.shape(1);
  if (kb != p.k)
    throw py::value_error(std::string(op) + ": inner dimensions differ: op(a) is (" + std::to_string(p.m) + ", " +
                          std::to_string(p.k) + ") from a of shape " + shape_str(a) + ", op(b) is (" +
                          std::to_string(kb) + ", " + std::to_string(p.n) + ") from b of shape " + shape_str(b));
  p.lda = a.shape(0) > 1 ? elem_stride(a, 0, op, "a") : a.shape(1);
  p.ldb = b.shape(0) > 1 ? elem_stride(b, 0, op, "b") : b.shape(1);

  py::array c;
  if (c_obj.is_none()) {
    if (beta != 0.0)
      throw py::value_error(std::string(op) + ": beta = " + std::to_string(beta) + " needs an input c, but c is None");
    c = py::array_t<T>({p.m, p.n});
  } else {
    c = py::cast<py::array>(c_obj);
    require_same_dtype(c, sizeof(T) == 4 ? 'f' : 'd', op, "c");
    require_ndim(c, 2, op, "c");
    if (c.shape(0) != p.m || c.shape(1) != p.n)
      throw py::value_error(std::string(op) + ": c must have shape (" + std::to_string(p.m) + ", " +
                            std::to_string(p.n) + "), but received shape " + shape_str(c));
    if (!c.writeable()) throw py::value_error(std::string(op) + ": c is read-only");
    if (c.size() > 0 && p.n > 1 && elem_stride(c, 1, op, "c") != 1)
      throw py::value_error(std::string(op) + ": c must be contiguous along its last axis");
    if (c.size() > 0 && p.m > 1 && elem_stride(c, 0, op, "c") < p.n)
      throw py::value_error(std::string(op) + ": c's rows overlap each other (row stride below its width)");
    if (may_overlap(c, a) || may_overlap(c, b))
      throw py::value_error(std::string(op) + ": c must not share memory with a or b");
  }
  p.ldc = p.m > 1 ? elem_stride(c, 0, op, "c") : p.n;

  const T* bias = nullptr;
  // Declared out here: when bias is not an ndarray (a list, say), the cast makes a temporary array that must live
  // until the kernel has run (it used to be freed at the end of the if block: a heap use-after-free).
  py::array bias_arr;
  if (!bias_obj.is_none()) {
    bias_arr = py::cast<py::array>(bias_obj);
    require_same_dtype(bias_arr, sizeof(T) == 4 ? 'f' : 'd', op, "bias");
    if (bias_arr.ndim() != 1 || bias_arr.shape(0) != p.n)
      throw py::value_error(std::string(op) + ": bias must have shape (" + std::to_string(p.n) +
                            ",), but received shape " + shape_str(bias_arr));
    if (p.n > 1 && elem_stride(bias_arr, 0, op, "bias") != 1)
      throw py::value_error(std::string(op) + ": bias must be contiguous");
    // The epilogue writes C while it reads the bias: a bias inside c would be read after being overwritten.
    if (may_overlap(bias_arr, c))
      throw py::value_error(std::string(op) + ": bias must not share memory with c");
    bias = static_cast<const T*>(bias_arr.data());
  }
  p.bias = bias;

  const T* ap = static_cast<const T*>(a.data());
  const T* bp = static_cast<const T*>(b.data());
  T* cp = static_cast<T*>(c.mutable_data());
  {
    py::gil_scoped_release release;
    if (reference) cpu::gemm_ref(cp, ap, bp, p);
    else cpu::gemm(cp, ap, bp, p);
  }
  return c;
}

py::array gemm_dispatch(const py::array& a, const py::array& b, py::object c, bool trans_a, bool trans_b,
                        double alpha, double beta, py::object bias, const std::string& activation, bool reference) {
  const char* op = reference ? "gemm_ref" : "gemm";
  const char kind = float_kind(a, op, "a");
  require_same_dtype(b, kind, op, "b");
  if (kind == 'f') return gemm_impl<float>(a, b, c, trans_a, trans_b, alpha, beta, bias, activation, reference);
  return gemm_impl<double>(a, b, c, trans_a, trans_b, alpha, beta, bias, activation, reference);
}

// a: (batch, M, K), b: (batch, K, N), any strides (zero for broadcast operands); returns (batch, M, N).
template <typename T>
py::array batched_matmul_impl(const py::array& a, const py::array& b) {
  const char* op = "matmul";
  const int64_t batch = a.shape(0);
  GemmParams<T> p;
  p.m = a.shape(1);
  p.k = a.shape(2);
  p.n = b.shape(2);
  // An empty operand is never read, so its strides do not matter.
  const Storage sa = a.size() == 0 ? Storage{true, false, p.k}
                                   : describe(p.m, p.k, elem_stride(a, 1, op, "a"), elem_stride(a, 2, op, "a"));
  const Storage sb = b.size() == 0 ? Storage{true, false, p.n}
                                   : describe(p.k, p.n, elem_stride(b, 1, op, "b"), elem_stride(b, 2, op, "b"));
  if (!sa.ok || !sb.ok)
    throw py::value_error("matmul: each matrix of a and b needs a unit stride along one of its two axes "
                          "(fastnn.ops.matmul copies other views first)");
  p.trans_a = sa.trans;
  p.lda = sa.ld;
  p.trans_b = sb.trans;
  p.ldb = sb.ld;
  p.ldc = p.n;
  py::array_t<T> c({batch, p.m, p.n});
  const int64_t stride_a = batch > 1 && a.size() > 0 ? elem_stride(a, 0, op, "a") : 0;
  const int64_t stride_b = batch > 1 && b.size() > 0 ? elem_stride(b, 0, op, "b") : 0;
  const T* ap = static_cast<const T*>(a.data());
  const T* bp = static_cast<const T*>(b.data());
  T* cp = c.mutable_data();
  {
    py::gil_scoped_release release;
    cpu::gemm_strided_batched(cp, p.m * p.n, ap, stride_a, bp, stride_b, batch, p);
  }
  return c;
}

py::array batched_matmul(const py::array& a, const py::array& b) {
  const char kind = float_kind(a, "matmul", "a");
  require_same_dtype(b, kind, "matmul", "b");
  require_ndim(a, 3, "matmul", "a");
  require_ndim(b, 3, "matmul", "b");
  if (a.shape(0) != b.shape(0) || a.shape(2) != b.shape(1))
    throw py::value_error("matmul: expected a of shape (batch, M, K) and b of shape (batch, K, N), but received " +
                          shape_str(a) + " and " + shape_str(b));
  if (kind == 'f') return batched_matmul_impl<float>(a, b);
  return batched_matmul_impl<double>(a, b);
}

}  // namespace

void bind_gemm(py::module_& m) {
  const char* gemm_doc =
      "C = act(alpha * op(a) @ op(b) + beta * c + bias). a, b: 2-D float32/float64, contiguous along the last "
      "axis; op(x) is x.T when trans_x. Returns c (written in place when given).";
  m.def("gemm", [](const py::array& a, const py::array& b, py::object c, bool trans_a, bool trans_b, double alpha,
                   double beta, py::object bias, const std::string& activation) {
          return gemm_dispatch(a, b, c, trans_a, trans_b, alpha, beta, bias, activation, false);
        }, py::arg("a"), py::arg("b"), py::arg("c") = py::none(), py::kw_only(), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("alpha") = 1.0, py::arg("beta") = 0.0, py::arg("bias") = py::none(),
        py::arg("activation") = "linear", gemm_doc);
  m.def("gemm_ref", [](const py::array& a, const py::array& b, py::object c, bool trans_a, bool trans_b,
                       double alpha, double beta, py::object bias, const std::string& activation) {
          return gemm_dispatch(a, b, c, trans_a, trans_b, alpha, beta, bias, activation, true);
        }, py::arg("a"), py::arg("b"), py::arg("c") = py::none(), py::kw_only(), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("alpha") = 1.0, py::arg("beta") = 0.0, py::arg("bias") = py::none(),
        py::arg("activation") = "linear", "The reference triple-loop twin of gemm (same arguments).");
  m.def("gemm_path", [] {
    static const char* names[] = {"auto", "packed", "direct", "gemv", "prepacked"};
    return std::string(names[static_cast<int>(cpu::gemm_path())]);
  });
  m.def("set_gemm_path", [](const std::string& name) {
    if (name == "auto") cpu::set_gemm_path(cpu::GemmPath::kAuto);
    else if (name == "packed") cpu::set_gemm_path(cpu::GemmPath::kPacked);
    else if (name == "direct") cpu::set_gemm_path(cpu::GemmPath::kDirect);
    else if (name == "gemv") cpu::set_gemm_path(cpu::GemmPath::kGemv);
    else if (name == "prepacked") cpu::set_gemm_path(cpu::GemmPath::kPrepacked);
    else throw py::value_error("set_gemm_path: expected 'auto', 'packed', 'direct', 'gemv' or 'prepacked', but received '" + name + "'");
  }, py::arg("name"),
        "Forces one GEMM algorithm for every shape (for tests); 'auto' picks by shape. 'gemv' exists only for "
        "M == 1 or N == 1: forced, gemm of any other shape raises ValueError. 'prepacked': op(B) packed whole, then the "
        "recurrence kernels' single-threaded product on it.");
  m.def("batched_matmul", &batched_matmul, py::arg("a"), py::arg("b"),
        "(batch, M, K) @ (batch, K, N) -> new (batch, M, N) array; any strides, zero for broadcast operands.");
}

}  // namespace fastnn::python
