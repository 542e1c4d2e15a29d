#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "tastemaker/knn.hpp"
#include "testing.hpp"

using namespace tastemaker;

namespace {

struct Csr {
    std::int64_t n_rows = 0, n_cols = 0;
    std::vector<std::int64_t> indptr{0};
    std::vector<std::int32_t> indices;
    std::vector<float> data;
    CsrView view() const { return {indptr.data(), indices.data(), data.data(), n_rows, n_cols}; }
};

Csr from_dense(const std::vector<float>& d, std::int64_t r, std::int64_t c) {
    Csr m;
    m.n_rows = r;
    m.n_cols = c;
    for (std::int64_t i = 0; i < r; ++i) {
        for (std::int64_t j = 0; j < c; ++j)
            if (d[i * c + j] != 0) {
                m.indices.push_back(static_cast<std::int32_t>(j));
                m.data.push_back(d[i * c + j]);
            }
        m.indptr.push_back(static_cast<std::int64_t>(m.indices.size()));
    }
    return m;
}

std::vector<float> transpose(const std::vector<float>& d, std::int64_t r, std::int64_t c) {
    std::vector<float> t(d.size());
    for (std::int64_t i = 0; i < r; ++i)
        for (std::int64_t j = 0; j < c; ++j) t[j * r + i] = d[i * c + j];
    return t;
}

// Small integer ratings, so every co-occurrence sum is exact in float32.
std::vector<float> random_dense(unsigned seed, int r, int c, double density) {
    std::mt19937 rng(seed);
    std::bernoulli_distribution keep(density);
    std::uniform_int_distribution<int> val(1, 5);
    std::vector<float> d(static_cast<std::size_t>(r) * c, 0.0f);
    for (auto& x : d)
        if (keep(rng)) x = float(val(rng));
    return d;
}

}  // namespace

TM_TEST(knn_build_matches_brute_force) {
    for (unsigned seed = 1; seed <= 4; ++seed) {
        const int nu = 40, ni = 30, K = 5;
        const auto d = random_dense(seed, nu, ni, 0.2);
        const Csr W = from_dense(d, nu, ni), Wt = from_dense(transpose(d, nu, ni), ni, nu);
        for (KnnScore kind : {KnnScore::Dot, KnnScore::Jaccard}) {
            for (int threads : {1, 3}) {
                const KnnGraph g = knn_build(W.view(), Wt.view(), K, kind, threads);
                TM_CHECK(g.indptr.size() == std::size_t(ni + 1) && g.self.size() == std::size_t(ni));
                const auto& self = g.self;
                for (int i = 0; i < ni; ++i) {
                    std::vector<std::pair<float, int>> ref;
                    int n_i = 0;
                    for (int u = 0; u < nu; ++u) n_i += d[u * ni + i] != 0;
                    for (int j = 0; j < ni; ++j) {
                        float s = 0;
                        int c = 0, n_j = 0;
                        for (int u = 0; u < nu; ++u) {
                            s += d[u * ni + i] * d[u * ni + j];
                            c += (d[u * ni + i] != 0) && (d[u * ni + j] != 0);
                            n_j += d[u * ni + j] != 0;
                        }
                        if (kind == KnnScore::Jaccard) s = c ? float(c) / float(n_i + n_j - c) : 0.0f;
                        if (j == i) {
                            TM_CHECK_NEAR(self[i], kind == KnnScore::Jaccard ? (n_i ? 1.0 : 0.0) : s, 1e-6);
                            continue;
                        }
                        if (s > 0) ref.push_back({-s, j});
                    }
                    std::sort(ref.begin(), ref.end());
                    const int m = std::min<int>(K, static_cast<int>(ref.size()));
                    TM_CHECK(g.indptr[i + 1] - g.indptr[i] == m);
                    std::vector<std::pair<float, int>> got;  // the row's order is unspecified
                    for (auto t = g.indptr[i]; t < g.indptr[i + 1]; ++t) got.push_back({-g.data[t], g.indices[t]});
                    if (int(got.size()) != m) continue;
                    std::sort(got.begin(), got.end());
                    for (int t = 0; t < m; ++t) {
                        TM_CHECK(got[t].second == ref[t].second);
                        TM_CHECK_NEAR(-got[t].first, -ref[t].first, 1e-6);
                    }
                }
            }
        }
    }
}

