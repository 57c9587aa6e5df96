// e2e: TCP source -> queue -> file and SQLite sinks, checked line by line; the metrics
// surface of /metrics; bad input (over-long lines) and octet-counting framing.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.h"

namespace {

std::string pipeline_config(uint16_t port, const std::string& source_extra = "") {
    return fmt::format(R"(
[queue]
max_bytes = "64MiB"
max_events = 1000000
when_full = "block"

[sources.app]
type = "tcp"
address = "127.0.0.1:{}"
framing = "newline"
{}

[sinks.archive]
type = "file"
path = "logs/out.log"
format = "text"
batch = {{ max_events = 10000, max_bytes = "4MiB", timeout = "100ms" }}

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = 5000, timeout = "100ms" }}
)",
                       port, source_extra);
}

// Runs `work(i)` on `n` threads and joins them; returns the first error a thread threw.
std::string run_threads(int n, const std::function<void(int)>& work) {
    std::mutex mutex;
    std::string first_error;
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
            try {
                work(i);
            } catch (const std::exception& e) {
                std::lock_guard lock(mutex);
                if (first_error.empty()) {
                    first_error = "thread " + std::to_string(i) + ": " + e.what();
                }
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    return first_error;
}

// Sends `lines` on one connection in ~64 KiB writes, each line ending in `eol`, then closes.
void send_lines(uint16_t port, const std::vector<std::string>& lines, std::string_view eol = "\n") {
    e2e::tcp_client client(port);
    std::string chunk;
    for (const auto& line : lines) {
        chunk += line;
        chunk += eol;
        if (chunk.size() >= 64 * 1024) {
            if (!client.send_all(chunk)) {
                throw std::runtime_error("send failed: sluice closed the connection");
            }
            chunk.clear();
        }
    }
    if (!chunk.empty() && !client.send_all(chunk)) {
        throw std::runtime_error("send failed: sluice closed the connection");
    }
    client.shutdown_write();
}

}  // namespace

TEST_CASE("four TCP clients: every line lands exactly once in the file and the database", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(pipeline_config(port));

    constexpr int clients = 4;
    constexpr int per_client = 50'000;
    constexpr int total = clients * per_client;
    std::vector<std::vector<std::string>> sent(clients);
    std::vector<std::string> expected;
    expected.reserve(total);
    for (int c = 0; c < clients; ++c) {
        for (int i = 0; i < per_client; ++i) {
            sent[c].push_back(e2e::make_line("c" + std::to_string(c), i));
            expected.push_back(sent[c].back());
        }
    }

    const int64_t t0 = e2e::unix_now_ns();
    // Client 3 ends its lines with CRLF, as the real logs do: newline framing strips the '\r'.
    const std::string error =
        run_threads(clients, [&](int c) { send_lines(port, sent[c], c == 3 ? "\r\n" : "\n"); });
    REQUIRE(error.empty());

    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", total);
    d.wait_metric("sluice_sink_events_total{sink=\"archive\"}", total);
    const int64_t t1 = e2e::unix_now_ns();
    CHECK(d.metric("sluice_source_events_total{source=\"app\"}") == total);
    CHECK(d.metric("sluice_events_dropped_total{source=\"app\",reason=\"queue_full\"}") == 0);
    CHECK(d.metric("sluice_events_truncated_total{source=\"app\"}") == 0);

    const auto file_lines = e2e::read_lines(d.data_dir() + "/logs/out.log");
    {
        INFO("file sink logs/out.log vs the lines sent");
        CHECK(e2e::multiset_difference(expected, file_lines) == "");
    }

    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    const auto rows = db.rows();
    std::vector<std::string> messages;
    messages.reserve(rows.size());
    size_t wrong_source = 0;
    size_t wrong_host = 0;
    size_t wrong_time = 0;
    for (const auto& r : rows) {
        messages.push_back(r.message);
        wrong_source += r.source != "app";
        wrong_host += r.host != std::optional<std::string>("127.0.0.1");
        wrong_time += r.received_at < t0 || r.received_at > t1;
    }
    {
        INFO("sqlite table logs vs the lines sent");
        CHECK(e2e::multiset_difference(expected, messages) == "");
    }
    INFO("first row: source=" << (rows.empty() ? "" : rows[0].source)
                              << " host=" << (rows.empty() ? "" : rows[0].host.value_or("NULL"))
                              << " received_at=" << (rows.empty() ? 0 : rows[0].received_at)
                              << " window=[" << t0 << ", " << t1 << "]");
    CHECK(wrong_source == 0);
    CHECK(wrong_host == 0);
    CHECK(wrong_time == 0);
}

