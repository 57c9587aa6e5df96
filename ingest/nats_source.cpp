#include "ingest/nats_source.h"

#include <cstring>
#include <thread>

#include <asio/co_spawn.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/error.h"

namespace sluice {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

constexpr int64_t fetch_timeout_ms = 500;
constexpr auto not_ready_wait = milliseconds(500);
constexpr int64_t consumer_info_every_ns = 2'000'000'000;
// A batch is sealed at this size, as the network sources' batches are.
constexpr size_t batch_target_bytes = 256 * 1024;
constexpr size_t batch_max_events = 8192;

bool same_origin(const batch& b, const restored_event& e) {
    return b.source_name == e.source && b.received_ns == e.received_ns && b.file == e.file;
}

}  // namespace

nats_source::nats_source(std::string name, source_id id, asio::io_context& io,
                         bounded_queue& queue, nats_source_config config)
    : source(std::move(name), id, io, queue),
      config_(std::move(config)),
      client_(std::make_unique<nats_client>("source " + this->name(), config_.connection)),
      decoder_(config_.codec),
      wait_log_(30'000'000'000) {
    jsOptions o;
    jsOptions_Init(&o);
    js_ = client_->jetstream(o);
}

nats_source::~nats_source() {
    worker_.join();
    sub_.reset();
    js_.reset();
    client_.reset();
}

void nats_source::start() {
    keepalive_timer_ = std::make_unique<asio::steady_timer>(io_);
    supervise("fetch loop", [this] { return fetch_loop(); });
    supervise("keepalive loop", [this] { return keepalive_loop(); });
    spdlog::info("Source {} consuming stream {} as durable consumer {}.", name(), config_.stream,
                 config_.consumer);
}

void nats_source::on_stop() noexcept {
    if (keepalive_timer_) {
        keepalive_timer_->cancel();
    }
}

asio::awaitable<void> nats_source::fetch_loop() {
    while (!stopping()) {
        fetched f = co_await asio::co_spawn(
            worker_.get_executor(), [this]() -> asio::awaitable<fetched> { co_return fetch_once(); },
            asio::use_awaitable);
        // The groups go in before their batches: a batch may be settled as soon as it is
        // pushed, and its acknowledgement must find the replies waiting.
        for (auto& g : f.groups) {
            if (g.position < 0) {
                for (const auto& r : g.replies) {
                    ack(r, "+ACK");
                }
            } else if (!g.replies.empty()) {
                pending_.push_back(std::move(g));
            }
        }
        for (auto& b : f.batches) {
            if (!co_await push(std::move(b))) {
                co_return;  // the queue is closed: the rest is redelivered to whoever fetches next
            }
        }
    }
}

asio::awaitable<void> nats_source::keepalive_loop() {
    const auto interval =
        std::max<std::chrono::nanoseconds>(std::chrono::seconds(1), config_.ack_wait / 3);
    while (!stopping()) {
        keepalive_timer_->expires_after(interval);
        auto [ec] = co_await keepalive_timer_->async_wait(use_tuple);
        if (stopping()) {
            co_return;
        }
        check_wait(ec, "keepalive timer");
        // Messages whose events wait in the queue (a slow sink) would be redelivered after
        // ack_wait: tell JetStream they are in progress.
        const int64_t now = mono_now_ns();
        for (auto& g : pending_) {
            if (now - g.touched_ns < interval.count()) {
                continue;
            }
            for (const auto& r : g.replies) {
                ack(r, "+WPI");
                bump(in_progress_total_);
            }
            g.touched_ns = now;
        }
    }
}

void nats_source::ack(const std::string& reply, std::string_view kind) {
    if (reply.empty()) {
        return;
    }
    // JetStream's ack protocol: a message on the reply subject of the delivered message. A lost
    // ack (a connection that drops) makes JetStream redeliver after ack_wait; nothing is lost.
    const natsStatus s = natsConnection_Publish(client_->connection(), reply.c_str(), kind.data(),
                                                static_cast<int>(kind.size()));
    if (s == NATS_OK && kind == "+ACK") {
        bump(acked_total_);
    }
}

void nats_source::on_delivered() {
    deliveries_.clear();
    queue_.take_deliveries(id(), deliveries_);
    for (const auto& d : deliveries_) {
        ack_through(d.position);
    }
}

void nats_source::ack_through(int64_t position) {
    while (!pending_.empty() && pending_.front().position <= position) {
        for (const auto& r : pending_.front().replies) {
            ack(r, "+ACK");
        }
        pending_.pop_front();
    }
}

void nats_source::flush_acknowledgements() noexcept {
    if (!client_) {
        return;
    }
    try {
        on_delivered();
        if (!client_->flush(2000)) {
            spdlog::warn("Source {}: the last acknowledgements may not have reached NATS; "
                         "JetStream will redeliver those messages.",
                         name());
        }
    } catch (const std::exception& e) {
        spdlog::error("Source {}: the last acknowledgements failed: {}", name(), e.what());
    }
}

