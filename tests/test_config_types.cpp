// The config of the udp, zmq and generator sources and the zmq sink, codecs on every source,
// and which listeners clash.
#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "app/config.h"
#include "config_test_helpers.h"

using namespace sluice;
using namespace sluice::test;
using namespace std::chrono_literals;

TEST_CASE("every source type takes codec text, json or syslog", "[config]") {
    const auto c = parse_config(R"toml([sources.t]
type = "tcp"
codec = "json"
[sources.u]
type = "udp"
codec = "syslog"
[sources.z]
type = "zmq"
codec = "json"
[sources.g]
type = "generator"
codec = "syslog"
[sinks.out]
type = "file"
)toml",
                                "test.toml");
    REQUIRE(c.sources.size() == 4);
    CHECK(c.sources[0].tcp.codec == codec_kind::json);
    CHECK(c.sources[1].udp.codec == codec_kind::syslog);
    CHECK(c.sources[2].zmq.codec == codec_kind::json);
    CHECK(c.sources[3].generator.codec == codec_kind::syslog);

    for (const std::string type : {"tcp", "udp", "zmq", "generator"}) {
        INFO(type);
        const auto p = only_problem("[sources.s]\ntype = \"" + type +
                                    "\"\ncodec = \"xml\"\n[sinks.out]\ntype = \"file\"\n");
        CHECK(p.line == 3);
        CHECK(p.key == "sources.s.codec");
        CHECK(p.message == "unknown value 'xml' (expected one of: text, json, syslog)");
    }
}

TEST_CASE("udp, zmq and generator sources round-trip into their structs", "[config]") {
    const auto c = parse_config(R"toml([sources.syslog]
type = "udp"
address = "0.0.0.0:5514"
framing = "newline"
codec = "syslog"
max_line_bytes = "8KiB"
receive_buffer_bytes = "16MiB"

[sources.bus]
type = "zmq"
endpoint = "ipc:///tmp/sluice.sock"
socket = "sub"
bind = false
subscribe = ["app.", "audit"]
framing = "newline"
codec = "json"
max_line_bytes = 4096
rcvhwm = 0

[sources.demo]
type = "generator"
rate = 0
count = 500
format = "json"
codec = "json"

[sinks.out]
type = "file"
)toml",
                                "test.toml");
    REQUIRE(c.sources.size() == 3);
    const auto& udp = c.sources[0];
    CHECK(udp.name == "syslog");
    CHECK(udp.type == source_type::udp);
    CHECK(udp.udp.address == "0.0.0.0:5514");
    CHECK(udp.udp.framing == udp_framing::newline);
    CHECK(udp.udp.codec == codec_kind::syslog);
    CHECK(udp.udp.max_line_bytes == 8 * 1024);
    CHECK(udp.udp.receive_buffer_bytes == 16ull << 20);

    const auto& bus = c.sources[1];
    CHECK(bus.name == "bus");
    CHECK(bus.type == source_type::zmq);
    CHECK(bus.zmq.endpoint == "ipc:///tmp/sluice.sock");
    CHECK(bus.zmq.socket == zmq_source_socket::sub);
    CHECK_FALSE(bus.zmq.bind);
    CHECK(bus.zmq.subscribe == std::vector<std::string>{"app.", "audit"});
    CHECK(bus.zmq.framing == zmq_framing::newline);
    CHECK(bus.zmq.codec == codec_kind::json);
    CHECK(bus.zmq.max_line_bytes == 4096);
    CHECK(bus.zmq.rcvhwm == 0);

    const auto& demo = c.sources[2];
    CHECK(demo.name == "demo");
    CHECK(demo.type == source_type::generator);
    CHECK(demo.generator.rate == 0);
    CHECK(demo.generator.count == 500);
    CHECK(demo.generator.format == generator_format::json);
    CHECK(demo.generator.codec == codec_kind::json);
}

