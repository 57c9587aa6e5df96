#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "app/config.h"
#include "config_test_helpers.h"
#include "ingest/generator_source.h"
#include "ingest/tcp_source.h"
#include "ingest/udp_source.h"
#include "ingest/zmq_source.h"
#include "sinks/file_sink.h"
#include "sinks/sqlite_sink.h"
#include "sinks/zmq_sink.h"

using namespace sluice;
using namespace sluice::test;
using namespace std::chrono_literals;

TEST_CASE("a full config round-trips into the structs", "[config]") {
    const auto c = parse_config(R"toml(
data_dir = "/var/lib/sluice"
shutdown_timeout = "45s"

[api]
address = "127.0.0.1:9700"

[queue]
max_bytes = "128MiB"
max_events = 500000
when_full = "drop_oldest"
low_watermark = 0.5

[sources.app]
type = "tcp"
address = "127.0.0.1:5170"
framing = "octet_counting"
codec = "text"
max_line_bytes = "16KiB"
max_connections = 8

[sources.other]
type = "tcp"
address = "[::1]:5180"
max_line_bytes = 1000

[sinks.archive]
type = "file"
inputs = ["app", "other"]
path = "logs/%Y-%m-%d/{source}.log"
format = "json"
batch = { max_events = 100, max_bytes = "1MiB", timeout = "2s" }
fsync = true

[sinks.db]
type = "sqlite"
inputs = ["other"]
path = "/tmp/x.db"
table = "events"
fts = true
busy_timeout = "250ms"

[sinks.db.batch]
max_events = 50
timeout = "20ms"
)toml",
                                "full.toml");

    CHECK(c.data_dir == "/var/lib/sluice");
    CHECK(c.shutdown_timeout == 45s);
    CHECK(c.api.address == "127.0.0.1:9700");
    CHECK(c.queue.max_bytes == 128ull << 20);
    CHECK(c.queue.max_events == 500000);
    CHECK(c.queue.when_full == overflow_policy::drop_oldest);
    CHECK(c.queue.low_watermark == 0.5);

    REQUIRE(c.sources.size() == 2);
    const auto& app = c.sources[0];
    CHECK(app.name == "app");
    CHECK(app.type() == "tcp");
    CHECK(app.get<tcp_source_config>().address == "127.0.0.1:5170");
    CHECK(app.get<tcp_source_config>().framing_kind == framing::octet_counting);
    CHECK(app.get<tcp_source_config>().codec == codec_kind::text);
    CHECK(app.get<tcp_source_config>().max_line_bytes == 16 * 1024);
    CHECK(app.get<tcp_source_config>().max_connections == 8);
    const auto& other = c.sources[1];
    CHECK(other.name == "other");
    CHECK(other.get<tcp_source_config>().address == "[::1]:5180");
    CHECK(other.get<tcp_source_config>().framing_kind == framing::newline);
    CHECK(other.get<tcp_source_config>().max_line_bytes == 1000);
    CHECK(other.get<tcp_source_config>().max_connections == 1024);

    REQUIRE(c.sinks.size() == 2);
    const auto& archive = c.sinks[0];
    CHECK(archive.name == "archive");
    CHECK(archive.type() == "file");
    CHECK(archive.inputs == std::vector<std::string>{"app", "other"});
    CHECK(archive.get<file_sink_config>().path == "logs/%Y-%m-%d/{source}.log");
    CHECK(archive.get<file_sink_config>().format == file_format::json);
    CHECK(archive.get<file_sink_config>().fsync);
    CHECK(archive.batch.max_events == 100);
    CHECK(archive.batch.max_bytes == 1ull << 20);
    CHECK(archive.batch.timeout == 2s);
    const auto& db = c.sinks[1];
    CHECK(db.name == "db");
    CHECK(db.type() == "sqlite");
    CHECK(db.inputs == std::vector<std::string>{"other"});
    CHECK(db.get<sqlite_sink_config>().path == "/tmp/x.db");
    CHECK(db.get<sqlite_sink_config>().table == "events");
    CHECK(db.get<sqlite_sink_config>().fts);
    CHECK(db.get<sqlite_sink_config>().busy_timeout == 250ms);
    CHECK(db.batch.max_events == 50);
    CHECK(db.batch.max_bytes == 4ull << 20);  // the sqlite default, not overridden
    CHECK(db.batch.timeout == 20ms);
}

