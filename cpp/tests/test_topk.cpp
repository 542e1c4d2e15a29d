#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
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

// The shared fixture.  A Problem holds a request's arrays; request() views them as a
// TopkRequest; run() executes one; expect_on_every_path() runs it on every SIMD path the
// CPU has (active path restored afterwards, also on a failure) and every thread count
// given, fails if a path's own kernel table misses an entry, and compares ids and score
// bits with the expected result.
struct Problem {
    int nq = 0, ni = 0, d = 0, k = 0;
    std::vector<float> q, items;
    std::vector<std::int64_t> indptr{0};
    std::vector<std::int32_t> indices, allow, deny;
    bool use_allow = false;

    TopkRequest request() const {
        static const std::int32_t none = 0;  // an empty allow-list: non-null, length 0
        TopkRequest r;
        r.queries = q.data();
        r.n_queries = nq;
        r.items = items.data();
        r.n_items = ni;
        r.dim = d;
        r.k = k;
        r.exclude_indptr = indptr.data();
        r.exclude_indices = indices.data();
        if (use_allow) {
            r.allow = allow.empty() ? &none : allow.data();
            r.n_allow = static_cast<std::int64_t>(allow.size());
        }
        r.deny = deny.data();
        r.n_deny = static_cast<std::int64_t>(deny.size());
        return r;
    }
};

// Small integers (exact scores, many ties) or, with `normal`, random floats (inexact
// products: the rounding must agree too); each query has seen ~30% of the items.
Problem make_problem(unsigned seed, int nq, int ni, int d, int k, bool with_allow, bool with_deny,
                     bool normal = false) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> small(-2, 2);
    std::normal_distribution<float> g;
    Problem p;
    p.nq = nq, p.ni = ni, p.d = d, p.k = k, p.use_allow = with_allow;
    for (int i = 0; i < nq * d; ++i) p.q.push_back(normal ? g(rng) : float(small(rng)));
    for (int i = 0; i < ni * d; ++i) p.items.push_back(normal ? g(rng) : float(small(rng)));
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

struct Result {
    std::vector<std::int32_t> ids;
    std::vector<float> scores;
};

// One call, outputs pre-filled with garbage (every slot must be written).
Result run(const TopkRequest& r) {
    Result out{std::vector<std::int32_t>(std::size_t(r.n_queries) * r.k, 7),
               std::vector<float>(std::size_t(r.n_queries) * r.k, 7.0f)};
    topk_inner_product(r, out.ids.data(), out.scores.data());
    return out;
}

// The reference: the scalar path on one thread.
Result run_scalar(TopkRequest r) {
    tmtest::ActiveIsa scalar(simd::Isa::Scalar);
    r.num_threads = 1;
    return run(r);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// fn(kernels of the path) on every SIMD path this CPU has, that path active; fails when
// the path's own table lacks an entry (a feature silently borrowed or missing).
template <class Fn>
void for_each_path(Fn&& fn) {
    tmtest::for_each_isa([&](simd::Isa isa) {
        tmtest::check_table("topk", topk_kernels_dispatch(), isa, true);
        fn(topk_kernels(isa));
    });
}

void expect_on_every_path(TopkRequest r, const Result& want, std::initializer_list<int> threads) {
    for_each_path([&](const TopkKernels&) {
        for (int t : threads) {
            r.num_threads = t;
            const Result got = run(r);
            TM_CHECK(got.ids == want.ids);
            TM_CHECK(same_bits(got.scores, want.scores));
        }
    });
}

// Brute force: (score desc, id asc), padded with -1 / -inf.
Result brute(const Problem& p) {
    Result out{std::vector<std::int32_t>(std::size_t(p.nq) * p.k, -1),
               std::vector<float>(std::size_t(p.nq) * p.k, -std::numeric_limits<float>::infinity())};
    std::vector<std::int32_t> deny = p.deny;
    std::sort(deny.begin(), deny.end());
    for (int u = 0; u < p.nq; ++u) {
        std::vector<std::pair<float, int>> c;
        for (int i = 0; i < p.ni; ++i) {
            if (p.use_allow && !std::binary_search(p.allow.begin(), p.allow.end(), i)) continue;
            if (std::binary_search(deny.begin(), deny.end(), i)) continue;
            if (std::binary_search(p.indices.begin() + p.indptr[u], p.indices.begin() + p.indptr[u + 1], i)) continue;
            float s = 0;  // the contract's rounding: one fma per factor, in factor order
            for (int k = 0; k < p.d; ++k) s = std::fma(p.q[u * p.d + k], p.items[i * p.d + k], s);
            c.push_back({-s, i});
        }
        std::sort(c.begin(), c.end());
        for (int j = 0; j < p.k && j < int(c.size()); ++j) {
            out.ids[u * p.k + j] = c[j].second;
            out.scores[u * p.k + j] = -c[j].first;
        }
    }
    return out;
}

}  // namespace

TM_TEST(topk_matches_brute_force_on_every_path_and_thread_count) {
    unsigned seed = 1;
    for (int nq : {1, 3, 16, 50, 1700})  // 1700: several full 192-query blocks and a tail
        for (int ni : {0, 1, 31, 32, 33, 100})
            for (int k : {1, 5, 40})
                for (int flags = 0; flags < 4; ++flags) {
                    const Problem p = make_problem(seed++, nq, ni, 5, k, flags & 1, flags & 2);
                    expect_on_every_path(p.request(), brute(p), {1, 2});
                }
}

