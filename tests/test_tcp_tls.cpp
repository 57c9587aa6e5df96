// The TCP source's connections: TLS (handshakes, client certificates, the handshake timeout,
// backpressure through TLS), idle_timeout, and the config of both. Run for real: the source on
// a real io_context pumped by the test thread (tests/source_harness.h), Asio SSL clients on the
// same io_context, certificates made by the openssl CLI (tests/tls_certs.h).
#include <algorithm>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/ssl.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "app/config.h"
#include "config_test_helpers.h"
#include "ingest/tcp_source.h"
#include "tests/source_harness.h"
#include "tests/temp_dir.h"
#include "tests/tls_certs.h"

using namespace std::chrono_literals;
using sluice::test::harness;
using sluice::test::small_queue;
using sluice::test::tls_certs;
using clk = std::chrono::steady_clock;

namespace {

constexpr sluice::source_id sid = 0;

asio::ip::tcp::endpoint loopback(uint16_t port) {
    return {asio::ip::make_address("127.0.0.1"), port};
}

std::string numbered(const std::string& prefix, size_t i) {
    return prefix + "-" + std::to_string(i) + " the quick brown fox jumps over the lazy dog";
}

sluice::tcp_source_config tls_source(const tls_certs& certs, bool verify_client = false) {
    sluice::tcp_source_config cfg;
    cfg.address = "127.0.0.1:0";
    cfg.tls = sluice::tls_config{certs.server, certs.server_key, certs.ca, verify_client};
    return cfg;
}

asio::ssl::context client_context(const tls_certs& certs, const std::string& cert,
                                  const std::string& key) {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.load_verify_file(certs.ca);
    ctx.set_verify_mode(asio::ssl::verify_peer);
    if (!cert.empty()) {
        ctx.use_certificate_chain_file(cert);
        ctx.use_private_key_file(key, asio::ssl::context::pem);
    }
    return ctx;
}

// A TLS client on the harness's io_context: every step pumps the io until it completes. It
// checks the server's certificate against the CA and its subjectAltName against 127.0.0.1.
struct tls_client {
    harness& h;
    asio::ssl::context ctx;
    asio::ssl::stream<asio::ip::tcp::socket> stream;

    tls_client(harness& h_, const tls_certs& certs, const std::string& cert = "",
               const std::string& key = "")
        : h(h_), ctx(client_context(certs, cert, key)), stream(h_.io, ctx) {
        stream.set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
    }

    asio::error_code handshake(uint16_t port) {
        stream.lowest_layer().connect(loopback(port));
        std::optional<asio::error_code> result;
        stream.async_handshake(asio::ssl::stream_base::client,
                               [&](asio::error_code ec) { result = ec; });
        h.pump_until([&] { return result.has_value(); }, true, "the client's handshake");
        return *result;
    }

    asio::error_code send(const std::string& text) {
        std::optional<asio::error_code> result;
        asio::async_write(stream, asio::buffer(text),
                          [&](asio::error_code ec, size_t) { result = ec; });
        h.pump_until([&] { return result.has_value(); }, true, "the client's write");
        return *result;
    }

    // Reads until the server ends the connection; returns how it ended.
    asio::error_code wait_closed() { return read_to_end(h, stream); }

    template <typename Stream>
    static asio::error_code read_to_end(harness& h, Stream& s) {
        std::optional<asio::error_code> result;
        std::vector<char> sink(4096);
        std::function<void()> read = [&] {
            s.async_read_some(asio::buffer(sink), [&](asio::error_code ec, size_t) {
                if (ec) {
                    result = ec;
                } else {
                    read();
                }
            });
        };
        read();
        h.pump_until([&] { return result.has_value(); }, true, "the server to close");
        return *result;
    }
};

uint64_t rejected_tls(const sluice::tcp_source& s) { return s.connections()->rejected_tls.load(); }
uint64_t open_connections(const sluice::tcp_source& s) { return s.connections()->open.load(); }

}  // namespace

// ---------------------------------------------------------------------------------------- TLS

