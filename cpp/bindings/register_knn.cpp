// Item-item neighbourhoods: top-K build, scoring from neighbour lists, dense item Gram.
#include <string>

#include "common.hpp"
#include "csr.hpp"
#include "tastemaker/knn.hpp"

namespace tastemaker::py_bindings {
namespace {

const std::int32_t* optional_ids(const py::object& obj, py::array& keep, std::int64_t& n, const char* name) {
    n = 0;
    if (obj.is_none()) return nullptr;
    keep = obj.cast<py::array>();
    const std::int32_t* p = checked_ptr<std::int32_t>(keep, name, 1);
    n = static_cast<std::int64_t>(keep.shape(0));
    static const std::int32_t empty = 0;
    return p ? p : &empty;  // an empty list is "nothing", not "no list"
}

// The graph as (indptr int64, indices int32, data float32, self float32) arrays.
py::tuple graph_tuple(const KnnGraph& g) {
    auto copy = [](const auto& v) {
        using T = typename std::decay_t<decltype(v)>::value_type;
        return py::array_t<T>(static_cast<py::ssize_t>(v.size()), v.data());
    };
    return py::make_tuple(copy(g.indptr), copy(g.indices), copy(g.data), copy(g.self));
}

py::tuple knn_fit_binding(const py::array& indptr, const py::array& indices, const py::array& data,
                          std::int64_t n_items, int K, const std::string& similarity, double k1, double b,
                          int num_threads) {
    const CsrView X = csr_view(indptr, indices, data, n_items, "user_items");
    KnnSimilarity kind;
    if (similarity == "cosine")
        kind = KnnSimilarity::Cosine;
    else if (similarity == "bm25")
        kind = KnnSimilarity::Bm25;
    else if (similarity == "tfidf")
        kind = KnnSimilarity::TfIdf;
    else if (similarity == "jaccard")
        kind = KnnSimilarity::Jaccard;
    else
        throw std::invalid_argument("similarity: expected 'cosine', 'bm25', 'tfidf' or 'jaccard', got '" +
                                    similarity + "'");
    if (K < 1) throw std::invalid_argument("K: expected >= 1, got " + std::to_string(K));
    KnnGraph g;
    {
        py::gil_scoped_release nogil;
        g = knn_fit(X, kind, K, k1, b, num_threads);
    }
    return graph_tuple(g);
}

py::tuple knn_recommend_binding(const py::array& n_indptr, const py::array& n_indices, const py::array& n_data,
                                const py::array& r_indptr, const py::array& r_indices, const py::array& r_data,
                                bool exclude_seen, const py::object& allow, const py::object& deny, int k,
                                int num_threads) {
    const std::int64_t n_items = rows_of(n_indptr, "neighbours");
    const CsrView N = csr_view(n_indptr, n_indices, n_data, n_items, "neighbours");
    const CsrView R = csr_view(r_indptr, r_indices, r_data, n_items, "user_items");
    if (k < 0) throw std::invalid_argument("k: expected >= 0, got " + std::to_string(k));
    py::array allow_arr, deny_arr;
    std::int64_t n_allow = 0, n_deny = 0;
    const std::int32_t* pa = optional_ids(allow, allow_arr, n_allow, "allow");
    const std::int32_t* pd = optional_ids(deny, deny_arr, n_deny, "deny");
    const auto nq = static_cast<py::ssize_t>(R.n_rows);
    py::array_t<std::int32_t> ids({nq, static_cast<py::ssize_t>(k)});
    py::array_t<float> scores({nq, static_cast<py::ssize_t>(k)});
    std::int32_t* pi = ids.mutable_data();
    float* ps = scores.mutable_data();
    {
        py::gil_scoped_release nogil;
        knn_recommend(N, R, exclude_seen, pa, n_allow, pd, n_deny, k, pi, ps, num_threads);
    }
    return py::make_tuple(ids, scores);
}

py::array item_gram_binding(const py::array& w_indptr, const py::array& w_indices, const py::array& w_data,
                            const py::array& t_indptr, const py::array& t_indices, const py::array& t_data,
                            double ridge, py::array& out, int num_threads) {
    const std::int64_t n_users = rows_of(w_indptr, "W");
    const std::int64_t n_items = rows_of(t_indptr, "Wt");
    const CsrView W = csr_view(w_indptr, w_indices, w_data, n_items, "W");
    const CsrView Wt = csr_view(t_indptr, t_indices, t_data, n_users, "Wt");
    double* po = checked_mutable_ptr<double>(out, "out", 2);
    check_dim(out, 0, n_items, "out");
    check_dim(out, 1, n_items, "out");
    {
        py::gil_scoped_release nogil;
        item_gram_dense(W, Wt, ridge, po, num_threads);
    }
    return out;
}

py::tuple csr_transpose_binding(const py::array& indptr, const py::array& indices, const py::array& data,
                                std::int64_t n_cols, int num_threads) {
    const CsrView X = csr_view(indptr, indices, data, n_cols, "m");
    const std::int64_t nnz = X.indptr[X.n_rows];
    py::array_t<std::int64_t> t_indptr(static_cast<py::ssize_t>(n_cols) + 1);
    py::array_t<std::int32_t> t_indices(static_cast<py::ssize_t>(nnz));
    py::array_t<float> t_data(static_cast<py::ssize_t>(nnz));
    std::int64_t* pi = t_indptr.mutable_data();
    std::int32_t* px = t_indices.mutable_data();
    float* pd = t_data.mutable_data();
    {
        py::gil_scoped_release nogil;
        csr_transpose(X, pi, px, pd, nullptr, num_threads);
    }
    return py::make_tuple(t_indptr, t_indices, t_data);
}

void register_knn(py::module_& m) {
    m.def("csr_transpose", &csr_transpose_binding, py::arg("indptr"), py::arg("indices"), py::arg("data"),
          py::arg("n_cols"), py::arg("num_threads") = 0,
          "The transpose of a CSR (indptr int64, indices int32, data float32) with n_cols columns -> "
          "(indptr, indices, data) of the n_cols x n_rows CSR, indices sorted (scipy's m.T.tocsr()).");
    m.def("knn_fit", &knn_fit_binding, py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n_items"),
          py::arg("K"), py::arg("similarity") = "cosine", py::arg("K1") = 1.2, py::arg("B") = 0.75,
          py::arg("num_threads") = 0,
          "The neighbour graph of a users x items CSR of raw strengths, weighted by `similarity` (cosine, "
          "bm25, tfidf or jaccard) -> (indptr int64, indices int32, data float32) plus self similarities.");
    m.def("knn_recommend", &knn_recommend_binding, py::arg("n_indptr"), py::arg("n_indices"), py::arg("n_data"),
          py::arg("r_indptr"), py::arg("r_indices"), py::arg("r_data"), py::arg("exclude_seen"),
          py::arg("allow") = py::none(), py::arg("deny") = py::none(), py::arg("k") = 10,
          py::arg("num_threads") = 0,
          "Top-k items per row of user_items scored from the neighbour graph -> (ids int32 (nq, k), "
          "scores float32 (nq, k)); padded with id -1 / score -inf.");
    m.def("item_gram_dense", &item_gram_binding, py::arg("w_indptr"), py::arg("w_indices"), py::arg("w_data"),
          py::arg("t_indptr"), py::arg("t_indices"), py::arg("t_data"), py::arg("ridge"), py::arg("out"),
          py::arg("num_threads") = 0, "out (n_items x n_items float64) = W^T W + ridge I; returns out.");
}

}  // namespace
TM_REGISTER_BINDINGS(register_knn);
}  // namespace tastemaker::py_bindings
