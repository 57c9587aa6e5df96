// top: parsing /status snapshots (the real writer's output among them), rates between two
// snapshots, the screen's lines, and the --url rules.
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

#include "app/config.h"
#include "app/http_api.h"
#include "app/pipeline.h"
#include "app/top.h"
#include "app/top_terminal.h"
#include "common/metrics.h"
#include "tests/temp_dir.h"

namespace {

using sluice::top_line;
using sluice::top_snapshot;
using sluice::top_style;

// A /status body as app/status.cpp writes it, with the figures that vary as arguments.
std::string status_json(double uptime, uint64_t app_events, uint64_t app_bytes,
                        uint64_t app_dropped, uint64_t db_events, uint64_t db_errors,
                        bool db_failed = false, bool blocked = false) {
    return fmt::format(
        R"({{"version":"0.1.0","uptime_seconds":{},"process_resident_memory_bytes":25165824,)"
        R"("queue":{{"events":2500,"bytes":16777216,"max_events":10000,"max_bytes":67108864,)"
        R"("oldest_event_age_seconds":1.5,"when_full":"block","blocked":{}}},)"
        R"("sources":[{{"name":"app","type":"tcp","files_watched":0,"files_behind_bytes":0,)"
        R"("events_total":{},"bytes_total":{},"paused":false,)"
        R"("backpressure_seconds_total":2.25,"truncated_total":3,"decode_errors_total":4,)"
        R"("dropped":{{"queue_full":{},"evicted":0,"kernel":1}}}}],)"
        R"("sinks":[{{"name":"db","events_total":{},"batches_total":7,"errors_total":{},)"
        R"("retries_total":2,"lag_events":2500,"lag_bytes":1048576,"lag_seconds":0.75,)"
        R"("state":"{}","failed":{},"last_error":"","latency_p50_seconds":0.004,)"
        R"("latency_p99_seconds":0.02,"latency_buckets":[0,0,0,6,0,1,0,0,0,0,0,0,0,0,0]}}]}})",
        uptime, blocked, app_events, app_bytes, app_dropped, db_events, db_errors,
        db_failed ? "failed" : "ok", db_failed);
}

top_snapshot parse(const std::string& json) {
    std::string error;
    auto s = sluice::parse_top_snapshot(json, error);
    INFO(error);
    REQUIRE(s);
    CHECK(error.empty());
    return *s;
}

// The line that starts with `prefix` (a source or sink name followed by a space).
const top_line& line_of(const std::vector<top_line>& lines, const std::string& prefix) {
    const auto it = std::find_if(lines.begin(), lines.end(), [&](const top_line& l) {
        return l.text.rfind(prefix + " ", 0) == 0;
    });
    REQUIRE(it != lines.end());
    return *it;
}

// The whitespace-separated columns of a line.
std::vector<std::string> columns(const std::string& text) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < text.size()) {
        const size_t start = text.find_first_not_of(' ', i);
        if (start == std::string::npos) {
            break;
        }
        const size_t end = std::min(text.find(' ', start), text.size());
        out.push_back(text.substr(start, end - start));
        i = end;
    }
    return out;
}

}  // namespace

TEST_CASE("a status snapshot is read field by field", "[top]") {
    const top_snapshot s = parse(status_json(12.5, 1000, 64000, 5, 900, 1));
    CHECK(s.version == "0.1.0");
    CHECK(s.uptime_seconds == 12.5);
    CHECK(s.resident_bytes == 25165824);
    CHECK(s.queue_events == 2500);
    CHECK(s.queue_bytes == 16777216);
    CHECK(s.queue_max_events == 10000);
    CHECK(s.queue_max_bytes == 67108864);
    CHECK(s.oldest_event_age_seconds == 1.5);
    CHECK(s.when_full == "block");
    CHECK_FALSE(s.blocked);
    REQUIRE(s.sources.size() == 1);
    CHECK(s.sources[0].name == "app");
    CHECK(s.sources[0].events_total == 1000);
    CHECK(s.sources[0].bytes_total == 64000);
    CHECK(s.sources[0].backpressure_seconds_total == 2.25);
    CHECK(s.sources[0].truncated_total == 3);
    CHECK(s.sources[0].decode_errors_total == 4);
    CHECK(s.sources[0].dropped_total() == 6);
    REQUIRE(s.sinks.size() == 1);
    CHECK(s.sinks[0].name == "db");
    CHECK(s.sinks[0].events_total == 900);
    CHECK(s.sinks[0].batches_total == 7);
    CHECK(s.sinks[0].errors_total == 1);
    CHECK(s.sinks[0].retries_total == 2);
    CHECK(s.sinks[0].lag_events == 2500);
    CHECK(s.sinks[0].lag_bytes == 1048576);
    CHECK(s.sinks[0].lag_seconds == 0.75);
    CHECK_FALSE(s.sinks[0].failed);
}