TEST_CASE("tls: lines sent over TLS arrive with their host and counters", "[tls]") {
    sluice::test::temp_dir dir("sluice-tls");
    const tls_certs certs(dir.path());
    harness h;
    sluice::tcp_source src("tls", sid, h.io, h.q, tls_source(certs));
    h.src = &src;
    src.start();

    tls_client c(h, certs);
    REQUIRE_FALSE(c.handshake(src.port()));
    CHECK(open_connections(src) == 1);
    constexpr size_t n = 2000;
    std::string text;
    for (size_t i = 0; i < n; ++i) {
        text += numbered("t", i) + (i % 2 ? "\r\n" : "\n");
    }
    REQUIRE_FALSE(c.send(text));
    h.pump_until([&] { return h.events.size() >= n; }, true, "every line");
    REQUIRE(h.events.size() == n);
    for (size_t i = 0; i < n; ++i) {
        INFO(i);
        REQUIRE(h.events[i].line == numbered("t", i));
        REQUIRE(h.events[i].host == "127.0.0.1");
    }
    CHECK(src.counters().events_total.load() == n);
    CHECK(src.counters().bytes_total.load() == text.size());  // the decrypted bytes
    CHECK(rejected_tls(src) == 0);

    c.stream.lowest_layer().close();
    h.pump_until([&] { return open_connections(src) == 0; }, true, "the connection to end");
    h.stop_and_settle();
    CHECK(h.events.size() == n);
}

TEST_CASE("tls: a client that writes and closes without reading loses nothing", "[tls]") {
    // A TLS 1.3 server's session tickets would wait unread at such a client, whose close then
    // resets the connection, and the kernel drops what sluice had not read yet.
    sluice::test::temp_dir dir("sluice-tls");
    const tls_certs certs(dir.path());
    harness h;
    sluice::tcp_source src("tls", sid, h.io, h.q, tls_source(certs));
    h.src = &src;
    src.start();

    constexpr size_t n = 100'000;  // ~6 MiB: more than the socket buffers hold
    std::string text;
    for (size_t i = 0; i < n; ++i) {
        text += numbered("w", i) + "\n";
    }
    {
        tls_client c(h, certs);
        REQUIRE_FALSE(c.handshake(src.port()));
        REQUIRE_FALSE(c.send(text));
        c.stream.lowest_layer().close();
    }
    h.pump_until([&] { return open_connections(src) == 0; }, true, "the connection to end");
    h.drain();
    REQUIRE(h.events.size() == n);
    CHECK(h.events.back().line == numbered("w", n - 1));
    CHECK(src.counters().bytes_total.load() == text.size());
    h.stop_and_settle();
}

TEST_CASE("tls: TLS 1.2 clients are served, TLS 1.1 ones cut off and counted", "[tls]") {
    sluice::test::temp_dir dir("sluice-tls");
    const tls_certs certs(dir.path());
    harness h;
    sluice::tcp_source src("tls", sid, h.io, h.q, tls_source(certs));
    h.src = &src;
    src.start();

    tls_client v12(h, certs);
    REQUIRE(SSL_set_max_proto_version(v12.stream.native_handle(), TLS1_2_VERSION) == 1);
    REQUIRE_FALSE(v12.handshake(src.port()));
    CHECK(std::string(SSL_get_version(v12.stream.native_handle())) == "TLSv1.2");
    REQUIRE_FALSE(v12.send("over TLS 1.2\n"));
    h.pump_until([&] { return h.events.size() == 1; }, true, "the TLS 1.2 client's line");

    // Security level 0, or OpenSSL 3 would not even offer TLS 1.1 from this side.
    tls_client v11(h, certs);
    SSL_set_security_level(v11.stream.native_handle(), 0);
    SSL_set_min_proto_version(v11.stream.native_handle(), TLS1_1_VERSION);
    SSL_set_max_proto_version(v11.stream.native_handle(), TLS1_1_VERSION);
    CHECK(v11.handshake(src.port()));
    h.pump_until([&] { return rejected_tls(src) == 1; }, true, "the TLS 1.1 client counted");
    CHECK(h.events.size() == 1);
    h.stop_and_settle();
}

