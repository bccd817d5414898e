// Exclusive feature bundling (LightGBM's EFB, exact): two-bin features of a binned matrix (one-hot
// columns and other two-valued ones) that are never off their common bin in the same row share one
// column, whose bin names the member that is off its common bin (kMissingBin: none is). A split of
// that column "bin == k vs the rest, missing with the rest" is the split of member k between its
// two bins: the same candidates, from a histogram of far fewer columns (Ke et al., NIPS 2017,
// without the conflict budget, so no row is lost and every tree maps back to the original
// features).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "recforge/constants.hpp"
#include "recforge/parallel.hpp"

namespace recforge {
namespace gbdt {

// Rows per task of bundle_exclusive's passes (its per-block counts fit int32).
constexpr int64_t kBundleBlockRows = 8192;

// Bundle the candidate features cand[0, C) (columns of X (n, F) uint8 with at most two value
// bins): a candidate's common bin common[c] is the one most of its rows are in (0 on a tie); a
// candidate with a missing value in some row takes no part (bundle_of[c] = -1), nor one whose rows
// all sit in bin 0 (constant[c] = 1, bundle_of[c] = -1: no split can part them). The others are
// placed, the ones off their common bin in most rows first (ties: in cand's order, as LightGBM
// places them), into the first bundle none of whose members is off its common bin in a row where
// the candidate is off its own, while that bundle has fewer than max_members members; else into a
// new bundle. bundle_of[c] and code_of[c] (int32 (C,)) get the bundle and the candidate's
// position in it. Returns the number of bundles. The two passes over the rows run on n_threads
// (blocks of rows; the result does not depend on n_threads), the placement on the caller.
inline int32_t bundle_exclusive(const uint8_t* X, int64_t n, int64_t F, const int32_t* cand,
                                int64_t C, int32_t max_members, int32_t* bundle_of,
                                int32_t* code_of, uint8_t* common, uint8_t* constant,
                                int n_threads = 1) {
    const int64_t n_blocks = (n + kBundleBlockRows - 1) / kBundleBlockRows;
    auto block_rows = [&](int64_t b) {
        return std::min(n, (b + 1) * kBundleBlockRows) - b * kBundleBlockRows;
    };
    std::vector<int32_t> block_ones(static_cast<size_t>(n_blocks * C), 0),
        block_missing(static_cast<size_t>(n_blocks * C), 0);
    parallel_for(n_blocks, n_threads, [&](int64_t b, int) {
        int32_t* ones = block_ones.data() + b * C;
        int32_t* missing = block_missing.data() + b * C;
        const int64_t r0 = b * kBundleBlockRows;
        for (int64_t r = r0; r < r0 + block_rows(b); ++r) {
            const uint8_t* row = X + r * F;
            for (int64_t c = 0; c < C; ++c) {
                const uint8_t v = row[cand[c]];
                ones[c] += v == 1;
                missing[c] += v == kMissingBin;
            }
        }
    });
    std::vector<int64_t> ones(static_cast<size_t>(C), 0), missing(static_cast<size_t>(C), 0);
    for (int64_t b = 0; b < n_blocks; ++b)
        for (int64_t c = 0; c < C; ++c) {
            ones[c] += block_ones[b * C + c];
            missing[c] += block_missing[b * C + c];
        }
    std::vector<int64_t> order;  // the candidates placed
    std::vector<uint8_t> placed(static_cast<size_t>(C), 0);
    for (int64_t c = 0; c < C; ++c) {
        common[c] = ones[c] > n - ones[c] ? 1 : 0;
        bundle_of[c] = -1;
        code_of[c] = -1;
        constant[c] = missing[c] == 0 && ones[c] == 0 && n > 0;
        placed[c] = missing[c] == 0 && !constant[c];
        if (placed[c]) order.push_back(c);
    }
    // rows off candidate c's common bin among `rows` rows of which `ones_c` are in bin 1 (a placed
    // candidate has no missing value)
    auto off = [&](int64_t c, int64_t ones_c, int64_t rows) {
        return placed[c] ? (common[c] ? rows - ones_c : ones_c) : 0;
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return off(a, ones[a], n) > off(b, ones[b], n); });
    // the rows where each placed candidate is off its common bin (CSC, rows ascending): each
    // block writes its rows from its own offset
    std::vector<int64_t> start(static_cast<size_t>(C) + 1, 0);
    for (int64_t c = 0; c < C; ++c) start[c + 1] = start[c] + off(c, ones[c], n);
    std::vector<int64_t> fill(static_cast<size_t>(n_blocks * C));
    for (int64_t c = 0; c < C; ++c) {
        int64_t at = start[c];
        for (int64_t b = 0; b < n_blocks; ++b) {
            fill[b * C + c] = at;
            at += off(c, block_ones[b * C + c], block_rows(b));
        }
    }
    std::vector<int32_t> active(static_cast<size_t>(start[C]));
    parallel_for(n_blocks, n_threads, [&](int64_t b, int) {
        int64_t* at = fill.data() + b * C;
        const int64_t r0 = b * kBundleBlockRows;
        for (int64_t r = r0; r < r0 + block_rows(b); ++r) {
            const uint8_t* row = X + r * F;
            for (int64_t c = 0; c < C; ++c)
                if (placed[c] && row[cand[c]] != common[c])
                    active[at[c]++] = static_cast<int32_t>(r);
        }
    });
    const int64_t words = (n + 63) / 64;
    std::vector<std::vector<uint64_t>> occupied;  // per bundle: the rows some member is off in
    std::vector<int32_t> members;
    for (const int64_t c : order) {
        const int32_t* rows = active.data() + start[c];
        const int64_t len = start[c + 1] - start[c];
        int32_t chosen = -1;
        for (size_t b = 0; b < occupied.size() && chosen < 0; ++b) {
            if (members[b] >= max_members) continue;
            const uint64_t* bits = occupied[b].data();
            bool clash = false;
            for (int64_t i = 0; i < len && !clash; ++i)
                clash = (bits[rows[i] >> 6] >> (rows[i] & 63)) & 1u;
            if (!clash) chosen = static_cast<int32_t>(b);
        }
        if (chosen < 0) {
            chosen = static_cast<int32_t>(occupied.size());
            occupied.emplace_back(static_cast<size_t>(words), 0);
            members.push_back(0);
        }
        uint64_t* bits = occupied[chosen].data();
        for (int64_t i = 0; i < len; ++i) bits[rows[i] >> 6] |= uint64_t(1) << (rows[i] & 63);
        bundle_of[c] = chosen;
        code_of[c] = members[chosen]++;
    }
    return static_cast<int32_t>(occupied.size());
}

// The bundled matrix out (n, n_plain + n_bundles) uint8: the columns plain[0, n_plain) of X
// (n, F), then per bundle the code of its member off its common bin in the row (kMissingBin: none).
// Member m is column member[m] of X, common bin common[m], bundle bundle_of[m], code code_of[m].
inline void bundle_columns(const uint8_t* X, int64_t n, int64_t F, const int32_t* plain,
                           int64_t n_plain, const int32_t* member, const uint8_t* common,
                           const int32_t* bundle_of, const int32_t* code_of, int64_t n_members,
                           int64_t n_bundles, uint8_t* out, int n_threads) {
    const int64_t W = n_plain + n_bundles;
    const int64_t block = 1024;
    parallel_for((n + block - 1) / block, n_threads, [&](int64_t blk, int) {
        const int64_t r1 = std::min(n, (blk + 1) * block);
        for (int64_t r = blk * block; r < r1; ++r) {
            const uint8_t* row = X + r * F;
            uint8_t* o = out + r * W;
            for (int64_t j = 0; j < n_plain; ++j) o[j] = row[plain[j]];
            std::fill(o + n_plain, o + W, kMissingBin);
            for (int64_t m = 0; m < n_members; ++m)
                if (row[member[m]] != common[m])
                    o[n_plain + bundle_of[m]] = static_cast<uint8_t>(code_of[m]);
        }
    });
}

}  // namespace gbdt
}  // namespace recforge
