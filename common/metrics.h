// Counters the data path keeps anyway, as relaxed atomics: scrapes read them without locks.
// Writers are the owning thread; readers are any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>
#include <vector>

namespace sluice {

using counter = std::atomic<uint64_t>;

inline void bump(counter& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
inline uint64_t read(const counter& c) { return c.load(std::memory_order_relaxed); }

// A Prometheus histogram of durations in seconds with fixed buckets.
class duration_histogram {
public:
    static constexpr std::array<double, 14> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                   0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                                   5,      10};
    // `count` observations of the same value.
    void observe(double seconds, uint64_t count = 1) {
        size_t i = 0;
        while (i < bounds.size() && seconds > bounds[i]) {
            ++i;
        }
        bump(buckets_[i], count);
        bump(sum_ns_, static_cast<uint64_t>(seconds * 1e9) * count);
    }
    // Non-cumulative count of bucket i; i == bounds.size() is +Inf.
    uint64_t bucket(size_t i) const { return read(buckets_[i]); }
    double sum_seconds() const { return static_cast<double>(read(sum_ns_)) / 1e9; }
    // Every bucket's count, +Inf last.
    std::vector<uint64_t> counts() const {
        std::vector<uint64_t> out;
        for (const auto& b : buckets_) {
            out.push_back(read(b));
        }
        return out;
    }
    uint64_t count() const {
        uint64_t n = 0;
        for (const auto& b : buckets_) {
            n += read(b);
        }
        return n;
    }

private:
    std::array<counter, bounds.size() + 1> buckets_{};
    counter sum_ns_{0};
};

// The q-quantile (0 to 1) of duration_histogram bucket counts (non-cumulative, +Inf last),
// interpolated linearly within its bucket as Prometheus' histogram_quantile does; in the +Inf
// bucket, the last bound. 0 without observations.
inline double histogram_quantile(const std::vector<uint64_t>& counts, double q) {
    uint64_t total = 0;
    for (uint64_t c : counts) {
        total += c;
    }
    if (total == 0) {
        return 0;
    }
    const double rank = q * static_cast<double>(total);
    double below = 0;
    const auto& bounds = duration_histogram::bounds;
    for (size_t i = 0; i < counts.size(); ++i) {
        const double in = static_cast<double>(counts[i]);
        if (below + in >= rank && in > 0) {
            if (i >= bounds.size()) {
                return bounds.back();
            }
            const double lower = i == 0 ? 0 : bounds[i - 1];
            return lower + (bounds[i] - lower) * (rank - below) / in;
        }
        below += in;
    }
    return bounds.back();
}

// A figure of one kind of source or sink (a nats sink's acks) beyond those every source or sink
// has: /metrics exports it as `family` with the component's label, /status as `key` in the
// component's "metrics" object (a histogram as key_p50_seconds and key_p99_seconds), and
// `sluice top` shows it. The strings are literals.
struct kind_metric {
    std::string_view family;  // "sluice_nats_sink_acks_total"
    std::string_view key;     // "acks_total"
    std::string_view type;    // "counter", "gauge" or "histogram"
    std::string_view help;
    double value = 0;
    const duration_histogram* histogram = nullptr;  // type "histogram"
};

}  // namespace sluice
