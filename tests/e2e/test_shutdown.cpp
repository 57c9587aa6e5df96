// e2e: SIGTERM while a client is mid-stream delivers everything read (a partial last line
// included) and exits 0; a shutdown that cannot deliver in time exits 1 and says how much
// was lost; a second signal exits at once.
#include <fmt/format.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.h"

namespace {

std::string shutdown_config(uint16_t port, bool with_file_sink) {
    std::string config = fmt::format(R"(
[queue]
max_bytes = "64MiB"
max_events = 1000000
when_full = "block"

[sources.app]
type = "tcp"
address = "127.0.0.1:{}"
framing = "newline"

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = 5000, timeout = "1s" }}
)",
                                     port);
    if (with_file_sink) {
        config += R"(
[sinks.archive]
type = "file"
path = "logs/out.log"
format = "text"
batch = { max_events = 10000, max_bytes = "4MiB", timeout = "1s" }
)";
    }
    return config;
}

// K full lines, then a line without its newline; the connection stays open.
struct mid_stream_client {
    mid_stream_client(uint16_t port, const std::string& prefix, int k) : client(port) {
        std::string stream;
        for (int i = 0; i < k; ++i) {
            lines.push_back(e2e::make_line(prefix, i));
            stream += lines.back();
            stream += '\n';
        }
        stream += partial;
        REQUIRE(client.send_all(stream));
        bytes = stream.size();
        lines.push_back(partial);
    }

    const std::string partial = "partial-no-newline";
    e2e::tcp_client client;
    std::vector<std::string> lines;  // what must be delivered, the partial line last
    size_t bytes = 0;
};

// Waits until sluice has read every byte the client sent (so all of it counts as "read").
void wait_all_read(const e2e::daemon& d, size_t bytes) {
    d.wait_metric("sluice_source_bytes_total{source=\"app\"}", static_cast<double>(bytes));
}

}  // namespace

TEST_CASE("SIGTERM mid-stream: everything read lands in both sinks, partial line last, exit 0",
          "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(shutdown_config(port, true));
    mid_stream_client c(port, "st", 100'000);
    wait_all_read(d, c.bytes);

    d.signal(SIGTERM);
    CHECK(d.wait_exit() == 0);

    const auto file_lines = e2e::read_lines(d.data_dir() + "/logs/out.log");
    {
        INFO("file sink vs the lines sent");
        CHECK(e2e::multiset_difference(c.lines, file_lines) == "");
        REQUIRE_FALSE(file_lines.empty());
        CHECK(file_lines.back() == c.partial);
    }
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    const auto messages = db.messages();
    {
        INFO("sqlite vs the lines sent");
        CHECK(e2e::multiset_difference(c.lines, messages) == "");
        REQUIRE_FALSE(messages.empty());
        CHECK(messages.back() == c.partial);
    }
}

TEST_CASE("SIGTERM with a locked database waits for it and then delivers everything, exit 0",
          "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(shutdown_config(port, true));
    auto lock = std::make_unique<e2e::sqlite_db>(d.data_dir() + "/logs.db");
    lock->exec("BEGIN EXCLUSIVE");
    mid_stream_client c(port, "sl", 20'000);
    wait_all_read(d, c.bytes);

    d.signal(SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    // It cannot have delivered to the database yet, so it must still be shutting down.
    CHECK(d.running());
    lock->exec("ROLLBACK");
    lock.reset();
    CHECK(d.wait_exit() == 0);

    {
        INFO("file sink vs the lines sent");
        CHECK(e2e::multiset_difference(c.lines, e2e::read_lines(d.data_dir() + "/logs/out.log")) ==
              "");
    }
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    const auto messages = db.messages();
    INFO("sqlite vs the lines sent");
    CHECK(e2e::multiset_difference(c.lines, messages) == "");
    REQUIRE_FALSE(messages.empty());
    CHECK(messages.back() == c.partial);
}

TEST_CASE("a shutdown that cannot deliver within shutdown_timeout logs the loss and exits 1",
          "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(shutdown_config(port, false), "2s");
    e2e::sqlite_db lock(d.data_dir() + "/logs.db");
    lock.exec("BEGIN EXCLUSIVE");
    mid_stream_client c(port, "to", 4'999);  // 5000 events with the partial line
    wait_all_read(d, c.bytes);

    d.signal(SIGTERM);
    CHECK(d.wait_exit(std::chrono::seconds(30)) == 1);
    // The log line that reports the loss carries its count.
    const std::string log = d.log();
    INFO(log);
    bool loss_logged = false;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);) {
        loss_logged =
            loss_logged ||
            (line.find("5000") != std::string::npos &&
             (line.find("lost") != std::string::npos || line.find("deliver") != std::string::npos));
    }
    CHECK(loss_logged);
    lock.exec("ROLLBACK");
}

TEST_CASE("a second signal during a stuck shutdown exits at once", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(shutdown_config(port, false), "120s");
    e2e::sqlite_db lock(d.data_dir() + "/logs.db");
    lock.exec("BEGIN EXCLUSIVE");
    mid_stream_client c(port, "ss", 1000);
    wait_all_read(d, c.bytes);

    d.signal(SIGTERM);
    // Give the first signal time to be handled, so the two are not merged by the kernel.
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    REQUIRE(d.running());
    d.signal(SIGTERM);
    // The database stays locked and shutdown_timeout is 120 s: only the second signal can
    // end it within this watchdog. Events were lost, so the exit code is not 0.
    CHECK(d.wait_exit(std::chrono::seconds(20)) != 0);
    lock.exec("ROLLBACK");
}

TEST_CASE("SIGINT shuts down like SIGTERM: everything read is delivered, exit 0", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(shutdown_config(port, true));
    mid_stream_client c(port, "si", 10'000);
    wait_all_read(d, c.bytes);
    d.signal(SIGINT);
    CHECK(d.wait_exit() == 0);
    CHECK(e2e::multiset_difference(c.lines, e2e::read_lines(d.data_dir() + "/logs/out.log")) == "");
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    CHECK(e2e::multiset_difference(c.lines, db.messages()) == "");
}
