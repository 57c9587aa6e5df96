// e2e: the UDP source with the syslog codec (every datagram is stored or counted as dropped;
// RFC 5424 and RFC 3164 vectors land in the right columns; undecodable lines are kept as
// text and counted), and the JSON codec over TCP.
#include <fmt/format.h>
#include <unistd.h>
#include <simdjson.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.h"
#include "tests/e2e/zmq_udp_helpers.h"

namespace {

using namespace std::chrono_literals;

std::string sqlite_config(const std::string& source) {
    return fmt::format(R"(
[queue]
max_bytes = "64MiB"
max_events = 1000000
when_full = "block"

{}

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = 5000, timeout = "100ms" }}
)",
                       source);
}

// The UDP source "syslog" on `port`, RFC 5424/3164 decoded, into the SQLite sink above.
std::string syslog_udp_config(uint16_t port) {
    return sqlite_config(fmt::format(R"(
[sources.syslog]
type = "udp"
address = "127.0.0.1:{}"
codec = "syslog"
)",
                                     port));
}

// The rows whose message is exactly `message`; FAILs unless there is exactly one.
e2e::full_row only_row(e2e::sqlite_db& db, const std::string& message) {
    const auto rows = e2e::full_rows(db, "message = ?1", {message});
    INFO("rows with message '" << message << "'");
    REQUIRE(rows.size() == 1);
    return rows[0];
}

// A JSON object's top-level members as key -> minified value; nullopt if `text` is not an
// object.
std::optional<std::map<std::string, std::string>> object_members(const std::string& text) {
    simdjson::dom::parser parser;
    simdjson::dom::object object;
    if (parser.parse(text).get(object) != simdjson::SUCCESS) {
        return std::nullopt;
    }
    std::map<std::string, std::string> out;
    for (auto [key, value] : object) {
        out[std::string(key)] = simdjson::minify(value);
    }
    return out;
}

constexpr std::string_view load_ts = "2024-01-02T03:04:05.123Z";
constexpr int64_t load_ts_ns = 1'704'164'645'123'000'000;

std::string load_message(int i) { return fmt::format("udp-{:06} user login accepted", i); }

// facility 16 (local0), severity 6 (info)
std::string load_datagram(int i) {
    return fmt::format("<134>1 {} loadhost loadapp 4242 LOAD - {}", load_ts, load_message(i));
}

const std::string read_key = "sluice_source_events_total{source=\"syslog\"}";
const std::string queue_full_key =
    "sluice_events_dropped_total{source=\"syslog\",reason=\"queue_full\"}";
const std::string kernel_key = "sluice_events_dropped_total{source=\"syslog\",reason=\"kernel\"}";

// Waits until sluice has read, or counted as dropped by the kernel, all `n` load datagrams and
// the sentinels; returns the metrics that showed it. A datagram the kernel dropped is reported
// with the next one sluice reads: while the figures do not add up, another (valid) datagram
// goes out now and then, counted in `sentinels`.
e2e::metric_map wait_until_accounted(e2e::daemon& d, e2e::udp_sender& udp, int n,
                                     int& sentinels) {
    int polls = 0;
    e2e::metric_map m;
    e2e::wait_for(
        "every datagram read or counted as dropped by the kernel",
        [&] {
            m = d.metrics();
            if (e2e::sample(m, read_key) + e2e::sample(m, kernel_key) == n + sentinels) {
                return true;
            }
            if (++polls % 10 == 0) {
                REQUIRE(udp.send(fmt::format(
                    "<134>1 {} loadhost loadapp 4242 SENTINEL - sentinel-{}", load_ts, sentinels)));
                ++sentinels;
            }
            return false;
        },
        [&] {
            return fmt::format("sent {} + {} sentinels\n{}", n, sentinels, d.metrics_summary());
        },
        30s);
    return m;
}

}  // namespace

