// nats_bare: the bare nats.c yardsticks of sluice's `nats` sink and `nats` source (bench/nats.py).
// Each mode does the least nats.c lets a JetStream client do for the same work, at the client
// library's defaults otherwise, on one connection and one thread of its own (plus nats.c's).
//
//   publish  --servers URLS --subject S --count N [--size B] [--in-flight K] [--per-message M]
//            [--logs DIR] [--stream NAME --replicas R]
//       The agent's yardstick. Builds N distinct real log lines (bench/lines.h: the lines
//       loadgen sends; --size B, if given, cuts or pads each to B bytes) before the clock starts,
//       then publishes them with js_PublishMsgAsync, M lines per message joined by '\n' (no
//       trailing '\n'; M = 1 by default), each message with a unique Nats-Msg-Id header, at most
//       K unacknowledged (jsOptions.PublishAsync.MaxPending = K, default 4096); an AckHandler
//       counts acks and errors. The clock stops when js_PublishAsyncComplete returns.
//       With --stream, the stream (subjects = S with its last token replaced by '*', file
//       storage, R replicas, --retention workqueue|limits|interest, default workqueue as a
//       sluice nats sink creates it; duplicate window: the server's 2 min, as sluice's) is
//       created first if missing, outside the clock.
//   consume  --servers URLS --stream S --consumer C (--count N | --lines L) [--batch F]
//            [--out FILE] [--max-ack-pending P]
//       The aggregator's yardstick. Creates durable pull consumer C on S (explicit acks, deliver
//       all, max ack pending P or the server's default; sluice's is 20000), binds a
//       js_PullSubscribe to it and reads N messages (or until L lines are counted) with
//       natsSubscription_Fetch batches of F (default 256), natsMsg_Ack on each; lines are
//       counted inside each message ('\n'-separated). With --out, each message's lines are
//       appended (with a final '\n') to a 1 MiB buffer written to FILE when full, as a file
//       sink would. The clock runs from the start of the process (so it covers connecting and
//       creating the consumer, as the aggregator's figure covers its start; bench/nats.py takes
//       its own clock at the spawn) to the last ack flushed.
//   stream   --servers URLS --stream S [--subjects SUBJ] [--replicas R] [--retention P]
//            [--delete]
//       Admin: creates stream S (file storage) if missing, or with --delete deletes it.
//
// URLS is a comma-separated list (nats://127.0.0.1:P,...). publish and consume print one JSON
// object: mode, messages, lines, bytes (payload bytes), start_ns, end_ns (CLOCK_REALTIME),
// seconds, lines_per_s, msgs_per_s, cpu_seconds (this process from the clock's start on, nats.c's
// threads included), peak_rss_bytes (VmHWM; publish: includes the prebuilt lines buffer,
// reported alone as buffer_bytes), and acks / errors (publish) or acked (consume).

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <nats/nats.h>

#include "clock.h"
#include "lines.h"

namespace {

using bench::cpu_seconds;
using bench::realtime_ns;

const std::int64_t process_start_ns = realtime_ns();

[[noreturn]] void die(const std::string& what) { bench::die("nats_bare", what); }

void check(natsStatus s, const char* what, jsErrCode jerr = static_cast<jsErrCode>(0)) {
    if (s != NATS_OK) {
        const char* last = nats_GetLastError(nullptr);
        die(std::string(what) + ": " + natsStatus_GetText(s) +
            (jerr != 0 ? " (jetstream error " + std::to_string(static_cast<int>(jerr)) + ")"
                       : std::string()) +
            (last != nullptr && *last != '\0' ? std::string(" - ") + last : std::string()));
    }
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= s.size()) {
        const std::size_t end = s.find(sep, start);
        const std::size_t stop = end == std::string::npos ? s.size() : end;
        if (stop > start) {
            out.push_back(s.substr(start, stop - start));
        }
        if (end == std::string::npos) {
            break;
        }
        start = end + 1;
    }
    return out;
}

