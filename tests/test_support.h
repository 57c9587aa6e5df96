// Helpers shared by the unit tests: a watchdog that turns a hang into a report, polling for a
// condition with a deadline, and a batch holding given lines. For the test's main thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "queue/event.h"

namespace sluice::test {

// Aborts the process with a message if not dismissed (destroyed) within `limit`: a hang is
// reported, not waited out by CTest. `state`, if given, says what the test saw so far.
class watchdog {
public:
    explicit watchdog(std::string what, std::function<std::string()> state = {},
                      std::chrono::seconds limit = std::chrono::seconds(30))
        : what_(std::move(what)), state_(std::move(state)), thread_([this, limit] {
              std::unique_lock lock(mutex_);
              if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
                  std::fprintf(stderr, "watchdog: %s did not finish in %lld s (%s).\n",
                               what_.c_str(), static_cast<long long>(limit.count()),
                               state_ ? state_().c_str() : "");
                  std::abort();
              }
          }) {}
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;

private:
    std::string what_;
    std::function<std::string()> state_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

// Polls `done` every millisecond until it holds or `limit` has passed; returns whether it
// held. A liveness bound, not a timing assertion.
template <class Pred>
bool eventually(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > until) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// A batch of `source` holding `lines`, read at `received_ns` from `host`.
inline batch_ptr batch_of_lines(source_id source, const std::vector<std::string>& lines,
                                int64_t received_ns = 1'700'000'000'000'000'000,
                                std::string host = "") {
    auto b = std::make_shared<batch>(source);
    for (const auto& l : lines) {
        b->add_line(l);
    }
    b->received_ns = received_ns;
    b->host = std::move(host);
    return b;
}

}  // namespace sluice::test
