// Lets a worker log a recurring cause at most once per interval (default one second), and
// says how many were suppressed in between. One instance per cause; any thread (a source's
// connections on several io threads share one), so it holds a lock, taken only on paths that
// are about to log or to skip a log.
#pragma once

#include <cstdint>
#include <mutex>

#include "common/clock.h"

namespace sluice {

class log_limiter {
public:
    explicit log_limiter(int64_t interval_ns = 1'000'000'000) : interval_ns_(interval_ns) {}

    // True when the caller should log now; `suppressed` is how many calls were skipped since.
    bool should_log(uint64_t& suppressed) {
        const int64_t now = mono_now_ns();
        std::lock_guard lock(mutex_);
        if (last_ns_ != 0 && now - last_ns_ < interval_ns_) {
            ++skipped_;
            return false;
        }
        last_ns_ = now;
        suppressed = skipped_;
        skipped_ = 0;
        return true;
    }

private:
    std::mutex mutex_;
    int64_t interval_ns_;
    int64_t last_ns_ = 0;
    uint64_t skipped_ = 0;
};

}  // namespace sluice
