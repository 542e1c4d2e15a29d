// Single-request queries (tastemaker/query.hpp): one call per request, the GIL released
// once around all of its native work.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common.hpp"
#include "tastemaker/query.hpp"

namespace tastemaker::py_bindings {
namespace {

// A 1 x n CSR row given as (indptr int32/int64 of 2, indices int32, data float32).
RowRef row_ref(const py::array& indptr, const py::array& indices, const py::array& data, const char* name) {
    const std::string who(name);
    if (indptr.ndim() != 1 || indptr.shape(0) != 2)
        throw std::invalid_argument(who + ".indptr: expected 2 entries (one row), got shape " + shape_str(indptr));
    std::int64_t lo = 0, hi = 0;
    if (py::isinstance<py::array_t<std::int64_t>>(indptr)) {
        const std::int64_t* p = checked_ptr<std::int64_t>(indptr, (who + ".indptr").c_str(), 1);
        lo = p[0];
        hi = p[1];
    } else {
        const std::int32_t* p = checked_ptr<std::int32_t>(indptr, (who + ".indptr").c_str(), 1);
        lo = p[0];
        hi = p[1];
    }
    RowRef r;
    r.indices = checked_ptr<std::int32_t>(indices, (who + ".indices").c_str(), 1);
    r.data = checked_ptr<float>(data, (who + ".data").c_str(), 1);
    r.nnz = static_cast<std::int64_t>(indices.shape(0));
    if (lo != 0 || hi != r.nnz || data.shape(0) != indices.shape(0))
        throw std::invalid_argument(who + ": malformed sparse row (indptr, indices and data lengths differ)");
    return r;
}

// An optional 1-D int32 id list: (pointer, length); null pointer for None.
std::pair<const std::int32_t*, std::int64_t> id_list(const py::object& obj, const char* name, py::array& keep) {
    if (obj.is_none()) return {nullptr, 0};
    keep = obj.cast<py::array>();
    const std::int32_t* p = checked_ptr<std::int32_t>(keep, name, 1);
    static const std::int32_t empty = 0;
    return {p == nullptr ? &empty : p, static_cast<std::int64_t>(keep.shape(0))};
}

void check_packed(const PackedItems& packed, const py::array& items, const char* name) {
    checked_ptr<float>(items, name, 2);
    if (items.shape(0) != packed.n_items() || items.shape(1) != packed.dim())
        throw std::invalid_argument(std::string(name) + ": packed for " + std::to_string(packed.n_items()) + " x " +
                                    std::to_string(packed.dim()) + ", got shape " + shape_str(items));
}

// Runs top(ids, scores) -> count with the GIL released (room for k results), and returns
// the (ids, scores) arrays trimmed to the count.
template <class Top>
py::tuple top_k(int k, Top&& top) {
    std::vector<std::int32_t> ids(static_cast<std::size_t>(k));
    std::vector<float> scores(static_cast<std::size_t>(k));
    int n = 0;
    {
        py::gil_scoped_release nogil;
        n = top(ids.data(), scores.data());
    }
    py::array_t<std::int32_t> oi(n);
    py::array_t<float> os(n);
    if (n > 0) {
        std::memcpy(oi.mutable_data(), ids.data(), sizeof(std::int32_t) * static_cast<std::size_t>(n));
        std::memcpy(os.mutable_data(), scores.data(), sizeof(float) * static_cast<std::size_t>(n));
    }
    return py::make_tuple(oi, os);
}

// The optional deny / allow lists of every single-request binding (kept alive by `keep`).
struct Filters {
    py::array keep_d, keep_a;
    std::pair<const std::int32_t*, std::int64_t> deny, allow;
};

Filters filters(const py::object& deny, const py::object& allow) {
    Filters f;
    f.deny = id_list(deny, "filter_items", f.keep_d);
    f.allow = id_list(allow, "items", f.keep_a);
    return f;
}

int checked_k(int k) {
    if (k < 0) throw std::invalid_argument("N: expected >= 0, got " + std::to_string(k));
    return k;
}

py::tuple recommend_binding(const py::array& user_factors, std::int64_t userid, const PackedItems& packed,
                            const py::array& items, int k, const py::array& indptr, const py::array& indices,
                            const py::array& data, const py::object& deny, const py::object& allow) {
    const float* uf = checked_ptr<float>(user_factors, "user_factors", 2);
    check_packed(packed, items, "item_factors");
    if (user_factors.shape(1) != packed.dim())
        throw std::invalid_argument("item_factors: factor dimension differs from user_factors");
    if (userid < 0 || userid >= user_factors.shape(0))
        throw std::invalid_argument("userid: id " + std::to_string(userid) + " out of range [0, " +
                                    std::to_string(user_factors.shape(0)) + ")");
    k = checked_k(k);
    const RowRef row = row_ref(indptr, indices, data, "user_items");
    const auto fl = filters(deny, allow);
    const float* raw = static_cast<const float*>(items.data());
    const float* q = uf + userid * packed.dim();
    return top_k(k, [&](std::int32_t* ids, float* scores) {
        check_row(row, packed.n_items(), "user_items");
        return topk_one(q, packed, raw, k, row.indices, row.nnz, fl.deny.first, fl.deny.second, fl.allow.first,
                        fl.allow.second, ids, scores);
    });
}

py::tuple vector_binding(const py::array& vector, const PackedItems& packed, const py::array& items, int k,
                         const py::object& exclude, const py::object& deny, const py::object& allow) {
    const float* q = checked_ptr<float>(vector, "vectors", 1);
    check_packed(packed, items, "item_factors");
    check_dim(vector, 0, packed.dim(), "vectors");
    k = checked_k(k);
    py::array keep_e;
    const auto el = id_list(exclude, "exclude", keep_e);
    const auto fl = filters(deny, allow);
    const float* raw = static_cast<const float*>(items.data());
    return top_k(k, [&](std::int32_t* ids, float* scores) {
        return topk_one(q, packed, raw, k, el.first, el.second, fl.deny.first, fl.deny.second, fl.allow.first,
                        fl.allow.second, ids, scores);
    });
}

py::tuple fold_in_binding(const py::array& items, const py::array& gram, float regularization, float reg_exponent,
                          float alpha, const py::array& indptr, const py::array& indices, const py::array& data,
                          const PackedItems* packed, int k, bool filter, const py::object& deny,
                          const py::object& allow, bool want_factor) {
    FoldInSide s;
    s.Y = checked_ptr<float>(items, "item_factors", 2);
    s.n = static_cast<std::int64_t>(items.shape(0));
    s.f = static_cast<int>(items.shape(1));
    s.gram = checked_ptr<double>(gram, "gram", 2);
    check_dim(gram, 0, items.shape(1), "gram");
    check_dim(gram, 1, items.shape(1), "gram");
    s.regularization = regularization;
    s.reg_exponent = reg_exponent;
    s.alpha = alpha;
    k = checked_k(k);
    if (k > 0) {
        if (packed == nullptr) throw std::invalid_argument("packed: required when N > 0");
        check_packed(*packed, items, "item_factors");
    }
    const RowRef row = row_ref(indptr, indices, data, "user_items");
    const auto fl = filters(deny, allow);
    py::array_t<float> x(static_cast<py::ssize_t>(s.f));
    py::array_t<double> factor;
    if (want_factor) factor = py::array_t<double>({static_cast<py::ssize_t>(s.f), static_cast<py::ssize_t>(s.f)});
    float* px = x.mutable_data();
    double* pf = want_factor ? factor.mutable_data() : nullptr;
    py::tuple top = top_k(k, [&](std::int32_t* ids, float* scores) {
        fold_in_one(s, row, px, pf);
        if (k == 0) return 0;
        return topk_one(px, *packed, s.Y, k, filter ? row.indices : nullptr, filter ? row.nnz : 0, fl.deny.first,
                        fl.deny.second, fl.allow.first, fl.allow.second, ids, scores);
    });
    if (want_factor) return py::make_tuple(x, top[0], top[1], factor);
    return py::make_tuple(x, top[0], top[1]);
}

py::tuple similar_binding(const py::array& normed, const PackedItems& packed, std::int64_t id, int k,
                          const py::object& zero, const py::object& deny, const py::object& allow) {
    check_packed(packed, normed, "item_factors");
    k = checked_k(k);
    py::array keep_z;
    const auto zl = id_list(zero, "zero", keep_z);
    const auto fl = filters(deny, allow);
    const float* p = static_cast<const float*>(normed.data());
    return top_k(k, [&](std::int32_t* ids, float* scores) {
        return similar_one(p, packed, id, k, zl.first, zl.second, fl.deny.first, fl.deny.second, fl.allow.first,
                           fl.allow.second, ids, scores);
    });
}

void register_query(py::module_& m) {
    m.def("query_recommend", &recommend_binding, py::arg("user_factors"), py::arg("userid"), py::arg("packed"),
          py::arg("items"), py::arg("k"), py::arg("indptr"), py::arg("indices"), py::arg("data"),
          py::arg("deny") = py::none(), py::arg("allow") = py::none(),
          "One user's top k (user_factors[userid] . items), the CSR row's items excluded -> (ids int32 (n,), "
          "scores float32 (n,)), n = min(k, eligible).  `packed`: a PackedItems of `items`.");
    m.def("query_vector", &vector_binding, py::arg("vector"), py::arg("packed"), py::arg("items"), py::arg("k"),
          py::arg("exclude") = py::none(), py::arg("deny") = py::none(), py::arg("allow") = py::none(),
          "One vector's top k over packed items; `exclude`: ascending ids never returned -> (ids, scores).");
    m.def("query_fold_in", &fold_in_binding, py::arg("items"), py::arg("gram"), py::arg("regularization"),
          py::arg("reg_exponent"), py::arg("alpha"), py::arg("indptr"), py::arg("indices"), py::arg("data"),
          py::arg("packed") = nullptr, py::arg("k") = 0, py::arg("filter") = true, py::arg("deny") = py::none(),
          py::arg("allow") = py::none(), py::arg("want_factor") = false,
          "Exact ALS fold-in of one CSR row against `items` with their Gram, then (k > 0) its top k -> "
          "(x float32 (f,), ids, scores[, U float64 (f, f): A = U^T U in the upper triangle]).");
    m.def("query_similar", &similar_binding, py::arg("normed"), py::arg("packed"), py::arg("id"), py::arg("k"),
          py::arg("zero") = py::none(), py::arg("deny") = py::none(), py::arg("allow") = py::none(),
          "Cosine top k of row `id` of the normalised factors (itself first when eligible; `zero`: ascending "
          "zero rows, never results) -> (ids, scores).");
}

}  // namespace
TM_REGISTER_BINDINGS(register_query);
}  // namespace tastemaker::py_bindings
