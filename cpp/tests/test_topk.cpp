#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "tastemaker/simd.hpp"
#include "tastemaker/topk.hpp"
#include "testing.hpp"

using namespace tastemaker;

namespace {

struct Problem {
    int nq, ni, d, k;
    std::vector<float> q, items;
    std::vector<std::int64_t> indptr;
    std::vector<std::int32_t> indices, allow, deny;
};

Problem make_problem(unsigned seed, int nq, int ni, int d, int k, bool with_allow, bool with_deny) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> small(-2, 2);  // exact scores -> exact comparison
    Problem p{nq, ni, d, k, {}, {}, {0}, {}, {}, {}};
    for (int i = 0; i < nq * d; ++i) p.q.push_back(float(small(rng)));
    for (int i = 0; i < ni * d; ++i) p.items.push_back(float(small(rng)));
    std::bernoulli_distribution seen(0.3), pick(0.5);
    for (int u = 0; u < nq; ++u) {
        for (int i = 0; i < ni; ++i)
            if (seen(rng)) p.indices.push_back(i);
        p.indptr.push_back(static_cast<std::int64_t>(p.indices.size()));
    }
    for (int i = 0; i < ni; ++i) {
        if (with_allow && pick(rng)) p.allow.push_back(i);
        if (with_deny && seen(rng)) p.deny.push_back(i);
    }
    return p;
}

// Brute force: (score desc, id asc), padded with -1 / -inf.
void brute(const Problem& p, bool use_allow, std::vector<std::int32_t>& ids, std::vector<float>& sc) {
    ids.assign(std::size_t(p.nq) * p.k, -1);
    sc.assign(std::size_t(p.nq) * p.k, -std::numeric_limits<float>::infinity());
    for (int u = 0; u < p.nq; ++u) {
        std::vector<std::pair<float, int>> c;
        for (int i = 0; i < p.ni; ++i) {
            if (use_allow && !std::binary_search(p.allow.begin(), p.allow.end(), i)) continue;
            if (std::find(p.deny.begin(), p.deny.end(), i) != p.deny.end()) continue;
            if (std::binary_search(p.indices.begin() + p.indptr[u], p.indices.begin() + p.indptr[u + 1], i)) continue;
            float s = 0;
            for (int k = 0; k < p.d; ++k) s += p.q[u * p.d + k] * p.items[i * p.d + k];
            c.push_back({-s, i});
        }
        std::sort(c.begin(), c.end());
        for (int j = 0; j < p.k && j < int(c.size()); ++j) {
            ids[u * p.k + j] = c[j].second;
            sc[u * p.k + j] = -c[j].first;
        }
    }
}

}  // namespace

TM_TEST(topk_matches_brute_force_on_every_path_and_thread_count) {
    const simd::Isa before = simd::active();
    unsigned seed = 1;
    for (int nq : {1, 3, 16, 50, 1700})  // 1700: several full 192-query blocks and a tail
        for (int ni : {0, 1, 31, 32, 33, 100})
            for (int k : {1, 5, 40})
                for (int flags = 0; flags < 4; ++flags) {
                    Problem p = make_problem(seed++, nq, ni, 5, k, flags & 1, flags & 2);
                    std::vector<std::int32_t> want_ids;
                    std::vector<float> want_sc;
                    brute(p, flags & 1, want_ids, want_sc);
                    TopkRequest r;
                    r.queries = p.q.data();
                    r.n_queries = nq;
                    r.items = p.items.data();
                    r.n_items = ni;
                    r.dim = p.d;
                    r.k = k;
                    r.exclude_indptr = p.indptr.data();
                    r.exclude_indices = p.indices.data();
                    if (flags & 1) {
                        static const std::int32_t none = 0;  // empty allow-list: non-null, length 0
                        r.allow = p.allow.empty() ? &none : p.allow.data();
                        r.n_allow = static_cast<std::int64_t>(p.allow.size());
                    }
                    r.deny = p.deny.data();
                    r.n_deny = static_cast<std::int64_t>(p.deny.size());
                    for (simd::Isa isa : simd::available())
                        for (int threads : {1, 2}) {
                            simd::set_active(isa);
                            r.num_threads = threads;
                            std::vector<std::int32_t> ids(std::size_t(nq) * k, 7);
                            std::vector<float> sc(std::size_t(nq) * k, 7.0f);
                            topk_inner_product(r, ids.data(), sc.data());
                            TM_CHECK(ids == want_ids);
                            TM_CHECK(sc == want_sc);
                        }
                }
    simd::set_active(before);
}

