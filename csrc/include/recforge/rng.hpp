// Small, fast random numbers for the SGD kernels: splitmix64 seeding, xoshiro256** streams,
// Lemire's bounded integers and Walker/Vose alias tables for O(1) weighted draws.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace recforge {

// One step of splitmix64: a good 64-bit mix of x (used to derive independent seeds).
inline uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Seed of stream `stream` under `seed` (e.g. stream = block index of an epoch).
inline uint64_t derive_seed(uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ULL);
    splitmix64(x);
    return splitmix64(x);
}

// One xoshiro256** step (Blackman & Vigna) of the state s; returns the step's output. Word is
// uint64_t, or a vector of uint64_t lanes that steps one stream per lane (fill_uniform_4x).
template <class Word>
inline Word xoshiro256ss_step(Word (&s)[4]) {
    const Word x = (s[1] << 2) + s[1];  // rotl(s1 * 5, 7) * 9
    const Word r = (x << 7) | (x >> 57);
    const Word result = (r << 3) + r;
    const Word shifted = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= shifted;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

// xoshiro256**: fast, 256-bit state, seeded through splitmix64.
class Rng {
  public:
    explicit Rng(uint64_t seed) {
        uint64_t x = seed;
        for (auto& w : s_) w = splitmix64(x);
    }
    uint64_t next() { return xoshiro256ss_step(s_); }
    // Uniform integer in [0, n) for n < 2^32 (Lemire's multiply-shift; bias < n / 2^32).
    uint32_t below(uint32_t n) {
        return static_cast<uint32_t>(((next() >> 32) * static_cast<uint64_t>(n)) >> 32);
    }
    // Uniform float in [0, 1).
    float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }

  private:
    uint64_t s_[4];
};

// Alias table (Vose) over n outcomes with non-negative weights: draw() costs one random number.
class AliasTable {
  public:
    AliasTable() = default;
    AliasTable(const double* weights, int64_t n)
        : prob_(static_cast<size_t>(n)), alias_(static_cast<size_t>(n)) {
        if (n <= 0 || n >= (int64_t(1) << 32))
            throw std::invalid_argument("alias table needs 1 <= n < 2^32 outcomes");
        double total = 0.0;
        for (int64_t i = 0; i < n; ++i) {
            if (!(weights[i] >= 0.0) || !std::isfinite(weights[i]))
                throw std::invalid_argument("sampling weights must be finite and >= 0");
            total += weights[i];
        }
        if (!(total > 0.0)) throw std::invalid_argument("sampling weights must not all be 0");
        std::vector<double> scaled(static_cast<size_t>(n));
        std::vector<uint32_t> small, large;
        for (int64_t i = 0; i < n; ++i) {
            scaled[i] = weights[i] * static_cast<double>(n) / total;
            (scaled[i] < 1.0 ? small : large).push_back(static_cast<uint32_t>(i));
        }
        while (!small.empty() && !large.empty()) {
            const uint32_t s = small.back(), l = large.back();
            small.pop_back();
            prob_[s] = static_cast<float>(scaled[s]);
            alias_[s] = l;
            scaled[l] = (scaled[l] + scaled[s]) - 1.0;
            if (scaled[l] < 1.0) {
                large.pop_back();
                small.push_back(l);
            }
        }
        for (uint32_t i : large) prob_[i] = 1.0f, alias_[i] = i;
        for (uint32_t i : small) prob_[i] = 1.0f, alias_[i] = i;  // round-off leftovers
    }
    int64_t size() const { return static_cast<int64_t>(prob_.size()); }
    // One draw from one 64-bit random number: high 32 bits pick the column, low 24 bits the coin.
    uint32_t draw(uint64_t r) const {
        const uint32_t col =
            static_cast<uint32_t>(((r >> 32) * static_cast<uint64_t>(prob_.size())) >> 32);
        const float coin = static_cast<float>(r & 0xFFFFFFULL) * (1.0f / 16777216.0f);
        return coin < prob_[col] ? col : alias_[col];
    }

  private:
    std::vector<float> prob_;
    std::vector<uint32_t> alias_;
};

}  // namespace recforge