// VmHWM of this process. Not ru_maxrss: across exec Linux keeps the parent's high-water mark
// in it, so a helper started by Python would report Python's RSS when that is larger.
long peak_rss_bytes() {
    FILE* f = std::fopen("/proc/self/status", "r");
    if (f == nullptr) {
        return -1;
    }
    char line[256];
    long kb = -1;
    while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::sscanf(line, "VmHWM: %ld kB", &kb) == 1) {
            break;
        }
    }
    std::fclose(f);
    return kb < 0 ? -1 : kb * 1024L;
}

struct args {
    std::string mode;
    std::string servers;
    std::string subject = "logs.app";
    std::string stream;
    std::string consumer;
    std::string subjects;
    std::string logs = "tests/data/real_logs";
    std::string out;
    std::size_t count = 0;
    std::size_t lines = 0;
    std::size_t size = 0;
    std::size_t in_flight = 4096;
    std::size_t per_message = 1;
    std::size_t batch = 256;
    std::int64_t replicas = 1;
    std::int64_t max_ack_pending = 0;
    std::string retention = "workqueue";
    bool remove = false;
};

args parse(int argc, char** argv) {
    args a;
    if (argc < 2) {
        die("usage: nats_bare publish|consume|stream --servers URLS ... (see the source)");
    }
    a.mode = argv[1];
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--delete") {
            a.remove = true;
            continue;
        }
        if (i + 1 >= argc) {
            die("missing value for " + arg);
        }
        const std::string v = argv[++i];
        if (arg == "--servers") {
            a.servers = v;
        } else if (arg == "--subject") {
            a.subject = v;
        } else if (arg == "--stream") {
            a.stream = v;
        } else if (arg == "--consumer") {
            a.consumer = v;
        } else if (arg == "--subjects") {
            a.subjects = v;
        } else if (arg == "--logs") {
            a.logs = v;
        } else if (arg == "--out") {
            a.out = v;
        } else if (arg == "--count") {
            a.count = std::stoull(v);
        } else if (arg == "--lines") {
            a.lines = std::stoull(v);
        } else if (arg == "--size") {
            a.size = std::stoull(v);
        } else if (arg == "--in-flight") {
            a.in_flight = std::stoull(v);
        } else if (arg == "--per-message") {
            a.per_message = std::stoull(v);
        } else if (arg == "--batch") {
            a.batch = std::stoull(v);
        } else if (arg == "--replicas") {
            a.replicas = std::stoll(v);
        } else if (arg == "--retention") {
            a.retention = v;
            if (v != "workqueue" && v != "limits" && v != "interest") {
                die("--retention: workqueue, limits or interest");
            }
        } else if (arg == "--max-ack-pending") {
            a.max_ack_pending = std::stoll(v);
        } else {
            die("unknown argument " + arg);
        }
    }
    if (a.servers.empty()) {
        die("--servers is required");
    }
    return a;
}

natsConnection* connect(const std::string& servers) {
    const std::vector<std::string> urls = split(servers, ',');
    std::vector<const char*> ptrs;
    for (const auto& u : urls) {
        ptrs.push_back(u.c_str());
    }
    natsOptions* opts = nullptr;
    check(natsOptions_Create(&opts), "natsOptions_Create");
    check(natsOptions_SetServers(opts, ptrs.data(), static_cast<int>(ptrs.size())),
          "natsOptions_SetServers");
    natsConnection* nc = nullptr;
    check(natsConnection_Connect(&nc, opts), "connect");
    natsOptions_Destroy(opts);
    return nc;
}

// Creates the stream if it does not exist yet (file storage, R replicas).
void ensure_stream(jsCtx* js, const std::string& name, const std::string& subjects,
                   std::int64_t replicas, const std::string& retention) {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&si, js, name.c_str(), nullptr, &jerr) == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return;
    }
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = name.c_str();
    const char* subj[] = {subjects.c_str()};
    cfg.Subjects = subj;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = replicas;
    cfg.Retention = retention == "limits"   ? js_LimitsPolicy
                    : retention == "interest" ? js_InterestPolicy
                                              : js_WorkQueuePolicy;
    si = nullptr;
    check(js_AddStream(&si, js, &cfg, nullptr, &jerr), ("js_AddStream " + name).c_str(), jerr);
    jsStreamInfo_Destroy(si);
}