bool nats_source::ensure_subscription() {
    if (sub_) {
        return true;
    }
    uint64_t suppressed = 0;
    if (!client_->connected()) {
        if (wait_log_.should_log(suppressed)) {
            spdlog::warn("Source {}: waiting for a NATS server.", name());
        }
        return false;
    }
    jsConsumerInfo* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus s = js_GetConsumerInfo(&raw, js_.get(), config_.stream.c_str(),
                                      config_.consumer.c_str(), nullptr, &code);
    jsConsumerInfo_Destroy(raw);
    if (s != NATS_OK) {
        if (s != NATS_NOT_FOUND && code != JSConsumerNotFoundErr && code != JSStreamNotFoundErr) {
            if (wait_log_.should_log(suppressed)) {
                spdlog::warn("Source {}: consumer {} of stream {}: {}", name(), config_.consumer,
                             config_.stream, nats_error_text(s, code));
            }
            return false;
        }
        jsConsumerConfig cc;
        jsConsumerConfig_Init(&cc);
        cc.Durable = config_.consumer.c_str();
        cc.AckPolicy = js_AckExplicit;
        cc.DeliverPolicy = js_DeliverAll;
        cc.AckWait = config_.ack_wait.count();
        cc.MaxAckPending = config_.max_ack_pending;
        if (!config_.filter_subject.empty()) {
            cc.FilterSubject = config_.filter_subject.c_str();
        }
        raw = nullptr;
        code = static_cast<jsErrCode>(0);
        s = js_AddConsumer(&raw, js_.get(), config_.stream.c_str(), &cc, nullptr, &code);
        jsConsumerInfo_Destroy(raw);
        if (s != NATS_OK && code != JSConsumerNameExistErr) {
            if (wait_log_.should_log(suppressed)) {
                spdlog::warn("Source {}: cannot create consumer {} on stream {} (an agent creates "
                             "the stream when it first publishes): {}",
                             name(), config_.consumer, config_.stream, nats_error_text(s, code));
            }
            return false;
        }
        spdlog::info("Source {}: created durable consumer {} on stream {}.", name(),
                     config_.consumer, config_.stream);
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = config_.stream.c_str();
    so.Consumer = config_.consumer.c_str();
    natsSubscription* sub = nullptr;
    code = static_cast<jsErrCode>(0);
    s = js_PullSubscribe(&sub, js_.get(),
                         config_.filter_subject.empty() ? nullptr : config_.filter_subject.c_str(),
                         config_.consumer.c_str(), nullptr, &so, &code);
    if (s != NATS_OK) {
        if (wait_log_.should_log(suppressed)) {
            spdlog::warn("Source {}: cannot bind to consumer {}: {}", name(), config_.consumer,
                         nats_error_text(s, code));
        }
        return false;
    }
    sub_.reset(sub);
    return true;
}

void nats_source::poll_consumer_info() {
    const int64_t now = mono_now_ns();
    if (now - last_info_ns_ < consumer_info_every_ns) {
        return;
    }
    last_info_ns_ = now;
    jsConsumerInfo* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (natsSubscription_GetConsumerInfo(&raw, sub_.get(), nullptr, &code) == NATS_OK &&
        raw != nullptr) {
        consumer_pending_.store(raw->NumPending, std::memory_order_relaxed);
        consumer_ack_pending_.store(static_cast<uint64_t>(raw->NumAckPending),
                                    std::memory_order_relaxed);
    }
    jsConsumerInfo_Destroy(raw);
}

nats_source::fetched nats_source::fetch_once() {
    fetched out;
    if (!ensure_subscription()) {
        std::this_thread::sleep_for(not_ready_wait);
        return out;
    }
    poll_consumer_info();
    natsMsgList list{nullptr, 0};
    jsErrCode code = static_cast<jsErrCode>(0);
    const auto began = std::chrono::steady_clock::now();
    const natsStatus s = natsSubscription_Fetch(&list, sub_.get(),
                                                static_cast<int>(config_.fetch_batch),
                                                fetch_timeout_ms, &code);
    if (s == NATS_OK) {
        decode(list, out);
        natsMsgList_Destroy(&list);
        return out;
    }
    natsMsgList_Destroy(&list);
    const auto elapsed = std::chrono::steady_clock::now() - began;
    if (s == NATS_TIMEOUT) {
        // Nothing to fetch. nats.c 3.4.1 can answer a fetch after an earlier timeout with
        // another timeout at once (nats.c #631, fixed in 3.6): wait out the rest of the
        // timeout, so an idle source does not spin.
        const auto rest = milliseconds(fetch_timeout_ms) - elapsed;
        if (rest > std::chrono::nanoseconds::zero()) {
            std::this_thread::sleep_for(rest);
        }
        return out;
    }
    uint64_t suppressed = 0;
    if (wait_log_.should_log(suppressed)) {
        spdlog::warn("Source {}: fetch from consumer {}: {}", name(), config_.consumer,
                     nats_error_text(s, code));
    }
    if (s == NATS_NOT_FOUND || code == JSConsumerNotFoundErr || s == NATS_INVALID_SUBSCRIPTION ||
        s == NATS_CONNECTION_CLOSED) {
        sub_.reset();  // the consumer went away: create or bind it again
    }
    std::this_thread::sleep_for(not_ready_wait);
    return out;
}

void nats_source::decode(natsMsgList& list, fetched& out) {
    std::shared_ptr<batch> cur;
    bool cur_restored = false;
    uint64_t bytes = 0;
    uint64_t truncated = 0;
    auto seal = [&] {
        if (cur && !cur->empty()) {
            if (!cur_restored) {
                bump(counters_.decode_errors_total, decoder_.decode(*cur));
            }
            cur->shrink_if_sparse();
        }
        cur.reset();
    };
    // The batch for the next event: the current one while it fits and has the same origin.
    auto batch_for = [&](bool restored) -> batch& {
        const bool fits = cur && cur->buffer().size() < batch_target_bytes &&
                          cur->event_count() < batch_max_events;
        if (fits && cur_restored == restored && (!restored || same_origin(*cur, restored_))) {
            return *cur;
        }
        seal();
        cur = std::make_shared<batch>(id(), 0);
        cur_restored = restored;
        cur->position = next_position_++;
        cur->stream = 0;
        cur->origin = "nats:" + config_.stream;
        if (restored) {
            cur->source_name.assign(restored_.source);
            cur->received_ns = restored_.received_ns;
            cur->file.assign(restored_.file);
        } else {
            cur->received_ns = unix_now_ns();
        }
        out.batches.push_back(cur);
        out.groups.push_back(ack_group{cur->position, {}, mono_now_ns()});
        return *cur;
    };
    auto add_event = [&](std::string_view text) {
        if (restorer_.parse(text, restored_)) {
            append_restored(batch_for(true), restored_);
        } else {
            truncated += add_message(batch_for(false), text, false, config_.max_line_bytes);
        }
    };
    ack_group orphans;  // messages without events before any batch of this fetch
    for (int i = 0; i < list.Count; ++i) {
        natsMsg* msg = list.Msgs[i];
        bump(fetched_total_);
        jsMsgMetaData* raw_meta = nullptr;
        if (natsMsg_GetMetaData(&raw_meta, msg) == NATS_OK && raw_meta != nullptr &&
            raw_meta->NumDelivered > 1) {
            bump(redelivered_total_);
        }
        jsMsgMetaData_Destroy(raw_meta);
        const std::string_view data(natsMsg_GetData(msg),
                                    static_cast<size_t>(natsMsg_GetDataLength(msg)));
        bytes += data.size();
        const char* packed = nullptr;
        const bool split = config_.framing == message_framing::newline ||
                           natsMsgHeader_Get(msg, "Sluice-Events", &packed) == NATS_OK;
        if (split) {
            size_t at = 0;
            while (at < data.size()) {
                size_t nl = data.find('\n', at);
                if (nl == std::string_view::npos) {
                    nl = data.size();
                }
                std::string_view line = data.substr(at, nl - at);
                if (!line.empty() && line.back() == '\r') {
                    line.remove_suffix(1);
                }
                if (!line.empty()) {
                    add_event(line);
                }
                at = nl + 1;
            }
        } else {
            add_event(data);
        }
        const char* reply = natsMsg_GetReply(msg);
        std::string r = reply != nullptr ? reply : "";
        if (!out.groups.empty()) {
            out.groups.back().replies.push_back(std::move(r));  // its last event is in there
        } else {
            orphans.replies.push_back(std::move(r));
        }
    }
    seal();
    bump(counters_.bytes_total, bytes);
    bump(counters_.truncated_total, truncated);
    if (!orphans.replies.empty()) {
        out.groups.insert(out.groups.begin(), std::move(orphans));
    }
}

void nats_source::kind_metrics(std::vector<kind_metric>& out) const {
    out.push_back({"sluice_nats_source_fetched_total", "fetched_total", "counter",
                   "Messages fetched from the consumer, redelivered ones included.",
                   static_cast<double>(read(fetched_total_))});
    out.push_back({"sluice_nats_source_acked_total", "acked_total", "counter",
                   "Messages acknowledged to JetStream once every sink wrote them.",
                   static_cast<double>(read(acked_total_))});
    out.push_back({"sluice_nats_source_redelivered_total", "redelivered_total", "counter",
                   "Messages JetStream delivered more than once (their events may be stored "
                   "again).",
                   static_cast<double>(read(redelivered_total_))});
    out.push_back({"sluice_nats_source_in_progress_total", "in_progress_total", "counter",
                   "Keep-alives sent for messages held longer than a third of ack_wait.",
                   static_cast<double>(read(in_progress_total_))});
    out.push_back({"sluice_nats_source_consumer_pending", "consumer_pending", "gauge",
                   "Messages of the stream the consumer has not delivered yet.",
                   static_cast<double>(read(consumer_pending_))});
    out.push_back({"sluice_nats_source_consumer_ack_pending", "consumer_ack_pending", "gauge",
                   "Messages delivered by the consumer and not acknowledged yet (all "
                   "aggregators).",
                   static_cast<double>(read(consumer_ack_pending_))});
    client_->connection_metrics(out, false);
}

}  // namespace sluice
