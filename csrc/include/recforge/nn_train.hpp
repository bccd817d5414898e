// Training of the neural rankers (DNN, Wide&Deep): a call trains many mini-batches. Layout and
// formulas as recforge/kernels/nn.py's docstring; forward pass in nn_forward.hpp.
//
// Each batch is split into chunks of kTrainChunkRows rows that the workers pull; the chunks'
// gradients are summed in chunk order and each parameter's update depends only on its own gradient,
// so results are bit-identical for a seed whatever the number of workers. The workers stay in one
// parallel call: a worker with nothing left to claim re-computes a late chunk (one whose holder
// has most likely been preempted: it has run kLateChunkFactor times the fastest chunk pass), then
// shares the batch's dense update in blocks of kUpdateBlock parameters (see Trainer::worker).
//
// The arithmetic is written as the Numba kernels it replaces computed it (float32 storage, float64
// where a float64 operand took part, the same BLAS calls), so their results are the same bits.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <thread>
#include <vector>

#include "recforge/constants.hpp"
#include "recforge/nn_forward.hpp"
#include "recforge/parallel.hpp"

namespace recforge::nn {

// rows of a mini-batch per chunk: the chunks, not the threads, fix the order in which gradients
// are summed, so results do not depend on the number of threads
constexpr int64_t kTrainChunkRows = 64;
// dense parameters per block of a batch's update (the workers pull them as they pull the chunks)
constexpr int64_t kUpdateBlock = 2048;
// a chunk another worker holds is late once its computation has run this many times the fastest
// full chunk pass of the call
constexpr int64_t kLateChunkFactor = 2;
// how long a chunk may run before it counts as late while no chunk pass has been timed (ns)
constexpr int64_t kFirstLateNs = 1'000'000;
// a waiting worker spins this many times (32 pauses each), then sleeps kSleepMicroseconds a time
constexpr int kSpinsBeforeSleep = 64;
constexpr int kSleepMicroseconds = 50;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

using detail::monotonic_ns;

// One step of a wait loop (n_waits: the steps so far); returns the steps now. A wait that starts
// with no core free for spinning (detail::core_free_for_spinning: a foreign process holds the
// other core, which this thread shares) sleeps from its first step: spinning there would take the
// time the scheduler gives this process on that core from the thread it waits for.
inline int wait_a_little(int n_waits) {
    if (n_waits == 0 && !detail::core_free_for_spinning()) n_waits = kSpinsBeforeSleep;
    if (n_waits < kSpinsBeforeSleep) {
        for (int i = 0; i < 32; ++i) detail::cpu_relax();
    } else {
        std::this_thread::sleep_for(std::chrono::microseconds(kSleepMicroseconds));
    }
    return n_waits + 1;
}

// base ** t for t >= 1 by squaring in float32 (Numba's float32 ** int64)
inline float power_by_squaring(float base, int64_t t) {
    float r = 1.0f;
    while (true) {
        if (t & 1) r *= base;
        t >>= 1;
        if (t == 0) return r;
        base *= base;
    }
}

// Adam's bias-corrected rate at step t: lr * sqrt(1 - b2^t) / (1 - b1^t), as float32.
inline float adam_rate(double lr, double b1, double b2, int64_t t) {
    const double p2 = power_by_squaring(static_cast<float>(b2), t);
    const double p1 = power_by_squaring(static_cast<float>(b1), t);
    return static_cast<float>(lr * std::sqrt(1.0 - p2) / (1.0 - p1));
}

// One optimiser step on the n parameters p with gradient g and states m, v (in place): SGD,
// Adagrad (accumulator m), Adam (moments m, v; alpha = adam_rate), FTRL (accumulator m, linear
// term v; penalties l1, l2).
inline void update(float* p, const float* g, float* m, float* v, int64_t n, int opt, double lr,
                   float alpha, double b1, double b2, double eps, double l1, double l2) {
    if (opt == kSgd) {
        for (int64_t j = 0; j < n; ++j) p[j] = static_cast<float>(p[j] - lr * g[j]);
    } else if (opt == kAdagrad) {
        for (int64_t j = 0; j < n; ++j) {
            const float gj = g[j];
            m[j] += gj * gj;
            p[j] = static_cast<float>(p[j] - lr * gj / std::sqrt(m[j] + eps));
        }
    } else if (opt == kAdam) {
        for (int64_t j = 0; j < n; ++j) {
            const float gj = g[j];
            m[j] = static_cast<float>(m[j] + static_cast<double>(gj - m[j]) * (1.0 - b1));
            v[j] = static_cast<float>(v[j] + static_cast<double>(gj * gj - v[j]) * (1.0 - b2));
            p[j] = static_cast<float>(p[j] - (alpha * m[j]) / (std::sqrt(v[j]) + eps));
        }
    } else {
        for (int64_t j = 0; j < n; ++j) {
            const float gj = g[j];
            const float a_new = m[j] + gj * gj;
            const double step = static_cast<double>(std::sqrt(a_new) - std::sqrt(m[j])) / lr;
            v[j] = static_cast<float>(v[j] + (gj - step * p[j]));
            m[j] = a_new;
            const float lin = v[j];
            const double denom = std::sqrt(a_new) / lr + 2.0 * l2;
            if (lin > l1)
                p[j] = static_cast<float>((l1 - lin) / denom);
            else if (lin < -l1)
                p[j] = static_cast<float>((-l1 - lin) / denom);
            else
                p[j] = 0.0f;
        }
    }
}

inline double log1pexp(double z) {
    return z > 0.0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
}

inline double sigmoid(double z) {
    if (z >= 0.0) return 1.0 / (1.0 + std::exp(-z));
    const double e = std::exp(z);
    return e / (1.0 + e);
}

// Seed of the dropout masks of chunk `chunk` at optimiser step `step` (a splitmix64 mix, 31 bits):
// the masks depend on the chunk, never on the thread that takes it.
inline uint32_t dropout_seed(int64_t seed, int64_t step, int64_t chunk) {
    uint64_t z = static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ull;
    z ^= static_cast<uint64_t>(step) * 0xBF58476D1CE4E5B9ull;
    z ^= static_cast<uint64_t>(chunk) * 0x94D049BB133111EBull;
    z ^= z >> 30;
    z *= 0xBF58476D1CE4E5B9ull;
    z ^= z >> 27;
    z *= 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<uint32_t>(z & 0x7FFFFFFFull);
}

// Where each layer's kernel W_l starts in params (its bias follows at w_off[l] + k * m) and
// where its output starts among a row's activations.
struct LayerOffsets {
    std::vector<int64_t> w_off, a_off;
    explicit LayerOffsets(const Layers& net) : w_off(net.n_layers), a_off(net.n_layers) {
        int64_t o = 0, a = 0;
        for (int l = 0; l < net.n_layers; ++l) {
            w_off[l] = o;
            o += net.sizes[l] * net.sizes[l + 1] + net.sizes[l + 1];
            a_off[l] = a;
            a += net.sizes[l + 1];
        }
    }
};

// Scratch of the backward pass of up to `rows` rows.
struct BackwardScratch {
    LayerOffsets offsets;
    std::vector<float> g0, g1, gw;
    BackwardScratch(const Layers& net, int64_t rows) : offsets(net) {
        int64_t width = 1, kernel = 1;
        for (int l = 0; l < net.n_layers; ++l) {
            width = std::max(width, net.sizes[l]);
            kernel = std::max(kernel, net.sizes[l] * net.sizes[l + 1]);
        }
        g0.resize(static_cast<size_t>(std::max<int64_t>(1, rows) * width));
        g1.resize(g0.size());
        gw.resize(static_cast<size_t>(kernel));
    }
};

// Backward pass of nb rows: grads (like params) = d loss / d params (kernels: + 2 * l2 * W),
// dx0 (nb, d0) = d loss / d x0, from dz (nb,) = d loss / d logit and the forward pass's x0 and
// acts. With dropout, a dropped unit is a zero of acts and the kept ones carry 1 / (1 - dropout).
inline void mlp_backward(const Blas& blas, const Layers& net, const float* x0, int64_t nb,
                         const float* acts, const float* dz, double l2, float* grads, float* dx0,
                         double dropout, BackwardScratch& s) {
    const float keep_scale = static_cast<float>(1.0 / (1.0 - dropout));
    const std::vector<int64_t>& w_off = s.offsets.w_off;
    const std::vector<int64_t>& a_off = s.offsets.a_off;
    float* G = s.g0.data();
    float* Gp = s.g1.data();
    std::copy(dz, dz + nb, G);
    const int n = static_cast<int>(nb);
    for (int l = net.n_layers - 1; l >= 0; --l) {
        const int64_t k = net.sizes[l], m = net.sizes[l + 1];
        const float* W = net.params + w_off[l];
        const float* inp = l == 0 ? x0 : acts + a_off[l - 1] * nb;
        // gW = inp^T @ G, as Numba's np.dot(inp.T, G) (inp.T an F-ordered view)
        float* gW = s.gw.data();
        numba_dot(blas, {inp, static_cast<int>(k), n, false}, {G, n, static_cast<int>(m), true},
                  gW);
        float* gk = grads + w_off[l];
        for (int64_t q = 0; q < k * m; ++q) gk[q] = static_cast<float>(gW[q] + 2.0 * l2 * W[q]);
        float* gb = gk + k * m;
        for (int64_t j = 0; j < m; ++j) {
            float sum = 0.0f;
            for (int64_t r = 0; r < nb; ++r) sum += G[r * m + j];
            gb[j] = sum;
        }
        // Gp = G @ W^T, as Numba's np.dot(G, W.T)
        float* out = l == 0 ? dx0 : Gp;
        numba_dot(blas, {G, n, static_cast<int>(m), true},
                  {W, static_cast<int>(m), static_cast<int>(k), false}, out);
        if (l > 0) {
            for (int64_t q = 0; q < nb * k; ++q) {
                if (inp[q] <= 0.0f)
                    out[q] = 0.0f;
                else if (dropout > 0.0)
                    out[q] *= keep_scale;
            }
            std::swap(G, Gp);
        }
    }
}

// grads[q] += 2 * l2 * params[q] for the parameters q0 <= q < q1 of the dense kernels (not the
// biases), in float64 as the Numba kernel did.
inline void add_l2_grad(const Layers& net, const LayerOffsets& off, double l2, float* grads,
                        int64_t q0, int64_t q1) {
    for (int l = 0; l < net.n_layers; ++l) {
        const int64_t w0 = off.w_off[l], w1 = w0 + net.sizes[l] * net.sizes[l + 1];
        for (int64_t q = std::max(q0, w0); q < std::min(q1, w1); ++q)
            grads[q] = static_cast<float>(grads[q] + 2.0 * l2 * net.params[q]);
    }
}

// Per row r of rows[0, n): row_loss[r] = the weighted log-loss of logit z[r], dz[r] = its
// gradient by the logit divided by the batch size nb.
inline void row_losses(const float* z, const int64_t* rows, int64_t n, const double* y,
                       const double* sw, int64_t nb, double* row_loss, float* dz) {
    for (int64_t r = 0; r < n; ++r) {
        const int64_t i = rows[r];
        const double zr = z[r];
        row_loss[r] = sw[i] * (log1pexp(zr) - y[i] * zr);
        dz[r] = static_cast<float>(sw[i] * (sigmoid(zr) - y[i]) / static_cast<double>(nb));
    }
}

// The hyper-parameters of a training call.
struct Hyper {
    int opt;
    double lr, b1, b2, eps, l2;
    int wide_opt;
    double wide_lr, wide_l1, wide_l2;
    double dropout;
    int64_t dropout_seed;
};

// Everything a training call reads and writes (see the layout above). The Inputs, Layers and Wide
// views point at the same memory as the mutable pointers, which only the updates write.
template <class Indptr>
struct Model {
    Inputs in;
    const int64_t* col_row_off;
    Layers net;
    Wide<Indptr> wide;
    const double* y;
    const double* sw;
    float *emb, *emb_m, *emb_v;
    float *params, *p_m, *p_v;
    int64_t n_params;
    float *wide_w, *wide_m, *wide_v;
    int64_t n_wide;
    int64_t* step;
};

// Scratch and bookkeeping of one listing of a batch's touched embedding rows / wide coordinates.
struct SparseListing {
    std::vector<int64_t> mark, touched, touched_col, goff;  // mark: global row -> t, -1 untouched
    std::vector<float> gbuf;
    std::vector<int64_t> wmark, wtouched;  // the wide part: column -> t, -1 untouched
    std::vector<float> wg, wp, wm, wv;
};

// The rows ``rows[0, n)`` add d loss / d x0 (dx0 (n, d0)) to the embedding rows they use, listed
// compactly (see SparseListing); nt rows are listed so far, using gbuf[0, pos).
template <class Indptr>
void emb_grads(const Model<Indptr>& md, const int64_t* rows, int64_t n, const float* dx0,
               SparseListing& L, int64_t& nt, int64_t& pos) {
    const Inputs& in = md.in;
    const int64_t d0 = md.net.d0();
    for (int64_t r = 0; r < n; ++r) {
        const int64_t i = rows[r];
        for (int64_t c = 0; c < in.n_cat; ++c) {
            const int64_t g = md.col_row_off[c] + in.codes[i * in.n_cat + c];
            const int64_t d = in.col_dim[c];
            int64_t t = L.mark[g];
            if (t < 0) {
                t = nt++;
                L.mark[g] = t;
                L.touched[t] = g;
                L.touched_col[t] = c;
                L.goff[t] = pos;
                std::fill(L.gbuf.begin() + pos, L.gbuf.begin() + pos + d, 0.0f);
                pos += d;
            }
            float* gb = L.gbuf.data() + L.goff[t];
            const float* dx = dx0 + r * d0 + in.col_in_off[c];
            for (int64_t j = 0; j < d; ++j) gb[j] += dx[j];
        }
    }
}

// The rows rows[0, n) add dz[r] * x_wide[rows[r]] to the wide coordinates they use; nw are listed
// so far. Returns the new count.
template <class Indptr>
int64_t wide_grads(const Model<Indptr>& md, const int64_t* rows, int64_t n, const float* dz,
                   SparseListing& L, int64_t nw) {
    const Wide<Indptr>& w = md.wide;
    for (int64_t r = 0; r < n; ++r) {
        const int64_t i = rows[r];
        for (Indptr p = w.indptr[i]; p < w.indptr[i + 1]; ++p) {
            const int64_t j = w.indices[p];
            int64_t t = L.wmark[j];
            if (t < 0) {
                t = nw++;
                L.wmark[j] = t;
                L.wtouched[t] = j;
                L.wg[t] = 0.0f;
            }
            L.wg[t] += dz[r] * w.data[p];
        }
    }
    return nw;
}

// The slots of chunk results: n_slots of each (see Trainer::worker for who writes which).
struct Slots {
    int64_t d0, n_params;
    std::vector<float> dx0, dz, grads;
    std::vector<double> loss;
    Slots(int64_t n_slots, int64_t d0_, int64_t n_params_)
        : d0(d0_),
          n_params(n_params_),
          dx0(static_cast<size_t>(n_slots * kTrainChunkRows * d0_)),
          dz(static_cast<size_t>(n_slots * kTrainChunkRows)),
          grads(static_cast<size_t>(n_slots * n_params_)),
          loss(static_cast<size_t>(n_slots * kTrainChunkRows)) {}
    float* dx0_of(int64_t s) { return dx0.data() + s * kTrainChunkRows * d0; }
    float* dz_of(int64_t s) { return dz.data() + s * kTrainChunkRows; }
    float* grads_of(int64_t s) { return grads.data() + s * n_params; }
    double* loss_of(int64_t s) { return loss.data() + s * kTrainChunkRows; }
};

// A worker's own buffers for one chunk pass.
struct WorkerScratch {
    std::vector<float> x0, acts;
    BackwardScratch backward;
    explicit WorkerScratch(const Layers& net)
        : x0(static_cast<size_t>(kTrainChunkRows * net.d0())),
          acts(static_cast<size_t>(kTrainChunkRows * net.acts_per_row())),
          backward(net, kTrainChunkRows) {}
};

using AtomicI64 = std::atomic<int64_t>;

// fastest = min(fastest, elapsed), atomically.
inline void record_fastest(AtomicI64& fastest, int64_t elapsed) {
    int64_t seen = fastest.load();
    while (elapsed < seen && !fastest.compare_exchange_weak(seen, elapsed)) {
    }
}

// The first chunk of a batch (entries o0 .. o0 + n_chunks of owner / started) that is unpublished
// (owner -1) and late: its computation began (started, monotonic ns) more than kLateChunkFactor
// times the fastest full chunk pass ago (kFirstLateNs before one was timed). Returns the chunk,
// n_chunks when every chunk is published, -1 when the unpublished ones are all on time.
template <class Owner, class Started>
int64_t late_chunk(Owner&& owner, Started&& started, int64_t o0, int64_t n_chunks,
                   int64_t quickest) {
    const int64_t limit = quickest == kNever ? kFirstLateNs : kLateChunkFactor * quickest;
    const int64_t now = monotonic_ns();
    bool pending = false;
    for (int64_t c = 0; c < n_chunks; ++c) {
        if (owner(o0 + c) == -1) {
            if (now - started(o0 + c) > limit) return c;
            pending = true;
        }
    }
    return pending ? -1 : n_chunks;
}

// One training call: the rows order[start, stop) in mini-batches of batch_size on n_workers
// workers; returns the summed weighted log-loss of those rows before each batch's update.
template <class Indptr>
class Trainer {
  public:
    Trainer(const Blas& blas, Model<Indptr>& md, const Hyper& hp, const int64_t* order,
            int64_t start, int64_t stop, int64_t batch_size, int n_workers)
        : blas_(blas),
          md_(md),
          hp_(hp),
          order_(order),
          start_(start),
          stop_(stop),
          batch_size_(batch_size),
          n_workers_(std::max(1, n_workers)),
          max_chunks_((batch_size + kTrainChunkRows - 1) / kTrainChunkRows),
          n_batches_(std::max<int64_t>(0, (stop - start + batch_size - 1) / batch_size)),
          n_blocks_((md.n_params + kUpdateBlock - 1) / kUpdateBlock),
          step0_(md.step[0]),
          offsets_(md.net),
          slots_(max_chunks_ + n_workers_, md.net.d0(), md.n_params),
          grads_(static_cast<size_t>(md.n_params)),
          claimed_(std::max<int64_t>(1, n_batches_)),
          published_(claimed_.size()),
          blocks_(claimed_.size()),
          parts_(claimed_.size()),
          owner_(static_cast<size_t>(std::max<int64_t>(1, n_batches_ * max_chunks_))),
          started_(owner_.size()),
          home_(static_cast<size_t>(max_chunks_)) {
        for (auto* v : {&claimed_, &published_, &blocks_, &parts_})
            for (auto& a : *v) a.store(0);
        for (auto& a : owner_) a.store(-1);
        for (auto& a : started_) a.store(kNever);
        for (int64_t c = 0; c < max_chunks_; ++c) home_[c] = c;
        for (int w = 0; w < n_workers_; ++w) scratch_.emplace_back(md.net);
        int64_t max_dim = 0;
        for (int64_t c = 0; c < md.in.n_cat; ++c) max_dim = std::max(max_dim, md.in.col_dim[c]);
        const int64_t cap = batch_size * md.in.n_cat;
        listing_.mark.assign(static_cast<size_t>(md.in.n_cat > 0 ? md.col_row_off[md.in.n_cat] : 0),
                             -1);
        listing_.touched.resize(static_cast<size_t>(cap));
        listing_.touched_col.resize(static_cast<size_t>(cap));
        listing_.goff.resize(static_cast<size_t>(cap));
        listing_.gbuf.resize(static_cast<size_t>(cap * max_dim));
        const auto n_wide = static_cast<size_t>(md.n_wide);
        listing_.wmark.assign(n_wide, -1);
        listing_.wtouched.resize(n_wide);
        for (auto* v : {&listing_.wg, &listing_.wp, &listing_.wm, &listing_.wv}) v->resize(n_wide);
    }

