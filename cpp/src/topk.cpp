// Exact top-k driver: validation, candidate set, item packing, the blocked scan with a
// per-query threshold, lazy exclusion and a k-element heap.  The arithmetic lives in
// the per-ISA panel kernels (cpp/src/kernels/topk_*.cpp).
#include "tastemaker/topk.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "tastemaker/threads.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tastemaker {

TASTEMAKER_SIMD_DISPATCH(TopkKernels, topk_kernels)

namespace {

constexpr int kPackMin = 16;    // below this many queries, transpose panels on the fly

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

// Offer e to a heap of capacity kk holding `count` entries; thr tracks the root score
// once the heap is full (the bar a later candidate must reach).
inline void heap_offer(Entry* h, int& count, float& thr, int kk, const Entry& e) {
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

// Top-kk of every row of x (n x dim) against all other rows, each pair scored once.
// Row block [r0, r0 + m) meets panels from the one holding r0 onwards; a pair (i, j) is
// used only when j > i, then offered to row i (as a column id) and to row j (as a row
// id).  Heaps arrive out of id order, hence the `>=` thresholds (see lower()).
void self_topk(const TopkKernels& kern, const float* x, std::int64_t n, int dim, int k, int kk, int block,
               int nt, const float* packed, std::int32_t* out_ids, float* out_scores) {
    const std::int64_t n_panels = (n + kTopkPanel - 1) / kTopkPanel;
    const std::int64_t panel_size = static_cast<std::int64_t>(dim) * kTopkPanel;
    const std::int64_t n_blocks = (n + block - 1) / block;
    const float ninf = -std::numeric_limits<float>::infinity();
    // per thread: heaps (n x kk), counts, and each heap's bar lower(root score) (-inf
    // until full), padded to whole panels so a panel's 32 bars can be read at once
    std::vector<std::vector<Entry>> heaps(static_cast<std::size_t>(nt));
    std::vector<std::vector<int>> counts(static_cast<std::size_t>(nt));
    std::vector<std::vector<float>> bars(static_cast<std::size_t>(nt)), scratch(static_cast<std::size_t>(nt));
    std::vector<std::vector<Entry>> merge(static_cast<std::size_t>(nt));
    for (int t = 0; t < nt; ++t) {
        scratch[t].resize(static_cast<std::size_t>(block) * kTopkPanel);
        merge[t].resize(static_cast<std::size_t>(nt) * kk);
        heaps[t].resize(static_cast<std::size_t>(n) * kk);
        counts[t].assign(static_cast<std::size_t>(n), 0);
        bars[t].assign(static_cast<std::size_t>(n_panels * kTopkPanel), ninf);
    }
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
            float unused;
            Entry* h = H + row * kk;
            heap_offer(h, cnt[row], unused, kk, Entry{score, static_cast<std::int32_t>(id)});
            if (cnt[row] == kk) bar[row] = lower(h[0].score);
        };
        std::uint32_t rmask[kTopkMaxBlock], cmask[kTopkMaxBlock];
#pragma omp for schedule(dynamic, 1)
        for (std::int64_t b = 0; b < n_blocks; ++b) {
            const std::int64_t r0 = b * block;
            const int m = static_cast<int>(std::min<std::int64_t>(block, n - r0));
            for (std::int64_t p = r0 / kTopkPanel; p < n_panels; ++p) {
                const std::int64_t c0 = p * kTopkPanel;
                const int w = static_cast<int>(std::min<std::int64_t>(kTopkPanel, n - c0));
                kern.panel_scores(x + r0 * dim, dim, m, dim, packed + p * panel_size, bar + r0, scores.data(),
                                  rmask);
                kern.column_masks(scores.data(), m, bar + c0, cmask);
                const std::uint32_t valid = w == kTopkPanel ? 0xFFFFFFFFu : (1u << w) - 1u;
                for (int u = 0; u < m; ++u) {
                    if ((rmask[u] | cmask[u]) == 0) continue;
                    const std::int64_t i = r0 + u;
                    std::uint32_t upper = valid;  // columns c0 + j > i
                    if (i >= c0 + kTopkPanel - 1) continue;
                    if (i >= c0) upper &= ~((2u << (i - c0)) - 1u);
                    const float* su = scores.data() + static_cast<std::size_t>(u) * kTopkPanel;
                    std::uint32_t bits = rmask[u] & upper;
                    while (bits) {
                        const int j = __builtin_ctz(bits);
                        bits &= bits - 1;
                        offer(i, su[j], c0 + j);
                    }
                    bits = cmask[u] & upper;
                    while (bits) {
                        const int j = __builtin_ctz(bits);
                        bits &= bits - 1;
                        offer(c0 + j, su[j], i);
                    }
                }
            }
        }
        // implicit barrier: every thread's heaps are complete
        std::vector<Entry>& all = merge[t];
#pragma omp for schedule(static)
        for (std::int64_t i = 0; i < n; ++i) {
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
        }
    }
}

}  // namespace

