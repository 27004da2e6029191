// Bindings for the embedding kernels (fastnn/embedding.h): embedding_gather(table, indices) and
// embedding_scatter_add(d_out, indices, num_rows). Each validates dtypes (TypeError), shapes and contiguity
// (ValueError, naming the function and what it received), allocates the output, releases the GIL and calls one
// kernel; the kernel checks every index while reading it and the binding reports the first bad one (ValueError
// naming the function, the value, its position and V). Non-contiguous inputs are rejected, not copied.
#include <string>
#include <vector>

#include "bindings.h"
#include "fastnn/embedding.h"

namespace fastnn::python {
namespace {

// The most elements an input or output may have (far beyond any memory; keeps products of sizes exact).
constexpr double kMaxElements = 0x1p52;

// Kind of an index array: 'i' (int32) or 'l' (int64), native byte order, aligned, C-contiguous.
char index_input(const py::array& x, const std::string& op) {
  const py::dtype dt = x.dtype();
  char kind = 0;
  if (dt.kind() == 'i' && dt.itemsize() == 4 && native_byte_order(dt)) kind = 'i';
  if (dt.kind() == 'i' && dt.itemsize() == 8 && native_byte_order(dt)) kind = 'l';
  if (kind == 0)
    throw py::type_error(op + ": indices must be int32 or int64 in native byte order, but received dtype " +
                         std::string(py::str(dt)));
  require_aligned(x, op.c_str(), "indices");
  require_c_contiguous(x, op, "indices");
  return kind;
}

int64_t index_at(const py::array& indices, char ik, int64_t pos) {
  return ik == 'i' ? static_cast<const int32_t*>(indices.data())[pos]
                   : static_cast<const int64_t*>(indices.data())[pos];
}

[[noreturn]] void bad_index(const std::string& op, const py::array& indices, char ik, int64_t pos, int64_t rows) {
  throw py::value_error(op + ": indices must lie in [0, " + std::to_string(rows) + ") (the table has " +
                        std::to_string(rows) + " rows), but received " + std::to_string(index_at(indices, ik, pos)) +
                        " at flat position " + std::to_string(pos) + " of indices of shape " + shape_str(indices));
}

template <typename T, typename I>
int64_t run_gather(void* out, const void* table, const void* idx, int64_t n, int64_t rows, int64_t dim, bool ref) {
  return (ref ? cpu::embedding_gather_ref<T, I> : cpu::embedding_gather<T, I>)(
      static_cast<T*>(out), static_cast<const T*>(table), static_cast<const I*>(idx), n, rows, dim);
}

template <typename T, typename I>
int64_t run_scatter(void* d_table, const void* d_out, const void* idx, int64_t n, int64_t rows, int64_t dim,
                    bool ref) {
  return (ref ? cpu::embedding_scatter_add_ref<T, I> : cpu::embedding_scatter_add<T, I>)(
      static_cast<T*>(d_table), static_cast<const T*>(d_out), static_cast<const I*>(idx), n, rows, dim);
}

py::array embedding_gather(const py::array& table, const py::array& indices, bool reference) {
  const std::string op = "embedding_gather";
  const char k = float_input(table, op, "table");
  require_ndim(table, 2, op.c_str(), "table");
  const char ik = index_input(indices, op);
  const int64_t rows = table.shape(0), dim = table.shape(1), n = indices.size();
  if (static_cast<double>(n) * static_cast<double>(dim) > kMaxElements)
    throw py::value_error(op + ": the output (" + std::to_string(n) + " x " + std::to_string(dim) +
                          " elements) is too large");
  std::vector<py::ssize_t> out_shape(indices.shape(), indices.shape() + indices.ndim());
  out_shape.push_back(static_cast<py::ssize_t>(dim));
  py::array out(table.dtype(), out_shape);
  void* op_out = out.mutable_data();
  const void* tp = table.data();
  const void* ip = indices.data();
  int64_t bad;
  {
    py::gil_scoped_release release;
    if (k == 'f') bad = ik == 'i' ? run_gather<float, int32_t>(op_out, tp, ip, n, rows, dim, reference)
                                  : run_gather<float, int64_t>(op_out, tp, ip, n, rows, dim, reference);
    else bad = ik == 'i' ? run_gather<double, int32_t>(op_out, tp, ip, n, rows, dim, reference)
                         : run_gather<double, int64_t>(op_out, tp, ip, n, rows, dim, reference);
  }
  if (bad >= 0) bad_index(op, indices, ik, bad, rows);
  return out;
}

py::array embedding_scatter_add(const py::array& d_out, const py::array& indices, const py::object& num_rows,
                                bool reference) {
  const std::string op = "embedding_scatter_add";
  const char k = float_input(d_out, op, "d_out");
  const char ik = index_input(indices, op);
  if (py::isinstance<py::bool_>(num_rows) || !py::isinstance<py::int_>(num_rows))
    throw py::type_error(op + ": num_rows must be an int, but received " + std::string(py::repr(num_rows)));
  int overflow = 0;
  const long long rows_ll = PyLong_AsLongLongAndOverflow(num_rows.ptr(), &overflow);
  if (overflow != 0 || rows_ll < 0 || static_cast<double>(rows_ll) > kMaxElements)
    throw py::value_error(op + ": num_rows must be non-negative and at most 2^52, but received " +
                          std::string(py::repr(num_rows)));
  const int64_t rows = rows_ll;
  bool shape_ok = d_out.ndim() == indices.ndim() + 1;
  for (py::ssize_t a = 0; shape_ok && a < indices.ndim(); ++a) shape_ok = d_out.shape(a) == indices.shape(a);
  if (!shape_ok)
    throw py::value_error(op + ": d_out must have shape (*indices.shape, D), but received d_out of shape " +
                          shape_str(d_out) + " and indices of shape " + shape_str(indices));
  const int64_t dim = d_out.shape(d_out.ndim() - 1), n = indices.size();
  if (static_cast<double>(rows) * static_cast<double>(dim) > kMaxElements)
    throw py::value_error(op + ": the gradient (" + std::to_string(rows) + " x " + std::to_string(dim) +
                          " elements) is too large");
  py::array d_table(d_out.dtype(), std::vector<py::ssize_t>{static_cast<py::ssize_t>(rows),
                                                           static_cast<py::ssize_t>(dim)});
  void* tp = d_table.mutable_data();
  const void* gp = d_out.data();
  const void* ip = indices.data();
  int64_t bad;
  {
    py::gil_scoped_release release;
    if (k == 'f') bad = ik == 'i' ? run_scatter<float, int32_t>(tp, gp, ip, n, rows, dim, reference)
                                  : run_scatter<float, int64_t>(tp, gp, ip, n, rows, dim, reference);
    else bad = ik == 'i' ? run_scatter<double, int32_t>(tp, gp, ip, n, rows, dim, reference)
                         : run_scatter<double, int64_t>(tp, gp, ip, n, rows, dim, reference);
  }
  if (bad >= 0) bad_index(op, indices, ik, bad, rows);
  return d_table;
}

}  // namespace

void bind_embedding(py::module_& m) {
  m.def("embedding_gather", &embedding_gather, py::arg("table"), py::arg("indices"), py::arg("reference") = false,
        "out (*indices.shape, D): the rows table[indices] of table (V, D) float32 / float64, C-contiguous; indices "
        "int32 / int64 of any shape, C-contiguous, each in [0, V) (ValueError naming the first bad one otherwise).");
  m.def("embedding_scatter_add", &embedding_scatter_add, py::arg("d_out"), py::arg("indices"), py::arg("num_rows"),
        py::arg("reference") = false,
        "d_table (num_rows, D): the dense gradient of embedding_gather, d_out (*indices.shape, D) rows added into "
        "their table rows in index order (deterministic, the same bits for every thread count); every index in "
        "[0, num_rows) (ValueError naming the first bad one otherwise).");
}

}  // namespace fastnn::python
