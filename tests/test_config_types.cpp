// The config of the udp, zmq and generator sources and the zmq sink, codecs on every source,
// and which listeners clash.
#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "app/config.h"
#include "config_test_helpers.h"
#include "ingest/generator_source.h"
#include "ingest/tail/tail_source.h"
#include "ingest/tcp_source.h"
#include "ingest/udp_source.h"
#include "ingest/zmq_source.h"
#include "sinks/file_sink.h"
#include "sinks/sqlite_sink.h"
#include "sinks/zmq_sink.h"

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
    CHECK(c.sources[0].get<tcp_source_config>().codec == codec_kind::json);
    CHECK(c.sources[1].get<udp_source_config>().codec == codec_kind::syslog);
    CHECK(c.sources[2].get<zmq_source_config>().codec == codec_kind::json);
    CHECK(c.sources[3].get<generator_source_config>().codec == codec_kind::syslog);

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
    CHECK(udp.type() == "udp");
    CHECK(udp.get<udp_source_config>().address == "0.0.0.0:5514");
    CHECK(udp.get<udp_source_config>().framing == udp_framing::newline);
    CHECK(udp.get<udp_source_config>().codec == codec_kind::syslog);
    CHECK(udp.get<udp_source_config>().max_line_bytes == 8 * 1024);
    CHECK(udp.get<udp_source_config>().receive_buffer_bytes == 16ull << 20);

    const auto& bus = c.sources[1];
    CHECK(bus.name == "bus");
    CHECK(bus.type() == "zmq");
    CHECK(bus.get<zmq_source_config>().endpoint == "ipc:///tmp/sluice.sock");
    CHECK(bus.get<zmq_source_config>().socket == zmq_source_socket::sub);
    CHECK_FALSE(bus.get<zmq_source_config>().bind);
    CHECK(bus.get<zmq_source_config>().subscribe == std::vector<std::string>{"app.", "audit"});
    CHECK(bus.get<zmq_source_config>().framing == message_framing::newline);
    CHECK(bus.get<zmq_source_config>().codec == codec_kind::json);
    CHECK(bus.get<zmq_source_config>().max_line_bytes == 4096);
    CHECK(bus.get<zmq_source_config>().rcvhwm == 0);

    const auto& demo = c.sources[2];
    CHECK(demo.name == "demo");
    CHECK(demo.type() == "generator");
    CHECK(demo.get<generator_source_config>().rate == 0);
    CHECK(demo.get<generator_source_config>().count == 500);
    CHECK(demo.get<generator_source_config>().format == generator_format::json);
    CHECK(demo.get<generator_source_config>().codec == codec_kind::json);
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
    CHECK(c.sources[0].get<udp_source_config>().address == "127.0.0.1:5514");
    CHECK(c.sources[0].get<udp_source_config>().framing == udp_framing::datagram);
    CHECK(c.sources[0].get<udp_source_config>().codec == codec_kind::text);
    CHECK(c.sources[0].get<udp_source_config>().max_line_bytes == 65536);
    CHECK(c.sources[0].get<udp_source_config>().receive_buffer_bytes == 64ull << 20);
    CHECK(c.sources[1].get<zmq_source_config>().endpoint == "tcp://127.0.0.1:5171");
    CHECK(c.sources[1].get<zmq_source_config>().socket == zmq_source_socket::pull);
    CHECK(c.sources[1].get<zmq_source_config>().bind);
    CHECK(c.sources[1].get<zmq_source_config>().rcvhwm == 1000);
    CHECK(c.sources[1].get<zmq_source_config>().framing == message_framing::message);
    CHECK(c.sources[1].get<zmq_source_config>().codec == codec_kind::text);
    CHECK(c.sources[2].get<generator_source_config>().rate == 1000);
    CHECK(c.sources[2].get<generator_source_config>().count == 0);
    CHECK(c.sources[2].get<generator_source_config>().format == generator_format::syslog);
    CHECK(c.sources[2].get<generator_source_config>().codec == codec_kind::text);
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
    CHECK(forward.type() == "zmq");
    CHECK(forward.inputs == std::vector<std::string>{"app"});
    CHECK(forward.get<zmq_sink_config>().endpoints == std::vector<std::string>{"tcp://10.0.0.1:6000",
                                                            "tcp://aggregator.example:6000",
                                                            "ipc:///run/agg"});
    CHECK(forward.get<zmq_sink_config>().socket == zmq_sink_socket::pub);
    CHECK(forward.get<zmq_sink_config>().format == zmq_sink_format::json);
    CHECK(forward.get<zmq_sink_config>().framing == message_framing::newline);
    CHECK(forward.get<zmq_sink_config>().sndhwm == 0);
    CHECK(forward.batch.max_events == 10);
    CHECK(forward.batch.max_bytes == 4ull << 20);
    CHECK(forward.batch.timeout == 100ms);

    const auto& plain = c.sinks[2];
    CHECK(plain.get<zmq_sink_config>().endpoints == std::vector<std::string>{"tcp://127.0.0.1:6000"});
    CHECK(plain.get<zmq_sink_config>().socket == zmq_sink_socket::push);
    CHECK(plain.get<zmq_sink_config>().format == zmq_sink_format::text);
    CHECK(plain.get<zmq_sink_config>().framing == message_framing::message);
    CHECK(plain.get<zmq_sink_config>().sndhwm == 1000);
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