TEST_CASE("omitted keys take their defaults, which depend on the sink type", "[config]") {
    const auto c = parse_config(std::string(minimal) + R"toml(
[sinks.db]
type = "sqlite"
)toml",
                                "test.toml");
    CHECK(c.data_dir == "./sluice-data");
    CHECK(c.shutdown_timeout == 30s);
    CHECK(c.api.address == "127.0.0.1:9598");
    CHECK(c.queue.max_bytes == 64ull << 20);
    CHECK(c.queue.when_full == overflow_policy::block);
    REQUIRE(c.sources.size() == 1);
    CHECK(c.sources[0].get<tcp_source_config>().address == "127.0.0.1:5170");
    CHECK(c.sources[0].get<tcp_source_config>().codec == codec_kind::text);
    REQUIRE(c.sinks.size() == 2);
    CHECK(c.sinks[0].name == "out");
    CHECK(c.sinks[0].inputs.empty());
    CHECK(c.sinks[0].get<file_sink_config>().path == "logs/sluice.log");
    CHECK(c.sinks[0].get<file_sink_config>().format == file_format::text);
    CHECK(c.sinks[0].batch.max_events == 10000);
    CHECK(c.sinks[0].batch.max_bytes == 4ull << 20);
    CHECK(c.sinks[0].batch.timeout == 1s);
    CHECK(c.sinks[1].get<sqlite_sink_config>().path == "logs.db");
    CHECK(c.sinks[1].get<sqlite_sink_config>().table == "logs");
    CHECK(c.sinks[1].batch.max_events == 5000);
    CHECK(c.sinks[1].batch.max_bytes == 4ull << 20);
    CHECK(c.sinks[1].batch.timeout == 200ms);
}

TEST_CASE("sources and sinks keep the order of the file", "[config]") {
    const auto c = parse_config(R"toml(
[sources.zeta]
type = "tcp"
address = "127.0.0.1:6001"
[sources.alpha]
type = "tcp"
address = "127.0.0.1:6002"
[sinks.y]
type = "file"
[sinks.b]
type = "sqlite"
)toml",
                                "test.toml");
    REQUIRE(c.sources.size() == 2);
    CHECK(c.sources[0].name == "zeta");
    CHECK(c.sources[1].name == "alpha");
    REQUIRE(c.sinks.size() == 2);
    CHECK(c.sinks[0].name == "y");
    CHECK(c.sinks[1].name == "b");
}

TEST_CASE("an unknown top-level key names its line and key", "[config]") {
    const auto p = only_problem("data_dri = \"x\"\n" + std::string(minimal));
    CHECK(p.file == "test.toml");
    CHECK(p.line == 1);
    CHECK(p.column == 1);
    CHECK(p.key == "data_dri");
    CHECK(contains(p.message, "unknown key 'data_dri'"));
    CHECK(contains(p.message, "data_dir"));  // the keys that would have been right

    // A misspelt section is the same mistake one level up.
    const auto q = only_problem(std::string(minimal) + "[sink.other]\ntype = \"file\"\n");
    CHECK(q.line == 6);
    CHECK(q.key == "sink");
}

TEST_CASE("an unknown key in a source names its line and key", "[config]") {
    const auto p = only_problem(std::string(minimal) + R"toml([sources.net]
type = "tcp"
address = "127.0.0.1:7000"
framng = "newline"
)toml");
    CHECK(p.line == 9);
    CHECK(p.column == 1);
    CHECK(p.key == "sources.net.framng");
    CHECK(contains(p.message, "unknown key 'framng'"));
}

TEST_CASE("an unknown key in an inline batch table names its column", "[config]") {
    const auto p =
        only_problem(std::string(minimal) + "batch = { max_events = 10, max_event = 20 }\n");
    CHECK(p.line == 6);
    CHECK(p.column == 28);
    CHECK(p.key == "sinks.out.batch.max_event");
}

