// e2e: a stuck SQLite sink (another connection holds BEGIN EXCLUSIVE). With `block` the TCP
// sender stalls, memory stays bounded and everything lands after the lock goes; with
// `drop_newest` every event is either stored or counted as dropped.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.h"

namespace {

constexpr uint64_t mib = 1024 * 1024;

std::string sqlite_only_config(uint16_t port, const std::string& max_bytes,
                               const std::string& when_full, int batch_events = 5000) {
    return fmt::format(R"(
[queue]
max_bytes = "{}"
max_events = 1000000
when_full = "{}"

[sources.app]
type = "tcp"
address = "127.0.0.1:{}"
framing = "newline"

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = {}, timeout = "100ms" }}
)",
                       max_bytes, when_full, port, batch_events);
}

// Streams `lines` lines of exactly `line_bytes` bytes (make_line("bp", i) + '\n') on a
// non-blocking socket, counting accepted bytes and EAGAINs, on its own thread.
class stalling_sender {
public:
    stalling_sender(uint16_t port, uint64_t lines, size_t line_bytes)
        : client_(port), lines_(lines), line_bytes_(line_bytes) {
        client_.set_nonblocking(true);
        thread_ = std::thread([this] { run(); });
    }
    ~stalling_sender() {
        stop_ = true;
        thread_.join();
    }
    stalling_sender(const stalling_sender&) = delete;
    stalling_sender& operator=(const stalling_sender&) = delete;

    uint64_t accepted() const { return accepted_.load(); }
    uint64_t eagains() const { return eagains_.load(); }
    bool done() const { return done_.load(); }
    // Valid once done().
    const std::string& error() const { return error_; }
    uint64_t total_bytes() const { return lines_ * line_bytes_; }

private:
    void run() {
        constexpr uint64_t lines_per_chunk = 256;
        std::string chunk;
        auto last_progress = e2e::clock_type::now();
        for (uint64_t first = 0; first < lines_ && !stop_; first += lines_per_chunk) {
            chunk.clear();
            for (uint64_t i = first; i < std::min(lines_, first + lines_per_chunk); ++i) {
                chunk += e2e::make_line("bp", i, line_bytes_ - 1);
                chunk += '\n';
            }
            std::string_view rest = chunk;
            while (!rest.empty() && !stop_) {
                const ssize_t n = client_.try_send(rest);
                if (n < 0) {
                    error_ = "send failed after " + std::to_string(accepted()) + " bytes";
                    done_ = true;
                    return;
                }
                if (n == 0) {
                    ++eagains_;
                    client_.wait_writable(std::chrono::milliseconds(100));
                    if (e2e::clock_type::now() - last_progress > std::chrono::seconds(120)) {
                        error_ =
                            "no progress for 120 s after " + std::to_string(accepted()) + " bytes";
                        done_ = true;
                        return;
                    }
                    continue;
                }
                last_progress = e2e::clock_type::now();
                accepted_ += static_cast<uint64_t>(n);
                rest.remove_prefix(static_cast<size_t>(n));
            }
        }
        client_.shutdown_write();
        done_ = true;
    }

    e2e::tcp_client client_;
    const uint64_t lines_;
    const size_t line_bytes_;
    std::atomic<uint64_t> accepted_{0};
    std::atomic<uint64_t> eagains_{0};
    std::atomic<bool> done_{false};
    std::atomic<bool> stop_{false};
    std::string error_;
    std::thread thread_;
};

}  // namespace