TM_TEST(topk_many_panels_match_brute_force_every_path) {
    // 2100 items: the scan's chunks of 1, 2, 4, ... panels (bars raised between them) and a
    // partial last panel; random floats, so bars move at almost every chunk.
    unsigned seed = 101;
    for (int nq : {13, 400})
        for (int k : {1, 10})
            for (int flags = 0; flags < 4; ++flags) {
                const Problem p = make_problem(seed++, nq, 2100, 8, k, flags & 1, flags & 2, true);
                expect_on_every_path(p.request(), brute(p), {1, 2});
            }
}

TM_TEST(topk_seeded_bars_keep_ties_and_exclusions_every_path) {
    // A block's first chunk (up to 32 panels) seeds each query's bar from its column
    // maxima when k <= 16: small integer scores (many ties at the seed's bound), seen
    // items, allow- and deny-lists, a catalog of one partial chunk (40 items) and of
    // several (2100), k at the seed's limit (16) and past it (17).
    unsigned seed = 301;
    for (int ni : {40, 2100})
        for (int k : {1, 10, 16, 17})
            for (int flags = 0; flags < 4; ++flags) {
                Problem p = make_problem(seed++, 230, ni, 3, k, flags & 1, flags & 2);
                // ids outside [0, n_items) in the exclusion rows are ignored
                std::vector<std::int32_t> indices;
                std::vector<std::int64_t> indptr{0};
                for (int u = 0; u < p.nq; ++u) {
                    if (u % 3 == 0) indices.push_back(-5);
                    indices.insert(indices.end(), p.indices.begin() + p.indptr[u], p.indices.begin() + p.indptr[u + 1]);
                    if (u % 4 == 0) indices.push_back(ni + 3);
                    indptr.push_back(static_cast<std::int64_t>(indices.size()));
                }
                p.indices = indices;
                p.indptr = indptr;
                expect_on_every_path(p.request(), brute(p), {1, 2});
            }
}

TM_TEST(topk_column_max_and_row_masks_every_path) {
    std::mt19937 rng(17);
    std::normal_distribution<float> g;
    const float ninf = -std::numeric_limits<float>::infinity();
    for (int rows : {1, 2, 5, 32})
        for (std::int64_t stride : {std::int64_t{kTopkPanel}, std::int64_t{3 * kTopkPanel}}) {
            std::vector<float> s(std::size_t(rows) * stride);
            for (auto& v : s) v = g(rng);
            for (std::size_t i = 0; i < s.size(); i += 7) s[i] = ninf;  // ineligible columns
            std::vector<float> want(kTopkPanel, ninf);
            std::vector<const float*> ptr(rows);  // rows in reverse order: any row addresses
            for (int r = 0; r < rows; ++r) {
                ptr[rows - 1 - r] = s.data() + r * stride;
                for (int j = 0; j < kTopkPanel; ++j) want[j] = std::max(want[j], s[r * stride + j]);
            }
            const float thr = 0.5f;
            for_each_path([&](const TopkKernels& kern) {
                std::vector<float> got(kTopkPanel, 7.0f);
                kern.column_max(ptr.data(), rows, got.data());
                TM_CHECK(same_bits(got, want));
                std::vector<std::uint32_t> masks(rows, 0xDEADBEEFu);
                kern.row_masks(ptr.data(), rows, thr, masks.data());
                for (int r = 0; r < rows; ++r)
                    for (int j = 0; j < kTopkPanel; ++j)
                        TM_CHECK(((masks[r] >> j) & 1u) == (ptr[r][j] > thr ? 1u : 0u));
            });
        }
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
    for (int n : {0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100}) {
        std::vector<float> x(n);
        for (auto& v : x) v = g(rng);
        float want = 0;
        for (float v : x) want = std::max(want, std::fabs(v));
        for_each_path([&](const TopkKernels& kern) {
            TM_CHECK(kern.finite_absmax(x.data(), n) == want);
            for (int pos = 0; pos < n; pos += 3) {
                std::vector<float> y(x);
                for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                                  -std::numeric_limits<float>::infinity()}) {
                    y[pos] = bad;
                    TM_CHECK(std::isinf(kern.finite_absmax(y.data(), n)));
                }
                y[pos] = -std::numeric_limits<float>::max();  // finite: the largest magnitude
                TM_CHECK(kern.finite_absmax(y.data(), n) == std::numeric_limits<float>::max());
            }
        });
    }
}

TM_TEST(topk_pack_panel_layout_every_path) {
    std::mt19937 rng(5);
    std::normal_distribution<float> g;
    for (int dim : {1, 5, 8, 16, 17, 64, 70}) {
        const int n = 50;
        std::vector<float> items(std::size_t(n) * dim);
        for (auto& v : items) v = g(rng);
        std::vector<std::int32_t> ids(n);
        for (int i = 0; i < n; ++i) ids[i] = (i * 7) % n;
        for_each_path([&](const TopkKernels& kern) {
            for (int count : {1, 7, 8, 16, 19, 32}) {
                std::vector<float> dst(std::size_t(dim) * kTopkPanel, 9.0f);
                const std::int32_t* use_ids = count % 2 ? ids.data() : nullptr;
                kern.pack_panel(items.data(), use_ids, 3, count, dim, dst.data());
                bool ok = true;
                for (int d = 0; d < dim; ++d)
                    for (int j = 0; j < kTopkPanel; ++j) {
                        const int row = use_ids ? ids[3 + j] : 3 + j;
                        const float want = j < count ? items[std::size_t(row) * dim + d] : 0.0f;
                        ok = ok && dst[std::size_t(d) * kTopkPanel + j] == want;
                    }
                TM_CHECK(ok);
            }
        });
    }
}

