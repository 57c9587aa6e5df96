// Tests for the sources (tcp, udp, zmq, generator) run for real: each on a real io_context,
// pumped in the test thread, pushing into a real bounded_queue whose one sink slot the test
// plays (read_until + commit), fed by real sockets on 127.0.0.1. Backpressure goes through
// the same resume path as app/pipeline.cpp: the queue's resume callback posts resume() to
// the io thread.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>
#include <zmq.hpp>

#include "ingest/generator_source.h"
#include "ingest/tcp_source.h"
#include "ingest/udp_source.h"
#include "ingest/zmq_source.h"
#include "queue/bounded_queue.h"
#include "tests/source_harness.h"

using namespace std::chrono_literals;
using sluice::batch_ptr;
using sluice::bounded_queue;
using sluice::codec_kind;
using sluice::drop_reason;
using sluice::overflow_policy;
using sluice::queue_config;
using clk = std::chrono::steady_clock;

namespace {

constexpr sluice::source_id sid = 0;
using sluice::test::harness;
using sluice::test::small_queue;
using sluice::test::watchdog;

uint16_t free_tcp_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

std::string local_origin(const asio::ip::tcp::socket& s) {
    const auto ep = s.local_endpoint();
    return ep.address().to_string() + ":" + std::to_string(ep.port());
}

asio::ip::tcp::endpoint loopback_tcp(uint16_t port) {
    return {asio::ip::make_address("127.0.0.1"), port};
}

std::string numbered(const std::string& prefix, size_t i) {
    return prefix + "-" + std::to_string(i) + " the quick brown fox jumps over the lazy dog";
}

}  // namespace

// ---------------------------------------------------------------------------------------- tcp