    double run() {
        parallel_for(
            n_workers_, n_workers_, [&](int64_t w, int) { worker(static_cast<int>(w)); }, 1);
        return total_;
    }

  private:
    // Worker w's part of the call. Slots: max_chunks + n_workers of them, so their memory does
    // not grow by a batch's worth per thread. A worker computes every chunk into its spare slot
    // (initially max_chunks + w), which no other worker writes; when it publishes chunk c, the
    // slot goes to the batch and the worker takes home[c] as its new spare: the slot chunk c was
    // published in by an earlier batch, whose update is over (the current batch opened after it),
    // and that no one holds since. A worker that loses a chunk to another keeps its spare.
    //
    // A worker with nothing left to claim re-computes only a late chunk (late_chunk): one whose
    // holder still runs on time finishes it sooner than a second copy would, and the copy's CPU
    // would come out of the holder's share when the threads outnumber the free cores.
    void worker(int w) {
        int64_t spare = max_chunks_ + w;
        int64_t b = 0;
        auto owner = [this](int64_t i) { return owner_[i].load(); };
        auto started = [this](int64_t i) { return started_[i].load(); };
        while (b < n_batches_) {
            const int64_t s0 = start_ + b * batch_size_;
            const int64_t* rows = order_ + s0;
            const int64_t nb = std::min(stop_, s0 + batch_size_) - s0;
            const int64_t n_chunks = (nb + kTrainChunkRows - 1) / kTrainChunkRows;
            const int64_t t = step0_ + b + 1;
            const int64_t o0 = b * max_chunks_;
            int n_waits = 0;
            int64_t c = claimed_[b].fetch_add(1);
            while (opened_.load() <= b) {
                if (c >= n_chunks) {
                    // nothing left to claim: compute a late chunk another worker holds (the OS
                    // may have preempted it), else a block of the update, else wait
                    c = late_chunk(owner, started, o0, n_chunks, fastest_.load());
                    if (c < 0) {
                        n_waits = wait_a_little(n_waits);
                        c = n_chunks;
                        continue;
                    }
                    if (c == n_chunks) {
                        if (published_[b].load() == n_chunks) {
                            const int64_t q = blocks_[b].fetch_add(1);
                            if (q < n_blocks_) {
                                const int64_t q0 = q * kUpdateBlock;
                                dense_update(t, q0, std::min(md_.n_params, q0 + kUpdateBlock), o0,
                                             n_chunks);
                                if (parts_[b].fetch_add(1) == n_blocks_) opened_.store(b + 1);
                                continue;
                            }
                        }
                        n_waits = wait_a_little(n_waits);
                        continue;
                    }
                }
                const int64_t began = monotonic_ns();
                started_[o0 + c].store(began);
                if (train_chunk(rows, nb, t, c, w, spare, o0 + c)) {
                    if ((c + 1) * kTrainChunkRows <= nb)
                        record_fastest(fastest_, monotonic_ns() - began);
                    const int64_t published_slot = spare;
                    spare = home_[c];
                    home_[c] = published_slot;
                    if (published_[b].fetch_add(1) == n_chunks - 1) {
                        sparse_updates(rows, nb, t, o0, n_chunks);
                        if (parts_[b].fetch_add(1) == n_blocks_) opened_.store(b + 1);
                    }
                }
                c = claimed_[b].fetch_add(1);
            }
            b = std::max(b + 1, opened_.load());
        }
    }