TEST_CASE("a value of the wrong type says what was expected and what was found", "[config]") {
    const auto p = only_problem(std::string(minimal) + "fsync = \"yes\"\n");
    CHECK(p.line == 6);
    CHECK(p.column == 9);
    CHECK(p.key == "sinks.out.fsync");
    CHECK(p.message == "expected a boolean, got string");

    const auto q = only_problem("shutdown_timeout = 30\n" + std::string(minimal));
    CHECK(q.key == "shutdown_timeout");
    CHECK(contains(q.message, "got integer"));

    const auto r = only_problem("api = \"127.0.0.1:1\"\n" + std::string(minimal));
    CHECK(r.key == "api");
    CHECK(r.message == "expected a table, got string");

    const auto s = only_problem(R"toml([sources.app]
type = "tcp"
max_connections = "many"
[sinks.out]
type = "file"
)toml");
    CHECK(s.line == 3);
    CHECK(s.key == "sources.app.max_connections");
    CHECK(s.message == "expected an integer, got string");
}

TEST_CASE("a malformed size is reported", "[config]") {
    const auto p = only_problem("[queue]\nmax_bytes = \"64 megs\"\n" + std::string(minimal));
    CHECK(p.line == 2);
    CHECK(p.column == 13);
    CHECK(p.key == "queue.max_bytes");
    CHECK(contains(p.message, "invalid size '64 megs'"));

    CHECK(only_problem("[queue]\nmax_bytes = 0\n" + std::string(minimal)).message ==
          "must be greater than 0, got 0");
    CHECK(only_problem("[queue]\nmax_bytes = \"0MiB\"\n" + std::string(minimal)).message ==
          "must be greater than 0");
    CHECK(contains(only_problem("[queue]\nmax_bytes = 1.5\n" + std::string(minimal)).message,
                   "got float"));
}

TEST_CASE("a malformed duration is reported", "[config]") {
    const auto p = only_problem(std::string(minimal) + "[sinks.out.batch]\ntimeout = \"soon\"\n");
    CHECK(p.line == 7);
    CHECK(p.column == 11);
    CHECK(p.key == "sinks.out.batch.timeout");
    CHECK(contains(p.message, "invalid duration 'soon'"));

    const auto zero = only_problem(std::string(minimal) + "batch = { timeout = \"0s\" }\n");
    CHECK(zero.key == "sinks.out.batch.timeout");
    CHECK(zero.message == "must be greater than 0");
}

TEST_CASE("an unknown enum value lists the valid ones", "[config]") {
    const auto p = only_problem("[queue]\nwhen_full = \"panic\"\n" + std::string(minimal));
    CHECK(p.line == 2);
    CHECK(p.key == "queue.when_full");
    CHECK(p.message == "unknown value 'panic' (expected one of: block, drop_newest, drop_oldest)");

    CHECK(only_problem(std::string(minimal) + "format = \"xml\"\n").key == "sinks.out.format");
    const auto framing = only_problem(R"toml([sources.app]
type = "tcp"
framing = "crlf"
[sinks.out]
type = "file"
)toml");
    CHECK(framing.key == "sources.app.framing");
    CHECK(contains(framing.message, "newline, octet_counting"));
}

TEST_CASE("unknown types are named", "[config]") {
    const auto kafka = only_problem(std::string(minimal) + "[sources.k]\ntype = \"kafka\"\n");
    CHECK(kafka.key == "sources.k.type");
    CHECK(kafka.message ==
          "unknown source type 'kafka' (expected one of: tcp, udp, zmq, file, nats, generator)");
    CHECK(only_problem(std::string(minimal) + "[sinks.x]\ntype = \"kafka\"\n").message ==
          "unknown sink type 'kafka' (expected one of: file, sqlite, zmq, nats)");
    const auto missing = only_problem(std::string(minimal) + "[sinks.x]\npath = \"a.log\"\n");
    CHECK(missing.line == 6);
    CHECK(missing.key == "sinks.x.type");
    CHECK(contains(missing.message, "missing key 'type'"));
}