TEST_CASE("udp, zmq and generator sources take their defaults", "[config]") {
    const auto c = parse_config(R"toml([sources.u]
type = "udp"
[sources.z]
type = "zmq"
[sources.g]
type = "generator"
[sinks.out]
type = "file"
)toml",
                                "test.toml");
    REQUIRE(c.sources.size() == 3);
    CHECK(c.sources[0].udp.address == "127.0.0.1:5514");
    CHECK(c.sources[0].udp.framing == udp_framing::datagram);
    CHECK(c.sources[0].udp.codec == codec_kind::text);
    CHECK(c.sources[0].udp.max_line_bytes == 65536);
    CHECK(c.sources[0].udp.receive_buffer_bytes == 64ull << 20);
    CHECK(c.sources[1].zmq.endpoint == "tcp://127.0.0.1:5171");
    CHECK(c.sources[1].zmq.socket == zmq_source_socket::pull);
    CHECK(c.sources[1].zmq.bind);
    CHECK(c.sources[1].zmq.rcvhwm == 1000);
    CHECK(c.sources[1].zmq.framing == zmq_framing::message);
    CHECK(c.sources[1].zmq.codec == codec_kind::text);
    CHECK(c.sources[2].generator.rate == 1000);
    CHECK(c.sources[2].generator.count == 0);
    CHECK(c.sources[2].generator.format == generator_format::syslog);
    CHECK(c.sources[2].generator.codec == codec_kind::text);
}

TEST_CASE("bad udp, zmq and generator values are reported", "[config]") {
    const std::string sink = "[sinks.out]\ntype = \"file\"\n";

    const auto socket = only_problem("[sources.z]\ntype = \"zmq\"\nsocket = \"req\"\n" + sink);
    CHECK(socket.line == 3);
    CHECK(socket.key == "sources.z.socket");
    CHECK(socket.message == "unknown value 'req' (expected one of: pull, sub)");

    // subscribe only means something to a SUB socket, wherever `socket` is written.
    const auto pull = only_problem("[sources.z]\ntype = \"zmq\"\nsubscribe = [\"a\"]\n" + sink);
    CHECK(pull.line == 3);
    CHECK(pull.key == "sources.z.subscribe");
    CHECK(pull.message == "is only allowed with socket = \"sub\"");
    CHECK(
        only_problem("[sources.z]\ntype = \"zmq\"\nsubscribe = [\"\"]\nsocket = \"pull\"\n" + sink)
            .key == "sources.z.subscribe");
    CHECK_NOTHROW(parse_config(
        "[sources.z]\ntype = \"zmq\"\nsubscribe = [\"\"]\nsocket = \"sub\"\n" + sink, "t.toml"));
    CHECK(contains(
        only_problem("[sources.z]\ntype = \"zmq\"\nsocket = \"sub\"\nsubscribe = [1]\n" + sink)
            .message,
        "expected a topic prefix (a string), got integer"));
    CHECK(contains(
        only_problem("[sources.z]\ntype = \"zmq\"\nsocket = \"sub\"\nsubscribe = []\n" + sink)
            .message,
        "at least one prefix"));

    const auto scheme =
        only_problem("[sources.z]\ntype = \"zmq\"\nendpoint = \"udp://127.0.0.1:1\"\n" + sink);
    CHECK(scheme.line == 3);
    CHECK(scheme.column == 12);
    CHECK(scheme.key == "sources.z.endpoint");
    CHECK(contains(scheme.message, "invalid endpoint 'udp://127.0.0.1:1'"));
    CHECK(contains(
        only_problem("[sources.z]\ntype = \"zmq\"\nendpoint = \"127.0.0.1:5171\"\n" + sink).message,
        "invalid endpoint"));
    CHECK(contains(
        only_problem("[sources.z]\ntype = \"zmq\"\nendpoint = \"tcp://\"\n" + sink).message,
        "names nothing"));
    CHECK(contains(
        only_problem("[sources.z]\ntype = \"zmq\"\nendpoint = \"tcp://127.0.0.1\"\n" + sink)
            .message,
        "no host or port"));
    CHECK(only_problem("[sources.z]\ntype = \"zmq\"\nrcvhwm = -1\n" + sink).message ==
          "must be 0 or more, got -1");
    CHECK(
        contains(only_problem("[sources.z]\ntype = \"zmq\"\nrcvhwm = 3000000000\n" + sink).message,
                 "must be at most"));
    CHECK(only_problem("[sources.z]\ntype = \"zmq\"\nbind = \"yes\"\n" + sink).message ==
          "expected a boolean, got string");

    const auto rate = only_problem("[sources.g]\ntype = \"generator\"\nrate = -5\n" + sink);
    CHECK(rate.line == 3);
    CHECK(rate.key == "sources.g.rate");
    CHECK(rate.message == "must be 0 or more, got -5");
    CHECK(only_problem("[sources.g]\ntype = \"generator\"\ncount = -1\n" + sink).key ==
          "sources.g.count");
    CHECK(only_problem("[sources.g]\ntype = \"generator\"\nformat = \"xml\"\n" + sink).message ==
          "unknown value 'xml' (expected one of: syslog, json, text)");
    CHECK(
        only_problem("[sources.g]\ntype = \"generator\"\naddress = \"127.0.0.1:1\"\n" + sink).key ==
        "sources.g.address");

    CHECK(only_problem("[sources.u]\ntype = \"udp\"\nframing = \"octet_counting\"\n" + sink)
              .message == "unknown value 'octet_counting' (expected one of: datagram, newline)");
    CHECK(only_problem("[sources.z]\ntype = \"zmq\"\nframing = \"datagram\"\n" + sink)
              .message == "unknown value 'datagram' (expected one of: message, newline)");
    CHECK(contains(
        only_problem("[sources.u]\ntype = \"udp\"\naddress = \"127.0.0.1\"\n" + sink).message,
        "has no port"));
    CHECK(only_problem("[sources.u]\ntype = \"udp\"\nreceive_buffer_bytes = 0\n" + sink).message ==
          "must be greater than 0, got 0");
    // Keys of another type are unknown here.
    CHECK(only_problem("[sources.u]\ntype = \"udp\"\nmax_connections = 5\n" + sink).key ==
          "sources.u.max_connections");
}