TEST_CASE("tls: a plaintext client is cut off and counted while a TLS client goes on", "[tls]") {
    sluice::test::temp_dir dir("sluice-tls");
    const tls_certs certs(dir.path());
    harness h;
    sluice::tcp_source src("tls", sid, h.io, h.q, tls_source(certs));
    h.src = &src;
    src.start();

    tls_client good(h, certs);
    REQUIRE_FALSE(good.handshake(src.port()));
    REQUIRE_FALSE(good.send("before\n"));
    h.pump_until([&] { return h.events.size() == 1; }, true, "the TLS client's first line");

    asio::ip::tcp::socket plain(h.io);
    plain.connect(loopback(src.port()));
    asio::write(plain, asio::buffer(std::string("plain text is not a ClientHello\n")));
    const auto ended = tls_client::read_to_end(h, plain);
    CHECK((ended == asio::error::eof || ended == asio::error::connection_reset));
    h.pump_until([&] { return rejected_tls(src) == 1; }, true, "the plaintext client counted");
    h.pump_until([&] { return open_connections(src) == 1; }, true, "one connection left");

    REQUIRE_FALSE(good.send("after\n"));
    h.pump_until([&] { return h.events.size() == 2; }, true, "the TLS client's second line");
    CHECK(h.events[0].line == "before");
    CHECK(h.events[1].line == "after");
    CHECK(src.counters().events_total.load() == 2);  // nothing of the plaintext
    CHECK(src.connections()->idle_closed.load() == 0);
    h.stop_and_settle();
}

TEST_CASE("tls: verify_client serves the CA's clients and cuts off the others, counted", "[tls]") {
    sluice::test::temp_dir dir("sluice-tls");
    const tls_certs certs(dir.path());
    harness h;
    sluice::tcp_source src("mtls", sid, h.io, h.q, tls_source(certs, true));
    h.src = &src;
    src.start();

    // With TLS 1.3 the client's handshake finishes before the server has checked its
    // certificate: the refusal shows as the connection ending, without a line arriving.
    tls_client none(h, certs);
    none.handshake(src.port());
    none.send("no certificate\n");
    CHECK(none.wait_closed());
    h.pump_until([&] { return rejected_tls(src) == 1; }, true, "the client without a certificate");

    tls_client stranger(h, certs, certs.other_client, certs.other_client_key);
    stranger.handshake(src.port());
    stranger.send("another CA's certificate\n");
    CHECK(stranger.wait_closed());
    h.pump_until([&] { return rejected_tls(src) == 2; }, true, "the other CA's client");

    tls_client member(h, certs, certs.client, certs.client_key);
    REQUIRE_FALSE(member.handshake(src.port()));
    REQUIRE_FALSE(member.send("signed by the CA\n"));
    h.pump_until([&] { return h.events.size() == 1; }, true, "the CA's client's line");
    CHECK(h.events[0].line == "signed by the CA");
    CHECK(open_connections(src) == 1);
    h.stop_and_settle();
    CHECK(h.events.size() == 1);
    CHECK(rejected_tls(src) == 2);
}

TEST_CASE("tls: ca without verify_client asks for a certificate but does not require one",
          "[tls]") {
    sluice::test::temp_dir dir("sluice-tls");
    const tls_certs certs(dir.path());
    harness h;
    sluice::tcp_source src("tls", sid, h.io, h.q, tls_source(certs, false));
    h.src = &src;
    src.start();

    tls_client anonymous(h, certs);
    REQUIRE_FALSE(anonymous.handshake(src.port()));
    REQUIRE_FALSE(anonymous.send("anonymous\n"));
    tls_client member(h, certs, certs.client, certs.client_key);
    REQUIRE_FALSE(member.handshake(src.port()));
    REQUIRE_FALSE(member.send("member\n"));
    h.pump_until([&] { return h.events.size() == 2; }, true, "both clients' lines");

    // A certificate that is presented must still be the CA's.
    tls_client stranger(h, certs, certs.other_client, certs.other_client_key);
    stranger.handshake(src.port());
    stranger.send("stranger\n");
    CHECK(stranger.wait_closed());
    h.pump_until([&] { return rejected_tls(src) == 1; }, true, "the other CA's client");
    h.stop_and_settle();
    std::vector<std::string> lines;
    for (const auto& e : h.events) {
        lines.push_back(e.line);
    }
    std::sort(lines.begin(), lines.end());
    CHECK(lines == std::vector<std::string>{"anonymous", "member"});
}