TEST_CASE("inputs must name sources that exist", "[config]") {
    const auto p = only_problem(std::string(minimal) + "inputs = [\"app\", \"ap\"]\n");
    CHECK(p.line == 6);
    CHECK(p.column == 18);
    CHECK(p.key == "sinks.out.inputs");
    CHECK(p.message == "unknown source 'ap'");

    // A sink may name a source written further down the file.
    const auto c = parse_config(R"toml([sinks.out]
type = "file"
inputs = ["late"]
[sources.late]
type = "tcp"
)toml",
                                "test.toml");
    CHECK(c.sinks[0].inputs == std::vector<std::string>{"late"});

    CHECK(contains(only_problem(std::string(minimal) + "inputs = []\n").message,
                   "at least one source"));
    CHECK(only_problem(std::string(minimal) + "inputs = \"app\"\n").message ==
          "expected an array of source names, got string");
    CHECK(only_problem(std::string(minimal) + "inputs = [\"app\", \"app\"]\n").message ==
          "source 'app' is listed twice");
    // A source that is itself broken is reported once, not again by every sink reading it.
    CHECK(only_problem(std::string(minimal) +
                       "inputs = [\"bus\"]\n[sources.bus]\ntype = \"nats\"\nstream = 1\n")
              .key == "sources.bus.stream");
}

TEST_CASE("a TOML syntax error is a problem with its position", "[config]") {
    const auto p = only_problem("data_dir = \"x\"\n[queue\nmax_events = 1\n");
    CHECK(p.file == "test.toml");
    CHECK(p.line == 2);
    CHECK(p.column > 0);
    CHECK(p.key.empty());
    CHECK_FALSE(p.message.empty());
    CHECK(p.to_string().rfind("test.toml:2:", 0) == 0);
}

TEST_CASE("a config without sources or sinks is refused", "[config]") {
    auto problems = problems_of("data_dir = \"x\"\n");
    REQUIRE(problems.size() == 2);
    CHECK(problems[0].key == "sources");
    CHECK(problems[0].line == 0);
    CHECK(contains(problems[0].message, "at least one source"));
    CHECK(problems[1].key == "sinks");
    CHECK(problems[0].to_string() ==
          "test.toml: sources: at least one source is required ([sources.NAME])");

    const auto empty = only_problem("[sources]\n[sinks.out]\ntype = \"file\"\n");
    CHECK(empty.key == "sources");
    CHECK(empty.line == 1);
}

TEST_CASE("every problem is reported, not just the first", "[config]") {
    const std::string text = R"toml(data_dri = "x"
[queue]
when_full = "panic"
max_events = 0
[sources.app]
type = "tcp"
address = "127.0.0.1"
max_line_bytes = "big"
[sinks.out]
type = "file"
inputs = ["nope"]
batch = { timeout = "later", colour = "red" }
)toml";
    const auto problems = problems_of(text);
    std::vector<std::string> keys;
    std::vector<int64_t> lines;
    for (const auto& p : problems) {
        keys.push_back(p.key);
        lines.push_back(p.line);
    }
    CHECK(keys == std::vector<std::string>{"data_dri", "queue.when_full", "queue.max_events",
                                           "sources.app.address", "sources.app.max_line_bytes",
                                           "sinks.out.inputs", "sinks.out.batch.timeout",
                                           "sinks.out.batch.colour"});
    CHECK(lines == std::vector<int64_t>{1, 3, 4, 7, 8, 11, 12, 12});

    try {
        parse_config(text, "multi.toml");
        FAIL("accepted");
    } catch (const config_error& e) {
        const std::string what = e.what();
        CHECK(std::count(what.begin(), what.end(), '\n') == 7);
        CHECK(what.rfind("multi.toml:1:1: data_dri: unknown key 'data_dri'", 0) == 0);
        CHECK(contains(what,
                       "\nmulti.toml:7:11: sources.app.address: address '127.0.0.1' "
                       "has no port (expected host:port)\n"));
    }
}

