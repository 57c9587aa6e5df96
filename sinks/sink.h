// sink: the base of every output. It owns the sink's thread, which reads batches past its
// cursor in the queue, gathers them up to the batch limits, writes them through write_impl,
// retries with capped exponential backoff, and commits its cursor only after a good write.
// Subclasses implement write_impl / flush_impl / reopen_impl; those run on the sink thread.
//
// A failed write is transient (retried with capped backoff) or permanent (the sink goes to
// `failed`, says so once, and tries again every failed_interval until it works: someone has
// to fix something first). Either way its events stay queued. A retry of the same gathered
// batches resumes where the failed attempt stopped: write_impl keeps its progress in
// resume_point(), which the base clears after each good write. An attempt that moved the
// resume point starts the backoff over.
//
// Pipelining, for a sink whose writes a server acknowledges later (nats): such a sink returns
// true from pipelined(), and a write then has two steps. write_impl sends (ok: everything is
// out) and finish_impl waits until the server has acknowledged all of it (ok: durable). The
// base starts the next write before it finishes the previous one, so one write's wait for its
// acknowledgements overlaps the next one's gathering and sending; at most two writes are
// outstanding, each with its own resume point (progress() and write_slot() name the one the
// call is about), and the cursor still moves in order, past a write only once it is finished.
// A failed finish_impl is retried like a failed write: it sends again what was not
// acknowledged and waits again.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/log_limiter.h"
#include "common/metrics.h"
#include "queue/bounded_queue.h"

namespace sluice {

// When a gathered batch is written: whichever limit is reached first. A sink that is behind
// fills its batches from what is queued (max_events, max_bytes); one that has caught up
// writes what it holds once the oldest event has waited `linger`, so under light load lines
// go out within milliseconds and under heavy load batches still fill. `timeout` caps the wait
// whatever `linger` says.
struct batch_config {
    uint64_t max_events = 10'000;                            // events per write
    uint64_t max_bytes = 4ull << 20;                         // queued bytes per write
    std::chrono::nanoseconds timeout = std::chrono::seconds(1);  // oldest event's wait, at most
    std::chrono::nanoseconds linger = std::chrono::milliseconds(5);  // ... once caught up
};

// Backoff between attempts at a failed write.
struct retry_config {
    std::chrono::nanoseconds initial_backoff = std::chrono::milliseconds(100);
    std::chrono::nanoseconds max_backoff = std::chrono::seconds(5);
    // A failed sink's attempts come this far apart.
    std::chrono::nanoseconds failed_interval = std::chrono::seconds(30);
    // Exceptions in a row after which the sink counts as failed: one that keeps recurring is
    // not retried for ever at the transient rate.
    uint32_t exception_limit = 5;
};

enum class write_status {
    ok,         // written and durable as configured: commit
    retry,      // transient (disk full, database locked): try again after a backoff
    permanent,  // cannot work until something is fixed (a path that is a directory, a table
                // of another shape): the sink goes to failed and tries again slowly
};

enum class sink_state {
    ok,        // the last write worked (or none was needed yet)
    retrying,  // a transient failure: retrying with backoff
    failed,    // a permanent failure: trying again every failed_interval
};
const char* to_string(sink_state s);

// Where a failed write attempt stopped in the gathered batches: the next attempt at the same
// batches starts there. `done` is free for the sink's own finer position (bytes, frames).
struct resume_point {
    size_t batch = 0;  // batches before this one are written
    size_t event = 0;  // in that batch, events before this one are written
    uint64_t done = 0;
    bool at_start() const { return batch == 0 && event == 0 && done == 0; }
};

struct sink_counters {
    counter events_total{0};
    counter batches_total{0};
    counter errors_total{0};
    counter retries_total{0};
    duration_histogram batch_duration;
    duration_histogram latency;  // per event: received to written
};

class sink {
public:
    sink(std::string name, batch_config batch, retry_config retry = {});
    virtual ~sink();
    sink(const sink&) = delete;
    sink& operator=(const sink&) = delete;

    const std::string& name() const { return name_; }
    const sink_counters& counters() const { return counters_; }

