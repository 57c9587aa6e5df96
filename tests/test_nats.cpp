// The nats sink and the nats source against a real nats-server (one node, JetStream): a write
// counts only once every message is acknowledged, a failed write resends exactly the messages
// that were not, under their ids; the source restores what the sink published and acknowledges
// a message only once its batch is committed. Cluster behaviour (leader loss, aggregators
// sharing a consumer, kill -9) is in tests/e2e/test_nats_pipeline.cpp.
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "ingest/nats_source.h"
#include "nats_server.h"
#include "sinks/nats_sink.h"
#include "source_harness.h"
#include "temp_dir.h"
#include "test_support.h"
#include "tls_certs.h"

using namespace sluice;
using namespace sluice::test;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> numbered(const std::string& prefix, int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) {
        out.push_back(prefix + " line " + std::to_string(i));
    }
    return out;
}

// Every message of `stream` (a fresh ephemeral pull consumer), acknowledged.
std::vector<nats_ptr<natsMsg>> read_stream(const nats_server& server, const std::string& subject,
                                           size_t expected) {
    natsSubscription* raw = nullptr;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    REQUIRE(js_PullSubscribe(&raw, server.js(), subject.c_str(), nullptr, nullptr, &so,
                             nullptr) == NATS_OK);
    nats_ptr<natsSubscription> sub(raw);
    std::vector<nats_ptr<natsMsg>> out;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (out.size() < expected && std::chrono::steady_clock::now() < deadline) {
        natsMsgList list{nullptr, 0};
        if (natsSubscription_Fetch(&list, sub.get(), 100, 500, nullptr) == NATS_OK) {
            for (int i = 0; i < list.Count; ++i) {
                natsMsg_Ack(list.Msgs[i], nullptr);
                out.emplace_back(list.Msgs[i]);
                list.Msgs[i] = nullptr;
            }
        }
        natsMsgList_Destroy(&list);
    }
    natsSubscription_Unsubscribe(sub.get());
    return out;
}

std::string header(natsMsg* m, const char* key) {
    const char* v = nullptr;
    return natsMsgHeader_Get(m, key, &v) == NATS_OK ? v : "";
}

// A kind_metric of a nats sink or source, by key.
template <typename Component>
double figure(const Component& c, std::string_view key) {
    std::vector<kind_metric> m;
    c.kind_metrics(m);
    for (const auto& f : m) {
        if (f.key == key) {
            return f.value;
        }
    }
    FAIL("no figure " << key);
    return 0;
}

void wait_connected(const sink& k) {
    REQUIRE(eventually([&] { return figure(k, "connected") == 1; }, 10s));
}

}  // namespace

TEST_CASE("a nats sink's write counts once JetStream acknowledged every message", "[nats]") {
    nats_server server;
    nats_sink_config c;
    c.connection = server.connection();
    c.events_per_message = 4;
    nats_sink k("bus", {}, c, {"app", "web"});
    wait_connected(k);
    const std::vector<batch_ptr> batches{batch_of_lines(0, numbered("app", 10)),
                                         batch_of_lines(1, numbered("web", 3))};
    REQUIRE(k.write(batches) == write_status::ok);
    // 4 + 4 + 2 of the first batch, 3 of the second: messages never span batches.
    CHECK(server.stream_messages("LOGS") == 4);
    CHECK(figure(k, "acks_total") == 4);
    CHECK(figure(k, "in_flight") == 0);

    const auto msgs = read_stream(server, "logs.>", 4);
    REQUIRE(msgs.size() == 4);
    std::set<std::string> ids;
    event_restorer r;
    restored_event e;
    std::vector<std::string> lines;
    for (const auto& m : msgs) {
        ids.insert(header(m.get(), "Nats-Msg-Id"));
        const std::string subject = natsMsg_GetSubject(m.get());
        const std::string data(natsMsg_GetData(m.get()),
                               static_cast<size_t>(natsMsg_GetDataLength(m.get())));
        size_t n = 0;
        for (size_t at = 0; at <= data.size();) {
            const size_t nl = std::min(data.find('\n', at), data.size());
            REQUIRE(r.parse(data.substr(at, nl - at), e));
            CHECK(subject == "logs." + std::string(e.source));
            lines.emplace_back(e.message);
            ++n;
            at = nl + 1;
        }
        CHECK(header(m.get(), "Sluice-Events") == (n > 1 ? std::to_string(n) : ""));
    }
    CHECK(ids.size() == 4);
    auto expected = numbered("app", 10);
    for (const auto& l : numbered("web", 3)) {
        expected.push_back(l);
    }
    CHECK(lines == expected);
}

