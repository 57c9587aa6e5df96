// e2e: two TCP sources routed by `inputs`; a file sink path template with strftime and
// {source}; a SQLite sink with its own table name and the NULL columns of the text codec.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace {

std::string local_date(int64_t unix_ns) {
    const auto t = static_cast<time_t>(unix_ns / 1'000'000'000);
    std::tm tm{};
    localtime_r(&t, &tm);
    char text[16];
    std::strftime(text, sizeof(text), "%Y-%m-%d", &tm);
    return text;
}

std::vector<std::string> send_source(uint16_t port, const std::string& prefix, int n) {
    std::vector<std::string> lines;
    std::string stream;
    for (int i = 0; i < n; ++i) {
        lines.push_back(e2e::make_line(prefix, i));
        stream += lines.back() + "\n";
    }
    e2e::tcp_client client(port);
    REQUIRE(client.send_all(stream));
    client.shutdown_write();
    return lines;
}

}  // namespace

TEST_CASE("inputs route sources to sinks, the path template splits files by date and source",
          "[e2e]") {
    const uint16_t port_a = e2e::free_port();
    const uint16_t port_b = e2e::free_port();
    const uint16_t port_c = e2e::free_port();
    e2e::daemon d(fmt::format(R"(
[sources.alpha]
type = "tcp"
address = "127.0.0.1:{}"

[sources.beta]
type = "tcp"
address = "127.0.0.1:{}"

[sources.gamma]
type = "tcp"
address = "127.0.0.1:{}"

[sinks.split]
type = "file"
inputs = ["alpha", "beta"]
path = "logs/%Y-%m-%d/{{source}}.log"
batch = {{ max_events = 1000, timeout = "100ms" }}

[sinks.gamma_only]
type = "file"
inputs = ["gamma"]
path = "gamma.log"
fsync = true
batch = {{ max_events = 1000, timeout = "100ms" }}

[sinks.db]
type = "sqlite"
path = "all.db"
table = "events"
batch = {{ max_events = 1000, timeout = "100ms" }}
)",
                              port_a, port_b, port_c));
    const int64_t t0 = e2e::unix_now_ns();
    const auto alpha = send_source(port_a, "alpha", 3000);
    const auto beta = send_source(port_b, "beta", 2000);
    const auto gamma = send_source(port_c, "gamma", 1000);
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", 6000);
    d.wait_metric("sluice_sink_events_total{sink=\"split\"}", 5000);
    d.wait_metric("sluice_sink_events_total{sink=\"gamma_only\"}", 1000);
    const int64_t t1 = e2e::unix_now_ns();
    CHECK(d.metric("sluice_source_events_total{source=\"alpha\"}") == 3000);
    CHECK(d.metric("sluice_source_events_total{source=\"beta\"}") == 2000);
    CHECK(d.metric("sluice_source_events_total{source=\"gamma\"}") == 1000);
    CHECK(d.metric("sluice_queue_events") == 0);

    // logs/DATE/alpha.log and logs/DATE/beta.log, DATE local, between t0 and t1.
    std::vector<std::string> got_alpha;
    std::vector<std::string> got_beta;
    std::vector<std::string> stray;
    for (const auto& day : std::filesystem::directory_iterator(d.data_dir() + "/logs")) {
        const std::string date = day.path().filename().string();
        INFO("directory logs/" << date);
        CHECK((date == local_date(t0) || date == local_date(t1)));
        for (const auto& f : std::filesystem::directory_iterator(day.path())) {
            auto lines = e2e::read_lines(f.path().string());
            const std::string name = f.path().filename().string();
            auto& into = name == "alpha.log" ? got_alpha : name == "beta.log" ? got_beta : stray;
            into.insert(into.end(), lines.begin(), lines.end());
        }
    }
    CHECK(e2e::multiset_difference(alpha, got_alpha) == "");
    CHECK(e2e::multiset_difference(beta, got_beta) == "");
    CHECK(stray.empty());
    CHECK(e2e::multiset_difference(gamma, e2e::read_lines(d.data_dir() + "/gamma.log")) == "");

    e2e::sqlite_db db(d.data_dir() + "/all.db");
    const auto rows = db.rows("events");
    std::vector<std::string> all = alpha;
    all.insert(all.end(), beta.begin(), beta.end());
    all.insert(all.end(), gamma.begin(), gamma.end());
    std::vector<std::string> messages;
    size_t wrong_source = 0;
    for (const auto& r : rows) {
        messages.push_back(r.message);
        // Each line's prefix is its source's name.
        wrong_source += r.message.rfind(r.source + "-", 0) != 0;
    }
    CHECK(e2e::multiset_difference(all, messages) == "");
    CHECK(wrong_source == 0);
    // The text codec leaves the syslog/json columns NULL.
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db.handle(),
                               "SELECT count(*) FROM events WHERE ts IS NOT NULL OR severity IS "
                               "NOT NULL OR facility IS NOT NULL OR app IS NOT NULL OR procid IS "
                               "NOT NULL OR msgid IS NOT NULL OR fields IS NOT NULL",
                               -1, &stmt, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    CHECK(sqlite3_column_int64(stmt, 0) == 0);
    sqlite3_finalize(stmt);
}