TM_TEST(topk_panel_scores_and_self_scores_bit_identical_every_path) {
    // Random floats (inexact products): every path must round exactly like the scalar
    // one, i.e. one fma per factor in factor order, for every tile shape and tail; and
    // self_scores must report exactly the rows with a score above either bar, in order,
    // with panel_scores' scores and both masks.
    std::mt19937 rng(11);
    std::normal_distribution<float> g;
    const TopkKernels& ref = topk_kernels(simd::Isa::Scalar);
    const float ninf = -std::numeric_limits<float>::infinity();
    for (int dim : {1, 3, 8, 17, 64, 70})
        for (int m : {1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 47, 48, 100, 192, kTopkMaxBlock})
            for (int bars : {0, 1, 2}) {  // random bars; most rows without a hit; -inf columns
                const std::int64_t ldq = dim + 3;  // rows not contiguous
                std::vector<float> q(std::size_t(m) * ldq), panel(std::size_t(dim) * kTopkPanel), thr(m);
                std::vector<float> col_thr(kTopkPanel);
                for (auto& v : q) v = g(rng);
                for (auto& v : panel) v = g(rng);
                const float lift = bars == 1 ? 3.5f : 0.0f;  // ~1 score in 4,000 passes a bar
                for (auto& v : thr) v = (g(rng) + lift) * std::sqrt(float(dim));
                for (auto& v : col_thr) v = (g(rng) + lift) * std::sqrt(float(dim));
                if (bars == 2)
                    for (int j = 0; j < kTopkPanel; j += 3) col_thr[j] = ninf;
                std::vector<float> want(std::size_t(m) * kTopkPanel);
                std::vector<std::uint32_t> want_masks(m);
                ref.panel_scores(q.data(), ldq, m, dim, panel.data(), thr.data(), want.data(), want_masks.data());
                std::vector<std::int32_t> want_rows;
                std::vector<std::uint32_t> want_r, want_c;
                for (int u = 0; u < m; ++u) {
                    std::uint32_t rb = 0, cb = 0;
                    for (int j = 0; j < kTopkPanel; ++j) {
                        const float sc = want[std::size_t(u) * kTopkPanel + j];
                        rb |= (sc > thr[u] ? 1u : 0u) << j;
                        cb |= (sc > col_thr[j] ? 1u : 0u) << j;
                    }
                    TM_CHECK(want_masks[u] == rb);  // the reference's masks are what they say
                    if (rb | cb) {
                        want_rows.push_back(u);
                        want_r.push_back(rb);
                        want_c.push_back(cb);
                    }
                }
                for_each_path([&](const TopkKernels& kern) {
                    std::vector<float> got(want.size(), 7.0f);
                    std::vector<std::uint32_t> masks(m, 0xDEADBEEFu);
                    kern.panel_scores(q.data(), ldq, m, dim, panel.data(), thr.data(), got.data(), masks.data());
                    TM_CHECK(same_bits(got, want));
                    TM_CHECK(masks == want_masks);
                    std::vector<float> hs(std::size_t(m) * kTopkPanel, 7.0f);
                    std::vector<std::int32_t> rows(m, -1);
                    std::vector<std::uint32_t> rm(m, 0xDEADBEEFu), cm(m, 0xDEADBEEFu);
                    const std::int64_t h = kern.self_scores(q.data(), ldq, m, dim, panel.data(), thr.data(),
                                                            col_thr.data(), hs.data(), rows.data(), rm.data(),
                                                            cm.data());
                    TM_CHECK(h == std::int64_t(want_rows.size()));
                    if (h != std::int64_t(want_rows.size())) return;
                    bool ok = true;
                    for (std::int64_t e = 0; e < h; ++e) {
                        ok = ok && rows[e] == want_rows[e] && rm[e] == want_r[e] && cm[e] == want_c[e];
                        ok = ok && std::memcmp(hs.data() + e * kTopkPanel,
                                               want.data() + std::size_t(want_rows[e]) * kTopkPanel,
                                               kTopkPanel * sizeof(float)) == 0;
                    }
                    TM_CHECK(ok);
                });
            }
}