TEST_CASE("a nats sink's retry resends only what JetStream did not acknowledge", "[nats]") {
    nats_server server;
    // A stream that takes 3 messages and refuses more (discard new).
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = "LOGS";
    const char* subjects[] = {"logs.*"};
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.MaxMsgs = 3;
    sc.Discard = js_DiscardNew;
    jsStreamInfo* si = nullptr;
    REQUIRE(js_AddStream(&si, server.js(), &sc, nullptr, nullptr) == NATS_OK);
    jsStreamInfo_Destroy(si);

    nats_sink_config c;
    c.connection = server.connection();
    c.events_per_message = 1;
    c.max_in_flight = 1;  // one at a time: the first three are the ones stored
    nats_sink k("bus", {}, c, {"app"});
    wait_connected(k);
    const std::vector<batch_ptr> batches{batch_of_lines(0, numbered("app", 5))};
    CHECK(k.write(batches) == write_status::retry);
    CHECK(server.stream_messages("LOGS") == 3);
    CHECK(figure(k, "acks_total") == 3);
    CHECK(figure(k, "publish_errors_total") == 2);
    CHECK_THAT(k.last_error(), Catch::Contains("2 of 5 message(s)"));

    // Room again: the retry sends the last two only, and the write is done.
    sc.MaxMsgs = -1;
    REQUIRE(js_UpdateStream(&si, server.js(), &sc, nullptr, nullptr) == NATS_OK);
    jsStreamInfo_Destroy(si);
    CHECK(k.write(batches) == write_status::ok);
    CHECK(server.stream_messages("LOGS") == 5);
    CHECK(figure(k, "resent_total") == 2);
    CHECK(figure(k, "acks_total") == 5);
    CHECK(figure(k, "duplicates_total") == 0);

    const auto msgs = read_stream(server, "logs.>", 5);
    REQUIRE(msgs.size() == 5);
    std::vector<std::string> lines;
    std::set<std::string> ids;
    event_restorer r;
    restored_event e;
    for (const auto& m : msgs) {
        ids.insert(header(m.get(), "Nats-Msg-Id"));
        REQUIRE(r.parse({natsMsg_GetData(m.get()),
                         static_cast<size_t>(natsMsg_GetDataLength(m.get()))},
                        e));
        lines.emplace_back(e.message);
    }
    CHECK(lines == numbered("app", 5));
    CHECK(ids.size() == 5);
}