// Rows with hundreds of candidates go through the build's running threshold (its buffer
// holds max(4K, 256) keys): the kept neighbours must still be exactly the K best.
TM_TEST(knn_build_long_rows_match_brute_force) {
    const int nu = 40, ni = 700;
    const auto d = random_dense(7, nu, ni, 0.3);
    const Csr W = from_dense(d, nu, ni), Wt = from_dense(transpose(d, nu, ni), ni, nu);
    std::vector<float> S(static_cast<std::size_t>(ni) * ni, 0.0f);  // exact: small integers
    for (int u = 0; u < nu; ++u)
        for (int i = 0; i < ni; ++i)
            if (d[u * ni + i] != 0)
                for (int j = 0; j < ni; ++j) S[i * ni + j] += d[u * ni + i] * d[u * ni + j];
    for (int K : {1, 3, 70}) {
        const KnnGraph g = knn_build(W.view(), Wt.view(), K, KnnScore::Dot, 2);
        for (int i = 0; i < ni; ++i) {
            std::vector<std::pair<float, int>> ref, got;
            for (int j = 0; j < ni; ++j)
                if (j != i && S[i * ni + j] > 0) ref.push_back({-S[i * ni + j], j});
            std::sort(ref.begin(), ref.end());
            ref.resize(std::min<std::size_t>(ref.size(), static_cast<std::size_t>(K)));
            for (auto t = g.indptr[i]; t < g.indptr[i + 1]; ++t) got.push_back({-g.data[t], g.indices[t]});
            std::sort(got.begin(), got.end());
            TM_CHECK(got == ref);
        }
    }
}

// Sparse rows list an item when its running sum is 0: with signed values a sum can
// cancel to exactly 0 and grow again, listing the item twice.  It must appear once,
// with its full sum; ties at the cut go to the lower id.
TM_TEST(knn_build_sum_that_cancels_and_ties) {
    // users x items; item 0's users 0-2 give item 1 the partial sums 1, 0, 2
    const int nu = 3, ni = 40;
    std::vector<float> d(nu * ni, 0.0f);
    d[0 * ni + 0] = d[1 * ni + 0] = d[2 * ni + 0] = 1.0f;
    d[0 * ni + 1] = 1.0f;
    d[1 * ni + 1] = -1.0f;
    d[2 * ni + 1] = 2.0f;
    d[0 * ni + 2] = 1.0f;  // items 2 and 3 tie with s = 1 against item 0
    d[2 * ni + 3] = 1.0f;
    const Csr W = from_dense(d, nu, ni), Wt = from_dense(transpose(d, nu, ni), ni, nu);
    for (int threads : {1, 2}) {
        const KnnGraph g = knn_build(W.view(), Wt.view(), 2, KnnScore::Dot, threads);
        std::vector<std::pair<float, int>> row0;
        for (auto t = g.indptr[0]; t < g.indptr[1]; ++t) row0.push_back({-g.data[t], g.indices[t]});
        std::sort(row0.begin(), row0.end());
        TM_CHECK(row0.size() == 2u);
        TM_CHECK(row0[0].second == 1 && row0[0].first == -2.0f);
        TM_CHECK(row0[1].second == 2 && row0[1].first == -1.0f);
        TM_CHECK(g.self[0] == 3.0f && g.self[1] == 6.0f);
    }
}

