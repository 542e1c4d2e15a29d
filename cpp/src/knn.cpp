// Item-item neighbourhoods (see knn.hpp for the contracts).
//
// Every kernel here is the same sparse pattern: for one output row, walk a CSR row and,
// for each of its entries, a row of a second CSR matrix, accumulating into a dense
// per-thread row.  The matrices of interest (catalogs up to ~10^5 items, co-occurrence
// rows of a few thousand entries) make that row fit in L1/L2, so a scatter into a dense
// array beats any merge of sorted lists; touched entries are remembered in a list so that
// resetting and selecting cost O(touched), not O(n_items).
#include "tastemaker/knn.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tastemaker/threads.hpp"
#include "tastemaker/weighting.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tastemaker {
namespace {

using Cand = std::pair<float, std::int32_t>;

// Score descending, then id ascending: the ranking order of every result here.  Scores
// are never NaN when they reach this (callers drop !(s > 0) or only see finite sums).
// A function object (not a function pointer) so that the std algorithms inline it.
struct Better {
    bool operator()(const Cand& a, const Cand& b) const {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    }
};
constexpr Better better{};

// A neighbour candidate (score > 0, id) as one integer that orders like `better`: the
// bits of a positive float compare as unsigned integers like the float itself, and the
// low word is ~id so that the lower id wins a tie.  Selecting on these keys is one
// integer comparison per step instead of a branchy pair comparison.
inline std::uint64_t cand_key(float v, std::int32_t id) {
    std::uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return (static_cast<std::uint64_t>(bits) << 32) | static_cast<std::uint32_t>(~static_cast<std::uint32_t>(id));
}
inline Cand key_cand(std::uint64_t key) {
    const auto bits = static_cast<std::uint32_t>(key >> 32);
    float v;
    std::memcpy(&v, &bits, sizeof v);
    return {v, static_cast<std::int32_t>(~static_cast<std::uint32_t>(key))};
}

// Moves the k largest of the distinct keys a[0..n) to the front (in an order that depends
// only on the input order), 0 < k < n.  Quickselect with a branch-free partition: the
// comparison outcome only moves an index, so random keys cost no mispredicted branches
// (std::nth_element's partition mispredicts about every other step, and selection was
// ~40% of a build on Last.fm).
void select_largest(std::uint64_t* a, std::size_t n, std::size_t k) {
    while (n > 16) {
        // median of three as the pivot
        std::uint64_t x = a[0], y = a[n / 2], z = a[n - 1];
        if (x > y) std::swap(x, y);
        if (y > z) y = std::max(x, z);
        const std::uint64_t pivot = y;
        std::size_t above = 0;  // a[0..above) > pivot
        for (std::size_t j = 0; j < n; ++j) {
            const std::uint64_t v = a[j];
            a[j] = a[above];
            a[above] = v;
            above += v > pivot;
        }
        if (above >= k) {
            if (above == k) return;
            n = above;
            continue;
        }
        // a[above..n) holds the pivot and smaller keys: the pivot is their largest
        std::size_t at = above;
        while (a[at] != pivot) ++at;
        std::swap(a[at], a[above]);
        ++above;
        if (above == k) return;
        a += above;
        n -= above;
        k -= above;
    }
    for (std::size_t i = 0; i < k; ++i) {  // selection of the k largest of a few
        std::size_t best = i;
        for (std::size_t j = i + 1; j < n; ++j) best = a[j] > a[best] ? j : best;
        std::swap(a[i], a[best]);
    }
}

// The k best keys of a stream, in an order that depends only on the stream's order.
// Keys are appended to a buffer; when it holds max(4k, 256), nth_element keeps its best k
// and their worst becomes a threshold that rejects most later keys with one comparison (a
// row of the build offers hundreds to thousands of candidates for a K of 10-100, and a
// plain nth_element over all of them was a third of the build on MovieLens 100K).
struct TopKeys {
    std::vector<std::uint64_t> buf;  // buf[0..size): the kept keys; one slot past cap
    std::size_t size = 0, k = 0, cap = 0;
    std::uint64_t threshold = 0;  // keys are > 0 (positive scores); 0 = none yet

