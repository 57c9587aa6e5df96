// The io_pool and the TCP and UDP sources on several io threads, for real: a pool of three
// loops running on their own threads, real client sockets on 127.0.0.1, and a real
// bounded_queue whose one sink slot the test thread plays. The queue's resume callback calls resume() as
// app/pipeline.cpp does. scripts/test runs them under ThreadSanitizer with the other unit tests.
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/ssl.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>

#include "ingest/io_pool.h"
#include "ingest/tcp_source.h"
#include "ingest/udp_source.h"
#include "queue/bounded_queue.h"
#include "tests/source_harness.h"
#include "tests/temp_dir.h"
#include "tests/tls_certs.h"

using namespace std::chrono_literals;
using sluice::test::small_queue;

namespace {

using clk = std::chrono::steady_clock;

// A pool running on a thread of the test, and the source on it; start and stop go through the
// home loop, as in the pipeline.
template <typename Source>
struct pooled {
    sluice::io_pool pool;
    sluice::bounded_queue q;
    std::unique_ptr<Source> src;
    std::thread runner;
    uint64_t cursor = 0;

    template <typename Config>
    pooled(size_t threads, sluice::queue_config qc, Config cfg)
        : pool(threads), q(qc, 1, {{true}}) {
        cfg.address = "127.0.0.1:0";
        src = std::make_unique<Source>("src", 0, pool.home(), q, cfg, pool.loops());
        q.set_resume_callback([this] { src->resume(); });
        std::promise<void> started;
        asio::post(pool.home(), [&] {
            src->start();
            started.set_value();
        });
        runner = std::thread([this] { pool.run(); });
        started.get_future().wait();
    }

    ~pooled() {
        asio::post(pool.home(), [this] { pool.stop(); });
        runner.join();
    }

    uint16_t port() {
        std::promise<uint16_t> p;
        asio::post(pool.home(), [&] { p.set_value(src->port()); });
        return p.get_future().get();
    }

    // Plays the sink: takes what is queued, appends each line to its origin's list, commits.
    size_t drain(std::map<std::string, std::vector<std::string>>& by_origin) {
        std::vector<sluice::batch_ptr> out;
        if (q.read_until(0, cursor, clk::now(), out, UINT64_MAX, UINT64_MAX) !=
            sluice::read_result::ok) {
            return 0;
        }
        size_t n = 0;
        for (const auto& b : out) {
            for (size_t i = 0; i < b->event_count(); ++i) {
                by_origin[b->origin].emplace_back(b->line(i));
                ++n;
            }
        }
        q.commit(0, cursor);
        return n;
    }

    void stop_and_wait_idle(std::map<std::string, std::vector<std::string>>& by_origin) {
        asio::post(pool.home(), [this] { src->stop(); });
        const auto deadline = clk::now() + 20s;
        while (!src->idle()) {
            REQUIRE(clk::now() < deadline);
            drain(by_origin);
            std::this_thread::sleep_for(1ms);
        }
        drain(by_origin);
    }
};

struct pooled_tcp : pooled<sluice::tcp_source> {
    pooled_tcp(size_t threads, sluice::queue_config qc, sluice::tcp_source_config cfg = {})
        : pooled(threads, qc, with_small_reads(cfg)) {}

    static sluice::tcp_source_config with_small_reads(sluice::tcp_source_config cfg) {
        cfg.read_bytes = 4096;
        return cfg;
    }
};

std::string line_of(size_t client, size_t i) {
    return "c" + std::to_string(client) + "-" + std::to_string(i) +
           " sshd(pam_unix)[24200]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh";
}

// A blocking client on its own thread that sends `lines` lines and closes.
struct client {
    asio::io_context io;
    asio::ip::tcp::socket socket{io};
    std::string origin;
    std::thread sender;
    std::atomic<bool> done{false};
    std::atomic<bool> failed{false};

    client(uint16_t port, size_t index, size_t lines) {
        socket.connect({asio::ip::make_address("127.0.0.1"), port});
        // A small send buffer: what the client's kernel holds for a stalled reader stays small.
        socket.set_option(asio::socket_base::send_buffer_size(64 * 1024));
        const auto ep = socket.local_endpoint();
        origin = ep.address().to_string() + ":" + std::to_string(ep.port());
        sender = std::thread([this, index, lines] {
            std::string text;
            for (size_t i = 0; i < lines; ++i) {
                text += line_of(index, i);
                text += '\n';
            }
            asio::error_code ec;
            asio::write(socket, asio::buffer(text), ec);
            failed = static_cast<bool>(ec);
            socket.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
            done = true;
        });
    }
    ~client() { sender.join(); }
};

}  // namespace

