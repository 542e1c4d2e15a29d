// Implicit ALS kernels: Gram matrix, one half-step solve, training loss.
#include <string>

#include "common.hpp"
#include "tastemaker/als.hpp"

namespace tastemaker::py_bindings {
namespace {

struct Csr {
    const std::int64_t* indptr;
    const std::int32_t* indices;
    const float* data;
    std::int64_t n_rows;
};

Csr checked_csr(const py::array& indptr, const py::array& indices, const py::array& data,
                std::int64_t n_rows) {
    Csr c{checked_ptr<std::int64_t>(indptr, "indptr", 1), checked_ptr<std::int32_t>(indices, "indices", 1),
          checked_ptr<float>(data, "data", 1), n_rows};
    check_dim(indptr, 0, n_rows + 1, "indptr");
    check_dim(data, 0, indices.shape(0), "data");
    const std::int64_t nnz = c.indptr[n_rows];
    if (c.indptr[0] != 0 || nnz != indices.shape(0))
        throw std::invalid_argument("indptr: must start at 0 and end at len(indices)");
    return c;
}

AlsParams make_params(float regularization, float reg_exponent, float alpha, const std::string& solver,
                      int cg_steps, int num_threads) {
    AlsParams p;
    p.regularization = regularization;
    p.reg_exponent = reg_exponent;
    p.alpha = alpha;
    if (solver == "cg")
        p.solver = AlsSolver::CG;
    else if (solver == "cholesky")
        p.solver = AlsSolver::Cholesky;
    else
        throw std::invalid_argument("solver: expected 'cg' or 'cholesky', got '" + solver + "'");
    p.cg_steps = cg_steps;
    p.num_threads = num_threads;
    return p;
}

void register_als(py::module_& m) {
    m.def(
        "als_gram",
        [](const py::array& Y, int num_threads) {
            const float* py_ = checked_ptr<float>(Y, "Y", 2);
            const auto n = static_cast<std::int64_t>(Y.shape(0));
            const int f = static_cast<int>(Y.shape(1));
            if (f < 1) throw std::invalid_argument("Y: expected at least one column");
            py::array_t<double> out({static_cast<py::ssize_t>(f), static_cast<py::ssize_t>(f)});
            double* po = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                als_gram(py_, n, f, po, num_threads);
            }
            return out;
        },
        py::arg("Y"), py::arg("num_threads") = 0, "Y^T Y in float64 (deterministic for any thread count).");

    m.def(
        "als_solve",
        [](const py::array& indptr, const py::array& indices, const py::array& data, const py::array& Y,
           const py::array& gram, py::array& X, float regularization, float reg_exponent, float alpha,
           const std::string& solver, int cg_steps, int num_threads) {
            float* px = checked_mutable_ptr<float>(X, "X", 2);
            const float* py_ = checked_ptr<float>(Y, "Y", 2);
            const double* pg = checked_ptr<double>(gram, "gram", 2);
            const int f = static_cast<int>(Y.shape(1));
            if (f < 1) throw std::invalid_argument("Y: expected at least one column");
            check_dim(X, 1, f, "X");
            check_dim(gram, 0, f, "gram");
            check_dim(gram, 1, f, "gram");
            const Csr c = checked_csr(indptr, indices, data, static_cast<std::int64_t>(X.shape(0)));
            const AlsParams p = make_params(regularization, reg_exponent, alpha, solver, cg_steps, num_threads);
            const auto n_other = static_cast<std::int64_t>(Y.shape(0));
            py::gil_scoped_release nogil;
            als_solve(c.indptr, c.indices, c.data, c.n_rows, py_, n_other, f, pg, px, p);
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("Y"), py::arg("gram"), py::arg("X"),
        py::arg("regularization"), py::arg("reg_exponent"), py::arg("alpha"), py::arg("solver"),
        py::arg("cg_steps"), py::arg("num_threads") = 0,
        "Solve every row of the CSR matrix into X (in place) with Y fixed.");

    m.def(
        "als_loss",
        [](const py::array& indptr, const py::array& indices, const py::array& data, const py::array& X,
           const py::array& Y, const py::array& gram, float regularization, float reg_exponent, float alpha,
           int num_threads) {
            const float* px = checked_ptr<float>(X, "X", 2);
            const float* py_ = checked_ptr<float>(Y, "Y", 2);
            const double* pg = checked_ptr<double>(gram, "gram", 2);
            const int f = static_cast<int>(Y.shape(1));
            if (f < 1) throw std::invalid_argument("Y: expected at least one column");
            check_dim(X, 1, f, "X");
            check_dim(gram, 0, f, "gram");
            check_dim(gram, 1, f, "gram");
            const Csr c = checked_csr(indptr, indices, data, static_cast<std::int64_t>(X.shape(0)));
            const AlsParams p = make_params(regularization, reg_exponent, alpha, "cg", 1, num_threads);
            const auto n_other = static_cast<std::int64_t>(Y.shape(0));
            py::gil_scoped_release nogil;
            return als_loss(c.indptr, c.indices, c.data, c.n_rows, px, py_, n_other, f, pg, p);
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("X"), py::arg("Y"), py::arg("gram"),
        py::arg("regularization"), py::arg("reg_exponent"), py::arg("alpha"), py::arg("num_threads") = 0,
        "Weighted implicit-ALS training loss (see als.hpp).");
}

}  // namespace
TM_REGISTER_BINDINGS(register_als);
}  // namespace tastemaker::py_bindings