TM_TEST(topk_block_scores_bit_identical_to_panel_scores_every_path) {
    // The scan's kernel: query groups x several panels, only the pairs with a passing score
    // reported.  The hits must be exactly panel_scores' (the scalar reference's) non-zero
    // masks, each with its bits and scores, each query's in ascending panel order (group
    // and tile tails, dims that make one-query groups, chunks of one and many panels).
    std::mt19937 rng(29);
    std::normal_distribution<float> g;
    const TopkKernels& ref = topk_kernels(simd::Isa::Scalar);
    for (int dim : {1, 5, 64, 70, 300})
        for (int m : {1, 3, 11, 12, 13, 61, 100, 192, kTopkMaxBlock})
            for (int n : {1, 2, 5, 32}) {
                const std::int64_t ldq = dim + 1;  // rows not contiguous
                const std::int64_t ps = std::int64_t(dim) * kTopkPanel;
                std::vector<float> q(std::size_t(m) * ldq), panels(std::size_t(n) * ps), thr(m);
                for (auto& v : q) v = g(rng);
                for (auto& v : panels) v = g(rng);
                // bars around the scores' spread: some rows pass nothing, some a few columns
                for (auto& v : thr) v = g(rng) * 1.5f * std::sqrt(float(dim));
                // want[u*n + i]: panel_scores' mask and scores of query u, panel i
                std::vector<float> want(std::size_t(m) * n * kTopkPanel);
                std::vector<std::uint32_t> want_masks(std::size_t(m) * n);
                std::vector<float> one(std::size_t(m) * kTopkPanel);
                std::vector<std::uint32_t> one_masks(m);
                for (int i = 0; i < n; ++i) {
                    ref.panel_scores(q.data(), ldq, m, dim, panels.data() + i * ps, thr.data(), one.data(),
                                     one_masks.data());
                    for (int u = 0; u < m; ++u) {
                        want_masks[std::size_t(u) * n + i] = one_masks[u];
                        std::memcpy(want.data() + (std::size_t(u) * n + i) * kTopkPanel,
                                    one.data() + std::size_t(u) * kTopkPanel, kTopkPanel * sizeof(float));
                    }
                }
                const std::size_t cap = std::size_t(m) * n + 1;
                for_each_path([&](const TopkKernels& kern) {
                    std::vector<float> got(cap * kTopkPanel, 7.0f);
                    std::vector<std::int32_t> rows(cap, -1);
                    std::vector<std::uint32_t> masks(cap, 0xDEADBEEFu);
                    const std::int64_t h = kern.block_scores(q.data(), ldq, m, dim, panels.data(), n, thr.data(),
                                                             got.data(), rows.data(), masks.data());
                    std::vector<std::uint32_t> seen(std::size_t(m) * n, 0);
                    std::vector<int> last(m, -1);
                    bool ok = h >= 0 && h <= std::int64_t(m) * n;
                    for (std::int64_t e = 0; ok && e < h; ++e) {
                        const std::int32_t w = rows[e];
                        ok &= w >= 0 && w < m * n && masks[e] != 0 && masks[e] == want_masks[w] && !seen[w];
                        if (!ok) break;
                        seen[w] = 1;
                        ok &= w % n > last[w / n];  // ascending panels per query
                        last[w / n] = w % n;
                        ok &= std::memcmp(got.data() + e * kTopkPanel, want.data() + std::size_t(w) * kTopkPanel,
                                          kTopkPanel * sizeof(float)) == 0;
                    }
                    for (std::size_t w = 0; ok && w < seen.size(); ++w) ok &= seen[w] == (want_masks[w] != 0);
                    TM_CHECK(ok);
                });
            }
}

TM_TEST(topk_self_join_matches_the_general_scan) {
    // queries == items with each row excluding itself takes the symmetric path; a copy
    // of the queries (another pointer) takes the general one.  Ids and score bits agree,
    // ties included (small integers and zero rows make many), on every path and thread
    // count, with and without the int8 pre-filter.
    std::mt19937 rng(17);
    for (int n : {16, 33, 100, 257, 700})
        for (int d : {1, 5, 64, 70})
            for (int k : {1, 5, 40, 800})
                if (n < 700 || (d == 64 && k < 800))
                for (bool with_deny : {false, true}) {
                    Problem p = make_problem(rng(), n, 0, d, k, false, false, d == 64);
                    p.ni = n;
                    p.items = p.q;  // queries: a copy, as another pointer
                    p.indices.resize(n);
                    for (int i = 0; i <= n; ++i) p.indptr[i] = i;  // each row excludes itself
                    for (int i = 0; i < n; ++i) p.indices[i] = i;
                    for (int i = 3; with_deny && i < n; i += 7) p.deny.push_back(i);  // e.g. zero rows
                    for (int i = 5; d == 70 && i < n; i += 9)  // zero rows that stay eligible: ties at 0
                        std::fill_n(p.items.begin() + std::size_t(i) * d, d, 0.0f);
                    p.q = p.items;
                    TopkRequest r = p.request();
                    const Result want = run_scalar(r);
                    r.queries = p.items.data();  // the same pointer: the symmetric path
                    // with a long deny-list only packed items keep the symmetric path (a
                    // model passes its cached PackedItems)
                    const PackedItems packed(p.items.data(), n, d);
                    // the float32 tile, the int8 pre-filter (on a copy made for the call, or
                    // on the caller's), and the path's choice
                    r.self_prefilter = 0;
                    expect_on_every_path(r, want, {1, 2, 3});
                    r.self_prefilter = 1;
                    expect_on_every_path(r, want, {1, 2, 3});
                    r.packed = &packed;
                    expect_on_every_path(r, want, {2});
                    r.self_prefilter = -1;
                    expect_on_every_path(r, want, {1});
                }
    // more factors than the int8 copy takes (kPrefilterMaxDim): the float32 tile, asked or not
    Problem p = make_problem(rng(), 40, 0, kPrefilterMaxDim + 1, 3, false, false, true);
    p.ni = p.nq;
    p.items = p.q;
    p.indices.resize(p.nq);
    for (int i = 0; i <= p.nq; ++i) p.indptr[i] = i;
    for (int i = 0; i < p.nq; ++i) p.indices[i] = i;
    TopkRequest r = p.request();
    const Result want = run_scalar(r);
    r.queries = p.items.data();
    r.self_prefilter = 1;
    expect_on_every_path(r, want, {1, 2});
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
            for_each_path([&](const TopkKernels& kern) {
                std::vector<float> got(want.size(), 7.0f);
                std::vector<std::uint32_t> masks(n_panels, 0xDEADBEEFu);
                kern.query_scores(q.data(), dim, panels.data(), n_panels, thr, got.data(), masks.data());
                TM_CHECK(same_bits(got, want));
                TM_CHECK(masks == want_masks);
            });
        }
}

TM_TEST(topk_packed_items_give_identical_results_every_path) {
    // A PackedItems (built once, as a model caches it) must change nothing: single
    // queries (the service path) and batches, with exclusions, deny and allow lists,
    // on every path and thread count, against the unpacked call on the scalar path.
    std::mt19937 rng(29);
    for (int ni : {1, 31, 33, 100, 700})
        for (int nq : {1, 2, 5, 40})
            for (int flags = 0; flags < 4; ++flags) {
                const int d = 24, k = 7;
                const Problem p = make_problem(rng(), nq, ni, d, k, flags & 1, flags & 2, true);
                TopkRequest r = p.request();
                const Result want = run_scalar(r);
                const PackedItems packed(p.items.data(), ni, d, 2);
                TM_CHECK(packed.n_items() == ni && packed.dim() == d);
                TM_CHECK(packed.n_panels() == (ni + kTopkPanel - 1) / kTopkPanel);
                r.packed = &packed;
                expect_on_every_path(r, want, {1, 2});
            }
}

