// Tests for the ZeroMQ sink, driven directly through write() against real PULL sockets bound
// on 127.0.0.1 port 0: frames spread over two peers arrive exactly once, JSON frames parse,
// and a write blocked on a peer that never takes messages ends with retry on abort().
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <simdjson.h>
#include <zmq.hpp>

#include "queue/event.h"
#include "sinks/zmq_sink.h"
#include "tests/test_support.h"

using namespace std::chrono_literals;
using sluice::batch;
using sluice::batch_ptr;
using sluice::write_status;
using sluice::zmq_sink;
using sluice::zmq_sink_config;
using sluice::zmq_sink_format;

namespace {

using sluice::test::batch_of_lines;
using sluice::test::watchdog;

// A PULL socket bound to 127.0.0.1 on a port the kernel picks.
struct puller {
    explicit puller(zmq::context_t& ctx) : socket(ctx, zmq::socket_type::pull) {
        socket.set(zmq::sockopt::linger, 0);
        socket.bind("tcp://127.0.0.1:*");
        endpoint = socket.get(zmq::sockopt::last_endpoint);
    }
    zmq::socket_t socket;
    std::string endpoint;
};

// Receives from all `pullers` until `count` frames arrived or 10 s passed.
std::vector<std::vector<std::string>> receive(std::vector<puller*> pullers, size_t count) {
    std::vector<std::vector<std::string>> got(pullers.size());
    size_t total = 0;
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (total < count && std::chrono::steady_clock::now() < until) {
        std::vector<zmq::pollitem_t> items;
        for (auto* p : pullers) {
            items.push_back({p->socket.handle(), 0, ZMQ_POLLIN, 0});
        }
        zmq::poll(items, 100ms);
        for (size_t i = 0; i < pullers.size(); ++i) {
            zmq::message_t msg;
            while (pullers[i]->socket.recv(msg, zmq::recv_flags::dontwait)) {
                got[i].push_back(msg.to_string());
                ++total;
            }
        }
    }
    return got;
}

}  // namespace

TEST_CASE("zmq sink pushes every frame exactly once across two peers", "[zmq_sink]") {
    watchdog dog("zmq push to two peers");
    zmq::context_t ctx;
    puller a(ctx);
    puller b(ctx);
    zmq_sink_config c;
    c.endpoints = {a.endpoint, b.endpoint};
    zmq_sink sink("forward", {}, c, ctx, {"app", "web"});

    std::vector<batch_ptr> batches;
    std::map<std::string, int> expected;
    for (int i = 0; i < 50; ++i) {
        std::vector<std::string> lines;
        for (int k = 0; k < 1 + i % 7; ++k) {
            lines.push_back("m" + std::to_string(i) + "-" + std::to_string(k));
            expected[lines.back()] = 1;
        }
        batches.push_back(batch_of_lines(static_cast<sluice::source_id>(i % 2), lines));
    }
    batches.push_back(batch_of_lines(0, {""}));  // an empty line is an empty frame
    expected[""] = 1;
    REQUIRE(sink.write(batches) == write_status::ok);

    const auto got = receive({&a, &b}, expected.size());
    std::map<std::string, int> seen;
    for (const auto& frames : got) {
        for (const auto& f : frames) {
            ++seen[f];
        }
    }
    CHECK(seen == expected);
    CHECK(sluice::read(sink.counters().events_total) == expected.size());

    // A second write reaches the peers too, each frame once.
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(1, {"late-1", "late-2"})}) ==
            write_status::ok);
    const auto more = receive({&a, &b}, 2);
    std::map<std::string, int> seen_more;
    for (const auto& frames : more) {
        for (const auto& f : frames) {
            ++seen_more[f];
        }
    }
    CHECK(seen_more == std::map<std::string, int>{{"late-1", 1}, {"late-2", 1}});
}

