// What the queue does when a push would take it past max_bytes or max_events.
#pragma once

#include <optional>
#include <string_view>

namespace sluice {

enum class overflow_policy {
    block,        // refuse: the source stops reading until the queue is under its low watermark
    drop_newest,  // refuse and drop the incoming batch, counted as reason "queue_full"
    drop_oldest,  // evict the oldest batches no sink has started on, counted as "evicted"
};

inline std::optional<overflow_policy> parse_overflow_policy(std::string_view s) {
    if (s == "block") {
        return overflow_policy::block;
    }
    if (s == "drop_newest") {
        return overflow_policy::drop_newest;
    }
    if (s == "drop_oldest") {
        return overflow_policy::drop_oldest;
    }
    return std::nullopt;
}

inline std::string_view to_string(overflow_policy p) {
    switch (p) {
        case overflow_policy::block:
            return "block";
        case overflow_policy::drop_newest:
            return "drop_newest";
        case overflow_policy::drop_oldest:
            return "drop_oldest";
    }
    return "?";
}

// Reasons a dropped event is counted under (label `reason` of sluice_events_dropped_total).
enum class drop_reason {
    queue_full,  // refused by a full queue (drop_newest, or UDP, which cannot pause)
    evicted,     // drop_oldest made room
    kernel,      // UDP datagrams the kernel dropped for lack of receive buffer
    count_
};

inline std::string_view to_string(drop_reason r) {
    switch (r) {
        case drop_reason::queue_full:
            return "queue_full";
        case drop_reason::evicted:
            return "evicted";
        case drop_reason::kernel:
            return "kernel";
        case drop_reason::count_:
            break;
    }
    return "?";
}

}  // namespace sluice
