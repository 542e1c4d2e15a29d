// Exact top-k by inner product (recommend; cosine = the same on normalized rows).
#include "common.hpp"
#include "tastemaker/topk.hpp"

#include <limits>
#include <memory>

namespace tastemaker::py_bindings {
namespace {

py::tuple topk_binding(const py::array& queries, const py::array& items, int k, const py::object& exclude_indptr,
                       const py::object& exclude_indices, const py::object& allow, const py::object& deny,
                       int num_threads, const PackedItems* packed, int self_prefilter, int user_prefilter,
                       bool stats) {
    TopkRequest r;
    r.packed = packed;
    auto override_of = [](int v, const char* name) {  // a pre-filter override: -1, 0 or 1
        if (v < -1 || v > 1)
            throw std::invalid_argument(std::string(name) + ": expected -1 (the SIMD path's choice), 0 or 1, got " +
                                        std::to_string(v));
        return v;
    };
    r.self_prefilter = override_of(self_prefilter, "self_prefilter");
    r.user_prefilter = override_of(user_prefilter, "user_prefilter");
    TopkStats counters;
    if (stats) r.stats = &counters;
    r.queries = checked_ptr<float>(queries, "queries", 2);
    r.items = checked_ptr<float>(items, "items", 2);
    r.n_queries = static_cast<std::int64_t>(queries.shape(0));
    r.n_items = static_cast<std::int64_t>(items.shape(0));
    r.dim = static_cast<int>(queries.shape(1));
    if (r.dim < 1) throw std::invalid_argument("queries: expected at least one column");
    check_dim(items, 1, queries.shape(1), "items");
    if (k < 0) throw std::invalid_argument("k: expected >= 0, got " + std::to_string(k));
    r.k = k;
    r.num_threads = num_threads;

    py::array indptr_arr, indices_arr, allow_arr, deny_arr;  // keep references alive
    if (exclude_indptr.is_none() != exclude_indices.is_none())
        throw std::invalid_argument("exclude_indptr: give both exclude_indptr and exclude_indices, or neither");
    if (!exclude_indptr.is_none()) {
        indptr_arr = exclude_indptr.cast<py::array>();
        indices_arr = exclude_indices.cast<py::array>();
        r.exclude_indptr = checked_ptr<std::int64_t>(indptr_arr, "exclude_indptr", 1);
        r.exclude_indices = checked_ptr<std::int32_t>(indices_arr, "exclude_indices", 1);
        check_dim(indptr_arr, 0, queries.shape(0) + 1, "exclude_indptr");
        if (r.exclude_indptr[r.n_queries] != static_cast<std::int64_t>(indices_arr.shape(0)))
            throw std::invalid_argument("exclude_indptr: last entry must equal len(exclude_indices)");
    }
    if (!allow.is_none()) {
        allow_arr = allow.cast<py::array>();
        r.allow = checked_ptr<std::int32_t>(allow_arr, "allow", 1);
        r.n_allow = static_cast<std::int64_t>(allow_arr.shape(0));
        if (r.allow == nullptr) r.allow = reinterpret_cast<const std::int32_t*>(&r);  // empty list, not "all"
    }
    if (!deny.is_none()) {
        deny_arr = deny.cast<py::array>();
        r.deny = checked_ptr<std::int32_t>(deny_arr, "deny", 1);
        r.n_deny = static_cast<std::int64_t>(deny_arr.shape(0));
    }
    const auto nq = static_cast<py::ssize_t>(r.n_queries);
    py::array_t<std::int32_t> ids({nq, static_cast<py::ssize_t>(k)});
    py::array_t<float> scores({nq, static_cast<py::ssize_t>(k)});
    std::int32_t* pi = ids.mutable_data();
    float* ps = scores.mutable_data();
    {
        py::gil_scoped_release nogil;
        topk_inner_product(r, pi, ps);
    }
    if (!stats) return py::make_tuple(ids, scores);
    py::dict d;
    d["bounded"] = counters.bounded;
    d["exact"] = counters.exact;
    d["single"] = counters.single;
    d["tile_rows"] = counters.tile_rows;
    return py::make_tuple(ids, scores, d);
}

std::unique_ptr<PackedItems> pack_binding(const py::array& items, int num_threads) {
    const float* p = checked_ptr<float>(items, "items", 2);
    const auto n = static_cast<std::int64_t>(items.shape(0));
    const auto dim = static_cast<std::int64_t>(items.shape(1));
    if (dim < 1 || dim > std::numeric_limits<int>::max())
        throw std::invalid_argument("items: expected 1 to 2^31 - 1 columns, got shape " + shape_str(items));
    py::gil_scoped_release nogil;
    return std::make_unique<PackedItems>(p, n, static_cast<int>(dim), num_threads);
}

void register_topk(py::module_& m) {
    py::class_<PackedItems>(m, "PackedItems",
                            "Item factors packed once for repeated topk_inner_product calls (immutable, "
                            "thread-safe; a copy of the values), with the int8 copy of the single-query "
                            "pre-filter (prefilter_nbytes: (dim rounded up to 4, + 12) bytes per item).")
        .def(py::init(&pack_binding), py::arg("items"), py::arg("num_threads") = 0)
        .def_property_readonly("n_items", &PackedItems::n_items)
        .def_property_readonly("dim", &PackedItems::dim)
        .def_property_readonly("nbytes", &PackedItems::bytes)
        .def_property_readonly("prefilter_nbytes", &PackedItems::prefilter_bytes);
    m.def("topk_inner_product", &topk_binding, py::arg("queries"), py::arg("items"), py::arg("k"),
          py::arg("exclude_indptr") = py::none(), py::arg("exclude_indices") = py::none(),
          py::arg("allow") = py::none(), py::arg("deny") = py::none(), py::arg("num_threads") = 0,
          py::arg("packed") = nullptr, py::arg("self_prefilter") = -1, py::arg("user_prefilter") = -1,
          py::arg("stats") = false,
          "Top-k items by inner product per query row -> (ids int32 (nq, k), scores float32 (nq, k)); "
          "rows with fewer eligible items are padded with id -1 and score -inf.  `packed`: a "
          "PackedItems of these same items (then they are neither validated nor packed again).  "
          "`self_prefilter` (queries *are* items, the self-join) and `user_prefilter` (a batch of "
          "queries against the items): -1 the SIMD path's choice, 0 the float32 tile, 1 the int8 "
          "pre-filter first; the same results either way (for A/B runs).  `stats`: also return a "
          "dict of the batch scan's work counters (pairs bounded in int8, scored exactly in float32, "
          "of those single pairs, and re-scored tile rows of 32 pairs; all 0 for one query or the "
          "self-join).");
}

}  // namespace
TM_REGISTER_BINDINGS(register_topk);
}  // namespace tastemaker::py_bindings