TM_TEST(knn_recommend_matches_brute_force) {
    const int nu = 25, ni = 20, K = 6, k = 7;
    const auto d = random_dense(11, nu, ni, 0.25);
    const Csr W = from_dense(d, nu, ni), Wt = from_dense(transpose(d, nu, ni), ni, nu);
    const KnnGraph g = knn_build(W.view(), Wt.view(), K, KnnScore::Dot, 1);
    Csr N;
    N.n_rows = N.n_cols = ni;
    N.indptr = g.indptr;
    N.indices = g.indices;
    N.data = g.data;
    std::vector<float> dense_n(ni * ni, 0.0f);
    for (int i = 0; i < ni; ++i)
        for (auto t = g.indptr[i]; t < g.indptr[i + 1]; ++t) dense_n[i * ni + g.indices[t]] = g.data[t];
    const std::vector<std::int32_t> deny{3, 4}, allow{0, 1, 2, 3, 5, 8, 9, 10, 11, 12, 13, 19};
    for (bool use_allow : {false, true}) {
        for (bool exclude : {true, false}) {
            std::vector<std::int32_t> ids(nu * k);
            std::vector<float> sc(nu * k);
            knn_recommend(N.view(), W.view(), exclude, use_allow ? allow.data() : nullptr,
                          use_allow ? static_cast<std::int64_t>(allow.size()) : 0, deny.data(),
                          static_cast<std::int64_t>(deny.size()), k, ids.data(), sc.data(), 2);
            for (int u = 0; u < nu; ++u) {
                std::vector<std::pair<float, int>> ref;
                for (int j = 0; j < ni; ++j) {
                    if (use_allow && std::find(allow.begin(), allow.end(), j) == allow.end()) continue;
                    if (std::find(deny.begin(), deny.end(), j) != deny.end()) continue;
                    if (exclude && d[u * ni + j] != 0) continue;
                    float s = 0;
                    for (int i = 0; i < ni; ++i) s += d[u * ni + i] * dense_n[i * ni + j];
                    ref.push_back({-s, j});
                }
                std::sort(ref.begin(), ref.end());
                for (int t = 0; t < k; ++t) {
                    if (t < static_cast<int>(ref.size())) {
                        TM_CHECK(ids[u * k + t] == ref[t].second);
                        TM_CHECK_NEAR(sc[u * k + t], -ref[t].first, 1e-3);
                    } else {
                        TM_CHECK(ids[u * k + t] == -1);
                        TM_CHECK(std::isinf(sc[u * k + t]) && sc[u * k + t] < 0);
                    }
                }
            }
        }
    }
}

// Both scoring paths (dense scan with skipped blocks, sparse touched list) on a catalog
// large enough for each: integer scores, so sums are exact and full of ties (the order is
// score descending, then id), and signed weights, so sums cancel to exactly 0 and come
// back (an item listed twice by the sparse path must still be returned once).
TM_TEST(knn_recommend_both_paths_match_brute_force) {
    const int ni = 300, nq = 80;
    std::mt19937 rng(7);
    Csr N;
    N.n_rows = N.n_cols = ni;
    std::vector<float> dense_n(static_cast<std::size_t>(ni) * ni, 0.0f);
    for (int i = 0; i < ni; ++i) {
        const int len = std::uniform_int_distribution<int>(0, 30)(rng);
        std::vector<std::int32_t> cols(ni);
        for (int j = 0; j < ni; ++j) cols[j] = j;
        std::shuffle(cols.begin(), cols.end(), rng);
        if (i == 6) {  // row 6 copies row 5, so a query with +1 on item 5 and -1 on 6 cancels
            for (auto t = N.indptr[5]; t < N.indptr[6]; ++t) {
                N.indices.push_back(N.indices[t]);
                N.data.push_back(N.data[t]);
                dense_n[6 * ni + N.indices[t]] = N.data[t];
            }
        } else {
            for (int t = 0; t < len; ++t) {  // unsorted, as knn_build leaves its rows
                const float v = float(std::uniform_int_distribution<int>(1, 3)(rng));
                N.indices.push_back(cols[t]);
                N.data.push_back(v);
                dense_n[static_cast<std::size_t>(i) * ni + cols[t]] = v;
            }
        }
        N.indptr.push_back(static_cast<std::int64_t>(N.indices.size()));
    }
    std::vector<float> q(static_cast<std::size_t>(nq) * ni, 0.0f);
    for (int u = 0; u < nq; ++u) {
        const double density = u % 4 == 0 ? 0.0 : (u % 2 ? 0.01 : 0.15);  // empty, sparse, dense
        std::bernoulli_distribution keep(density);
        for (int i = 0; i < ni; ++i)
            if (keep(rng)) q[static_cast<std::size_t>(u) * ni + i] = float(std::uniform_int_distribution<int>(-2, 2)(rng));
    }
    // the cancelling rows: +1 on item 5 and -1 on item 6 (the same list), then maybe more
    for (int u : {nq - 1, nq - 3}) {
        for (int i = 0; i < ni; ++i) q[static_cast<std::size_t>(u) * ni + i] = 0.0f;
        q[static_cast<std::size_t>(u) * ni + 5] = 1.0f;
        q[static_cast<std::size_t>(u) * ni + 6] = -1.0f;
    }
    q[static_cast<std::size_t>(nq - 3) * ni + 40] = 2.0f;
    const Csr R = from_dense(q, nq, ni);
    const std::vector<std::int32_t> deny{3, 77}, allow{0, 1, 2, 3, 9, 50, 51, 120, 200, 201, 299};
    for (int k : {1, 5, 40}) {
        for (bool use_allow : {false, true}) {
            for (bool exclude : {true, false}) {
                std::vector<std::int32_t> ids(static_cast<std::size_t>(nq) * k);
                std::vector<float> sc(static_cast<std::size_t>(nq) * k);
                knn_recommend(N.view(), R.view(), exclude, use_allow ? allow.data() : nullptr,
                              use_allow ? static_cast<std::int64_t>(allow.size()) : 0, deny.data(),
                              static_cast<std::int64_t>(deny.size()), k, ids.data(), sc.data(), 2);
                for (int u = 0; u < nq; ++u) {
                    std::vector<std::pair<float, int>> ref;
                    for (int j = 0; j < ni; ++j) {
                        if (use_allow && std::find(allow.begin(), allow.end(), j) == allow.end()) continue;
                        if (std::find(deny.begin(), deny.end(), j) != deny.end()) continue;
                        if (exclude && q[static_cast<std::size_t>(u) * ni + j] != 0) continue;
                        float s = 0;
                        for (int i = 0; i < ni; ++i)
                            s += q[static_cast<std::size_t>(u) * ni + i] * dense_n[static_cast<std::size_t>(i) * ni + j];
                        ref.push_back({-s, j});
                    }
                    std::sort(ref.begin(), ref.end());
                    for (int t = 0; t < k; ++t) {
                        const std::size_t at = static_cast<std::size_t>(u) * k + t;
                        if (t < static_cast<int>(ref.size())) {
                            TM_CHECK(ids[at] == ref[t].second);
                            TM_CHECK(sc[at] == -ref[t].first);
                        } else {
                            TM_CHECK(ids[at] == -1);
                        }
                    }
                }
            }
        }
    }
}

