#pragma once
// Shared helpers for the pybind11 layer (the only place that includes Python headers).
//
// Conventions for every binding:
//  * take py::array (never array_t with forcecast: that would copy silently) and check
//    dtype, ndim, shape and C-contiguity with the helpers below -> ValueError naming the
//    argument;
//  * allocate outputs with the GIL held, then run the kernel inside
//    `{ py::gil_scoped_release nogil; ... }` once per batch;
//  * std::invalid_argument -> ValueError, std::out_of_range -> IndexError,
//    other std::exception -> RuntimeError (pybind11's default translation).
//
// Each register_*.cpp file adds itself with TM_REGISTER_BINDINGS(fn); module.cpp runs
// them all, so features never edit each other's files.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace tastemaker::py_bindings {

namespace py = pybind11;

using Registrar = std::function<void(py::module_&)>;

inline std::vector<Registrar>& registrars() {
    static std::vector<Registrar> r;
    return r;
}

struct RegisterBindings {
    explicit RegisterBindings(Registrar fn) { registrars().push_back(std::move(fn)); }
};

inline std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (i) s += ", ";
        s += std::to_string(a.shape(i));
    }
    if (a.ndim() == 1) s += ",";
    return s + ")";
}

/** Check dtype T, ndim and C-contiguity; return the data pointer. */
template <class T>
const T* checked_ptr(const py::array& a, const char* name, int ndim) {
    // Compare dtypes by value: an array that went through pickle (joblib, multiprocessing,
    // Dask) has an equal dtype that is a different object.  EquivTypes also rejects a
    // byte-swapped dtype, which the kernels cannot read.
    if (!py::isinstance<py::array_t<T>>(a) ||
        !py::detail::npy_api::get().PyArray_EquivTypes_(a.dtype().ptr(), py::dtype::of<T>().ptr()))
        throw std::invalid_argument(std::string(name) + ": expected dtype " +
                                    std::string(py::str(py::dtype::of<T>())) + ", got " +
                                    std::string(py::str(a.dtype())));
    if (a.ndim() != ndim)
        throw std::invalid_argument(std::string(name) + ": expected a " + std::to_string(ndim) +
                                    "-D array, got shape " + shape_str(a));
    if (!(a.flags() & py::array::c_style))
        throw std::invalid_argument(std::string(name) +
                                    ": array must be C-contiguous, try numpy.ascontiguousarray");
    return static_cast<const T*>(a.data());
}

template <class T>
T* checked_mutable_ptr(py::array& a, const char* name, int ndim) {
    const T* p = checked_ptr<T>(a, name, ndim);
    if (!a.writeable()) throw std::invalid_argument(std::string(name) + ": array must be writeable");
    return const_cast<T*>(p);
}

inline void check_dim(const py::array& a, int axis, py::ssize_t expected, const char* name) {
    if (a.shape(axis) != expected)
        throw std::invalid_argument(std::string(name) + ": expected shape[" + std::to_string(axis) +
                                    "] == " + std::to_string(expected) + ", got shape " +
                                    shape_str(a));
}

}  // namespace tastemaker::py_bindings

#define TM_BINDINGS_CONCAT2(a, b) a##b
#define TM_BINDINGS_CONCAT(a, b) TM_BINDINGS_CONCAT2(a, b)
#define TM_REGISTER_BINDINGS(fn) \
    static ::tastemaker::py_bindings::RegisterBindings TM_BINDINGS_CONCAT(tm_bind_, __LINE__)(fn)
