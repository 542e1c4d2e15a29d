#pragma once
// CSR matrices passed from Python as (indptr int64, indices int32, data float32) arrays.
#include <string>

#include "common.hpp"
#include "tastemaker/knn.hpp"  // CsrView

namespace tastemaker::py_bindings {

// A CSR given as (indptr int64, indices int32, data float32, n_cols); the arrays stay
// owned by the caller's Python objects for the duration of the call.
inline CsrView csr_view(const py::array& indptr, const py::array& indices, const py::array& data, std::int64_t n_cols,
                 const std::string& name) {
    CsrView v;
    v.indptr = checked_ptr<std::int64_t>(indptr, (name + ".indptr").c_str(), 1);
    v.indices = checked_ptr<std::int32_t>(indices, (name + ".indices").c_str(), 1);
    v.data = checked_ptr<float>(data, (name + ".data").c_str(), 1);
    if (indptr.shape(0) < 1) throw std::invalid_argument(name + ".indptr: expected at least one entry");
    check_dim(data, 0, indices.shape(0), (name + ".data").c_str());
    v.n_rows = static_cast<std::int64_t>(indptr.shape(0)) - 1;
    v.n_cols = n_cols;
    if (n_cols < 0) throw std::invalid_argument(name + ": negative number of columns");
    if (v.indptr[v.n_rows] != static_cast<std::int64_t>(indices.shape(0)))
        throw std::invalid_argument(name + ".indptr: last entry must equal len(indices)");
    return v;
}

// Rows of a CSR from its indptr (checked: 1-D int64 with at least one entry).
inline std::int64_t rows_of(const py::array& indptr, const std::string& name) {
    checked_ptr<std::int64_t>(indptr, (name + ".indptr").c_str(), 1);
    if (indptr.shape(0) < 1) throw std::invalid_argument(name + ".indptr: expected at least one entry");
    return static_cast<std::int64_t>(indptr.shape(0)) - 1;
}

}  // namespace tastemaker::py_bindings
