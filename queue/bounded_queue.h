// bounded_queue: an ordered log of batches with one cursor per sink.
// Producers (the io thread) call try_push, which never blocks. Each sink thread reads past
// its own cursor with read_until and commits what it wrote; a batch is freed once every sink
// that takes its source has committed it; a batch that carries a delivery position is then
// acknowledged to its source through the delivery ledger. All members are thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "queue/delivery_ledger.h"
#include "queue/event.h"
#include "queue/overflow_policy.h"

namespace sluice {

struct queue_config {
    uint64_t max_bytes = 64ull << 20;           // everything a queued batch costs in memory
    uint64_t max_events = 1'000'000;            // events queued, all sources together
    overflow_policy when_full = overflow_policy::block;
    double low_watermark = 0.8;                 // `block` resumes sources under this fill
};

enum class push_result {
    ok,       // queued; the argument was moved from
    full,     // `block` policy and no room: the argument is untouched, wait for resume
    dropped,  // a drop policy refused it: the events were counted as dropped, argument moved
    closed,   // the queue takes no more batches; argument untouched
};

enum class read_result {
    ok,        // at least one batch was appended
    timeout,   // the deadline passed with nothing new
    closed,    // closed and this sink has read everything
};

// A sink's backlog: what it has not yet written.
struct sink_lag {
    uint64_t events = 0;
    uint64_t bytes = 0;
    double seconds = 0;
};

struct queue_stats {
    uint64_t events = 0;
    uint64_t bytes = 0;
    uint64_t max_events = 0;
    uint64_t max_bytes = 0;
    double oldest_age_seconds = 0;
    bool blocked = false;
    std::vector<sink_lag> sinks;
};

class bounded_queue {
public:
    // `sink_inputs[k][s]` says whether sink k takes source s.
    bounded_queue(queue_config config, size_t source_count,
                  std::vector<std::vector<bool>> sink_inputs);
    bounded_queue(const bounded_queue&) = delete;
    bounded_queue& operator=(const bounded_queue&) = delete;

    // Never blocks. Always admits a batch when the queue is empty, so it cannot deadlock
    // itself on a batch larger than its limits.
    [[nodiscard]] push_result try_push(batch_ptr& b);

    // Called without the lock held, on whichever thread's commit took the fill under the low
    // watermark after try_push said `full`. Set before the first push.
    void set_resume_callback(std::function<void()> cb) { resume_cb_ = std::move(cb); }
    // Delivery acknowledgements. A batch pushed with a position (>= 0) is settled once every
    // sink that takes its source has committed it, or once it is dropped or evicted; the
    // source then takes, per stream, the newest position before which everything is settled.
    // `cb` is called without the queue's lock, on the settling thread, once per source until
    // that source calls take_deliveries. Set before the first push.
    void set_delivery_callback(std::function<void(source_id)> cb) {
        ledger_.set_notify(std::move(cb));
    }
    // Any thread (the source's own, typically): see delivery_ledger::take.
    size_t take_deliveries(source_id source, std::vector<delivery>& out) {
        return ledger_.take(source, out);
    }
    // Positioned batches of `source` pushed and not yet acknowledged.
    uint64_t unacknowledged(source_id source) const { return ledger_.open_count(source); }

    // Sink thread `sink` only. Appends batches after `cursor` that the sink takes, whole, until
    // at least `max_events` events or `max_bytes` bytes are appended, and advances `cursor`
    // past them. Blocks until at least one is appended, `deadline` passes, or the queue is
    // closed with nothing left for this sink.
    read_result read_until(size_t sink, uint64_t& cursor,
                           std::chrono::steady_clock::time_point deadline,
                           std::vector<batch_ptr>& out, uint64_t max_events, uint64_t max_bytes);
    // Sink thread `sink` only: everything it read up to `cursor` is written. Never blocks on
    // anything but the queue's lock.
    void commit(size_t sink, uint64_t cursor);