TEST_CASE("a nats source restores the sink's events and acks a message once it is written",
          "[nats]") {
    nats_server server;
    {
        nats_sink_config c;
        c.connection = server.connection();
        c.events_per_message = 8;
        nats_sink k("bus", {}, c, {"app", "web"});
        wait_connected(k);
        auto a = std::make_shared<batch>(0);
        for (const auto& l : numbered("app", 20)) {
            a->add_line(l);
        }
        a->received_ns = 1'700'000'000'123'000'000;
        a->host = "10.1.2.3";
        a->file = "/var/log/a.log";
        REQUIRE(k.write(std::vector<batch_ptr>{a, batch_of_lines(1, numbered("web", 5))}) ==
                write_status::ok);
    }
    // Something not in sluice's format, two lines in one message.
    REQUIRE(natsConnection_PublishString(server.conn(), "logs.raw", "raw one\nraw two") ==
            NATS_OK);
    natsConnection_Flush(server.conn());
    REQUIRE(eventually([&] { return server.stream_messages("LOGS") == 5; }, 5s));

    harness h;
    nats_source_config c;
    c.connection = server.connection();
    c.consumer = "aggs";
    c.framing = message_framing::newline;
    nats_source s("bus", 0, h.io, h.q, c);
    h.src = &s;
    s.start();
    // Read, but not written yet: nothing is acknowledged.
    std::vector<batch_ptr> held;
    h.pump_until(
        [&] {
            h.q.read_until(0, h.cursor, clk::now(), held, UINT64_MAX, UINT64_MAX);
            uint64_t n = 0;
            for (const auto& b : held) {
                n += b->event_count();
            }
            return n == 27;
        },
        false, "27 events");
    CHECK(server.consumer_pending("LOGS", "aggs").first == 5);
    CHECK(figure(s, "acked_total") == 0);

    std::vector<std::string> app, web, raw;
    for (const auto& b : held) {
        for (size_t i = 0; i < b->event_count(); ++i) {
            if (b->source_name == "app") {
                app.emplace_back(b->line(i));
                CHECK(b->received_ns == 1'700'000'000'123'000'000);
                CHECK(b->file == "/var/log/a.log");
                REQUIRE(b->has_meta());
                CHECK(b->view(b->meta(i).host) == "10.1.2.3");
            } else if (b->source_name == "web") {
                web.emplace_back(b->line(i));
            } else {
                CHECK(b->source_name.empty());
                raw.emplace_back(b->line(i));
            }
        }
    }
    CHECK(app == numbered("app", 20));
    CHECK(web == numbered("web", 5));
    CHECK(raw == std::vector<std::string>{"raw one", "raw two"});

    // Written: every message is acknowledged, once.
    h.q.commit(0, h.cursor);
    h.pump_until([&] { return figure(s, "acked_total") == 5; }, false, "5 acks");
    REQUIRE(eventually([&] { return server.consumer_pending("LOGS", "aggs").first == 0; }, 5s));
    CHECK(figure(s, "fetched_total") == 5);
    CHECK(figure(s, "redelivered_total") == 0);
    h.stop_and_settle();
}

TEST_CASE("a nats sink reaches a TLS server with its CA and client certificate", "[nats][tls]") {
    temp_dir certs_dir("sluice-nats-certs");
    const tls_certs certs(certs_dir.path());
    nats_server server(&certs);
    nats_sink_config c;
    c.connection = server.connection();
    nats_sink k("bus", {}, c, {"app"});
    wait_connected(k);
    REQUIRE(k.write(std::vector<batch_ptr>{batch_of_lines(0, numbered("app", 3))}) ==
            write_status::ok);
    CHECK(server.stream_messages("LOGS") == 1);

    // A certificate of another CA does not get in: the sink stays unconnected and retries.
    nats_sink_config stranger = c;
    stranger.connection.tls.cert = certs.other_client;
    stranger.connection.tls.key = certs.other_client_key;
    nats_sink other("other", {}, stranger, {"app"});
    CHECK(other.write(std::vector<batch_ptr>{batch_of_lines(0, {"x"})}) == write_status::retry);
    CHECK_THAT(other.last_error(), Catch::Contains("not connected"));
    CHECK(server.stream_messages("LOGS") == 1);
}

TEST_CASE("a nats sink's text messages are the lines, packed within and across batches",
          "[nats]") {
    nats_server server;
    nats_sink_config c;
    c.connection = server.connection();
    c.format = nats_sink_format::text;
    c.events_per_message = 4;
    nats_sink k("bus", {}, c, {"app"});
    wait_connected(k);
    // 3 + 3 events of one source: messages of 4 (across the two batches) and 2.
    REQUIRE(k.write(std::vector<batch_ptr>{batch_of_lines(0, numbered("a", 3)),
                                           batch_of_lines(0, numbered("b", 3))}) ==
            write_status::ok);
    const auto msgs = read_stream(server, "logs.>", 2);
    REQUIRE(msgs.size() == 2);
    std::vector<std::string> payloads;
    for (const auto& m : msgs) {
        payloads.emplace_back(natsMsg_GetData(m.get()),
                              static_cast<size_t>(natsMsg_GetDataLength(m.get())));
    }
    CHECK(payloads == std::vector<std::string>{"a line 0\na line 1\na line 2\nb line 0",
                                               "b line 1\nb line 2"});
    CHECK(header(msgs[0].get(), "Sluice-Events") == "4");
}