TEST_CASE("GET /metrics has every metric of the SPEC table for tcp, file and sqlite", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(pipeline_config(port));

    std::vector<std::string> lines;
    for (int i = 0; i < 10; ++i) {
        lines.push_back(e2e::make_line("m", i));
    }
    send_lines(port, lines);
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", 10);
    d.wait_metric("sluice_sink_events_total{sink=\"archive\"}", 10);

    const auto health = d.http_get("/health");
    REQUIRE(health.has_value());
    CHECK(health->substr(0, 2) == "ok");
    const auto status = d.http_get("/status");
    REQUIRE(status.has_value());
    CHECK(status->find('{') == 0);

    const auto text = d.http_get("/metrics");
    REQUIRE(text.has_value());
    const auto m = e2e::parse_prometheus(*text);
    auto has = [&](const std::string& key) { return m.count(e2e::normalise_metric_key(key)) > 0; };
    auto type_of = [&](const std::string& name) {
        const std::string tag = "# TYPE " + name + " ";
        const size_t at = text->find(tag);
        if (at == std::string::npos) {
            return std::string("(no TYPE line)");
        }
        const size_t end = text->find('\n', at);
        return text->substr(at + tag.size(), end - at - tag.size());
    };

    const std::vector<std::string> gauges = {"sluice_queue_events",
                                             "sluice_queue_bytes",
                                             "sluice_queue_max_events",
                                             "sluice_queue_max_bytes",
                                             "sluice_queue_oldest_event_age_seconds",
                                             "process_resident_memory_bytes"};
    for (const auto& name : gauges) {
        INFO(name);
        CHECK(has(name));
        CHECK(type_of(name) == "gauge");
    }
    for (const std::string sink : {"db", "archive"}) {
        for (const std::string name :
             {"sluice_sink_lag_events", "sluice_sink_lag_bytes", "sluice_sink_lag_seconds"}) {
            INFO(name << " sink=" << sink);
            CHECK(has(name + "{sink=\"" + sink + "\"}"));
            CHECK(type_of(name) == "gauge");
        }
        for (const std::string name : {"sluice_sink_events_total", "sluice_sink_batches_total",
                                       "sluice_sink_errors_total", "sluice_sink_retries_total"}) {
            INFO(name << " sink=" << sink);
            CHECK(has(name + "{sink=\"" + sink + "\"}"));
            CHECK(type_of(name) == "counter");
        }
        const std::string h = "sluice_sink_batch_duration_seconds";
        INFO(h << " sink=" << sink);
        CHECK(type_of(h) == "histogram");
        CHECK(has(h + "_sum{sink=\"" + sink + "\"}"));
        REQUIRE(has(h + "_count{sink=\"" + sink + "\"}"));
        REQUIRE(has(h + "_bucket{sink=\"" + sink + "\",le=\"+Inf\"}"));
        const double count = m.at(e2e::normalise_metric_key(h + "_count{sink=\"" + sink + "\"}"));
        CHECK(count >= 1);
        CHECK(m.at(e2e::normalise_metric_key(h + "_bucket{sink=\"" + sink + "\",le=\"+Inf\"}")) ==
              count);
        CHECK(m.at(e2e::normalise_metric_key("sluice_sink_batches_total{sink=\"" + sink + "\"}")) ==
              count);
    }
    for (const std::string name : {"sluice_source_events_total", "sluice_source_bytes_total",
                                   "sluice_source_backpressure_seconds_total",
                                   "sluice_events_truncated_total", "sluice_decode_errors_total"}) {
        INFO(name);
        CHECK(has(name + "{source=\"app\"}"));
        CHECK(type_of(name) == "counter");
    }
    CHECK(has("sluice_source_paused{source=\"app\"}"));
    CHECK(type_of("sluice_source_paused") == "gauge");
    CHECK(has("sluice_events_dropped_total{source=\"app\",reason=\"queue_full\"}"));
    CHECK(type_of("sluice_events_dropped_total") == "counter");

    // The figures agree with what was sent.
    CHECK(m.at("sluice_source_events_total{source=\"app\"}") == 10);
    size_t bytes = 0;
    for (const auto& l : lines) {
        bytes += l.size() + 1;
    }
    CHECK(m.at("sluice_source_bytes_total{source=\"app\"}") == static_cast<double>(bytes));
    CHECK(m.at("sluice_queue_max_bytes") == 64.0 * 1024 * 1024);
    CHECK(m.at("sluice_queue_max_events") == 1'000'000);
    CHECK(m.at("sluice_source_paused{source=\"app\"}") == 0);
    CHECK(m.at("process_resident_memory_bytes") > 0);
}