TEST_CASE("names, addresses and limits are validated", "[config]") {
    const auto name = only_problem(std::string(minimal) +
                                   "[sources.\"my app\"]\ntype = \"tcp\"\n"
                                   "address = \"127.0.0.1:0\"\n");
    CHECK(name.key == "sources.my app");
    CHECK(name.line == 6);
    CHECK(contains(name.message, "invalid source name"));

    CHECK(
        contains(only_problem(std::string(minimal) + "[sinks.\"a.b\"]\ntype = \"file\"\n").message,
                 "invalid sink name 'a.b'"));

    const auto api = only_problem("[api]\naddress = \"localhost:http\"\n" + std::string(minimal));
    CHECK(api.key == "api.address");
    CHECK(contains(api.message, "invalid port"));

    // Two listeners on one port would fail at start-up; say so now.
    const auto clash = only_problem(std::string(minimal) + "[sources.b]\ntype = \"tcp\"\n");
    CHECK(clash.key == "sources.b.address");
    CHECK(clash.message == "address '127.0.0.1:5170' is already used by sources.app.address");
    CHECK(only_problem("[api]\naddress = \"127.0.0.1:5170\"\n" + std::string(minimal)).key ==
          "api.address");
    // Port 0 asks for any free port, so it never collides.
    CHECK_NOTHROW(parse_config(std::string(minimal) + "[sources.b]\ntype = \"tcp\"\n"
                                                      "address = \"127.0.0.1:0\"\n"
                                                      "[sources.c]\ntype = \"tcp\"\n"
                                                      "address = \"127.0.0.1:0\"\n",
                               "test.toml"));

    CHECK(contains(only_problem(std::string(minimal) + "[sinks.db]\ntype = \"sqlite\"\n"
                                                       "table = \"logs; drop\"\n")
                       .message,
                   "invalid table name"));
    CHECK(only_problem(std::string(minimal) + "path = \"\"\n").message == "must not be empty");
    CHECK(contains(only_problem("[queue]\nlow_watermark = 1.5\n" + std::string(minimal)).message,
                   "between 0 and 1"));
    CHECK(only_problem(std::string(minimal) + "batch = { max_events = -3 }\n").message ==
          "must be greater than 0, got -3");

    std::string many(minimal);
    for (int i = 0; i < 65; ++i) {
        many += "[sinks.s" + std::to_string(i) + "]\ntype = \"file\"\n";
    }
    const auto too_many = only_problem(many);
    CHECK(too_many.key == "sinks");
    CHECK(too_many.message == "at most 64 sinks are supported, got 66");
}

