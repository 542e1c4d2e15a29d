// Single-request queries (tastemaker/query.hpp): the one-call paths of a service.  The
// scan is topk_inner_product's single-query path over cached panels; the fold-in builds
// one row's normal equations and solves them with the SIMD SolveKernels.
#include "tastemaker/query.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "tastemaker/als.hpp"
#include "tastemaker/solve.hpp"

namespace tastemaker {
namespace {

[[noreturn]] void invalid(const std::string& msg) { throw std::invalid_argument(msg); }

float row_lambda(const FoldInSide& s, std::int64_t n) {
    return tastemaker::row_lambda(s.regularization, s.reg_exponent, n);
}

bool sorted_ids(const std::int32_t* ids, std::int64_t n) {
    for (std::int64_t i = 1; i < n; ++i)
        if (ids[i] < ids[i - 1]) return false;
    return true;
}

// Per-thread scratch of the fold-in (A, b, weights): no allocation per request.
struct FoldScratch {
    std::vector<double> A, b, w, c, scratch;
    std::vector<std::int32_t> rows;
};

FoldScratch& fold_scratch() {
    thread_local FoldScratch s;
    return s;
}

}  // namespace

void check_row(const RowRef& row, std::int64_t n_cols, const char* name) {
    const std::string who(name);
    if (row.nnz < 0) invalid(who + ": negative number of entries");
    if (row.nnz > 0 && (row.indices == nullptr || row.data == nullptr)) invalid(who + ": null pointer");
    for (std::int64_t k = 0; k < row.nnz; ++k) {
        const std::int32_t c = row.indices[k];
        if (c < 0 || c >= n_cols)
            invalid(who + ": column index " + std::to_string(c) + " out of range [0, " + std::to_string(n_cols) + ")");
        if (k > 0 && c <= row.indices[k - 1])
            invalid(who + (c == row.indices[k - 1] ? ": duplicate" : ": unsorted") +
                    " column indices in row 0; call sum_duplicates() / sort_indices() first");
        if (!std::isfinite(row.data[k])) invalid(who + ": contains NaN or inf values");
    }
}

void fold_in_one(const FoldInSide& s, const RowRef& row, float* x, double* factor) {
    if (s.f < 1) invalid("factors: expected >= 1, got " + std::to_string(s.f));
    if (s.n < 0) invalid("items: negative number of rows");
    if (s.n > 0 && s.Y == nullptr) invalid("items: null pointer");
    if (s.gram == nullptr) invalid("gram: null pointer");
    if (!(s.regularization >= 0.0f) || !std::isfinite(s.regularization))
        invalid("regularization: expected a finite number >= 0");
    if (!std::isfinite(s.reg_exponent)) invalid("reg_exponent: expected a finite number");
    if (!(s.alpha > 0.0f) || !std::isfinite(s.alpha)) invalid("alpha: expected a finite number > 0");
    check_row(row, s.n, "user_items");
    const std::size_t f = static_cast<std::size_t>(s.f), ff = f * f;
    for (std::size_t k = 0; k < ff; ++k)
        if (!std::isfinite(s.gram[k]))
            invalid("gram: contains NaN or inf values (factors with NaN/inf, or so large that their Gram "
                    "matrix overflows)");

    FoldScratch& sc = fold_scratch();
    sc.A.resize(ff);
    sc.scratch.resize(kSolveScratch * f);
    sc.b.assign(f, 0.0);
    sc.w.clear();
    sc.c.clear();
    sc.rows.clear();
    // A = YtY + lambda I + sum (c - 1) y y^T,  b = sum_{v > 0} c y  (als.cpp's normal_equations)
    std::copy(s.gram, s.gram + ff, sc.A.begin());
    const double lambda = row_lambda(s, row.nnz);
    for (std::size_t j = 0; j < f; ++j) sc.A[j * f + j] += lambda;
    for (std::int64_t k = 0; k < row.nnz; ++k) {
        const float v = row.data[k];
        if (v == 0.0f) continue;
        const double c = static_cast<double>(s.alpha) * std::fabs(static_cast<double>(v));
        sc.rows.push_back(row.indices[k]);
        sc.w.push_back(c - 1.0);
        sc.c.push_back(v > 0.0f ? c : 0.0);
    }
    const SolveKernels& K = solve_kernels();
    K.accumulate_normal(s.Y, s.f, sc.rows.data(), sc.w.data(), sc.c.data(), static_cast<std::int64_t>(sc.rows.size()),
                        sc.A.data(), sc.b.data(), sc.scratch.data());
    if (!K.cholesky_solve(sc.A.data(), sc.b.data(), s.f))
        throw std::runtime_error("ALS: the normal equations of row 0 are not positive definite; increase "
                                 "regularization");
    for (std::size_t j = 0; j < f; ++j) x[j] = static_cast<float>(sc.b[j]);
    if (factor != nullptr) std::copy(sc.A.begin(), sc.A.end(), factor);
}

int topk_one(const float* q, const PackedItems& items, const float* raw, int k, const std::int32_t* exclude,
             std::int64_t n_exclude, const std::int32_t* deny, std::int64_t n_deny, const std::int32_t* allow,
             std::int64_t n_allow, std::int32_t* out_ids, float* out_scores) {
    if (k < 0) invalid("k: expected >= 0, got " + std::to_string(k));
    if (n_exclude < 0) invalid("exclude: negative length");
    if (n_exclude > 0 && exclude == nullptr) invalid("exclude: null pointer");
    if (!sorted_ids(exclude, n_exclude)) invalid("exclude: ids must be ascending");
    const std::int64_t excl_ptr[2] = {0, n_exclude};
    TopkRequest r;
    r.queries = q;
    r.n_queries = 1;
    r.items = raw;
    r.n_items = items.n_items();
    r.dim = items.dim();
    r.k = k;
    r.exclude_indptr = excl_ptr;
    r.exclude_indices = exclude;
    r.allow = allow;
    r.n_allow = n_allow;
    r.deny = deny;
    r.n_deny = n_deny;
    r.num_threads = 1;
    r.packed = &items;
    topk_inner_product(r, out_ids, out_scores);
    int n = 0;
    while (n < k && out_ids[n] >= 0) ++n;
    return n;
}

int similar_one(const float* normed, const PackedItems& packed, std::int64_t id, int k, const std::int32_t* zero,
                std::int64_t n_zero, const std::int32_t* deny, std::int64_t n_deny, const std::int32_t* allow,
                std::int64_t n_allow, std::int32_t* out_ids, float* out_scores) {
    const std::int64_t n = packed.n_items();
    if (id < 0 || id >= n) invalid("itemid: id " + std::to_string(id) + " out of range [0, " + std::to_string(n) + ")");
    if (k < 0) invalid("k: expected >= 0, got " + std::to_string(k));
    if (n_zero < 0 || (n_zero > 0 && zero == nullptr) || !sorted_ids(zero, n_zero))
        invalid("zero: expected ascending ids");
    if (n_deny < 0 || (n_deny > 0 && deny == nullptr)) invalid("deny: null pointer");
    if (n_allow < 0 || (allow == nullptr && n_allow > 0)) invalid("allow: null pointer");
    for (std::int64_t j = 0; j < n_zero; ++j)
        if (zero[j] < 0 || zero[j] >= n) invalid("zero: id out of range");
    if (k == 0 || std::binary_search(zero, zero + n_zero, static_cast<std::int32_t>(id)))
        return 0;  // a vector without direction is similar to nothing
    // the denied: the caller's list and the zero rows
    std::vector<std::int32_t> denied;
    const std::int32_t* d = deny;
    std::int64_t nd = n_deny;
    if (n_zero > 0) {
        denied.assign(zero, zero + n_zero);
        if (n_deny > 0) denied.insert(denied.end(), deny, deny + n_deny);
        d = denied.data();
        nd = static_cast<std::int64_t>(denied.size());
    }
    bool eligible = true;  // the query itself goes first when it may be a result
    for (std::int64_t j = 0; j < n_deny && eligible; ++j) eligible = deny[j] != id;
    if (allow != nullptr && eligible) {
        bool found = false;
        for (std::int64_t j = 0; j < n_allow && !found; ++j) found = allow[j] == id;
        eligible = found;
    }
    const std::int32_t self = static_cast<std::int32_t>(id);
    const int skip = eligible ? 1 : 0;
    int m = 0;
    if (k > skip)
        m = topk_one(normed + id * packed.dim(), packed, normed, k - skip, &self, 1, d, nd, allow, n_allow,
                     out_ids + skip, out_scores + skip);
    if (eligible) {
        out_ids[0] = self;
        out_scores[0] = 1.0f;
    }
    m += skip;
    for (int j = 0; j < m; ++j) out_scores[j] = std::min(1.0f, std::max(-1.0f, out_scores[j]));
    return m;
}

}  // namespace tastemaker