// Item values in regimes that stress the pre-filter's bounds: ordinary normals, small
// integers (ties), per-item magnitudes from 1e-30 to 1e15 (zero rows and subnormal
// values included), values as large as the overflow check allows, duplicated rows.
std::vector<float> stress_items(std::mt19937& rng, int regime, int n, int d, float* qscale) {
    std::normal_distribution<float> g;
    std::uniform_int_distribution<int> small(-2, 2), expo(-100, 50);
    std::vector<float> y(std::size_t(n) * d);
    *qscale = 1.0f;
    for (int i = 0; i < n; ++i) {
        const float m = regime == 2 ? std::ldexp(1.0f, expo(rng)) : 1.0f;
        for (int k = 0; k < d; ++k) {
            float& v = y[std::size_t(i) * d + k];
            v = regime == 1 ? float(small(rng)) : g(rng) * m;
            if (regime == 2 && i % 7 == 0) v = 0.0f;  // zero rows
            if (regime == 2 && i % 11 == 0) v = std::ldexp(g(rng), -140);  // subnormals
            if (regime == 3) v = g(rng) * 1e18f;
        }
        if (regime == 4 && i % 3 != 0) std::copy_n(&y[std::size_t(i / 3 * 3) * d], d, &y[std::size_t(i) * d]);
    }
    if (regime == 3) *qscale = float(1e37 / (4.0 * d * 1e18 * 1e18));  // just inside kTopkScoreBound
    return y;
}

TM_TEST(topk_query_bounds_bit_identical_and_enclose_the_exact_score_every_path) {
    // The pre-filter's bounds: lo <= the exact path's score <= hi for every item, and
    // the same bits on every path (the scan's candidates must not depend on the path).
    std::mt19937 rng(31);
    std::normal_distribution<float> g;
    const TopkKernels& ref = topk_kernels(simd::Isa::Scalar);
    for (int regime = 0; regime < 5; ++regime)
        for (int dim : {1, 3, 16, 64, 70})
            for (int n_panels : {1, 2, 3, 5, 9}) {
                const int n = n_panels * kTopkPanel - (n_panels > 1 ? 5 : 0);
                float qscale;
                const std::vector<float> items = stress_items(rng, regime, n, dim, &qscale);
                const PackedItems packed(items.data(), n, dim, 1);
                TM_CHECK(packed.has_prefilter());
                TM_CHECK(packed.quads() == (dim + 3) / 4);
                TM_CHECK(packed.prefilter_bytes() == std::size_t(packed.n_panels()) * kTopkPanel * (4 * packed.quads() + 12));
                TM_CHECK(reinterpret_cast<std::uintptr_t>(packed.panel8(n_panels - 1)) % 64 == 0);
                for (int trial = 0; trial < 3; ++trial) {
                    std::vector<float> q(dim);
                    for (auto& v : q) v = (trial == 2 ? std::ldexp(g(rng), -120) : g(rng)) * qscale;
                    std::vector<std::int32_t> w(packed.quads());
                    PrefilterQuery pq;
                    TM_CHECK(prefilter_query(q.data(), dim, w.data(), pq));
                    std::vector<float> exact(std::size_t(n_panels) * kTopkPanel);
                    std::vector<std::uint32_t> m(n_panels);
                    ref.query_scores(q.data(), dim, packed.panel(0), n_panels, 0.0f, exact.data(), m.data());
                    std::vector<float> want_lo, want_hi;
                    std::vector<std::uint32_t> want_masks;
                    for_each_path([&](const TopkKernels& kern) {
                        std::vector<float> lo(exact.size(), 7.0f), hi(exact.size(), 7.0f);
                        std::vector<std::uint32_t> masks(n_panels, 0xDEADBEEFu);
                        kern.query_bounds(pq, packed.panel8(0), n_panels, packed.slack_floor(), exact[0], lo.data(),
                                          hi.data(), masks.data());
                        for (int i = 0; i < n; ++i) {
                            TM_CHECK(std::isfinite(lo[i]) && std::isfinite(hi[i]));
                            TM_CHECK(lo[i] <= exact[i] && exact[i] <= hi[i]);
                            TM_CHECK(bool(masks[i / kTopkPanel] >> (i % kTopkPanel) & 1u) == (hi[i] > exact[0]));
                        }
                        if (want_lo.empty()) {
                            want_lo = lo, want_hi = hi, want_masks = masks;
                        } else {
                            TM_CHECK(same_bits(lo, want_lo) && same_bits(hi, want_hi));
                            TM_CHECK(masks == want_masks);
                        }
                    });
                }
            }
}

