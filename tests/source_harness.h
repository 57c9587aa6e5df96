// A source under test on a real io_context pumped by the test thread, pushing into a real
// bounded_queue whose one sink slot the test plays (read_until + commit). Resume and delivery
// acknowledgements reach the source as in app/pipeline.cpp: posted to the io thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <catch2/catch.hpp>

#include "ingest/source.h"
#include "queue/bounded_queue.h"

namespace sluice::test {

using clk = std::chrono::steady_clock;
using sluice::batch_ptr;
using sluice::bounded_queue;
using sluice::overflow_policy;
using sluice::queue_config;
inline constexpr auto watchdog = std::chrono::seconds(20);

struct seen_event {
    std::string line;
    std::string host;
    std::string origin;
};

inline queue_config small_queue(uint64_t max_bytes, uint64_t max_events = 1'000'000) {
    queue_config c;
    c.max_bytes = max_bytes;
    c.max_events = max_events;
    c.when_full = overflow_policy::block;
    return c;
}

// One io_context pumped by the test thread, one queue with one sink that the test plays.
struct harness {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
    bounded_queue q;
    sluice::source* src = nullptr;
    uint64_t cursor = 0;
    std::vector<batch_ptr> batches;
    std::vector<seen_event> events;

    explicit harness(queue_config c = {}) : q(c, 1, {{true}}) {
        // Exactly as app/pipeline.cpp: resume on the io thread.
        q.set_resume_callback([this] {
            asio::post(io, [this] {
                if (src != nullptr) {
                    src->resume();
                }
            });
        });
        q.set_delivery_callback([this](sluice::source_id) {
            asio::post(io, [this] {
                if (src != nullptr) {
                    src->on_delivered();
                }
            });
        });
    }

    void pump() { io.run_for(std::chrono::milliseconds(2)); }

    // The sink: takes everything queued now and commits it.
    size_t drain() {
        std::vector<batch_ptr> out;
        if (q.read_until(0, cursor, clk::now(), out, UINT64_MAX, UINT64_MAX) !=
            sluice::read_result::ok) {
            return 0;
        }
        size_t n = 0;
        for (const auto& b : out) {
            for (size_t i = 0; i < b->event_count(); ++i) {
                events.push_back({std::string(b->line(i)), b->host, b->origin});
                ++n;
            }
            batches.push_back(b);
        }
        q.commit(0, cursor);
        return n;
    }

    std::string state() const {
        std::ostringstream s;
        s << "events read " << events.size() << ", batches " << batches.size()
          << ", queue events " << q.events_size_guess() << " bytes " << q.bytes_size_guess()
          << " blocked " << q.blocked_guess();
        if (src != nullptr) {
            const auto& c = src->counters();
            s << "; source events_total " << c.events_total.load() << " bytes_total "
              << c.bytes_total.load() << " paused " << c.paused.load() << " idle "
              << src->idle();
        }
        return s.str();
    }

    // Pumps the io (and, if `drain_queue`, plays the sink) until `done` holds; fails with the
    // state seen when the watchdog runs out.
    void pump_until(const std::function<bool()>& done, bool drain_queue, const char* what) {
        const auto deadline = clk::now() + watchdog;
        while (!done()) {
            if (clk::now() > deadline) {
                FAIL("watchdog: still waiting for " << what << "; " << state());
            }
            pump();
            if (drain_queue) {
                drain();
            }
        }
    }

    // Stops the source and waits until it is idle, reading what it pushes.
    void stop_and_settle() {
        src->stop();
        pump_until([&] { return src->idle(); }, true, "idle() after stop()");
        drain();
    }
};

}  // namespace sluice::test
