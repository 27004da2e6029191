// Tier 2 helpers shared by the bind_*.cpp files: argument validation that turns every bad input into a
// Python exception naming the op, what it expected and what it received.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace fastnn::python {

namespace py = pybind11;

void bind_runtime(py::module_& m);
void bind_gemm(py::module_& m);
void bind_elementwise(py::module_& m);
void bind_optimizer(py::module_& m);
void bind_binary(py::module_& m);
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_batchnorm(py::module_& m);
void bind_rnn(py::module_& m);
void bind_embedding(py::module_& m);

// "(2, 3)" for error messages.
std::string shape_str(const py::array& x);

// "(4, 1)": strides in elements, for error messages.
std::string strides_str(const py::array& x);

// Element kind of a float array: 'f' (float32) or 'd' (float64). Raises TypeError for any other dtype,
// byte-swapped floats included, and ValueError for a buffer not aligned to its item size (the kernels
// dereference T* directly; a misaligned float load is undefined behaviour).
char float_kind(const py::array& x, const char* op, const char* arg);

// True when the dtype's byte order is this machine's.
bool native_byte_order(const py::dtype& dt);

// Raises ValueError when x's data is not aligned to its item size.
void require_aligned(const py::array& x, const char* op, const char* arg);

// Raises ValueError if x does not have `ndim` dimensions.
void require_ndim(const py::array& x, py::ssize_t ndim, const char* op, const char* arg);

// Stride of axis `axis` in elements; raises ValueError when the byte stride is not a multiple of the
// item size (views into structured arrays).
int64_t elem_stride(const py::array& x, py::ssize_t axis, const char* op, const char* arg);

// Raises ValueError naming op and arg when x is not C-contiguous.
void require_c_contiguous(const py::array& x, const std::string& op, const char* arg);

// A float32/float64 C-contiguous array (float_kind + require_c_contiguous): returns its kind ('f' or 'd').
char float_input(const py::array& x, const std::string& op, const char* arg);

// True when the memory spans of the two arrays intersect.
bool may_overlap(const py::array& x, const py::array& y);

}  // namespace fastnn::python