TM_TEST(topk_int8_dot_products_exact_at_extreme_values_every_path) {
    // The pre-filter's integer dot products (Ops::dot4_u8 / dot8_u8: vpmaddubsw chains on
    // AVX2 and AVX-512, vpdpbusd on AVX-512 VNNI) against a plain integer sum, at the
    // extremes of their contract: item bytes 0..127 (0, 1, 63-65, 126, 127), query bytes
    // -64..64, whole panels of 127 x +-64, odd and even quad counts (dot8_u8 pairs, the
    // dot4_u8 tail).  A hand-made query with step 1 and no error terms makes query_bounds'
    // lo and hi the integer sum itself (exact in float: below 2^24).
    std::mt19937 rng(53);
    const int item_vals[] = {0, 1, 63, 64, 65, 126, 127};
    const int query_vals[] = {-64, -63, -1, 0, 1, 63, 64};
    auto pick = [&](const int* v) { return v[std::uniform_int_distribution<int>(0, 6)(rng)]; };
    for (int quads : {1, 2, 3, 4, 17, 18})
        for (int n_panels : {1, 2, 5})
            for (int pattern = 0; pattern < 4; ++pattern) {  // random; 127 x 64; 127 x -64; 0 x -64
                const std::size_t stride = std::size_t(kTopkPanel) * (4 * quads + 12);
                std::vector<std::uint8_t> panels(stride * n_panels + 64, 0);
                std::vector<std::int8_t> qb(4 * std::size_t(quads));
                for (auto& b : qb) b = static_cast<std::int8_t>(pattern == 0 ? pick(query_vals) : pattern == 1 ? 64 : -64);
                std::vector<std::int32_t> w(quads);
                std::memcpy(w.data(), qb.data(), qb.size());  // byte h of w[k] = factor 4k + h (little-endian)
                std::vector<float> want(std::size_t(n_panels) * kTopkPanel);
                for (int p = 0; p < n_panels; ++p) {
                    std::uint8_t* panel = panels.data() + stride * p;
                    for (int j = 0; j < kTopkPanel; ++j) {
                        std::int64_t sum = 0;
                        for (int k = 0; k < quads; ++k)
                            for (int h = 0; h < 4; ++h) {
                                const int v = pattern == 0 ? pick(item_vals) : pattern == 3 ? 0 : 127;
                                panel[std::size_t(k) * 4 * kTopkPanel + 4 * j + h] = static_cast<std::uint8_t>(v);
                                sum += std::int64_t(v) * qb[4 * k + h];
                            }
                        want[std::size_t(p) * kTopkPanel + j] = static_cast<float>(sum);
                    }
                    float* scale = reinterpret_cast<float*>(panel + std::size_t(quads) * 4 * kTopkPanel);
                    for (int j = 0; j < kTopkPanel; ++j) scale[j] = 1.0f, scale[kTopkPanel + j] = scale[2 * kTopkPanel + j] = 0.0f;
                }
                PrefilterQuery pq;
                pq.w = w.data();
                pq.quads = quads;
                pq.step = 1.0f;  // bias, l1, err: 0
                const float thr = want[want.size() / 2];
                for_each_path([&](const TopkKernels& kern) {
                    std::vector<float> lo(want.size(), 7.0f), hi(want.size(), 7.0f);
                    std::vector<std::uint32_t> masks(n_panels, 0xDEADBEEFu);
                    kern.query_bounds(pq, panels.data(), n_panels, 0.0f, thr, lo.data(), hi.data(), masks.data());
                    TM_CHECK(lo == want && hi == want);
                    for (std::size_t i = 0; i < want.size(); ++i)
                        TM_CHECK(bool(masks[i / kTopkPanel] >> (i % kTopkPanel) & 1u) == (want[i] > thr));
                });
            }
}

TM_TEST(topk_self_bounds_match_query_bounds_and_cover_every_hit_every_path) {
    // The self-join's pre-filter: m rows (prepared by prefilter_query, their int8 values
    // interleaved with stride ldw) x one int8 panel.  Bit j of row u must be set exactly
    // when query_bounds' upper bound of (row u, item j) -- the same bits -- is above
    // min(row bar, column bar), so that every exact score above either bar has its bit set;
    // the same masks on every path, for every tile and tail, dims 1-70, bars from -inf to
    // above every score, and the stress values (integers, zero and subnormal rows, huge
    // magnitudes, duplicates).
    std::mt19937 rng(43);
    std::normal_distribution<float> g;
    const TopkKernels& ref = topk_kernels(simd::Isa::Scalar);
    const float ninf = -std::numeric_limits<float>::infinity();
    for (int regime = 0; regime < 5; ++regime)
        for (int dim : {1, 3, 4, 7, 8, 16, 64, 70})
            for (int m : {1, 2, 3, 5, 12, 13, 25})
                for (int bars = 0; bars < 3; ++bars) {  // -inf; random near the scores; mixed
                    const int n = kTopkPanel + m;  // the panel's items, then the rows
                    float qscale;
                    std::vector<float> y = stress_items(rng, regime, n, dim, &qscale);
                    for (std::size_t e = std::size_t(kTopkPanel) * dim; e < y.size(); ++e) y[e] *= qscale;
                    const PackedItems packed(y.data(), kTopkPanel, dim, 1);
                    const int quads = packed.quads(), ldw = m + 2;
                    std::vector<PrefilterQuery> rows(m);
                    std::vector<std::int32_t> w(std::size_t(quads) * ldw, 7), one(quads);
                    std::vector<float> exact(std::size_t(m) * kTopkPanel), lo(kTopkPanel), hi(std::size_t(m) * kTopkPanel);
                    std::vector<std::uint32_t> mk(1);
                    for (int u = 0; u < m; ++u) {
                        const float* q = y.data() + std::size_t(kTopkPanel + u) * dim;
                        TM_CHECK(prefilter_query(q, dim, one.data(), rows[u]));
                        for (int k = 0; k < quads; ++k) w[std::size_t(k) * ldw + u] = one[k];
                        ref.query_scores(q, dim, packed.panel(0), 1, 0.0f, exact.data() + u * kTopkPanel, mk.data());
                        ref.query_bounds(rows[u], packed.panel8(0), 1, packed.slack_floor(), 0.0f, lo.data(),
                                         hi.data() + u * kTopkPanel, mk.data());
                        rows[u].w = nullptr;  // self_bounds reads the values from w
                    }
                    std::vector<float> rthr(m), cthr(kTopkPanel);
                    auto pick = [&](int e) {  // a bar among the exact scores, or -inf
                        if (bars == 0 || (bars == 2 && e % 3 == 0)) return ninf;
                        return exact[std::uniform_int_distribution<std::size_t>(0, exact.size() - 1)(rng)];
                    };
                    for (int u = 0; u < m; ++u) rthr[u] = pick(u);
                    for (int j = 0; j < kTopkPanel; ++j) cthr[j] = pick(j + 1);
                    std::vector<std::uint32_t> want(m, 0);
                    for (int u = 0; u < m; ++u)
                        for (int j = 0; j < kTopkPanel; ++j) {
                            const float h = hi[std::size_t(u) * kTopkPanel + j], b = std::min(rthr[u], cthr[j]);
                            want[u] |= (h > b ? 1u : 0u) << j;
                            TM_CHECK(!(exact[std::size_t(u) * kTopkPanel + j] > b) || h > b);  // covered
                        }
                    for_each_path([&](const TopkKernels& kern) {
                        std::vector<std::uint32_t> got(m, 0xDEADBEEFu);
                        kern.self_bounds(rows.data(), w.data(), ldw, m, packed.panel8(0), packed.slack_floor(),
                                         rthr.data(), cthr.data(), got.data());
                        TM_CHECK(got == want);
                    });
                }
}

