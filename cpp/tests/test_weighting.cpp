#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "tastemaker/knn.hpp"
#include "tastemaker/weighting.hpp"
#include "testing.hpp"

using namespace tastemaker;

namespace {

// Random COO entries, sorted by document then term (CSR order), with signed values and
// some empty documents and terms.
struct Coo {
    std::int64_t n_docs = 0, n_terms = 0;
    std::vector<std::int64_t> doc, term, indptr{0};
    std::vector<std::int32_t> indices;
    std::vector<double> x;
    std::vector<float> x32;
};

Coo random_coo(unsigned seed, std::int64_t n_docs, std::int64_t n_terms, double density) {
    std::mt19937 rng(seed);
    std::bernoulli_distribution keep(density);
    std::uniform_int_distribution<int> val(-3, 6);
    Coo c;
    c.n_docs = n_docs;
    c.n_terms = n_terms;
    for (std::int64_t d = 0; d < n_docs; ++d) {
        for (std::int64_t t = 0; t < n_terms; ++t) {
            if (d == 2 || t == 1 || !keep(rng)) continue;  // document 2 and term 1 stay empty
            const int v = val(rng);
            c.doc.push_back(d);
            c.term.push_back(t);
            c.indices.push_back(static_cast<std::int32_t>(t));
            c.x.push_back(v == 0 ? 0.5 : v);
            c.x32.push_back(static_cast<float>(c.x.back()));
        }
        c.indptr.push_back(static_cast<std::int64_t>(c.doc.size()));
    }
    return c;
}

// The definitions of weighting.hpp written out directly.
double reference(const Coo& c, std::size_t e, const TermWeightParams& p) {
    double df = 0, len = 0, sum = 0;
    for (std::size_t f = 0; f < c.x.size(); ++f) {
        df += c.term[f] == c.term[e];
        len += c.doc[f] == c.doc[e] ? std::fabs(c.x[f]) : 0.0;
        sum += std::fabs(c.x[f]);
    }
    const double idf = std::log(double(c.n_docs) / (std::max(df, 1.0) + p.idf_offset));
    if (p.kind == TermWeighting::TfIdf) return c.x[e] * idf;
    const double avg = sum / double(c.n_docs), mag = std::fabs(c.x[e]);
    return (c.x[e] > 0 ? 1.0 : -1.0) * idf * mag * (p.k1 + 1) / (mag + p.k1 * (1 - p.b + p.b * len / avg));
}

}  // namespace

TM_TEST(term_weights_match_the_definitions) {
    for (unsigned seed = 1; seed <= 3; ++seed) {
        const Coo c = random_coo(seed, 12, 9, 0.4);
        const auto nnz = static_cast<std::int64_t>(c.x.size());
        for (const auto kind : {TermWeighting::TfIdf, TermWeighting::Bm25}) {
            for (const double offset : {0.0, 1.0}) {
                TermWeightParams p;
                p.kind = kind;
                p.k1 = 1.7;
                p.b = 0.6;
                p.idf_offset = offset;
                std::vector<double> coo(c.x.size()), rows(c.x.size()), block(c.x.size());
                term_weights(p, c.doc.data(), c.term.data(), c.x.data(), nnz, c.n_docs, c.n_terms, nullptr, coo.data());
                for (std::size_t e = 0; e < c.x.size(); ++e) TM_CHECK_NEAR(coo[e], reference(c, e, p), 1e-12);
                // the CSR path (documents as rows) is the same computation, bit for bit
                const CsrView m{c.indptr.data(), c.indices.data(), c.x32.data(), c.n_docs, c.n_terms};
                term_weights_rows(p, m, nullptr, rows.data(), 2);
                for (std::size_t e = 0; e < c.x.size(); ++e) TM_CHECK(rows[e] == coo[e]);
                // strengths given apart from m.data: len(d) is over them too, as in the COO path
                std::vector<double> x2(c.x.size()), coo2(c.x.size()), rows2(c.x.size());
                for (std::size_t e = 0; e < c.x.size(); ++e) x2[e] = 2.5 * c.x[e] + (e % 3 == 0 ? 1.0 : 0.0);
                term_weights(p, c.doc.data(), c.term.data(), x2.data(), nnz, c.n_docs, c.n_terms, nullptr, coo2.data());
                term_weights_rows(p, m, x2.data(), rows2.data(), 2);
                for (std::size_t e = 0; e < c.x.size(); ++e) TM_CHECK(rows2[e] == coo2[e]);
                // two document blocks weighted with the whole collection's statistics
                const CorpusStats whole = corpus_stats(c.doc.data(), c.term.data(), c.x.data(), nnz, c.n_docs, c.n_terms);
                const std::int64_t cut = c.indptr[5];
                std::vector<std::int64_t> second_doc(c.doc.begin() + cut, c.doc.end());
                for (auto& d : second_doc) d -= 5;
                term_weights(p, c.doc.data(), c.term.data(), c.x.data(), cut, 5, c.n_terms, &whole, block.data());
                term_weights(p, second_doc.data(), c.term.data() + cut, c.x.data() + cut, nnz - cut, c.n_docs - 5,
                             c.n_terms, &whole, block.data() + cut);
                for (std::size_t e = 0; e < c.x.size(); ++e) TM_CHECK(block[e] == coo[e]);
            }
        }
    }
}

