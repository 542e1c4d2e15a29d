// Term weighting (see weighting.hpp for the definitions).
#include "tastemaker/weighting.hpp"

#include <stdexcept>
#include <string>

#include "tastemaker/threads.hpp"

namespace tastemaker {
namespace {

void check_sizes(std::int64_t nnz, std::int64_t n_docs, std::int64_t n_terms) {
    if (nnz < 0) throw std::invalid_argument("nnz: negative");
    if (n_docs < 0) throw std::invalid_argument("n_docs: negative");
    if (n_terms < 0) throw std::invalid_argument("n_terms: negative");
}

void check_ids(const std::int64_t* ids, std::int64_t nnz, std::int64_t n, const char* name) {
    for (std::int64_t e = 0; e < nnz; ++e)
        if (ids[e] < 0 || ids[e] >= n)
            throw std::invalid_argument(std::string(name) + ": index " + std::to_string(ids[e]) +
                                        " out of range [0, " + std::to_string(n) + ")");
}

void check_params(const TermWeightParams& p) {
    if (p.kind != TermWeighting::TfIdf && p.kind != TermWeighting::Bm25)
        throw std::invalid_argument("method: unknown term weighting");
    if (!(p.k1 >= 0.0) || !std::isfinite(p.k1)) throw std::invalid_argument("k1: expected a finite number >= 0");
    if (!(p.b >= 0.0 && p.b <= 1.0)) throw std::invalid_argument("b: expected a number in [0, 1]");
    if (!(p.idf_offset >= 0.0) || !std::isfinite(p.idf_offset))
        throw std::invalid_argument("idf_offset: expected a finite number >= 0");
}

// len(d) of every document from COO entries.
std::vector<double> doc_lengths(const std::int64_t* doc, const double* x, std::int64_t nnz, std::int64_t n_docs) {
    std::vector<double> length(static_cast<std::size_t>(n_docs), 0.0);
    for (std::int64_t e = 0; e < nnz; ++e) length[static_cast<std::size_t>(doc[e])] += std::fabs(x[e]);
    return length;
}

CorpusStats stats_of(const std::vector<double>& length, const std::int64_t* term, std::int64_t nnz,
                     std::int64_t n_terms) {
    CorpusStats c;
    c.df.assign(static_cast<std::size_t>(n_terms), 0.0);
    for (std::int64_t e = 0; e < nnz; ++e) c.df[static_cast<std::size_t>(term[e])] += 1.0;
    c.n_docs = static_cast<std::int64_t>(length.size());
    for (const double v : length) c.length_sum += v;
    return c;
}

// idf(t) of every term (weighting.hpp).
std::vector<double> idf_table(std::int64_t n_docs, const std::vector<double>& df, double idf_offset) {
    std::vector<double> idf(df.size());
    for (std::size_t t = 0; t < df.size(); ++t) idf[t] = term_idf(n_docs, df[t], idf_offset);
    return idf;
}

}  // namespace

CorpusStats corpus_stats(const std::int64_t* doc, const std::int64_t* term, const double* x, std::int64_t nnz,
                         std::int64_t n_docs, std::int64_t n_terms) {
    check_sizes(nnz, n_docs, n_terms);
    check_ids(doc, nnz, n_docs, "doc");
    check_ids(term, nnz, n_terms, "term");
    return stats_of(doc_lengths(doc, x, nnz, n_docs), term, nnz, n_terms);
}

void term_weights(const TermWeightParams& p, const std::int64_t* doc, const std::int64_t* term, const double* x,
                  std::int64_t nnz, std::int64_t n_docs, std::int64_t n_terms, const CorpusStats* corpus,
                  double* out) {
    check_params(p);
    check_sizes(nnz, n_docs, n_terms);
    if (corpus && (static_cast<std::int64_t>(corpus->df.size()) != n_terms || corpus->n_docs < 0))
        throw std::invalid_argument("corpus: expected df of " + std::to_string(n_terms) +
                                    " terms and n_docs >= 0");
    check_ids(doc, nnz, n_docs, "doc");
    check_ids(term, nnz, n_terms, "term");
    const std::vector<double> length = doc_lengths(doc, x, nnz, n_docs);
    CorpusStats own;
    if (!corpus) {
        own = stats_of(length, term, nnz, n_terms);
        corpus = &own;
    }
    const std::vector<double> idf = idf_table(corpus->n_docs, corpus->df, p.idf_offset);
    const double avg = corpus_avg_length(corpus->n_docs, corpus->length_sum);
    for (std::int64_t e = 0; e < nnz; ++e)
        out[e] = term_weight(p, x[e], idf[static_cast<std::size_t>(term[e])], length[static_cast<std::size_t>(doc[e])],
                             avg);
}

void term_weights_rows(const TermWeightParams& p, const CsrView& m, const double* x, double* out,
                       int num_threads) {
    check_params(p);
    const std::int64_t nnz = m.n_rows > 0 ? m.indptr[m.n_rows] : 0;
    std::vector<double> df(static_cast<std::size_t>(m.n_cols), 0.0);
    for (std::int64_t e = 0; e < nnz; ++e) df[static_cast<std::size_t>(m.indices[e])] += 1.0;
    const std::vector<double> idf = idf_table(m.n_rows, df, p.idf_offset);
    const auto value = [&](std::int64_t e) { return x ? x[e] : static_cast<double>(m.data[e]); };
    // Each row's length (of the strengths weighed, x when given) in entry order, then
    // their total in row order (as corpus_stats).
    std::vector<double> length(static_cast<std::size_t>(m.n_rows), 0.0);
    double length_sum = 0.0;
    for (std::int64_t r = 0; r < m.n_rows; ++r) {
        double s = 0.0;
        for (std::int64_t e = m.indptr[r]; e < m.indptr[r + 1]; ++e) s += std::fabs(value(e));
        length[static_cast<std::size_t>(r)] = s;
        length_sum += s;
    }
    const double avg = corpus_avg_length(m.n_rows, length_sum);
#pragma omp parallel for schedule(static) num_threads(resolve_threads(num_threads)) if (nnz > 100000)
    for (std::int64_t r = 0; r < m.n_rows; ++r)
        for (std::int64_t e = m.indptr[r]; e < m.indptr[r + 1]; ++e)
            out[e] = term_weight(p, value(e), idf[static_cast<std::size_t>(m.indices[e])],
                                 length[static_cast<std::size_t>(r)], avg);
}

}  // namespace tastemaker