// "logs.app" -> "logs.*"
std::string wildcard_of(const std::string& subject) {
    const std::size_t dot = subject.rfind('.');
    return dot == std::string::npos ? subject : subject.substr(0, dot) + ".*";
}

// ------------------------------------------------------------------------------ publish

struct ack_counts {
    std::atomic<std::uint64_t> acks{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<int> first_error{0};
};

void on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto* c = static_cast<ack_counts*>(closure);
    if (pa != nullptr) {
        c->acks.fetch_add(1, std::memory_order_relaxed);
    } else {
        c->errors.fetch_add(1, std::memory_order_relaxed);
        if (pae != nullptr) {
            int expected = 0;
            c->first_error.compare_exchange_strong(expected,
                                                   pae->ErrCode != 0 ? static_cast<int>(pae->ErrCode)
                                                                     : static_cast<int>(pae->Err));
        }
    }
    natsMsg_Destroy(msg);
}

int publish(const args& a) {
    if (a.count == 0 || a.per_message == 0 || a.in_flight == 0) {
        die("publish needs --count N > 0 (and --per-message, --in-flight > 0)");
    }
    // The lines, built before the clock starts: loadgen's text lines, or cut/padded to --size.
    std::vector<std::size_t> ends;
    std::string buf = bench::generate(bench::read_source_lines("nats_bare", a.logs), a.count,
                                      bench::line_format::text, ends);
    if (a.size > 0) {
        std::string sized;
        sized.reserve(a.count * (a.size + 1));
        std::size_t start = 0;
        for (std::size_t i = 0; i < a.count; ++i) {
            const std::string_view line(buf.data() + start, ends[i] - 1 - start);
            start = ends[i];
            for (std::size_t k = 0; k < a.size; ++k) {
                sized.push_back(line[k % line.size()]);
            }
            sized.push_back('\n');
            ends[i] = sized.size();
        }
        buf.swap(sized);
    }
    const std::size_t buffer_bytes = buf.size();

    natsConnection* nc = connect(a.servers);
    ack_counts counts;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = static_cast<int64_t>(a.in_flight);
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = &counts;
    jo.PublishAsync.StallWait = 60'000;  // block while K are in flight, as a sink would
    jsCtx* js = nullptr;
    check(natsConnection_JetStream(&js, nc, &jo), "natsConnection_JetStream");
    if (!a.stream.empty()) {
        ensure_stream(js, a.stream, wildcard_of(a.subject), a.replicas, a.retention);
    }

    const std::size_t messages = (a.count + a.per_message - 1) / a.per_message;
    const std::string id_prefix = std::to_string(process_start_ns) + "-";
    std::string id;
    const std::int64_t start_ns = realtime_ns();
    const double cpu0 = cpu_seconds();
    std::size_t payload_bytes = 0;
    std::size_t line = 0;
    for (std::size_t m = 0; m < messages; ++m) {
        const std::size_t first = line;
        const std::size_t last = std::min(a.count, line + a.per_message);  // exclusive
        const std::size_t off = first == 0 ? 0 : ends[first - 1];
        const std::size_t len = ends[last - 1] - 1 - off;  // no trailing '\n'
        line = last;
        natsMsg* msg = nullptr;
        check(natsMsg_Create(&msg, a.subject.c_str(), nullptr, buf.data() + off,
                             static_cast<int>(len)),
              "natsMsg_Create");
        id = id_prefix;
        id += std::to_string(m);
        check(natsMsgHeader_Set(msg, "Nats-Msg-Id", id.c_str()), "natsMsgHeader_Set");
        natsStatus s;
        while ((s = js_PublishMsgAsync(js, &msg, nullptr)) == NATS_TIMEOUT) {
            // stalled past StallWait with K in flight: try again (msg is still ours)
        }
        check(s, "js_PublishMsgAsync");
        payload_bytes += len;
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 600'000;
    check(js_PublishAsyncComplete(js, &po), "js_PublishAsyncComplete");
    const std::int64_t end_ns = realtime_ns();
    const double cpu = cpu_seconds() - cpu0;
    const double secs = (end_ns - start_ns) / 1e9;
    std::printf(
        "{\"mode\":\"publish\",\"messages\":%zu,\"lines\":%zu,\"bytes\":%zu,\"per_message\":%zu,"
        "\"in_flight\":%zu,\"acks\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"first_error\":%d,"
        "\"start_ns\":%" PRId64 ",\"end_ns\":%" PRId64 ",\"seconds\":%.6f,\"lines_per_s\":%.1f,"
        "\"msgs_per_s\":%.1f,\"cpu_seconds\":%.3f,\"peak_rss_bytes\":%ld,\"buffer_bytes\":%zu}\n",
        messages, a.count, payload_bytes, a.per_message, a.in_flight, counts.acks.load(),
        counts.errors.load(), counts.first_error.load(), start_ns, end_ns, secs, a.count / secs,
        messages / secs, cpu, peak_rss_bytes(), buffer_bytes);
    std::fflush(stdout);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return counts.errors.load() == 0 && counts.acks.load() == messages ? 0 : 2;
}

// ------------------------------------------------------------------------------ consume

void write_all(int fd, const char* data, std::size_t len) {
    while (len > 0) {
        const ssize_t n = ::write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die(std::string("write: ") + std::strerror(errno));
        }
        data += n;
        len -= static_cast<std::size_t>(n);
    }
}