TEST_CASE("block: a locked database stalls the TCP sender, memory stays bounded, all lands",
          "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(sqlite_only_config(port, "32MiB", "block"));
    d.start_rss_sampling();
    const uint64_t rss_limit = 32 * mib + 48 * mib;

    // sluice created the database at startup; hold its write lock from now on.
    e2e::sqlite_db lock(d.data_dir() + "/logs.db");
    lock.exec("BEGIN EXCLUSIVE");
    const auto locked_at = e2e::clock_type::now();

    constexpr uint64_t line_bytes = 200;
    constexpr uint64_t lines = 1'500'000;  // 300 MB
    stalling_sender sender(port, lines, line_bytes);

    d.wait_metric("sluice_source_paused{source=\"app\"}", 1, std::chrono::seconds(30));
    e2e::wait_for(
        "the client's send to hit EAGAIN", [&] { return sender.eagains() > 0 || sender.done(); },
        [&] { return "accepted " + std::to_string(sender.accepted()) + " bytes"; });
    REQUIRE_FALSE(sender.done());

    // The stall: while the lock is held the bytes the kernel accepts stop growing.
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const uint64_t accepted_1 = sender.accepted();
    const auto stalled = d.metrics();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const uint64_t accepted_2 = sender.accepted();
    INFO("accepted " << accepted_1 << " then " << accepted_2 << " bytes of "
                     << sender.total_bytes());
    CHECK(accepted_2 - accepted_1 < mib);
    CHECK(accepted_2 < sender.total_bytes() / 2);
    CHECK(stalled.at("sluice_source_paused{source=\"app\"}") == 1);
    CHECK(stalled.at("sluice_queue_bytes") <= 32.0 * mib);
    CHECK(stalled.at("sluice_sink_lag_events{sink=\"db\"}") > 0);
    CHECK(d.metric("sluice_source_backpressure_seconds_total{source=\"app\"}") > 0);

    std::this_thread::sleep_until(locked_at + std::chrono::seconds(10));
    CHECK(d.metric("sluice_sink_retries_total{sink=\"db\"}") > 0);
    CHECK(sender.accepted() < sender.total_bytes() / 2);
    lock.exec("ROLLBACK");

    e2e::wait_for(
        "the client to finish sending", [&] { return sender.done(); },
        [&] {
            return "accepted " + std::to_string(sender.accepted()) + " bytes\n" +
                   d.metrics_summary();
        },
        std::chrono::seconds(150), std::chrono::milliseconds(100));
    REQUIRE(sender.error() == "");
    REQUIRE(sender.accepted() == sender.total_bytes());
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", lines, std::chrono::seconds(120));

    const uint64_t hwm = d.vm_hwm_bytes();
    INFO("peak sampled VmRSS " << d.peak_rss_bytes() << " bytes, VmHWM " << hwm << " bytes, limit "
                               << rss_limit);
    CHECK(d.peak_rss_bytes() > 0);
    CHECK(d.peak_rss_bytes() < rss_limit);
    CHECK(hwm < rss_limit);

    const auto m = d.metrics();
    CHECK(m.at("sluice_source_events_total{source=\"app\"}") == lines);
    CHECK(m.at("sluice_source_backpressure_seconds_total{source=\"app\"}") > 0);
    CHECK(m.at("sluice_sink_retries_total{sink=\"db\"}") > 0);
    CHECK(m.at(e2e::normalise_metric_key(
              "sluice_events_dropped_total{source=\"app\",reason=\"queue_full\"}")) == 0);

    // Every line exactly once and intact.
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    REQUIRE(db.count_rows() == static_cast<int64_t>(lines));
    std::vector<bool> seen(lines, false);
    uint64_t bad = 0;
    uint64_t duplicates = 0;
    std::string first_bad;
    db.for_each_message([&](std::string_view msg) {
        // "bp-NNNNNNN ..."
        const uint64_t seq = msg.size() > 10
                                 ? std::strtoull(std::string(msg.substr(3, 7)).c_str(), nullptr, 10)
                                 : lines;
        if (seq >= lines || msg != e2e::make_line("bp", seq, line_bytes - 1)) {
            if (bad++ == 0) {
                first_bad = std::string(msg.substr(0, 120));
            }
            return;
        }
        duplicates += seen[seq];
        seen[seq] = true;
    });
    INFO("first bad message: " << first_bad);
    CHECK(bad == 0);
    CHECK(duplicates == 0);
    CHECK(std::count(seen.begin(), seen.end(), false) == 0);
}

TEST_CASE("drop_newest: with a stuck sink every line is either stored or counted as dropped",
          "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(sqlite_only_config(port, "1MiB", "drop_newest"));
    e2e::sqlite_db lock(d.data_dir() + "/logs.db");
    lock.exec("BEGIN EXCLUSIVE");

    constexpr int n = 50'000;
    std::vector<std::string> sent;
    std::string stream;
    for (int i = 0; i < n; ++i) {
        sent.push_back(e2e::make_line("dn", i, 199));
        stream += sent.back();
        stream += '\n';
    }
    {
        // drop_newest keeps reading, so a blocking send completes although nothing drains.
        e2e::tcp_client client(port);
        REQUIRE(client.send_all(stream));
        client.shutdown_write();
    }
    d.wait_metric("sluice_source_events_total{source=\"app\"}", n);
    const std::string dropped_key =
        "sluice_events_dropped_total{source=\"app\",reason=\"queue_full\"}";
    const double dropped = d.metric(dropped_key);
    CHECK(dropped > 0);
    CHECK(d.metric("sluice_sink_events_total{sink=\"db\"}") == 0);
    CHECK(d.metric("sluice_queue_bytes") <= 1.0 * mib);
    lock.exec("ROLLBACK");

    double stored = 0;
    e2e::wait_for(
        "stored + dropped == sent",
        [&] {
            stored = d.metric("sluice_sink_events_total{sink=\"db\"}");
            return stored + dropped >= n;
        },
        [&] { return d.metrics_summary(); });
    // Settled: nothing more arrives, nothing more is dropped.
    d.wait_metric("sluice_queue_events", 0);
    const auto m = d.metrics();
    CHECK(m.at(e2e::normalise_metric_key(dropped_key)) == dropped);
    CHECK(m.at("sluice_sink_events_total{sink=\"db\"}") + dropped == n);
    CHECK(m.at("sluice_source_events_total{source=\"app\"}") == n);

    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    const auto messages = db.messages();
    CHECK(static_cast<double>(messages.size()) + dropped == n);
    // What was stored is a subset of what was sent, each line at most once.
    std::vector<std::string> sorted = messages;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    std::vector<std::string> sent_sorted = sent;
    std::sort(sent_sorted.begin(), sent_sorted.end());
    CHECK(std::includes(sent_sorted.begin(), sent_sorted.end(), sorted.begin(), sorted.end()));
}