TEST_CASE("tcp source: lines from two clients arrive with their host, origin and counters",
          "[sources]") {
    harness h;
    sluice::tcp_source_config cfg;
    cfg.address = "127.0.0.1:0";
    sluice::tcp_source src("tcp", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();
    REQUIRE(src.port() != 0);

    asio::ip::tcp::socket a(h.io);
    asio::ip::tcp::socket b(h.io);
    a.connect(loopback_tcp(src.port()));
    b.connect(loopback_tcp(src.port()));
    constexpr size_t n = 200;
    std::string text_a;
    std::string text_b;
    for (size_t i = 0; i < n; ++i) {
        text_a += numbered("a", i) + "\n";
        text_b += numbered("b", i) + "\r\n";
    }
    asio::write(a, asio::buffer(text_a));
    asio::write(b, asio::buffer(text_b));
    h.pump_until([&] { return h.events.size() >= 2 * n; }, true, "both clients' lines");

    const std::string origin_a = local_origin(a);
    const std::string origin_b = local_origin(b);
    std::vector<std::string> got_a;
    std::vector<std::string> got_b;
    for (const auto& e : h.events) {
        CHECK(e.host == "127.0.0.1");
        if (e.origin == origin_a) {
            got_a.push_back(e.line);
        } else if (e.origin == origin_b) {
            got_b.push_back(e.line);
        } else {
            FAIL_CHECK("unexpected origin " << e.origin << " for line " << e.line);
        }
    }
    REQUIRE(got_a.size() == n);
    REQUIRE(got_b.size() == n);
    for (size_t i = 0; i < n; ++i) {
        CHECK(got_a[i] == numbered("a", i));
        CHECK(got_b[i] == numbered("b", i));
    }
    CHECK(src.counters().events_total.load() == 2 * n);
    CHECK(src.counters().bytes_total.load() == text_a.size() + text_b.size());
    CHECK(src.counters().truncated_total.load() == 0);
    CHECK(h.q.dropped(sid, drop_reason::queue_full) == 0);

    a.close();
    b.close();
    h.stop_and_settle();
    CHECK(h.events.size() == 2 * n);
}

TEST_CASE("tcp source: past max_connections a connection is closed at once", "[sources]") {
    harness h;
    sluice::tcp_source_config cfg;
    cfg.address = "127.0.0.1:0";
    cfg.max_connections = 1;
    sluice::tcp_source src("tcp", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();

    asio::ip::tcp::socket first(h.io);
    first.connect(loopback_tcp(src.port()));
    asio::write(first, asio::buffer(std::string("one\n")));
    h.pump_until([&] { return h.events.size() == 1; }, true, "the first client's line");

    // The kernel completes the handshake; the source accepts and closes it.
    asio::ip::tcp::socket second(h.io);
    second.connect(loopback_tcp(src.port()));
    std::optional<asio::error_code> second_result;
    char byte = 0;
    second.async_read_some(asio::buffer(&byte, 1),
                           [&](asio::error_code ec, size_t) { second_result = ec; });
    h.pump_until([&] { return second_result.has_value(); }, true, "the second connection closed");
    CHECK((*second_result == asio::error::eof || *second_result == asio::error::connection_reset));

    // The first keeps working.
    asio::write(first, asio::buffer(std::string("two\nthree\n")));
    h.pump_until([&] { return h.events.size() == 3; }, true, "the first client's later lines");
    CHECK(h.events[0].line == "one");
    CHECK(h.events[1].line == "two");
    CHECK(h.events[2].line == "three");
    CHECK(src.counters().events_total.load() == 3);

    // Once the first is gone its slot is free again.
    first.close();
    bool third_ok = false;
    const auto deadline = clk::now() + watchdog;
    while (!third_ok) {
        if (clk::now() > deadline) {
            FAIL("watchdog: a third connection was never served; " << h.state());
        }
        h.pump();
        asio::ip::tcp::socket third(h.io);
        third.connect(loopback_tcp(src.port()));
        asio::error_code ec;
        asio::write(third, asio::buffer(std::string("four\n")), ec);
        const size_t before = h.events.size();
        std::optional<asio::error_code> closed;
        third.async_read_some(asio::buffer(&byte, 1),
                              [&](asio::error_code e, size_t) { closed = e; });
        h.pump_until([&] { return h.events.size() > before || closed.has_value(); }, true,
                     "the third connection served or closed");
        third_ok = h.events.size() > before;
        third.close();
        h.pump_until([&] { return closed.has_value(); }, true, "the third read to end");
    }
    CHECK(h.events.back().line == "four");
    h.stop_and_settle();
}

TEST_CASE("tcp source: stop() pushes the partial line, then idle()", "[sources]") {
    harness h;
    sluice::tcp_source_config cfg;
    cfg.address = "127.0.0.1:0";
    sluice::tcp_source src("tcp", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();

    asio::ip::tcp::socket c(h.io);
    c.connect(loopback_tcp(src.port()));
    asio::write(c, asio::buffer(std::string("whole\npartial")));
    h.pump_until([&] { return src.counters().bytes_total.load() == 13; }, true, "13 bytes read");
    REQUIRE(h.events.size() == 1);
    CHECK(h.events[0].line == "whole");
    CHECK_FALSE(src.idle());

    src.stop();  // the client is still connected
    h.pump_until([&] { return src.idle(); }, true, "idle() after stop()");
    h.drain();
    REQUIRE(h.events.size() == 2);
    CHECK(h.events[1].line == "partial");
    CHECK(h.events[1].origin == local_origin(c));
    CHECK(src.counters().events_total.load() == 2);
}

TEST_CASE("tcp source: a full queue pauses reading, resume delivers everything once",
          "[sources]") {
    harness h(small_queue(4096));
    sluice::tcp_source_config cfg;
    cfg.address = "127.0.0.1:0";
    cfg.read_bytes = 1024;
    sluice::tcp_source src("tcp", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();

    constexpr size_t n = 4000;
    std::string text;
    for (size_t i = 0; i < n; ++i) {
        text += numbered("p", i) + "\n";
    }
    asio::ip::tcp::socket c(h.io);
    c.connect(loopback_tcp(src.port()));
    std::optional<asio::error_code> written;
    asio::async_write(c, asio::buffer(text), [&](asio::error_code ec, size_t) { written = ec; });

    // Nobody reads: the source must pause.
    h.pump_until([&] { return src.counters().paused.load(); }, false, "the source to pause");
    CHECK(h.q.blocked_guess());
    const uint64_t bytes_at_pause = src.counters().bytes_total.load();
    const uint64_t events_at_pause = src.counters().events_total.load();
    CHECK(bytes_at_pause < text.size());
    for (int i = 0; i < 25; ++i) {
        h.pump();
    }
    INFO(h.state());
    CHECK(src.counters().paused.load());
    CHECK(src.counters().bytes_total.load() == bytes_at_pause);
    CHECK(src.counters().events_total.load() == events_at_pause);

    // The sink drains; the queue's resume callback resumes the source.
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
    CHECK(src.counters().events_total.load() == n);
    CHECK(src.counters().bytes_total.load() == text.size());
    CHECK_FALSE(src.counters().paused.load());

    c.close();
    h.stop_and_settle();
    CHECK(h.events.size() == n);
}

TEST_CASE("tcp source: the syslog codec fills the batch meta", "[sources]") {
    harness h;
    sluice::tcp_source_config cfg;
    cfg.address = "127.0.0.1:0";
    cfg.codec = codec_kind::syslog;
    sluice::tcp_source src("tcp", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();

    asio::ip::tcp::socket c(h.io);
    c.connect(loopback_tcp(src.port()));
    asio::write(c, asio::buffer(std::string(
                       "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
                       "'su root' failed for lonvick\n")));
    h.pump_until([&] { return h.events.size() == 1; }, true, "the syslog line");
    REQUIRE(h.batches.size() == 1);
    const auto& b = h.batches[0];
    REQUIRE(b->has_meta());
    const auto& m = b->meta(0);
    CHECK(m.facility == 4);
    CHECK(m.severity == 2);
    CHECK(b->view(m.host) == "mymachine.example.com");
    CHECK(b->view(m.app) == "su");
    CHECK(b->view(m.msgid) == "ID47");
    CHECK(b->message(0) == "'su root' failed for lonvick");
    CHECK(src.counters().decode_errors_total.load() == 0);
    c.close();
    h.stop_and_settle();
}

// ---------------------------------------------------------------------------------------- udp

namespace {

struct udp_client {
    asio::ip::udp::socket socket;
    asio::ip::udp::endpoint to;
    udp_client(asio::io_context& io, uint16_t port)
        : socket(io, {asio::ip::make_address("127.0.0.1"), 0}),
          to(asio::ip::make_address("127.0.0.1"), port) {}
    void send(std::string_view d) { socket.send_to(asio::buffer(d.data(), d.size()), to); }
};

sluice::udp_source_config udp_config(sluice::udp_framing framing) {
    sluice::udp_source_config cfg;
    cfg.address = "127.0.0.1:0";
    cfg.framing = framing;
    cfg.receive_buffer_bytes = 1 << 20;
    return cfg;
}

}  // namespace

TEST_CASE("udp source: datagram framing makes one event per datagram", "[sources]") {
    harness h;
    sluice::udp_source src("udp", sid, h.io, h.q, udp_config(sluice::udp_framing::datagram));
    h.src = &src;
    src.start();
    REQUIRE(src.port() != 0);

    udp_client c(h.io, src.port());
    const std::vector<std::string> sent{"hello\n", "world", "two\nlines\n", "crlf\r\n", "x\n\n"};
    uint64_t bytes = 0;
    for (const auto& d : sent) {
        c.send(d);
        bytes += d.size();
    }
    h.pump_until([&] { return h.events.size() >= sent.size(); }, true, "every datagram");
    REQUIRE(h.events.size() == sent.size());
    CHECK(h.events[0].line == "hello");
    CHECK(h.events[1].line == "world");
    CHECK(h.events[2].line == "two\nlines");
    CHECK(h.events[3].line == "crlf");
    CHECK(h.events[4].line == "x\n");
    for (const auto& e : h.events) {
        CHECK(e.host == "127.0.0.1");
    }
    CHECK(src.counters().events_total.load() == sent.size());
    CHECK(src.counters().bytes_total.load() == bytes);
    h.stop_and_settle();
}

TEST_CASE("udp source: newline framing splits the lines of a datagram", "[sources]") {
    harness h;
    sluice::udp_source src("udp", sid, h.io, h.q, udp_config(sluice::udp_framing::newline));
    h.src = &src;
    src.start();

    udp_client c(h.io, src.port());
    c.send("l1\nl2\r\n\nl3\n");
    c.send("l4");
    h.pump_until([&] { return h.events.size() >= 4; }, true, "four lines");
    h.pump();
    h.drain();
    REQUIRE(h.events.size() == 4);
    CHECK(h.events[0].line == "l1");
    CHECK(h.events[1].line == "l2");
    CHECK(h.events[2].line == "l3");
    CHECK(h.events[3].line == "l4");
    for (const auto& e : h.events) {
        CHECK(e.host == "127.0.0.1");
    }
    CHECK(src.counters().events_total.load() == 4);
    h.stop_and_settle();
}

TEST_CASE("udp source: a full queue makes it drop and count, and it keeps reading",
          "[sources]") {
    harness h(small_queue(1 << 20, 1));  // one event fills it
    sluice::udp_source src("udp", sid, h.io, h.q, udp_config(sluice::udp_framing::datagram));
    h.src = &src;
    src.start();

    udp_client c(h.io, src.port());
    c.send("d0");
    h.pump_until([&] { return src.counters().events_total.load() == 1; }, false, "d0 read");
    for (int i = 1; i < 10; ++i) {
        c.send("d" + std::to_string(i));
    }
    // Nobody reads: the rest is read and dropped, never waited for.
    h.pump_until([&] { return src.counters().events_total.load() == 10; }, false,
                 "ten datagrams read");
    CHECK(h.q.dropped(sid, drop_reason::queue_full) == 9);
    CHECK_FALSE(src.counters().paused.load());

    h.drain();
    REQUIRE(h.events.size() == 1);
    CHECK(h.events[0].line == "d0");

    // Room again: new datagrams are queued.
    c.send("d10");
    h.pump_until([&] { return h.events.size() == 2; }, true, "d10");
    CHECK(h.events[1].line == "d10");
    CHECK(src.counters().events_total.load() == 11);
    CHECK(h.q.dropped(sid, drop_reason::queue_full) == 9);
    h.stop_and_settle();
}

// ---------------------------------------------------------------------------------------- zmq

namespace {

sluice::zmq_source_config zmq_config(uint16_t port, sluice::zmq_source_socket kind) {
    sluice::zmq_source_config cfg;
    cfg.endpoint = "tcp://127.0.0.1:" + std::to_string(port);
    cfg.socket = kind;
    cfg.bind = true;
    return cfg;
}

void send_frames(zmq::socket_t& s, const std::vector<std::string>& frames) {
    for (size_t i = 0; i < frames.size(); ++i) {
        const auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
        REQUIRE(s.send(zmq::buffer(frames[i]), flags));
    }
}

}  // namespace

// A PUSH connected to the source's PULL, closing without linger.
zmq::socket_t connected_push(zmq::context_t& ctx, const std::string& endpoint) {
    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 0);
    push.connect(endpoint);
    return push;
}

// An XPUB connected to the source's SUB, returned once the subscription to `prefix` has
// reached it, so that nothing sent afterwards is lost to the slow-joiner race.
zmq::socket_t connected_xpub(zmq::context_t& ctx, harness& h, const std::string& endpoint,
                             const std::string& prefix) {
    zmq::socket_t pub(ctx, zmq::socket_type::xpub);
    pub.set(zmq::sockopt::linger, 0);
    pub.set(zmq::sockopt::rcvtimeo, 50);
    pub.connect(endpoint);
    const auto deadline = clk::now() + watchdog;
    zmq::message_t sub;
    for (;;) {
        if (pub.recv(sub)) {
            const std::string s(static_cast<const char*>(sub.data()), sub.size());
            if (s == "\x01" + prefix) {
                return pub;
            }
        }
        if (clk::now() > deadline) {
            FAIL("watchdog: the SUB's subscription never reached the publisher");
        }
        h.pump();
    }
}

TEST_CASE("zmq source: PULL makes each frame of each message one event", "[sources]") {
    zmq::context_t ctx;
    harness h;
    const uint16_t port = free_tcp_port();
    const auto cfg = zmq_config(port, sluice::zmq_source_socket::pull);
    sluice::zmq_source src("zmq", sid, h.io, h.q, ctx, cfg);
    h.src = &src;
    src.start();

    zmq::socket_t push = connected_push(ctx, cfg.endpoint);
    constexpr size_t n = 300;
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; ++i) {
        const std::string m = numbered("z", i);
        send_frames(push, {m});
        bytes += m.size();
    }
    send_frames(push, {"part-1", "part-2", "part-3"});
    bytes += 18;
    h.pump_until([&] { return h.events.size() >= n + 3; }, true, "every frame");
    REQUIRE(h.events.size() == n + 3);
    for (size_t i = 0; i < n; ++i) {
        CHECK(h.events[i].line == numbered("z", i));
    }
    CHECK(h.events[n].line == "part-1");
    CHECK(h.events[n + 1].line == "part-2");
    CHECK(h.events[n + 2].line == "part-3");
    CHECK(h.events[0].origin == cfg.endpoint);
    CHECK(src.counters().events_total.load() == n + 3);
    CHECK(src.counters().bytes_total.load() == bytes);
    push.close();
    h.stop_and_settle();
}

TEST_CASE("zmq source: SUB takes subscribed topics and records the topic frame", "[sources]") {
    zmq::context_t ctx;
    harness h;
    const uint16_t port = free_tcp_port();
    auto cfg = zmq_config(port, sluice::zmq_source_socket::sub);
    cfg.subscribe = {"a."};
    sluice::zmq_source src("zmq", sid, h.io, h.q, ctx, cfg);
    h.src = &src;
    src.start();

    zmq::socket_t pub = connected_xpub(ctx, h, cfg.endpoint, "a.");
    send_frames(pub, {"b.other", "not subscribed"});
    send_frames(pub, {"a.one", "payload one"});
    send_frames(pub, {"a.two", "payload two"});
    send_frames(pub, {"b.other", "still not subscribed"});
    send_frames(pub, {"a.three", "payload three"});
    h.pump_until([&] { return h.events.size() >= 3; }, true, "three subscribed messages");
    h.pump();
    h.drain();
    REQUIRE(h.events.size() == 3);
    const std::vector<std::pair<std::string, std::string>> want{
        {"a.one", "payload one"}, {"a.two", "payload two"}, {"a.three", "payload three"}};
    size_t k = 0;
    for (const auto& b : h.batches) {
        REQUIRE(b->has_meta());
        for (size_t i = 0; i < b->event_count(); ++i, ++k) {
            CHECK(b->line(i) == want[k].second);
            CHECK(b->view(b->meta(i).topic) == want[k].first);
        }
    }
    CHECK(k == 3);
    pub.close();
    h.stop_and_settle();
}

// Sends `messages` (each a list of frames) from a PUSH to a PULL source made with `cfg` and
// returns the lines of the first `expect` events; `truncated` gets the source's count.
std::vector<std::string> pull_lines(sluice::zmq_source_config cfg,
                                    const std::vector<std::vector<std::string>>& messages,
                                    size_t expect, uint64_t* truncated = nullptr) {
    zmq::context_t ctx;
    harness h;
    sluice::zmq_source src("zmq", sid, h.io, h.q, ctx, cfg);
    h.src = &src;
    src.start();
    zmq::socket_t push = connected_push(ctx, cfg.endpoint);
    for (const auto& frames : messages) {
        send_frames(push, frames);
    }
    h.pump_until([&] { return h.events.size() >= expect; }, true, "every event");
    h.pump();
    h.drain();
    std::vector<std::string> lines;
    for (const auto& e : h.events) {
        lines.push_back(e.line);
    }
    CHECK(src.counters().events_total.load() == lines.size());
    if (truncated != nullptr) {
        *truncated = src.counters().truncated_total.load();
    }
    push.close();
    h.stop_and_settle();
    return lines;
}

TEST_CASE("zmq source: message framing drops one trailing newline of a frame", "[sources]") {
    const auto cfg = zmq_config(free_tcp_port(), sluice::zmq_source_socket::pull);
    const auto lines = pull_lines(
        cfg, {{"plain"}, {"with lf\n"}, {"with crlf\r\n"}, {"two\nlines\n\n"}, {""}}, 5);
    CHECK(lines ==
          std::vector<std::string>{"plain", "with lf", "with crlf", "two\nlines\n", ""});
}

TEST_CASE("zmq source: newline framing makes one event per line of every frame", "[sources]") {
    auto cfg = zmq_config(free_tcp_port(), sluice::zmq_source_socket::pull);
    cfg.framing = sluice::message_framing::newline;
    cfg.max_line_bytes = 8;
    uint64_t truncated = 0;
    // An empty frame has no line and makes no event.
    const auto lines = pull_lines(
        cfg, {{"a\nb\r\n\nc"}, {"d\n"}, {""}, {"e\nf", "g\n0123456789\n"}}, 8, &truncated);
    CHECK(lines == std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "01234567"});
    CHECK(truncated == 1);
}

TEST_CASE("zmq source: SUB with newline framing gives every line of a frame its topic",
          "[sources]") {
    zmq::context_t ctx;
    harness h;
    auto cfg = zmq_config(free_tcp_port(), sluice::zmq_source_socket::sub);
    cfg.subscribe = {"a."};
    cfg.framing = sluice::message_framing::newline;
    sluice::zmq_source src("zmq", sid, h.io, h.q, ctx, cfg);
    h.src = &src;
    src.start();
    zmq::socket_t pub = connected_xpub(ctx, h, cfg.endpoint, "a.");
    send_frames(pub, {"a.one", "l1\nl2\n"});
    send_frames(pub, {"a.two", "l3"});
    h.pump_until([&] { return h.events.size() >= 3; }, true, "three lines");
    h.pump();
    h.drain();
    const std::vector<std::pair<std::string, std::string>> want{
        {"a.one", "l1"}, {"a.one", "l2"}, {"a.two", "l3"}};
    size_t k = 0;
    for (const auto& b : h.batches) {
        REQUIRE(b->has_meta());
        for (size_t i = 0; i < b->event_count(); ++i, ++k) {
            REQUIRE(k < want.size());
            CHECK(b->view(b->meta(i).topic) == want[k].first);
            CHECK(b->line(i) == want[k].second);
        }
    }
    CHECK(k == 3);
    pub.close();
    h.stop_and_settle();
}

// Frames of 64 lines (~20 KiB) as a sender packs them for newline framing: a frame that
// does not fit the batch's 64 KiB waits for the next batch instead of regrowing the buffer,
// and every line arrives once, in order.
TEST_CASE("zmq source: newline framing fills batches across frames, none past 64 KiB",
          "[sources]") {
    auto cfg = zmq_config(free_tcp_port(), sluice::zmq_source_socket::pull);
    cfg.framing = sluice::message_framing::newline;
    zmq::context_t ctx;
    harness h;
    sluice::zmq_source src("zmq", sid, h.io, h.q, ctx, cfg);
    h.src = &src;
    src.start();
    zmq::socket_t push = connected_push(ctx, cfg.endpoint);
    constexpr size_t frames = 40;
    constexpr size_t per_frame = 64;
    const std::string pad(300, 'p');
    for (size_t f = 0; f < frames; ++f) {
        std::string frame;
        for (size_t i = 0; i < per_frame; ++i) {
            frame += numbered("l", f * per_frame + i) + " " + pad + "\n";
        }
        send_frames(push, {frame});
    }
    h.pump_until([&] { return h.events.size() >= frames * per_frame; }, true, "every line");
    REQUIRE(h.events.size() == frames * per_frame);
    for (size_t i = 0; i < h.events.size(); ++i) {
        if (h.events[i].line != numbered("l", i) + " " + pad) {
            FAIL("event " << i << " is '" << h.events[i].line.substr(0, 40) << "'");
        }
    }
    for (const auto& b : h.batches) {
        CHECK(b->text().size() <= sluice::message_batch_bytes);
        CHECK(b->buffer().capacity() <= sluice::message_batch_bytes);
    }
    push.close();
    h.stop_and_settle();
}

// A SUB data frame that waits for the next batch keeps the topic of its message.
TEST_CASE("zmq source: SUB frames carried into the next batch keep their topic", "[sources]") {
    zmq::context_t ctx;
    harness h;
    auto cfg = zmq_config(free_tcp_port(), sluice::zmq_source_socket::sub);
    cfg.subscribe = {"t."};
    cfg.framing = sluice::message_framing::newline;
    sluice::zmq_source src("zmq", sid, h.io, h.q, ctx, cfg);
    h.src = &src;
    src.start();
    zmq::socket_t pub = connected_xpub(ctx, h, cfg.endpoint, "t.");
    constexpr size_t messages = 12;
    const std::string body(30000, 'b');
    for (size_t i = 0; i < messages; ++i) {
        send_frames(pub, {"t." + std::to_string(i), numbered("m", i) + body + "\n"});
    }
    h.pump_until([&] { return h.events.size() >= messages; }, true, "every message");
    REQUIRE(h.events.size() == messages);
    size_t k = 0;
    for (const auto& b : h.batches) {
        REQUIRE(b->has_meta());
        CHECK(b->text().size() <= sluice::message_batch_bytes);
        for (size_t i = 0; i < b->event_count(); ++i, ++k) {
            CHECK(b->line(i) == numbered("m", k) + body);
            CHECK(b->view(b->meta(i).topic) == "t." + std::to_string(k));
        }
    }
    CHECK(h.batches.size() > 1);
    pub.close();
    h.stop_and_settle();
}

TEST_CASE("zmq source: a full queue pauses it, the PUSH blocks, resume delivers all once",
          "[sources]") {
    zmq::context_t ctx;
    harness h(small_queue(16 * 1024));
    const uint16_t port = free_tcp_port();
    auto cfg = zmq_config(port, sluice::zmq_source_socket::pull);
    cfg.rcvhwm = 10;
    sluice::zmq_source src("zmq", sid, h.io, h.q, ctx, cfg);
    h.src = &src;
    src.start();

    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 0);
    push.set(zmq::sockopt::sndhwm, 10);
    push.set(zmq::sockopt::sndbuf, 16 * 1024);
    push.connect(cfg.endpoint);

    // Nobody reads. Send without blocking until the source has paused and the PUSH refuses.
    const std::string pad(1000, 'x');
    auto message = [&](size_t i) { return numbered("m", i) + " " + pad; };
    size_t sent = 0;
    bool refused_while_paused = false;
    const auto deadline = clk::now() + watchdog;
    while (!refused_while_paused) {
        if (clk::now() > deadline) {
            FAIL("watchdog: sent " << sent << " without the PUSH refusing; " << h.state());
        }
        const std::string m = message(sent);
        if (push.send(zmq::buffer(m), zmq::send_flags::dontwait)) {
            ++sent;
            if (sent % 50 == 0) {
                h.io.poll();
            }
            continue;
        }
        // EAGAIN: does it still refuse once the source has settled into its pause?
        refused_while_paused = src.counters().paused.load();
        h.pump();
    }
    INFO("sent " << sent << "; " << h.state());
    CHECK(src.counters().paused.load());
    CHECK(h.q.blocked_guess());
    const uint64_t read_at_pause = src.counters().bytes_total.load();
    for (int i = 0; i < 25; ++i) {
        h.pump();
    }
    CHECK(src.counters().bytes_total.load() == read_at_pause);
    CHECK(src.counters().events_total.load() < sent);

    h.pump_until([&] { return h.events.size() >= sent; }, true, "every message after resuming");
    h.pump();
    h.drain();
    REQUIRE(h.events.size() == sent);
    size_t wrong = 0;
    for (size_t i = 0; i < sent; ++i) {
        if (h.events[i].line != message(i) && wrong++ == 0) {
            FAIL_CHECK("event " << i << " is '" << h.events[i].line.substr(0, 40) << "'");
        }
    }
    CHECK(wrong == 0);
    CHECK(src.counters().events_total.load() == sent);
    CHECK_FALSE(src.counters().paused.load());
    push.close();
    h.stop_and_settle();
}

// ---------------------------------------------------------------------------------- generator

TEST_CASE("generator source: count = 1000 at rate 0 makes exactly 1000 events, then idle",
          "[sources]") {
    harness h;
    sluice::generator_source_config cfg;
    cfg.rate = 0;
    cfg.count = 1000;
    cfg.format = sluice::generator_format::text;
    sluice::generator_source src("gen", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();
    h.pump_until([&] { return src.idle(); }, true, "the generator to finish");
    h.drain();
    REQUIRE(h.events.size() == 1000);
    for (size_t i = 0; i < h.events.size(); ++i) {
        const std::string suffix = " seq=" + std::to_string(i);
        const auto& line = h.events[i].line;
        CHECK(line.size() > suffix.size());
        CHECK(line.compare(line.size() - suffix.size(), suffix.size(), suffix) == 0);
        CHECK(h.events[i].origin == "generator");
    }
    CHECK(src.generated() == 1000);
    CHECK(src.counters().events_total.load() == 1000);
    h.pump();
    CHECK(h.drain() == 0);
}

TEST_CASE("generator source: syslog and json formats decode with the matching codec",
          "[sources]") {
    const auto [format, codec] = GENERATE(
        std::make_pair(sluice::generator_format::syslog, codec_kind::syslog),
        std::make_pair(sluice::generator_format::json, codec_kind::json));
    harness h;
    sluice::generator_source_config cfg;
    cfg.rate = 0;
    cfg.count = 500;
    cfg.format = format;
    cfg.codec = codec;
    sluice::generator_source src("gen", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();
    h.pump_until([&] { return src.idle(); }, true, "the generator to finish");
    h.drain();
    REQUIRE(h.events.size() == 500);
    CHECK(src.counters().decode_errors_total.load() == 0);
    for (const auto& b : h.batches) {
        REQUIRE(b->has_meta());
        for (size_t i = 0; i < b->event_count(); ++i) {
            CHECK(b->meta(i).ts_ns != sluice::event_meta::no_ts);
        }
    }
    if (codec == codec_kind::syslog) {
        CHECK(h.batches[0]->view(h.batches[0]->meta(0).host) == "sluice-gen");
        CHECK(h.batches[0]->view(h.batches[0]->meta(0).app) == "gen");
    }
}

TEST_CASE("generator source: a rate makes events until stopped", "[sources]") {
    harness h;
    sluice::generator_source_config cfg;
    cfg.rate = 500;
    cfg.count = 0;
    sluice::generator_source src("gen", sid, h.io, h.q, cfg);
    h.src = &src;
    src.start();
    h.pump_until([&] { return h.events.size() >= 20; }, true, "20 events");
    CHECK_FALSE(src.idle());
    h.stop_and_settle();
    CHECK(src.generated() == h.events.size());
    CHECK(src.counters().events_total.load() == h.events.size());
}
