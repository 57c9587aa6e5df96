// e2e: TLS on a TCP source, against real clients: openssl s_client (with and without a client
// certificate, and a plaintext client next to it) and rsyslog's omfwd over TLS (RFC 5425,
// octet-counted syslog), into the file and SQLite sinks; what is refused is counted in
// /metrics. Certificates come from the openssl CLI (tests/tls_certs.h).
#include <fcntl.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "tests/e2e/child_process.h"
#include "tests/e2e/harness.h"
#include "tests/tls_certs.h"

namespace {

using sluice::test::tls_certs;
using namespace std::chrono_literals;

std::string tls_config(uint16_t port, const tls_certs& certs, bool verify_client,
                       const std::string& source_extra = "") {
    return fmt::format(R"(
[sources.app]
type = "tcp"
address = "127.0.0.1:{}"
tls = {{ cert = "{}", key = "{}", ca = "{}", verify_client = {} }}
{}

[sinks.archive]
type = "file"
path = "logs/out.log"
batch = {{ timeout = "100ms" }}

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ timeout = "100ms" }}
)",
                       port, certs.server, certs.server_key, certs.ca,
                       verify_client ? "true" : "false", source_extra);
}

// `n` distinct real log lines, and the file that holds them, one per line.
std::vector<std::string> write_lines(const std::string& path, const std::string& prefix, size_t n) {
    std::vector<std::string> lines;
    std::string text;
    for (size_t i = 0; i < n; ++i) {
        lines.push_back(e2e::make_line(prefix, i));
        text += lines.back() + "\n";
    }
    e2e::write_file(path, text);
    return lines;
}

void check_landed_once(const e2e::daemon& d, const std::vector<std::string>& expected) {
    {
        INFO("file sink logs/out.log vs the lines sent");
        CHECK(e2e::multiset_difference(expected, e2e::read_lines(d.data_dir() + "/logs/out.log")) ==
              "");
    }
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    INFO("sqlite table logs vs the lines sent");
    CHECK(e2e::multiset_difference(expected, db.messages()) == "");
}

const std::string connections = "sluice_source_connections{source=\"app\"}";
const std::string rejected_tls =
    "sluice_source_connections_rejected_total{source=\"app\",reason=\"tls\"}";

}  // namespace

TEST_CASE("TLS: openssl s_client lines land exactly once, with and without a client certificate",
          "[e2e][tls]") {
    const e2e::scratch_dir scratch;
    const std::string& dir = scratch.path();
    const tls_certs certs(dir + "/certs");
    const uint16_t port = e2e::free_port();
    e2e::daemon d(tls_config(port, certs, false));

    constexpr size_t per_client = 20'000;
    auto anonymous = write_lines(dir + "/anonymous.txt", "anon", per_client);
    const auto with_cert = write_lines(dir + "/with-cert.txt", "cert", per_client);
    e2e::child_process a(e2e::s_client_command(port, certs, dir + "/anonymous.txt"), dir,
                         dir + "/anonymous.log");
    e2e::child_process b(
        e2e::s_client_command(port, certs, dir + "/with-cert.txt", certs.client, certs.client_key),
        dir, dir + "/with-cert.log");
    {
        INFO("s_client without a certificate:\n" << a.log());
        CHECK(a.wait_exit() == 0);
    }
    {
        INFO("s_client with a certificate:\n" << b.log());
        CHECK(b.wait_exit() == 0);
    }

    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", 2 * per_client);
    d.wait_metric("sluice_sink_events_total{sink=\"archive\"}", 2 * per_client);
    d.wait_metric(connections, 0);
    CHECK(d.metric("sluice_source_events_total{source=\"app\"}") == 2 * per_client);
    CHECK(d.metric(rejected_tls) == 0);
    anonymous.insert(anonymous.end(), with_cert.begin(), with_cert.end());
    check_landed_once(d, anonymous);
}