TEST_CASE("an over-long line is truncated and counted while another client's lines all land",
          "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(pipeline_config(port, "max_line_bytes = 1024"));

    // Some real lines (HDFS block lists) exceed 1024 bytes: cap the ones meant to fit.
    auto fitting_line = [](std::string_view prefix, int i) {
        std::string line = e2e::make_line(prefix, i);
        line.resize(std::min<size_t>(line.size(), 1000));
        return line;
    };
    // Client "long": every 10th line is 5000 bytes, and it ends with one 3 MiB line.
    std::vector<std::string> long_lines;
    for (int i = 0; i < 200; ++i) {
        long_lines.push_back(i % 10 == 0 ? e2e::make_line("long", i, 5000)
                                         : fitting_line("long", i));
    }
    long_lines.push_back(e2e::make_line("long", 200, 3 * 1024 * 1024));
    std::vector<std::string> good_lines;
    for (int i = 0; i < 20'000; ++i) {
        good_lines.push_back(fitting_line("good", i));
    }
    const std::string error =
        run_threads(2, [&](int c) { send_lines(port, c == 0 ? long_lines : good_lines); });
    REQUIRE(error.empty());

    const size_t total = long_lines.size() + good_lines.size();
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", static_cast<double>(total));
    d.wait_metric("sluice_sink_events_total{sink=\"archive\"}", static_cast<double>(total));
    CHECK(d.metric("sluice_source_events_total{source=\"app\"}") == total);
    CHECK(d.metric("sluice_events_truncated_total{source=\"app\"}") == 21);

    std::vector<std::string> expected = good_lines;
    for (const auto& l : long_lines) {
        expected.push_back(l.substr(0, 1024));
    }
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    {
        INFO("sqlite: good lines intact, long ones cut to max_line_bytes");
        CHECK(e2e::multiset_difference(expected, db.messages()) == "");
    }
    {
        INFO("file sink: good lines intact, long ones cut to max_line_bytes");
        CHECK(e2e::multiset_difference(expected, e2e::read_lines(d.data_dir() + "/logs/out.log")) ==
              "");
    }
}

TEST_CASE("newline framing strips a trailing CR and yields a partial last line at close", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(pipeline_config(port));
    {
        e2e::tcp_client client(port);
        REQUIRE(client.send_all("first line\nsecond line\r\nthird \r line\r\n"));
        REQUIRE(client.send_all("partial at close"));
    }
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", 4);
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    CHECK(db.messages() == std::vector<std::string>{"first line", "second line", "third \r line",
                                                    "partial at close"});
    CHECK(d.metric("sluice_source_events_total{source=\"app\"}") == 4);
}