TEST_CASE("a zmq sink round-trips and takes its own batch defaults", "[config]") {
    const auto c = parse_config(std::string(minimal) + R"toml(
[sinks.forward]
type = "zmq"
inputs = ["app"]
endpoints = ["tcp://10.0.0.1:6000", "tcp://aggregator.example:6000", "ipc:///run/agg"]
socket = "pub"
format = "json"
framing = "newline"
sndhwm = 0
batch = { max_events = 10 }

[sinks.plain]
type = "zmq"
)toml",
                                "test.toml");
    REQUIRE(c.sinks.size() == 3);
    const auto& forward = c.sinks[1];
    CHECK(forward.name == "forward");
    CHECK(forward.type == sink_type::zmq);
    CHECK(forward.inputs == std::vector<std::string>{"app"});
    CHECK(forward.zmq.endpoints == std::vector<std::string>{"tcp://10.0.0.1:6000",
                                                            "tcp://aggregator.example:6000",
                                                            "ipc:///run/agg"});
    CHECK(forward.zmq.socket == zmq_sink_socket::pub);
    CHECK(forward.zmq.format == zmq_sink_format::json);
    CHECK(forward.zmq.framing == zmq_framing::newline);
    CHECK(forward.zmq.sndhwm == 0);
    CHECK(forward.batch.max_events == 10);
    CHECK(forward.batch.max_bytes == 4ull << 20);
    CHECK(forward.batch.timeout == 100ms);

    const auto& plain = c.sinks[2];
    CHECK(plain.zmq.endpoints == std::vector<std::string>{"tcp://127.0.0.1:6000"});
    CHECK(plain.zmq.socket == zmq_sink_socket::push);
    CHECK(plain.zmq.format == zmq_sink_format::text);
    CHECK(plain.zmq.framing == zmq_framing::message);
    CHECK(plain.zmq.sndhwm == 1000);
    CHECK(plain.batch.max_events == 1000);
    CHECK(plain.batch.max_bytes == 4ull << 20);
    CHECK(plain.batch.timeout == 100ms);
}