TEST_CASE("a bad snapshot names what is wrong", "[top]") {
    std::string error;
    CHECK_FALSE(sluice::parse_top_snapshot("<html>not found</html>", error));
    CHECK_THAT(error, Catch::Contains("not a JSON object"));

    std::string json = status_json(1, 1, 1, 0, 1, 0);
    const std::string lag = R"("lag_events":2500)";
    json.replace(json.find(lag), lag.size(), R"("lag_events":"many")");
    CHECK_FALSE(sluice::parse_top_snapshot(json, error));
    CHECK(error == R"("sinks[0].lag_events" is missing or not a non-negative integer)");

    json = status_json(1, 1, 1, 0, 1, 0);
    const std::string kernel = R"(,"kernel":1)";
    json.erase(json.find(kernel), kernel.size());
    CHECK_FALSE(sluice::parse_top_snapshot(json, error));
    CHECK(error == R"("sources[0].dropped.kernel" is missing or not a non-negative integer)");

    CHECK_FALSE(sluice::parse_top_snapshot(R"({"version":"0.1.0"})", error));
    CHECK(error == R"("uptime_seconds" is missing or not a number)");
}

TEST_CASE("the status the API writes is what top reads", "[top]") {
    sluice::test::temp_dir dir;
    const std::string config_text = fmt::format(R"(data_dir = "{}"
[api]
address = "127.0.0.1:0"
[queue]
max_bytes = "8MiB"
max_events = 5000
when_full = "drop_oldest"
[sources.demo_generator]
type = "generator"
count = 10
[sinks.archive_file]
type = "file"
path = "out.log"
)",
                                                dir.path().string());
    sluice::pipeline p(sluice::parse_config(config_text, "top.toml"));
    const top_snapshot s = parse(sluice::render_status_json(p));
    CHECK(s.version == SLUICE_VERSION);
    CHECK(s.queue_max_bytes == 8 * 1024 * 1024);
    CHECK(s.queue_max_events == 5000);
    CHECK(s.when_full == "drop_oldest");
    REQUIRE(s.sources.size() == 1);
    CHECK(s.sources[0].name == "demo_generator");
    CHECK(s.sources[0].events_total == 0);
    REQUIRE(s.sinks.size() == 1);
    CHECK(s.sinks[0].name == "archive_file");
    CHECK_FALSE(s.sinks[0].failed);
}

TEST_CASE("rates are the counters' growth over the instance's uptime", "[top]") {
    const top_snapshot before = parse(status_json(10.0, 1000, 1048576, 0, 800, 0));
    const top_snapshot after = parse(status_json(12.0, 5000, 9437184, 0, 4800, 0));
    const auto lines = sluice::render_top(after, &before, "http://127.0.0.1:9598", "");

    // app: 4000 events and 8 MiB in 2 s; db: 4000 events in 2 s.
    const auto app = columns(line_of(lines, "app").text);
    REQUIRE(app.size() == 9);
    CHECK(app[1] == "2.0k");
    CHECK(app[2] == "4.0");
    CHECK(app[3] == "5.0k");
    CHECK(app[4] == "1");  // the one kernel drop status_json always reports
    const auto db = columns(line_of(lines, "db").text);
    REQUIRE(db.size() == 12);
    CHECK(db[1] == "2.0k");
    CHECK(db[2] == "4.8k");
    // No event written between the two: the latency columns show the figures since start.
    CHECK(db[7] == "4.0");
    CHECK(db[8] == "20.0");
    CHECK(db[11] == "ok");
}