TEST_CASE("zmq sink with newline framing packs whole events into frames of about 64 KiB",
          "[zmq_sink]") {
    watchdog dog("zmq newline framing");
    zmq::context_t ctx;
    puller a(ctx);
    zmq_sink_config c;
    c.endpoints = {a.endpoint};
    c.framing = sluice::message_framing::newline;
    zmq_sink sink("forward", {}, c, ctx, {"app"});

    // 3,000 events of 100 bytes in three batches: 300 KB, so several full frames and a rest.
    std::vector<batch_ptr> batches;
    std::vector<std::string> expected;
    for (int k = 0; k < 3; ++k) {
        std::vector<std::string> lines;
        for (int i = 0; i < 1000; ++i) {
            std::string line = "e" + std::to_string(k * 1000 + i) + "-";
            line.resize(100, 'x');
            lines.push_back(line);
            expected.push_back(line);
        }
        batches.push_back(batch_of_lines(0, lines));
    }
    REQUIRE(sink.write(batches) == write_status::ok);

    // ~300 KB in frames of at least 64 KiB, but the last: 5 frames.
    const auto got = receive({&a}, 5);
    REQUIRE(got[0].size() == 5);
    std::vector<std::string> lines;
    for (size_t f = 0; f < got[0].size(); ++f) {
        const std::string& frame = got[0][f];
        REQUIRE(!frame.empty());
        CHECK(frame.back() == '\n');  // whole events only
        if (f + 1 < got[0].size()) {
            CHECK(frame.size() >= 64 * 1024);
            CHECK(frame.size() < 64 * 1024 + 101);
        }
        for (size_t at = 0; at < frame.size();) {
            const size_t nl = frame.find('\n', at);
            lines.push_back(frame.substr(at, nl - at));
            at = nl + 1;
        }
    }
    CHECK(lines == expected);
    CHECK(sluice::read(sink.counters().events_total) == 3000);
}

TEST_CASE("zmq sink json frames parse", "[zmq_sink]") {
    watchdog dog("zmq json frames");
    zmq::context_t ctx;
    puller a(ctx);
    zmq_sink_config c;
    c.endpoints = {a.endpoint};
    c.format = zmq_sink_format::json;
    zmq_sink sink("forward", {}, c, ctx, {"app", "web"});

    auto decoded = std::make_shared<batch>(1);
    decoded->add_line("raw line");
    decoded->received_ns = 0;
    decoded->host = "peer";
    decoded->extra() = "topicA";
    sluice::event_meta m;
    m.severity = 3;
    m.topic = {0, 6, true};
    decoded->meta().push_back(m);

    const std::vector<batch_ptr> batches = {batch_of_lines(0, {"hello \"there\"", "ctl \x01\x80"},
                                                           1'700'000'000'123'456'789, "10.0.0.1"),
                                            decoded};
    REQUIRE(sink.write(batches) == write_status::ok);
    const auto got = receive({&a}, 3);
    REQUIRE(got[0].size() == 3);

    simdjson::dom::parser parser;
    simdjson::dom::object o;
    REQUIRE(parser.parse(simdjson::padded_string(got[0][0])).get_object().get(o) ==
            simdjson::SUCCESS);
    CHECK(std::string_view(o["received_at"]) == "2023-11-14T22:13:20.123456789Z");
    CHECK(std::string_view(o["source"]) == "app");
    CHECK(std::string_view(o["host"]) == "10.0.0.1");
    CHECK(std::string_view(o["message"]) == "hello \"there\"");
    CHECK(got[0][0].find('\n') == std::string::npos);  // one object per frame, no newline
    REQUIRE(parser.parse(simdjson::padded_string(got[0][1])).get_object().get(o) ==
            simdjson::SUCCESS);
    CHECK(std::string_view(o["message"]) == "ctl \x01\xef\xbf\xbd");
    REQUIRE(parser.parse(simdjson::padded_string(got[0][2])).get_object().get(o) ==
            simdjson::SUCCESS);
    CHECK(std::string_view(o["received_at"]) == "1970-01-01T00:00:00.000000000Z");
    CHECK(std::string_view(o["source"]) == "web");
    CHECK(std::string_view(o["host"]) == "peer");
    CHECK(std::string_view(o["message"]) == "raw line");
    CHECK(int64_t(o["severity"]) == 3);
    CHECK(std::string_view(o["topic"]) == "topicA");
}

