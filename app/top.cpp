#include "app/top.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>

#include "common/metrics.h"
#include "common/units.h"

namespace sluice {

namespace {

// Reads keys of one JSON object and remembers the first key that was missing or mistyped,
// with its path ("sinks[1].lag_events"), so a bad snapshot says exactly what was wrong.
class object_reader {
public:
    object_reader(simdjson::dom::object object, std::string path, std::string& error)
        : object_(object), path_(std::move(path)), error_(error) {}

    uint64_t count(const char* key) {
        uint64_t v = 0;
        if (ok() && object_[key].get_uint64().get(v) != simdjson::SUCCESS) {
            fail(key, "a non-negative integer");
        }
        return v;
    }
    double number(const char* key) {
        double v = 0;
        if (ok() && object_[key].get_double().get(v) != simdjson::SUCCESS) {
            fail(key, "a number");
        }
        return v;
    }
    bool boolean(const char* key) {
        bool v = false;
        if (ok() && object_[key].get_bool().get(v) != simdjson::SUCCESS) {
            fail(key, "true or false");
        }
        return v;
    }
    std::string text(const char* key) {
        std::string_view v;
        if (ok() && object_[key].get_string().get(v) != simdjson::SUCCESS) {
            fail(key, "a string");
        }
        return std::string(v);
    }
    // The numeric members of an optional object (a kind's "metrics"), in order; none when the
    // key is absent.
    std::vector<std::pair<std::string, double>> numbers(const char* key) {
        std::vector<std::pair<std::string, double>> out;
        simdjson::dom::object v;
        if (!ok() || object_[key].get_object().get(v) != simdjson::SUCCESS) {
            return out;
        }
        for (auto [k, value] : v) {
            double n = 0;
            if (value.get_double().get(n) == simdjson::SUCCESS) {
                out.emplace_back(std::string(k), n);
            }
        }
        return out;
    }
    std::optional<object_reader> object(const char* key) {
        simdjson::dom::object v;
        if (ok() && object_[key].get_object().get(v) != simdjson::SUCCESS) {
            fail(key, "an object");
        }
        if (!ok()) {
            return std::nullopt;
        }
        return object_reader(v, child(key), error_);
    }
    simdjson::dom::array array(const char* key) {
        simdjson::dom::array v;
        if (ok() && object_[key].get_array().get(v) != simdjson::SUCCESS) {
            fail(key, "an array");
        }
        return v;
    }
    std::string child(std::string_view key) const {
        return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
    }
    bool ok() const { return error_.empty(); }

private:
    void fail(const char* key, const char* expected) {
        error_ = fmt::format("\"{}\" is missing or not {}", child(key), expected);
    }