TEST_CASE("load_config reads a file and names it in problems", "[config]") {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("sluice-test-config-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto good = dir / "good.toml";
    std::ofstream(good) << minimal;
    CHECK(load_config(good).sinks.at(0).name == "out");

    const auto bad = dir / "bad.toml";
    std::ofstream(bad) << minimal << "fsync = 1\n";
    try {
        load_config(bad);
        FAIL("accepted");
    } catch (const config_error& e) {
        REQUIRE(e.problems().size() == 1);
        CHECK(e.problems()[0].file == bad.string());
        CHECK(e.problems()[0].line == 6);
    }

    // Unreadable is not a config problem: it is a plain sluice::error with the reason.
    try {
        load_config(dir / "missing.toml");
        FAIL("accepted");
    } catch (const config_error&) {
        FAIL("a missing file is not a config_error");
    } catch (const error& e) {
        CHECK(contains(e.what(), "cannot read config"));
        CHECK(contains(e.what(), "No such file or directory"));
    }
    CHECK_THROWS_AS(load_config(dir), error);
    std::filesystem::remove_all(dir);
}

TEST_CASE("default_config is SPEC's built-in default", "[config]") {
    const auto c = default_config();
    CHECK(c.data_dir == "./sluice-data");
    CHECK(c.api.address == "127.0.0.1:9598");
    CHECK(c.queue.max_bytes == 64ull << 20);
    CHECK(c.queue.when_full == overflow_policy::block);
    REQUIRE(c.sources.size() == 2);
    CHECK(c.sources[0].name == "tcp");
    CHECK(c.sources[0].type() == "tcp");
    CHECK(c.sources[0].get<tcp_source_config>().address == "127.0.0.1:5170");
    CHECK(c.sources[0].get<tcp_source_config>().framing_kind == framing::newline);
    CHECK(c.sources[0].get<tcp_source_config>().codec == codec_kind::text);
    CHECK(c.sources[1].name == "zmq");
    CHECK(c.sources[1].type() == "zmq");
    CHECK(c.sources[1].get<zmq_source_config>().endpoint == "tcp://127.0.0.1:5171");
    CHECK(c.sources[1].get<zmq_source_config>().socket == zmq_source_socket::pull);
    CHECK(c.sources[1].get<zmq_source_config>().bind);
    CHECK(c.sources[1].get<zmq_source_config>().codec == codec_kind::text);
    REQUIRE(c.sinks.size() == 2);
    CHECK(c.sinks[0].name == "file");
    CHECK(c.sinks[0].type() == "file");
    CHECK(c.sinks[0].get<file_sink_config>().path == "logs/sluice.log");
    CHECK(c.sinks[0].get<file_sink_config>().format == file_format::text);
    CHECK(c.sinks[0].inputs.empty());
    CHECK(c.sinks[0].batch.max_events == 10000);
    CHECK(c.sinks[0].batch.timeout == 1s);
    CHECK(c.sinks[1].name == "sqlite");
    CHECK(c.sinks[1].type() == "sqlite");
    CHECK(c.sinks[1].get<sqlite_sink_config>().path == "logs.db");
    CHECK(c.sinks[1].get<sqlite_sink_config>().table == "logs");
    CHECK(c.sinks[1].batch.max_events == 5000);
    CHECK(c.sinks[1].batch.max_bytes == 4ull << 20);
    CHECK(c.sinks[1].batch.timeout == 200ms);
}

TEST_CASE("security defaults: listeners bind loopback, names cannot leave a directory",
          "[config]") {
    // Nothing listens beyond this machine unless the config says so.
    const auto c = parse_config(R"toml(
[sources.t]
type = "tcp"
[sources.u]
type = "udp"
[sources.z]
type = "zmq"
[sinks.out]
type = "file"
)toml",
                                "test.toml");
    CHECK(c.api.address.rfind("127.0.0.1:", 0) == 0);
    CHECK(c.sources[0].get<tcp_source_config>().address.rfind("127.0.0.1:", 0) == 0);
    CHECK(c.sources[1].get<udp_source_config>().address.rfind("127.0.0.1:", 0) == 0);
    CHECK(c.sources[2].get<zmq_source_config>().endpoint.rfind("tcp://127.0.0.1:", 0) == 0);
    // A file sink path made from {source} stays in its directory: a source name can hold
    // neither '/' nor '.', so "{source}" never becomes "..", "../x" or "/etc".
    for (const char* name : {"..", "../etc", "a/b", "/etc", ".hidden"}) {
        const auto p = only_problem("[sources.\"" + std::string(name) +
                                    "\"]\ntype = \"tcp\"\n[sinks.out]\ntype = \"file\"\n"
                                    "path = \"logs/{source}.log\"\n");
        INFO(name);
        CHECK(contains(p.message, "invalid source name"));
    }
}

TEST_CASE("io_threads is \"auto\" (0) by default, or a number of threads from 1 to 1024",
          "[config]") {
    CHECK(parse_config(std::string(minimal), "test.toml").io_threads == 0);
    CHECK(parse_config("io_threads = \"auto\"\n" + std::string(minimal), "test.toml")
              .io_threads == 0);
    CHECK(parse_config("io_threads = 4\n" + std::string(minimal), "test.toml").io_threads == 4);
    for (const std::string bad : {"0", "1025", "-2", "\"many\"", "2.5"}) {
        INFO("io_threads = " << bad);
        const auto p = only_problem("io_threads = " + bad + "\n" + std::string(minimal));
        CHECK(p.key == "io_threads");
        CHECK(p.line == 1);
    }
}
