// Wall-clock and monotonic time helpers. Safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>

namespace sluice {

// Unix time in nanoseconds (CLOCK_REALTIME): what `received_at` stores.
inline int64_t unix_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Monotonic nanoseconds: for durations and deadlines.
inline int64_t mono_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace sluice