    // `limit`: more than the keys a stream can offer (a row offers fewer than n_items),
    // so that a huge k never allocates beyond what the stream needs.
    void reset(std::size_t k_, std::size_t limit) {
        k = k_;
        cap = std::min(std::max<std::size_t>(4 * k, 256), limit);
        if (buf.size() < cap + 1) buf.resize(cap + 1);
        size = 0;
        threshold = 0;
    }
    // Offers `key` when `ok`, without a branch on either: the key is written past the
    // kept ones and kept only if it beats the threshold (the outcome of a row's
    // candidates is data-dependent and mispredicted often as a branch).
    void offer(std::uint64_t key, bool ok) {
        buf[size] = key;
        size += static_cast<std::size_t>(ok & (key > threshold));
        if (size >= cap) keep_best();
    }
    // The least score a key above the threshold can have (the smallest positive float
    // before there is a threshold).
    float score_bar() const {
        return threshold ? key_cand(threshold).first : std::numeric_limits<float>::denorm_min();
    }
    // Leaves the best min(k, size) keys in buf[0..size); returns size.
    std::size_t finish() {
        if (size > k) keep_best();
        return size;
    }

private:
    void keep_best() {
        select_largest(buf.data(), size, k);
        size = k;
        threshold = *std::min_element(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(k));
    }
};

// Bounded heap of the k best candidates seen so far; front() is the worst of them, so a
// candidate that does not beat it is rejected with one comparison.
struct TopK {
    std::vector<Cand> h;
    std::size_t k = 0;
    void reset(std::size_t k_) {
        h.clear();
        k = k_;
    }
    void push(float s, std::int32_t id) {
        if (std::isnan(s)) s = -std::numeric_limits<float>::infinity();  // overflowed sums
        if (h.size() < k) {
            h.emplace_back(s, id);
            std::push_heap(h.begin(), h.end(), better);
        } else if (k > 0 && better(Cand(s, id), h.front())) {
            std::pop_heap(h.begin(), h.end(), better);
            h.back() = Cand(s, id);
            std::push_heap(h.begin(), h.end(), better);
        }
    }
    // Best first; the heap is consumed.
    void sort() { std::sort_heap(h.begin(), h.end(), better); }
};

// When a row's products touch at least this fraction of the columns, scanning the whole
// dense row is cheaper than tracking which entries were touched.
constexpr std::int64_t kDenseRowFraction = 1;

// Scoring from neighbour lists takes the dense path (scan every item) once its products
// reach this fraction of the items: the sparse path stores twice per product (the sum
// and the touched list) and selects from a list, while the dense path stores once and
// its scan skips whole blocks below the k-th best score with a few vector compares.
constexpr std::int64_t kDenseScoreFraction = 4;
// Items per block of the dense scans (scoring, build).
constexpr std::int64_t kBuildScanBlock = 16;
constexpr std::int64_t kScanBlock = 64;

void check_view(const CsrView& m, const char* name) {
    const std::string n(name);
    if (m.n_rows < 0 || m.n_cols < 0) throw std::invalid_argument(n + ": negative shape");
    if (m.n_rows > 0 && (m.indptr == nullptr)) throw std::invalid_argument(n + ": null indptr");
    if (m.n_cols > std::numeric_limits<std::int32_t>::max())
        throw std::invalid_argument(n + ": more than 2^31 - 1 columns");
    if (m.indptr == nullptr) return;
    if (m.indptr[0] != 0) throw std::invalid_argument(n + ": indptr must start at 0");
    for (std::int64_t r = 0; r < m.n_rows; ++r)
        if (m.indptr[r + 1] < m.indptr[r]) throw std::invalid_argument(n + ": indptr is decreasing");
    const std::int64_t nnz = m.indptr[m.n_rows];
    if (nnz > 0 && (m.indices == nullptr || m.data == nullptr))
        throw std::invalid_argument(n + ": null indices or data");
    for (std::int64_t p = 0; p < nnz; ++p)
        if (m.indices[p] < 0 || m.indices[p] >= m.n_cols)
            throw std::invalid_argument(n + ": column index " + std::to_string(m.indices[p]) +
                                        " out of range [0, " + std::to_string(m.n_cols) + ")");
}

void check_pair(const CsrView& W, const CsrView& Wt) {
    check_view(W, "W");
    check_view(Wt, "Wt");
    if (W.n_cols != Wt.n_rows || W.n_rows != Wt.n_cols)
        throw std::invalid_argument("Wt: expected the transpose of W (" + std::to_string(W.n_cols) + " x " +
                                    std::to_string(W.n_rows) + "), got " + std::to_string(Wt.n_rows) + " x " +
                                    std::to_string(Wt.n_cols));
    if (W.indptr[W.n_rows] != Wt.indptr[Wt.n_rows])
        throw std::invalid_argument("Wt: has a different number of stored entries than W");
}

void check_id_list(const std::int32_t* ids, std::int64_t n, std::int64_t n_items, const char* name) {
    if (n < 0) throw std::invalid_argument(std::string(name) + ": negative length");
    if (n > 0 && ids == nullptr) throw std::invalid_argument(std::string(name) + ": null ids");
    for (std::int64_t t = 0; t < n; ++t)
        if (ids[t] < 0 || ids[t] >= n_items)
            throw std::invalid_argument(std::string(name) + ": id " + std::to_string(ids[t]) +
                                        " out of range [0, " + std::to_string(n_items) + ")");
}

// Runs body(row, scratch, thread) for every row in parallel with one Scratch per thread
// (thread in [0, threads)); the first exception (allocation failure) is rethrown after
// the loop.
template <class Scratch, class MakeScratch, class Body>
void parallel_rows(std::int64_t n_rows, int threads, MakeScratch make, Body body) {
    std::exception_ptr error;
#pragma omp parallel num_threads(threads)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        Scratch s;
        bool ok = true;
        try {
            s = make();
        } catch (...) {
            ok = false;
#pragma omp critical(tastemaker_knn_error)
            if (!error) error = std::current_exception();
        }
#pragma omp for schedule(dynamic, 16)
        for (std::int64_t r = 0; r < n_rows; ++r) {
            if (!ok) continue;
            try {
                body(r, s, tid);
            } catch (...) {  // allocation failure while growing a result list
                ok = false;
#pragma omp critical(tastemaker_knn_error)
                if (!error) error = std::current_exception();
            }
        }
    }
    if (error) std::rethrow_exception(error);
}