TM_TEST(item_gram_dense_matches_brute_force) {
    const int nu = 17, ni = 13;
    const auto d = random_dense(5, nu, ni, 0.3);
    const Csr W = from_dense(d, nu, ni), Wt = from_dense(transpose(d, nu, ni), ni, nu);
    std::vector<double> g(ni * ni, -7.0);
    item_gram_dense(W.view(), Wt.view(), 2.5, g.data(), 2);
    for (int i = 0; i < ni; ++i)
        for (int j = 0; j < ni; ++j) {
            double s = i == j ? 2.5 : 0.0;
            for (int u = 0; u < nu; ++u) s += double(d[u * ni + i]) * d[u * ni + j];
            TM_CHECK_NEAR(g[i * ni + j], s, 1e-9);
            TM_CHECK(g[i * ni + j] == g[j * ni + i]);
        }
}

TM_TEST(knn_rejects_bad_input) {
    const auto d = random_dense(2, 6, 5, 0.5);
    const Csr W = from_dense(d, 6, 5), Wt = from_dense(transpose(d, 6, 5), 5, 6);
    std::vector<std::int32_t> ids(50);
    std::vector<float> sc(50);
    TM_CHECK_THROWS(knn_build(W.view(), Wt.view(), 0, KnnScore::Dot), std::invalid_argument);
    TM_CHECK_THROWS(knn_build(W.view(), W.view(), 2, KnnScore::Dot), std::invalid_argument);
    Csr bad = W;
    bad.indices[0] = 99;
    TM_CHECK_THROWS(knn_build(bad.view(), Wt.view(), 2, KnnScore::Dot), std::invalid_argument);
    TM_CHECK_THROWS(knn_recommend(Wt.view(), W.view(), true, nullptr, 0, nullptr, 0, 2, ids.data(), sc.data()),
                    std::invalid_argument);  // neighbour matrix not square
    const std::int32_t out_of_range = 5;
    Csr sq = from_dense(std::vector<float>(25, 1.0f), 5, 5);
    TM_CHECK_THROWS(knn_recommend(sq.view(), W.view(), true, &out_of_range, 1, nullptr, 0, 2, ids.data(), sc.data()),
                    std::invalid_argument);
    TM_CHECK_THROWS(knn_recommend(sq.view(), W.view(), true, nullptr, 0, nullptr, 0, -1, ids.data(), sc.data()),
                    std::invalid_argument);
    std::vector<double> g(25);
    TM_CHECK_THROWS(item_gram_dense(W.view(), Wt.view(), -1.0, g.data()), std::invalid_argument);
    TM_CHECK_THROWS(item_gram_dense(W.view(), Wt.view(), std::numeric_limits<double>::quiet_NaN(), g.data()),
                    std::invalid_argument);
}
