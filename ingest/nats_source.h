// nats_source: the aggregators' side of the scale-out tier, a JetStream durable pull consumer.
// The consumer (`consumer`, explicit acks, from the start of the stream) is created if missing
// and bound to, so several aggregators share its messages. A fetch asks for up to fetch_batch
// messages and runs only while the queue takes batches: with `block`, a full queue pauses the
// source, nothing is fetched, and JetStream holds the backlog, not sluice's memory.
//
// A message is acknowledged to JetStream only once every sink of this aggregator has written
// its events: its batches carry delivery positions, and the queue's delivery acknowledgements
// (the mechanism the file source uses for its offsets) say when they are settled. Until then,
// messages held longer than a third of ack_wait are kept alive (+WPI, "in progress"), so a slow
// sink does not make JetStream redeliver them. Messages JetStream delivers again (after an
// aggregator died, or an ack was lost) are counted as redelivered: delivery is at least once.
//
// Events the nats sink published in its json format are restored as the agent had them (the
// agent's source name, receive time and columns); other payloads go through the source's codec.
// A message with a `Sluice-Events` header holds that many events, one per line; so does every
// message with framing = "newline".
//
// Threads: the home loop runs the fetch loop, pushes and acks; the fetch itself (blocking, in
// nats.c) and the decoding run on the source's own worker thread, which the fetch loop awaits.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <asio/thread_pool.hpp>

#include "common/nats_client.h"
#include "ingest/codecs/batch_decoder.h"
#include "ingest/codecs/event_restore.h"
#include "ingest/framing.h"
#include "ingest/source.h"

namespace sluice {

struct nats_source_config {
    nats_connection_config connection;
    std::string stream = "LOGS";
    std::string consumer = "sluice";  // durable name
    std::string filter_subject;       // a consumer the source creates: "" = the whole stream
    message_framing framing = message_framing::message;
    codec_kind codec = codec_kind::text;
    uint64_t max_line_bytes = 65536;
    uint32_t fetch_batch = 256;       // messages per fetch
    std::chrono::nanoseconds ack_wait = std::chrono::seconds(30);
    int64_t max_ack_pending = 20000;  // a consumer the source creates
};

class nats_source final : public source {
public:
    nats_source(std::string name, source_id id, asio::io_context& io, bounded_queue& queue,
                nats_source_config config);
    ~nats_source() override;

    void start() override;
    void on_delivered() override;
    void flush_acknowledgements() noexcept override;
    void kind_metrics(std::vector<kind_metric>& out) const override;

private:
    // The reply subjects of messages whose events end in the batch at `position`.
    struct ack_group {
        int64_t position = -1;  // -1: no events (an empty message): ack at once
        std::vector<std::string> replies;
        int64_t touched_ns = 0;  // fetched, or last kept alive (monotonic)
    };
    struct fetched {
        std::vector<std::shared_ptr<batch>> batches;
        std::vector<ack_group> groups;
    };

    void on_stop() noexcept override;
    asio::awaitable<void> fetch_loop();
    asio::awaitable<void> keepalive_loop();
    // Worker thread: one fetch, decoded into batches.
    fetched fetch_once();
    // Worker thread: the consumer exists and the subscription is bound; false (reason logged)
    // if not yet.
    bool ensure_subscription();
    // Worker thread: turns fetched messages into batches and ack groups.
    void decode(natsMsgList& list, fetched& out);
    // Worker thread: the consumer's pending counts, every few seconds.
    void poll_consumer_info();
    // Home thread: acks every message of the groups up to `position`.
    void ack_through(int64_t position);
    void ack(const std::string& reply, std::string_view kind);

    nats_source_config config_;
    std::unique_ptr<nats_client> client_;
    nats_ptr<jsCtx> js_;
    nats_ptr<natsSubscription> sub_;         // worker thread
    asio::thread_pool worker_{1};
    batch_decoder decoder_;                   // worker thread
    event_restorer restorer_;                 // worker thread
    restored_event restored_;                 // worker thread
    int64_t next_position_ = 0;               // worker thread
    int64_t last_info_ns_ = 0;                // worker thread
    log_limiter wait_log_;                    // worker thread
    std::deque<ack_group> pending_;           // home thread
    std::vector<delivery> deliveries_;        // home thread
    std::unique_ptr<asio::steady_timer> keepalive_timer_;  // home thread

    counter fetched_total_{0};
    counter acked_total_{0};
    counter redelivered_total_{0};
    counter in_progress_total_{0};
    counter consumer_pending_{0};
    counter consumer_ack_pending_{0};
};

}  // namespace sluice