TEST_CASE("io_pool: threads = 0 is one loop per core, and run() ends on stop()", "[io_threads]") {
    sluice::io_pool automatic(0);
    CHECK(automatic.size() == sluice::io_pool::cores());
    sluice::io_pool pool(3);
    REQUIRE(pool.size() == 3);
    std::atomic<int> ran{0};
    for (size_t i = 0; i < pool.size(); ++i) {
        asio::post(pool.loop(i), [&] { ++ran; });
    }
    // Every loop, the home one too, keeps running with nothing to do until stop().
    std::thread later([&] {
        std::this_thread::sleep_for(50ms);
        asio::post(pool.loop(2), [&] {
            ++ran;
            asio::post(pool.home(), [&] { pool.stop(); });
        });
    });
    pool.run();
    later.join();
    CHECK(ran == 4);
}

TEST_CASE("tcp source on 3 io threads: connections spread, a full queue pauses every one of "
          "them, resume delivers everything once and in order",
          "[io_threads]") {
    constexpr size_t clients = 9;
    // ~4 MB per client: more than the queue and both kernels' socket buffers hold, so a
    // client still has lines to send when its connection stops reading.
    constexpr size_t lines = 36000;
    pooled_tcp t(3, small_queue(64 * 1024));
    const uint16_t port = t.port();
    std::vector<std::unique_ptr<client>> cs;
    for (size_t i = 0; i < clients; ++i) {
        cs.push_back(std::make_unique<client>(port, i, lines));
    }
    // Accepted and handed out, least loaded lane first: 3 each.
    const auto spread_deadline = clk::now() + 20s;
    while (t.src->connections()->open.load() < clients) {
        REQUIRE(clk::now() < spread_deadline);
        std::this_thread::sleep_for(1ms);
    }
    CHECK(t.src->connections_per_lane() == std::vector<size_t>{3, 3, 3});

    // Nobody drains: the queue fills, and every connection on every lane stops reading.
    const auto pause_deadline = clk::now() + 30s;
    while (!t.src->counters().paused.load()) {
        REQUIRE(clk::now() < pause_deadline);
        std::this_thread::sleep_for(1ms);
    }
    // Each lane pauses at its own next push, and a read already under way completes: wait
    // until the bytes read stop moving, then hold them still for half a second.
    uint64_t bytes_stalled = t.src->counters().bytes_total.load();
    for (auto since = clk::now(); clk::now() - since < 300ms;) {
        REQUIRE(clk::now() < pause_deadline);
        std::this_thread::sleep_for(10ms);
        const uint64_t now = t.src->counters().bytes_total.load();
        if (now != bytes_stalled) {
            bytes_stalled = now;
            since = clk::now();
        }
    }
    std::this_thread::sleep_for(500ms);
    CHECK(t.src->counters().bytes_total.load() == bytes_stalled);
    CHECK(t.src->counters().paused.load());
    CHECK(t.q.blocked_guess());
    size_t finished = 0;
    for (const auto& c : cs) {
        finished += c->done.load();
    }
    CHECK(finished == 0);

    // The sink drains; resume reaches every lane; each client's lines arrive once, in order.
    std::map<std::string, std::vector<std::string>> by_origin;
    size_t got = 0;
    const auto drain_deadline = clk::now() + 60s;
    while (got < clients * lines) {
        INFO("got " << got << " of " << clients * lines);
        REQUIRE(clk::now() < drain_deadline);
        got += t.drain(by_origin);
        std::this_thread::sleep_for(100us);
    }
    for (const auto& c : cs) {
        c->sender.join();
        c->sender = std::thread([] {});
        CHECK_FALSE(c->failed.load());
    }
    t.stop_and_wait_idle(by_origin);
    REQUIRE(by_origin.size() == clients);
    for (size_t i = 0; i < clients; ++i) {
        const auto& got_lines = by_origin[cs[i]->origin];
        REQUIRE(got_lines.size() == lines);
        size_t wrong = 0;
        for (size_t j = 0; j < lines; ++j) {
            wrong += got_lines[j] != line_of(i, j);
        }
        CHECK(wrong == 0);
    }
    CHECK(t.src->counters().events_total.load() == clients * lines);
    CHECK_FALSE(t.src->counters().paused.load());
    CHECK(t.src->counters().backpressure_ns_total.load() > 0);
}

