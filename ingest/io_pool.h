// io_pool: the event loops the network sources share (`io_threads`). Loop 0 is the home loop:
// the pipeline's own (signals, shutdown, timers) and every source's control, run by the thread
// that calls run(). Loops 1..n-1 each run on a thread of their own ("sluice-io-N"). Every loop
// is kept alive by a work guard until stop(). A source that spreads its work (the TCP
// source's connections) hands it to a loop; everything else stays on the home loop.
// Construct, run() and stop() on one thread (stop() from a handler on the home loop);
// loop(i), loops() and size() from any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

namespace sluice {

class io_pool {
public:
    // `threads` >= 1 loops; 0 means one per core.
    explicit io_pool(size_t threads);
    ~io_pool();
    io_pool(const io_pool&) = delete;
    io_pool& operator=(const io_pool&) = delete;

    size_t size() const { return loops_.size(); }
    asio::io_context& home() { return *loops_[0]; }
    asio::io_context& loop(size_t i) { return *loops_[i]; }
    // Every loop, the home one first: what a source that spreads its work is given.
    const std::vector<asio::io_context*>& loops() const { return loop_pointers_; }

    // Starts the threads of loops 1..n-1, then runs the home loop on the calling thread until
    // stop(); then joins the others' threads.
    void run();
    // Ends run(): releases the work guards and stops every loop.
    void stop();

    // The number `threads = 0` stands for: the cores this process may run on.
    static size_t cores();

private:
    using work_guard = asio::executor_work_guard<asio::io_context::executor_type>;

    void join() noexcept;

    std::vector<std::unique_ptr<asio::io_context>> loops_;
    std::vector<asio::io_context*> loop_pointers_;  // the same loops, for loops()
    std::vector<work_guard> guards_;  // one per loop
    std::vector<std::thread> threads_;
};

}  // namespace sluice
