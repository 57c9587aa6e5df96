// sink: the base of every output. It owns the sink's thread, which reads batches past its
// cursor in the queue, gathers them up to the batch limits, writes them through write_impl,
// retries with capped exponential backoff, and commits its cursor only after a good write.
// Subclasses implement write_impl / flush_impl / reopen_impl; those run on the sink thread.
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

// When a gathered batch is written: whichever limit is reached first.
struct batch_config {
    uint64_t max_events = 10'000;                            // events per write
    uint64_t max_bytes = 4ull << 20;                         // queued bytes per write
    std::chrono::nanoseconds timeout = std::chrono::seconds(1);  // oldest event's wait
};

// Backoff between attempts at a failed write.
struct retry_config {
    std::chrono::nanoseconds initial_backoff = std::chrono::milliseconds(100);
    std::chrono::nanoseconds max_backoff = std::chrono::seconds(5);
};

enum class write_status {
    ok,     // written and durable as configured: commit
    retry,  // nothing half-written; try the same events again after a backoff
    fatal,  // the sink cannot go on
};

struct sink_counters {
    counter events_total{0};
    counter batches_total{0};
    counter errors_total{0};
    counter retries_total{0};
    duration_histogram batch_duration;
};

class sink {
public:
    sink(std::string name, batch_config batch, retry_config retry = {});
    virtual ~sink();
    sink(const sink&) = delete;
    sink& operator=(const sink&) = delete;

    const std::string& name() const { return name_; }
    const sink_counters& counters() const { return counters_; }

    // Starts the sink thread on queue slot `id`. `on_fatal` runs on the sink thread if the
    // sink stops on a fatal error. Call once.
    void start(bounded_queue& queue, size_t id, std::function<void()> on_fatal = {});
    // Any thread: stop retrying and end the thread soon, even with events left.
    void abort();
    // Waits for the thread; it ends by itself once the queue is closed and all is written.
    void join();
    bool finished() const { return finished_.load(std::memory_order_acquire); }
    bool failed() const { return failed_.load(std::memory_order_acquire); }
    // Any thread: reopen output files before the next write (SIGHUP).
    void request_reopen() { reopen_.store(true, std::memory_order_release); }

    // Sink thread (or a test driving the sink directly): one write attempt with timing,
    // counting and the exception boundary. An exception counts as `retry`.
    write_status write(std::span<const batch_ptr> batches);

protected:
    virtual write_status write_impl(std::span<const batch_ptr> batches) = 0;
    virtual void reopen_impl() {}
    // Ends the thread. Every final subclass calls this first in its destructor: the thread
    // runs write_impl, which must not outlive the subclass's members.
    void stop_thread();
    // True once abort() was called: a write_impl that waits checks this to give up.
    bool aborted() const { return aborted_.load(std::memory_order_acquire); }
    // Logs a failure of this sink at most once a second. Sink thread only.
    void log_failure(const std::string& what);

private:
    void run();
    // Writes until ok; false if aborted or fatal. Sink thread.
    bool deliver(std::span<const batch_ptr> batches);
    // Sleeps `d` unless aborted first; false if aborted.
    bool sleep_unless_aborted(std::chrono::nanoseconds d);

    const std::string name_;
    const batch_config batch_;
    const retry_config retry_;
    sink_counters counters_;
    bounded_queue* queue_ = nullptr;
    size_t id_ = 0;
    std::function<void()> on_fatal_;
    std::atomic<bool> aborted_{false};
    std::atomic<bool> finished_{false};
    std::atomic<bool> failed_{false};
    std::atomic<bool> reopen_{false};
    std::mutex abort_mutex_;
    std::condition_variable abort_cv_;
    log_limiter failure_log_;
    std::thread thread_;
};

}  // namespace sluice