TM_TEST(term_weights_reject_bad_input) {
    const Coo c = random_coo(4, 6, 5, 0.5);
    const auto nnz = static_cast<std::int64_t>(c.x.size());
    std::vector<double> out(c.x.size());
    TermWeightParams p;
    TM_CHECK_THROWS(term_weights(p, c.doc.data(), c.term.data(), c.x.data(), nnz, 5, c.n_terms, nullptr, out.data()),
                    std::invalid_argument);  // a document id out of range
    TM_CHECK_THROWS(term_weights(p, c.doc.data(), c.term.data(), c.x.data(), nnz, c.n_docs, 2, nullptr, out.data()),
                    std::invalid_argument);  // a term id out of range
    TM_CHECK_THROWS(corpus_stats(c.doc.data(), c.term.data(), c.x.data(), -1, c.n_docs, c.n_terms),
                    std::invalid_argument);
    CorpusStats wrong;
    wrong.df.assign(3, 1.0);
    TM_CHECK_THROWS(term_weights(p, c.doc.data(), c.term.data(), c.x.data(), nnz, c.n_docs, c.n_terms, &wrong, out.data()),
                    std::invalid_argument);  // a corpus of another size
    p.b = 1.5;
    TM_CHECK_THROWS(term_weights(p, c.doc.data(), c.term.data(), c.x.data(), nnz, c.n_docs, c.n_terms, nullptr, out.data()),
                    std::invalid_argument);
    p.b = 0.75;
    p.k1 = -1;
    TM_CHECK_THROWS(term_weights(p, c.doc.data(), c.term.data(), c.x.data(), nnz, c.n_docs, c.n_terms, nullptr, out.data()),
                    std::invalid_argument);
}

