// nats_sink: publishes events to a NATS JetStream stream, the agents' side of the scale-out
// tier. A write publishes every message of the gathered batches asynchronously (at most
// max_in_flight awaiting their acks, each waited for at most ack_timeout) and counts as done,
// so the sink's cursor moves, only once JetStream has acknowledged every one of them. A message
// is one event (json: the event with its metadata, restorable by the nats source; text: the
// line) or, with events_per_message > 1, several whole events of one source joined by '\n',
// marked with a `Sluice-Events` header that tells the nats source to unpack it.
//
// Nothing is acknowledged twice and nothing is dropped: every message carries a Nats-Msg-Id
// (this process's run id, the write's number, the message's place in it) that stays the same
// across the retries of that write, so the stream's duplicate window drops a resent message that
// had arrived; and a retry resends only the messages not acknowledged yet. A full stream, no
// responders (no leader), a timeout or a lost connection fail the write, which the sink base
// retries with backoff while the queue fills and pushes back on the sources. The stream is
// created when missing (replicas, file storage, the duplicate window, its retention and size).
//
// Pipelined (see sinks/sink.h): a write's messages are sent, then the next write's, while the
// acknowledgements of the first come in; the base finishes a write, and moves the cursor past
// it, once every one of its messages is acknowledged.
//
// Threads: write_impl and finish_impl run on the sink's thread; nats.c calls the ack handler on
// its own thread, which records the result under a mutex and wakes the writer.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/log_limiter.h"
#include "common/nats_client.h"
#include "sinks/sink.h"

namespace sluice {

enum class nats_sink_format { json, text };
enum class nats_retention { workqueue, limits, interest };

struct nats_sink_config {
    nats_connection_config connection;
    std::string subject = "logs.{source}";  // {source}: the event's source, unsafe chars -> '_'
    std::string stream = "LOGS";
    int replicas = 1;                          // a stream the sink creates
    nats_retention retention = nats_retention::workqueue;
    uint64_t stream_max_bytes = 0;             // 0: unlimited; else the limit, discard new
    uint64_t stream_max_msgs = 0;              // the same in messages
    std::chrono::nanoseconds duplicate_window = std::chrono::minutes(2);
    nats_sink_format format = nats_sink_format::json;
    uint32_t events_per_message = 64;
    uint32_t max_in_flight = 4096;
    std::chrono::nanoseconds ack_timeout = std::chrono::seconds(5);
};

// The stream's subjects for a subject template: each {...} becomes '*' ("logs.{source}" ->
// "logs.*").
std::string nats_subject_filter(std::string_view subject_template);
// The subject for `source`: the template with {source} replaced by the name, each character a
// subject cannot hold (space, '.', '*', '>', control) as '_'.
std::string nats_subject_for(std::string_view subject_template, std::string_view source);
std::optional<nats_retention> parse_nats_retention(std::string_view s);

class nats_sink final : public sink {
public:
    nats_sink(std::string name, batch_config batch, nats_sink_config config,
              std::vector<std::string> source_names);
    ~nats_sink() override;

    void kind_metrics(std::vector<kind_metric>& out) const override;

protected:
    // Sends the write's messages (a retry: those not acknowledged and not in flight).
    write_status write_impl(std::span<const batch_ptr> batches) override;
    // Waits for the write's acknowledgements (a retry: sends again what was not acknowledged
    // first); ok once JetStream acknowledged every message.
    write_status finish_impl(std::span<const batch_ptr> batches) override;
    // The next write is sent while this one's acknowledgements come in.
    bool pipelined() const override { return true; }

private:
    // One message of the current write: `count` events from event `first` of batch `batch`,
    // on into the following batches of the same source if need be.
    struct planned {
        uint32_t batch;
        uint32_t first;
        uint32_t count;
    };
    enum class outcome : uint8_t { none, pending, acked, failed };
    // One of the two outstanding writes (the base's write slots).
    struct write_state {
        uint64_t number = 0;                // in the message ids
        std::vector<planned> plan;          // sink thread
        bool finishing = false;             // sink thread: finish_impl ran for it
        std::vector<outcome> outcomes;      // per planned message; mutex_
        std::vector<int64_t> sent_ns;       // per planned message, monotonic; mutex_
        size_t in_flight = 0;               // its messages awaiting an ack; mutex_
        std::string first_error;            // of this attempt; mutex_
    };

    // Splits the gathered batches into messages (a new write only).
    void plan(std::span<const batch_ptr> batches, write_state& w);
    // The stream exists (created if not); false, with the reason logged, if not known yet.
    bool ensure_stream();
    // Publishes every message of slot `slot` that is neither acknowledged nor in flight;
    // false if nats.c refused one (the reason in `why`), or not connected.
    bool send(std::span<const batch_ptr> batches, size_t slot, std::string& why);
    // Publishes message `m` of slot `slot`; false if nats.c refused it (the reason in `why`).
    bool publish(std::span<const batch_ptr> batches, size_t slot, size_t m, std::string& why);
    // Waits until no message of slot `slot` awaits its ack, or aborts; then takes back what
    // nats.c still holds (a lost connection) as failed.
    void wait_for_acks(size_t slot);
    // After wait_for_acks: ok if every message of the slot's write is acknowledged; else the
    // failure logged (`refused`: why nats.c refused a publish, if it did).
    write_status outcome_of(size_t slot, const std::string& refused);
    const std::string& subject_for(const batch& b);
    // Any thread: published messages whose ack has not come in.
    size_t in_flight() const;

    static void on_ack(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);

    nats_sink_config config_;
    std::vector<std::string> source_names_;
    std::string run_id_;  // random per process: message ids of two runs never collide
    nats_client client_;
    nats_ptr<jsCtx> js_;
    bool stream_ready_ = false;
    std::unordered_map<std::string, std::string> subjects_;  // source name -> subject

    // The outstanding writes (sink thread), and what the ack handler reports of them (mutex_).
    uint64_t write_number_ = 0;
    write_state writes_[2];
    std::string payload_;
    mutable std::mutex mutex_;
    std::condition_variable acked_cv_;
    // Published, ack not in yet: the message's slot and place in its write.
    std::unordered_map<natsMsg*, std::pair<size_t, size_t>> in_flight_;
    std::atomic<bool> failure_seen_{false};   // since the last send began: an ack failed

    log_limiter stream_log_;
    counter messages_total_{0};
    counter acks_total_{0};
    counter duplicates_total_{0};
    counter resent_total_{0};
    counter publish_errors_total_{0};
    duration_histogram ack_latency_;
};

}  // namespace sluice