TEST_CASE("tcp source on 4 io threads: stop() ends every connection on every lane and pushes "
          "each partial line",
          "[io_threads]") {
    pooled_tcp t(4, small_queue(16 << 20));
    const uint16_t port = t.port();
    constexpr size_t clients = 8;
    asio::io_context io;  // before the sockets, which must go first
    std::vector<asio::ip::tcp::socket> sockets;
    for (size_t i = 0; i < clients; ++i) {
        sockets.emplace_back(io);
        sockets.back().connect({asio::ip::make_address("127.0.0.1"), port});
        // One whole line and one without its newline: stop() must push both.
        asio::write(sockets.back(),
                    asio::buffer(line_of(i, 0) + "\n" + line_of(i, 1)));
    }
    std::map<std::string, std::vector<std::string>> by_origin;
    const auto deadline = clk::now() + 20s;
    size_t got = 0;
    while (got < clients) {
        REQUIRE(clk::now() < deadline);
        got += t.drain(by_origin);
        std::this_thread::sleep_for(1ms);
    }
    CHECK(t.src->connections_per_lane() == std::vector<size_t>{2, 2, 2, 2});
    t.stop_and_wait_idle(by_origin);
    CHECK(t.src->connections()->open.load() == 0);
    size_t total = 0;
    for (const auto& [origin, got_lines] : by_origin) {
        REQUIRE(got_lines.size() == 2);
        CHECK(got_lines[1].starts_with(got_lines[0].substr(0, got_lines[0].find('-'))));
        total += got_lines.size();
    }
    CHECK(total == 2 * clients);
}

TEST_CASE("TLS connections on 3 io threads: each loop runs its own handshakes and reads",
          "[io_threads][tls]") {
    sluice::test::temp_dir dir("sluice-io-tls");
    const sluice::test::tls_certs certs(dir.path());
    sluice::tcp_source_config cfg;
    cfg.tls = sluice::tls_config{certs.server, certs.server_key, certs.ca, false};
    pooled_tcp t(3, small_queue(16 << 20), cfg);
    const uint16_t port = t.port();
    constexpr size_t clients = 6;
    constexpr size_t lines = 2000;
    std::vector<std::string> origins(clients);
    std::vector<std::thread> senders;
    std::atomic<size_t> failures{0};
    for (size_t i = 0; i < clients; ++i) {
        senders.emplace_back([&, i] {
            asio::io_context io;
            asio::ssl::context ctx(asio::ssl::context::tls_client);
            ctx.load_verify_file(certs.ca);
            ctx.set_verify_mode(asio::ssl::verify_peer);
            asio::ssl::stream<asio::ip::tcp::socket> stream(io, ctx);
            asio::error_code ec;
            stream.lowest_layer().connect({asio::ip::make_address("127.0.0.1"), port}, ec);
            if (!ec) {
                const auto ep = stream.lowest_layer().local_endpoint();
                origins[i] = ep.address().to_string() + ":" + std::to_string(ep.port());
                stream.handshake(asio::ssl::stream_base::client, ec);
            }
            std::string text;
            for (size_t j = 0; j < lines; ++j) {
                text += line_of(i, j) + "\n";
            }
            if (!ec) {
                asio::write(stream, asio::buffer(text), ec);
            }
            if (!ec) {
                stream.shutdown(ec);  // close_notify; the server may close first
                ec = {};
            }
            failures += static_cast<bool>(ec);
        });
    }
    std::map<std::string, std::vector<std::string>> by_origin;
    size_t got = 0;
    const auto deadline = clk::now() + 60s;
    while (got < clients * lines) {
        INFO("got " << got << " of " << clients * lines);
        REQUIRE(clk::now() < deadline);
        got += t.drain(by_origin);
        std::this_thread::sleep_for(1ms);
    }
    for (auto& s : senders) {
        s.join();
    }
    CHECK(failures == 0);
    t.stop_and_wait_idle(by_origin);
    for (size_t i = 0; i < clients; ++i) {
        const auto& got_lines = by_origin[origins[i]];
        REQUIRE(got_lines.size() == lines);
        CHECK(got_lines.front() == line_of(i, 0));
        CHECK(got_lines.back() == line_of(i, lines - 1));
    }
    CHECK(t.src->connections()->rejected_tls.load() == 0);
}