// knn_fit is the weighting, the transpose and knn_build: the same graph as knn_build on
// weights computed through the COO path (users as terms, items as documents).
TM_TEST(knn_fit_equals_build_on_weighted_columns) {
    const Coo c = random_coo(9, 40, 30, 0.2);  // users x items
    const auto nnz = static_cast<std::int64_t>(c.x.size());
    const CsrView X{c.indptr.data(), c.indices.data(), c.x32.data(), c.n_docs, c.n_terms};
    for (const auto sim : {KnnSimilarity::Bm25, KnnSimilarity::TfIdf, KnnSimilarity::Cosine, KnnSimilarity::Jaccard}) {
        std::vector<double> w(c.x.size());
        TermWeightParams p;
        p.kind = sim == KnnSimilarity::Bm25 ? TermWeighting::Bm25 : TermWeighting::TfIdf;
        p.k1 = 1.2;
        p.b = 0.75;
        p.idf_offset = 1.0;
        std::vector<double> tf(c.x.begin(), c.x.end());
        if (sim == KnnSimilarity::TfIdf)
            for (auto& v : tf) v = (v > 0 ? 1.0 : -1.0) * std::sqrt(std::fabs(static_cast<double>(static_cast<float>(v))));
        // items are the documents: doc = item (c.term), term = user (c.doc)
        term_weights(p, c.term.data(), c.doc.data(), tf.data(), nnz, c.n_terms, c.n_docs, nullptr, w.data());
        std::vector<float> w32(c.x.size());
        for (std::size_t e = 0; e < w.size(); ++e) {
            if (sim == KnnSimilarity::Cosine) w32[e] = c.x32[e];
            else if (sim == KnnSimilarity::Jaccard) w32[e] = c.x32[e] > 0 ? 1.0f : 0.0f;
            else w32[e] = static_cast<float>(w[e]);
        }
        if (sim == KnnSimilarity::Cosine || sim == KnnSimilarity::TfIdf) {  // unit columns
            std::vector<double> sq(static_cast<std::size_t>(c.n_terms), 0.0);
            for (std::size_t e = 0; e < w32.size(); ++e) sq[c.term[e]] += double(w32[e]) * double(w32[e]);
            for (std::size_t e = 0; e < w32.size(); ++e)
                w32[e] = static_cast<float>(double(w32[e]) * (sq[c.term[e]] > 0 ? 1.0 / std::sqrt(sq[c.term[e]]) : 0.0));
        }
        // W and its transpose from the weights (Jaccard: only the positive entries)
        std::vector<std::int64_t> wp{0}, tp(static_cast<std::size_t>(c.n_terms) + 1, 0);
        std::vector<std::int32_t> wi, ti;
        std::vector<float> wv, tv;
        for (std::int64_t u = 0; u < c.n_docs; ++u) {
            for (auto e = c.indptr[u]; e < c.indptr[u + 1]; ++e) {
                if (sim == KnnSimilarity::Jaccard && !(c.x32[e] > 0)) continue;
                wi.push_back(c.indices[e]);
                wv.push_back(w32[e]);
            }
            wp.push_back(static_cast<std::int64_t>(wi.size()));
        }
        for (std::int64_t i = 0; i < c.n_terms; ++i) {
            for (std::int64_t u = 0; u < c.n_docs; ++u)
                for (auto e = wp[u]; e < wp[u + 1]; ++e)
                    if (wi[e] == i) {
                        ti.push_back(static_cast<std::int32_t>(u));
                        tv.push_back(wv[e]);
                    }
            tp[i + 1] = static_cast<std::int64_t>(ti.size());
        }
        const CsrView W{wp.data(), wi.data(), wv.data(), c.n_docs, c.n_terms};
        const CsrView Wt{tp.data(), ti.data(), tv.data(), c.n_terms, c.n_docs};
        const KnnScore score = sim == KnnSimilarity::Jaccard ? KnnScore::Jaccard : KnnScore::Dot;
        for (int threads : {1, 2}) {
            const KnnGraph want = knn_build(W, Wt, 4, score, threads);
            const KnnGraph got = knn_fit(X, sim, 4, 1.2, 0.75, threads);
            TM_CHECK(got.indptr == want.indptr);
            TM_CHECK(got.indices == want.indices);
            TM_CHECK(got.data == want.data);
            TM_CHECK(got.self == want.self);
        }
    }
    TM_CHECK_THROWS(knn_fit(X, KnnSimilarity::Bm25, 0, 1.2, 0.75), std::invalid_argument);
    TM_CHECK_THROWS(knn_fit(X, KnnSimilarity::Bm25, 3, 1.2, 1.5), std::invalid_argument);
    TM_CHECK_THROWS(knn_fit(X, KnnSimilarity::Bm25, 3, -1.0, 0.75), std::invalid_argument);
    CsrView bad = X;
    bad.n_cols = 3;  // column ids out of range
    TM_CHECK_THROWS(knn_fit(bad, KnnSimilarity::Cosine, 3, 1.2, 0.75), std::invalid_argument);
}