    // No more pushes; wakes every reader. Readers still get what is queued.
    void close();
    // Wakes readers blocked in read_until so they can check their own stop flags. A sink not
    // blocked yet gets `timeout` from its next read_until instead of blocking, so a stop flag
    // set just before this call is never missed.
    void wake_readers();

    queue_stats stats() const;
    // Lock-free approximations for hot checks.
    uint64_t events_size_guess() const { return events_guess_.load(std::memory_order_relaxed); }
    uint64_t bytes_size_guess() const { return bytes_guess_.load(std::memory_order_relaxed); }
    bool blocked_guess() const { return blocked_guess_.load(std::memory_order_relaxed); }
    // Counts events a source dropped itself (UDP on `full`, datagrams the kernel dropped).
    void count_dropped(source_id source, drop_reason reason, uint64_t events) {
        dropped_[source][static_cast<size_t>(reason)].fetch_add(events, std::memory_order_relaxed);
    }
    // Events dropped so far, by source and reason.
    uint64_t dropped(source_id source, drop_reason reason) const;
    // Entries in the ordered log, finished ones not yet compacted away included: bounded by
    // about twice the live batches, whatever a stuck sink holds back.
    size_t entry_count() const;
    const queue_config& config() const { return config_; }
    size_t sink_count() const { return sinks_.size(); }

private:
    struct entry {
        uint64_t seq;
        batch_ptr batch;        // reset once every sink wrote it
        uint64_t pending;       // bitmask of sinks that have not committed it
        uint64_t events;
        uint64_t bytes;
        int64_t received_ns;
        delivery_ticket ticket;
        bool positioned;  // holds a ticket of the ledger
        source_id source;
    };
    struct sink_state {
        std::vector<bool> inputs;
        uint64_t read_cursor = 0;       // last seq handed to the sink
        uint64_t committed_cursor = 0;  // last seq the sink wrote
        uint64_t lag_events = 0;
        uint64_t lag_bytes = 0;
    };
    using clock = std::chrono::steady_clock;

    bool over_limit(uint64_t events, uint64_t bytes) const;
    bool under_low_watermark() const;
    // Marks `e` done for `sink`; frees its batch when no sink is left. Lock held.
    void settle(entry& e, size_t sink);
    // Opens a ticket for `b` and settles it at once (dropped, or no sink takes it). Lock held.
    void settle_unqueued(const batch& b);
    // Hands the tickets settled under the lock to the ledger; lock not held.
    void acknowledge(std::vector<std::pair<source_id, delivery_ticket>>& settled);
    // Drops evictable entries until `events`/`bytes` more fit. Lock held.
    void evict_for(uint64_t events, uint64_t bytes);
    // Pops finished entries off the front, and compacts the log when most of what a stuck entry
    // holds back behind it is finished. Lock held.
    void pop_finished();
    void publish_guesses();
    size_t index_after(uint64_t seq) const;

    const queue_config config_;
    const uint64_t low_events_;
    const uint64_t low_bytes_;
    mutable std::mutex mutex_;
    std::condition_variable readable_;
    std::deque<entry> entries_;
    std::vector<sink_state> sinks_;
    uint64_t next_seq_ = 1;
    size_t finished_ = 0;  // entries with nothing pending, still in entries_
    uint64_t events_ = 0;  // live (not yet freed) events and bytes
    uint64_t bytes_ = 0;
    bool blocked_ = false;
    bool closed_ = false;
    size_t waiting_readers_ = 0;
    uint64_t wake_pending_ = 0;  // bitmask of sinks woken by wake_readers, not yet returned
    std::vector<std::array<std::atomic<uint64_t>, static_cast<size_t>(drop_reason::count_)>>
        dropped_;
    std::atomic<uint64_t> events_guess_{0};
    std::atomic<uint64_t> bytes_guess_{0};
    std::atomic<bool> blocked_guess_{false};
    std::function<void()> resume_cb_;
    delivery_ledger ledger_;
    std::vector<std::pair<source_id, delivery_ticket>> settled_;  // lock held; see acknowledge
};

}  // namespace sluice
