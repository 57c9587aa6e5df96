// e2e: ZeroMQ in and out with real peers. A PULL source fed by a PUSH socket (every message
// lands; a stuck sink makes the sender block, then everything lands once); a PUSH sink that
// spreads events over two receivers, and its JSON format; a SUB source that takes only the
// topics it subscribed to.
#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "tests/e2e/harness.h"
#include "tests/e2e/zmq_udp_helpers.h"

namespace {

using namespace std::chrono_literals;

std::string pull_to_sqlite_config(uint16_t port, const std::string& max_bytes,
                                  const std::string& source_extra = "") {
    return fmt::format(R"(
[queue]
max_bytes = "{}"
max_events = 1000000
when_full = "block"

[sources.bus]
type = "zmq"
endpoint = "tcp://127.0.0.1:{}"
socket = "pull"
bind = true
{}

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = 5000, timeout = "100ms" }}
)",
                       max_bytes, port, source_extra);
}

// Checks that the messages of `db` are exactly `prefix`-lines 0..n-1 made by `make`, each
// once, and that every row names `source`.
void check_each_once(e2e::sqlite_db& db, uint64_t n, const std::string& prefix,
                     const std::function<std::string(uint64_t)>& make) {
    std::vector<bool> seen(n, false);
    uint64_t bad = 0;
    uint64_t duplicates = 0;
    std::string first_bad;
    db.for_each_message([&](std::string_view msg) {
        // "PREFIX-NNNNNNN ..."
        uint64_t seq = n;
        if (msg.size() > prefix.size() + 8 && msg.substr(0, prefix.size()) == prefix) {
            seq = std::strtoull(std::string(msg.substr(prefix.size() + 1, 7)).c_str(), nullptr, 10);
        }
        if (seq >= n || msg != make(seq)) {
            if (bad++ == 0) {
                first_bad = std::string(msg.substr(0, 120));
            }
            return;
        }
        duplicates += seen[seq];
        seen[seq] = true;
    });
    INFO("first unexpected message: " << first_bad);
    CHECK(bad == 0);
    CHECK(duplicates == 0);
    CHECK(std::count(seen.begin(), seen.end(), false) == 0);
}

}  // namespace

TEST_CASE("zmq PULL source: 100k messages from a PUSH socket all land in SQLite", "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(pull_to_sqlite_config(port, "64MiB"));

    constexpr uint64_t n = 100'000;
    zmq::context_t context;
    zmq::socket_t push(context, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 0);
    push.connect(fmt::format("tcp://127.0.0.1:{}", port));
    uint64_t bytes = 0;
    uint64_t send_failures = 0;
    for (uint64_t i = 0; i < n; ++i) {
        const std::string line = e2e::make_line("zq", i);
        bytes += line.size();
        // Blocking: waits at the high-water mark while sluice is busy, never drops.
        send_failures += !push.send(zmq::buffer(line), zmq::send_flags::none);
    }
    REQUIRE(send_failures == 0);

    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", n);
    const auto m = d.metrics();
    CHECK(e2e::sample(m, "sluice_source_events_total{source=\"bus\"}") == n);
    CHECK(e2e::sample(m, "sluice_source_bytes_total{source=\"bus\"}") == bytes);
    CHECK(e2e::sample(m, "sluice_events_dropped_total{source=\"bus\",reason=\"queue_full\"}") == 0);
    CHECK(e2e::sample(m, "sluice_events_truncated_total{source=\"bus\"}") == 0);

    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    REQUIRE(db.count_rows() == static_cast<int64_t>(n));
    check_each_once(db, n, "zq", [](uint64_t i) { return e2e::make_line("zq", i); });
    CHECK(e2e::query_int(db, "SELECT count(*) FROM logs WHERE source = 'bus'") ==
          static_cast<int64_t>(n));
    // Plain text: none of the decoded columns are set.
    CHECK(e2e::query_int(db,
                         "SELECT count(*) FROM logs WHERE ts IS NULL AND severity IS NULL AND "
                         "facility IS NULL AND app IS NULL AND fields IS NULL") ==
          static_cast<int64_t>(n));
}