int consume(const args& a) {
    if ((a.count == 0 && a.lines == 0) || a.stream.empty() || a.consumer.empty() ||
        a.batch == 0) {
        die("consume needs --stream S --consumer C --count N > 0 or --lines L > 0 "
            "[--batch F > 0]");
    }
    // --lines: until L lines are counted, however many messages hold them (an agent's packed
    // messages hold up to events_per_message each).
    const std::size_t max_messages = a.count > 0 ? a.count : SIZE_MAX;
    int out = -1;
    std::string wbuf;
    if (!a.out.empty()) {
        out = ::open(a.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        if (out < 0) {
            die("open " + a.out + ": " + std::strerror(errno));
        }
        wbuf.reserve(2 << 20);
    }
    const double cpu0 = cpu_seconds();
    natsConnection* nc = connect(a.servers);
    jsCtx* js = nullptr;
    check(natsConnection_JetStream(&js, nc, nullptr), "natsConnection_JetStream");
    jsErrCode jerr = static_cast<jsErrCode>(0);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = a.consumer.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    if (a.max_ack_pending > 0) {
        cc.MaxAckPending = a.max_ack_pending;
    }
    jsConsumerInfo* ci = nullptr;
    check(js_AddConsumer(&ci, js, a.stream.c_str(), &cc, nullptr, &jerr), "js_AddConsumer", jerr);
    jsConsumerInfo_Destroy(ci);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = a.stream.c_str();
    so.Consumer = a.consumer.c_str();
    so.ManualAck = true;
    natsSubscription* sub = nullptr;
    check(js_PullSubscribe(&sub, js, nullptr, a.consumer.c_str(), nullptr, &so, &jerr),
          "js_PullSubscribe", jerr);

    std::size_t messages = 0;
    std::size_t lines = 0;
    std::size_t bytes = 0;
    std::size_t acked = 0;
    std::int64_t first_ns = 0;
    while (messages < max_messages && (a.lines == 0 || lines < a.lines)) {
        natsMsgList list{};
        const int want = static_cast<int>(std::min(a.batch, max_messages - messages));
        const natsStatus s = natsSubscription_Fetch(&list, sub, want, 5000, &jerr);
        if (s == NATS_TIMEOUT) {
            std::fprintf(stderr, "nats_bare: fetch timed out at %zu messages, %zu lines\n",
                         messages, lines);
            continue;
        }
        check(s, "natsSubscription_Fetch", jerr);
        if (first_ns == 0 && list.Count > 0) {
            first_ns = realtime_ns();
        }
        for (int i = 0; i < list.Count; ++i) {
            natsMsg* msg = list.Msgs[i];
            const char* data = natsMsg_GetData(msg);
            const int len = natsMsg_GetDataLength(msg);
            std::size_t n = 0;
            for (const char* p = data; (p = static_cast<const char*>(
                                            std::memchr(p, '\n', data + len - p))) != nullptr;
                 ++p) {
                ++n;
            }
            if (len > 0 && data[len - 1] != '\n') {
                ++n;
            }
            lines += n;
            bytes += static_cast<std::size_t>(len);
            if (out >= 0) {
                wbuf.append(data, static_cast<std::size_t>(len));
                if (len > 0 && data[len - 1] != '\n') {
                    wbuf.push_back('\n');
                }
                if (wbuf.size() >= (1u << 20)) {
                    write_all(out, wbuf.data(), wbuf.size());
                    wbuf.clear();
                }
            }
            check(natsMsg_Ack(msg, nullptr), "natsMsg_Ack");
            ++acked;
        }
        messages += static_cast<std::size_t>(list.Count);
        natsMsgList_Destroy(&list);
    }
    if (out >= 0) {
        write_all(out, wbuf.data(), wbuf.size());
        ::close(out);
    }
    // Acks are published without waiting; flush so the server has them all before the clock
    // stops, as an aggregator's ack is only done once it went out.
    check(natsConnection_FlushTimeout(nc, 10'000), "flush");
    const std::int64_t end_ns = realtime_ns();
    const double cpu = cpu_seconds() - cpu0;
    const double secs = (end_ns - process_start_ns) / 1e9;
    std::printf(
        "{\"mode\":\"consume\",\"messages\":%zu,\"lines\":%zu,\"bytes\":%zu,\"batch\":%zu,"
        "\"acked\":%zu,\"start_ns\":%" PRId64 ",\"first_ns\":%" PRId64 ",\"end_ns\":%" PRId64
        ",\"seconds\":%.6f,\"lines_per_s\":%.1f,\"msgs_per_s\":%.1f,\"cpu_seconds\":%.3f,"
        "\"peak_rss_bytes\":%ld}\n",
        messages, lines, bytes, a.batch, acked, process_start_ns, first_ns, end_ns, secs,
        lines / secs, messages / secs, cpu, peak_rss_bytes());
    std::fflush(stdout);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return 0;
}

// ------------------------------------------------------------------------------ stream

int stream(const args& a) {
    if (a.stream.empty()) {
        die("stream needs --stream S");
    }
    natsConnection* nc = connect(a.servers);
    jsCtx* js = nullptr;
    check(natsConnection_JetStream(&js, nc, nullptr), "natsConnection_JetStream");
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (a.remove) {
        const natsStatus s = js_DeleteStream(js, a.stream.c_str(), nullptr, &jerr);
        if (s != NATS_OK && s != NATS_NOT_FOUND) {
            check(s, ("js_DeleteStream " + a.stream).c_str(), jerr);
        }
    } else {
        ensure_stream(js, a.stream, a.subjects.empty() ? wildcard_of(a.subject) : a.subjects,
                      a.replicas, a.retention);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const args a = parse(argc, argv);
    int rc = 0;
    if (a.mode == "publish") {
        rc = publish(a);
    } else if (a.mode == "consume") {
        rc = consume(a);
    } else if (a.mode == "stream") {
        rc = stream(a);
    } else {
        die("unknown mode " + a.mode + " (publish, consume, stream)");
    }
    nats_CloseAndWait(2000);
    return rc;
}
