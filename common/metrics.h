// Counters the data path keeps anyway, as relaxed atomics: scrapes read them without locks.
// Writers are the owning thread; readers are any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

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
    void observe(double seconds) {
        size_t i = 0;
        while (i < bounds.size() && seconds > bounds[i]) {
            ++i;
        }
        bump(buckets_[i]);
        bump(sum_ns_, static_cast<uint64_t>(seconds * 1e9));
    }
    // Non-cumulative count of bucket i; i == bounds.size() is +Inf.
    uint64_t bucket(size_t i) const { return read(buckets_[i]); }
    double sum_seconds() const { return static_cast<double>(read(sum_ns_)) / 1e9; }

private:
    std::array<counter, bounds.size() + 1> buckets_{};
    counter sum_ns_{0};
};

}  // namespace sluice