TEST_CASE(
    "zmq PULL source with a stuck sink: the PUSH sender blocks, then every message lands once",
    "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(pull_to_sqlite_config(port, "1MiB", "rcvhwm = 100"));

    // sluice created the database at startup; hold its write lock from now on.
    e2e::sqlite_db lock(d.data_dir() + "/logs.db");
    lock.exec("BEGIN EXCLUSIVE");

    constexpr uint64_t n = 200'000;  // 200-byte messages, 40 MB
    auto make = [](uint64_t i) { return e2e::make_line("zs", i, 200); };
    zmq::context_t context;
    e2e::zmq_push_sender sender(context, fmt::format("tcp://127.0.0.1:{}", port), n, make,
                                /*sndhwm=*/100, /*sndtimeo_ms=*/100);

    d.wait_metric("sluice_source_paused{source=\"bus\"}", 1, 30s);
    // The sender is stuck once its sends keep timing out: 10 in a row is 1 s without one
    // message accepted.
    e2e::wait_for(
        "the PUSH sender's sends to time out",
        [&] { return sender.timeouts_in_a_row() >= 10 || sender.done(); },
        [&] {
            return fmt::format("accepted {} of {}, {} timeouts\n{}", sender.accepted(), n,
                               sender.timeouts(), d.metrics_summary());
        },
        30s);
    REQUIRE_FALSE(sender.done());

    // The plateau: while the lock is held nothing more is accepted. (A few high-water marks'
    // worth are tolerated, for io threads that a busy machine left behind; a source that
    // kept reading while paused would let thousands through.)
    const uint64_t accepted_1 = sender.accepted();
    const uint64_t timeouts_1 = sender.timeouts();
    std::this_thread::sleep_for(1s);
    const uint64_t accepted_2 = sender.accepted();
    const auto stalled = d.metrics();
    INFO("accepted " << accepted_1 << " then " << accepted_2 << " of " << n << " messages; "
                     << sender.timeouts() << " sends timed out");
    CHECK(accepted_2 - accepted_1 <= 300);
    CHECK(accepted_2 < n / 4);
    CHECK(sender.timeouts() - timeouts_1 >= 2);  // and its sends keep failing
    CHECK(e2e::sample(stalled, "sluice_source_paused{source=\"bus\"}") == 1);
    CHECK(e2e::sample(stalled, "sluice_sink_events_total{sink=\"db\"}") == 0);
    CHECK(e2e::sample(stalled, "sluice_queue_bytes") <= 1024.0 * 1024.0);
    CHECK(e2e::sample(stalled, "sluice_source_events_total{source=\"bus\"}") <= accepted_2);
    CHECK(e2e::sample(stalled, "sluice_sink_errors_total{sink=\"db\"}") +
              e2e::sample(stalled, "sluice_sink_retries_total{sink=\"db\"}") >
          0);

    lock.exec("ROLLBACK");

    e2e::wait_for(
        "the PUSH sender to finish", [&] { return sender.done(); },
        [&] {
            return fmt::format("accepted {} of {}\n{}", sender.accepted(), n, d.metrics_summary());
        },
        60s, 100ms);
    REQUIRE(sender.error() == "");
    REQUIRE(sender.accepted() == n);
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", n);

    const auto m = d.metrics();
    CHECK(e2e::sample(m, "sluice_source_events_total{source=\"bus\"}") == n);
    CHECK(e2e::sample(m, "sluice_events_dropped_total{source=\"bus\",reason=\"queue_full\"}") == 0);
    CHECK(e2e::sample(m, "sluice_source_backpressure_seconds_total{source=\"bus\"}") > 0);

    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    REQUIRE(db.count_rows() == static_cast<int64_t>(n));
    check_each_once(db, n, "zs", make);
}