TEST_CASE("udp source on 3 io threads: one socket per loop in a SO_REUSEPORT group, senders "
          "spread over them, each sender's datagrams arrive once and in order",
          "[io_threads]") {
    // 48 senders, each from its own port: the kernel hashes each to one socket of the group,
    // and the chance that one of three sockets gets none of them is 3 * (2/3)^48, about 1e-8.
    constexpr size_t senders = 48;
    constexpr size_t datagrams = 100;
    sluice::udp_source_config cfg;
    cfg.receive_buffer_bytes = 4 << 20;  // 4,800 datagrams of ~100 bytes fit many times over
    pooled<sluice::udp_source> t(3, small_queue(16 << 20), cfg);
    std::promise<uint16_t> port_promise;
    asio::post(t.pool.home(), [&] { port_promise.set_value(t.src->port()); });
    const uint16_t port = port_promise.get_future().get();
    REQUIRE(port != 0);

    // The port is the group's: another source cannot take it, whether with one loop or several.
    {
        asio::io_context io;
        sluice::bounded_queue other_q(small_queue(1 << 20), 1, {{true}});
        sluice::udp_source_config same = cfg;
        same.address = "127.0.0.1:" + std::to_string(port);
        sluice::udp_source alone("alone", 0, io, other_q, same);
        CHECK_THROWS_WITH(alone.start(), Catch::Contains("cannot listen on udp"));
        asio::io_context other_loop;
        sluice::udp_source pooled_too("pooled", 0, io, other_q, same, {&io, &other_loop});
        CHECK_THROWS_WITH(pooled_too.start(), Catch::Contains("cannot listen on udp"));
    }

    asio::io_context client_io;
    const asio::ip::udp::endpoint to(asio::ip::make_address("127.0.0.1"), port);
    std::vector<asio::ip::udp::socket> sockets;
    for (size_t s = 0; s < senders; ++s) {
        sockets.emplace_back(client_io,
                             asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    }
    for (size_t i = 0; i < datagrams; ++i) {
        for (size_t s = 0; s < senders; ++s) {
            sockets[s].send_to(asio::buffer(line_of(s, i)), to);
        }
    }

    std::map<std::string, std::vector<std::string>> by_origin;
    const auto deadline = clk::now() + 20s;
    size_t received = 0;
    while (received < senders * datagrams) {
        REQUIRE(clk::now() < deadline);
        received += t.drain(by_origin);
        std::this_thread::sleep_for(1ms);
    }
    t.stop_and_wait_idle(by_origin);
    CHECK(t.src->counters().kernel_drops_total.load() == 0);

    // Every socket of the group read some, and together they read each datagram once.
    const std::vector<uint64_t> per_loop = t.src->datagrams_per_loop();
    REQUIRE(per_loop.size() == 3);
    uint64_t total = 0;
    for (uint64_t n : per_loop) {
        CHECK(n > 0);
        total += n;
    }
    CHECK(total == senders * datagrams);

    // All senders are 127.0.0.1: tell them apart by the line, and find each one's in order.
    REQUIRE(by_origin.size() == 1);
    std::map<size_t, std::vector<size_t>> per_sender;
    for (const std::string& line : by_origin.begin()->second) {
        const size_t dash = line.find('-');
        const size_t space = line.find(' ');
        REQUIRE(line[0] == 'c');
        REQUIRE(dash != std::string::npos);
        REQUIRE(space != std::string::npos);
        per_sender[std::stoul(line.substr(1, dash - 1))].push_back(
            std::stoul(line.substr(dash + 1, space - dash - 1)));
    }
    REQUIRE(per_sender.size() == senders);
    for (const auto& [sender, seen] : per_sender) {
        INFO("sender " << sender);
        REQUIRE(seen.size() == datagrams);
        for (size_t i = 0; i < datagrams; ++i) {
            CHECK(seen[i] == i);
        }
    }
}