TEST_CASE("zmq sink blocked on a peer that takes nothing returns retry on abort",
          "[zmq_sink]") {
    // Nobody takes a frame: either the port is held but not listening (connections are
    // refused), or a listener never accepts (the ZeroMQ handshake never completes).
    bool listening = false;
    SECTION("nothing listening") { listening = false; }
    SECTION("a listener that never accepts") { listening = true; }
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listener >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    if (listening) {
        REQUIRE(::listen(listener, 16) == 0);
    }
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } close_listener{listener};

    zmq::context_t ctx;
    zmq_sink_config c;
    c.endpoints = {endpoint};
    c.sndhwm = 1;
    zmq_sink sink("forward", {}, c, ctx, {"app"});

    std::vector<std::string> lines;
    for (int i = 0; i < 100; ++i) {
        lines.push_back("blocked-" + std::to_string(i));
    }
    const std::vector<batch_ptr> batches = {batch_of_lines(0, lines)};

    std::atomic<int> result{-1};  // -1: write() has not returned
    std::atomic<bool> aborted{false};
    watchdog dog("a blocked zmq write after abort", [&] {
        return "result " + std::to_string(result.load()) + ", aborted " +
               std::to_string(aborted.load());
    });
    std::thread writer([&] { result = static_cast<int>(sink.write(batches)); });
    // Whatever the moment of abort, the write cannot complete: nobody takes the frames.
    std::this_thread::sleep_for(200ms);
    const int before_abort = result.load();
    aborted = true;
    sink.abort();
    writer.join();
    CHECK(before_abort == -1);  // it was blocked, not done
    CHECK(result.load() == static_cast<int>(write_status::retry));
    CHECK(sluice::read(sink.counters().errors_total) == 1);
    CHECK(sluice::read(sink.counters().batches_total) == 0);

    // Once aborted, a further write gives up at once rather than block again.
    CHECK(sink.write(batches) == write_status::retry);
}

TEST_CASE("zmq sink: a write failing at any frame resumes there, sending nothing twice",
          "[zmq_sink]") {
    watchdog dog("zmq resume", {}, std::chrono::seconds(120));
    zmq::context_t ctx;
    // Three batches of 1, 3 and 2 events: a failure before each of the 6 frames, in message
    // framing; in newline framing frames of 64 KiB hold several events each.
    for (const auto framing : {sluice::message_framing::message, sluice::message_framing::newline}) {
        const bool packed = framing == sluice::message_framing::newline;
        // Newline framing: events of 40 KiB, so every second event closes a frame.
        const size_t length = packed ? 40 * 1024 : 10;
        std::vector<std::string> expected;
        std::vector<batch_ptr> batches;
        int n = 0;
        for (int size : {1, 3, 2}) {
            std::vector<std::string> lines;
            for (int k = 0; k < size; ++k) {
                std::string line = "ev" + std::to_string(n++) + "-";
                line.resize(length, 'x');
                lines.push_back(line);
                expected.push_back(line);
            }
            batches.push_back(batch_of_lines(0, lines));
        }
        const uint64_t frames = packed ? 3 : expected.size();
        for (uint64_t fail_at = 0; fail_at < frames; ++fail_at) {
            INFO("framing " << (packed ? "newline" : "message") << ", failing before frame "
                            << fail_at);
            puller a(ctx);
            zmq_sink_config c;
            c.endpoints = {a.endpoint};
            c.framing = framing;
            zmq_sink sink("forward", {}, c, ctx, {"app"});
            bool failed_once = false;
            sink.set_fault_injector([&](uint64_t frame) {
                if (frame == fail_at && !failed_once) {
                    failed_once = true;
                    errno = EINTR;  // what a signal during a blocking send gives
                    throw zmq::error_t();
                }
            });
            CHECK(sink.write(batches) == write_status::retry);
            CHECK(sink.write(batches) == write_status::ok);
            const auto got = receive({&a}, frames);
            std::vector<std::string> lines;
            for (const auto& frame : got[0]) {
                if (!packed) {
                    lines.push_back(frame);
                    continue;
                }
                for (size_t at = 0; at < frame.size();) {
                    const size_t nl = frame.find('\n', at);
                    lines.push_back(frame.substr(at, nl - at));
                    at = nl + 1;
                }
            }
            CHECK(got[0].size() == frames);
            CHECK(lines == expected);  // each event once, in order
            // The next write starts from its own beginning.
            REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"after"})}) ==
                    write_status::ok);
            const auto after = receive({&a}, 1);
            CHECK(after[0] == std::vector<std::string>{packed ? "after\n" : "after"});
        }
    }
}
