// pipeline: builds and runs sluice from a config: the io thread with its sources, the queue,
// one thread per sink, the HTTP API, signals and the shutdown sequence.
// Construct and run() on the main thread; the accessors are safe from any thread once run()
// has started (they read counters only).
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include <asio/io_context.hpp>
#include "common/lazy_zmq_context.h"
#include "ingest/io_pool.h"

#include "app/config.h"
#include "ingest/source.h"
#include "queue/bounded_queue.h"
#include "sinks/sink.h"

namespace sluice {

class http_api;

class pipeline {
public:
    // Builds every component; throws sluice::error if one cannot be set up.
    explicit pipeline(config cfg);
    ~pipeline();
    pipeline(const pipeline&) = delete;
    pipeline& operator=(const pipeline&) = delete;

    // Starts everything and runs the io loop on the calling thread until shutdown. Returns
    // the exit code: 0 after a clean shutdown, 1 when something could not be delivered.
    int run();
    // Any thread: begins the shutdown sequence as SIGTERM does.
    void request_stop();

    const config& cfg() const { return config_; }
    const bounded_queue& queue() const { return *queue_; }
    const std::vector<std::unique_ptr<source>>& sources() const { return sources_; }
    const std::vector<std::unique_ptr<sink>>& sinks() const { return sinks_; }
    int64_t started_unix_ns() const { return started_unix_ns_; }
    size_t io_threads() const { return pool_.size(); }

private:
    void begin_shutdown(int exit_code);
    void watch_shutdown();
    void finish(int exit_code);
    // Every second: once a backlog has drained, hands the memory it took back to the
    // system (malloc_trim), so RSS follows the queue down instead of staying at its peak.
    void trim_memory_later();

    config config_;
    lazy_zmq_context zmq_context_;  // outlives every socket: declared before them
    io_pool pool_;                  // outlives every source: declared before them
    asio::io_context& io_;          // the pool's home loop: signals, shutdown, timers
    std::unique_ptr<bounded_queue> queue_;
    std::vector<std::unique_ptr<source>> sources_;
    std::vector<std::unique_ptr<sink>> sinks_;
    std::unique_ptr<http_api> api_;
    std::unique_ptr<asio::steady_timer> shutdown_timer_;
    std::unique_ptr<asio::steady_timer> trim_timer_;
    uint64_t queue_peak_bytes_ = 0;  // the queue's largest size since the last trim
    std::chrono::steady_clock::time_point shutdown_deadline_;
    bool shutting_down_ = false;
    bool queue_closed_ = false;
    int exit_code_ = 0;
    int64_t started_unix_ns_ = 0;
};

}  // namespace sluice