TEST_CASE("bad zmq sink values are reported", "[config]") {
    const std::string base = std::string(minimal) + "[sinks.fwd]\ntype = \"zmq\"\n";
    const auto socket = only_problem(base + "socket = \"pull\"\n");
    CHECK(socket.line == 8);
    CHECK(socket.key == "sinks.fwd.socket");
    CHECK(socket.message == "unknown value 'pull' (expected one of: push, pub)");
    CHECK(only_problem(base + "format = \"xml\"\n").message ==
          "unknown value 'xml' (expected one of: text, json)");
    CHECK(only_problem(base + "framing = \"lines\"\n").message ==
          "unknown value 'lines' (expected one of: message, newline)");
    CHECK(only_problem(base + "endpoints = []\n").message == "must name at least one endpoint");
    CHECK(only_problem(base + "endpoints = \"tcp://127.0.0.1:6000\"\n").message ==
          "expected an array of endpoints, got string");
    const auto scheme =
        only_problem(base + "endpoints = [\"tcp://127.0.0.1:6000\", \"http://x:1\"]\n");
    CHECK(scheme.line == 8);
    CHECK(scheme.column == 38);
    CHECK(scheme.key == "sinks.fwd.endpoints");
    CHECK(contains(scheme.message, "invalid endpoint 'http://x:1'"));
    CHECK(contains(only_problem(base + "endpoints = [1]\n").message, "got integer"));
    CHECK(only_problem(base + "endpoints = [\"ipc:///a\", \"ipc:///a\"]\n").message ==
          "endpoint 'ipc:///a' is listed twice");
    CHECK(only_problem(base + "sndhwm = -1\n").message == "must be 0 or more, got -1");
    CHECK(only_problem(base + "path = \"x\"\n").key == "sinks.fwd.path");
}

TEST_CASE("listeners clash only on the same protocol and address", "[config]") {
    const std::string sink = "[sinks.out]\ntype = \"file\"\n";
    // tcp and udp may share a port.
    CHECK_NOTHROW(
        parse_config("[sources.t]\ntype = \"tcp\"\naddress = \"127.0.0.1:5514\"\n"
                     "[sources.u]\ntype = \"udp\"\naddress = \"127.0.0.1:5514\"\n" +
                         sink,
                     "t.toml"));
    const auto udp = only_problem(
        "[sources.a]\ntype = \"udp\"\n[sources.b]\ntype = \"udp\"\n"
        "address = \"127.0.0.1:5514\"\n" +
        sink);
    CHECK(udp.line == 5);
    CHECK(udp.key == "sources.b.address");
    CHECK(udp.message == "address '127.0.0.1:5514' is already used by sources.a.address");
    // udp port 0 never collides either.
    CHECK_NOTHROW(
        parse_config("[sources.a]\ntype = \"udp\"\naddress = \"127.0.0.1:0\"\n"
                     "[sources.b]\ntype = \"udp\"\naddress = \"127.0.0.1:0\"\n" +
                         sink,
                     "t.toml"));

    // Two zmq sources binding one endpoint clash; connecting ones do not.
    const auto zmq =
        only_problem("[sources.a]\ntype = \"zmq\"\n[sources.b]\ntype = \"zmq\"\n" + sink);
    CHECK(zmq.key == "sources.b.endpoint");
    CHECK(zmq.line == 3);
    CHECK(zmq.message == "endpoint 'tcp://127.0.0.1:5171' is already used by sources.a.endpoint");
    CHECK(only_problem("[sources.a]\ntype = \"zmq\"\nendpoint = \"inproc://x\"\n"
                       "[sources.b]\ntype = \"zmq\"\nendpoint = \"inproc://x\"\n" +
                       sink)
              .message == "endpoint 'inproc://x' is already used by sources.a.endpoint");
    CHECK_NOTHROW(
        parse_config("[sources.a]\ntype = \"zmq\"\n"
                     "[sources.b]\ntype = \"zmq\"\nbind = false\n" +
                         sink,
                     "t.toml"));
    CHECK_NOTHROW(
        parse_config("[sources.a]\ntype = \"zmq\"\nendpoint = \"tcp://127.0.0.1:*\"\n"
                     "[sources.b]\ntype = \"zmq\"\nendpoint = \"tcp://127.0.0.1:*\"\n" +
                         sink,
                     "t.toml"));
    // A zmq tcp bind takes a tcp port like a tcp source does.
    CHECK(only_problem("[sources.t]\ntype = \"tcp\"\naddress = \"127.0.0.1:5171\"\n"
                       "[sources.z]\ntype = \"zmq\"\n" +
                       sink)
              .message == "endpoint 'tcp://127.0.0.1:5171' is already used by sources.t.address");
    CHECK(only_problem("[api]\naddress = \"127.0.0.1:5171\"\n[sources.z]\ntype = \"zmq\"\n" + sink)
              .key == "api.address");
}