TM_TEST(topk_pair_scores_bit_identical_every_path) {
    // Single pairs, scored as the pre-filter re-scores rows with few candidates: the
    // contract's rounding (one fma per factor in order, from 0), i.e. panel_scores' bits,
    // for every chain count and tail, on every path.
    std::mt19937 rng(47);
    std::normal_distribution<float> g;
    const TopkKernels& ref = topk_kernels(simd::Isa::Scalar);
    for (int dim : {1, 2, 7, 16, 64, 70}) {
        const int n = 40;
        std::vector<float> x(std::size_t(n) * dim);
        for (auto& v : x) v = g(rng);
        std::vector<float> panel(std::size_t(dim) * kTopkPanel), full(std::size_t(n) * kTopkPanel);
        std::vector<float> thr(n, 0.0f);
        std::vector<std::uint32_t> masks(n);
        ref.pack_panel(x.data(), nullptr, 0, kTopkPanel, dim, panel.data());  // rows 0..31 as columns
        ref.panel_scores(x.data(), dim, n, dim, panel.data(), thr.data(), full.data(), masks.data());
        for (int np : {0, 1, 5, 8, 9, 17, 31}) {
            std::vector<std::int32_t> a(np), b(np);
            std::vector<float> want(np);
            for (int e = 0; e < np; ++e) {
                a[e] = std::uniform_int_distribution<int>(0, n - 1)(rng);
                b[e] = std::uniform_int_distribution<int>(0, kTopkPanel - 1)(rng);
                want[e] = full[std::size_t(a[e]) * kTopkPanel + b[e]];
            }
            for_each_path([&](const TopkKernels& kern) {
                std::vector<float> got(np + 1, 7.0f);
                kern.pair_scores(x.data(), x.data(), dim, a.data(), b.data(), np, got.data());
                TM_CHECK(np == 0 || std::memcmp(got.data(), want.data(), sizeof(float) * np) == 0);
                TM_CHECK(got[np] == 7.0f);  // nothing written past n
                // rows of two matrices (the batch scan: users and items): the columns as
                // a copy of their own, at other row numbers
                std::vector<float> y(std::size_t(kTopkPanel + 3) * dim, 9.0f);
                std::copy(x.begin(), x.begin() + std::size_t(kTopkPanel) * dim, y.begin() + 3 * dim);
                std::vector<std::int32_t> b3(b);
                for (auto& v : b3) v += 3;
                std::fill(got.begin(), got.end(), 7.0f);
                kern.pair_scores(x.data(), y.data(), dim, a.data(), b3.data(), np, got.data());
                TM_CHECK(np == 0 || std::memcmp(got.data(), want.data(), sizeof(float) * np) == 0);
                TM_CHECK(got[np] == 7.0f);
            });
        }
    }
}

TM_TEST(topk_prefilter_query_quantises_within_its_stated_bounds) {
    // w holds the int8 values four to an int32 (byte h = factor 4m + h, 0 past dim, at
    // most kPrefilterQueryMax in magnitude); bias = kPrefilterItemBias sum qi; l1 >= ||q||_1 and err >=
    // max |q - step qi|.
    std::mt19937 rng(41);
    std::normal_distribution<float> g;
    for (int dim : {1, 2, 7, 64, 513, 4096})
        for (float scale : {1.0f, 1e-30f, 1e-44f, 1e30f}) {
            std::vector<float> q(dim);
            for (auto& v : q) v = g(rng) * scale;
            std::vector<std::int32_t> w((dim + 3) / 4, 7);
            PrefilterQuery pq;
            TM_CHECK(prefilter_query(q.data(), dim, w.data(), pq));
            TM_CHECK(pq.w == w.data() && pq.quads == (dim + 3) / 4);
            double l1 = 0, err = 0;
            std::int64_t sum_qi = 0;
            for (int k = 0; k < 4 * pq.quads; ++k) {
                const auto u = static_cast<std::uint32_t>(w[k / 4]);
                const int qi = static_cast<std::int8_t>(static_cast<std::uint8_t>(u >> (8 * (k % 4))));
                TM_CHECK(std::abs(qi) <= kPrefilterQueryMax);
                if (k >= dim) {
                    TM_CHECK(qi == 0);
                    continue;
                }
                l1 += std::fabs(double(q[k]));
                err = std::max(err, std::fabs(double(q[k]) - double(pq.step) * qi));
                sum_qi += qi;
            }
            TM_CHECK(pq.bias == kPrefilterItemBias * sum_qi);
            TM_CHECK(double(pq.l1) >= l1);
            TM_CHECK(double(pq.err) >= err);
        }
    std::vector<float> huge(8, 3e38f);  // terms that would not be finite floats: refused
    std::vector<std::int32_t> w(4);
    PrefilterQuery pq;
    TM_CHECK(!prefilter_query(huge.data(), 8, w.data(), pq));
}