TEST_CASE(
    "udp syslog: every datagram is stored or counted as dropped, and known vectors decode right",
    "[e2e]") {
    const uint16_t port = e2e::free_udp_port();
    e2e::daemon d(syslog_udp_config(port));
    e2e::udp_sender udp(port);

    // ---- 10,000 datagrams: stored + dropped (queue_full, kernel) == sent -------------------
    constexpr int n = 10'000;
    int send_failures = 0;
    for (int i = 0; i < n; ++i) {
        send_failures += !udp.send(load_datagram(i));
        if (i % 500 == 499) {
            std::this_thread::sleep_for(5ms);  // bursts the machine holds
        }
    }
    REQUIRE(send_failures == 0);
    int sentinels = 0;
    const e2e::metric_map m = wait_until_accounted(d, udp, n, sentinels);
    const double read = e2e::sample(m, read_key);
    const double queue_full = e2e::sample(m, queue_full_key);
    const double kernel = e2e::sample(m, kernel_key);
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", read - queue_full);

    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    const int64_t stored = db.count_rows();
    INFO("sent " << n << " + " << sentinels << " sentinels; read " << read << ", stored " << stored
                 << ", dropped queue_full " << queue_full << ", kernel " << kernel);
    CHECK(static_cast<double>(stored) + queue_full + kernel == n + sentinels);
    CHECK(e2e::sample(d.metrics(), kernel_key) == kernel);  // settled
    CHECK(queue_full == 0);  // 64 MiB hold every datagram: only the kernel may drop here
    CHECK(stored > 0);

    // What was stored: each sent message at most once, every column decoded.
    {
        const auto load = e2e::full_rows(db, "msgid = 'LOAD'");
        std::vector<int> seen(n, 0);
        size_t wrong = 0;
        std::string first_wrong;
        for (const auto& r : load) {
            const int i = r.message.size() > 10 ? std::atoi(r.message.c_str() + 4) : -1;
            const bool ok = i >= 0 && i < n && r.message == load_message(i) && r.ts == load_ts_ns &&
                            r.source == "syslog" && r.host == "loadhost" && r.severity == 6 &&
                            r.facility == 16 && r.app == "loadapp" && r.procid == "4242" &&
                            !r.fields.has_value();
            if (!ok) {
                if (wrong++ == 0) {
                    first_wrong = e2e::describe(r);
                }
                continue;
            }
            ++seen[i];
        }
        INFO("first wrong row: " << first_wrong);
        CHECK(wrong == 0);
        CHECK(std::count_if(seen.begin(), seen.end(), [](int c) { return c > 1; }) == 0);
        CHECK(static_cast<int64_t>(load.size()) +
                  e2e::query_int(db, "SELECT count(*) FROM logs WHERE msgid = 'SENTINEL'") ==
              stored);
    }
    CHECK(e2e::sample(m, "sluice_decode_errors_total{source=\"syslog\"}") == 0);

    // ---- known vectors ---------------------------------------------------------------------
    const std::string bom = "\xEF\xBB\xBF";
    const std::string su_msg = "'su root' failed for lonvick on /dev/pts/8";
    const std::string rfc5424 =
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - " + bom + su_msg;
    const std::string with_sd =
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] "
        "An application event log entry...";
    const std::string rfc3164 = "<13>Feb  5 17:32:18 10.0.0.99 myapp[1234]: Use the BFG!";
    const std::string nil_host = "<14>1 2024-01-02T03:04:05Z - nilhost 77 - - host is nil";
    const std::string not_syslog = "not syslog at all";
    for (const auto& v : {rfc5424, with_sd, rfc3164, nil_host, not_syslog}) {
        REQUIRE(udp.send(v));
    }
    int64_t rows_now = 0;
    e2e::wait_for(
        "the five vectors to land",
        [&] {
            rows_now = db.count_rows();
            return rows_now >= stored + 5;
        },
        [&] {
            return fmt::format("{} rows of {}\n{}", rows_now, stored + 5, d.metrics_summary());
        });
    CHECK(rows_now == stored + 5);

    {
        const auto r = only_row(db, su_msg);  // the BOM is stripped
        INFO(e2e::describe(r));
        CHECK(r.source == "syslog");
        CHECK(r.severity == 2);
        CHECK(r.facility == 4);
        CHECK(r.host == "mymachine.example.com");
        CHECK(r.app == "su");
        CHECK_FALSE(r.procid.has_value());
        CHECK(r.msgid == "ID47");
        CHECK(r.ts == 1'065'910'455'003'000'000);
        CHECK_FALSE(r.fields.has_value());
    }
    {
        const auto r = only_row(db, "An application event log entry...");
        INFO(e2e::describe(r));
        CHECK(r.severity == 5);
        CHECK(r.facility == 20);
        CHECK(r.host == "mymachine.example.com");
        CHECK(r.app == "evntslog");
        CHECK_FALSE(r.procid.has_value());
        CHECK(r.msgid == "ID47");
        CHECK(r.ts == 1'065'910'455'003'000'000);
        REQUIRE(r.fields.has_value());
        const auto sd = object_members(*r.fields);
        REQUIRE(sd.has_value());
        CHECK(sd->size() == 1);
        REQUIRE(sd->count("exampleSDID@32473") == 1);
        const auto params = object_members(sd->at("exampleSDID@32473"));
        REQUIRE(params.has_value());
        const std::map<std::string, std::string> expected{
            {"iut", "\"3\""}, {"eventSource", "\"Application\""}, {"eventID", "\"1011\""}};
        CHECK(*params == expected);
    }
    {
        const auto r = only_row(db, "Use the BFG!");
        INFO(e2e::describe(r));
        CHECK(r.severity == 5);
        CHECK(r.facility == 1);
        CHECK(r.host == "10.0.0.99");
        CHECK(r.app == "myapp");
        CHECK(r.procid == "1234");
        CHECK_FALSE(r.msgid.has_value());
        CHECK(r.ts.has_value());  // Feb 5 of a year sluice picks: no year in RFC 3164
        CHECK_FALSE(r.fields.has_value());
    }
    {
        const auto r = only_row(db, "host is nil");
        INFO(e2e::describe(r));
        CHECK(r.severity == 6);
        CHECK(r.facility == 1);
        CHECK(r.host == "127.0.0.1");  // a nil HOSTNAME: the peer address
        CHECK(r.app == "nilhost");
        CHECK(r.procid == "77");
        CHECK_FALSE(r.msgid.has_value());
        CHECK(r.ts == 1'704'164'645'000'000'000);
    }
    {
        const auto r = only_row(db, not_syslog);  // kept as plain text
        INFO(e2e::describe(r));
        CHECK(r.source == "syslog");
        CHECK_FALSE(r.severity.has_value());
        CHECK_FALSE(r.facility.has_value());
        CHECK_FALSE(r.app.has_value());
        CHECK_FALSE(r.ts.has_value());
        CHECK_FALSE(r.fields.has_value());
        CHECK(r.host == "127.0.0.1");
    }
    CHECK(d.metric("sluice_decode_errors_total{source=\"syslog\"}") == 1);
}

