// source: the base of every input. A source is controlled from its home loop (the io thread
// it was made with: start, stop, supervised loops) and may work on more loops, one lane each
// (the TCP source spreads its connections over the io_pool). A lane's members are its loop's
// thread only; the counters, stopping() and idle() are any thread. A source reads, frames and
// pushes batches into the queue; when the queue says `full`, the lane that pushed pauses and
// waits for resume(), which the pipeline calls once the queue is under its low watermark and
// which reaches every lane on its own thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "common/log_limiter.h"
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
    counter errors_total{0};         // exceptions out of the source's coroutines
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

// What a source that accepts connections reports of them (sluice_source_connections*).
struct connection_counters {
    counter open{0};              // connections open now
    counter rejected_limit{0};    // refused: max_connections were open
    counter rejected_tls{0};      // TLS handshake failed or did not finish in time
    counter idle_closed{0};       // closed after idle_timeout without a complete line
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

    // Home thread: begin reading (binds or opens now, throws sluice::error if it cannot).
    virtual void start() = 0;
    // Home thread: stop accepting and reading. Data already read is still pushed: the source
    // reports idle() once it has nothing left to push. No loop is restarted after this.
    void stop() noexcept;
    // Any thread: true once no coroutine of the source runs on any lane: after stop(),
    // everything read is then in the queue (or dropped). A source that ends by itself (a
    // generator's count) is idle without stop().
    bool idle() const { return live_tasks_.load(std::memory_order_acquire) == 0; }

    // Any thread: the queue has room again; wakes, on each lane's own thread, everything
    // waiting in push().
    void resume();

    // Home thread: the queue has delivery acknowledgements for this source (batches pushed with
    // a position); take them with queue_.take_deliveries. Posted by the pipeline.
    virtual void on_delivered() {}
    // After every sink has ended (any thread, the io threads no longer running): take the last
    // acknowledgements and make them durable (file offsets).
    virtual void flush_acknowledgements() noexcept {}
    // Any thread: the files this source tails, or nullptr for a source that tails none.
    virtual const file_counters* files() const { return nullptr; }
    // Any thread: the connections this source accepts, or nullptr for one that accepts none.
    virtual const connection_counters* connections() const { return nullptr; }
    // Any thread: this kind's own figures (see kind_metric), appended to `out`.
    virtual void kind_metrics(std::vector<kind_metric>& out) const { (void)out; }

protected:
    // One event loop the source works on, with its own pause state: a lane pauses when a push
    // of its own finds the queue full, so its connections stop reading while the other lanes
    // find out by themselves (the queue refuses every push until it resumes).
    struct lane {
        lane(asio::io_context& loop, size_t lane_index);
        asio::io_context& io;
        size_t index;                      // 0: the home lane
        asio::steady_timer resume_signal;  // cancelled to wake the lane's waiters
        bool paused = false;               // the lane's thread only
        // The lane's thread only: the backoff timers of its supervisors' restarts.
        std::unordered_set<asio::steady_timer*> backoffs;
    };

    // Constructor only: adds a lane on `loop` (the home loop already has lane 0).
    lane& add_lane(asio::io_context& loop);
    lane& home_lane() { return *lanes_.front(); }
    const std::vector<std::unique_ptr<lane>>& lanes() const { return lanes_; }

    // Home thread: what stop() does for this kind of source (close, cancel; a source with
    // several lanes posts to each).
    virtual void on_stop() noexcept = 0;
    // Any thread.
    bool stopping() const { return stopping_.load(std::memory_order_acquire); }

    // Home thread: runs the coroutine `make` returns, supervised, on `on`'s loop (the home
    // lane by default). When it throws, the error is logged with `what`, counted, and after a
    // backoff (100 ms, doubling to 30 s; back to 100 ms after a run of a minute) `make` is
    // called again on that loop, until stop(). A coroutine that returns is done. `done` runs
    // on that loop once the loop is over for good, however it ended.
    void supervise(std::string what, std::function<asio::awaitable<void>()> make,
                   std::function<void()> done = {}, lane* on = nullptr);
    // Any thread: runs one task (a connection) on `on`'s loop (the home lane by default): a
    // throw is logged and counted, not retried. `done` runs on that loop when it ends, however
    // it ended.
    void spawn_task(std::string what, asio::awaitable<void> task,
                    std::function<void()> done = {}, lane* on = nullptr);
    // Any thread: logs (at most once a second, saying how many were held back) and counts an
    // exception that ended one of this source's coroutines.
    void report_failure(const std::string& what, std::exception_ptr e);
    // Any thread: an error from a wait that only stop() or resume() should end: operation
    // aborted is expected; anything else is thrown, so the supervisor restarts the loop.
    void check_wait(const asio::error_code& ec, const char* what) const;

    // `l`'s thread: pushes `b`, pausing `l` through `full` until the queue takes it. Counts
    // events and drops. Returns false if the queue is closed (the batch is then lost: only at
    // exit). Without a lane: the home lane.
    asio::awaitable<bool> push(batch_ptr b, lane& l);
    asio::awaitable<bool> push(batch_ptr b) { return push(std::move(b), home_lane()); }
    // Any thread: for sources that cannot pause (UDP): pushes `b` or, when the queue is full,
    // drops it and counts it as reason "queue_full". Never waits.
    void push_or_drop(batch_ptr b);
    // `l`'s thread: waits while `l` is paused.
    asio::awaitable<void> wait_while_paused(lane& l);
    asio::awaitable<void> wait_while_paused() { return wait_while_paused(home_lane()); }
    static bool paused(const lane& l) { return l.paused; }
    bool paused() const { return lanes_.front()->paused; }
    void pause(lane& l);

    asio::io_context& io_;  // the home loop
    bounded_queue& queue_;
    source_counters counters_;

private:
    asio::awaitable<void> supervisor(std::string what,
                                     std::function<asio::awaitable<void>()> make, lane& on);
    // `l`'s thread: un-pauses `l` and wakes its waiters.
    void resume_lane(lane& l);
    // `l`'s thread: ends the backoff waits of its supervisors (stop()).
    static void cancel_backoffs(lane& l);

    std::string name_;
    source_id id_;
    std::vector<std::unique_ptr<lane>> lanes_;
    std::atomic<bool> stopping_{false};
    std::atomic<size_t> live_tasks_{0};
    log_limiter failure_log_;
    // The source counts as paused while any lane is: the first lane to pause and the last to
    // resume set counters_.paused and the backpressure time.
    std::mutex pause_mutex_;
    size_t paused_lanes_ = 0;
};

}  // namespace sluice
