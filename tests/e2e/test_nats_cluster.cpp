// The NATS JetStream harness itself: a 3-node cluster that holds an R3 file stream, dedups by
// Nats-Msg-Id, survives a SIGKILL of the stream leader and takes the node back. Later nats
// sink and source tests build on this; if it fails, theirs would fail for reasons of ours.
#include <nats/nats.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/e2e/harness.h"
#include "tests/e2e/nats_cluster.h"

namespace {

using namespace std::chrono_literals;

// nats.c objects, destroyed by their own functions (each a no-op on nullptr).
struct nats_deleter {
    void operator()(natsOptions* p) const { natsOptions_Destroy(p); }
    void operator()(natsConnection* p) const { natsConnection_Destroy(p); }
    void operator()(jsCtx* p) const { jsCtx_Destroy(p); }
    void operator()(jsStreamInfo* p) const { jsStreamInfo_Destroy(p); }
    void operator()(jsPubAck* p) const { jsPubAck_Destroy(p); }
};
template <typename T>
using nats_ptr = std::unique_ptr<T, nats_deleter>;

std::string status_text(natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0)) {
    std::string out = natsStatus_GetText(s);
    if (jerr != 0) {
        out += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
    }
    const char* last = nats_GetLastError(nullptr);
    if (last != nullptr && *last != '\0') {
        out += ": ";
        out += last;
    }
    return out;
}

// Called on nats.c's thread: no Catch assertions there, only counting.
void count_publish_error(jsCtx*, jsPubAckErr*, void* closure) {
    static_cast<std::atomic<int>*>(closure)->fetch_add(1);
}

constexpr const char* stream_name = "E2E";
constexpr const char* subject = "e2e.events";

// Messages in the stream, as its leader reports them; retried, since right after a leader
// change the request may time out or find no leader yet.
uint64_t stream_count(jsCtx* js) {
    uint64_t count = 0;
    e2e::wait_for(
        "stream info of " + std::string(stream_name),
        [&] {
            jsStreamInfo* raw = nullptr;
            jsErrCode jerr = static_cast<jsErrCode>(0);
            const natsStatus s = js_GetStreamInfo(&raw, js, stream_name, nullptr, &jerr);
            nats_ptr<jsStreamInfo> si(raw);
            if (s != NATS_OK) {
                return false;
            }
            count = si->State.Msgs;
            return true;
        },
        [] { return std::string("js_GetStreamInfo kept failing"); }, 30s, 100ms);
    return count;
}

// Publishes ids [first, first + n) asynchronously as "id-N", each with its Nats-Msg-Id,
// and waits for every ack; returns how many the server refused or never acked.
int publish_async(jsCtx* js, std::atomic<int>& errors, int first, int n) {
    const int before = errors.load();
    natsStatus first_failure = NATS_OK;
    for (int i = first; i < first + n && first_failure == NATS_OK; ++i) {
        const std::string id = "id-" + std::to_string(i);
        const std::string payload = e2e::make_line("nats", static_cast<uint64_t>(i));
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = id.c_str();  // nats.c writes it as the Nats-Msg-Id header
        const natsStatus s = js_PublishAsync(js, subject, payload.data(),
                                             static_cast<int>(payload.size()), &po);
        first_failure = s;
    }
    // One assertion for the loop, not one per message in the report.
    INFO("js_PublishAsync: " << status_text(first_failure));
    REQUIRE(first_failure == NATS_OK);
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = 20'000;
    const natsStatus s = js_PublishAsyncComplete(js, &wait);
    INFO("js_PublishAsyncComplete: " << status_text(s));
    REQUIRE(s == NATS_OK);
    return errors.load() - before;
}

}  // namespace

