// The parts of the NATS tier that need no server: reading back the event JSON the nats sink
// publishes (every column survives, for each codec), the subjects made from a template, and the
// nats sink's and source's config keys. The tier itself, against real nats-server clusters, is
// tested end to end (tests/e2e/test_nats_pipeline.cpp).
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "app/config.h"
#include "config_test_helpers.h"
#include "ingest/codecs/batch_decoder.h"
#include "ingest/codecs/event_restore.h"
#include "ingest/nats_source.h"
#include "sinks/event_json.h"
#include "sinks/nats_sink.h"

using namespace sluice;
using namespace sluice::test;
using namespace std::chrono_literals;

namespace {

// A sealed batch of `lines` decoded with `codec`, as a source hands it to the queue.
batch decoded(codec_kind codec, const std::vector<std::string>& lines) {
    batch b(0);
    for (const auto& l : lines) {
        b.add_line(l);
    }
    batch_decoder d(codec);
    d.decode(b);
    b.received_ns = 1'764'000'000'123'456'789;
    b.host = "10.0.0.7";
    b.file = "/var/log/app.log";
    return b;
}

std::string text(const batch& b, const text_ref& r) {
    return r.is_null() ? "<null>" : std::string(b.view(r));
}

// Every column a sink stores, of event i.
std::string columns(const batch& b, size_t i, const std::string& source) {
    const event_meta none;
    const event_meta& m = b.has_meta() ? b.meta(i) : none;
    std::string host = text(b, m.host);
    if (host == "<null>" && !b.host.empty()) {
        host = b.host;
    }
    return source + "|" + std::to_string(b.received_ns) + "|" + b.file + "|" + host + "|" +
           std::to_string(m.ts_ns) + "|" + std::to_string(m.severity) + "|" +
           std::to_string(m.facility) + "|" + text(b, m.app) + "|" + text(b, m.procid) + "|" +
           text(b, m.msgid) + "|" + std::string(b.message(i)) + "|" + text(b, m.fields) + "|" +
           text(b, m.topic) + "|" + std::string(b.line(i));
}

// Publishes event i of `b` as the nats sink does and restores it as the nats source does.
batch round_trip(const batch& b, size_t i, const std::string& source) {
    std::string json;
    append_event_json(json, b, i, source, true);
    event_restorer r;
    restored_event e;
    INFO(json);
    REQUIRE(r.parse(json, e));
    batch out(3);
    out.source_name.assign(e.source);
    out.received_ns = e.received_ns;
    out.file.assign(e.file);
    append_restored(out, e);
    return out;
}

}  // namespace

TEST_CASE("events published as json are restored with every column", "[nats]") {
    const std::vector<std::pair<codec_kind, std::string>> cases{
        {codec_kind::syslog,
         "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 "
         "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"] An application event"},
        {codec_kind::syslog, "<34>Oct 11 22:14:15 mymachine su[77]: 'su root' failed on /dev/pts/8"},
        {codec_kind::json,
         R"({"ts":"2026-01-02T03:04:05.5Z","level":"warn","host":"web-1","service":"api",)"
         R"("msg":"slow \"query\"\ttook 3 s","user":{"id":7}})"},
        {codec_kind::text, "plain line with unicode \xc3\xa9 and a tab\there"},
        {codec_kind::text, ""},
    };
    for (const auto& [codec, line] : cases) {
        INFO(line);
        const batch b = decoded(codec, {line});
        const batch r = round_trip(b, 0, "app");
        CHECK(source_label(r, {"aggregator"}) == "app");
        CHECK(columns(r, 0, "app") == columns(b, 0, "app"));
    }
}

TEST_CASE("payloads that are not sluice's event json are left to the codec", "[nats]") {
    event_restorer r;
    restored_event e;
    CHECK_FALSE(r.parse("plain text", e));
    CHECK_FALSE(r.parse(R"({"message":"no received_at","source":"app"})", e));
    CHECK_FALSE(r.parse(R"({"received_at":"yesterday","source":"app","message":"x"})", e));
    CHECK_FALSE(
        r.parse(R"({"received_at":"2026-01-01T00:00:00Z","source":"../etc","message":"x"})", e));
    CHECK_FALSE(r.parse(
        R"({"received_at":"2026-01-01T00:00:00Z","source":"app","message":"x","severity":9})", e));
    CHECK_FALSE(r.parse(
        R"({"received_at":"2026-01-01T00:00:00Z","source":"app","message":"x","fields":[1]})", e));
    CHECK_FALSE(r.parse(R"({"received_at":"2026-01-01T00:00:00Z","source":"app")", e));
    REQUIRE(r.parse(R"({"received_at":"2026-01-01T00:00:00Z","source":"app","message":"x"})", e));
    CHECK(e.received_ns == 1'767'225'600'000'000'000);
    CHECK(e.host.data() == nullptr);
    CHECK(e.line.data() == nullptr);
}