TEST_CASE("drop_oldest: with a stuck sink the newest lines survive and every drop is counted",
          "[e2e]") {
    const uint16_t port = e2e::free_port();
    // Events a sink has taken into its batch cannot be evicted: small batches (100 events,
    // ~20 KiB) leave most of the 1 MiB queue evictable.
    e2e::daemon d(sqlite_only_config(port, "1MiB", "drop_oldest", 100));
    e2e::sqlite_db lock(d.data_dir() + "/logs.db");
    lock.exec("BEGIN EXCLUSIVE");

    constexpr int n = 50'000;
    std::vector<std::string> sent;
    std::string stream;
    for (int i = 0; i < n; ++i) {
        sent.push_back(e2e::make_line("do", i, 199));
        stream += sent.back();
        stream += '\n';
    }
    {
        e2e::tcp_client client(port);
        REQUIRE(client.send_all(stream));
        client.shutdown_write();
    }
    d.wait_metric("sluice_source_events_total{source=\"app\"}", n);
    auto dropped_total = [](const e2e::metric_map& m) {
        double sum = 0;
        for (const auto& [key, value] : m) {
            if (key.rfind("sluice_events_dropped_total{", 0) == 0 &&
                key.find("source=\"app\"") != std::string::npos) {
                sum += value;
            }
        }
        return sum;
    };
    const double dropped = dropped_total(d.metrics());
    CHECK(dropped > 0);
    CHECK(d.metric("sluice_queue_bytes") <= 1.0 * mib);
    lock.exec("ROLLBACK");

    e2e::wait_for(
        "stored + dropped == sent",
        [&] {
            const auto m = d.metrics();
            return m.at("sluice_sink_events_total{sink=\"db\"}") + dropped_total(m) >= n;
        },
        [&] { return d.metrics_summary(); });
    d.wait_metric("sluice_queue_events", 0);
    const auto m = d.metrics();
    CHECK(dropped_total(m) == dropped);
    CHECK(m.at("sluice_sink_events_total{sink=\"db\"}") + dropped == n);

    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    const auto messages = db.messages();
    CHECK(static_cast<double>(messages.size()) + dropped == n);
    // The newest line was kept: drop_oldest evicts from the front.
    CHECK(std::find(messages.begin(), messages.end(), sent.back()) != messages.end());
    std::vector<std::string> sorted = messages;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    std::vector<std::string> sent_sorted = sent;
    std::sort(sent_sorted.begin(), sent_sorted.end());
    CHECK(std::includes(sent_sorted.begin(), sent_sorted.end(), sorted.begin(), sorted.end()));
}

TEST_CASE("block: the queue also holds to max_events, and everything lands afterwards", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(fmt::format(R"(
[queue]
max_bytes = "64MiB"
max_events = 1000
when_full = "block"

[sources.app]
type = "tcp"
address = "127.0.0.1:{}"

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = 500, timeout = "100ms" }}
)",
                              port));
    auto lock = std::make_unique<e2e::sqlite_db>(d.data_dir() + "/logs.db");
    lock->exec("BEGIN EXCLUSIVE");
    constexpr uint64_t lines = 100'000;
    stalling_sender sender(port, lines, 100);
    d.wait_metric("sluice_source_paused{source=\"app\"}", 1, std::chrono::seconds(30));
    const auto stalled = d.metrics();
    CHECK(stalled.at("sluice_queue_events") <= 1000);
    CHECK(stalled.at("sluice_source_events_total{source=\"app\"}") < lines);
    lock->exec("ROLLBACK");
    lock.reset();
    e2e::wait_for(
        "the client to finish sending", [&] { return sender.done(); },
        [&] { return "accepted " + std::to_string(sender.accepted()) + " bytes"; });
    REQUIRE(sender.error() == "");
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", lines);
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    CHECK(db.count_rows() == static_cast<int64_t>(lines));
    CHECK(d.metric("sluice_source_events_total{source=\"app\"}") == lines);
}