TEST_CASE("tls: a handshake that does not finish in handshake_timeout is cut off and counted",
          "[tls]") {
    sluice::test::temp_dir dir("sluice-tls");
    const tls_certs certs(dir.path());
    harness h;
    auto cfg = tls_source(certs);
    cfg.handshake_timeout = 200ms;
    sluice::tcp_source src("tls", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();

    // Connects and sends nothing: no ClientHello ever comes.
    const auto began = clk::now();
    asio::ip::tcp::socket silent(h.io);
    silent.connect(loopback(src.port()));
    h.pump_until([&] { return open_connections(src) == 1; }, true, "the silent connection");
    // A TLS client meanwhile is served at once, and is not cut off with it.
    tls_client good(h, certs);
    REQUIRE_FALSE(good.handshake(src.port()));
    CHECK(tls_client::read_to_end(h, silent) == asio::error::eof);
    const auto waited = clk::now() - began;
    CHECK(waited >= 200ms);
    CHECK(waited < 5s);
    h.pump_until([&] { return rejected_tls(src) == 1; }, true, "the timeout counted");
    h.pump_until([&] { return open_connections(src) == 1; }, true, "the silent one gone");

    // The handshake's deadline does not outlive the handshake: the TLS client stays.
    const auto until = clk::now() + 400ms;
    h.pump_until([&] { return clk::now() > until; }, true, "twice the handshake timeout");
    REQUIRE_FALSE(good.send("still here\n"));
    h.pump_until([&] { return h.events.size() == 1; }, true, "the TLS client's line");
    CHECK(h.events[0].line == "still here");
    CHECK(rejected_tls(src) == 1);
    h.stop_and_settle();
}

TEST_CASE("tls: a full queue pauses reading through TLS, and resume delivers everything once",
          "[tls]") {
    sluice::test::temp_dir dir("sluice-tls");
    const tls_certs certs(dir.path());
    harness h(small_queue(4096));
    auto cfg = tls_source(certs);
    cfg.read_bytes = 1024;
    cfg.idle_timeout = 200ms;  // paused far longer than this: it must not count as idleness
    sluice::tcp_source src("tls", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();

    tls_client c(h, certs);
    REQUIRE_FALSE(c.handshake(src.port()));
    constexpr size_t n = 4000;
    std::string text;
    for (size_t i = 0; i < n; ++i) {
        text += numbered("p", i) + "\n";
    }
    std::optional<asio::error_code> written;
    asio::async_write(c.stream, asio::buffer(text),
                      [&](asio::error_code ec, size_t) { written = ec; });

    // Nobody reads: the source must pause, and stay paused past idle_timeout.
    h.pump_until([&] { return src.counters().paused.load(); }, false, "the source to pause");
    const uint64_t bytes_at_pause = src.counters().bytes_total.load();
    CHECK(bytes_at_pause < text.size());
    const auto until = clk::now() + 1s;
    h.pump_until([&] { return clk::now() > until; }, false, "five idle timeouts of pause");
    INFO(h.state());
    CHECK(src.counters().paused.load());
    CHECK(src.counters().bytes_total.load() == bytes_at_pause);
    CHECK(src.connections()->idle_closed.load() == 0);

    h.pump_until([&] { return h.events.size() >= n; }, true, "every line after resuming");
    h.pump_until([&] { return written.has_value(); }, true, "the client's write");
    CHECK(!*written);
    REQUIRE(h.events.size() == n);
    size_t wrong = 0;
    for (size_t i = 0; i < n; ++i) {
        if (h.events[i].line != numbered("p", i) && wrong++ == 0) {
            FAIL_CHECK("line " << i << " is '" << h.events[i].line << "'");
        }
    }
    CHECK(wrong == 0);
    CHECK(src.counters().bytes_total.load() == text.size());
    CHECK(src.connections()->idle_closed.load() == 0);
    CHECK(open_connections(src) == 1);
    h.stop_and_settle();
    CHECK(h.events.size() == n);
}

TEST_CASE("tls: a bad certificate, key or CA is an error naming the key and the file", "[tls]") {
    sluice::test::temp_dir dir("sluice-tls");
    const tls_certs certs(dir.path());
    const std::string garbage = (dir.path() / "garbage.pem").string();
    std::ofstream(garbage) << "not a certificate\n";
    const std::string missing = (dir.path() / "missing.pem").string();
    harness h;
    auto make = [&](sluice::tls_config tls) {
        sluice::tcp_source_config cfg;
        cfg.address = "127.0.0.1:0";
        cfg.tls = tls;
        sluice::tcp_source src("app", sid, h.io, h.q, cfg);
    };
    using Catch::Matchers::Contains;
    CHECK_THROWS_WITH(make({missing, certs.server_key, "", false}),
                      Contains("source app: tls.cert '" + missing + "'") &&
                          Contains("No such file or directory"));
    CHECK_THROWS_WITH(make({garbage, certs.server_key, "", false}),
                      Contains("tls.cert '" + garbage + "': not a PEM certificate"));
    CHECK_THROWS_WITH(make({certs.server, missing, "", false}),
                      Contains("tls.key '" + missing + "'"));
    CHECK_THROWS_WITH(make({certs.server, garbage, "", false}),
                      Contains("tls.key '" + garbage + "': not an unencrypted PEM private key"));
    // An encrypted key fails at once: no passphrase prompt on the terminal.
    const std::string encrypted = (dir.path() / "encrypted.key").string();
    REQUIRE(std::system(("openssl pkey -in '" + certs.server_key + "' -aes256 -passout " +
                         "pass:secret -out '" + encrypted + "' 2>/dev/null")
                            .c_str()) == 0);
    CHECK_THROWS_WITH(make({certs.server, encrypted, "", false}),
                      Contains("tls.key '" + encrypted + "': not an unencrypted PEM private key"));
    CHECK_THROWS_WITH(
        make({certs.server, certs.client_key, "", false}),
        Contains("tls.key '" + certs.client_key + "': does not match the certificate in tls.cert"));
    CHECK_THROWS_WITH(make({certs.server, certs.server_key, garbage, true}),
                      Contains("tls.ca '" + garbage + "'"));
    CHECK_THROWS_WITH(make({certs.server, certs.server_key, "", true}),
                      Contains("tls.verify_client needs tls.ca"));
    // A key file's contents never reach a message, even a key that does not fit.
    try {
        make({certs.server, certs.client_key, "", false});
    } catch (const std::exception& e) {
        CHECK(std::string(e.what()).find("PRIVATE KEY") == std::string::npos);
    }
    CHECK_NOTHROW(make({certs.server, certs.server_key, certs.ca, true}));
}

// ------------------------------------------------------------------------------- idle_timeout

TEST_CASE(
    "idle_timeout closes a slow-drip connection and pushes its partial line, while "
    "others go on",
    "[tls]") {
    harness h;
    sluice::tcp_source_config cfg;
    cfg.address = "127.0.0.1:0";
    cfg.idle_timeout = 300ms;
    sluice::tcp_source src("tcp", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();

    asio::ip::tcp::socket drip(h.io);
    asio::ip::tcp::socket steady(h.io);
    drip.connect(loopback(src.port()));
    steady.connect(loopback(src.port()));
    const auto began = clk::now();
    std::optional<asio::error_code> drip_closed;
    char byte = 0;
    drip.async_read_some(asio::buffer(&byte, 1),
                         [&](asio::error_code ec, size_t) { drip_closed = ec; });
    // One byte every 50 ms and never a newline; a whole line every 100 ms on the other.
    size_t dripped = 0;
    size_t lines = 0;
    auto next_drip = clk::now();
    auto next_line = clk::now();
    while (!drip_closed && clk::now() - began < 5s) {
        h.pump();
        h.drain();
        if (clk::now() >= next_drip) {
            asio::write(drip, asio::buffer("x", 1));
            ++dripped;
            next_drip += 50ms;
        }
        if (clk::now() >= next_line) {
            asio::write(steady, asio::buffer(numbered("s", lines++) + "\n"));
            next_line += 100ms;
        }
    }
    const auto waited = clk::now() - began;
    REQUIRE(drip_closed.has_value());
    // A byte that crossed the close makes it a reset.
    CHECK((*drip_closed == asio::error::eof || *drip_closed == asio::error::connection_reset));
    CHECK(waited >= 300ms);
    CHECK(waited < 2s);
    CHECK(dripped > 3);
    h.pump_until([&] { return src.connections()->idle_closed.load() == 1; }, true,
                 "the close counted");
    h.pump_until([&] { return open_connections(src) == 1; }, true, "one connection left");

    // The steady client outlives many idle timeouts while it completes lines.
    const auto until = clk::now() + 1s;
    while (clk::now() < until) {
        h.pump();
        h.drain();
        if (clk::now() >= next_line) {
            asio::write(steady, asio::buffer(numbered("s", lines++) + "\n"));
            next_line += 100ms;
        }
    }
    h.pump_until([&] { return h.events.size() >= lines + 1; }, true, "every line");
    CHECK(open_connections(src) == 1);
    CHECK(src.connections()->idle_closed.load() == 1);

    // The drip's partial line was pushed when it was closed: what arrived of it, whole.
    std::vector<std::string> steady_lines;
    std::optional<std::string> partial;
    for (const auto& e : h.events) {
        if (e.line.starts_with("s-")) {
            steady_lines.push_back(e.line);
        } else {
            CHECK_FALSE(partial.has_value());
            partial = e.line;
        }
    }
    REQUIRE(partial.has_value());
    CHECK(*partial == std::string(partial->size(), 'x'));
    CHECK(partial->size() >= dripped - 1);  // the last byte may have crossed the close
    REQUIRE(steady_lines.size() == lines);
    for (size_t i = 0; i < lines; ++i) {
        CHECK(steady_lines[i] == numbered("s", i));
    }
    h.stop_and_settle();
}

TEST_CASE("idle_timeout closes a TLS connection that completes no line", "[tls]") {
    sluice::test::temp_dir dir("sluice-tls");
    const tls_certs certs(dir.path());
    harness h;
    auto cfg = tls_source(certs);
    cfg.idle_timeout = 300ms;
    sluice::tcp_source src("tls", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();

    tls_client c(h, certs);
    REQUIRE_FALSE(c.handshake(src.port()));
    const auto began = clk::now();
    REQUIRE_FALSE(c.send("one line\nthen half a"));
    c.wait_closed();
    const auto waited = clk::now() - began;
    CHECK(waited >= 300ms);
    CHECK(waited < 2s);
    h.pump_until([&] { return src.connections()->idle_closed.load() == 1; }, true,
                 "the close counted");
    h.pump_until([&] { return h.events.size() == 2; }, true, "the line and the partial one");
    CHECK(h.events[0].line == "one line");
    CHECK(h.events[1].line == "then half a");
    CHECK(rejected_tls(src) == 0);  // closed for idleness, not refused
    CHECK(open_connections(src) == 0);
    h.stop_and_settle();
}

TEST_CASE("idle_timeout 0 (the default) never closes a quiet connection", "[tls]") {
    harness h;
    sluice::tcp_source_config cfg;
    cfg.address = "127.0.0.1:0";
    sluice::tcp_source src("tcp", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();
    asio::ip::tcp::socket quiet(h.io);
    quiet.connect(loopback(src.port()));
    asio::write(quiet, asio::buffer(std::string("half")));
    const auto until = clk::now() + 500ms;
    h.pump_until([&] { return clk::now() > until; }, true, "half a second");
    CHECK(open_connections(src) == 1);
    asio::write(quiet, asio::buffer(std::string(" and the rest\n")));
    h.pump_until([&] { return h.events.size() == 1; }, true, "the line");
    CHECK(h.events[0].line == "half and the rest");
    CHECK(src.connections()->idle_closed.load() == 0);
    h.stop_and_settle();
}

TEST_CASE("idle_timeout: time paused by a full queue is not the client's idleness", "[tls]") {
    harness h(small_queue(4096));
    sluice::tcp_source_config cfg;
    cfg.address = "127.0.0.1:0";
    cfg.read_bytes = 1024;
    cfg.idle_timeout = 200ms;
    sluice::tcp_source src("tcp", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();

    constexpr size_t n = 4000;
    std::string text;
    for (size_t i = 0; i < n; ++i) {
        text += numbered("p", i) + "\n";
    }
    asio::ip::tcp::socket c(h.io);
    c.connect(loopback(src.port()));
    std::optional<asio::error_code> written;
    asio::async_write(c, asio::buffer(text), [&](asio::error_code ec, size_t) { written = ec; });
    h.pump_until([&] { return src.counters().paused.load(); }, false, "the source to pause");
    const auto until = clk::now() + 1s;
    h.pump_until([&] { return clk::now() > until; }, false, "five idle timeouts of pause");
    CHECK(src.counters().paused.load());
    CHECK(src.connections()->idle_closed.load() == 0);

    h.pump_until([&] { return written.has_value(); }, true, "the client's write");
    h.pump_until([&] { return h.events.size() >= n; }, true, "every line after resuming");
    CHECK(h.events.size() == n);
    CHECK(src.connections()->idle_closed.load() == 0);
    // Once it has nothing more to say, the client is idle for real.
    h.pump_until([&] { return src.connections()->idle_closed.load() == 1; }, true,
                 "the quiet client closed");
    h.stop_and_settle();
    CHECK(h.events.size() == n);
}

// ------------------------------------------------------------------------------------- config

TEST_CASE("tls and idle_timeout round-trip from the config", "[tls][config]") {
    const auto c = sluice::parse_config(R"toml([sources.secure]
type = "tcp"
idle_timeout = "90s"
[sources.secure.tls]
cert = "/etc/sluice/server.pem"
key = "certs/server.key"
ca = "ca.pem"
verify_client = true
[sinks.out]
type = "file"
)toml",
                                        "test.toml");
    const auto& tcp = c.sources[0].get<sluice::tcp_source_config>();
    CHECK(tcp.idle_timeout == 90s);
    REQUIRE(tcp.tls.has_value());
    CHECK(tcp.tls->cert == "/etc/sluice/server.pem");
    CHECK(tcp.tls->key == "certs/server.key");  // a config given as text: the working directory
    CHECK(tcp.tls->ca == "ca.pem");
    CHECK(tcp.tls->verify_client);
    CHECK(tcp.handshake_timeout == 10s);

    const auto plain = sluice::parse_config(std::string(sluice::test::minimal), "test.toml");
    const auto& defaults = plain.sources[0].get<sluice::tcp_source_config>();
    CHECK_FALSE(defaults.tls.has_value());
    CHECK(defaults.idle_timeout == 0s);
}

TEST_CASE("tls paths are relative to the config file's directory", "[tls][config]") {
    sluice::test::temp_dir dir("sluice-tls-config");
    const auto config_dir = dir.path() / "etc";
    std::filesystem::create_directories(config_dir);
    const auto file = config_dir / "sluice.toml";
    std::ofstream(file) << R"toml([sources.secure]
type = "tcp"
tls = { cert = "certs/server.pem", key = "/abs/server.key" }
[sinks.out]
type = "file"
)toml";
    const auto c = sluice::load_config(file);
    const auto& tls = *c.sources[0].get<sluice::tcp_source_config>().tls;
    CHECK(tls.cert == (config_dir / "certs/server.pem").string());
    CHECK(tls.key == "/abs/server.key");
    CHECK(tls.ca.empty());
    CHECK_FALSE(tls.verify_client);
}

TEST_CASE("bad tls and idle_timeout values are config errors with their keys", "[tls][config]") {
    using sluice::test::contains;
    using sluice::test::minimal;
    using sluice::test::only_problem;
    auto with = [](const std::string& lines) {
        return std::string(minimal) + "[sources.s]\ntype = \"tcp\"\naddress = \"127.0.0.1:0\"\n" +
               lines;
    };
    auto p = only_problem(with("tls = { key = \"k.pem\" }\n"));
    CHECK(p.key == "sources.s.tls.cert");
    CHECK(p.message == "is required with tls (the server's certificate, a PEM file)");

    p = only_problem(with("tls = { cert = \"c.pem\", key = \"k.pem\", verify_client = true }\n"));
    CHECK(p.key == "sources.s.tls.verify_client");
    CHECK(contains(p.message, "needs ca"));

    p = only_problem(with("tls = { cert = \"c.pem\", key = \"k.pem\", cafile = \"ca.pem\" }\n"));
    CHECK(p.key == "sources.s.tls.cafile");
    CHECK(contains(p.message,
                   "unknown key 'cafile' (expected one of: cert, key, ca, verify_client)"));

    p = only_problem(with("tls = { cert = \"\", key = \"k.pem\" }\n"));
    CHECK(p.key == "sources.s.tls.cert");

    p = only_problem(with("tls = \"on\"\n"));
    CHECK(p.key == "sources.s.tls");

    p = only_problem(with("idle_timeout = 30\n"));
    CHECK(p.key == "sources.s.idle_timeout");
    CHECK(contains(p.message, "duration"));
}