    // Worker w computes chunk c of the batch rows[0, nb) at step t into its spare slot and
    // publishes the slot in owner[oi] unless another worker did first; returns whether it did.
    bool train_chunk(const int64_t* batch_rows, int64_t nb, int64_t t, int64_t c, int w,
                     int64_t slot, int64_t oi) {
        const int64_t r0 = c * kTrainChunkRows;
        const int64_t n = std::min(nb, r0 + kTrainChunkRows) - r0;
        const int64_t* rows = batch_rows + r0;
        WorkerScratch& ws = scratch_[w];
        std::optional<NumbaRandom> rng;
        if (hp_.dropout > 0.0) rng.emplace(dropout_seed(hp_.dropout_seed, t, c));
        auto row = [rows](int64_t r) { return rows[r]; };
        gather_inputs(md_.in, md_.net.d0(), n, row, ws.x0.data());
        float* z = mlp_forward(blas_, md_.net, ws.x0.data(), n, ws.acts.data(), hp_.dropout,
                               rng ? &*rng : nullptr);
        add_wide_logits(md_.wide, n, row, z);
        if (owner_[oi].load() != -1) return false;
        row_losses(z, rows, n, md_.y, md_.sw, nb, slots_.loss_of(slot), slots_.dz_of(slot));
        mlp_backward(blas_, md_.net, ws.x0.data(), n, ws.acts.data(), slots_.dz_of(slot), 0.0,
                     slots_.grads_of(slot), slots_.dx0_of(slot), hp_.dropout, ws.backward);
        int64_t expected = -1;
        return owner_[oi].compare_exchange_strong(expected, slot);
    }