TM_TEST(topk_rejects_bad_requests) {
    std::vector<float> q(4, 1.0f), items(8, 1.0f);
    std::vector<std::int32_t> ids(4);
    std::vector<float> sc(4);
    TopkRequest r;
    r.queries = q.data();
    r.n_queries = 2;
    r.items = items.data();
    r.n_items = 4;
    r.dim = 2;
    r.k = 2;
    topk_inner_product(r, ids.data(), sc.data());
    TM_CHECK(ids[0] == 0 && ids[1] == 1);  // all tie: lower id first
    TopkRequest bad = r;
    bad.dim = 0;
    TM_CHECK_THROWS(topk_inner_product(bad, ids.data(), sc.data()), std::invalid_argument);
    bad = r;
    bad.k = -1;
    TM_CHECK_THROWS(topk_inner_product(bad, ids.data(), sc.data()), std::invalid_argument);
    std::vector<std::int32_t> out_of_range{4};
    bad = r;
    bad.deny = out_of_range.data();
    bad.n_deny = 1;
    TM_CHECK_THROWS(topk_inner_product(bad, ids.data(), sc.data()), std::invalid_argument);
    bad = r;
    bad.allow = out_of_range.data();
    bad.n_allow = 1;
    TM_CHECK_THROWS(topk_inner_product(bad, ids.data(), sc.data()), std::invalid_argument);
    std::vector<std::int64_t> indptr{0, 2, 1};
    std::vector<std::int32_t> indices{1, 0};
    bad = r;
    bad.exclude_indptr = indptr.data();
    bad.exclude_indices = indices.data();
    TM_CHECK_THROWS(topk_inner_product(bad, ids.data(), sc.data()), std::invalid_argument);
    indptr = {0, 2, 2};
    TM_CHECK_THROWS(topk_inner_product(bad, ids.data(), sc.data()), std::invalid_argument);  // row 0 unsorted
}

TM_TEST(topk_finite_absmax_every_path) {
    std::mt19937 rng(3);
    std::normal_distribution<float> g;
    for (int n : {0, 1, 15, 16, 17, 31, 32, 33, 100}) {
        std::vector<float> x(n);
        for (auto& v : x) v = g(rng);
        float want = 0;
        for (float v : x) want = std::max(want, std::fabs(v));
        for (simd::Isa isa : simd::available()) {
            TM_CHECK(topk_kernels(isa).finite_absmax(x.data(), n) == want);
            for (int pos = 0; pos < n; pos += 7) {
                std::vector<float> y(x);
                y[pos] = std::numeric_limits<float>::quiet_NaN();
                TM_CHECK(std::isinf(topk_kernels(isa).finite_absmax(y.data(), n)));
                y[pos] = -std::numeric_limits<float>::infinity();
                TM_CHECK(std::isinf(topk_kernels(isa).finite_absmax(y.data(), n)));
            }
        }
    }
}