TEST_CASE(
    "zmq PUSH sink: events spread over two receivers, each exactly once, and json frames parse",
    "[e2e]") {
    zmq::context_t context;
    zmq::socket_t text_a(context, zmq::socket_type::pull);
    zmq::socket_t text_b(context, zmq::socket_type::pull);
    zmq::socket_t json_r(context, zmq::socket_type::pull);
    for (auto* s : {&text_a, &text_b, &json_r}) {
        s->set(zmq::sockopt::linger, 0);
    }
    const std::string endpoint_a = e2e::bind_any_port(text_a);
    const std::string endpoint_b = e2e::bind_any_port(text_b);
    const std::string endpoint_json = e2e::bind_any_port(json_r);

    const uint16_t port = e2e::free_port();
    e2e::daemon d(fmt::format(R"(
[queue]
max_bytes = "64MiB"
when_full = "block"

[sources.app]
type = "tcp"
address = "127.0.0.1:{}"

[sinks.fwd]
type = "zmq"
endpoints = ["{}", "{}"]
socket = "push"
format = "text"
batch = {{ max_events = 1000, timeout = "50ms" }}

[sinks.fwd_json]
type = "zmq"
endpoints = ["{}"]
socket = "push"
format = "json"
batch = {{ max_events = 1000, timeout = "50ms" }}
)",
                              port, endpoint_a, endpoint_b, endpoint_json));

    constexpr size_t n = 20'000;
    std::vector<std::string> sent;
    std::string stream;
    for (size_t i = 0; i < n; ++i) {
        sent.push_back(e2e::make_line("fw", i));
        stream += sent.back();
        stream += '\n';
    }
    // The receivers are read below on this thread; the sender must not wait for them.
    std::string send_error;
    std::thread sender([&] {
        try {
            e2e::tcp_client client(port);
            if (!client.send_all(stream)) {
                send_error = "send failed";
            }
            client.shutdown_write();
        } catch (const std::exception& e) {
            send_error = e.what();
        }
    });

    std::vector<std::string> got_a;
    std::vector<std::string> got_b;
    std::vector<std::string> got_json;
    auto receive_ready = [&](zmq::socket_t& s, std::vector<std::string>& into) {
        zmq::message_t m;
        while (s.recv(m, zmq::recv_flags::dontwait)) {
            into.push_back(e2e::to_string(m));
        }
    };
    auto poll_once = [&](std::chrono::milliseconds timeout) {
        std::vector<zmq::pollitem_t> items{{text_a.handle(), 0, ZMQ_POLLIN, 0},
                                           {text_b.handle(), 0, ZMQ_POLLIN, 0},
                                           {json_r.handle(), 0, ZMQ_POLLIN, 0}};
        zmq::poll(items, timeout);
        receive_ready(text_a, got_a);
        receive_ready(text_b, got_b);
        receive_ready(json_r, got_json);
    };
    const auto deadline = e2e::clock_type::now() + 60s;
    while ((got_a.size() + got_b.size() < n || got_json.size() < n) &&
           e2e::clock_type::now() < deadline) {
        poll_once(100ms);
    }
    // Anything extra (a duplicate) would follow soon after.
    for (int i = 0; i < 3; ++i) {
        poll_once(100ms);
    }
    sender.join();
    INFO("text receivers got " << got_a.size() << " + " << got_b.size() << ", json receiver "
                               << got_json.size() << " of " << n << "\n"
                               << d.metrics_summary());
    REQUIRE(send_error == "");
    CHECK(got_a.size() + got_b.size() == n);
    CHECK(got_json.size() == n);
    // Both receivers took a share.
    CHECK(got_a.size() > 0);
    CHECK(got_b.size() > 0);
    std::vector<std::string> got_text = got_a;
    got_text.insert(got_text.end(), got_b.begin(), got_b.end());
    {
        INFO("text frames vs the lines sent");
        CHECK(e2e::multiset_difference(sent, got_text) == "");
    }

    // JSON frames: one object per event with message, source and host.
    simdjson::dom::parser parser;
    std::vector<std::string> json_messages;
    size_t bad = 0;
    std::string first_bad;
    for (const auto& frame : got_json) {
        simdjson::dom::element root;
        std::string_view message;
        std::string_view source;
        std::string_view host;
        std::string_view received_at;
        if (parser.parse(frame).get(root) != simdjson::SUCCESS || !root.is_object() ||
            root["message"].get(message) != simdjson::SUCCESS ||
            root["source"].get(source) != simdjson::SUCCESS ||
            root["host"].get(host) != simdjson::SUCCESS ||
            root["received_at"].get(received_at) != simdjson::SUCCESS || source != "app" ||
            host != "127.0.0.1" || received_at.size() < 20) {
            if (bad++ == 0) {
                first_bad = frame.substr(0, 300);
            }
            continue;
        }
        json_messages.emplace_back(message);
    }
    INFO("first bad json frame: " << first_bad);
    CHECK(bad == 0);
    CHECK(e2e::multiset_difference(sent, json_messages) == "");

    const auto m = d.metrics();
    CHECK(e2e::sample(m, "sluice_sink_events_total{sink=\"fwd\"}") == n);
    CHECK(e2e::sample(m, "sluice_sink_events_total{sink=\"fwd_json\"}") == n);
}

