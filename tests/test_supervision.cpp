// Supervision of sources' coroutines (ingest/source.h): a loop that throws is logged, counted
// and restarted after a backoff; a task that throws is counted and not restarted; stop()
// ends a loop waiting to restart, and idle() never waits on a coroutine that died.
#include <atomic>
#include <stdexcept>
#include <thread>

#include <asio/executor_work_guard.hpp>

#include <catch2/catch.hpp>

#include "source_harness.h"

namespace {

using namespace sluice;
using namespace sluice::test;

// A source whose loop throws its first `failures` runs, then pushes one event per run.
class flaky_source final : public source {
public:
    flaky_source(asio::io_context& io, bounded_queue& q, int failures, bool as_task)
        : source("flaky", 0, io, q), failures_(failures), as_task_(as_task) {}

    void start() override {
        if (as_task_) {
            spawn_task("task", loop(), [this] { ++task_done_; });
        } else {
            supervise("test loop", [this] { return loop(); }, [this] { ++loop_done_; });
        }
    }
    int runs() const { return runs_; }
    int loop_done() const { return loop_done_; }
    int task_done() const { return task_done_; }

private:
    void on_stop() noexcept override {}

    asio::awaitable<void> loop() {
        ++runs_;
        if (runs_ <= failures_) {
            throw std::runtime_error("failure " + std::to_string(runs_));
        }
        auto b = std::make_shared<batch>(id(), 64);
        b->add_line("run " + std::to_string(runs_));
        co_await push(std::move(b));
    }

    int failures_;
    bool as_task_;
    int runs_ = 0;
    int loop_done_ = 0;
    int task_done_ = 0;
};

// A source with a second lane on a loop of its own thread, whose supervised loop always throws.
class lane_flaky_source final : public source {
public:
    lane_flaky_source(asio::io_context& home, asio::io_context& other, bounded_queue& q)
        : source("lane-flaky", 0, home, q), other_(add_lane(other)) {}

    void start() override {
        supervise("lane loop", [this] { return loop(); }, [this] { done = true; }, &other_);
    }

    std::thread::id lane_thread;  // set by the lane's thread before it runs its loop
    std::atomic<int> runs{0};
    std::atomic<int> runs_elsewhere{0};  // runs not on the lane's thread
    std::atomic<bool> done{false};

private:
    void on_stop() noexcept override {}

    asio::awaitable<void> loop() {
        ++runs;
        if (std::this_thread::get_id() != lane_thread) {
            ++runs_elsewhere;
        }
        if (runs > 0) {
            throw std::runtime_error("failure " + std::to_string(runs.load()));
        }
        co_return;
    }

    lane& other_;
};

TEST_CASE("supervised loop: each throw is counted and the loop restarted", "[supervision]") {
    harness h;
    flaky_source src(h.io, h.q, 3, false);
    h.src = &src;
    const auto began = clk::now();
    src.start();
    CHECK_FALSE(src.idle());
    h.pump_until([&] { return h.events.size() == 1; }, true, "the fourth run's event");
    // Backoffs of 100, 200 and 400 ms passed between the runs.
    CHECK(clk::now() - began >= std::chrono::milliseconds(700));
    CHECK(src.runs() == 4);
    CHECK(src.counters().errors_total.load() == 3);
    CHECK(h.events[0].line == "run 4");
    // The run that returned is not restarted: the loop is over and the source idle.
    h.pump_until([&] { return src.idle(); }, true, "idle after the clean run");
    CHECK(src.loop_done() == 1);
    CHECK(src.runs() == 4);
}

TEST_CASE("supervised loop: stop() during the backoff ends it at once", "[supervision]") {
    harness h;
    flaky_source src(h.io, h.q, 1000, false);
    h.src = &src;
    src.start();
    h.pump_until([&] { return src.counters().errors_total.load() >= 4; }, false,
                 "four failures");
    // The fifth backoff is 1.6 s: stop() must not wait for it.
    const auto stopped_at = clk::now();
    src.stop();
    h.pump_until([&] { return src.idle(); }, false, "idle after stop()");
    CHECK(clk::now() - stopped_at < std::chrono::milliseconds(500));
    const int runs = src.runs();
    for (int i = 0; i < 50; ++i) {
        h.pump();
    }
    CHECK(src.runs() == runs);  // never restarted after stop()
    CHECK(src.loop_done() == 1);
}

TEST_CASE("supervised loop on another lane: restarted on that lane's thread, and stop() from "
          "the home thread ends its backoff at once",
          "[supervision]") {
    harness h;
    asio::io_context other;
    lane_flaky_source src(h.io, other, h.q);
    h.src = &src;
    auto guard = asio::make_work_guard(other);
    std::thread lane_thread([&] {
        src.lane_thread = std::this_thread::get_id();
        other.run();
    });
    src.start();
    h.pump_until([&] { return src.counters().errors_total.load() >= 4; }, false,
                 "four failures on the lane");
    // The next backoff is 0.8 s or more, on the lane's loop: stop() on the home thread cancels
    // it there.
    const auto stopped_at = clk::now();
    src.stop();
    h.pump_until([&] { return src.idle(); }, false, "idle after stop()");
    CHECK(clk::now() - stopped_at < std::chrono::milliseconds(500));
    CHECK(src.done.load());
    const int runs = src.runs.load();
    CHECK(runs >= 4);
    CHECK(src.runs_elsewhere.load() == 0);
    guard.reset();
    other.stop();
    lane_thread.join();
    CHECK(src.runs.load() == runs);
}

TEST_CASE("task: a throw is counted, not restarted, and done still runs", "[supervision]") {
    harness h;
    flaky_source src(h.io, h.q, 1, true);
    h.src = &src;
    src.start();
    h.pump_until([&] { return src.idle(); }, true, "the task to end");
    CHECK(src.runs() == 1);
    CHECK(src.task_done() == 1);
    CHECK(src.counters().errors_total.load() == 1);
    CHECK(h.events.empty());
}

}  // namespace