TM_TEST(topk_pack_panel_layout_every_path) {
    std::mt19937 rng(5);
    std::normal_distribution<float> g;
    for (int dim : {1, 5, 16, 17, 64, 70}) {
        const int n = 50;
        std::vector<float> items(std::size_t(n) * dim);
        for (auto& v : items) v = g(rng);
        std::vector<std::int32_t> ids(n);
        for (int i = 0; i < n; ++i) ids[i] = (i * 7) % n;
        for (simd::Isa isa : simd::available()) {
            const TopkKernels& k = topk_kernels(isa);
            if (k.pack_panel == nullptr) continue;
            for (int count : {1, 16, 19, 32}) {
                std::vector<float> dst(std::size_t(dim) * kTopkPanel, 9.0f);
                const std::int32_t* use_ids = count % 2 ? ids.data() : nullptr;
                k.pack_panel(items.data(), use_ids, 3, count, dim, dst.data());
                bool ok = true;
                for (int d = 0; d < dim; ++d)
                    for (int j = 0; j < kTopkPanel; ++j) {
                        const int row = use_ids ? ids[3 + j] : 3 + j;
                        const float want = j < count ? items[std::size_t(row) * dim + d] : 0.0f;
                        ok = ok && dst[std::size_t(d) * kTopkPanel + j] == want;
                    }
                TM_CHECK(ok);
            }
        }
    }
}

TM_TEST(topk_panel_scores_bit_identical_every_path) {
    // Random floats (inexact products): every path must round exactly like the scalar
    // one, i.e. one fma per factor in factor order, for every tile shape and tail.
    std::mt19937 rng(11);
    std::normal_distribution<float> g;
    const TopkKernels& ref = topk_kernels(simd::Isa::Scalar);
    for (int dim : {1, 3, 8, 17, 64, 70})
        for (int m : {1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 47, 48, 100, 192, kTopkMaxBlock}) {
            const std::int64_t ldq = dim + 3;  // rows not contiguous
            std::vector<float> q(std::size_t(m) * ldq), panel(std::size_t(dim) * kTopkPanel), thr(m);
            for (auto& v : q) v = g(rng);
            for (auto& v : panel) v = g(rng);
            for (auto& v : thr) v = g(rng) * std::sqrt(float(dim));
            std::vector<float> want(std::size_t(m) * kTopkPanel);
            std::vector<std::uint32_t> want_masks(m);
            ref.panel_scores(q.data(), ldq, m, dim, panel.data(), thr.data(), want.data(), want_masks.data());
            for (simd::Isa isa : simd::available()) {
                std::vector<float> got(want.size(), 7.0f);
                std::vector<std::uint32_t> masks(m, 0xDEADBEEFu);
                topk_kernels(isa).panel_scores(q.data(), ldq, m, dim, panel.data(), thr.data(), got.data(),
                                               masks.data());
                TM_CHECK(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0);
                TM_CHECK(masks == want_masks);
            }
        }
}

TM_TEST(topk_self_join_matches_the_general_scan) {
    // queries == items with each row excluding itself takes the symmetric path; a copy
    // of the queries (another pointer) takes the general one.  Ids and score bits agree,
    // ties included (small integers make many), on every path and thread count.
    const simd::Isa before = simd::active();
    std::mt19937 rng(17);
    std::normal_distribution<float> g;
    std::uniform_int_distribution<int> small(-2, 2);
    for (int n : {16, 33, 100, 257, 700})
        for (int d : {5, 64})
            for (int k : {1, 5, 40, 800})
                for (bool with_deny : {false, true}) {
                std::vector<float> x(std::size_t(n) * d);
                for (auto& v : x) v = d == 5 ? float(small(rng)) : g(rng);
                std::vector<float> copy(x);
                std::vector<std::int64_t> indptr(n + 1);
                std::vector<std::int32_t> self(n);
                for (int i = 0; i <= n; ++i) indptr[i] = i;
                for (int i = 0; i < n; ++i) self[i] = i;
                TopkRequest r;
                r.queries = copy.data();
                r.n_queries = n;
                r.items = x.data();
                r.n_items = n;
                r.dim = d;
                r.k = k;
                r.exclude_indptr = indptr.data();
                r.exclude_indices = self.data();
                std::vector<std::int32_t> deny;  // e.g. the zero vectors similar_items denies
                for (int i = 3; with_deny && i < n; i += 7) deny.push_back(i);
                r.deny = deny.data();
                r.n_deny = static_cast<std::int64_t>(deny.size());
                r.num_threads = 1;
                simd::set_active(simd::Isa::Scalar);
                std::vector<std::int32_t> want_ids(std::size_t(n) * k);
                std::vector<float> want_sc(want_ids.size());
                topk_inner_product(r, want_ids.data(), want_sc.data());
                r.queries = x.data();
                // with a long deny-list only packed items keep the symmetric path (a model
                // passes its cached PackedItems)
                const PackedItems packed(x.data(), n, d);
                for (const PackedItems* pk : {static_cast<const PackedItems*>(nullptr), &packed})
                    for (simd::Isa isa : simd::available())
                        for (int threads : {1, 2, 3}) {
                            simd::set_active(isa);
                            r.num_threads = threads;
                            r.packed = pk;
                            std::vector<std::int32_t> ids(want_ids.size(), 7);
                            std::vector<float> sc(want_sc.size(), 7.0f);
                            topk_inner_product(r, ids.data(), sc.data());
                            TM_CHECK(ids == want_ids);
                            TM_CHECK(std::memcmp(sc.data(), want_sc.data(), sc.size() * sizeof(float)) == 0);
                        }
                }
    simd::set_active(before);
}