TEST_CASE(
    "TLS: plaintext, certificate-less, foreign and silent clients are cut off and "
    "counted while a TLS client goes on",
    "[e2e][tls]") {
    const e2e::scratch_dir scratch;
    const std::string& dir = scratch.path();
    const tls_certs certs(dir + "/certs");
    const uint16_t port = e2e::free_port();
    e2e::daemon d(tls_config(port, certs, true));

    // Connects and never says a word: cut off when the 10 s handshake deadline passes.
    e2e::tcp_client silent(port);
    const auto silent_since = e2e::clock_type::now();

    // The client that goes on reads its lines from a FIFO the test writes in two rounds.
    const std::string fifo = dir + "/lines.fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    e2e::child_process good(
        e2e::s_client_command(port, certs, fifo, certs.client, certs.client_key), dir,
        dir + "/good.log");
    int writer = -1;
    e2e::wait_for(
        "s_client to open the FIFO",
        [&] {
            writer = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);  // ENXIO until then
            return writer >= 0 || !good.running();
        },
        [&] { return good.log(); });
    REQUIRE(writer >= 0);
    REQUIRE(::fcntl(writer, F_SETFL, 0) == 0);
    auto send_round = [&](const std::string& prefix, size_t from, size_t n,
                          std::vector<std::string>& sent) {
        std::string text;
        for (size_t i = from; i < from + n; ++i) {
            sent.push_back(e2e::make_line(prefix, i));
            text += sent.back() + "\n";
        }
        REQUIRE(::write(writer, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    };
    std::vector<std::string> sent;
    send_round("good", 0, 1000, sent);
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", 1000);
    d.wait_metric(connections, 2);  // the TLS client and the silent one

    // A plaintext client on the TLS port.
    {
        e2e::tcp_client plain(port);
        plain.send_all("plain text, no ClientHello\n");
        CHECK(e2e::wait_closed_by_peer(plain.fd(), 10s));
    }
    d.wait_metric(rejected_tls, 1);
    // With TLS 1.3 the client's side of the handshake ends before sluice has checked its
    // certificate: these two see the connection end, not a failed handshake.
    const std::string none_input = dir + "/none.txt";
    write_lines(none_input, "none", 10);
    e2e::child_process none(e2e::s_client_command(port, certs, none_input), dir, dir + "/none.log");
    none.wait_exit();
    d.wait_metric(rejected_tls, 2);
    e2e::child_process foreign(
        e2e::s_client_command(port, certs, none_input, certs.other_client, certs.other_client_key),
        dir, dir + "/foreign.log");
    foreign.wait_exit();
    d.wait_metric(rejected_tls, 3);

    // The silent client: cut off once its handshake has taken 10 s, counted too.
    CHECK(e2e::wait_closed_by_peer(silent.fd(), 20s));
    const auto silent_for = e2e::clock_type::now() - silent_since;
    CHECK(silent_for >= 9500ms);
    CHECK(silent_for < 15s);
    d.wait_metric(rejected_tls, 4);
    d.wait_metric(connections, 1);
    CHECK(d.log().find("TLS handshake failed: it did not finish within 10.0 s") !=
          std::string::npos);

    // The TLS client went on all along.
    send_round("good", 1000, 1000, sent);
    ::close(writer);
    {
        INFO(good.log());
        CHECK(good.wait_exit() == 0);
    }
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", 2000);
    d.wait_metric("sluice_sink_events_total{sink=\"archive\"}", 2000);
    d.wait_metric(connections, 0);
    check_landed_once(d, sent);  // nothing of the refused clients
    CHECK(d.metric("sluice_source_idle_timeouts_total{source=\"app\"}") == 0);
}

namespace {

struct syslog_row {
    std::string host;
    std::string app;
    std::string message;
    int severity = -1;
    int facility = -1;
};

std::vector<syslog_row> syslog_rows(const std::string& db_path) {
    e2e::sqlite_db db(db_path);
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(
                db.handle(), "SELECT host, app, message, severity, facility FROM logs ORDER BY id",
                -1, &stmt, nullptr) == SQLITE_OK);
    auto text = [&](int column) {
        const auto* p = sqlite3_column_text(stmt, column);
        return p == nullptr ? std::string("NULL") : std::string(reinterpret_cast<const char*>(p));
    };
    std::vector<syslog_row> rows;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        rows.push_back(
            {text(0), text(1), text(2), sqlite3_column_int(stmt, 3), sqlite3_column_int(stmt, 4)});
    }
    sqlite3_finalize(stmt);
    return rows;
}

