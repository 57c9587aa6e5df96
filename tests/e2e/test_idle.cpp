// e2e: the idle promise: no busy polling, under 0.1 s of CPU in 10 s with nothing to do.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.h"

TEST_CASE("an idle daemon uses under 0.1 s of CPU in 10 s", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(fmt::format(R"(
[sources.app]
type = "tcp"
address = "127.0.0.1:{}"

[sinks.archive]
type = "file"
path = "logs/out.log"
batch = {{ max_events = 10000, max_bytes = "4MiB", timeout = "100ms" }}

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = 5000, timeout = "100ms" }}
)",
                              port));
    // Some traffic first, so every thread has done real work and gone back to waiting; one
    // client stays connected (an idle connection must not cost CPU either).
    e2e::tcp_client idle_client(port);
    {
        e2e::tcp_client client(port);
        std::string stream;
        for (int i = 0; i < 1000; ++i) {
            stream += e2e::make_line("idle", i) + "\n";
        }
        REQUIRE(client.send_all(stream));
    }
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", 1000);
    d.wait_metric("sluice_sink_events_total{sink=\"archive\"}", 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));

    const double before = d.cpu_seconds();
    std::this_thread::sleep_for(std::chrono::seconds(10));
    const double used = d.cpu_seconds() - before;
    INFO("CPU used while idle for 10 s: " << used << " s");
    CHECK(used < 0.1);
}