TEST_CASE("NATS cluster: an R3 stream dedups by msg id and survives a SIGKILL of its leader",
          "[e2e][nats]") {
    std::atomic<int> publish_errors{0};
    {
        e2e::nats_cluster cluster;
        INFO("cluster dir " << cluster.dir() << ", servers " << cluster.client_urls());

        natsOptions* raw_opts = nullptr;
        REQUIRE(natsOptions_Create(&raw_opts) == NATS_OK);
        nats_ptr<natsOptions> opts(raw_opts);
        const std::vector<std::string> urls = cluster.client_url_list();
        std::vector<const char*> url_ptrs;
        for (const auto& u : urls) {
            url_ptrs.push_back(u.c_str());
        }
        REQUIRE(natsOptions_SetServers(opts.get(), url_ptrs.data(),
                                       static_cast<int>(url_ptrs.size())) == NATS_OK);
        // Keep reconnecting, quickly: the node we are connected to may be the one killed.
        REQUIRE(natsOptions_SetMaxReconnect(opts.get(), -1) == NATS_OK);
        REQUIRE(natsOptions_SetReconnectWait(opts.get(), 100) == NATS_OK);

        natsConnection* raw_nc = nullptr;
        natsStatus s = natsConnection_Connect(&raw_nc, opts.get());
        nats_ptr<natsConnection> nc(raw_nc);
        INFO("natsConnection_Connect: " << status_text(s));
        REQUIRE(s == NATS_OK);

        jsOptions jso;
        jsOptions_Init(&jso);
        jso.Wait = 10'000;
        // Bounded in flight, so 10,000 publishes stall on acks rather than flood one node.
        jso.PublishAsync.MaxPending = 1'000;
        jso.PublishAsync.ErrHandler = count_publish_error;
        jso.PublishAsync.ErrHandlerClosure = &publish_errors;
        jsCtx* raw_js = nullptr;
        REQUIRE(natsConnection_JetStream(&raw_js, nc.get(), &jso) == NATS_OK);
        nats_ptr<jsCtx> js(raw_js);

        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        const char* subjects[] = {"e2e.>"};
        cfg.Name = stream_name;
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        cfg.Replicas = 3;
        cfg.Duplicates = std::chrono::nanoseconds(2min).count();  // spans the whole test
        jsStreamInfo* raw_si = nullptr;
        jsErrCode jerr = static_cast<jsErrCode>(0);
        s = js_AddStream(&raw_si, js.get(), &cfg, nullptr, &jerr);
        nats_ptr<jsStreamInfo> created(raw_si);
        INFO("js_AddStream: " << status_text(s, jerr));
        REQUIRE(s == NATS_OK);
        CHECK(created->Config->Replicas == 3);

        REQUIRE(publish_async(js.get(), publish_errors, 0, 10'000) == 0);
        CHECK(stream_count(js.get()) == 10'000);

        // The same ids again, inside the duplicate window: acked, and stored no second time.
        REQUIRE(publish_async(js.get(), publish_errors, 0, 100) == 0);
        CHECK(stream_count(js.get()) == 10'000);

        const size_t old_leader = cluster.wait_stream_leader(stream_name);
        cluster.kill_node(old_leader);
        const size_t new_leader = cluster.wait_stream_leader(stream_name, old_leader);
        CHECK(new_leader != old_leader);

        // Publishing works again once the client has (re)connected to a live node and the
        // new leader serves the stream; retried because both take a moment after the kill.
        e2e::wait_for(
            "a publish to stream " + std::string(stream_name) + " after the leader's SIGKILL",
            [&] {
                jsPubOptions po;
                jsPubOptions_Init(&po);
                po.MsgId = "after-kill";
                po.MaxWait = 2'000;
                jsPubAck* raw_pa = nullptr;
                jsErrCode perr = static_cast<jsErrCode>(0);
                const std::string payload = "after the leader was killed";
                const natsStatus ps =
                    js_Publish(&raw_pa, js.get(), subject, payload.data(),
                               static_cast<int>(payload.size()), &po, &perr);
                nats_ptr<jsPubAck> pa(raw_pa);
                return ps == NATS_OK;
            },
            [] { return std::string("js_Publish kept failing"); }, 30s, 100ms);
        CHECK(stream_count(js.get()) == 10'001);

        cluster.restart_node(old_leader);
        // Healthy includes caught up; the replica count says so directly.
        e2e::wait_for(
            "the restarted node's replica to hold 10,001 messages",
            [&] { return cluster.stream_messages(old_leader, stream_name) == 10'001u; },
            [&] {
                const auto n = cluster.stream_messages(old_leader, stream_name);
                return n ? std::to_string(*n) : std::string("no replica");
            },
            30s, 100ms);
        CHECK(publish_errors.load() == 0);
    }
    // Every nats.c object is gone by now: the library's threads and memory can go too.
    CHECK(nats_CloseAndWait(5'000) == NATS_OK);
}
