// e2e: io_threads on the real binary. Sixteen connections spread over four io threads; a
// locked SQLite database fills the queue, and every connection on every thread must stall
// (its sender's kernel buffer fills); once the lock goes, every line lands exactly once.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/e2e/fault_helpers.h"
#include "tests/e2e/harness.h"

namespace {

// The names of the daemon's threads, from /proc/PID/task/*/comm.
std::multiset<std::string> thread_names(pid_t pid) {
    std::multiset<std::string> names;
    for (const auto& task : std::filesystem::directory_iterator(
             "/proc/" + std::to_string(pid) + "/task")) {
        std::string name = e2e::read_file(task.path().string() + "/comm");
        while (!name.empty() && name.back() == '\n') {
            name.pop_back();
        }
        names.insert(name);
    }
    return names;
}

}  // namespace

TEST_CASE("io_threads = 4: a locked database stalls all 16 connections on every io thread, "
          "then everything lands once",
          "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(fmt::format(R"(
io_threads = 4

[queue]
max_bytes = "1MiB"

[sources.app]
type = "tcp"
address = "127.0.0.1:{}"

[sinks.db]
type = "sqlite"
path = "logs.db"
)",
                              port));
    const auto names = thread_names(d.pid());
    INFO("threads: " << fmt::format("{}", fmt::join(names, ", ")));
    CHECK(names.count("sluice-io-1") == 1);
    CHECK(names.count("sluice-io-3") == 1);
    CHECK(names.count("sluice-io-4") == 0);

    e2e::sqlite_db lock(d.data_dir() + "/logs.db");
    lock.exec("BEGIN EXCLUSIVE");

    constexpr size_t connections = 16;
    constexpr uint64_t lines_each = 30'000;
    std::vector<std::unique_ptr<e2e::faults::tcp_sender>> senders;
    for (size_t i = 0; i < connections; ++i) {
        senders.push_back(std::make_unique<e2e::faults::tcp_sender>(
            port, e2e::faults::make_lines("c" + std::to_string(i), 0, lines_each)));
    }
    d.wait_metric("sluice_source_connections{source=\"app\"}", connections);
    d.wait_metric("sluice_source_paused{source=\"app\"}", 1, std::chrono::seconds(30));
    // Paused means no connection reads: each sender, whichever thread serves it, blocks.
    for (const auto& s : senders) {
        e2e::faults::wait_sender_blocked(*s, d, std::chrono::milliseconds(500));
    }
    uint64_t stalled = 0;
    for (const auto& s : senders) {
        CHECK_FALSE(s->done());
        stalled += s->accepted();
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
    uint64_t still = 0;
    for (const auto& s : senders) {
        still += s->accepted();
    }
    CHECK(still == stalled);
    CHECK(d.metric("sluice_queue_bytes") <= 1024.0 * 1024.0);

    lock.exec("ROLLBACK");
    const uint64_t total = connections * lines_each;
    for (const auto& s : senders) {
        e2e::wait_for(
            "every sender to finish", [&] { return s->done(); },
            [&] { return s->describe() + "\n" + d.metrics_summary(); },
            std::chrono::seconds(120), std::chrono::milliseconds(50));
        REQUIRE(s->error() == "");
    }
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", static_cast<double>(total),
                  std::chrono::seconds(120));
    CHECK(d.metric("sluice_source_paused{source=\"app\"}") == 0);
    CHECK(d.metric("sluice_source_backpressure_seconds_total{source=\"app\"}") > 0);

    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    REQUIRE(db.count_rows() == static_cast<int64_t>(total));
    std::set<std::string> distinct;
    db.for_each_message([&](std::string_view m) { distinct.emplace(m); });
    CHECK(distinct.size() == total);
    for (size_t i = 0; i < connections; ++i) {
        const auto first = e2e::faults::make_lines("c" + std::to_string(i), 0, 1)[0];
        const auto last = e2e::faults::make_lines("c" + std::to_string(i), lines_each - 1, 1)[0];
        CHECK(distinct.count(first) == 1);
        CHECK(distinct.count(last) == 1);
    }
    d.signal(SIGTERM);
    CHECK(d.wait_exit() == 0);
}
