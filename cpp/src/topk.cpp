// Exact top-k driver: validation, candidate set, item packing, the blocked scan with a
// per-query threshold, lazy exclusion and a k-element heap.  The arithmetic lives in
// the per-ISA kernels (one source, cpp/src/kernels/topk-inl.hpp, through topk_kernels()).
#include "tastemaker/topk.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "tastemaker/aligned.hpp"
#include "tastemaker/threads.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tastemaker {

TASTEMAKER_SIMD_DISPATCH(TopkKernels, topk_kernels)

namespace {

constexpr int kPackMin = 16;    // below this many queries, transpose panels on the fly
// The self-join scores a block's rows against each panel this many at a time, so that the
// panel's column bars rise between groups: with the whole 192-row block at once, every
// column's bar stayed -inf through the first block and each item took 192 offers there
// (78% of all offers for 27k items); with groups of 12 (one AVX-512 tile, four AVX2
// tiles) the offers fall from 246 to 94 per item, near the ~k (1 + ln(n / k)) of any
// online top-k in this order.
constexpr int kSelfGroup = 12;
// A row of the pre-filter with at most this many candidate columns in a panel has those
// pairs scored alone (pair_scores: ~2 loads + 1 fma per factor and pair) rather than the
// panel's whole row (a tile row: 32 columns, 4 FMAs per factor on AVX2).
constexpr int kPairMax = 3;
// Whether c has at most kPairMax bits set (no popcnt instruction in the generic build).
inline bool at_most_pair_max(std::uint32_t c) {
    for (int i = 0; i < kPairMax; ++i) c &= c - 1;
    return c == 0;
}

struct Entry {
    float score;
    std::int32_t id;
};

// "a ranks below b": lower score, or equal score and higher id.
inline bool below(const Entry& a, const Entry& b) {
    return a.score < b.score || (a.score == b.score && a.id > b.id);
}

// Min-heap on `below` (the worst kept entry at the root).
void sift_down(Entry* h, int n, int i) {
    const Entry x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && below(h[c + 1], h[c])) ++c;
        if (!below(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

void sift_up(Entry* h, int i) {
    const Entry x = h[i];
    while (i > 0) {
        const int p = (i - 1) / 2;
        if (!below(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

// Up to this many kept entries are a sorted array, more a heap: an insertion moves ~k/2
// entries with one hard-to-predict branch at the end, a heap sift a few levels with one
// such branch per level (top-10 for all ML-20M users: 11M insertions, the sift was 4-5%
// of the scan).
constexpr int kSortedKeep = 32;

// Offer e to the kept entries h[0..count) (capacity kk), which hold the worst kept entry
// at h[0]: sorted ascending by `below` for kk <= kSortedKeep, a min-heap on `below`
// otherwise.  thr tracks h[0]'s score once full (the bar a later candidate must reach).
inline void heap_offer(Entry* h, int& count, float& thr, int kk, const Entry& e) {
    if (kk <= kSortedKeep) {
        int i;
        if (count < kk) {  // insert from the top
            for (i = count; i > 0 && below(e, h[i - 1]); --i) h[i] = h[i - 1];
            h[i] = e;
            if (++count == kk) thr = h[0].score;
        } else if (below(h[0], e)) {  // drop h[0], insert from the bottom
            for (i = 1; i < kk && below(h[i], e); ++i) h[i - 1] = h[i];
            h[i - 1] = e;
            thr = h[0].score;
        }
        return;
    }
    if (count < kk) {
        h[count] = e;
        sift_up(h, count);
        if (++count == kk) thr = h[0].score;
    } else if (below(h[0], e)) {
        h[0] = e;
        sift_down(h, kk, 0);
        thr = h[0].score;
    }
}

// The largest float below t (t itself for -inf): `score > lower(t)` is `score >= t` for
// finite scores, the test a candidate arriving out of id order needs (it may tie the
// k-th score with a lower id and still belong in the heap).  The self-join's loop order
// happens to offer each thread's heaps increasing ids too; this keeps it exact anyway.
inline float lower(float t) {  // std::nextafter(t, -inf) without the libm call
    if (!(t >= -std::numeric_limits<float>::max())) return t;
    std::uint32_t b;
    std::memcpy(&b, &t, sizeof b);
    b = t > 0.0f ? b - 1u : t < 0.0f ? b + 1u : 0x80000001u;  // +-0 -> -denorm_min
    std::memcpy(&t, &b, sizeof t);
    return t;
}

void invalid(const std::string& msg) { throw std::invalid_argument(msg); }

void validate(const TopkRequest& r) {
    if (r.n_queries < 0) invalid("queries: negative number of rows");
    if (r.n_items < 0) invalid("items: negative number of rows");
    if (r.n_items > std::numeric_limits<std::int32_t>::max()) invalid("items: more than 2^31 - 1 rows");
    if (r.dim < 1) invalid("dim: expected >= 1, got " + std::to_string(r.dim));
    if (r.k < 0) invalid("k: expected >= 0, got " + std::to_string(r.k));
    if (r.n_queries > 0 && r.queries == nullptr) invalid("queries: null pointer");
    if (r.n_items > 0 && r.items == nullptr) invalid("items: null pointer");
    if (r.packed != nullptr && (r.packed->n_items() != r.n_items || r.packed->dim() != r.dim))
        invalid("items: packed for " + std::to_string(r.packed->n_items()) + " x " +
                std::to_string(r.packed->dim()) + ", but the request has " + std::to_string(r.n_items) + " x " +
                std::to_string(r.dim));
    if (r.exclude_indptr != nullptr) {
        const std::int64_t* ip = r.exclude_indptr;
        if (ip[0] != 0) invalid("exclude_indptr: must start at 0");
        for (std::int64_t q = 0; q < r.n_queries; ++q)
            if (ip[q + 1] < ip[q]) invalid("exclude_indptr: decreasing at row " + std::to_string(q));
        if (ip[r.n_queries] > 0 && r.exclude_indices == nullptr) invalid("exclude_indices: null pointer");
        for (std::int64_t q = 0; q < r.n_queries; ++q)
            for (std::int64_t c = ip[q] + 1; c < ip[q + 1]; ++c)
                if (r.exclude_indices[c] < r.exclude_indices[c - 1])
                    invalid("exclude_indices: row " + std::to_string(q) + " is not sorted");
    }
    auto check_ids = [&](const std::int32_t* ids, std::int64_t n, const char* name) {
        if (n < 0) invalid(std::string(name) + ": negative length");
        if (n > 0 && ids == nullptr) invalid(std::string(name) + ": null pointer");
        for (std::int64_t i = 0; i < n; ++i)
            if (ids[i] < 0 || ids[i] >= r.n_items)
                invalid(std::string(name) + ": id " + std::to_string(ids[i]) + " out of range [0, " +
                        std::to_string(r.n_items) + ")");
    };
    if (r.allow != nullptr) check_ids(r.allow, r.n_allow, "allow");
    check_ids(r.deny, r.n_deny, "deny");
}

// Values: finite, and small enough that no partial sum can overflow.  One bound for
// every partial sum: |sum_k q_k x_k| <= dim * max|q| * max|x|.  Packed items were
// checked when packed.
void check_values(const TopkRequest& r, const TopkKernels& kern) {
    const bool items_known = r.packed != nullptr;
    const float imax = items_known ? r.packed->absmax() : kern.finite_absmax(r.items, r.n_items * r.dim);
    if (!std::isfinite(imax)) invalid("items: contains NaN or inf values");
    const float qmax = items_known && r.queries == r.items ? imax : kern.finite_absmax(r.queries, r.n_queries * r.dim);
    if (!std::isfinite(qmax)) invalid("queries: contains NaN or inf values");
    if (static_cast<double>(r.dim) * qmax * imax > kTopkScoreBound)
        invalid("items: values so large that scores overflow float32 (max |query| " + std::to_string(qmax) +
                ", max |item| " + std::to_string(imax) + ")");
}

// The items a query may return, scanned in ascending id order (the scan relies on it:
// an item tying the current k-th score always has a higher id and correctly loses).
// Either a subset (`ids`, packed per call) or every item with an optional per-item
// `denied` flag, checked only for items that pass the threshold.
struct Candidates {
    std::vector<std::int32_t> ids;
    std::vector<unsigned char> denied;
    bool subset = false;
    std::int64_t count = 0;

    std::int32_t id(std::int64_t idx) const {
        return subset ? ids[static_cast<std::size_t>(idx)] : static_cast<std::int32_t>(idx);
    }
    bool is_denied(std::int32_t id) const { return !denied.empty() && denied[static_cast<std::size_t>(id)]; }
};

Candidates select_candidates(const TopkRequest& r) {
    Candidates c;
    if (r.allow != nullptr) {
        std::vector<unsigned char> in(static_cast<std::size_t>(r.n_items), 0);
        for (std::int64_t i = 0; i < r.n_allow; ++i) in[r.allow[i]] = 1;
        for (std::int64_t i = 0; i < r.n_deny; ++i) in[r.deny[i]] = 0;
        for (std::int64_t i = 0; i < r.n_items; ++i)
            if (in[i]) c.ids.push_back(static_cast<std::int32_t>(i));
        c.subset = true;
    } else if (r.n_deny > 0) {
        c.denied.assign(static_cast<std::size_t>(r.n_items), 0);
        for (std::int64_t i = 0; i < r.n_deny; ++i) c.denied[r.deny[i]] = 1;
        // A long deny-list: score only the rest, unless the items are packed already
        // (repacking the rest would cost more than scoring the denied ones).
        if (r.packed == nullptr && r.n_deny * 8 >= r.n_items) {
            for (std::int64_t i = 0; i < r.n_items; ++i)
                if (!c.denied[i]) c.ids.push_back(static_cast<std::int32_t>(i));
            c.denied.clear();
            c.subset = true;
        }
    }
    c.count = c.subset ? static_cast<std::int64_t>(c.ids.size()) : r.n_items;
    return c;
}

// The candidates' panels: read from a PackedItems, packed once per call for a large
// batch, or packed on the fly into the caller's scratch (a few queries).
class Panels {
public:
    Panels(const TopkRequest& r, const TopkKernels& kern, const Candidates& cand)
        : r_(r), kern_(kern), cand_(cand),
          n_panels_((cand.count + kTopkPanel - 1) / kTopkPanel),
          panel_size_(static_cast<std::int64_t>(r.dim) * kTopkPanel) {
        if (r.packed != nullptr && !cand.subset) base_ = r.packed->panel(0);
    }
    std::int64_t count() const { return n_panels_; }
    std::int64_t panel_size() const { return panel_size_; }
    bool resident() const { return base_ != nullptr; }
    /** Valid columns of panel p. */
    std::uint32_t valid(std::int64_t p) const {
        const std::int64_t left = cand_.count - p * kTopkPanel;
        return left >= kTopkPanel ? 0xFFFFFFFFu : (1u << left) - 1u;
    }
    /** Pack every panel once (OpenMP over panels). */
    void pack_all(int nt) {
        if (resident()) return;
        own_ = aligned_floats(static_cast<std::size_t>(n_panels_ * panel_size_));
        pack_into(own_.get(), nt);
        base_ = own_.get();
    }
    /** Pack every panel into dst (n_panels * panel_size floats; OpenMP over panels). */
    void pack_into(float* dst, int nt) const {
        ParallelError error;  // nothing in the loop throws; kept for the rule (see threads.hpp)
#pragma omp parallel for schedule(static) num_threads(nt)
        for (std::int64_t p = 0; p < n_panels_; ++p) error.run([&] { pack(dst + p * panel_size_, p); });
        error.rethrow_if_failed();
    }
    /** Panels [p, p + n): resident, or packed into scratch (n * panel_size floats). */
    const float* get(std::int64_t p, std::int64_t n, float* scratch) const {
        if (resident()) return base_ + p * panel_size_;
        for (std::int64_t i = 0; i < n; ++i) pack(scratch + i * panel_size_, p + i);
        return scratch;
    }

private:
    // panel p -> dim x 32, row-major, zero past the last candidate
    void pack(float* dst, std::int64_t p) const {
        const std::int64_t first = p * kTopkPanel;
        const int count = static_cast<int>(std::min<std::int64_t>(kTopkPanel, cand_.count - first));
        kern_.pack_panel(r_.items, cand_.subset ? cand_.ids.data() : nullptr, first, count, r_.dim, dst);
    }

    const TopkRequest& r_;
    const TopkKernels& kern_;
    const Candidates& cand_;
    std::int64_t n_panels_, panel_size_;
    const float* base_ = nullptr;
    AlignedFloats own_;
};

// One query's running top-kk: a heap, its bar, and a cursor into its sorted exclusion
// row (candidates arrive in ascending id order, so the cursor only moves forward).
struct QueryState {
    Entry* heap;
    int count;
    float thr;
    std::int64_t cursor, end;
};

QueryState start_query(const TopkRequest& r, std::int64_t q, Entry* heap) {
    const float ninf = -std::numeric_limits<float>::infinity();
    if (r.exclude_indptr == nullptr) return {heap, 0, ninf, 0, 0};
    const std::int64_t begin = r.exclude_indptr[q], end = r.exclude_indptr[q + 1];
    if (begin < end) __builtin_prefetch(r.exclude_indices + begin);  // read at the first hit
    return {heap, 0, ninf, begin, end};
}

// Whether `id` is in the query's exclusion row (lazily: ids must come in ascending order,
// the cursor only moves forward).
inline bool excluded(const TopkRequest& r, QueryState& st, std::int32_t id) {
    if (st.cursor >= st.end) return false;
    std::int64_t c = st.cursor;
    while (c < st.end && r.exclude_indices[c] < id) ++c;
    st.cursor = c;
    return c < st.end && r.exclude_indices[c] == id;
}

// Offer the columns in `bits` of panel p (scores s[0..32)) to one query.  The bits may
// come from an older bar; a score not above the current one is dropped before the
// exclusion and deny checks: candidates arrive in ascending id order, so an entry of the
// heap has a lower id and wins a tie, and heap_offer would reject it too.
inline void offer_columns(const TopkRequest& r, const Candidates& cand, QueryState& st, int kk, std::int64_t p,
                          std::uint32_t bits, const float* s) {
    while (bits) {
        const int j = __builtin_ctz(bits);
        bits &= bits - 1;
        if (!(s[j] > st.thr)) continue;
        const std::int32_t id = cand.id(p * kTopkPanel + j);
        if (cand.is_denied(id) || excluded(r, st, id)) continue;
        heap_offer(st.heap, st.count, st.thr, kk, Entry{s[j], id});
    }
}

// The heap, best first, into row q of the output.
void write_result(const QueryState& st, std::int64_t q, int k, std::int32_t* out_ids, float* out_scores) {
    std::sort(st.heap, st.heap + st.count, [](const Entry& a, const Entry& c) { return below(c, a); });
    std::int32_t* oi = out_ids + q * k;
    float* os = out_scores + q * k;
    for (int i = 0; i < st.count; ++i) {
        oi[i] = st.heap[i].id;
        os[i] = st.heap[i].score;
    }
}

// ---- The single-query pre-filter (PackedItems' int8 copy; topk.hpp).
//
// Why the bounds hold.  u = 2^-24, eta = 2^-150 (the largest absolute error of a float32
// rounding in the subnormal range; additions and subtractions have none), d = dim,
// gamma_d = d u / (1 - d u).  For item i with values y_k (m = max_k |y_k|), its scale
// s (>= 0), int8 values Q_k (|Q_k| <= Qmax = kPrefilterItemMax), e = max_k |y_k - s Q_k|
// (measured when packing) and M = max(m, Qmax s); and a query q with ||q||_1 = sum |q_k|, its int8
// values qi_k, step t and eq = max_k |q_k - t qi_k| (measured per query), and the item's
// mass w = s sum_k |Q_k|:
//  (1) the exact path's score  f = fma-chain(q_k y_k)  is within gamma_d m ||q||_1 + 2 d eta
//      of the real S = sum_k q_k y_k;
//  (2) S - t s C = sum_k q_k (y_k - s Q_k) + s sum_k Q_k (q_k - t qi_k) for the exact
//      integer C = sum_k qi_k Q_k, so |S - t s C| <= e ||q||_1 + w eq;
//  (3) x = fl(fl(C) t) is within (2u + u^2) |t C| + eta of t C, and
//      |t s C| <= s sum_k |Q_k| (|q_k| + eq) <= M ||q||_1 + w eq;
// so |f - x s| <= ||q||_1 (e + M (gamma_d + 3u)) + w eq (1 + 3u) + 2 d eta + eta s =: D
// and |x s| <= (M ||q||_1 + w eq)(1 + 3u) + eta s.  With
// b = fl(fma(l1, slack, fl(fma(err, mass, floor)))) >= (l1 slack + err mass + floor)(1 - 2u) - 2 eta
// and hi = fl(fma(x, s, b)) >= x s + b - u |x s| - u b - eta (lo alike), hi >= f >= lo
// holds whenever b (1 - u) >= D + u |x s| + eta, which
//     l1 >= ||q||_1, err >= eq (1 + 2^-20)   (per query, rounded up),
//     mass >= w   (per item, rounded up),
//     slack >= (e + M (3 d + 8) u) (1 + 2^-20)   (per item, rounded up; d <= kPrefilterMaxDim),
//     floor >= (4 d + 16) eta (1 + 2 max s) (1 + 2^-20)   (rounded up, and >= 2^-126)
// guarantee.  Hence every item of the exact top k has hi >= its exact score >= the k-th
// largest exact score >= the k-th largest lo.

// x rounded up to a float (x >= 0, finite).
float float_up(double x) {
    float f = static_cast<float>(x);
    if (static_cast<double>(f) < x) f = std::nextafter(f, std::numeric_limits<float>::infinity());
    return f;
}

}  // namespace

// prefilter_query (topk.hpp; the proof above): int8 values up to kPrefilterQueryMax (the
// scan's uint8 x int8 products of eight factors stay exact in int16, its int32 sums hold
// 127 * 64 * 4 per row of four factors: no overflow below 2^31 / 32512 rows), the step, ||q||_1 and the
// quantisation term, rounded up (the double sums' own errors are covered by the
// factors).

bool prefilter_query(const float* q, int dim, std::int32_t* w, PrefilterQuery& out) {
    const int quads = (dim + 3) / 4;
    const double top = kPrefilterQueryMax;
    double amax = 0.0, l1 = 0.0;
    for (int k = 0; k < dim; ++k) {
        const double v = std::fabs(static_cast<double>(q[k]));
        amax = std::max(amax, v);
        l1 += v;
    }
    const float step = static_cast<float>(amax / top);
    double err = 0.0;
    std::int32_t sum = 0;
    for (int m = 0; m < quads; ++m) {
        std::uint32_t bytes = 0;
        for (int h = 0; h < 4; ++h) {
            const int k = 4 * m + h;
            const double v = k < dim ? static_cast<double>(q[k]) : 0.0;
            double qi = step > 0.0f ? std::nearbyint(v / step) : 0.0;
            qi = std::min(top, std::max(-top, qi));
            err = std::max(err, std::fabs(v - static_cast<double>(step) * qi));
            sum += static_cast<std::int32_t>(qi);
            bytes |= std::uint32_t{static_cast<std::uint8_t>(static_cast<std::int8_t>(qi))} << (8 * h);
        }
        w[m] = static_cast<std::int32_t>(bytes);
    }
    const double l1_bound = l1 * (1.0 + 0x1p-30), eq_bound = err * (1.0 + 0x1p-20);
    if (!(l1_bound < 1e37 && eq_bound < 1e37)) return false;
    out.w = w;
    out.quads = quads;
    out.bias = kPrefilterItemBias * sum;
    out.step = step;
    out.l1 = float_up(l1_bound);
    out.err = float_up(eq_bound);
    return true;
}

namespace {

// Row x as a pre-filter query whose int8 values go strided to w (quad q at w[q * ld], the
// layout self_bounds reads), through `scratch` (one value per quad); false, leaving w
// alone, when its bound terms would not be finite (prefilter_query).
bool prefilter_row(const float* x, int dim, std::int32_t* scratch, std::int32_t* w, std::int64_t ld,
                   PrefilterQuery& row) {
    if (!prefilter_query(x, dim, scratch, row)) return false;
    for (int q = 0; q < row.quads; ++q) w[q * ld] = scratch[q];
    row.w = nullptr;  // the values are in w
    return true;
}

// When the pre-filter is used: few results out of many items (the candidates are about
// k plus the items near the k-th score), and not so many candidates that re-scoring them
// costs more than the scan it saves (then the exact scan takes over).
constexpr std::int64_t kPrefilterMinItems = 1024;

// One query by the pre-filter: the int8 scan keeps each eligible item whose upper bound
// reaches the k-th largest lower bound so far, then those candidates are scored exactly
// (packed from r.items: the same kernel, so the same bits) and ranked as the exact scan
// ranks them.  Returns false (nothing written) when the candidates grow past
// n_items / 8: the caller then runs the exact scan.
bool scan_prefiltered(const TopkRequest& r, const TopkKernels& kern, const Candidates& cand, int k, int kk,
                      std::int32_t* out_ids, float* out_scores);

constexpr std::int64_t kSingleChunk = 16;  // panels scored per query_scores call (2 KB of scores)

// One query, on the calling thread: chunks of panels through query_scores, the bar
// raised between chunks (or the pre-filter, for a few results from packed items).
void scan_single(const TopkRequest& r, const TopkKernels& kern, const Candidates& cand, const Panels& panels,
                 int k, int kk, std::int32_t* out_ids, float* out_scores) {
    if (panels.resident() && r.packed->has_prefilter() && r.n_items >= kPrefilterMinItems &&
        std::int64_t{kk} * 16 <= r.n_items && scan_prefiltered(r, kern, cand, k, kk, out_ids, out_scores))
        return;
    std::vector<Entry> heap(static_cast<std::size_t>(kk));
    AlignedFloats scratch;
    if (!panels.resident()) scratch = aligned_floats(static_cast<std::size_t>(kSingleChunk * panels.panel_size()));
    alignas(64) float scores[kSingleChunk * kTopkPanel];
    std::uint32_t masks[kSingleChunk];
    QueryState st = start_query(r, 0, heap.data());
    for (std::int64_t p0 = 0; p0 < panels.count(); p0 += kSingleChunk) {
        const std::int64_t n = std::min(kSingleChunk, panels.count() - p0);
        kern.query_scores(r.queries, r.dim, panels.get(p0, n, scratch.get()), n, st.thr, scores, masks);
        for (std::int64_t i = 0; i < n; ++i)
            offer_columns(r, cand, st, kk, p0 + i, masks[i] & panels.valid(p0 + i), scores + i * kTopkPanel);
    }
    write_result(st, 0, k, out_ids, out_scores);
}

bool scan_prefiltered(const TopkRequest& r, const TopkKernels& kern, const Candidates& cand, int k, int kk,
                      std::int32_t* out_ids, float* out_scores) {
    const PackedItems& pk = *r.packed;
    const std::int64_t n_panels = pk.n_panels(), limit = r.n_items / 8;
    struct Scratch {
        std::vector<Entry> heap;
        std::vector<std::int32_t> ids, w;
        std::vector<float> hi;
    };
    thread_local Scratch sc;  // no allocation per request
    sc.w.resize(static_cast<std::size_t>(pk.quads()));
    PrefilterQuery pq;
    if (!prefilter_query(r.queries, r.dim, sc.w.data(), pq)) return false;
    sc.heap.resize(static_cast<std::size_t>(kk));
    sc.ids.clear();
    sc.hi.clear();
    alignas(64) float lo[kSingleChunk * kTopkPanel], hi[kSingleChunk * kTopkPanel];
    std::uint32_t masks[kSingleChunk];
    QueryState st = start_query(r, 0, sc.heap.data());  // a heap of lower bounds
    for (std::int64_t p0 = 0; p0 < n_panels; p0 += kSingleChunk) {
        const std::int64_t n = std::min(kSingleChunk, n_panels - p0);
        kern.query_bounds(pq, pk.panel8(p0), n, pk.slack_floor(), lower(st.thr), lo, hi, masks);
        for (std::int64_t i = 0; i < n; ++i) {
            const std::int64_t left = r.n_items - (p0 + i) * kTopkPanel;
            std::uint32_t bits = masks[i] & (left >= kTopkPanel ? 0xFFFFFFFFu : (1u << left) - 1u);
            while (bits) {  // hi >= the bar: eligible ones are candidates, their lo a bar
                const int j = __builtin_ctz(bits);
                bits &= bits - 1;
                const std::int32_t id = static_cast<std::int32_t>((p0 + i) * kTopkPanel + j);
                const float h = hi[i * kTopkPanel + j];
                // (the bar rises within a chunk)
                if (!(h >= st.thr) || cand.is_denied(id) || excluded(r, st, id)) continue;
                sc.ids.push_back(id);
                sc.hi.push_back(h);
                heap_offer(st.heap, st.count, st.thr, kk, Entry{lo[i * kTopkPanel + j], id});
            }
        }
        if (static_cast<std::int64_t>(sc.ids.size()) > limit) return false;
    }
    // the final bar: candidates below it cannot reach the top kk
    Candidates keep;
    keep.subset = true;
    for (std::size_t c = 0; c < sc.ids.size(); ++c)
        if (sc.hi[c] >= st.thr) keep.ids.push_back(sc.ids[c]);
    keep.count = static_cast<std::int64_t>(keep.ids.size());
    TopkRequest exact = r;  // the candidates are eligible: no exclusions left to apply
    exact.exclude_indptr = nullptr;
    exact.exclude_indices = nullptr;
    const Panels panels(exact, kern, keep);
    scan_single(exact, kern, keep, panels, k, static_cast<int>(std::min<std::int64_t>(kk, keep.count)), out_ids,
                out_scores);
    return true;
}

// Panels per chunk in scan_blocks: kChunkBytes of them stay in L2 while every query group
// of the block reads them (64 factors: 32 panels, 256 KB), at most kMaxChunk (the hit
// buffers hold block x chunk entries of 32 scores per thread).
constexpr std::int64_t kChunkBytes = 256 * 1024;
constexpr std::int64_t kMaxChunk = 32;

std::int64_t chunk_panels(std::int64_t panel_size) {
    const std::int64_t fit = kChunkBytes / (panel_size * static_cast<std::int64_t>(sizeof(float)));
    return std::max<std::int64_t>(1, std::min(kMaxChunk, fit));
}

// Up to this many kept entries per query, a block's first chunk seeds the bars (below).
constexpr int kSeedMaxKeep = kTopkPanel / 2;

// Queries per group of a block's seed: their scores of the seed's chunk stay in L1 (6 x
// 32 panels of 32 floats: 24 KB) while they are selected from.  Measured with the seed's
// first version (panel_scores' tiles): groups of 12 and the whole block at once (768 KB
// through L2) left 16.8% and 17.0% of a 1-thread scan outside the scoring kernels, groups
// of 6 15.6%; not re-measured with block_scores.
constexpr int kSeedGroup = 6;

// The seed of a block's bars: its first n <= kMaxChunk panels (one chunk) scored in full
// by block_scores with every bar at -inf (so every (query, panel) row is a hit, and the
// scores come from the same register tiles as the rest of the scan), kSeedGroup queries at
// a time; every ineligible column set to -inf (padding and denied columns from `inelig`,
// each query's seen items from its exclusion row, whose cursor moves past them).  Then,
// per query, the kk-th largest of the 32 column maxima is a lower bound B of its kk-th
// best score: the kk columns whose maxima are >= B hold kk distinct eligible items
// scoring >= B.  So only columns >= B (> lower(B), which keeps ties: a tied item of lower
// id still wins) are offered, in ascending id order as before, and the kept sets are
// exactly those of offering every column.  Online top-k in id order offers ~k ln(n/k)
// insertions; here the first chunk's share of them (most of the ~90 per ML-20M user)
// shrinks to about the k it keeps.  s, hit_rows and masks: room for kSeedGroup x n rows.
void seed_block(const TopkRequest& r, const TopkKernels& kern, const Candidates& cand, const float* qb, int m,
                const float* pp, std::int64_t n, const std::uint32_t* inelig, int kk, QueryState* st, float* thr,
                float* s, std::int32_t* hit_rows, std::uint32_t* masks) {
    const float ninf = -std::numeric_limits<float>::infinity();
    const std::int64_t first_out = std::min(n * kTopkPanel, cand.count);  // candidate index past the chunk
    const std::int32_t id_end = cand.id(first_out - 1) + 1;
    float col[kTopkPanel];
    float* rows[kSeedGroup * kMaxChunk];  // row of (query u, panel p) at rows[u * n + p]
    for (int g = 0; g < m; g += kSeedGroup) {
        const int mg = std::min(kSeedGroup, m - g);
        const std::int64_t hits =
            kern.block_scores(qb + std::int64_t{g} * r.dim, r.dim, mg, r.dim, pp, n, thr + g, s, hit_rows, masks);
        for (std::int64_t e = 0; e < hits; ++e) rows[hit_rows[e]] = s + e * kTopkPanel;  // hits == mg * n
        for (int u = 0; u < mg; ++u) {
            float** su = rows + std::int64_t{u} * n;
            for (std::int64_t p = 0; p < n; ++p)
                for (std::uint32_t b = inelig[p]; b; b &= b - 1) su[p][__builtin_ctz(b)] = ninf;
            QueryState& q = st[g + u];
            std::int64_t c = q.cursor;
            for (; c < q.end && r.exclude_indices[c] < id_end; ++c) {
                const std::int32_t id = r.exclude_indices[c];
                std::int64_t idx = id;
                if (cand.subset) {
                    const auto it = std::lower_bound(cand.ids.begin(), cand.ids.end(), id);
                    if (it == cand.ids.end() || *it != id) continue;
                    idx = it - cand.ids.begin();
                } else if (id < 0) {
                    continue;  // outside [0, n_items): ignored
                }
                su[idx / kTopkPanel][idx % kTopkPanel] = ninf;
            }
            q.cursor = c;  // every id below id_end is now either -inf or not excluded
            kern.column_max(su, n, col);
            std::nth_element(col, col + (kk - 1), col + kTopkPanel, [](float a, float b) { return a > b; });
            q.thr = lower(col[kk - 1]);  // -inf when fewer than kk columns hold an eligible item
            kern.row_masks(su, n, q.thr, masks);
            for (std::int64_t p = 0; p < n; ++p)
                if (masks[p]) offer_columns(r, cand, q, kk, p, masks[p], su[p]);
        }
    }
    for (int u = 0; u < m; ++u) thr[u] = st[u].thr;
}

// ---- The batch scan's int8 pre-filter (TopkKernels::user_prefilter; PackedItems' int8 copy).
//
// After a block's first chunk (scored in float32: the seed, or the first growing chunks)
// has raised its users' bars, each later panel meets the whole block in the int8 copy
// first: self_bounds gives every (user, item) pair query_bounds' proven upper bound hi of
// its exact score (+inf column bars: only the user's bar counts) and sets the pair's bit
// iff hi > the user's bar, the test block_scores applies to the score itself.  As hi >=
// the exact score, every pair that block_scores would report has its bit set.  Those pairs
// (less the denied items) are scored exactly: a user with at most kPairMax of them in the
// panel pair by pair (pair_scores), more as a whole panel_scores row; both give the tiles'
// bits.  They are offered in ascending id order with offer_columns' tests: above the
// user's current bar, then not seen (the exclusion cursor only moves forward).  Every
// eligible item above a bar is offered, in the same order as by the float32 scan, so the
// kept sets -- the exact top kk, ties to the lower id -- are the same, bit for bit.  Bars
// rise after every panel (a panel is bounded with the bars of the panel before).
struct UserPrefilter {
    const PackedItems& pk;
    const float* cthr;  // +inf x 32: no column bars
    int dim, quads, m = 0;
    std::vector<PrefilterQuery> rows;
    std::vector<std::int32_t> w, one;     // the block's int8 rows (quad q of user u at w[q * m + u])
    std::vector<std::uint32_t> bmask, cbits, smask;
    AlignedFloats sub, sub_scores;         // users re-scored as tile rows
    std::vector<float> sub_thr;
    std::vector<int> hit_u, sub_u, pair_u;
    std::vector<std::int32_t> pair_a, pair_b;  // global user, item
    std::vector<float> pair_s;

    UserPrefilter(const PackedItems& packed, const float* no_bars, int block)
        : pk(packed), cthr(no_bars), dim(packed.dim()), quads(packed.quads()),
          rows(static_cast<std::size_t>(block)), w(static_cast<std::size_t>(block) * quads),
          one(static_cast<std::size_t>(quads)), bmask(static_cast<std::size_t>(block)),
          cbits(static_cast<std::size_t>(block)), smask(static_cast<std::size_t>(block)),
          sub(aligned_floats(static_cast<std::size_t>(block) * dim)),
          sub_scores(aligned_floats(static_cast<std::size_t>(block) * kTopkPanel)),
          sub_thr(static_cast<std::size_t>(block)), hit_u(static_cast<std::size_t>(block)),
          sub_u(static_cast<std::size_t>(block)),
          pair_u(static_cast<std::size_t>(block) * kPairMax), pair_a(pair_u.size()), pair_b(pair_u.size()),
          pair_s(pair_u.size()) {}

    // The block's m users as pre-filter queries; false when one's bound terms would not be
    // finite (then the block stays on the float32 scan).
    bool prepare(const float* qb, int users) {
        m = users;
        for (int u = 0; u < m; ++u)
            if (!prefilter_row(qb + std::int64_t{u} * dim, dim, one.data(), w.data() + u, m,
                               rows[static_cast<std::size_t>(u)]))
                return false;
        return true;
    }

    // Panels [p0, p1) for the block's users u0 .. u0 + m (states st, kernel bars thr).
    void scan(const TopkRequest& r, const TopkKernels& kern, const Candidates& cand, const Panels& panels,
              std::int64_t p0, std::int64_t p1, std::int64_t u0, int kk, QueryState* st, float* thr,
              TopkStats& stats) {
        for (std::int64_t p = p0; p < p1; ++p) {
            kern.self_bounds(rows.data(), w.data(), m, m, pk.panel8(p), pk.slack_floor(), thr, cthr, bmask.data());
            stats.bounded += std::int64_t{m} * kTopkPanel;
            const std::uint32_t valid = panels.valid(p);
            int nh = 0;  // the users with a bit set (about one in ten): a list without branches
            for (int u = 0; u < m; ++u) {
                hit_u[static_cast<std::size_t>(nh)] = u;
                nh += (bmask[static_cast<std::size_t>(u)] & valid) != 0;
            }
            int sm = 0, np = 0;
            for (int h = 0; h < nh; ++h) {
                const int u = hit_u[static_cast<std::size_t>(h)];
                std::uint32_t c = bmask[static_cast<std::size_t>(u)] & valid;
                for (std::uint32_t b = cand.denied.empty() ? 0u : c; b; b &= b - 1) {  // never a result
                    const int j = __builtin_ctz(b);
                    if (cand.is_denied(cand.id(p * kTopkPanel + j))) c &= ~(1u << j);
                }
                if (!c) continue;
                if (at_most_pair_max(c)) {
                    for (; c; c &= c - 1) {
                        pair_u[static_cast<std::size_t>(np)] = u;
                        pair_a[static_cast<std::size_t>(np)] = static_cast<std::int32_t>(u0 + u);
                        pair_b[static_cast<std::size_t>(np++)] = cand.id(p * kTopkPanel + __builtin_ctz(c));
                    }
                    continue;
                }
                cbits[static_cast<std::size_t>(u)] = c;
                std::memcpy(sub.get() + std::int64_t{sm} * dim, r.queries + (u0 + u) * dim,
                            sizeof(float) * static_cast<std::size_t>(dim));
                sub_thr[static_cast<std::size_t>(sm)] = st[u].thr;
                sub_u[static_cast<std::size_t>(sm++)] = u;
            }
            if (sm > 0) {
                kern.panel_scores(sub.get(), dim, sm, dim, panels.get(p, 1, nullptr), sub_thr.data(),
                                  sub_scores.get(), smask.data());
                for (int e = 0; e < sm; ++e) {
                    const int u = sub_u[static_cast<std::size_t>(e)];
                    const float* s = sub_scores.get() + std::int64_t{e} * kTopkPanel;
                    for (std::uint32_t b = smask[static_cast<std::size_t>(e)] & cbits[static_cast<std::size_t>(u)]; b;
                         b &= b - 1) {
                        const int j = __builtin_ctz(b);
                        const std::int32_t id = cand.id(p * kTopkPanel + j);
                        if (s[j] > st[u].thr && !excluded(r, st[u], id))
                            heap_offer(st[u].heap, st[u].count, st[u].thr, kk, Entry{s[j], id});
                    }
                    thr[u] = st[u].thr;
                }
                stats.tile_rows += sm;
                stats.exact += std::int64_t{sm} * kTopkPanel;
            }
            if (np > 0) {
                kern.pair_scores(r.queries, r.items, dim, pair_a.data(), pair_b.data(), np, pair_s.data());
                for (int e = 0; e < np; ++e) {  // each user's pairs in ascending ids
                    const int u = pair_u[static_cast<std::size_t>(e)];
                    QueryState& q = st[u];
                    const float f = pair_s[static_cast<std::size_t>(e)];
                    const std::int32_t id = pair_b[static_cast<std::size_t>(e)];
                    if (f > q.thr && !excluded(r, q, id)) heap_offer(q.heap, q.count, q.thr, kk, Entry{f, id});
                    thr[u] = q.thr;
                }
                stats.single += np;
                stats.exact += np;
            }
        }
    }
};

// Queries in blocks (OpenMP, dynamic), each block against the panels in chunks through
// block_scores; each query's bar is raised as its hits are offered, and the kernel's copy
// of it after every chunk.  With kk <= kSeedMaxKeep the first chunk seeds the bars
// (seed_block); otherwise the first chunks of a block grow from one panel (1, 2, 4, ...:
// bars start at -inf, and a long first chunk would make every score of it a hit).  With
// `pre` (PackedItems' int8 copy of every item), the panels past the first chunk go
// through the int8 pre-filter instead (UserPrefilter), unless a block's users cannot be
// prepared for it.  Exceptions (allocation) go through ParallelError (see threads.hpp).
void scan_blocks(const TopkRequest& r, const TopkKernels& kern, const Candidates& cand, const Panels& panels,
                 int k, int kk, int block, int nt, const PackedItems* pre, std::int32_t* out_ids, float* out_scores) {
    const std::int64_t nq = r.n_queries;
    const std::int64_t n_blocks = (nq + block - 1) / block;
    const std::int64_t chunk = chunk_panels(panels.panel_size());
    const std::size_t capacity = static_cast<std::size_t>(block * chunk + 1);
    // the seed's chunk, and its ineligible columns (padding past the last candidate, denied)
    const std::int64_t seed = kk <= kSeedMaxKeep ? std::min(chunk, panels.count()) : 0;
    std::vector<std::uint32_t> inelig(static_cast<std::size_t>(seed));
    for (std::int64_t p = 0; p < seed; ++p) {
        inelig[p] = ~panels.valid(p);
        for (int j = 0; j < kTopkPanel && !cand.denied.empty(); ++j)
            if (p * kTopkPanel + j < cand.count && cand.is_denied(cand.id(p * kTopkPanel + j))) inelig[p] |= 1u << j;
    }
    alignas(64) float no_bars[kTopkPanel];
    std::fill(no_bars, no_bars + kTopkPanel, std::numeric_limits<float>::infinity());
    ParallelError error;
#pragma omp parallel num_threads(nt)
    {
        std::vector<Entry> heaps;
        AlignedFloats scores, local_panels;
        std::vector<std::int32_t> hit_rows;
        std::vector<std::uint32_t> hit_masks;
        std::unique_ptr<UserPrefilter> pf;
        TopkStats stats;
        error.run([&] {
            if (pre != nullptr) pf.reset(new UserPrefilter(*pre, no_bars, block));
            heaps.resize(static_cast<std::size_t>(block) * kk);
            // hit rows, or the seed's full chunk (as many floats: block x chunk rows of 32)
            scores = aligned_floats(capacity * kTopkPanel);
            hit_rows.resize(capacity);
            hit_masks.resize(capacity);
            if (!panels.resident())
                local_panels = aligned_floats(static_cast<std::size_t>(chunk * panels.panel_size()));
        });
        QueryState st[kTopkMaxBlock];
        float thr[kTopkMaxBlock];

#pragma omp for schedule(dynamic, 1)
        for (std::int64_t b = 0; b < n_blocks; ++b) error.run([&] {  // skipped once any thread failed
            const std::int64_t u0 = b * block;
            const int m = static_cast<int>(std::min<std::int64_t>(block, nq - u0));
            for (int u = 0; u < m; ++u) {
                st[u] = start_query(r, u0 + u, heaps.data() + static_cast<std::size_t>(u) * kk);
                thr[u] = st[u].thr;
            }
            const float* qb = r.queries + u0 * r.dim;
            std::int64_t p_start = 0, step = 1;
            if (seed > 0) {
                seed_block(r, kern, cand, qb, m, panels.get(0, seed, local_panels.get()), seed, inelig.data(), kk,
                           st, thr, scores.get(), hit_rows.data(), hit_masks.data());
                p_start = step = seed;
                stats.exact += std::int64_t{m} * seed * kTopkPanel;
            }
            const bool prefiltered = pf && pf->prepare(qb, m);
            for (std::int64_t p0 = p_start, n = 0; p0 < panels.count(); p0 += n, step = std::min(2 * step, chunk)) {
                if (prefiltered && p0 >= chunk) {  // the bars have risen: the rest through the int8 copy
                    pf->scan(r, kern, cand, panels, p0, panels.count(), u0, kk, st, thr, stats);
                    break;
                }
                n = std::min(step, panels.count() - p0);
                if (prefiltered) n = std::min(n, std::max(chunk - p0, std::int64_t{1}));  // stop at `chunk`
                stats.exact += std::int64_t{m} * n * kTopkPanel;
                const std::int64_t hits =
                    kern.block_scores(qb, r.dim, m, r.dim, panels.get(p0, n, local_panels.get()), n, thr,
                                      scores.get(), hit_rows.data(), hit_masks.data());
                const auto n32 = static_cast<std::int32_t>(n);  // a 32-bit division per hit
                for (std::int64_t e = 0; e < hits; ++e) {
                    const std::int64_t u = hit_rows[e] / n32, p = p0 + hit_rows[e] % n32;
                    offer_columns(r, cand, st[u], kk, p, hit_masks[e] & panels.valid(p), scores.get() + e * kTopkPanel);
                }
                for (int u = 0; u < m; ++u) thr[u] = st[u].thr;
            }
            for (int u = 0; u < m; ++u) write_result(st[u], u0 + u, k, out_ids, out_scores);
        });
        if (r.stats != nullptr) {
#pragma omp critical(tastemaker_topk_stats)
            *r.stats += stats;
        }
    }
    error.rethrow_if_failed();
}

// PackedItems' int8 copy of every item for a pre-filter: the caller's, or one built here
// into `own` (with the float32 panels, instead of packing them alone); null above the
// copy's limit (dim > kPrefilterMaxDim).
const PackedItems* prefilter_copy(const TopkRequest& r, int nt, std::unique_ptr<PackedItems>& own) {
    if (r.packed != nullptr && r.packed->has_prefilter()) return r.packed;
    if (r.dim > kPrefilterMaxDim) return nullptr;
    own.reset(new PackedItems(r.items, r.n_items, r.dim, nt));
    return own.get();
}

// Queries per block: the kernel's, but small enough that every thread gets a few
// blocks (a multiple of 12, the AVX-512 tile height).
int block_size(const TopkKernels& kern, std::int64_t nq, int nt) {
    int block = kern.query_block;
    if (block < 1 || block > kTopkMaxBlock) block = kTopkMaxBlock;
    const std::int64_t fair = (nq + 4 * std::int64_t{nt} - 1) / (4 * std::int64_t{nt});
    if (fair < block) block = static_cast<int>(std::max<std::int64_t>(12, (fair + 11) / 12 * 12));
    return block;
}

// similar_items for every item: queries are the items and each row excludes exactly
// itself.  Scores are symmetric bit for bit (fma(a, b, c) == fma(b, a, c)), so each pair
// can be scored once and offered to both rows' heaps: half the arithmetic.  Each thread
// keeps heaps for every row (merged at the end), bounded to 1 GiB in all.  A deny-list
// (as a per-item flag) is honoured: a denied item is offered to no row.
bool is_self_join(const TopkRequest& r, const Candidates& cand, int kk, int nt) {
    const std::int64_t nq = r.n_queries;
    if (r.queries != r.items || nq != r.n_items || nq < kPackMin || cand.subset || r.exclude_indptr == nullptr)
        return false;
    if (static_cast<double>(nt) * nq * (kk * sizeof(Entry) + 8) > double(1 << 30)) return false;
    if (r.exclude_indptr[nq] != nq) return false;
    for (std::int64_t q = 0; q < nq; ++q)
        if (r.exclude_indptr[q] != q || r.exclude_indices[q] != q) return false;
    return true;
}

// Top-kk of every row of x (n x dim) against all other rows, each pair scored once.
// Row block [r0, r0 + m) meets panels from the one holding r0 onwards; a pair (i, j) is
// used only when j > i, then offered to row i (as a column id) and to row j (as a row
// id).  Heaps arrive out of id order, hence the `>=` thresholds (see lower()).  A thread's
// bars are only filters: whatever bar a row had when a pair was scored, every pair that can
// be in the row's top-kk is offered to the thread that scored it, and the per-thread heaps
// are merged exactly at the end, so the result does not depend on the thread count or on
// when another thread's bar arrived.
//
// The int8 pre-filter (pk non-null: PackedItems' int8 copy of x): every row is prepared as
// a query (prefilter_query), and a group of rows meets a panel first through self_bounds,
// whose upper bound of every exact score is compared with min(row bar, column bar) as
// self_scores compares the score itself; only the rows with a bit set in their upper
// triangle are scored exactly, by self_scores on a copy of those rows.  A score above
// either bar has its bound above it too, so every row that has a hit in the exact tile is
// scored and offered exactly as without the pre-filter: same offers, same heaps, same bits.
void self_topk(const TopkKernels& kern, const Candidates& cand, const float* x, std::int64_t n, int dim, int k,
               int kk, int block, int nt, const float* packed, const PackedItems* pk, std::int32_t* out_ids,
               float* out_scores) {
    const std::int64_t n_panels = (n + kTopkPanel - 1) / kTopkPanel;
    const std::int64_t panel_size = static_cast<std::int64_t>(dim) * kTopkPanel;
    const std::int64_t n_blocks = (n + block - 1) / block;
    const float ninf = -std::numeric_limits<float>::infinity();
    // per thread: heaps (n x kk), counts, and each row's bar: lower(root score) of its
    // full heap (-inf until full), or a higher one pulled from another thread; padded to
    // whole panels so a panel's 32 bars can be read at once
    std::vector<std::vector<Entry>> heaps(static_cast<std::size_t>(nt));
    std::vector<std::vector<int>> counts(static_cast<std::size_t>(nt));
    std::vector<std::vector<float>> bars(static_cast<std::size_t>(nt)), scratch(static_cast<std::size_t>(nt));
    std::vector<std::vector<Entry>> merge(static_cast<std::size_t>(nt));
    for (int t = 0; t < nt; ++t) {
        scratch[t].resize(static_cast<std::size_t>(2 * kSelfGroup) * kTopkPanel);
        merge[t].resize(static_cast<std::size_t>(nt) * kk);
        heaps[t].resize(static_cast<std::size_t>(n) * kk);
        counts[t].assign(static_cast<std::size_t>(n), 0);
        bars[t].assign(static_cast<std::size_t>(n_panels * kTopkPanel), ninf);
    }
    // With several threads, each row's best bar over all threads: a thread's full heap
    // holds kk distinct items scoring >= its root, so any thread may filter with it
    // (`shared`, an atomic max).  And, as each pair is scored by one thread only, the
    // threads' kept sets of a row are disjoint: if every thread keeps `share` = ceil(kk /
    // nt) items scoring >= v_t, together they hold kk distinct items scoring >= min_t v_t,
    // which is the better bar when each thread has seen only its part of the row's pairs
    // (about the kk-th best of all of them, against the root of one thread's kk-th best of
    // a 1 / nt part).  `part[t]` holds lower(v_t) of thread t (kept sets of kk <=
    // kSortedKeep are sorted: v_t is an entry, read without a search), -inf until known.
    // Kept sets only improve, so any bar read late is lower, never wrong.
    const std::size_t n_bars = static_cast<std::size_t>(n_panels * kTopkPanel);
    const int share = (kk + nt - 1) / nt;
    std::unique_ptr<std::atomic<float>[]> shared, part;
    if (nt > 1) {
        shared.reset(new std::atomic<float>[n_bars]);
        for (std::size_t e = 0; e < n_bars; ++e) shared[e].store(ninf, std::memory_order_relaxed);
        if (kk <= kSortedKeep) {
            part.reset(new std::atomic<float>[n_bars * static_cast<std::size_t>(nt)]);
            for (std::size_t e = 0; e < n_bars * static_cast<std::size_t>(nt); ++e)
                part[e].store(ninf, std::memory_order_relaxed);
        }
    }
    auto pull = [&](float* bar, std::int64_t x0, std::int64_t len) {
        if (!shared) return;
        for (std::int64_t x = x0; x < x0 + len; ++x) {
            float b = std::max(bar[x], shared[x].load(std::memory_order_relaxed));
            if (part) {
                float v = part[static_cast<std::size_t>(x)].load(std::memory_order_relaxed);
                for (int t = 1; t < nt; ++t)
                    v = std::min(v, part[static_cast<std::size_t>(t) * n_bars + x].load(std::memory_order_relaxed));
                b = std::max(b, v);
            }
            bar[x] = b;
        }
    };
    auto push = [&](int t, const float* bar, const Entry* H, const int* cnt, std::int64_t x0, std::int64_t len) {
        if (!shared) return;
        for (std::int64_t x = x0; x < x0 + len; ++x) {
            float cur = shared[x].load(std::memory_order_relaxed);
            while (bar[x] > cur && !shared[x].compare_exchange_weak(cur, bar[x], std::memory_order_relaxed)) {
            }
            if (part && x < n && cnt[x] >= share)  // only thread t writes part[t]
                part[static_cast<std::size_t>(t) * n_bars + x].store(lower(H[x * kk + cnt[x] - share].score),
                                                                    std::memory_order_relaxed);
        }
    };
    // The rows as pre-filter queries (none when a row's bound terms would not be finite),
    // their int8 values interleaved per group of kSelfGroup rows (groups start at
    // multiples of kSelfGroup: blocks are multiples of 12): quad q of row i at
    // row_w[((i / 12) * quads + q) * 12 + i % 12], so a tile reads one stream.
    std::vector<PrefilterQuery> rows;
    std::vector<std::int32_t> row_w;
    const int quads = pk != nullptr ? pk->quads() : 0;
    if (pk != nullptr && pk->has_prefilter() && block % kSelfGroup == 0) {
        const std::int64_t n_groups = (n + kSelfGroup - 1) / kSelfGroup;
        rows.resize(static_cast<std::size_t>(n));
        row_w.assign(static_cast<std::size_t>(n_groups * kSelfGroup) * quads, 0);
        std::atomic<bool> finite{true};
        ParallelError error;
#pragma omp parallel num_threads(nt)
        {
            std::vector<std::int32_t> w(static_cast<std::size_t>(quads));
#pragma omp for schedule(static)
            for (std::int64_t i = 0; i < n; ++i) error.run([&] {
                std::int32_t* dst = row_w.data() + (i / kSelfGroup) * quads * kSelfGroup + i % kSelfGroup;
                if (!prefilter_row(x + i * dim, dim, w.data(), dst, kSelfGroup, rows[static_cast<std::size_t>(i)]))
                    finite.store(false, std::memory_order_relaxed);
            });
        }
        error.rethrow_if_failed();
        if (!finite.load()) rows.clear();
    }
    const bool pre = !rows.empty();
    ParallelError error;  // nothing in the loops throws; kept for the rule (see threads.hpp)
#pragma omp parallel num_threads(nt)
    {
#ifdef _OPENMP
        const int t = omp_get_thread_num();
#else
        const int t = 0;
#endif
        Entry* H = heaps[t].data();
        int* cnt = counts[t].data();
        float* bar = bars[t].data();
        std::vector<float>& scores = scratch[t];
        auto offer = [&](std::int64_t row, float score, std::int64_t id) {
            if (cand.is_denied(static_cast<std::int32_t>(id))) return;  // never a result
            float unused;
            Entry* h = H + row * kk;
            heap_offer(h, cnt[row], unused, kk, Entry{score, static_cast<std::int32_t>(id)});
            if (cnt[row] == kk) bar[row] = std::max(bar[row], lower(h[0].score));
        };
        // room for one group's rows, or the pre-filter's pending rows (fewer than 2 groups)
        constexpr int kRows = 2 * kSelfGroup;
        std::uint32_t rmask[kRows], cmask[kRows], bmask[kSelfGroup];
        std::int32_t hit_rows[kRows];
        std::int64_t pending[kRows];  // the rows copied to sub, in order
        alignas(64) float sub_bar[kRows];
        std::vector<float> sub(pre ? static_cast<std::size_t>(kRows) * dim : 0);
        const std::size_t pair_cap = pre ? static_cast<std::size_t>(block) * kPairMax : 0;
        std::vector<std::int32_t> pair_a(pair_cap), pair_b(pair_cap);
        std::vector<float> pair_s(pair_cap);
#pragma omp for schedule(dynamic, 1)
        for (std::int64_t b = 0; b < n_blocks; ++b) error.run([&] {
            const std::int64_t r0 = b * block;
            const int m = static_cast<int>(std::min<std::int64_t>(block, n - r0));
            pull(bar, r0, m);
            for (std::int64_t p = r0 / kTopkPanel; p < n_panels; ++p) {
                const std::int64_t c0 = p * kTopkPanel;
                const int w = static_cast<int>(std::min<std::int64_t>(kTopkPanel, n - c0));
                pull(bar, c0, kTopkPanel);
                const std::uint32_t valid = w == kTopkPanel ? 0xFFFFFFFFu : (1u << w) - 1u;
                // columns c0 + j > i (and valid) of row i
                auto upper_of = [&](std::int64_t i) -> std::uint32_t {
                    if (i >= c0 + kTopkPanel - 1) return 0u;
                    return i >= c0 ? valid & ~((2u << (i - c0)) - 1u) : valid;
                };
                // the exact tile of sm rows (q, bars qbar), hit e being row row_of(e)
                auto score = [&](const float* q, int sm, const float* qbar, auto row_of) {
                    const std::int64_t hits = kern.self_scores(q, dim, sm, dim, packed + p * panel_size, qbar,
                                                               bar + c0, scores.data(), hit_rows, rmask, cmask);
                    for (std::int64_t e = 0; e < hits; ++e) {
                        const std::int64_t i = row_of(hit_rows[e]);
                        const std::uint32_t upper = upper_of(i);
                        const float* su = scores.data() + static_cast<std::size_t>(e) * kTopkPanel;
                        std::uint32_t bits = rmask[e] & upper;
                        while (bits) {
                            const int j = __builtin_ctz(bits);
                            bits &= bits - 1;
                            offer(i, su[j], c0 + j);
                        }
                        bits = cmask[e] & upper;
                        while (bits) {
                            const int j = __builtin_ctz(bits);
                            bits &= bits - 1;
                            offer(c0 + j, su[j], i);
                        }
                    }
                };
                if (!pre) {
                    for (int g0 = 0; g0 < m; g0 += kSelfGroup)  // column bars rise between groups
                        score(x + (r0 + g0) * dim, std::min(kSelfGroup, m - g0), bar + r0 + g0,
                              [&](std::int32_t u) { return r0 + g0 + u; });
                    push(t, bar, H, cnt, c0, kTopkPanel);
                    continue;
                }
                // The pre-filter: a group's rows whose bounds reach a bar in their upper
                // triangle at up to kPairMax columns have those pairs scored alone
                // (pair_scores, at the end of the panel); rows with more are copied to
                // sub, and once a group's worth is pending they are scored exactly (whole
                // tiles, whatever the group left).  Either way with the bars as they are
                // then, so every score above a bar is offered.
                int sm = 0;
                std::int64_t np = 0;
                auto flush = [&] {
                    for (int e = 0; e < sm; ++e) sub_bar[e] = bar[pending[e]];
                    score(sub.data(), sm, sub_bar, [&](std::int32_t e) { return pending[e]; });
                    sm = 0;
                };
                for (int g0 = 0; g0 < m; g0 += kSelfGroup) {
                    const int gm = std::min(kSelfGroup, m - g0);
                    kern.self_bounds(rows.data() + r0 + g0, row_w.data() + (r0 + g0) * quads, kSelfGroup, gm,
                                     pk->panel8(p), pk->slack_floor(), bar + r0 + g0, bar + c0, bmask);
                    for (int u = 0; u < gm; ++u) {
                        const std::int64_t i = r0 + g0 + u;
                        std::uint32_t c = bmask[u] & upper_of(i);
                        if (!c) continue;
                        if (at_most_pair_max(c)) {
                            for (; c; c &= c - 1) {
                                pair_a[static_cast<std::size_t>(np)] = static_cast<std::int32_t>(i);
                                pair_b[static_cast<std::size_t>(np++)] = static_cast<std::int32_t>(c0 + __builtin_ctz(c));
                            }
                            continue;
                        }
                        std::memcpy(sub.data() + std::size_t(sm) * dim, x + i * dim,
                                    sizeof(float) * static_cast<std::size_t>(dim));
                        pending[sm++] = i;
                    }
                    if (sm >= kSelfGroup) flush();
                }
                if (sm > 0) flush();
                if (np > 0) {
                    kern.pair_scores(x, x, dim, pair_a.data(), pair_b.data(), np, pair_s.data());
                    for (std::int64_t e = 0; e < np; ++e) {
                        const std::int32_t i = pair_a[static_cast<std::size_t>(e)],
                                           j = pair_b[static_cast<std::size_t>(e)];
                        const float f = pair_s[static_cast<std::size_t>(e)];
                        if (f > bar[i]) offer(i, f, j);
                        if (f > bar[j]) offer(j, f, i);
                    }
                }
                push(t, bar, H, cnt, c0, kTopkPanel);
            }
            push(t, bar, H, cnt, r0, m);
        });
        // implicit barrier: every thread's heaps are complete
        std::vector<Entry>& all = merge[t];
#pragma omp for schedule(static)
        for (std::int64_t i = 0; i < n; ++i) error.run([&] {
            std::size_t len = 0;
            for (int s = 0; s < nt; ++s)
                for (int e = 0; e < counts[s][i]; ++e) all[len++] = heaps[s][i * kk + e];
            const std::size_t keep = std::min<std::size_t>(len, static_cast<std::size_t>(kk));
            std::partial_sort(all.begin(), all.begin() + keep, all.begin() + len,
                              [](const Entry& a, const Entry& c) { return below(c, a); });
            for (std::size_t e = 0; e < keep; ++e) {
                out_ids[i * k + e] = all[e].id;
                out_scores[i * k + e] = all[e].score;
            }
        });
    }
    error.rethrow_if_failed();
}

}  // namespace

void topk_inner_product(const TopkRequest& r, std::int32_t* out_ids, float* out_scores) {
    validate(r);
    const std::int64_t nq = r.n_queries;
    const int k = r.k;
    if (nq == 0 || k == 0) return;
    if (out_ids == nullptr || out_scores == nullptr) invalid("out: null pointer");
    const TopkKernels& kern = topk_kernels();
    check_values(r, kern);
    std::fill(out_ids, out_ids + nq * k, -1);
    std::fill(out_scores, out_scores + nq * k, -std::numeric_limits<float>::infinity());

    const Candidates cand = select_candidates(r);
    if (cand.count == 0) return;
    const int kk = static_cast<int>(std::min<std::int64_t>(k, cand.count));
    Panels panels(r, kern, cand);
    if (nq == 1) {
        scan_single(r, kern, cand, panels, k, kk, out_ids, out_scores);
        return;
    }
    int nt = resolve_threads(r.num_threads);
    const int block = block_size(kern, nq, nt);
    const std::int64_t n_blocks = (nq + block - 1) / block;
    if (nt > n_blocks) nt = static_cast<int>(n_blocks);
    if (is_self_join(r, cand, kk, nt)) {
        std::unique_ptr<PackedItems> own;
        const bool pre = r.self_prefilter < 0 ? kern.self_prefilter : r.self_prefilter > 0;
        const PackedItems* pk = pre ? prefilter_copy(r, nt, own) : nullptr;
        if (!own) panels.pack_all(nt);
        self_topk(kern, cand, r.queries, nq, r.dim, k, kk, block, nt, own ? own->panel(0) : panels.get(0, 0, nullptr),
                  pk, out_ids, out_scores);
        return;
    }
    // The batch pre-filter needs the int8 copy (prefilter_copy) and panels past a block's
    // first chunk.
    const bool user_pre = (r.user_prefilter < 0 ? kern.user_prefilter : r.user_prefilter > 0) && nq >= kPackMin &&
                          !cand.subset && panels.count() > chunk_panels(panels.panel_size());
    std::unique_ptr<PackedItems> own;
    const PackedItems* pk = user_pre ? prefilter_copy(r, nt, own) : nullptr;
    if (!own) {
        if (nq >= kPackMin) panels.pack_all(nt);  // resident already with the caller's copy
        scan_blocks(r, kern, cand, panels, k, kk, block, nt, pk, out_ids, out_scores);
        return;
    }
    TopkRequest own_r = r;
    own_r.packed = own.get();
    const Panels own_panels(own_r, kern, cand);
    scan_blocks(own_r, kern, cand, own_panels, k, kk, block, nt, pk, out_ids, out_scores);
}

void PackedItems::Free::operator()(float* p) const noexcept { std::free(p); }

PackedItems::PackedItems(const float* items, std::int64_t n_items, int dim, int num_threads) {
    if (n_items < 0) invalid("items: negative number of rows");
    if (n_items > std::numeric_limits<std::int32_t>::max()) invalid("items: more than 2^31 - 1 rows");
    if (dim < 1) invalid("items: expected at least one column, got " + std::to_string(dim));
    if (n_items > 0 && items == nullptr) invalid("items: null pointer");
    const TopkKernels& kern = topk_kernels();
    absmax_ = kern.finite_absmax(items, n_items * dim);
    if (!std::isfinite(absmax_)) invalid("items: contains NaN or inf values");
    n_items_ = n_items;
    dim_ = dim;
    TopkRequest r;
    r.items = items;
    r.n_items = n_items;
    r.dim = dim;
    const Candidates all = select_candidates(r);
    Panels panels(r, kern, all);
    n_panels_ = panels.count();
    AlignedFloats buf = aligned_floats(static_cast<std::size_t>(n_panels_ * panels.panel_size()));
    panels.pack_into(buf.get(), resolve_threads(num_threads));  // the same packing as a call's
    panels_.reset(buf.release());
    if (n_items > 0 && dim <= kPrefilterMaxDim) build_prefilter(items, resolve_threads(num_threads));
}

// The int8 copy, each item's scale and slack (the bound's coefficient), and the floor,
// as the proof above scan_prefiltered requires.  Per item, in double: the scale from the
// item's max |y|, the int8 values rounded to nearest (clamped to +-kPrefilterItemMax), and the largest
// residual |y - scale q| measured, so the bound holds whatever the scale's rounding did.
void PackedItems::build_prefilter(const float* items, int num_threads) {
    AlignedFloats buf = aligned_floats(static_cast<std::size_t>(n_panels_ * panel8_bytes() / 4));
    std::uint8_t* q8 = reinterpret_cast<std::uint8_t*>(buf.get());
    std::vector<float> scales(static_cast<std::size_t>(n_items_));
    const double rel = (3.0 * dim_ + 8.0) * 0x1p-24;
    ParallelError error;  // nothing in the loop throws; kept for the rule (see threads.hpp)
#pragma omp parallel for schedule(static) num_threads(num_threads)
    for (std::int64_t p = 0; p < n_panels_; ++p) error.run([&] {
        std::uint8_t* panel = q8 + p * panel8_bytes();
        float* scale = reinterpret_cast<float*>(panel + quads() * 4 * kTopkPanel);
        float* slack = scale + kTopkPanel;
        float* mass = slack + kTopkPanel;
        // byte of item j, factor k: row k / 4 (128 bytes), then quad j, then k % 4; Q + bias
        constexpr auto kBias = static_cast<std::uint8_t>(kPrefilterItemBias);
        const double top = kPrefilterItemMax;
        auto at = [&](int j, int k) -> std::uint8_t& { return panel[(k / 4) * 4 * kTopkPanel + 4 * j + (k % 4)]; };
        for (int j = 0; j < kTopkPanel; ++j) {
            const std::int64_t i = p * kTopkPanel + j;
            for (int k = dim_; k < 4 * quads(); ++k) at(j, k) = kBias;  // the pad factors: Q = 0
            if (i >= n_items_) {  // padding: scale 0, slack 0, values 0
                scale[j] = slack[j] = mass[j] = 0.0f;
                for (int k = 0; k < dim_; ++k) at(j, k) = kBias;
                continue;
            }
            const float* y = items + i * dim_;
            float m = 0.0f;
            for (int k = 0; k < dim_; ++k) m = std::max(m, std::fabs(y[k]));
            const float s = m / static_cast<float>(kPrefilterItemMax);
            double e = 0.0, q1 = 0.0;
            for (int k = 0; k < dim_; ++k) {
                double v = s > 0.0f ? std::nearbyint(static_cast<double>(y[k]) / s) : 0.0;
                v = std::min(top, std::max(-top, v));
                at(j, k) = static_cast<std::uint8_t>(static_cast<int>(v) + kBias);
                e = std::max(e, std::fabs(static_cast<double>(y[k]) - static_cast<double>(s) * v));
                q1 += std::fabs(v);
            }
            const double M = std::max(static_cast<double>(m), top * static_cast<double>(s));
            scale[j] = scales[static_cast<std::size_t>(i)] = s;
            slack[j] = float_up((e + M * rel) * (1.0 + 0x1p-20));
            mass[j] = float_up(static_cast<double>(s) * q1);  // exact in double: < 2^44
        }
    });
    error.rethrow_if_failed();
    float max_scale = 0.0f;
    for (float s : scales) max_scale = std::max(max_scale, s);
    // At least the smallest normal float: a subnormal operand costs a microcode assist per
    // vector on Intel cores (it made the whole scan 3x slower); a larger floor only loosens
    // bounds of scores near 1e-38.
    slack_floor_ = std::max(float_up((4.0 * dim_ + 16.0) * 0x1p-150 * (1.0 + 2.0 * max_scale) * (1.0 + 0x1p-20)),
                            std::numeric_limits<float>::min());
    prefilter_.reset(buf.release());
}

}  // namespace tastemaker