TM_TEST(topk_query_scores_bit_identical_to_panel_scores_every_path) {
    // The single-query kernel scores several panels at a time; every path and every
    // group tail must round exactly like panel_scores (and the scalar reference).
    std::mt19937 rng(23);
    std::normal_distribution<float> g;
    const TopkKernels& ref = topk_kernels(simd::Isa::Scalar);
    for (int dim : {1, 3, 16, 64, 70})
        for (int n_panels : {1, 2, 3, 4, 5, 7, 8, 16}) {
            const std::int64_t ps = std::int64_t(dim) * kTopkPanel;
            std::vector<float> q(dim), panels(std::size_t(n_panels) * ps);
            for (auto& v : q) v = g(rng);
            for (auto& v : panels) v = g(rng);
            const float thr = g(rng);
            std::vector<float> want(std::size_t(n_panels) * kTopkPanel);
            std::vector<std::uint32_t> want_masks(n_panels);
            for (int p = 0; p < n_panels; ++p)
                ref.panel_scores(q.data(), dim, 1, dim, panels.data() + p * ps, &thr, want.data() + p * kTopkPanel,
                                 want_masks.data() + p);
            for (simd::Isa isa : simd::available()) {
                const TopkKernels& k = topk_kernels(isa);
                TM_CHECK(k.query_scores != nullptr);
                if (k.query_scores == nullptr) continue;
                std::vector<float> got(want.size(), 7.0f);
                std::vector<std::uint32_t> masks(n_panels, 0xDEADBEEFu);
                k.query_scores(q.data(), dim, panels.data(), n_panels, thr, got.data(), masks.data());
                TM_CHECK(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0);
                TM_CHECK(masks == want_masks);
            }
        }
}