    // The dense parameters [q0, q1) of a batch whose chunks are all published: gradient = the
    // chunks' summed in chunk order, plus 2 * l2 * W on the kernels, then the optimiser step.
    void dense_update(int64_t t, int64_t q0, int64_t q1, int64_t o0, int64_t n_chunks) {
        float* g = grads_.data();
        for (int64_t c = 0; c < n_chunks; ++c) {
            const float* gc = slots_.grads_of(owner_[o0 + c].load());
            if (c == 0)
                std::copy(gc + q0, gc + q1, g + q0);
            else
                for (int64_t q = q0; q < q1; ++q) g[q] += gc[q];
        }
        add_l2_grad(md_.net, offsets_, hp_.l2, g, q0, q1);
        const float alpha = adam_rate(hp_.lr, hp_.b1, hp_.b2, t);
        update(md_.params + q0, g + q0, md_.p_m + q0, md_.p_v + q0, q1 - q0, hp_.opt, hp_.lr, alpha,
               hp_.b1, hp_.b2, hp_.eps, 0.0, 0.0);
    }

    // What of a batch's update the worker that published its last chunk runs alone: the loss
    // (added in row order), the step count, the optimiser steps of the embedding rows and wide
    // coordinates the batch touched.
    void sparse_updates(const int64_t* rows, int64_t nb, int64_t t, int64_t o0, int64_t n_chunks) {
        for (int64_t c = 0; c < n_chunks; ++c) {
            const double* loss = slots_.loss_of(owner_[o0 + c].load());
            const int64_t n = std::min(nb - c * kTrainChunkRows, kTrainChunkRows);
            for (int64_t r = 0; r < n; ++r) total_ += loss[r];
        }
        md_.step[0] = t;
        const float alpha = adam_rate(hp_.lr, hp_.b1, hp_.b2, t);
        SparseListing& L = listing_;
        if (md_.in.n_cat > 0) {
            int64_t nt = 0, pos = 0;
            for (int64_t c = 0; c < n_chunks; ++c) {
                const int64_t r0 = c * kTrainChunkRows;
                emb_grads(md_, rows + r0, std::min(nb - r0, kTrainChunkRows),
                          slots_.dx0_of(owner_[o0 + c].load()), L, nt, pos);
            }
            for (int64_t q = 0; q < nt; ++q) {
                const int64_t c = L.touched_col[q], d = md_.in.col_dim[c];
                const int64_t o = md_.in.col_flat_off[c] + (L.touched[q] - md_.col_row_off[c]) * d;
                update(md_.emb + o, L.gbuf.data() + L.goff[q], md_.emb_m + o, md_.emb_v + o, d,
                       hp_.opt, hp_.lr, alpha, hp_.b1, hp_.b2, hp_.eps, 0.0, 0.0);
                L.mark[L.touched[q]] = -1;
            }
        }
        if (md_.wide.has) {
            int64_t nw = 0;
            for (int64_t c = 0; c < n_chunks; ++c) {
                const int64_t r0 = c * kTrainChunkRows;
                nw = wide_grads(md_, rows + r0, std::min(nb - r0, kTrainChunkRows),
                                slots_.dz_of(owner_[o0 + c].load()), L, nw);
            }
            for (int64_t q = 0; q < nw; ++q) {
                const int64_t j = L.wtouched[q];
                L.wp[q] = md_.wide_w[j];
                L.wm[q] = md_.wide_m[j];
                L.wv[q] = md_.wide_v[j];
            }
            const float wide_alpha = hp_.wide_opt == kAdam && hp_.wide_lr == hp_.lr
                                         ? alpha
                                         : adam_rate(hp_.wide_lr, hp_.b1, hp_.b2, t);
            update(L.wp.data(), L.wg.data(), L.wm.data(), L.wv.data(), nw, hp_.wide_opt,
                   hp_.wide_lr, wide_alpha, hp_.b1, hp_.b2, hp_.eps, hp_.wide_l1, hp_.wide_l2);
            for (int64_t q = 0; q < nw; ++q) {
                const int64_t j = L.wtouched[q];
                md_.wide_w[j] = L.wp[q];
                md_.wide_m[j] = L.wm[q];
                md_.wide_v[j] = L.wv[q];
                L.wmark[j] = -1;
            }
        }
    }

