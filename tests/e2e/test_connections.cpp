// e2e: the TCP source's connection limits, against the real binary: idle_timeout closes a
// client that completes no line (a slow drip included) and counts it while others go on, and
// never one that only waited for a full queue; max_connections refuses and counts the
// connections past it, and sluice_source_connections follows.
#include <fmt/format.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/child_process.h"
#include "tests/e2e/harness.h"

namespace {

using namespace std::chrono_literals;

std::string connections_config(uint16_t port, const std::string& source_extra) {
    return fmt::format(R"(
[sources.app]
type = "tcp"
address = "127.0.0.1:{}"
{}

[sinks.archive]
type = "file"
path = "logs/out.log"
batch = {{ timeout = "100ms" }}
)",
                       port, source_extra);
}

const std::string open_gauge = "sluice_source_connections{source=\"app\"}";
const std::string idle_closed = "sluice_source_idle_timeouts_total{source=\"app\"}";
const std::string refused_limit =
    "sluice_source_connections_rejected_total{source=\"app\",reason=\"max_connections\"}";
const std::string archived = "sluice_sink_events_total{sink=\"archive\"}";

}  // namespace

TEST_CASE("idle_timeout closes a slow-drip client and counts it, while a busy client goes on",
          "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(connections_config(port, "idle_timeout = \"1s\""));

    e2e::tcp_client drip(port);
    e2e::tcp_client busy(port);
    d.wait_metric(open_gauge, 2);
    const auto began = e2e::clock_type::now();
    // One byte every 200 ms, never a newline; a whole line every 200 ms on the other.
    std::string dripped;
    std::vector<std::string> busy_lines;
    bool drip_open = true;
    auto drip_closed_after = 0ms;
    while (e2e::clock_type::now() - began < 4s) {
        if (drip_open) {
            dripped += 'x';
            drip_open = drip.send_all("x") && !e2e::wait_closed_by_peer(drip.fd(), 1ms);
            if (!drip_open) {
                drip_closed_after = std::chrono::duration_cast<std::chrono::milliseconds>(
                    e2e::clock_type::now() - began);
            }
        }
        busy_lines.push_back(e2e::make_line("busy", busy_lines.size()));
        REQUIRE(busy.send_all(busy_lines.back() + "\n"));
        std::this_thread::sleep_for(200ms);
    }
    REQUIRE_FALSE(drip_open);
    CHECK(drip_closed_after >= 800ms);  // its idle clock started at accept, a little earlier
    CHECK(drip_closed_after < 3s);
    CHECK(d.metric(idle_closed) == 1);
    CHECK(d.metric(open_gauge) == 1);  // the busy one outlived many idle timeouts

    busy.close();
    d.wait_metric(open_gauge, 0);
    // The drip's partial line was pushed when it was closed, like a client's that hangs up.
    d.wait_metric(archived, static_cast<double>(busy_lines.size() + 1));
    std::vector<std::string> expected = busy_lines;
    const auto lines = e2e::read_lines(d.data_dir() + "/logs/out.log");
    std::string partial;
    for (const auto& l : lines) {
        if (!l.empty() && l[0] == 'x') {
            partial = l;
        }
    }
    CHECK(partial.find_first_not_of('x') == std::string::npos);
    CHECK(partial.size() + 2 >= dripped.size());  // bytes sent as it closed may be lost
    expected.push_back(partial);
    CHECK(e2e::multiset_difference(expected, lines) == "");
    CHECK(d.log().find("no complete line in 1.0 s (idle_timeout") != std::string::npos);
}

TEST_CASE("idle_timeout never closes a client that only waited for a full queue", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(fmt::format(R"(
[queue]
max_bytes = "1MiB"
when_full = "block"

[sources.app]
type = "tcp"
address = "127.0.0.1:{}"
idle_timeout = "1s"

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ timeout = "100ms" }}
)",
                              port));
    // Hold the database's write lock: the sink cannot write, the queue fills, the source
    // pauses, and the client's sends block for far longer than idle_timeout.
    e2e::sqlite_db lock(d.data_dir() + "/logs.db");
    lock.exec("BEGIN EXCLUSIVE");
    constexpr size_t n = 200'000;  // far more than the queue and the socket buffers hold
    std::vector<std::string> lines;
    std::string stream;
    for (size_t i = 0; i < n; ++i) {
        lines.push_back(e2e::make_line("wait", i));
        stream += lines.back() + "\n";
    }
    e2e::tcp_client client(port);
    std::atomic<bool> sent{false};
    std::atomic<bool> send_ok{false};
    std::thread sender([&] {
        send_ok = client.send_all(stream);
        sent = true;
    });
    d.wait_metric("sluice_source_paused{source=\"app\"}", 1, 30s);
    std::this_thread::sleep_for(3s);
    CHECK_FALSE(sent.load());  // still blocked: the source really is paused
    CHECK(d.metric(idle_closed) == 0);
    lock.exec("ROLLBACK");

    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", n, 120s);
    sender.join();
    CHECK(send_ok.load());
    CHECK(d.metric(idle_closed) == 0);
    CHECK(d.metric("sluice_source_backpressure_seconds_total{source=\"app\"}") >= 2.5);
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    CHECK(e2e::multiset_difference(lines, db.messages()) == "");
    // Now that it has nothing more to say, it is idle for real.
    CHECK(e2e::wait_closed_by_peer(client.fd(), 10s));
    d.wait_metric(idle_closed, 1);
    d.wait_metric(open_gauge, 0);
}

TEST_CASE("max_connections: the connections past it are refused and counted", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(connections_config(port, "max_connections = 3"));

    std::vector<std::unique_ptr<e2e::tcp_client>> clients;
    std::vector<std::string> expected;
    auto say = [&](e2e::tcp_client& c, const std::string& line) {
        expected.push_back(line);
        REQUIRE(c.send_all(line + "\n"));
    };
    for (int i = 0; i < 3; ++i) {
        clients.push_back(std::make_unique<e2e::tcp_client>(port));
        say(*clients.back(), e2e::make_line("kept" + std::to_string(i), 0));
    }
    d.wait_metric(archived, 3);
    d.wait_metric(open_gauge, 3);

    // Two more: the kernel accepts them, sluice closes them at once.
    for (int i = 0; i < 2; ++i) {
        e2e::tcp_client extra(port);
        CHECK(e2e::wait_closed_by_peer(extra.fd(), 10s));
    }
    d.wait_metric(refused_limit, 2);
    CHECK(d.metric(open_gauge) == 3);

    // The three kept ones still work; once one leaves, its slot takes a new connection.
    for (int i = 0; i < 3; ++i) {
        say(*clients[i], e2e::make_line("kept" + std::to_string(i), 1));
    }
    d.wait_metric(archived, 6);
    clients[0]->close();
    d.wait_metric(open_gauge, 2);
    e2e::tcp_client late(port);
    say(late, e2e::make_line("late", 0));
    d.wait_metric(archived, 7);
    CHECK(d.metric(open_gauge) == 3);
    CHECK(d.metric(refused_limit) == 2);
    CHECK(e2e::multiset_difference(expected, e2e::read_lines(d.data_dir() + "/logs/out.log")) ==
          "");
    CHECK(d.log().find("refused a connection: 3 of 3 connections open") != std::string::npos);
}