// rsyslogd in the foreground on its own config: imfile reads `input`, omfwd sends each line as
// RFC 5424 over TLS with octet-counted framing (RFC 5425) to sluice, presenting the client
// certificate and checking sluice's against the CA (with `driver` "ossl"), or anonymously
// (with "gtls" and "anon").
std::string rsyslog_config(const std::string& dir, const tls_certs& certs, uint16_t port,
                           const std::string& driver, const std::string& auth_mode,
                           const std::string& input) {
    return fmt::format(R"(
global(workDirectory="{dir}/rsyslog-work"
       localHostName="tls-test-host"
       DefaultNetstreamDriver="{driver}"
       DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imfile")
input(type="imfile" File="{input}" Tag="tlsapp" Ruleset="forward")
ruleset(name="forward") {{
  action(type="omfwd" Target="127.0.0.1" Port="{port}" Protocol="tcp"
         StreamDriver="{driver}" StreamDriverMode="1" StreamDriverAuthMode="{auth}"
         TCP_Framing="octet-counted" Template="RSYSLOG_SyslogProtocol23Format")
}}
)",
                       fmt::arg("dir", dir), fmt::arg("driver", driver), fmt::arg("ca", certs.ca),
                       fmt::arg("cert", certs.client), fmt::arg("key", certs.client_key),
                       fmt::arg("input", input), fmt::arg("port", port),
                       fmt::arg("auth", auth_mode));
}

}  // namespace

TEST_CASE("TLS: rsyslog forwards RFC 5425 syslog over TLS, and it lands decoded in SQLite",
          "[e2e][tls]") {
    const std::string rsyslogd = "/usr/sbin/rsyslogd";
    REQUIRE(std::filesystem::exists(rsyslogd));  // scripts/setup installs rsyslog
    // Mutual TLS with OpenSSL's driver, and an anonymous client with GnuTLS's.
    const auto [driver, auth_mode, verify_client] =
        GENERATE(std::tuple{std::string("ossl"), std::string("x509/certvalid"), true},
                 std::tuple{std::string("gtls"), std::string("anon"), false});
    INFO("rsyslog StreamDriver=" << driver << " StreamDriverAuthMode=" << auth_mode);
    const e2e::scratch_dir scratch;
    const std::string& dir = scratch.path();
    const tls_certs certs(dir + "/certs");
    const uint16_t port = e2e::free_port();
    e2e::daemon d(fmt::format(R"(
[sources.app]
type = "tcp"
address = "127.0.0.1:{}"
framing = "octet_counting"
codec = "syslog"
tls = {{ cert = "{}", key = "{}", ca = "{}", verify_client = {} }}

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ timeout = "100ms" }}
)",
                              port, certs.server, certs.server_key, certs.ca, verify_client));

    constexpr size_t n = 2000;
    const std::string input = dir + "/app.log";
    const auto lines = write_lines(input, "rsyslog", n);
    std::filesystem::create_directories(dir + "/rsyslog-work");
    const std::string conf = dir + "/rsyslog.conf";
    e2e::write_file(conf, rsyslog_config(dir, certs, port, driver, auth_mode, input));
    // sluice listens already (the daemon is healthy), so rsyslog's first connect works.
    e2e::child_process rsyslog({rsyslogd, "-n", "-f", conf, "-i", dir + "/rsyslog.pid"}, dir,
                               dir + "/rsyslog.log");
    e2e::wait_for(
        "rsyslog's lines in SQLite",
        [&] {
            if (!rsyslog.running()) {
                FAIL("rsyslogd exited:\n" << rsyslog.log());
            }
            return e2e::count_rows_or(d.data_dir() + "/logs.db", 0) >= static_cast<int64_t>(n);
        },
        [&] { return "rsyslog:\n" + rsyslog.log() + "\nsluice: " + d.metrics_summary(); });
    CHECK(d.metric(connections) == 1);
    CHECK(d.metric(rejected_tls) == 0);
    CHECK(d.metric("sluice_decode_errors_total{source=\"app\"}") == 0);

    const auto rows = syslog_rows(d.data_dir() + "/logs.db");
    REQUIRE(rows.size() == n);
    std::vector<std::string> messages;
    size_t wrong = 0;
    for (const auto& r : rows) {
        messages.push_back(r.message);
        // imfile's defaults: facility local0 (16), severity notice (5).
        if ((r.host != "tls-test-host" || r.app != "tlsapp" || r.severity != 5 ||
             r.facility != 16) &&
            wrong++ == 0) {
            FAIL_CHECK("row: host=" << r.host << " app=" << r.app << " severity=" << r.severity
                                    << " facility=" << r.facility << " message=" << r.message);
        }
    }
    CHECK(wrong == 0);
    CHECK(e2e::multiset_difference(lines, messages) == "");
    rsyslog.kill();
    d.wait_metric(connections, 0);
}
