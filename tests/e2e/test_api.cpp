// e2e: the HTTP API is read-only and says whether sluice is healthy and ready.
#include <fmt/format.h>
#include <httplib.h>

#include <catch2/catch.hpp>
#include <string>

#include "tests/e2e/harness.h"

TEST_CASE("the HTTP API only reads: every other method is refused and changes nothing",
          "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(fmt::format(R"(
[sources.app]
type = "tcp"
address = "127.0.0.1:{}"

[sinks.archive]
type = "file"
path = "logs/out.log"
batch = {{ timeout = "50ms" }}
)",
                              port));
    {
        e2e::tcp_client client(port);
        REQUIRE(client.send_all(e2e::make_line("api", 1) + "\n"));
    }
    d.wait_metric("sluice_sink_events_total{sink=\"archive\"}", 1);
    CHECK(d.http_get("/health") == std::optional<std::string>("ok\n"));
    CHECK(d.http_get("/ready") == std::optional<std::string>("ready\n"));

    httplib::Client api("127.0.0.1", d.api_port());
    api.set_connection_timeout(2, 0);
    for (const char* path : {"/", "/health", "/ready", "/status", "/metrics", "/config",
                             "/shutdown", "/sinks/archive"}) {
        INFO(path);
        const auto refused = [](const httplib::Result& res) {
            return res && res->status >= 400 && res->status < 500;
        };
        CHECK(refused(api.Post(path, "x", "text/plain")));
        CHECK(refused(api.Put(path, "x", "text/plain")));
        CHECK(refused(api.Delete(path)));
        CHECK(refused(api.Patch(path, "x", "text/plain")));
    }
    // Still running and unchanged: the same config, the same figures.
    CHECK(d.running());
    CHECK(d.metric("sluice_sink_events_total{sink=\"archive\"}") == 1);
    {
        e2e::tcp_client client(port);
        REQUIRE(client.send_all(e2e::make_line("api", 2) + "\n"));
    }
    d.wait_metric("sluice_sink_events_total{sink=\"archive\"}", 2);
    d.signal(SIGTERM);
    CHECK(d.wait_exit() == 0);
}

TEST_CASE("an idle keep-alive API connection does not hold up the exit", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(fmt::format(R"(
[sources.app]
type = "tcp"
address = "127.0.0.1:{}"

[sinks.archive]
type = "file"
path = "logs/out.log"
)",
                              port));
    // A scraper that keeps its connection open between scrapes.
    httplib::Client scraper("127.0.0.1", d.api_port());
    scraper.set_keep_alive(true);
    auto res = scraper.Get("/metrics");
    REQUIRE(res);
    REQUIRE(res->status == 200);
    const auto began = std::chrono::steady_clock::now();
    d.signal(SIGTERM);
    CHECK(d.wait_exit() == 0);
    const auto took = std::chrono::steady_clock::now() - began;
    CHECK(took < std::chrono::milliseconds(2500));
}