TEST_CASE("a file source reads its globs, timings and multiline", "[config]") {
    const auto c = parse_config(R"toml([sources.files]
type = "file"
include = ["/var/log/app/*.log", "/var/log/nginx/access.log"]
exclude = ["*.gz"]
read_from = "end"
watch = "poll"
poll_interval = "250ms"
rotate_wait = "2s"
line_flush = "500ms"
codec = "json"
max_line_bytes = "8KiB"
multiline = { start = '^\S', max_lines = 50, timeout = "300ms" }

[sinks.out]
type = "file"
)toml",
                                "test.toml");
    const auto& t = c.sources[0].get<tail_source_config>();
    CHECK(c.sources[0].type() == "file");
    CHECK(t.include == std::vector<std::string>{"/var/log/app/*.log", "/var/log/nginx/access.log"});
    CHECK(t.exclude == std::vector<std::string>{"*.gz"});
    CHECK(t.start_at == read_from::end);
    CHECK(t.watch == watch_mode::poll);
    CHECK(t.poll_interval == 250ms);
    CHECK(t.rotate_wait == 2s);
    CHECK(t.line_flush == 500ms);
    CHECK(t.codec == codec_kind::json);
    CHECK(t.max_line_bytes == 8192);
    REQUIRE(t.multiline.has_value());
    CHECK(t.multiline->start == R"(^\S)");
    CHECK(t.multiline->max_lines == 50);
    CHECK(t.multiline->timeout == 300ms);

    // Defaults.
    const auto d = parse_config(std::string(minimal) + "[sources.f]\ntype = \"file\"\n"
                                                       "include = [\"/tmp/*.log\"]\n",
                                "test.toml");
    const auto& dt = d.sources[1].get<tail_source_config>();
    CHECK(dt.start_at == read_from::beginning);
    CHECK(dt.watch == watch_mode::inotify);
    CHECK(dt.poll_interval == 1s);
    CHECK(dt.rotate_wait == 5s);
    CHECK(dt.line_flush == 1s);
    CHECK_FALSE(dt.multiline.has_value());
}

TEST_CASE("a file source's mistakes name their key", "[config]") {
    const std::string head = std::string(minimal) + "[sources.f]\ntype = \"file\"\n";
    const auto missing = only_problem(head);
    CHECK(missing.key == "sources.f.include");
    CHECK(contains(missing.message, "missing key 'include'"));
    CHECK(only_problem(head + "include = []\n").message == "must name at least one pattern");
    CHECK(only_problem(head + "include = \"/var/log/*.log\"\n").message ==
          "expected an array of glob patterns, got string");
    const auto regex = only_problem(head + "include = [\"/x/*.log\"]\n"
                                           "multiline = { start = \"(unclosed\" }\n");
    CHECK(regex.key == "sources.f.multiline.start");
    CHECK(regex.line == 9);
    CHECK(contains(regex.message, "invalid RE2 pattern '(unclosed'"));
    CHECK(only_problem(head + "include = [\"/x/*.log\"]\nmultiline = { max_lines = 5 }\n").key ==
          "sources.f.multiline.start");
    CHECK(only_problem(head + "include = [\"/x/*.log\"]\nread_from = \"middle\"\n").key ==
          "sources.f.read_from");
    CHECK(only_problem(head + "include = [\"/x/*.log\"]\npoll_interval = \"0s\"\n").key ==
          "sources.f.poll_interval");
    CHECK(contains(only_problem(head + "include = [\"/x/*.log\"]\nframing = \"newline\"\n").message,
                   "unknown key 'framing'"));
}