TEST_CASE("udp on 2 io threads: one socket per loop, every datagram stored once or counted, "
          "each sender's in order",
          "[e2e]") {
    const uint16_t port = e2e::free_udp_port();
    e2e::daemon d("io_threads = 2\n" + syslog_udp_config(port));
    CHECK(d.log().find("2 sockets, one per io thread") != std::string::npos);
    // 32 senders, each from its own port, so the kernel spreads them over the two sockets.
    constexpr int senders = 32;
    constexpr int per_sender = 300;
    std::vector<std::unique_ptr<e2e::udp_sender>> udp;
    for (int s = 0; s < senders; ++s) {
        udp.push_back(std::make_unique<e2e::udp_sender>(port));
    }
    const auto message = [](int s, int i) {
        return fmt::format("s{:02}-{:04} io thread load", s, i);
    };
    for (int i = 0; i < per_sender; ++i) {
        for (int s = 0; s < senders; ++s) {
            REQUIRE(udp[s]->send(fmt::format("<134>1 {} loadhost loadapp 4242 LOAD - {}", load_ts,
                                             message(s, i))));
        }
        if (i % 20 == 19) {
            std::this_thread::sleep_for(5ms);  // bursts the machine holds
        }
    }
    constexpr int n = senders * per_sender;
    int sentinels = 0;
    const e2e::metric_map m = wait_until_accounted(d, *udp[0], n, sentinels);
    const double read = e2e::sample(m, read_key);
    const double kernel = e2e::sample(m, kernel_key);
    CHECK(e2e::sample(m, queue_full_key) == 0);
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", read);

    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    const auto load = e2e::full_rows(db, "msgid = 'LOAD'");
    const int64_t stored = db.count_rows();
    INFO("sent " << n << " + " << sentinels << " sentinels, stored " << stored << " ("
                 << load.size() << " load), kernel drops " << kernel);
    CHECK(static_cast<double>(stored) + kernel == n + sentinels);
    // In id order, each sender's messages come in the order it sent them, none twice.
    std::vector<int> last(senders, -1);
    size_t wrong = 0;
    for (const auto& r : load) {
        const int s = std::atoi(r.message.c_str() + 1);
        const int i = std::atoi(r.message.c_str() + 4);
        if (s < 0 || s >= senders || r.message != message(s, i) || i <= last[s]) {
            ++wrong;
            continue;
        }
        last[s] = i;
    }
    CHECK(wrong == 0);
    if (::geteuid() == 0) {
        // Root gets the 64 MiB receive buffers (SO_RCVBUFFORCE): they hold these bursts.
        CHECK(kernel == 0);
        CHECK(load.size() == static_cast<size_t>(n));
    }
}