    // Starts the sink thread on queue slot `id`. Call once.
    void start(bounded_queue& queue, size_t id);
    // Any thread: stop retrying and end the thread soon, even with events left.
    void abort();
    // Waits for the thread; it ends by itself once the queue is closed and all is written.
    void join();
    bool finished() const { return finished_.load(std::memory_order_acquire); }
    // Any thread.
    sink_state state() const { return state_.load(std::memory_order_acquire); }
    bool failed() const { return state() == sink_state::failed; }
    // Any thread: what the last failed attempt logged; empty once a write works again.
    std::string last_error() const;
    // Any thread: reopen output files before the next write (SIGHUP).
    void request_reopen() { reopen_.store(true, std::memory_order_release); }
    // Any thread: this kind's own figures (see kind_metric), appended to `out`.
    virtual void kind_metrics(std::vector<kind_metric>& out) const { (void)out; }

    // Sink thread (or a test driving the sink directly): one write attempt with timing,
    // counting and the exception boundary (a pipelined sink's send and finish, one after the
    // other). An exception counts as `retry`, until exception_limit of them in a row make it
    // `permanent`. After `ok` the resume point is cleared: the next call is for new batches.
    write_status write(std::span<const batch_ptr> batches);

protected:
    virtual write_status write_impl(std::span<const batch_ptr> batches) = 0;
    // Pipelined sinks (see above): true to have writes finished by finish_impl, after the
    // next write was sent. Constant for the sink's life.
    virtual bool pipelined() const { return false; }
    // Pipelined sinks: waits until the write that write_impl sent for `batches` is durable.
    virtual write_status finish_impl(std::span<const batch_ptr> batches) {
        (void)batches;
        return write_status::ok;
    }
    virtual void reopen_impl() {}
    // Sink thread: the sink ends (aborted: shutdown timeout) with the gathered batches not
    // all written. Undo what failed attempts left of them (a cut line), so that exactly the
    // events counted as not delivered are missing from the output.
    virtual void abandon_impl() {}
    // Ends the thread. Every final subclass calls this first in its destructor: the thread
    // runs write_impl, which must not outlive the subclass's members.
    void stop_thread();
    // True once abort() was called: a write_impl that waits checks this to give up.
    bool aborted() const { return aborted_.load(std::memory_order_acquire); }
    // Records a failure as last_error() and logs it at most once a second; not while the
    // sink is failed (that was said once). Sink thread only.
    void log_failure(const std::string& what);
    // Sink thread: the progress of the current gathered batches (see resume_point).
    resume_point& progress() { return progress_[slot_]; }
    // Sink thread: which of the (pipelined: two) outstanding writes a call is about, 0 or 1.
    size_t write_slot() const { return slot_; }

private:
    void run();
    // One attempt at a write's send (finish = false) or finish step, with the exception
    // boundary; counts the write once its last step is ok. Sink thread.
    write_status attempt(std::span<const batch_ptr> batches, bool finish);
    // Attempts the step until ok; false if aborted. After the first failed attempt, before
    // any backoff, calls `on_first_failure` (if given; false from it: aborted). Sink thread.
    bool deliver(std::span<const batch_ptr> batches, bool finish,
                 const std::function<bool()>& on_first_failure = {});
    void set_state(sink_state s);
    // Sleeps `d` unless aborted first; false if aborted.
    bool sleep_unless_aborted(std::chrono::nanoseconds d);

    const std::string name_;
    const batch_config batch_;
    const retry_config retry_;
    sink_counters counters_;
    bounded_queue* queue_ = nullptr;
    size_t id_ = 0;
    std::atomic<bool> aborted_{false};
    std::atomic<bool> finished_{false};
    std::atomic<sink_state> state_{sink_state::ok};
    resume_point progress_[2];
    size_t slot_ = 0;
    int64_t began_ns_[2] = {0, 0};  // when each slot's write was first attempted
    uint32_t exceptions_in_row_ = 0;
    mutable std::mutex error_mutex_;
    std::string last_error_;
    std::atomic<bool> reopen_{false};
    std::mutex abort_mutex_;
    std::condition_variable abort_cv_;
    log_limiter failure_log_;
    std::thread thread_;
};

}  // namespace sluice
