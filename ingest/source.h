// source: the base of every input. Sources run on the io thread (asio::io_context); all
// members except the counters are io-thread only. A source reads, frames and pushes batches
// into the queue; when the queue says `full` it pauses itself and waits for resume(), which
// the pipeline posts to the io thread once the queue is under its low watermark.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "common/metrics.h"
#include "queue/bounded_queue.h"

namespace sluice {

// The completion token of the sources' coroutines: errors come back as values, not throws.
inline constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

struct source_counters {
    counter events_total{0};         // every event read, dropped ones included
    counter bytes_total{0};          // bytes read off the wire or the file
    counter truncated_total{0};
    counter decode_errors_total{0};
    counter backpressure_ns_total{0};
    counter kernel_drops_total{0};   // UDP: datagrams the kernel dropped
    std::atomic<bool> paused{false};
    std::atomic<int64_t> paused_since_ns{0};  // monotonic; 0 when not paused
};

// What a source that tails files reports of them (sluice_file_*); other sources have none.
struct file_counters {
    counter watched{0};       // files open now, rotated ones still being drained included
    counter behind_bytes{0};  // sum of size minus read offset
    counter rotations_rename{0};
    counter rotations_truncate{0};
    counter rotations_delete{0};
};

class source {
public:
    source(std::string name, source_id id, asio::io_context& io, bounded_queue& queue);
    virtual ~source() = default;
    source(const source&) = delete;
    source& operator=(const source&) = delete;

    const std::string& name() const { return name_; }
    source_id id() const { return id_; }
    const source_counters& counters() const { return counters_; }

    // io thread: begin reading (binds or opens now, throws sluice::error if it cannot).
    virtual void start() = 0;
    // io thread: stop accepting and reading. Data already read is still pushed: the source
    // reports idle() once it has nothing left to push.
    virtual void stop() noexcept = 0;
    // io thread: true once stopped and everything read is in the queue (or dropped).
    virtual bool idle() const = 0;

    // io thread: the queue has room again; wakes everything waiting in push().
    void resume();

    // io thread: the queue has delivery acknowledgements for this source (batches pushed with
    // a position); take them with queue_.take_deliveries. Posted by the pipeline.
    virtual void on_delivered() {}
    // After every sink has ended (any thread, the io thread no longer running): take the last
    // acknowledgements and make them durable (file offsets).
    virtual void flush_acknowledgements() noexcept {}
    // Any thread: the files this source tails, or nullptr for a source that tails none.
    virtual const file_counters* files() const { return nullptr; }

protected:
    // io thread: pushes `b`, waiting through `full` until the queue takes it. Counts events
    // and drops. Returns false if the queue is closed (the batch is then lost: only at exit).
    asio::awaitable<bool> push(batch_ptr b);
    // io thread: for sources that cannot pause (UDP): pushes `b` or, when the queue is full,
    // drops it and counts it as reason "queue_full". Never waits.
    void push_or_drop(batch_ptr b);
    // io thread: waits while the source is paused.
    asio::awaitable<void> wait_while_paused();
    bool paused() const { return counters_.paused.load(std::memory_order_relaxed); }
    void pause();

    asio::io_context& io_;
    bounded_queue& queue_;
    source_counters counters_;

private:
    std::string name_;
    source_id id_;
    asio::steady_timer resume_signal_;
};

}  // namespace sluice