struct RowScratch {
    std::vector<float> acc;            // dense accumulator, all zero between rows
    std::vector<std::uint8_t> mark;    // 1 = touched in this row
    std::vector<std::int32_t> touched;  // n_items: the sparse path lists fewer (one per product)
    TopK top;
};

// Scratch of the neighbour build: the dense row, the list of the items it touched (at
// most one entry per product, and a sparse row has fewer products than items) and the
// candidates' keys.
struct BuildScratch {
    std::vector<float> acc;  // all zero between rows
    std::vector<std::int32_t> touched;
    TopKeys top;
};

RowScratch make_row_scratch(std::int64_t n) {
    RowScratch s;
    s.acc.assign(static_cast<std::size_t>(n), 0.0f);
    s.mark.assign(static_cast<std::size_t>(n), 0);
    s.touched.resize(static_cast<std::size_t>(n));
    return s;
}

}  // namespace

KnnGraph knn_build(const CsrView& W, const CsrView& Wt, int K, KnnScore score, int num_threads) {
    if (K < 1) throw std::invalid_argument("K: expected >= 1, got " + std::to_string(K));
    if (score != KnnScore::Dot && score != KnnScore::Jaccard)
        throw std::invalid_argument("score: unknown similarity");
    check_pair(W, Wt);
    const std::int64_t n_items = W.n_cols;
    const bool jaccard = score == KnnScore::Jaccard;
    const int threads = resolve_threads(num_threads);
    KnnGraph g;
    g.self.assign(static_cast<std::size_t>(n_items), 0.0f);
    std::vector<std::int64_t> counts(static_cast<std::size_t>(n_items), 0);
    // Each thread appends its items' neighbours to its own list; they are gathered into
    // the CSR afterwards (no n_items x K padded buffer: most rows of a sparse catalog
    // hold far fewer than K neighbours).
    struct Found {
        std::vector<std::int64_t> item_start;  // (item, offset into results) pairs
        std::vector<Cand> results;
    };
    std::vector<Found> found(static_cast<std::size_t>(threads));
    parallel_rows<BuildScratch>(
        n_items, threads,
        [&] {
            BuildScratch s;
            s.acc.assign(static_cast<std::size_t>(n_items), 0.0f);
            s.touched.resize(static_cast<std::size_t>(n_items));
            return s;
        },
        [&](std::int64_t i, BuildScratch& s, int tid) {
            float* acc = s.acc.data();
            std::int64_t work = 0;
            for (std::int64_t p = Wt.indptr[i]; p < Wt.indptr[i + 1]; ++p) {
                const std::int32_t u = Wt.indices[p];
                work += W.indptr[u + 1] - W.indptr[u];
            }
            // Dense rows skip the touched bookkeeping and find the entries by scanning:
            // an entry that sums to exactly 0 is then "untouched", which changes nothing
            // since only positive scores are kept (and s_ii = 0 either way).
            const bool dense = work * kDenseRowFraction >= n_items;
            // Sparse rows list an item when its sum is 0 before the product is added:
            // branch-free, and an item whose partial sum cancels to exactly 0 is listed
            // again, which is harmless (its first visit below takes the sum and zeroes
            // it, so the second finds 0 and drops it).  Fewer products than items, so
            // the list fits.
            std::int32_t* listed = s.touched.data();
            for (std::int64_t p = Wt.indptr[i]; p < Wt.indptr[i + 1]; ++p) {
                const std::int32_t u = Wt.indices[p];
                const float w = jaccard ? 1.0f : Wt.data[p];
                const std::int64_t q0 = W.indptr[u], q1 = W.indptr[u + 1];
                if (dense) {
                    if (jaccard)
                        for (std::int64_t q = q0; q < q1; ++q) acc[W.indices[q]] += 1.0f;
                    else
                        for (std::int64_t q = q0; q < q1; ++q) acc[W.indices[q]] += w * W.data[q];
                } else {
                    for (std::int64_t q = q0; q < q1; ++q) {
                        const std::int32_t j = W.indices[q];
                        const float a = acc[j];
                        *listed = j;
                        listed += a == 0.0f;
                        acc[j] = a + (jaccard ? 1.0f : w * W.data[q]);
                    }
                }
            }
            const float n_i = static_cast<float>(Wt.indptr[i + 1] - Wt.indptr[i]);
            g.self[static_cast<std::size_t>(i)] = jaccard ? (n_i > 0 ? 1.0f : 0.0f) : acc[i];
            s.top.reset(static_cast<std::size_t>(K), static_cast<std::size_t>(n_items));
            auto consider = [&](std::int32_t j) {
                float v = acc[j];
                acc[j] = 0.0f;
                if (j == i) return;
                if (jaccard) v = v / (n_i + static_cast<float>(Wt.indptr[j + 1] - Wt.indptr[j]) - v);
                s.top.offer(cand_key(v, j), v > 0);
            };
            if (dense && !jaccard) {
                // A candidate enters only with a key above the threshold, so with a score
                // >= the threshold's score (the ids break ties) and > 0: a block without
                // such a score is skipped whole after a few vector compares (the scan was
                // a third of a MovieLens build, most of it branches on rejected items).
                for (std::int64_t j0 = 0; j0 < n_items; j0 += kBuildScanBlock) {
                    const std::int64_t j1 = std::min(j0 + kBuildScanBlock, n_items);
                    const float bar = s.top.score_bar();
                    int above = 0;
                    for (std::int64_t j = j0; j < j1; ++j) above |= acc[j] >= bar;
                    if (above) {
                        for (std::int64_t j = j0; j < j1; ++j) {
                            const float v = acc[j];
                            s.top.offer(cand_key(v, static_cast<std::int32_t>(j)), (v >= bar) & (j != i));
                        }
                    }
                    std::fill(acc + j0, acc + j1, 0.0f);
                }
            } else if (dense) {
                for (std::int64_t j = 0; j < n_items; ++j)
                    if (acc[j] != 0.0f) consider(static_cast<std::int32_t>(j));
            } else {
                for (const std::int32_t* t = s.touched.data(); t < listed; ++t) consider(*t);
            }
            const std::size_t m = s.top.finish();
            Found& f = found[static_cast<std::size_t>(tid)];
            f.item_start.push_back(i);
            f.item_start.push_back(static_cast<std::int64_t>(f.results.size()));
            for (std::size_t t = 0; t < m; ++t) f.results.push_back(key_cand(s.top.buf[t]));
            counts[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(m);
        });
    g.indptr.assign(static_cast<std::size_t>(n_items) + 1, 0);
    for (std::int64_t i = 0; i < n_items; ++i) g.indptr[i + 1] = g.indptr[i] + counts[i];
    const auto nnz = static_cast<std::size_t>(g.indptr[n_items]);
    g.indices.resize(nnz);
    g.data.resize(nnz);
    for (const Found& f : found) {
        for (std::size_t t = 0; t < f.item_start.size(); t += 2) {
            const std::int64_t i = f.item_start[t];
            const auto from = static_cast<std::size_t>(f.item_start[t + 1]);
            auto to = static_cast<std::size_t>(g.indptr[i]);
            for (std::int64_t c = 0; c < counts[i]; ++c, ++to) {
                g.indices[to] = f.results[from + c].second;
                g.data[to] = f.results[from + c].first;
            }
        }
    }
    return g;
}

namespace {

struct OwnedCsr {
    std::vector<std::int64_t> indptr;
    std::vector<std::int32_t> indices;
    std::vector<float> data;
    std::int64_t n_rows = 0, n_cols = 0;
    CsrView view() const { return {indptr.data(), indices.data(), data.data(), n_rows, n_cols}; }
};

// The transpose of m with source[p] = the position in m of the transpose's entry p.
OwnedCsr transpose(const CsrView& m, std::vector<std::int64_t>& source, int num_threads) {
    OwnedCsr t;
    t.n_rows = m.n_cols;
    t.n_cols = m.n_rows;
    const std::int64_t nnz = m.n_rows > 0 ? m.indptr[m.n_rows] : 0;
    t.indptr.resize(static_cast<std::size_t>(t.n_rows) + 1);
    t.indices.resize(static_cast<std::size_t>(nnz));
    t.data.resize(static_cast<std::size_t>(nnz));
    source.resize(static_cast<std::size_t>(nnz));
    csr_transpose(m, t.indptr.data(), t.indices.data(), t.data.data(), source.data(), num_threads);
    return t;
}

// Each row of m divided by its L2 norm (in float64, then rounded; an empty or all-zero
// row stays as it is).
void normalize_rows(OwnedCsr& m) {
    for (std::int64_t r = 0; r < m.n_rows; ++r) {
        double sq = 0.0;
        for (std::int64_t e = m.indptr[r]; e < m.indptr[r + 1]; ++e) {
            const double v = m.data[e];
            sq += v * v;
        }
        const double inv = sq > 0 ? 1.0 / std::sqrt(sq) : 0.0;
        for (std::int64_t e = m.indptr[r]; e < m.indptr[r + 1]; ++e)
            m.data[e] = static_cast<float>(static_cast<double>(m.data[e]) * inv);
    }
}

}  // namespace

void csr_transpose(const CsrView& m, std::int64_t* t_indptr, std::int32_t* t_indices, float* t_data,
                   std::int64_t* source, int num_threads) {
    check_view(m, "m");
    const std::int64_t n_cols = m.n_cols, nnz = m.n_rows > 0 ? m.indptr[m.n_rows] : 0;
    if (nnz == 0) {
        std::fill(t_indptr, t_indptr + n_cols + 1, std::int64_t{0});
        return;
    }
    // Blocks of rows with about equal entries; each block keeps n_cols counters, so a block
    // holds at least 4 entries per column (the counters stay a small part of the work).
    const std::int64_t most = std::max<std::int64_t>(1, nnz / std::max<std::int64_t>(4 * n_cols, 1));
    const int nb = static_cast<int>(std::min<std::int64_t>(resolve_threads(num_threads), most));
    std::vector<std::int64_t> first(static_cast<std::size_t>(nb) + 1, m.n_rows);
    first[0] = 0;
    for (int b = 1; b < nb; ++b)  // the first row whose entries start at or after b / nb of them
        first[b] = std::lower_bound(m.indptr, m.indptr + m.n_rows, nnz / nb * b) - m.indptr;
    // next[b][c]: where block b puts its next entry of column c (its counts first)
    std::vector<std::int64_t> next(static_cast<std::size_t>(nb) * static_cast<std::size_t>(n_cols), 0);
    auto at = [&](int b, std::int64_t c) -> std::int64_t& {
        return next[static_cast<std::size_t>(b) * static_cast<std::size_t>(n_cols) + static_cast<std::size_t>(c)];
    };
#pragma omp parallel for schedule(static, 1) num_threads(nb) if (nb > 1)
    for (int b = 0; b < nb; ++b)  // nothing here throws: check_view validated the indices
        for (std::int64_t e = m.indptr[first[b]]; e < m.indptr[first[b + 1]]; ++e) ++at(b, m.indices[e]);
    std::int64_t pos = 0;
    for (std::int64_t c = 0; c < n_cols; ++c) {
        t_indptr[c] = pos;
        for (int b = 0; b < nb; ++b) {
            const std::int64_t n = at(b, c);
            at(b, c) = pos;
            pos += n;
        }
    }
    t_indptr[n_cols] = pos;
#pragma omp parallel for schedule(static, 1) num_threads(nb) if (nb > 1)
    for (int b = 0; b < nb; ++b) {
        for (std::int64_t r = first[b]; r < first[b + 1]; ++r) {
            for (std::int64_t e = m.indptr[r]; e < m.indptr[r + 1]; ++e) {
                const std::int64_t p = at(b, m.indices[e])++;
                t_indices[p] = static_cast<std::int32_t>(r);
                t_data[p] = m.data[e];
                if (source != nullptr) source[p] = e;
            }
        }
    }
}

KnnGraph knn_fit(const CsrView& X, KnnSimilarity similarity, int K, double k1, double b, int num_threads) {
    if (K < 1) throw std::invalid_argument("K: expected >= 1, got " + std::to_string(K));
    if (!(k1 >= 0.0) || !std::isfinite(k1)) throw std::invalid_argument("K1: expected a finite number >= 0");
    if (!(b >= 0.0 && b <= 1.0)) throw std::invalid_argument("B: expected a number in [0, 1]");
    check_view(X, "user_items");
    const std::int64_t nnz = X.n_rows > 0 ? X.indptr[X.n_rows] : 0;
    if (similarity == KnnSimilarity::Jaccard) {
        // the supports of the positive entries, each counting 1
        OwnedCsr pos;
        pos.n_rows = X.n_rows;
        pos.n_cols = X.n_cols;
        pos.indptr.assign(static_cast<std::size_t>(X.n_rows) + 1, 0);
        for (std::int64_t r = 0; r < X.n_rows; ++r) {
            for (std::int64_t e = X.indptr[r]; e < X.indptr[r + 1]; ++e) {
                if (X.data[e] > 0) {
                    pos.indices.push_back(X.indices[e]);
                    pos.data.push_back(1.0f);
                }
            }
            pos.indptr[r + 1] = static_cast<std::int64_t>(pos.indices.size());
        }
        std::vector<std::int64_t> source;
        const OwnedCsr t = transpose(pos.view(), source, num_threads);
        return knn_build(pos.view(), t.view(), K, KnnScore::Jaccard, num_threads);
    }
    std::vector<std::int64_t> source;
    OwnedCsr wt = transpose(X, source, num_threads);  // items x users: the items are the documents
    switch (similarity) {
        case KnnSimilarity::Cosine:
            normalize_rows(wt);
            break;
        case KnnSimilarity::Bm25:
        case KnnSimilarity::TfIdf: {
            const bool bm25 = similarity == KnnSimilarity::Bm25;
            std::vector<double> tf;
            if (!bm25) {  // implicit's TF-IDF term frequency: sqrt of the strength
                tf.resize(static_cast<std::size_t>(nnz));
                for (std::int64_t e = 0; e < nnz; ++e) {
                    const double v = wt.data[e];
                    tf[e] = (v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0)) * std::sqrt(std::fabs(v));
                }
            }
            TermWeightParams p;
            p.kind = bm25 ? TermWeighting::Bm25 : TermWeighting::TfIdf;
            p.k1 = k1;
            p.b = b;
            p.idf_offset = 1.0;
            std::vector<double> w(static_cast<std::size_t>(nnz));
            term_weights_rows(p, wt.view(), bm25 ? nullptr : tf.data(), w.data(), num_threads);
            for (std::int64_t e = 0; e < nnz; ++e) wt.data[e] = static_cast<float>(w[e]);
            if (!bm25) normalize_rows(wt);
            break;
        }
        default:
            throw std::invalid_argument("similarity: unknown");
    }
    // W: X's structure with the weights of the matching entries of the transpose
    std::vector<float> w_data(static_cast<std::size_t>(nnz));
    for (std::int64_t p = 0; p < nnz; ++p) w_data[static_cast<std::size_t>(source[p])] = wt.data[p];
    const CsrView W{X.indptr, X.indices, w_data.data(), X.n_rows, X.n_cols};
    return knn_build(W, wt.view(), K, KnnScore::Dot, num_threads);
}