TEST_CASE("nats subjects come from the template", "[nats]") {
    CHECK(nats_subject_filter("logs.{source}") == "logs.*");
    CHECK(nats_subject_filter("a.{source}.b.{x}") == "a.*.b.*");
    CHECK(nats_subject_filter("plain") == "plain");
    CHECK(nats_subject_for("logs.{source}", "app") == "logs.app");
    CHECK(nats_subject_for("logs.{source}", "a.b c*>") == "logs.a_b_c__");
    CHECK(nats_subject_for("{source}.{source}", "x") == "x.x");
}

TEST_CASE("a nats sink and a nats source read their keys", "[config][nats]") {
    const auto c = parse_config(R"toml([sources.bus]
type = "nats"
servers = ["nats://127.0.0.1:4222", "tls://10.0.0.2:4222"]
stream = "LOGS"
consumer = "aggregators"
framing = "newline"
fetch_batch = 100
ack_wait = "10s"
max_ack_pending = 500
creds = "agent.creds"
tls = { ca = "ca.pem" }
[sinks.bus]
type = "nats"
inputs = ["bus"]
servers = ["nats://127.0.0.1:4223"]
subject = "x.{source}"
stream = "OTHER"
replicas = 3
retention = "limits"
stream_max_bytes = "1MiB"
stream_max_msgs = 5000
duplicate_window = "5m"
format = "text"
events_per_message = 1
max_in_flight = 64
ack_timeout = "2s"
)toml",
                                "/etc/sluice/test.toml");
    const auto& src = c.sources.at(0).get<nats_source_config>();
    CHECK(src.connection.servers ==
          std::vector<std::string>{"nats://127.0.0.1:4222", "tls://10.0.0.2:4222"});
    CHECK(src.consumer == "aggregators");
    CHECK(src.framing == message_framing::newline);
    CHECK(src.fetch_batch == 100);
    CHECK(src.ack_wait == 10s);
    CHECK(src.max_ack_pending == 500);
    CHECK(src.connection.creds == "/etc/sluice/agent.creds");
    CHECK(src.connection.tls.ca == "/etc/sluice/ca.pem");
    const auto& sink = c.sinks.at(0).get<nats_sink_config>();
    CHECK(sink.subject == "x.{source}");
    CHECK(sink.stream == "OTHER");
    CHECK(sink.replicas == 3);
    CHECK(sink.retention == nats_retention::limits);
    CHECK(sink.stream_max_bytes == 1u << 20);
    CHECK(sink.stream_max_msgs == 5000);
    CHECK(sink.duplicate_window == 5min);
    CHECK(sink.format == nats_sink_format::text);
    CHECK(sink.events_per_message == 1);
    CHECK(sink.max_in_flight == 64);
    CHECK(sink.ack_timeout == 2s);
    CHECK(c.sinks.at(0).batch.max_events == 10'000);
}

TEST_CASE("bad nats values name their key", "[config][nats]") {
    const std::string sink = std::string(minimal) + "[sinks.bus]\ntype = \"nats\"\n";
    const auto server = only_problem(sink + "servers = [\"127.0.0.1:4222\"]\n");
    CHECK(server.key == "sinks.bus.servers");
    CHECK(contains(server.message, "invalid NATS server '127.0.0.1:4222'"));
    CHECK(only_problem(sink + "servers = []\n").message ==
          "expected a non-empty array of NATS server URLs");
    CHECK(contains(only_problem(sink + "servers = [\"nats://a:1\", \"nats://a:1\"]\n").message,
                   "listed twice"));
    CHECK(contains(only_problem(sink + "stream = \"a.b\"\n").message, "cannot name a JetStream"));
    CHECK(contains(only_problem(sink + "subject = \"logs..x\"\n").message, "not a subject"));
    CHECK(only_problem(sink + "replicas = 6\n").message == "must be at most 5");
    CHECK(only_problem(sink + "retention = \"forever\"\n").message ==
          "unknown value 'forever' (expected one of: workqueue, limits, interest)");
    CHECK(only_problem(sink + "format = \"xml\"\n").key == "sinks.bus.format");
    CHECK(only_problem(sink + "events_per_message = 0\n").key == "sinks.bus.events_per_message");
    CHECK(contains(only_problem(sink + "tls = { cert = \"c.pem\" }\n").message,
                   "cert and key go together"));
    const std::string source = "[sources.bus]\ntype = \"nats\"\n[sinks.out]\ntype = \"file\"\n";
    const auto framing = only_problem(source + "[sources.bus2]\ntype = \"nats\"\nframing = \"x\"\n");
    CHECK(framing.key == "sources.bus2.framing");
    CHECK(contains(only_problem("[sources.bus]\ntype = \"nats\"\nconsumer = \"a b\"\n"
                                "[sinks.out]\ntype = \"file\"\n")
                       .message,
                   "cannot name a JetStream"));
}