TM_TEST(topk_prefiltered_single_query_equals_the_exact_scan_every_path) {
    // One query over packed items takes the int8 pre-filter and re-scores its candidates:
    // the result must be the exact scan's, ids and score bits, whatever the values (ties
    // at the k-th score, huge and tiny magnitudes, duplicated rows), exclusions and lists,
    // including more results asked than eligible items and every item seen.
    std::mt19937 rng(37);
    std::normal_distribution<float> g;
    for (int regime = 0; regime < 5; ++regime)
        for (int ni : {1024, 1500, 4100})
            for (int k : {1, 10, 60})
                for (int flags = 0; flags < 3; ++flags) {
                    const int d = regime == 1 ? 4 : 24;
                    Problem p = make_problem(rng(), 1, ni, d, k, false, flags == 1, true);
                    float qscale;
                    p.items = stress_items(rng, regime, ni, d, &qscale);
                    for (auto& v : p.q) v = regime == 1 ? std::round(v) : v * qscale;
                    if (flags == 2) {  // all but a few items seen
                        p.indices.clear();
                        for (int i = 0; i < ni; ++i)
                            if (i % 400 != 5) p.indices.push_back(i);
                        p.indptr = {0, std::int64_t(p.indices.size())};
                    }
                    TopkRequest r = p.request();
                    const Result want = run_scalar(r);
                    const PackedItems packed(p.items.data(), ni, d, 1);
                    r.packed = &packed;
                    expect_on_every_path(r, want, {1});
                }
}

TM_TEST(topk_prefiltered_batch_scan_equals_the_float32_scan_every_path) {
    // Many users over more panels than a block's first chunk: past it, the int8 copy
    // bounds every (user, item) pair and only pairs above a user's bar are scored exactly.
    // The result must be the float32 scan's, ids and score bits, on every path and thread
    // count, asked on (the caller's PackedItems, or one built for the call), off, or by
    // default: whatever the values (ties, zero rows, huge and tiny magnitudes, duplicated
    // items), seen items, deny lists and k (the seeded bars up to 16, growing chunks past).
    std::mt19937 rng(53);
    const int dims[] = {1, 2, 5, 16, 63, 64, 70};
    const int ks[] = {1, 10, 17, 50, 5, 33, 2};
    for (int t = 0; t < 7; ++t)
        for (int regime = 0; regime < 5; ++regime) {
            const int d = dims[t], k = ks[(t + regime) % 7];
            const int nq = regime == 0 ? 150 : 40, ni = 1100 + 37 * t;
            Problem p = make_problem(rng(), nq, ni, d, k, false, regime % 2 == 1, true);
            float qscale;
            p.items = stress_items(rng, regime, ni, d, &qscale);
            for (int u = 0; u < nq; ++u)
                for (int c = 0; c < d; ++c) {
                    float& v = p.q[std::size_t(u) * d + c];
                    v = regime == 1 ? std::round(v) : u % 13 == 4 ? 0.0f : v * qscale;  // ties; zero users
                }
            TopkRequest r = p.request();
            r.user_prefilter = 0;
            const Result want = run_scalar(r);
            const PackedItems packed(p.items.data(), ni, d, 1);
            r.user_prefilter = 1;
            expect_on_every_path(r, want, {1, 2, 3});
            r.packed = &packed;
            expect_on_every_path(r, want, {1, 3});
            r.user_prefilter = -1;
            expect_on_every_path(r, want, {2});
            r.user_prefilter = 1;
            if (regime == 0) {  // the work counters: most pairs bounded, few re-scored
                TopkStats st;
                r.stats = &st;
                r.num_threads = 2;
                run(r);
                TM_CHECK(st.bounded > 0 && st.bounded % kTopkPanel == 0);
                TM_CHECK(st.exact >= st.single + st.tile_rows * kTopkPanel);
                TM_CHECK(st.exact < std::int64_t(nq) * ni);
                r.stats = nullptr;
            }
        }
    // users whose pre-filter terms would not be finite (|q| near 1e37, items tiny): those
    // blocks stay on the float32 scan; and more factors than the int8 copy takes
    for (int d : {8, kPrefilterMaxDim + 1}) {
        const int ni = d == 8 ? 1500 : 100;
        Problem p = make_problem(rng(), 30, ni, d, 4, false, true, true);
        if (d == 8) {
            for (auto& v : p.q) v *= 1e36f;
            for (auto& v : p.items) v *= 1e-3f;
        }
        TopkRequest r = p.request();
        r.user_prefilter = 0;
        const Result want = run_scalar(r);
        r.user_prefilter = 1;
        expect_on_every_path(r, want, {1, 2});
    }
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
    // A null or borrowed entry would silently turn a feature off on one path (as the
    // AVX-512 self-join once was): for_each_path fails on one.
    for_each_path([](const TopkKernels& kern) {
        TM_CHECK(kern.query_block >= 1 && kern.query_block <= kTopkMaxBlock);
    });
}