void knn_recommend(const CsrView& N, const CsrView& rows, bool exclude_seen, const std::int32_t* allow,
                   std::int64_t n_allow, const std::int32_t* deny, std::int64_t n_deny, int k,
                   std::int32_t* out_ids, float* out_scores, int num_threads) {
    if (k < 0) throw std::invalid_argument("k: expected >= 0, got " + std::to_string(k));
    check_view(N, "neighbours");
    check_view(rows, "user_items");
    const std::int64_t n_items = N.n_rows;
    if (N.n_cols != n_items)
        throw std::invalid_argument("neighbours: expected a square matrix, got " + std::to_string(N.n_rows) +
                                    " x " + std::to_string(N.n_cols));
    if (rows.n_cols != n_items)
        throw std::invalid_argument("user_items: expected " + std::to_string(n_items) + " columns, got " +
                                    std::to_string(rows.n_cols));
    if (allow) check_id_list(allow, n_allow, n_items, "allow");
    if (deny) check_id_list(deny, n_deny, n_items, "deny");
    // 1 = may be returned (before the per-row exclusion of seen items).
    std::vector<std::uint8_t> eligible(static_cast<std::size_t>(n_items), allow ? 0 : 1);
    if (allow)
        for (std::int64_t t = 0; t < n_allow; ++t) eligible[allow[t]] = 1;
    if (deny)
        for (std::int64_t t = 0; t < n_deny; ++t) eligible[deny[t]] = 0;
    const float neg_inf = -std::numeric_limits<float>::infinity();
    const std::size_t kk = static_cast<std::size_t>(k);

    parallel_rows<RowScratch>(
        rows.n_rows, resolve_threads(num_threads), [&] { return make_row_scratch(n_items); },
        [&](std::int64_t q, RowScratch& s, int) {
            float* acc = s.acc.data();
            std::uint8_t* mark = s.mark.data();  // bit 0: selected (sparse path), bit 1: seen
            // Local copies of the graph's pointers: the byte stores to `mark` may alias
            // anything, so through the views they would be reloaded for every product.
            const std::int64_t* n_ptr = N.indptr;
            const std::int32_t* n_idx = N.indices;
            const float* n_val = N.data;
            const std::int64_t p0 = rows.indptr[q], p1 = rows.indptr[q + 1];
            std::int64_t work = 0;
            for (std::int64_t p = p0; p < p1; ++p) work += n_ptr[rows.indices[p] + 1] - n_ptr[rows.indices[p]];
            const bool dense = work * kDenseScoreFraction >= n_items;
            std::int32_t* const touched = s.touched.data();
            std::int32_t* listed = touched;
            for (std::int64_t p = p0; p < p1; ++p) {
                const std::int32_t i = rows.indices[p];
                const float r = rows.data[p];
                const std::int64_t t0 = n_ptr[i], t1 = n_ptr[i + 1];
                if (dense) {
                    for (std::int64_t t = t0; t < t1; ++t) acc[n_idx[t]] += r * n_val[t];
                } else {
                    // An item is listed when its sum is 0 before the product is added:
                    // branch-free and one store besides the sum.  Every reached item is
                    // listed (its first product finds 0); one whose sum returns to exactly
                    // 0 is listed again, and the selection below takes each item once.
                    for (std::int64_t t = t0; t < t1; ++t) {
                        const std::int32_t j = n_idx[t];
                        const float a = acc[j];
                        *listed = j;
                        listed += a == 0.0f;
                        acc[j] = a + r * n_val[t];
                    }
                }
            }
            if (exclude_seen)
                for (std::int64_t p = p0; p < p1; ++p) mark[rows.indices[p]] = 2;
            s.top.reset(kk);
            if (dense) {
                // Every item is a candidate with its (possibly zero) score, in id order, so
                // once k are held a later item enters only with a score above the k-th
                // (a tie goes to the lower id, already held): a block with no such score
                // is skipped whole.  A NaN sum fails the compare, as it would fail to
                // enter (it ranks as -inf).
                for (std::int64_t j0 = 0; j0 < n_items; j0 += kScanBlock) {
                    const std::int64_t j1 = std::min(j0 + kScanBlock, n_items);
                    bool skip = false;
                    if (kk > 0 && s.top.h.size() == kk) {
                        const float bar = s.top.h.front().first;
                        int above = 0;
                        for (std::int64_t j = j0; j < j1; ++j) above |= acc[j] > bar;
                        skip = above == 0;
                    }
                    if (!skip)
                        for (std::int64_t j = j0; j < j1; ++j)
                            if (eligible[j] && !(mark[j] & 2)) s.top.push(acc[j], static_cast<std::int32_t>(j));
                    std::fill(acc + j0, acc + j1, 0.0f);
                }
            } else {
                std::size_t n_pos = 0;
                for (const std::int32_t* t = touched; t < listed; ++t) {
                    const std::int32_t j = *t;
                    if (mark[j] & 1) continue;  // listed again after its sum returned to 0
                    mark[j] |= 1;
                    if (eligible[j] && !(mark[j] & 2)) {
                        s.top.push(acc[j], j);
                        n_pos += acc[j] > 0;
                    }
                }
                // Unreached items score 0: needed only when fewer than k candidates beat
                // 0.  Among them the lowest ids win the tie, so k of them are enough.
                if (n_pos < kk) {
                    std::size_t added = 0;
                    for (std::int64_t j = 0; j < n_items && added < kk; ++j) {
                        if (eligible[j] && mark[j] == 0) {
                            s.top.push(0.0f, static_cast<std::int32_t>(j));
                            ++added;
                        }
                    }
                }
                for (const std::int32_t* t = touched; t < listed; ++t) {
                    acc[*t] = 0.0f;
                    mark[*t] = 0;
                }
            }
            if (exclude_seen)
                for (std::int64_t p = p0; p < p1; ++p) mark[rows.indices[p]] = 0;
            s.top.sort();
            const std::size_t m = s.top.h.size();
            std::int32_t* ids = out_ids + q * k;
            float* sc = out_scores + q * k;
            for (std::size_t t = 0; t < m; ++t) {
                ids[t] = s.top.h[t].second;
                sc[t] = s.top.h[t].first;
            }
            for (std::size_t t = m; t < kk; ++t) {
                ids[t] = -1;
                sc[t] = neg_inf;
            }
        });
}

void item_gram_dense(const CsrView& W, const CsrView& Wt, double ridge, double* out, int num_threads) {
    if (!(ridge >= 0.0) || !std::isfinite(ridge))
        throw std::invalid_argument("ridge: expected a finite number >= 0, got " + std::to_string(ridge));
    check_pair(W, Wt);
    const std::int64_t n = W.n_cols;
    struct None {};
    parallel_rows<None>(
        n, resolve_threads(num_threads), [] { return None{}; },
        [&](std::int64_t i, None&, int) {
            double* row = out + i * n;
            std::memset(row, 0, static_cast<std::size_t>(n) * sizeof(double));
            for (std::int64_t p = Wt.indptr[i]; p < Wt.indptr[i + 1]; ++p) {
                const std::int32_t u = Wt.indices[p];
                const double w = Wt.data[p];
                for (std::int64_t q = W.indptr[u]; q < W.indptr[u + 1]; ++q)
                    row[W.indices[q]] += w * static_cast<double>(W.data[q]);
            }
            row[i] += ridge;
        });
}

}  // namespace tastemaker