TEST_CASE("latency quantiles interpolate within their bucket", "[top]") {
    using sluice::histogram_quantile;
    // Bounds 0.0005, 0.001, 0.0025, 0.005, ...: 100 events in (1 ms, 2.5 ms].
    std::vector<uint64_t> counts(sluice::duration_histogram::bounds.size() + 1, 0);
    CHECK(histogram_quantile(counts, 0.5) == 0);
    counts[2] = 100;
    CHECK(histogram_quantile(counts, 0.5) == Approx(0.00175));
    CHECK(histogram_quantile(counts, 1.0) == Approx(0.0025));
    // One slow event in +Inf: p99 stays in the fast bucket, p100 is the last bound.
    counts.back() = 1;
    CHECK(histogram_quantile(counts, 0.99) < 0.0025);
    CHECK(histogram_quantile(counts, 1.0) == Approx(10.0));
}

TEST_CASE("without an earlier snapshot or across a restart rates are unknown", "[top]") {
    const top_snapshot earlier = parse(status_json(100.0, 9000, 9000, 0, 9000, 0));
    const top_snapshot restarted = parse(status_json(1.0, 10, 10, 0, 10, 0));
    for (const top_snapshot* previous : {static_cast<const top_snapshot*>(nullptr), &earlier}) {
        const auto lines = sluice::render_top(restarted, previous, "u", "");
        CHECK(columns(line_of(lines, "app").text)[1] == "-");
        CHECK(columns(line_of(lines, "app").text)[2] == "-");
        CHECK(columns(line_of(lines, "db").text)[1] == "-");
    }
}

TEST_CASE("the screen shows the queue's fill and flags trouble", "[top]") {
    const top_snapshot before = parse(status_json(10.0, 1000, 1000, 1, 800, 0));
    const top_snapshot after = parse(status_json(11.0, 2000, 2000, 7, 800, 3, true, true));
    const auto lines = sluice::render_top(after, &before, "http://h:1", "stale figures");

    REQUIRE(lines.size() > 3);
    CHECK(lines[0].style == top_style::header);
    CHECK_THAT(lines[0].text, Catch::StartsWith("sluice 0.1.0 at http://h:1   up 11s"));
    CHECK_THAT(lines[0].text, Catch::Contains("RSS 24.0 MiB"));
    CHECK(lines[1].text == "stale figures");
    CHECK(lines[1].style == top_style::alert);

    // 2500 of 10000 events is 25%, 16 of 64 MiB is 25%: a quarter of the 40-column bar.
    const auto queue = std::find_if(lines.begin(), lines.end(), [](const top_line& l) {
        return l.text.rfind("queue ", 0) == 0;
    });
    REQUIRE(queue != lines.end());
    CHECK_THAT(queue->text, Catch::Contains("[" + std::string(10, '#') + std::string(30, '.') +
                                            "]  25%"));
    CHECK_THAT(queue->text, Catch::Contains("BLOCKED"));
    CHECK(queue->style == top_style::alert);
    CHECK_THAT((queue + 1)->text, Catch::Contains("2500 of 10000 events (25.0%)"));
    CHECK_THAT((queue + 1)->text, Catch::Contains("16.0 MiB of 64.0 MiB (25.0%)"));
    CHECK_THAT((queue + 1)->text, Catch::Contains("oldest 1.5 s"));

    // The source dropped 6 more events in this interval, the sink failed.
    CHECK(line_of(lines, "app").style == top_style::alert);
    const top_line& db = line_of(lines, "db");
    CHECK(db.style == top_style::alert);
    CHECK(columns(db.text).back() == "FAILED");
}

TEST_CASE("a file source shows its files watched and how far behind it is", "[top]") {
    std::string json = status_json(10.0, 1000, 1000, 0, 800, 0);
    const std::string tcp = R"("type":"tcp","files_watched":0,"files_behind_bytes":0)";
    json.replace(json.find(tcp), tcp.size(),
                 R"("type":"file","files_watched":1200,"files_behind_bytes":3145728)");
    const top_snapshot snap = parse(json);
    CHECK(snap.sources[0].type == "file");
    CHECK(snap.sources[0].files_watched == 1200);
    const auto lines = sluice::render_top(snap, nullptr, "http://h:1", "");
    const auto app = std::find_if(lines.begin(), lines.end(),
                                  [](const top_line& l) { return l.text.rfind("app ", 0) == 0; });
    REQUIRE(app != lines.end());
    CHECK_THAT((app + 1)->text, Catch::Contains("files: 1200 watched, 3.0 MiB behind"));

    // Other sources have no such line.
    const auto tcp_lines = sluice::render_top(parse(status_json(10.0, 1, 1, 0, 1, 0)), nullptr,
                                              "http://h:1", "");
    for (const auto& l : tcp_lines) {
        CHECK_THAT(l.text, !Catch::Contains("files:"));
    }
}

