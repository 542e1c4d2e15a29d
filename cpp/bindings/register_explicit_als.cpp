// Explicit-feedback ALS-WR with biases: one half-step, and the training RMSE.
#include <cstdint>
#include <optional>
#include <string>

#include "common.hpp"
#include "csr.hpp"
#include "tastemaker/explicit_als.hpp"

namespace tastemaker::py_bindings {
namespace {

// The shapes both bindings check, after the dtype/rank checks of their own arrays: Y is
// (n_other, f), other_bias (n_other,), the CSR has n_other columns, X is (rows, f), bias (rows,).
struct RatingShapes {
    CsrView R;
    std::int64_t n_other;
    int f;
};

RatingShapes rating_shapes(const py::array& indptr, const py::array& indices, const py::array& data,
                           const py::array& X, const py::array& bias, const py::array& Y,
                           const py::array& other_bias) {
    const auto n_other = static_cast<std::int64_t>(Y.shape(0));
    check_dim(other_bias, 0, Y.shape(0), "other_bias");
    check_dim(X, 1, Y.shape(1), "X");
    const CsrView R = csr_view(indptr, indices, data, n_other, "R");
    check_dim(X, 0, static_cast<py::ssize_t>(R.n_rows), "X");
    check_dim(bias, 0, static_cast<py::ssize_t>(R.n_rows), "bias");
    return {R, n_other, static_cast<int>(Y.shape(1))};
}

void register_explicit_als(py::module_& m) {
    m.def(
        "explicit_als_solve",
        [](const py::array& indptr, const py::array& indices, const py::array& data, const py::array& Y,
           const py::array& other_bias, py::array& X, py::array& bias, double regularization,
           double bias_regularization, bool weighted, double global_mean, int num_threads, double noise_sd,
           std::uint64_t seed, const std::optional<py::array>& prior_precision,
           const std::optional<py::array>& prior_mean) {
            const float* py_ = checked_ptr<float>(Y, "Y", 2);
            const float* pob = checked_ptr<float>(other_bias, "other_bias", 1);
            float* px = checked_mutable_ptr<float>(X, "X", 2);
            float* pb = checked_mutable_ptr<float>(bias, "bias", 1);
            const RatingShapes shape = rating_shapes(indptr, indices, data, X, bias, Y, other_bias);
            const CsrView& R = shape.R;
            const std::int64_t n_other = shape.n_other;
            const int f = shape.f;
            ExplicitAlsParams p;
            p.regularization = regularization;
            p.bias_regularization = bias_regularization;
            p.weighted = weighted;
            p.global_mean = global_mean;
            p.num_threads = num_threads;
            p.noise_sd = noise_sd;
            p.seed = seed;
            if (prior_precision) {
                p.prior_precision = checked_ptr<double>(*prior_precision, "prior_precision", 2);
                check_dim(*prior_precision, 0, f + 1, "prior_precision");
                check_dim(*prior_precision, 1, f + 1, "prior_precision");
            }
            if (prior_mean) {
                p.prior_mean = checked_ptr<double>(*prior_mean, "prior_mean", 1);
                check_dim(*prior_mean, 0, f + 1, "prior_mean");
            }
            py::gil_scoped_release nogil;
            explicit_als_solve(R, py_, pob, n_other, f, px, pb, p);
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("Y"), py::arg("other_bias"), py::arg("X"),
        py::arg("bias"), py::arg("regularization"), py::arg("bias_regularization"), py::arg("weighted"),
        py::arg("global_mean"), py::arg("num_threads") = 0, py::arg("noise_sd") = 0.0, py::arg("seed") = 0,
        py::arg("prior_precision") = py::none(), py::arg("prior_mean") = py::none(),
        "Solve the factors X and biases of every row of the rating CSR with (Y, other_bias) fixed (in place); "
        "noise_sd > 0 draws them from the Gaussian around that solution instead (a Gibbs step).");
    m.def(
        "explicit_als_rmse",
        [](const py::array& indptr, const py::array& indices, const py::array& data, const py::array& X,
           const py::array& bias, const py::array& Y, const py::array& other_bias, double global_mean,
           int num_threads) {
            const float* px = checked_ptr<float>(X, "X", 2);
            const float* pb = checked_ptr<float>(bias, "bias", 1);
            const float* py_ = checked_ptr<float>(Y, "Y", 2);
            const float* pob = checked_ptr<float>(other_bias, "other_bias", 1);
            const RatingShapes shape = rating_shapes(indptr, indices, data, X, bias, Y, other_bias);
            const CsrView& R = shape.R;
            const std::int64_t n_other = shape.n_other;
            const int f = shape.f;
            py::gil_scoped_release nogil;
            return explicit_als_rmse(R, px, pb, py_, pob, n_other, f, global_mean, num_threads);
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("X"), py::arg("bias"), py::arg("Y"),
        py::arg("other_bias"), py::arg("global_mean"), py::arg("num_threads") = 0,
        "RMSE of mu + b_u + c_i + x_u . y_i over the stored ratings.");
}

}  // namespace
TM_REGISTER_BINDINGS(register_explicit_als);
}  // namespace tastemaker::py_bindings