TM_TEST(topk_packed_items_give_identical_results_every_path) {
    // A PackedItems (built once, as a model caches it) must change nothing: single
    // queries (the service path) and batches, with exclusions, deny and allow lists,
    // on every path and thread count, against the unpacked call on the scalar path.
    const simd::Isa before = simd::active();
    std::mt19937 rng(29);
    std::normal_distribution<float> g;
    for (int ni : {1, 31, 33, 100, 700})
        for (int nq : {1, 2, 5, 40})
            for (int flags = 0; flags < 4; ++flags) {
                const int d = 24, k = 7;
                Problem p = make_problem(rng(), nq, ni, d, k, flags & 1, flags & 2);
                for (auto& v : p.q) v = g(rng);  // inexact scores: rounding must agree too
                for (auto& v : p.items) v = g(rng);
                TopkRequest r;
                r.queries = p.q.data();
                r.n_queries = nq;
                r.items = p.items.data();
                r.n_items = ni;
                r.dim = d;
                r.k = k;
                r.exclude_indptr = p.indptr.data();
                r.exclude_indices = p.indices.data();
                static const std::int32_t none = 0;
                if (flags & 1) {
                    r.allow = p.allow.empty() ? &none : p.allow.data();
                    r.n_allow = static_cast<std::int64_t>(p.allow.size());
                }
                r.deny = p.deny.data();
                r.n_deny = static_cast<std::int64_t>(p.deny.size());
                r.num_threads = 1;
                simd::set_active(simd::Isa::Scalar);
                std::vector<std::int32_t> want_ids(std::size_t(nq) * k);
                std::vector<float> want_sc(want_ids.size());
                topk_inner_product(r, want_ids.data(), want_sc.data());
                const PackedItems packed(p.items.data(), ni, d, 2);
                TM_CHECK(packed.n_items() == ni && packed.dim() == d);
                TM_CHECK(packed.n_panels() == (ni + kTopkPanel - 1) / kTopkPanel);
                r.packed = &packed;
                for (simd::Isa isa : simd::available())
                    for (int threads : {1, 2}) {
                        simd::set_active(isa);
                        r.num_threads = threads;
                        std::vector<std::int32_t> ids(want_ids.size(), 7);
                        std::vector<float> sc(want_sc.size(), 7.0f);
                        topk_inner_product(r, ids.data(), sc.data());
                        TM_CHECK(ids == want_ids);
                        TM_CHECK(std::memcmp(sc.data(), want_sc.data(), sc.size() * sizeof(float)) == 0);
                    }
            }
    simd::set_active(before);
}

TM_TEST(topk_packed_items_layout_and_errors) {
    std::vector<float> items{1, 2, 3, 4, 5, 6};  // 3 items x 2
    const PackedItems packed(items.data(), 3, 2);
    TM_CHECK(packed.absmax() == 6.0f);
    TM_CHECK(packed.bytes() == 2 * kTopkPanel * sizeof(float));
    const float* p = packed.panel(0);
    TM_CHECK(p[0] == 1 && p[1] == 3 && p[2] == 5 && p[3] == 0);  // factor 0 of items 0..3
    TM_CHECK(p[kTopkPanel] == 2 && p[kTopkPanel + 2] == 6 && p[kTopkPanel + 31] == 0);
    TM_CHECK(reinterpret_cast<std::uintptr_t>(p) % 64 == 0);
    items[4] = std::numeric_limits<float>::quiet_NaN();
    TM_CHECK_THROWS(PackedItems(items.data(), 3, 2), std::invalid_argument);
    TM_CHECK_THROWS(PackedItems(items.data(), 3, 0), std::invalid_argument);
    TM_CHECK_THROWS(PackedItems(items.data(), -1, 2), std::invalid_argument);
    TM_CHECK_THROWS(PackedItems(nullptr, 3, 2), std::invalid_argument);
    const PackedItems empty(nullptr, 0, 4);
    TM_CHECK(empty.n_panels() == 0);
    // a PackedItems of other items is refused
    std::vector<float> q(2, 1.0f);
    std::vector<std::int32_t> ids(1);
    std::vector<float> sc(1);
    items[4] = 5.0f;
    TopkRequest r;
    r.queries = q.data();
    r.n_queries = 1;
    r.items = items.data();
    r.n_items = 2;
    r.dim = 2;
    r.k = 1;
    r.packed = &packed;
    TM_CHECK_THROWS(topk_inner_product(r, ids.data(), sc.data()), std::invalid_argument);
    r.n_items = 3;
    topk_inner_product(r, ids.data(), sc.data());
    TM_CHECK(ids[0] == 2 && sc[0] == 11.0f);
}

TM_TEST(topk_every_path_has_every_kernel) {
    // A null entry would silently turn a feature off on one path (as the AVX-512
    // self-join once was): every path the CPU runs must have them all.
    for (simd::Isa isa : simd::available()) {
        const TopkKernels& k = topk_kernels(isa);
        TM_CHECK(k.panel_scores != nullptr);
        TM_CHECK(k.finite_absmax != nullptr);
        TM_CHECK(k.column_masks != nullptr);
        TM_CHECK(k.query_scores != nullptr);
        TM_CHECK(k.query_block >= 1 && k.query_block <= kTopkMaxBlock);
    }
}