TEST_CASE("octet-counting framing over TCP lands messages intact", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(fmt::format(R"(
[queue]
max_bytes = "64MiB"

[sources.app]
type = "tcp"
address = "127.0.0.1:{}"
framing = "octet_counting"

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = 5000, timeout = "100ms" }}
)",
                              port));

    // Frames carry real lines; some hold embedded newlines and digits, which only octet
    // counting keeps in one message.
    std::vector<std::string> expected;
    std::string stream;
    for (int i = 0; i < 3000; ++i) {
        std::string msg = e2e::make_line("oc", i);
        if (i % 7 == 0) {
            msg += "\nsecond physical line " + std::to_string(i) + "\n";
        }
        if (i % 11 == 0) {
            msg = "12 starts with digits " + msg;
        }
        stream += std::to_string(msg.size()) + " " + msg;
        expected.push_back(std::move(msg));
    }
    // A frame that does not start with a digit is read as newline-terminated (logger --tcp).
    const std::string plain = "<13>Nov 26 07:13:00 host app: plain newline-terminated line";
    std::string tail = plain + "\n";
    const std::string last = "10 0123456789";
    expected.push_back(plain);
    expected.push_back("0123456789");
    // The last one is a frame cut short by the close: its partial content is the last event.
    const std::string cut = "50 only a part of fifty bytes";
    expected.push_back("only a part of fifty bytes");
    {
        e2e::tcp_client client(port);
        // The first frames in awkward pieces: split inside the length and inside the message.
        const std::string head = stream.substr(0, 4096);
        for (size_t i = 0; i < head.size(); i += 37) {
            REQUIRE(client.send_all(head.substr(i, 37)));
            if (i % 370 == 0) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        }
        REQUIRE(client.send_all(std::string_view(stream).substr(4096)));
        REQUIRE(client.send_all(tail));
        REQUIRE(client.send_all(last));
        REQUIRE(client.send_all(cut));
    }
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", static_cast<double>(expected.size()));
    CHECK(d.metric("sluice_source_events_total{source=\"app\"}") == expected.size());
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    const auto messages = db.messages();
    CHECK(e2e::multiset_difference(expected, messages) == "");
    // One connection: the events keep its order.
    CHECK(messages == expected);
}

TEST_CASE("octet counting: an over-long frame is truncated and the next frame is intact", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(fmt::format(R"(
[sources.app]
type = "tcp"
address = "127.0.0.1:{}"
framing = "octet_counting"
max_line_bytes = 1024

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = 5000, timeout = "100ms" }}
)",
                              port));
    const std::string big = e2e::make_line("big", 1, 5000);
    const std::string huge = e2e::make_line("huge", 2, 3 * 1024 * 1024);
    std::string stream;
    for (const std::string& msg : {big, std::string("hello"), huge, std::string("bye")}) {
        stream += std::to_string(msg.size()) + " " + msg;
    }
    {
        e2e::tcp_client client(port);
        REQUIRE(client.send_all(stream));
    }
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", 4);
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    CHECK(e2e::multiset_difference({big.substr(0, 1024), "hello", huge.substr(0, 1024), "bye"},
                                   db.messages()) == "");
    CHECK(d.metric("sluice_events_truncated_total{source=\"app\"}") == 2);
    CHECK(d.metric("sluice_source_events_total{source=\"app\"}") == 4);
}

TEST_CASE("a client sending malformed octet-counting frames does not disturb the others", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(fmt::format(R"(
[sources.app]
type = "tcp"
address = "127.0.0.1:{}"
framing = "octet_counting"

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = 5000, timeout = "100ms" }}
)",
                              port));
    e2e::tcp_client bad(port);
    // Digits, then no space: not an RFC 6587 frame. Then a length far beyond anything sent.
    REQUIRE(bad.send_all("12x34 not a frame\n99999999999999999999999 "));
    std::vector<std::string> expected;
    std::string stream;
    for (int i = 0; i < 5000; ++i) {
        expected.push_back(e2e::make_line("ok", i));
        stream += std::to_string(expected.back().size()) + " " + expected.back();
    }
    {
        e2e::tcp_client good(port);
        REQUIRE(good.send_all(stream));
    }
    d.wait_metric("sluice_source_events_total{source=\"app\"}", 5000, e2e::default_deadline, true);
    bad.close();
    // Whatever sluice made of the bad client's bytes, the good client's frames all land.
    e2e::wait_for(
        "the good client's 5000 frames in the database",
        [&] {
            size_t found = 0;
            e2e::sqlite_db db(d.data_dir() + "/logs.db");
            db.for_each_message([&](std::string_view m) { found += m.rfind("ok-", 0) == 0; });
            return found >= expected.size();
        },
        [&] { return d.metrics_summary(); });
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    std::vector<std::string> good_messages;
    for (auto& m : db.messages()) {
        if (m.rfind("ok-", 0) == 0) {
            good_messages.push_back(std::move(m));
        }
    }
    CHECK(e2e::multiset_difference(expected, good_messages) == "");
    CHECK(d.running());
    CHECK(d.http_get("/health").has_value());
}