TEST_CASE("udp with a stuck sink and a tiny receive buffer: drops are counted by reason", "[e2e]") {
    const uint16_t port = e2e::free_udp_port();
    // A 256 KiB queue the locked database cannot drain, and a socket buffer of a few
    // datagrams: sluice drops on both counts, and must say how many.
    e2e::daemon d(fmt::format(R"(
[queue]
max_bytes = "256KiB"
when_full = "block"

[sources.syslog]
type = "udp"
address = "127.0.0.1:{}"
codec = "syslog"
receive_buffer_bytes = "4KiB"

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = 5000, timeout = "100ms" }}
)",
                              port));
    e2e::sqlite_db lock(d.data_dir() + "/logs.db");
    lock.exec("BEGIN EXCLUSIVE");

    e2e::udp_sender udp(port);
    constexpr int n = 30'000;
    int send_failures = 0;
    for (int i = 0; i < n; ++i) {
        send_failures += !udp.send(load_datagram(i));  // unpaced
    }
    REQUIRE(send_failures == 0);

    int sentinels = 0;
    const e2e::metric_map m = wait_until_accounted(d, udp, n, sentinels);
    CHECK(e2e::sample(m, "sluice_sink_events_total{sink=\"db\"}") == 0);
    lock.exec("ROLLBACK");

    const double read = e2e::sample(m, read_key);
    const double queue_full = e2e::sample(m, queue_full_key);
    const double kernel = e2e::sample(m, kernel_key);
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", read - queue_full);
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    const int64_t stored = db.count_rows();
    const auto after = d.metrics();
    INFO("sent " << n << " + " << sentinels << " sentinels; read " << read << ", stored " << stored
                 << ", dropped queue_full " << queue_full << ", kernel " << kernel);
    CHECK(queue_full > 0);
    CHECK(kernel > 0);
    CHECK(static_cast<double>(stored) + queue_full + kernel == n + sentinels);
    // Settled: nothing more was read or dropped while the sink caught up.
    CHECK(e2e::sample(after, read_key) == read);
    CHECK(e2e::sample(after, queue_full_key) == queue_full);
    CHECK(e2e::sample(after, kernel_key) == kernel);
    // What was stored was sent, each at most once.
    CHECK(e2e::query_int(db, "SELECT count(DISTINCT message) FROM logs") == stored);
    CHECK(e2e::query_int(db, "SELECT count(*) FROM logs WHERE msgid = 'LOAD' AND ts = " +
                                 std::to_string(load_ts_ns) + " AND severity = 6") +
              e2e::query_int(db, "SELECT count(*) FROM logs WHERE msgid = 'SENTINEL'") ==
          stored);
}