TEST_CASE("zmq SUB source: messages on subscribed topics land, other topics do not", "[e2e]") {
    zmq::context_t context;
    zmq::socket_t pub(context, zmq::socket_type::pub);
    pub.set(zmq::sockopt::linger, 0);
    pub.set(zmq::sockopt::sndhwm, 100'000);
    const std::string endpoint = e2e::bind_any_port(pub);

    e2e::daemon d(fmt::format(R"(
[queue]
max_bytes = "64MiB"
when_full = "block"

[sources.bus]
type = "zmq"
endpoint = "{}"
socket = "sub"
bind = false
subscribe = ["app."]
rcvhwm = 100000

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = 5000, timeout = "100ms" }}
)",
                              endpoint));

    int publish_failures = 0;
    auto publish = [&](std::string_view topic, std::string_view payload) {
        publish_failures += !pub.send(zmq::buffer(topic), zmq::send_flags::sndmore);
        publish_failures += !pub.send(zmq::buffer(payload), zmq::send_flags::none);
    };

    // Slow joiner: PUB drops everything until sluice's subscription has arrived. Probe until
    // one lands.
    int probes = 0;
    e2e::wait_for(
        "a probe message to reach sluice",
        [&] {
            publish("app.probe", "probe-" + std::to_string(probes++));
            for (int i = 0; i < 10; ++i) {
                if (d.metric("sluice_source_events_total{source=\"bus\"}") >= 1) {
                    return true;
                }
                std::this_thread::sleep_for(20ms);
            }
            return false;
        },
        [&] { return fmt::format("{} probes sent\n{}", probes, d.metrics_summary()); }, 30s, 1ms);

    constexpr int n = 5'000;
    for (int i = 0; i < n; ++i) {
        publish("app.x", fmt::format("match-{:05}", i));
        publish("other.y", fmt::format("other-{:05}", i));
        // A prefix of the subscription, not a match for it.
        publish("app", fmt::format("short-{:05}", i));
        if (i % 500 == 499) {
            std::this_thread::sleep_for(2ms);
        }
    }
    REQUIRE(publish_failures == 0);

    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    int64_t matched = 0;
    e2e::wait_for(
        "every app.x message to land",
        [&] {
            matched = e2e::query_int(db, "SELECT count(*) FROM logs WHERE message LIKE 'match-%'");
            return matched >= n;
        },
        [&] { return fmt::format("{} of {} landed\n{}", matched, n, d.metrics_summary()); });
    // Settled: what sluice read is all stored.
    const double read = d.metric("sluice_source_events_total{source=\"bus\"}");
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", read);

    const auto rows = e2e::full_rows(db);
    std::vector<std::string> expected;
    for (int i = 0; i < n; ++i) {
        expected.push_back(fmt::format("match-{:05}", i));
    }
    std::vector<std::string> got;
    int64_t probes_landed = 0;
    int64_t wrong_source = 0;
    for (const auto& r : rows) {
        wrong_source += r.source != "bus";
        if (r.message.rfind("probe-", 0) == 0) {
            ++probes_landed;
        } else {
            got.push_back(r.message);
        }
    }
    INFO(probes << " probes sent, " << probes_landed << " landed; " << rows.size() << " rows");
    CHECK(probes_landed >= 1);
    CHECK(probes_landed <= probes);
    CHECK(wrong_source == 0);
    // Exactly the app.x payloads: no topic frame stored as an event, no other.y, no "app".
    CHECK(e2e::multiset_difference(expected, got) == "");
    CHECK(read == static_cast<double>(rows.size()));
}