    const Blas& blas_;
    Model<Indptr>& md_;
    const Hyper hp_;
    const int64_t* order_;
    const int64_t start_, stop_, batch_size_;
    const int n_workers_;
    const int64_t max_chunks_, n_batches_, n_blocks_, step0_;
    const LayerOffsets offsets_;
    Slots slots_;
    std::vector<WorkerScratch> scratch_;
    std::vector<float> grads_;
    SparseListing listing_;
    // per batch: chunks handed out, chunks published, update blocks handed out, update parts done
    std::vector<AtomicI64> claimed_, published_, blocks_, parts_;
    // per chunk of each batch: the slot holding it (-1: unpublished), when its latest pass began
    std::vector<AtomicI64> owner_, started_;
    std::vector<int64_t> home_;  // per chunk index: the slot it was last published in
    AtomicI64 opened_{0};        // the batches done
    AtomicI64 fastest_{kNever};  // the fastest full chunk pass of the call (ns)
    double total_ = 0.0;
};

// Loss and gradients of one batch (rows[0, nb)) without updating anything (for tests and tools):
// returns sum_i s_i logloss_i / nb + l2 * sum ||W||^2 (float64); fills grads (like params),
// emb_grad (like emb, zero on untouched rows) and wide_grad (like wide_w).
template <class Indptr>
double loss_grad(const Blas& blas, const Model<Indptr>& md, const int64_t* rows, int64_t nb,
                 double l2, float* grads, float* emb_grad, int64_t n_emb, float* wide_grad) {
    const Layers& net = md.net;
    const int64_t d0 = net.d0();
    std::vector<float> x0(static_cast<size_t>(nb * d0)), dx0(x0.size());
    std::vector<float> acts(static_cast<size_t>(nb * net.acts_per_row()));
    std::vector<float> dz(static_cast<size_t>(nb));
    std::vector<double> loss(static_cast<size_t>(nb));
    BackwardScratch scratch(net, nb);
    auto row = [rows](int64_t r) { return rows[r]; };
    gather_inputs(md.in, d0, nb, row, x0.data());
    float* z = mlp_forward(blas, net, x0.data(), nb, acts.data());
    add_wide_logits(md.wide, nb, row, z);
    row_losses(z, rows, nb, md.y, md.sw, nb, loss.data(), dz.data());
    mlp_backward(blas, net, x0.data(), nb, acts.data(), dz.data(), 0.0, grads, dx0.data(), 0.0,
                 scratch);
    add_l2_grad(net, scratch.offsets, l2, grads, 0, md.n_params);
    double total = 0.0;
    for (int64_t r = 0; r < nb; ++r) total += loss[r];
    double reg = 0.0;
    for (int l = 0; l < net.n_layers; ++l) {
        const int64_t w0 = scratch.offsets.w_off[l];
        for (int64_t q = w0; q < w0 + net.sizes[l] * net.sizes[l + 1]; ++q)
            reg += static_cast<double>(net.params[q]) * net.params[q];
    }
    std::fill(emb_grad, emb_grad + n_emb, 0.0f);
    const Inputs& in = md.in;
    for (int64_t r = 0; r < nb; ++r) {
        const int64_t i = rows[r];
        for (int64_t c = 0; c < in.n_cat; ++c) {
            const int64_t d = in.col_dim[c];
            float* e = emb_grad + in.col_flat_off[c] + in.codes[i * in.n_cat + c] * d;
            const float* dx = dx0.data() + r * d0 + in.col_in_off[c];
            for (int64_t j = 0; j < d; ++j) e[j] += dx[j];
        }
    }
    std::fill(wide_grad, wide_grad + md.n_wide, 0.0f);
    if (md.wide.has) {
        for (int64_t r = 0; r < nb; ++r) {
            const int64_t i = rows[r];
            for (Indptr p = md.wide.indptr[i]; p < md.wide.indptr[i + 1]; ++p)
                wide_grad[md.wide.indices[p]] += dz[r] * md.wide.data[p];
        }
    }
    return total / static_cast<double>(nb) + l2 * reg;
}

}  // namespace recforge::nn