TEST_CASE("a quiet interval is not flagged", "[top]") {
    const top_snapshot before = parse(status_json(10.0, 1000, 1000, 4, 800, 2));
    const top_snapshot after = parse(status_json(11.0, 1000, 1000, 4, 800, 2));
    const auto lines = sluice::render_top(after, &before, "u", "");
    CHECK(line_of(lines, "app").style == top_style::normal);
    CHECK(line_of(lines, "db").style == top_style::normal);
    CHECK(columns(line_of(lines, "db").text).back() == "ok");
    CHECK(std::none_of(lines.begin(), lines.end(),
                       [](const top_line& l) { return l.style == top_style::alert; }));
}

TEST_CASE("counts are shortened to fit their columns", "[top]") {
    CHECK(sluice::format_count(0) == "0");
    CHECK(sluice::format_count(999) == "999");
    CHECK(sluice::format_count(1000) == "1.0k");
    CHECK(sluice::format_count(123456) == "123.5k");
    CHECK(sluice::format_count(2500000) == "2.50M");
    CHECK(sluice::format_count(7.25e9) == "7.25G");
    CHECK(sluice::format_count(-1) == "-");
}

TEST_CASE("the url is the API's address with or without http", "[top]") {
    std::string error;
    CHECK(sluice::normalize_top_url("127.0.0.1:9598", error) == "http://127.0.0.1:9598");
    CHECK(sluice::normalize_top_url("http://127.0.0.1:9598", error) == "http://127.0.0.1:9598");
    CHECK(sluice::normalize_top_url("http://localhost:80/", error) == "http://localhost:80");
    CHECK_FALSE(sluice::normalize_top_url("https://127.0.0.1:9598", error));
    CHECK_THAT(error, Catch::Contains("only http://"));
    CHECK_FALSE(sluice::normalize_top_url("http://127.0.0.1:9598/status", error));
    CHECK_THAT(error, Catch::Contains("without a path"));
    CHECK_FALSE(sluice::normalize_top_url("http://", error));
    CHECK_THAT(error, Catch::Contains("no host"));
    CHECK_FALSE(sluice::normalize_top_url(":9598", error));
}

TEST_CASE("a nats source or sink shows its kind's figures on a line of its own", "[top][nats]") {
    std::string json = status_json(10.0, 1000, 1000, 0, 800, 0);
    const std::string kernel = R"("kernel":1}})";
    json.replace(json.find(kernel), kernel.size(),
                 R"("kernel":1},"metrics":{"fetched_total":1200,"redelivered_total":3,)"
                 R"("consumer_pending":0}})");
    const std::string buckets = R"(0,0,0,0]})";
    json.replace(json.rfind(buckets), buckets.size(),
                 R"(0,0,0,0],"metrics":{"in_flight":12,"ack_seconds_p99_seconds":0.0031}})");
    const top_snapshot snap = parse(json);
    REQUIRE(snap.sources[0].metrics.size() == 3);
    CHECK(snap.sources[0].metrics[1] == std::pair<std::string, double>{"redelivered_total", 3});
    const auto lines = sluice::render_top(snap, nullptr, "http://h:1", "");
    const auto app = std::find_if(lines.begin(), lines.end(),
                                  [](const top_line& l) { return l.text.rfind("app ", 0) == 0; });
    REQUIRE(app != lines.end());
    CHECK_THAT((app + 1)->text,
               Catch::Contains("fetched_total 1.2k  redelivered_total 3  consumer_pending 0"));
    const auto db = std::find_if(lines.begin(), lines.end(),
                                 [](const top_line& l) { return l.text.rfind("db ", 0) == 0; });
    REQUIRE(db != lines.end());
    REQUIRE(db + 1 != lines.end());
    CHECK_THAT((db + 1)->text, Catch::Contains("in_flight 12  ack_seconds_p99_seconds 3.1 ms"));
}