    simdjson::dom::object object_;
    std::string path_;
    std::string& error_;
};

// Calls `read(reader)` for each element of `array`, which must all be objects.
template <typename Read>
void for_each_object(simdjson::dom::array array, const std::string& path, std::string& error,
                     Read read) {
    size_t i = 0;
    for (simdjson::dom::element e : array) {
        const std::string element_path = fmt::format("{}[{}]", path, i++);
        simdjson::dom::object object;
        if (e.get_object().get(object) != simdjson::SUCCESS) {
            error = fmt::format("\"{}\" is not an object", element_path);
            return;
        }
        object_reader r(object, element_path, error);
        read(r);
        if (!error.empty()) {
            return;
        }
    }
}

top_source read_source(object_reader& r) {
    top_source s;
    s.name = r.text("name");
    s.type = r.text("type");
    s.files_watched = r.count("files_watched");
    s.files_behind_bytes = r.count("files_behind_bytes");
    s.events_total = r.count("events_total");
    s.bytes_total = r.count("bytes_total");
    s.paused = r.boolean("paused");
    s.backpressure_seconds_total = r.number("backpressure_seconds_total");
    s.truncated_total = r.count("truncated_total");
    s.decode_errors_total = r.count("decode_errors_total");
    if (auto dropped = r.object("dropped")) {
        s.dropped_queue_full = dropped->count("queue_full");
        s.dropped_evicted = dropped->count("evicted");
        s.dropped_kernel = dropped->count("kernel");
    }
    s.metrics = r.numbers("metrics");
    return s;
}

top_sink read_sink(object_reader& r) {
    top_sink s;
    s.name = r.text("name");
    s.events_total = r.count("events_total");
    s.batches_total = r.count("batches_total");
    s.errors_total = r.count("errors_total");
    s.retries_total = r.count("retries_total");
    s.lag_events = r.count("lag_events");
    s.lag_bytes = r.count("lag_bytes");
    s.lag_seconds = r.number("lag_seconds");
    s.state = r.text("state");
    s.failed = r.boolean("failed");
    s.latency_p50_seconds = r.number("latency_p50_seconds");
    s.latency_p99_seconds = r.number("latency_p99_seconds");
    const simdjson::dom::array buckets = r.array("latency_buckets");
    if (r.ok()) {  // a default array is no array: only walk one that was read
        for (simdjson::dom::element e : buckets) {
            uint64_t n = 0;
            if (e.get_uint64().get(n) == simdjson::SUCCESS) {
                s.latency_buckets.push_back(n);
            }
        }
    }
    s.metrics = r.numbers("metrics");
    return s;
}

// A kind's own figures on one line: "acks_total 1.2M  in_flight 12  ack_seconds_p99 3.1 ms".
std::string format_kind_metrics(const std::vector<std::pair<std::string, double>>& metrics) {
    std::string out;
    for (const auto& [key, value] : metrics) {
        out += out.empty() ? "" : "  ";
        if (key.ends_with("_seconds")) {
            fmt::format_to(std::back_inserter(out), "{} {:.1f} ms", key, value * 1e3);
        } else if (value >= 0 && value == std::floor(value)) {
            fmt::format_to(std::back_inserter(out), "{} {}", key,
                           format_count(value));
        } else {
            fmt::format_to(std::back_inserter(out), "{} {:g}", key, value);
        }
    }
    return out;
}

// p50 and p99 of the events written since the last refresh; since the start when there
// is no earlier refresh, or nothing was written since.
std::pair<double, double> latency_quantiles(const top_sink& s, const top_sink* old) {
    if (old != nullptr && old->latency_buckets.size() == s.latency_buckets.size()) {
        std::vector<uint64_t> delta(s.latency_buckets.size());
        uint64_t total = 0;
        for (size_t i = 0; i < delta.size(); ++i) {
            delta[i] = s.latency_buckets[i] - std::min(s.latency_buckets[i], old->latency_buckets[i]);
            total += delta[i];
        }
        if (total > 0) {
            return {histogram_quantile(delta, 0.5), histogram_quantile(delta, 0.99)};
        }
    }
    return {s.latency_p50_seconds, s.latency_p99_seconds};
}

}  // namespace

std::optional<top_snapshot> parse_top_snapshot(std::string_view json, std::string& error) {
    error.clear();
    simdjson::dom::parser parser;
    simdjson::dom::object root;
    if (const auto rc = parser.parse(json.data(), json.size()).get_object().get(root);
        rc != simdjson::SUCCESS) {
        error = fmt::format("not a JSON object ({})", simdjson::error_message(rc));
        return std::nullopt;
    }
    object_reader r(root, "", error);
    top_snapshot s;
    s.version = r.text("version");
    s.uptime_seconds = r.number("uptime_seconds");
    s.resident_bytes = r.count("process_resident_memory_bytes");
    if (auto q = r.object("queue")) {
        s.queue_events = q->count("events");
        s.queue_bytes = q->count("bytes");
        s.queue_max_events = q->count("max_events");
        s.queue_max_bytes = q->count("max_bytes");
        s.oldest_event_age_seconds = q->number("oldest_event_age_seconds");
        s.when_full = q->text("when_full");
        s.blocked = q->boolean("blocked");
    }
    const auto sources = r.array("sources");
    if (r.ok()) {
        for_each_object(sources, "sources", error,
                        [&](object_reader& e) { s.sources.push_back(read_source(e)); });
    }
    const auto sinks = r.array("sinks");
    if (r.ok()) {
        for_each_object(sinks, "sinks", error,
                        [&](object_reader& e) { s.sinks.push_back(read_sink(e)); });
    }
    if (!error.empty()) {
        return std::nullopt;
    }
    return s;
}

std::string format_count(double value) {
    if (!std::isfinite(value) || value < 0) {
        return "-";
    }
    if (value < 1e3) {
        return fmt::format("{:.0f}", value);
    }
    if (value < 1e6) {
        return fmt::format("{:.1f}k", value / 1e3);
    }
    if (value < 1e9) {
        return fmt::format("{:.2f}M", value / 1e6);
    }
    return fmt::format("{:.2f}G", value / 1e9);
}

namespace {

constexpr double mib = 1024.0 * 1024.0;
constexpr size_t bar_width = 40;

std::string format_uptime(double seconds) {
    const auto s = static_cast<uint64_t>(std::max(0.0, seconds));
    if (s >= 86400) {
        return fmt::format("{}d{:02}h{:02}m", s / 86400, s % 86400 / 3600, s % 3600 / 60);
    }
    if (s >= 3600) {
        return fmt::format("{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60);
    }
    if (s >= 60) {
        return fmt::format("{}m{:02}s", s / 60, s % 60);
    }
    return fmt::format("{}s", s);
}

double fraction(uint64_t part, uint64_t whole) {
    return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

// The per-second growth of `counter` from `before` to `now`, `seconds` apart; nullopt when
// there is no earlier item or the counter went back (the instance restarted).
template <typename T>
std::optional<double> rate(const T* before, const T& now, uint64_t T::*counter, double seconds) {
    if (before == nullptr || seconds <= 0 || now.*counter < before->*counter) {
        return std::nullopt;
    }
    return static_cast<double>(now.*counter - before->*counter) / seconds;
}

std::string format_rate(std::optional<double> r) { return r ? format_count(*r) : "-"; }

std::string format_total(uint64_t v) { return format_count(static_cast<double>(v)); }

template <typename T>
const T* find_named(const std::vector<T>& items, const std::string& name) {
    const auto it =
        std::find_if(items.begin(), items.end(), [&](const T& x) { return x.name == name; });
    return it == items.end() ? nullptr : &*it;
}

}  // namespace

std::vector<top_line> render_top(const top_snapshot& current, const top_snapshot* previous,
                                 std::string_view url, std::string_view notice) {
    std::vector<top_line> lines;
    auto add = [&](std::string text, top_style style = top_style::normal) {
        lines.push_back({std::move(text), style});
    };
    // A restart between the two snapshots makes every difference meaningless.
    const double seconds =
        previous == nullptr ? 0.0 : current.uptime_seconds - previous->uptime_seconds;
    const top_snapshot* before = seconds > 0 ? previous : nullptr;

    add(fmt::format("sluice {} at {}   up {}   RSS {}", current.version, url,
                    format_uptime(current.uptime_seconds), format_size(current.resident_bytes)),
        top_style::header);
    if (!notice.empty()) {
        add(std::string(notice), top_style::alert);
    }
    add("");

    const double event_fill = fraction(current.queue_events, current.queue_max_events);
    const double byte_fill = fraction(current.queue_bytes, current.queue_max_bytes);
    const double fill = std::min(1.0, std::max(event_fill, byte_fill));
    const auto filled = static_cast<size_t>(std::lround(fill * bar_width));
    add(fmt::format("queue  [{}{}] {:3.0f}%   when full: {}{}", std::string(filled, '#'),
                    std::string(bar_width - filled, '.'), fill * 100, current.when_full,
                    current.blocked ? "   BLOCKED: sources paused" : ""),
        current.blocked ? top_style::alert : top_style::normal);
    add(fmt::format("       {} of {} events ({:.1f}%)   {} of {} ({:.1f}%)   oldest {:.1f} s",
                    current.queue_events, current.queue_max_events, event_fill * 100,
                    format_size(current.queue_bytes), format_size(current.queue_max_bytes),
                    byte_fill * 100, current.oldest_event_age_seconds));
    add("");

    size_t name_width = 12;
    for (const auto& s : current.sources) {
        name_width = std::max(name_width, s.name.size());
    }
    for (const auto& s : current.sinks) {
        name_width = std::max(name_width, s.name.size());
    }
    name_width = std::min<size_t>(name_width, 24);
    auto name = [&](const std::string& n) { return n.substr(0, name_width); };

    add(fmt::format("{:<{}} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>6} {:>9}", "SOURCE",
                    name_width, "EVENTS/S", "MiB/S", "EVENTS", "DROPPED", "TRUNCATED",
                    "DECODE ERR", "PAUSED", "PAUSED S"),
        top_style::header);
    for (const auto& s : current.sources) {
        const top_source* old = before ? find_named(before->sources, s.name) : nullptr;
        const auto bytes_rate = rate(old, s, &top_source::bytes_total, seconds);
        const bool dropping = old != nullptr && s.dropped_total() > old->dropped_total();
        add(fmt::format("{:<{}} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>6} {:>9.1f}", name(s.name),
                        name_width, format_rate(rate(old, s, &top_source::events_total, seconds)),
                        bytes_rate ? fmt::format("{:.1f}", *bytes_rate / mib) : "-",
                        format_total(s.events_total), format_total(s.dropped_total()),
                        format_total(s.truncated_total), format_total(s.decode_errors_total),
                        s.paused ? "yes" : "no", s.backpressure_seconds_total),
            dropping ? top_style::alert : top_style::normal);
        if (s.type == "file") {
            add(fmt::format("{:<{}}   files: {} watched, {} behind", "", name_width,
                            s.files_watched, format_size(s.files_behind_bytes)));
        }
        if (!s.metrics.empty()) {
            add(fmt::format("{:<{}}   {}", "", name_width, format_kind_metrics(s.metrics)));
        }
    }
    add("");

    add(fmt::format("{:<{}} {:>9} {:>9} {:>9} {:>10} {:>9} {:>8} {:>7} {:>7} {:>7} {:>7}  {}",
                    "SINK", name_width, "EVENTS/S", "EVENTS", "BATCHES", "LAG EVENTS", "LAG MiB",
                    "LAG S", "P50 MS", "P99 MS", "ERRORS", "RETRIES", "STATE"),
        top_style::header);
    for (const auto& s : current.sinks) {
        const top_sink* old = before ? find_named(before->sinks, s.name) : nullptr;
        // A sink between two attempts is `retrying`; one that failed since the last refresh
        // and already wrote again still shows it.
        const bool erring = s.state == "retrying" ||
                            (old != nullptr && s.errors_total > old->errors_total);
        const auto [p50, p99] = latency_quantiles(s, old);
        add(fmt::format("{:<{}} {:>9} {:>9} {:>9} {:>10} {:>9.1f} {:>8.1f} {:>7.1f} {:>7.1f} {:>7} "
                        "{:>7}  {}",
                        name(s.name), name_width,
                        format_rate(rate(old, s, &top_sink::events_total, seconds)),
                        format_total(s.events_total), format_total(s.batches_total),
                        format_total(s.lag_events), static_cast<double>(s.lag_bytes) / mib,
                        s.lag_seconds, p50 * 1e3, p99 * 1e3, format_total(s.errors_total),
                        format_total(s.retries_total),
                        s.failed ? "FAILED" : (erring ? "retrying" : "ok")),
            s.failed || erring ? top_style::alert : top_style::normal);
        if (!s.metrics.empty()) {
            add(fmt::format("{:<{}}   {}", "", name_width, format_kind_metrics(s.metrics)));
        }
    }
    return lines;
}

}  // namespace sluice