TEST_CASE("json codec over tcp: message, columns and fields from the object, broken lines text",
          "[e2e]") {
    const uint16_t port = e2e::free_port();
    e2e::daemon d(sqlite_config(fmt::format(R"(
[sources.app]
type = "tcp"
address = "127.0.0.1:{}"
codec = "json"
)",
                                            port)));

    const std::string hi =
        R"({"ts":"2024-01-02T03:04:05Z","level":"info","host":"web-1","service":"api",)"
        R"("msg":"hi \"there\""})";
    const std::string ms = R"({"timestamp":1704164645123,"level":"warn","msg":"ms"})";
    const std::string no_time = R"({"msg":"no time","n":[1,2,{"a":null}],"ok":true})";
    const std::string no_message = R"({"text":"no message key","level":3})";
    const std::string broken = R"({"ts": "2024-01-02T03:04:05Z", "msg": "broken)";
    const std::string not_object = R"([1,2,3])";
    constexpr int n = 2'000;  // more lines, over several batches
    auto numbered = [](int i) {
        return fmt::format(R"({{"time":"2024-01-02T03:04:05.{:06}Z","seq":{},"msg":"m-{}"}})", i, i,
                           i);
    };
    std::string stream = hi + "\n" + ms + "\n" + no_time + "\n" + no_message + "\n" + broken +
                         "\n" + not_object + "\n";
    for (int i = 0; i < n; ++i) {
        stream += numbered(i) + "\n";
    }
    {
        e2e::tcp_client client(port);
        REQUIRE(client.send_all(stream));
        client.shutdown_write();
    }
    const int total = n + 6;
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", total);
    CHECK(d.metric("sluice_decode_errors_total{source=\"app\"}") == 2);

    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    CHECK(db.count_rows() == total);
    {
        const auto r = only_row(db, "hi \"there\"");  // msg, unescaped
        INFO(e2e::describe(r));
        CHECK(r.source == "app");
        CHECK(r.host == "web-1");
        CHECK(r.app == "api");
        CHECK(r.ts == 1'704'164'645'000'000'000);
        CHECK(r.severity == 6);
        REQUIRE(r.fields.has_value());
        const auto fields = object_members(*r.fields);
        REQUIRE(fields.has_value());
        const std::map<std::string, std::string> expected{{"ts", "\"2024-01-02T03:04:05Z\""},
                                                          {"level", "\"info\""},
                                                          {"host", "\"web-1\""},
                                                          {"service", "\"api\""}};
        CHECK(*fields == expected);
    }
    {
        const auto r = only_row(db, "ms");
        INFO(e2e::describe(r));
        CHECK(r.host == "127.0.0.1");  // no host key: the peer
        CHECK(r.ts == 1'704'164'645'123'000'000);  // a number in ms, by its magnitude
        CHECK(r.severity == 4);
        REQUIRE(r.fields.has_value());
        CHECK(object_members(*r.fields) ==
              object_members(R"({"timestamp":1704164645123,"level":"warn"})"));
    }
    {
        const auto r = only_row(db, "no time");
        INFO(e2e::describe(r));
        CHECK_FALSE(r.ts.has_value());
        CHECK_FALSE(r.severity.has_value());
        REQUIRE(r.fields.has_value());
        CHECK(*r.fields == R"({"n":[1,2,{"a":null}],"ok":true})");
    }
    {
        const auto r = only_row(db, no_message);  // no message key: the line is the message
        INFO(e2e::describe(r));
        CHECK(r.severity == 3);
        CHECK(r.fields == no_message);
    }
    for (const auto& line : {broken, not_object}) {
        const auto r = only_row(db, line);  // kept as text
        INFO(e2e::describe(r));
        CHECK(r.source == "app");
        CHECK_FALSE(r.ts.has_value());
        CHECK_FALSE(r.fields.has_value());
    }
    const auto rows = e2e::full_rows(db, "message LIKE 'm-%'");
    REQUIRE(rows.size() == static_cast<size_t>(n));
    size_t wrong = 0;
    std::string first_wrong;
    std::vector<int> seen(n, 0);
    for (const auto& r : rows) {
        const auto fields = r.fields ? object_members(*r.fields) : std::nullopt;
        const int i = fields && fields->count("seq") ? std::atoi(fields->at("seq").c_str()) : -1;
        const bool ok = i >= 0 && i < n && r.message == fmt::format("m-{}", i) &&
                        r.ts == 1'704'164'645'000'000'000 + int64_t{i} * 1000 &&
                        fields->size() == 2 && fields->count("time") == 1;
        if (!ok) {
            if (wrong++ == 0) {
                first_wrong = e2e::describe(r);
            }
            continue;
        }
        ++seen[i];
    }
    INFO("first wrong row: " << first_wrong);
    CHECK(wrong == 0);
    CHECK(std::count(seen.begin(), seen.end(), 1) == n);
}