void topk_inner_product(const TopkRequest& r, std::int32_t* out_ids, float* out_scores) {
    validate(r);
    const std::int64_t nq = r.n_queries;
    const int k = r.k;
    const int dim = r.dim;
    if (nq == 0 || k == 0) return;
    if (out_ids == nullptr || out_scores == nullptr) invalid("out: null pointer");
    const TopkKernels& kern = topk_kernels();
    {
        // One bound for every partial sum: |sum_k q_k x_k| <= dim * max|q| * max|x|.
        const float qmax = kern.finite_absmax(r.queries, nq * dim);
        if (!std::isfinite(qmax)) invalid("queries: contains NaN or inf values");
        const float imax = kern.finite_absmax(r.items, r.n_items * dim);
        if (!std::isfinite(imax)) invalid("items: contains NaN or inf values");
        if (static_cast<double>(dim) * qmax * imax > 1e37)
            invalid("items: values so large that scores overflow float32 (max |query| " +
                    std::to_string(qmax) + ", max |item| " + std::to_string(imax) + ")");
    }
    const float ninf = -std::numeric_limits<float>::infinity();
    std::fill(out_ids, out_ids + nq * k, -1);
    std::fill(out_scores, out_scores + nq * k, ninf);

    // Candidate items, ascending (the scan relies on increasing ids per query: an item
    // tying the current k-th score always has a higher id and correctly loses).
    std::vector<std::int32_t> cand;
    std::vector<unsigned char> denied;
    bool use_cand = false;
    if (r.allow != nullptr) {
        std::vector<unsigned char> in(static_cast<std::size_t>(r.n_items), 0);
        for (std::int64_t i = 0; i < r.n_allow; ++i) in[r.allow[i]] = 1;
        for (std::int64_t i = 0; i < r.n_deny; ++i) in[r.deny[i]] = 0;
        for (std::int64_t i = 0; i < r.n_items; ++i)
            if (in[i]) cand.push_back(static_cast<std::int32_t>(i));
        use_cand = true;
    } else if (r.n_deny > 0) {
        denied.assign(static_cast<std::size_t>(r.n_items), 0);
        for (std::int64_t i = 0; i < r.n_deny; ++i) denied[r.deny[i]] = 1;
        if (r.n_deny * 8 >= r.n_items) {  // a long deny-list: score only the rest
            for (std::int64_t i = 0; i < r.n_items; ++i)
                if (!denied[i]) cand.push_back(static_cast<std::int32_t>(i));
            denied.clear();
            use_cand = true;
        }
    }
    const std::int64_t n_cand = use_cand ? static_cast<std::int64_t>(cand.size()) : r.n_items;
    if (n_cand == 0) return;
    const int kk = static_cast<int>(std::min<std::int64_t>(k, n_cand));
    const std::int64_t n_panels = (n_cand + kTopkPanel - 1) / kTopkPanel;
    const std::int64_t panel_size = static_cast<std::int64_t>(dim) * kTopkPanel;
    const std::uint32_t last_valid =
        (n_cand % kTopkPanel) ? ((1u << (n_cand % kTopkPanel)) - 1u) : 0xFFFFFFFFu;

    const std::int32_t* cand_ptr = cand.data();
    auto item_of = [&](std::int64_t idx) -> std::int32_t {
        return use_cand ? cand_ptr[idx] : static_cast<std::int32_t>(idx);
    };
    // panel p -> dim x 32, row-major, zero past the last candidate
    auto pack_panel = [&](float* dst, std::int64_t p) {
        if (kern.pack_panel != nullptr) {
            const int count = static_cast<int>(std::min<std::int64_t>(kTopkPanel, n_cand - p * kTopkPanel));
            kern.pack_panel(r.items, use_cand ? cand_ptr : nullptr, p * kTopkPanel, count, dim, dst);
            return;
        }
        for (int j = 0; j < kTopkPanel; ++j) {
            const std::int64_t idx = p * kTopkPanel + j;
            if (idx < n_cand) {
                const float* src = r.items + static_cast<std::int64_t>(item_of(idx)) * dim;
                for (int d = 0; d < dim; ++d) dst[d * kTopkPanel + j] = src[d];
            } else {
                for (int d = 0; d < dim; ++d) dst[d * kTopkPanel + j] = 0.0f;
            }
        }
    };

    int nt = resolve_threads(r.num_threads);
    // The kernel's block size, but small enough that every thread gets a few blocks
    // (a multiple of 12, the AVX-512 tile height).
    int block = kern.query_block;
    if (block < 1 || block > kTopkMaxBlock) block = kTopkMaxBlock;
    const std::int64_t fair = (nq + 4 * std::int64_t{nt} - 1) / (4 * std::int64_t{nt});
    if (fair < block) block = static_cast<int>(std::max<std::int64_t>(12, (fair + 11) / 12 * 12));
    const std::int64_t n_blocks = (nq + block - 1) / block;
    if (nt > n_blocks) nt = static_cast<int>(n_blocks);
    const bool pack = nq >= kPackMin;
    // similar_items for every item: queries are the items and each row excludes exactly
    // itself.  Scores are symmetric bit for bit (fma(a, b, c) == fma(b, a, c)), so each
    // pair is scored once and offered to both rows' heaps: half the arithmetic.  Each
    // thread keeps heaps for every row (merged at the end), bounded to 1 GiB in all.
    bool self_join = pack && kern.column_masks != nullptr && r.queries == r.items && nq == r.n_items &&
                     r.allow == nullptr && r.n_deny == 0 && r.exclude_indptr != nullptr &&
                     static_cast<double>(nt) * nq * (kk * sizeof(Entry) + 8) <= double(1 << 30);
    for (std::int64_t q = 0; self_join && q < nq; ++q)
        self_join = r.exclude_indptr[q] == q && r.exclude_indices[q] == q;
    if (self_join) self_join = r.exclude_indptr[nq] == nq;

    std::vector<float> packed;
    if (pack) {
        packed.resize(static_cast<std::size_t>(n_panels * panel_size));
        float* pk = packed.data();
#pragma omp parallel for schedule(static) num_threads(nt)
        for (std::int64_t p = 0; p < n_panels; ++p) pack_panel(pk + p * panel_size, p);
    }

    if (self_join) {
        self_topk(kern, r.queries, nq, dim, k, kk, block, nt, packed.data(), out_ids, out_scores);
        return;
    }

    std::exception_ptr error;
#pragma omp parallel num_threads(nt)
    {
        std::vector<Entry> heaps;
        std::vector<float> scores, local_panel;
        bool ok = true;
        try {
            heaps.resize(static_cast<std::size_t>(block) * kk);
            scores.resize(static_cast<std::size_t>(block) * kTopkPanel);
            if (!pack) local_panel.resize(static_cast<std::size_t>(panel_size));
        } catch (...) {
            ok = false;
#pragma omp critical(tastemaker_topk_error)
            if (!error) error = std::current_exception();
        }
        int count[kTopkMaxBlock];
        float thr[kTopkMaxBlock];
        std::int64_t cursor[kTopkMaxBlock];
        std::uint32_t masks[kTopkMaxBlock];

#pragma omp for schedule(dynamic, 1)
        for (std::int64_t b = 0; b < n_blocks; ++b) {
            if (!ok) continue;
            const std::int64_t u0 = b * block;
            const int m = static_cast<int>(std::min<std::int64_t>(block, nq - u0));
            for (int u = 0; u < m; ++u) {
                count[u] = 0;
                thr[u] = ninf;
                cursor[u] = r.exclude_indptr ? r.exclude_indptr[u0 + u] : 0;
            }
            const float* qb = r.queries + u0 * dim;
            for (std::int64_t p = 0; p < n_panels; ++p) {
                const float* panel;
                if (pack) {
                    panel = packed.data() + p * panel_size;
                } else {
                    pack_panel(local_panel.data(), p);
                    panel = local_panel.data();
                }
                kern.panel_scores(qb, dim, m, dim, panel, thr, scores.data(), masks);
                const std::uint32_t valid = (p == n_panels - 1) ? last_valid : 0xFFFFFFFFu;
                for (int u = 0; u < m; ++u) {
                    std::uint32_t bits = masks[u] & valid;
                    while (bits) {
                        const int j = __builtin_ctz(bits);
                        bits &= bits - 1;
                        const std::int32_t id = item_of(p * kTopkPanel + j);
                        if (!denied.empty() && denied[id]) continue;
                        if (r.exclude_indptr) {  // lazy exclusion: ids arrive ascending
                            const std::int64_t end = r.exclude_indptr[u0 + u + 1];
                            std::int64_t c = cursor[u];
                            while (c < end && r.exclude_indices[c] < id) ++c;
                            cursor[u] = c;
                            if (c < end && r.exclude_indices[c] == id) continue;
                        }
                        heap_offer(heaps.data() + static_cast<std::size_t>(u) * kk, count[u], thr[u], kk,
                                   Entry{scores[u * kTopkPanel + j], id});
                    }
                }
            }
            for (int u = 0; u < m; ++u) {
                Entry* h = heaps.data() + static_cast<std::size_t>(u) * kk;
                std::sort(h, h + count[u], [](const Entry& a, const Entry& c) { return below(c, a); });
                std::int32_t* oi = out_ids + (u0 + u) * k;
                float* os = out_scores + (u0 + u) * k;
                for (int i = 0; i < count[u]; ++i) {
                    oi[i] = h[i].id;
                    os[i] = h[i].score;
                }
            }
        }
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace tastemaker
