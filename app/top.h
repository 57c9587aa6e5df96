// top: what `sluice top` shows. Parses one GET /status snapshot (app/status.cpp writes it),
// derives rates from two snapshots, and lays the screen out as plain text lines. Pure
// functions with no I/O: the terminal loop (app/top_terminal) draws the lines, and
// `sluice top --once` prints them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice {

struct top_source {
    std::string name;
    std::string type;  // "tcp", "file", ...
    uint64_t files_watched = 0;       // file sources
    uint64_t files_behind_bytes = 0;
    uint64_t events_total = 0;
    uint64_t bytes_total = 0;
    bool paused = false;
    double backpressure_seconds_total = 0;
    uint64_t truncated_total = 0;
    uint64_t decode_errors_total = 0;
    uint64_t dropped_queue_full = 0;
    uint64_t dropped_evicted = 0;
    uint64_t dropped_kernel = 0;
    std::vector<std::pair<std::string, double>> metrics;  // the kind's own ("metrics")

    uint64_t dropped_total() const {
        return dropped_queue_full + dropped_evicted + dropped_kernel;
    }
};

struct top_sink {
    std::string name;
    uint64_t events_total = 0;
    uint64_t batches_total = 0;
    uint64_t errors_total = 0;
    uint64_t retries_total = 0;
    uint64_t lag_events = 0;
    uint64_t lag_bytes = 0;
    double lag_seconds = 0;
    std::string state = "ok";  // ok | retrying | failed
    bool failed = false;
    double latency_p50_seconds = 0;       // since start
    double latency_p99_seconds = 0;
    std::vector<uint64_t> latency_buckets;  // duration_histogram buckets, +Inf last
    std::vector<std::pair<std::string, double>> metrics;  // the kind's own ("metrics")
};

// One GET /status answer.
struct top_snapshot {
    std::string version;
    double uptime_seconds = 0;
    uint64_t resident_bytes = 0;
    uint64_t queue_events = 0;
    uint64_t queue_bytes = 0;
    uint64_t queue_max_events = 0;
    uint64_t queue_max_bytes = 0;
    double oldest_event_age_seconds = 0;
    std::string when_full;
    bool blocked = false;
    std::vector<top_source> sources;
    std::vector<top_sink> sinks;
};

// Parses a /status body. On failure returns nullopt and sets `error` to what was wrong
// (not JSON, or which key is missing or of the wrong type).
std::optional<top_snapshot> parse_top_snapshot(std::string_view json, std::string& error);

// How a screen line is drawn: a terminal shows `header` in bold and `alert` in reverse video
// (a sink that failed, a full queue, drops); plain text output ignores the style.
enum class top_style { normal, header, alert };

struct top_line {
    std::string text;
    top_style style = top_style::normal;
};

// The screen for `current`. Rates (per second) come from the difference to `previous`, taken
// over the instance's own uptime; without a previous snapshot, or when the instance restarted
// in between (its uptime went back), rates show as "-". `url` and `notice` (e.g. "cannot
// reach ...: retrying") go in the title lines; `notice` may be empty.
std::vector<top_line> render_top(const top_snapshot& current, const top_snapshot* previous,
                                 std::string_view url, std::string_view notice);

// 1234567 -> "1.23M", 999 -> "999"; for counts and rates in narrow columns.
std::string format_count(double value);

}  // namespace sluice
