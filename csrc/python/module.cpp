// fastnn._C: the binding layer (tier 2). The only C++ that includes pybind11. It validates dtype, shape
// and strides, allocates outputs, releases the GIL and calls exactly one kernel; it does no math.
#include <algorithm>
#include <sstream>

#include "bindings.h"
#include "fastnn/runtime.h"

namespace fastnn::python {

std::string shape_str(const py::array& x) {
  std::ostringstream os;
  os << "(";
  for (py::ssize_t i = 0; i < x.ndim(); ++i) {
    if (i) os << ", ";
    os << x.shape(i);
  }
  if (x.ndim() == 1) os << ",";
  os << ")";
  return os.str();
}

std::string strides_str(const py::array& x) {
  std::ostringstream os;
  os << "(";
  for (py::ssize_t i = 0; i < x.ndim(); ++i) {
    if (i) os << ", ";
    os << x.strides(i) / static_cast<py::ssize_t>(x.itemsize());
  }
  if (x.ndim() == 1) os << ",";
  os << ")";
  return os.str();
}

bool native_byte_order(const py::dtype& dt) {
  const char order = dt.byteorder();
  if (order == '=' || order == '|') return true;
  const uint16_t probe = 1;
  const bool little = *reinterpret_cast<const unsigned char*>(&probe) == 1;
  return order == (little ? '<' : '>');
}

void require_aligned(const py::array& x, const char* op, const char* arg) {
  if (!(x.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(std::string(op) + ": " + arg +
                          " must be aligned to its item size, but received a misaligned view (copy it first)");
}

char float_kind(const py::array& x, const char* op, const char* arg) {
  const py::dtype dt = x.dtype();
  char kind = 0;
  // A byte-swapped float32 has kind 'f' and item size 4 too, but the kernels read native floats: reject it.
  if (dt.kind() == 'f' && dt.itemsize() == 4 && native_byte_order(dt)) kind = 'f';
  if (dt.kind() == 'f' && dt.itemsize() == 8 && native_byte_order(dt)) kind = 'd';
  if (kind == 0)
    throw py::type_error(std::string(op) + ": " + arg + " must be float32 or float64" +
                         (native_byte_order(dt) ? ", but received dtype " : " in native byte order, but received dtype ") +
                         std::string(py::str(dt)) + (native_byte_order(dt) ? "" : " (byte-swapped)"));
  require_aligned(x, op, arg);
  return kind;
}

void require_ndim(const py::array& x, py::ssize_t ndim, const char* op, const char* arg) {
  if (x.ndim() != ndim)
    throw py::value_error(std::string(op) + ": " + arg + " must be " + std::to_string(ndim) +
                          "-D, but received shape " + shape_str(x));
}

int64_t elem_stride(const py::array& x, py::ssize_t axis, const char* op, const char* arg) {
  const py::ssize_t bytes = x.strides(axis);
  const py::ssize_t item = x.itemsize();
  if (bytes % item != 0)
    throw py::value_error(std::string(op) + ": " + arg + " has a byte stride (" + std::to_string(bytes) +
                          ") that is not a multiple of its item size (" + std::to_string(item) + ")");
  return static_cast<int64_t>(bytes / item);
}

bool may_overlap(const py::array& x, const py::array& y) {
  if (x.size() == 0 || y.size() == 0) return false;
  auto span = [](const py::array& a) {
    auto lo = reinterpret_cast<std::intptr_t>(a.data());
    auto hi = lo;
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
      const std::intptr_t extent = static_cast<std::intptr_t>(a.shape(i) - 1) * a.strides(i);
      if (extent < 0) lo += extent; else hi += extent;
    }
    return std::pair<std::intptr_t, std::intptr_t>(lo, hi + a.itemsize());
  };
  const auto [xlo, xhi] = span(x);
  const auto [ylo, yhi] = span(y);
  return xlo < yhi && ylo < xhi;
}

void require_c_contiguous(const py::array& x, const std::string& op, const char* arg) {
  if (!(x.flags() & py::array::c_style))
    throw py::value_error(op + ": " + arg + " must be C-contiguous, but received element strides " +
                          strides_str(x));
}

char float_input(const py::array& x, const std::string& op, const char* arg) {
  const char k = float_kind(x, op.c_str(), arg);
  require_c_contiguous(x, op, arg);
  return k;
}

}  // namespace fastnn::python

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastnn's compiled kernels (internal; use the fastnn package)";
  fastnn::tune_malloc();  // steady-state training steps reuse their buffers (fastnn/runtime.h)
  fastnn::python::bind_runtime(m);
  fastnn::python::bind_gemm(m);
  fastnn::python::bind_elementwise(m);
  fastnn::python::bind_optimizer(m);
  fastnn::python::bind_binary(m);
  fastnn::python::bind_conv(m);
  fastnn::python::bind_pool(m);
  fastnn::python::bind_batchnorm(m);
  fastnn::python::bind_rnn(m);
  fastnn::python::bind_embedding(m);
}
