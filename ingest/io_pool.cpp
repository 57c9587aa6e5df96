#include "ingest/io_pool.h"

#include <sched.h>

#include <exception>
#include <string>

#include <spdlog/spdlog.h>

#include "common/thread_name.h"

namespace sluice {

size_t io_pool::cores() {
    // The affinity mask, not the machine: a container or taskset limits what we may use.
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof(set), &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) {
            return static_cast<size_t>(n);
        }
    }
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : n;
}

io_pool::io_pool(size_t threads) {
    if (threads == 0) {
        threads = cores();
    }
    for (size_t i = 0; i < threads; ++i) {
        // concurrency hint 1: each loop is run by exactly one thread, so Asio can skip locks.
        loops_.push_back(std::make_unique<asio::io_context>(1));
        loop_pointers_.push_back(loops_.back().get());
    }
    // Every loop, the home one too, runs until stop(): the home loop running out of work
    // (its listeners closed) must not end the others while their connections finish.
    for (auto& loop : loops_) {
        guards_.emplace_back(loop->get_executor());
    }
}

io_pool::~io_pool() {
    stop();
    join();
}

void io_pool::run() {
    for (size_t i = 1; i < loops_.size(); ++i) {
        threads_.emplace_back([this, i] {
            set_thread_name("sluice-io-" + std::to_string(i));
            try {
                loops_[i]->run();
            } catch (const std::exception& e) {
                // Handlers do not throw (coroutines are supervised); this is a bug.
                spdlog::critical("io thread {} ended: {}", i, e.what());
                std::terminate();
            }
        });
    }
    try {
        loops_[0]->run();
    } catch (...) {
        stop();
        join();
        throw;
    }
    stop();
    join();
}

void io_pool::stop() {
    for (auto& guard : guards_) {
        guard.reset();
    }
    for (auto& loop : loops_) {
        loop->stop();
    }
}

void io_pool::join() noexcept {
    for (auto& t : threads_) {
        if (t.joinable()) {
            t.join();
        }
    }
    threads_.clear();
}

}  // namespace sluice
