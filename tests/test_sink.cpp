// Tests for the sink base: when gathered batches are written (max_events, max_bytes, timeout,
// close), retries and what they commit, permanent errors, abort, and the counters, through a
// counting test double with an injectable delay and scripted write results.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "queue/bounded_queue.h"
#include "sinks/sink.h"
#include "tests/test_support.h"

using namespace std::chrono_literals;
using sluice::batch;
using sluice::batch_config;
using sluice::batch_ptr;
using sluice::bounded_queue;
using sluice::push_result;
using sluice::queue_config;
using sluice::retry_config;
using sluice::write_status;
using clk = std::chrono::steady_clock;

namespace {

using sluice::test::eventually;
using sluice::test::watchdog;

constexpr uint64_t unlimited = uint64_t{1} << 40;

retry_config fast_retry() {
    retry_config r;
    r.initial_backoff = 1ms;
    r.max_backoff = 5ms;
    return r;
}

batch_config limits(uint64_t max_events, uint64_t max_bytes = unlimited,
                    std::chrono::nanoseconds timeout = std::chrono::hours(1)) {
    batch_config b;
    b.max_events = max_events;
    b.max_bytes = max_bytes;
    b.timeout = timeout;
    b.linger = timeout;  // size-or-time batching; the linger has tests of its own
    return b;
}

// A sink that records what it is asked to write. Each attempt takes the next scripted step
// (ok once the script is used up); a step may throw instead of returning.
class counting_sink : public sluice::sink {
public:
    struct step {
        write_status status = write_status::ok;
        int throws = 0;  // 0: return status; 1: throw std::runtime_error; 2: throw an int
    };
    struct attempt {
        std::vector<std::string> lines;
        size_t batches = 0;
        write_status result = write_status::ok;
        uint64_t lag_events = 0;  // the sink's queue lag while this attempt ran
    };

    explicit counting_sink(batch_config batch, retry_config retry = fast_retry())
        : sink("counting", batch, retry) {}
    // The thread calls write_impl: stop it before this object is gone.
    ~counting_sink() override {
        abort();
        join();
    }

    void script(std::vector<step> steps) {
        std::lock_guard lock(mutex_);
        script_.assign(steps.begin(), steps.end());
    }
    void fail_forever(write_status status) {
        std::lock_guard lock(mutex_);
        forever_ = status;
    }
    void set_delay(std::chrono::microseconds d) { delay_us_ = d.count(); }
    void watch_lag(const bounded_queue& q, size_t id) {
        queue_ = &q;
        id_ = id;
    }

    std::vector<attempt> attempts() const {
        std::lock_guard lock(mutex_);
        return attempts_;
    }
    size_t attempt_count() const {
        std::lock_guard lock(mutex_);
        return attempts_.size();
    }
    // Lines of the attempts that returned ok, in order.
    std::vector<std::string> written() const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> all;
        for (const auto& a : attempts_) {
            if (a.result == write_status::ok) {
                all.insert(all.end(), a.lines.begin(), a.lines.end());
            }
        }
        return all;
    }
    bool wait_attempts(size_t n, std::chrono::seconds limit = 10s) const {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, limit, [&] { return attempts_.size() >= n; });
    }
    int reopens() const { return reopens_.load(); }

protected:
    write_status write_impl(std::span<const batch_ptr> batches) override {
        if (const auto d = delay_us_.load(); d > 0) {
            std::this_thread::sleep_for(std::chrono::microseconds(d));
        }
        attempt a;
        a.batches = batches.size();
        for (const auto& b : batches) {
            for (size_t i = 0; i < b->event_count(); ++i) {
                a.lines.emplace_back(b->line(i));
            }
        }
        if (queue_ != nullptr) {
            a.lag_events = queue_->stats().sinks[id_].events;
        }
        step s;
        {
            std::lock_guard lock(mutex_);
            if (!script_.empty()) {
                s = script_.front();
                script_.pop_front();
            } else if (forever_ != write_status::ok) {
                s.status = forever_;
            }
            a.result = s.throws != 0 ? write_status::retry : s.status;
            attempts_.push_back(std::move(a));
        }
        cv_.notify_all();
        if (s.throws == 1) {
            throw std::runtime_error("scripted failure");
        }
        if (s.throws == 2) {
            throw 42;
        }
        return s.status;
    }
    void reopen_impl() override { ++reopens_; }

private:
    mutable std::mutex mutex_;
    mutable std::condition_variable cv_;
    std::deque<step> script_;
    write_status forever_ = write_status::ok;
    std::vector<attempt> attempts_;
    std::atomic<int64_t> delay_us_{0};
    std::atomic<int> reopens_{0};
    const bounded_queue* queue_ = nullptr;
    size_t id_ = 0;
};

queue_config big_queue() {
    queue_config c;
    c.max_events = unlimited;
    c.max_bytes = unlimited;
    return c;
}

batch_ptr make_batch(sluice::source_id source, size_t events, const std::string& tag) {
    auto b = std::make_shared<batch>(source);
    for (size_t i = 0; i < events; ++i) {
        b->add_line(tag + "-" + std::to_string(i));
    }
    return b;
}

void push(bounded_queue& q, batch_ptr b) { REQUIRE(q.try_push(b) == push_result::ok); }

std::vector<std::string> lines_of(const std::string& tag, size_t events) {
    std::vector<std::string> v;
    for (size_t i = 0; i < events; ++i) {
        v.push_back(tag + "-" + std::to_string(i));
    }
    return v;
}

std::vector<std::string> concat(std::vector<std::vector<std::string>> parts) {
    std::vector<std::string> all;
    for (auto& p : parts) {
        all.insert(all.end(), p.begin(), p.end());
    }
    return all;
}

uint64_t lag_of(const bounded_queue& q, size_t sink) { return q.stats().sinks[sink].events; }

}  // namespace

TEST_CASE("a sink that has caught up writes after its linger, not its timeout", "[sink]") {
    watchdog dog("linger test");
    bounded_queue q(big_queue(), 1, {{true}});
    batch_config b = limits(1000);  // an hour's timeout
    b.linger = 20ms;
    counting_sink k(b);
    k.start(q, 0);
    const auto pushed = clk::now();
    push(q, make_batch(0, 3, "light"));
    REQUIRE(k.wait_attempts(1));
    const auto waited = clk::now() - pushed;
    CHECK(waited >= 15ms);  // it lingered for more...
    CHECK(waited < 2s);     // ...but nowhere near the timeout
    CHECK(k.attempts()[0].lines == lines_of("light", 3));
    // The latency of those events is in the histogram.
    REQUIRE(eventually([&] { return k.counters().latency.count() == 3; }));
    q.close();
    k.join();
}

TEST_CASE("a sink writes when max_events is reached, then the rest at close", "[sink]") {
    watchdog dog("max_events test");
    bounded_queue q(big_queue(), 1, {{true}});
    counting_sink k(limits(10));
    k.start(q, 0);
    for (int i = 0; i < 4; ++i) {
        push(q, make_batch(0, 3, "b" + std::to_string(i)));
    }
    REQUIRE(k.wait_attempts(1));
    REQUIRE(eventually([&] { return lag_of(q, 0) == 0; }));
    auto attempts = k.attempts();
    REQUIRE(attempts.size() == 1);
    CHECK(attempts[0].batches == 4);
    CHECK(attempts[0].lines ==
          concat({lines_of("b0", 3), lines_of("b1", 3), lines_of("b2", 3), lines_of("b3", 3)}));

    // Under the limit, with an hour's timeout: nothing is written until close.
    push(q, make_batch(0, 2, "tail"));
    std::this_thread::sleep_for(30ms);
    CHECK(k.attempt_count() == 1);
    CHECK(lag_of(q, 0) == 2);

    q.close();
    k.join();  // ends by itself once closed and written
    CHECK(k.finished());
    CHECK_FALSE(k.failed());
    attempts = k.attempts();
    REQUIRE(attempts.size() == 2);
    CHECK(attempts[1].lines == lines_of("tail", 2));
    CHECK(sluice::read(k.counters().batches_total) == 2);
    CHECK(sluice::read(k.counters().events_total) == 14);
    CHECK(sluice::read(k.counters().errors_total) == 0);
    CHECK(sluice::read(k.counters().retries_total) == 0);
    CHECK(q.stats().events == 0);
}

TEST_CASE("a sink writes when max_bytes is reached", "[sink]") {
    watchdog dog("max_bytes test");
    bounded_queue q(big_queue(), 1, {{true}});
    const uint64_t cost = make_batch(0, 2, "x")->cost_bytes();
    counting_sink k(limits(unlimited, cost * 3));
    k.start(q, 0);
    for (int i = 0; i < 3; ++i) {
        push(q, make_batch(0, 2, "x"));
    }
    REQUIRE(k.wait_attempts(1));
    CHECK(k.attempts()[0].batches == 3);
    REQUIRE(eventually([&] { return lag_of(q, 0) == 0; }));
    q.close();
    k.join();
    CHECK(k.attempt_count() == 1);
}

TEST_CASE("a sink writes what it has when the batch timeout passes", "[sink]") {
    watchdog dog("timeout test");
    bounded_queue q(big_queue(), 1, {{true}});
    counting_sink k(limits(unlimited, unlimited, 20ms));
    k.start(q, 0);
    push(q, make_batch(0, 2, "first"));
    REQUIRE(k.wait_attempts(1));
    CHECK(k.attempts()[0].lines == lines_of("first", 2));
    REQUIRE(eventually([&] { return lag_of(q, 0) == 0; }));
    CHECK_FALSE(k.finished());  // the queue is open: the sink goes on

    push(q, make_batch(0, 3, "second"));
    REQUIRE(k.wait_attempts(2));
    CHECK(k.attempts()[1].lines == lines_of("second", 3));
    REQUIRE(eventually([&] { return lag_of(q, 0) == 0; }));

    q.close();
    k.join();
    CHECK(k.attempt_count() == 2);
    CHECK(sluice::read(k.counters().batches_total) == 2);
    CHECK(sluice::read(k.counters().events_total) == 5);
}

TEST_CASE("a sink writes everything at close, and nothing for an empty queue", "[sink]") {
    watchdog dog("close test");
    SECTION("batches queued") {
        bounded_queue q(big_queue(), 1, {{true}});
        counting_sink k(limits(unlimited));
        k.start(q, 0);
        push(q, make_batch(0, 2, "a"));
        push(q, make_batch(0, 1, "b"));
        push(q, make_batch(0, 4, "c"));
        q.close();
        k.join();
        CHECK(k.finished());
        REQUIRE(k.attempt_count() == 1);
        CHECK(k.written() == concat({lines_of("a", 2), lines_of("b", 1), lines_of("c", 4)}));
        CHECK(q.stats().events == 0);
    }
    SECTION("started after close") {
        bounded_queue q(big_queue(), 1, {{true}});
        push(q, make_batch(0, 2, "a"));
        q.close();
        counting_sink k(limits(unlimited));
        k.start(q, 0);
        k.join();
        CHECK(k.written() == lines_of("a", 2));
    }
    SECTION("empty queue") {
        bounded_queue q(big_queue(), 1, {{true}});
        counting_sink k(limits(unlimited));
        k.start(q, 0);
        q.close();
        k.join();
        CHECK(k.finished());
        CHECK(k.attempt_count() == 0);
        CHECK(sluice::read(k.counters().batches_total) == 0);
    }
}

TEST_CASE("a sink retries the same events and commits only after ok", "[sink]") {
    watchdog dog("retry test");
    bounded_queue q(big_queue(), 1, {{true}});
    counting_sink k(limits(5));
    k.watch_lag(q, 0);
    k.script({{write_status::retry}, {write_status::retry}, {write_status::ok}});
    k.start(q, 0);
    push(q, make_batch(0, 5, "r"));
    REQUIRE(k.wait_attempts(3));
    REQUIRE(eventually([&] { return lag_of(q, 0) == 0; }));

    const auto attempts = k.attempts();
    REQUIRE(attempts.size() == 3);
    for (const auto& a : attempts) {
        CHECK(a.lines == lines_of("r", 5));
        CHECK(a.lag_events == 5);  // nothing committed while retrying
    }
    CHECK(attempts[0].result == write_status::retry);
    CHECK(attempts[1].result == write_status::retry);
    CHECK(attempts[2].result == write_status::ok);
    CHECK(sluice::read(k.counters().retries_total) == 2);
    CHECK(sluice::read(k.counters().errors_total) == 2);
    CHECK(sluice::read(k.counters().batches_total) == 1);
    CHECK(sluice::read(k.counters().events_total) == 5);
    CHECK(k.written() == lines_of("r", 5));
    CHECK(q.stats().events == 0);

    q.close();
    k.join();
    CHECK_FALSE(k.failed());
}

TEST_CASE("a permanent error fails the sink, which keeps its events and tries again slowly",
          "[sink]") {
    watchdog dog("permanent test");
    bounded_queue q(big_queue(), 1, {{true}, {true}});
    retry_config r = fast_retry();
    r.failed_interval = 300ms;
    counting_sink k(limits(3), r);
    SECTION("at once") {
        k.script({{write_status::permanent}, {write_status::permanent}});
    }
    SECTION("after a transient failure") {
        k.script({{write_status::retry}, {write_status::permanent}, {write_status::permanent}});
    }
    SECTION("exceptions in a row") {
        std::vector<counting_sink::step> steps(r.exception_limit + 1, {write_status::ok, 1});
        k.script(steps);
    }
    k.start(q, 0);
    push(q, make_batch(0, 3, "f"));
    REQUIRE(eventually([&] { return k.failed(); }));
    CHECK(k.state() == sluice::sink_state::failed);
    // Failed: nothing written, nothing committed, the events still queued.
    CHECK(sluice::read(k.counters().batches_total) == 0);
    CHECK(k.written().empty());
    CHECK(q.stats().sinks[0].events == 3);
    const size_t when_failed = k.attempt_count();
    const auto failed_at = clk::now();
    // The next attempt (scripted to fail again) comes a failed_interval later, not at once.
    REQUIRE(k.wait_attempts(when_failed + 1));
    CHECK(clk::now() - failed_at >= 250ms);
    CHECK(k.failed());
    // Then one works: the sink recovers and writes each event once.
    REQUIRE(eventually([&] { return k.state() == sluice::sink_state::ok; }));
    REQUIRE(eventually([&] { return q.stats().sinks[0].events == 0; }));
    CHECK(k.written() == lines_of("f", 3));
    CHECK(k.last_error().empty());
    CHECK(sluice::read(k.counters().events_total) == 3);
    q.close();
    k.join();
}

TEST_CASE("a transient failure shows as retrying, then ok", "[sink]") {
    watchdog dog("retrying state");
    bounded_queue q(big_queue(), 1, {{true}});
    retry_config r = fast_retry();
    r.initial_backoff = 200ms;
    r.max_backoff = 200ms;
    counting_sink k(limits(2), r);
    k.script({{write_status::retry}});
    k.start(q, 0);
    push(q, make_batch(0, 2, "t"));
    REQUIRE(eventually([&] { return k.state() == sluice::sink_state::retrying; }));
    CHECK_FALSE(k.failed());
    REQUIRE(eventually([&] { return k.state() == sluice::sink_state::ok && k.written().size() == 2; }));
    q.close();
    k.join();
}

TEST_CASE("abort during a retry backoff ends the sink thread", "[sink]") {
    watchdog dog("abort during backoff");
    bounded_queue q(big_queue(), 1, {{true}});
    retry_config slow;
    slow.initial_backoff = std::chrono::hours(1);
    slow.max_backoff = std::chrono::hours(1);
    counting_sink k(limits(2), slow);
    k.fail_forever(write_status::retry);
    k.start(q, 0);
    push(q, make_batch(0, 2, "a"));
    REQUIRE(k.wait_attempts(1));
    k.abort();
    k.join();  // an hour's backoff: only abort can end it now
    CHECK(k.finished());
    CHECK_FALSE(k.failed());
    CHECK(k.attempt_count() == 1);
    CHECK(sluice::read(k.counters().retries_total) == 1);
    CHECK(sluice::read(k.counters().batches_total) == 0);
    CHECK(q.stats().events == 2);
    CHECK(q.stats().sinks[0].events == 2);
}

TEST_CASE("abort ends an idle sink, however soon after start", "[sink]") {
    // Races abort against the sink thread entering its wait on the queue: a wake-up that
    // arrives just before the wait must not be lost.
    watchdog dog("abort of idle sinks", {}, 60s);
    for (int i = 0; i < 300; ++i) {
        bounded_queue q(big_queue(), 1, {{true}});
        counting_sink k(limits(unlimited));
        k.start(q, 0);
        for (int spin = 0; spin < i % 50; ++spin) {
            std::this_thread::yield();
        }
        k.abort();
        k.join();
        REQUIRE(k.finished());
        REQUIRE(k.attempt_count() == 0);
    }
}

TEST_CASE("abort ends a sink waiting for its batch timeout", "[sink]") {
    watchdog dog("abort of a gathering sink");
    bounded_queue q(big_queue(), 1, {{true}});
    counting_sink k(limits(unlimited));  // an hour's timeout
    k.start(q, 0);
    push(q, make_batch(0, 1, "held"));
    std::this_thread::sleep_for(10ms);  // most likely read and waiting by now; either way works
    k.abort();
    k.join();
    CHECK(k.finished());
    CHECK(k.attempt_count() == 0);
    CHECK(q.stats().events == 1);
}

TEST_CASE("an exception from write_impl counts as retry", "[sink]") {
    watchdog dog("exception test");
    bounded_queue q(big_queue(), 1, {{true}});
    counting_sink k(limits(2));
    k.script({{write_status::ok, 1}, {write_status::ok, 2}, {write_status::ok}});
    k.start(q, 0);
    push(q, make_batch(0, 2, "e"));
    REQUIRE(k.wait_attempts(3));
    REQUIRE(eventually([&] { return lag_of(q, 0) == 0; }));
    const auto attempts = k.attempts();
    REQUIRE(attempts.size() == 3);
    for (const auto& a : attempts) {
        CHECK(a.lines == lines_of("e", 2));
    }
    CHECK(sluice::read(k.counters().retries_total) == 2);
    CHECK(sluice::read(k.counters().errors_total) == 2);
    CHECK(sluice::read(k.counters().batches_total) == 1);
    CHECK(sluice::read(k.counters().events_total) == 2);
    q.close();
    k.join();
    CHECK_FALSE(k.failed());
}

TEST_CASE("a sink writes only the sources it takes", "[sink]") {
    watchdog dog("inputs test");
    // Sink 0 takes source 0 only; sink 1 (not started) takes both and holds nothing back.
    bounded_queue q(big_queue(), 2, {{true, false}, {true, true}});
    counting_sink k(limits(unlimited));
    k.start(q, 0);
    push(q, make_batch(1, 2, "other"));
    push(q, make_batch(0, 2, "mine1"));
    push(q, make_batch(1, 2, "other"));
    push(q, make_batch(0, 1, "mine2"));
    q.close();
    k.join();
    CHECK(k.written() == concat({lines_of("mine1", 2), lines_of("mine2", 1)}));
    const auto st = q.stats();
    CHECK(st.sinks[0].events == 0);
    CHECK(st.sinks[1].events == 7);
}

TEST_CASE("a sink writes every line once and in order through retries and delays", "[sink]") {
    watchdog dog("many batches", {}, 60s);
    queue_config cfg;
    cfg.max_events = 64;  // small: the producer meets `full` and waits for room
    bounded_queue q(cfg, 1, {{true}});
    counting_sink k(limits(10));
    std::vector<counting_sink::step> steps;
    for (int i = 0; i < 60; ++i) {
        steps.push_back({i % 5 == 1 ? write_status::retry : write_status::ok, i % 11 == 3});
    }
    k.script(steps);
    k.set_delay(200us);
    k.start(q, 0);

    std::vector<std::string> expected;
    uint64_t total = 0;
    for (int i = 0; i < 300; ++i) {
        const size_t n = 1 + static_cast<size_t>(i * 5) % 7;
        const std::string tag = "m" + std::to_string(i);
        batch_ptr b = make_batch(0, n, tag);
        for (;;) {
            const push_result r = q.try_push(b);
            if (r == push_result::ok) {
                break;
            }
            REQUIRE(r == push_result::full);
            std::this_thread::sleep_for(100us);
        }
        const auto lines = lines_of(tag, n);
        expected.insert(expected.end(), lines.begin(), lines.end());
        total += n;
    }
    q.close();
    k.join();
    CHECK_FALSE(k.failed());
    CHECK(k.written() == expected);
    CHECK(sluice::read(k.counters().events_total) == total);
    const auto attempts = k.attempts();
    uint64_t ok_writes = 0;
    uint64_t failed_writes = 0;
    for (size_t i = 0; i < attempts.size(); ++i) {
        const auto& a = attempts[i];
        (a.result == write_status::ok ? ok_writes : failed_writes) += 1;
        CHECK(a.lines.size() <= 10 + 6);  // whole batches up to the limit
        if (i + 1 < attempts.size()) {
            CHECK(a.lines.size() >= 10);  // only the last write, at close, may be short
        }
        if (a.result != write_status::ok) {
            REQUIRE(i + 1 < attempts.size());
            CHECK(attempts[i + 1].lines == a.lines);  // a retry writes the same events
        }
    }
    CHECK(sluice::read(k.counters().batches_total) == ok_writes);
    CHECK(sluice::read(k.counters().errors_total) == failed_writes);
    CHECK(sluice::read(k.counters().retries_total) == failed_writes);
    CHECK(q.stats().events == 0);
}

TEST_CASE("write() counts by itself and reopens on request", "[sink]") {
    counting_sink k(limits(10));  // never started: driven directly
    k.script({{write_status::ok},
              {write_status::retry},
              {write_status::permanent},
              {write_status::ok, 1},
              {write_status::ok, 2},
              {write_status::ok}});
    const std::vector<batch_ptr> batches = {make_batch(0, 2, "a"), make_batch(0, 3, "b")};
    CHECK(k.write(batches) == write_status::ok);
    CHECK(k.write(batches) == write_status::retry);
    CHECK(k.write(batches) == write_status::permanent);
    CHECK(k.write(batches) == write_status::retry);  // std::exception
    CHECK(k.write(batches) == write_status::retry);  // anything else thrown
    CHECK(k.reopens() == 0);
    k.request_reopen();
    CHECK(k.write(batches) == write_status::ok);
    CHECK(k.reopens() == 1);
    CHECK(k.write(batches) == write_status::ok);
    CHECK(k.reopens() == 1);  // once per request

    const auto& c = k.counters();
    CHECK(sluice::read(c.batches_total) == 3);
    CHECK(sluice::read(c.events_total) == 15);
    CHECK(sluice::read(c.errors_total) == 4);
    CHECK(sluice::read(c.retries_total) == 0);  // retrying is the thread's business
    uint64_t observed = 0;
    for (size_t i = 0; i <= sluice::duration_histogram::bounds.size(); ++i) {
        observed += c.batch_duration.bucket(i);
    }
    CHECK(observed == 3);
    CHECK(k.name() == "counting");
    CHECK_FALSE(k.finished());
}

namespace {

retry_config quick_retry() {
    retry_config r = fast_retry();
    r.failed_interval = 5ms;
    return r;
}

// A pipelined sink (a server that acknowledges writes later): records each send and finish in
// order, with the write's first line and its queue lag; finishes follow a script (ok once it is
// used up), and a finish can be held until released.
class pipelined_sink : public sluice::sink {
public:
    struct call {
        bool finish = false;
        std::string first;
        size_t slot = 0;
        write_status result = write_status::ok;
        uint64_t lag_events = 0;
    };

    pipelined_sink(batch_config batch, const bounded_queue& q)
        : sink("pipelined", batch, quick_retry()), queue_(q) {}
    ~pipelined_sink() override {
        abort();
        join();
    }

    void script_finishes(std::vector<write_status> steps) {
        std::lock_guard lock(mutex_);
        script_.assign(steps.begin(), steps.end());
    }
    void script_sends(std::vector<write_status> steps) {
        std::lock_guard lock(mutex_);
        send_script_.assign(steps.begin(), steps.end());
    }
    std::vector<call> calls() const {
        std::lock_guard lock(mutex_);
        return calls_;
    }
    // Lines of the writes whose finish was ok, in the order they finished.
    std::vector<std::string> written() const {
        std::lock_guard lock(mutex_);
        return written_;
    }

protected:
    bool pipelined() const override { return true; }
    write_status write_impl(std::span<const batch_ptr> batches) override {
        write_status s = write_status::ok;
        {
            std::lock_guard lock(mutex_);
            if (!send_script_.empty()) {
                s = send_script_.front();
                send_script_.pop_front();
            }
        }
        record(false, batches, s);
        return s;
    }
    write_status finish_impl(std::span<const batch_ptr> batches) override {
        write_status s = write_status::ok;
        {
            std::lock_guard lock(mutex_);
            if (!script_.empty()) {
                s = script_.front();
                script_.pop_front();
            }
            if (s == write_status::ok) {
                for (const auto& b : batches) {
                    for (size_t i = 0; i < b->event_count(); ++i) {
                        written_.emplace_back(b->line(i));
                    }
                }
            }
        }
        record(true, batches, s);
        return s;
    }

private:
    void record(bool finish, std::span<const batch_ptr> batches, write_status s) {
        call c{finish, std::string(batches.front()->line(0)), write_slot(), s,
               queue_.stats().sinks[0].events};
        std::lock_guard lock(mutex_);
        calls_.push_back(std::move(c));
    }

    const bounded_queue& queue_;
    mutable std::mutex mutex_;
    std::deque<write_status> script_;
    std::deque<write_status> send_script_;
    std::vector<call> calls_;
    std::vector<std::string> written_;
};

}  // namespace

TEST_CASE("a pipelined sink sends the next write before it finishes the one before, in order",
          "[sink]") {
    watchdog dog("pipelined order");
    bounded_queue q(big_queue(), 1, {{true}});
    pipelined_sink k(limits(10), q);
    std::vector<std::string> expected;
    for (int i = 0; i < 4; ++i) {
        const std::string tag = "w" + std::to_string(i);
        push(q, make_batch(0, 10, tag));
        const auto lines = lines_of(tag, 10);
        expected.insert(expected.end(), lines.begin(), lines.end());
    }
    k.start(q, 0);
    REQUIRE(eventually([&] { return lag_of(q, 0) == 0; }));
    q.close();
    k.join();
    const auto calls = k.calls();
    // send w0, send w1, finish w0, send w2, finish w1, send w3, finish w2, then w3 finished at
    // once: nothing more was queued.
    const std::vector<std::pair<bool, std::string>> order = {
        {false, "w0-0"}, {false, "w1-0"}, {true, "w0-0"}, {false, "w2-0"},
        {true, "w1-0"},  {false, "w3-0"}, {true, "w2-0"}, {true, "w3-0"}};
    REQUIRE(calls.size() == order.size());
    for (size_t i = 0; i < order.size(); ++i) {
        INFO("call " << i);
        CHECK(calls[i].finish == order[i].first);
        CHECK(calls[i].first == order[i].second);
    }
    // Two slots in turn; the cursor moves only past finished writes: while w1 was sent, w0 and
    // w1 were still the sink's lag.
    CHECK(calls[0].slot == 0);
    CHECK(calls[1].slot == 1);
    CHECK(calls[2].slot == 0);
    CHECK(calls[3].slot == 0);
    CHECK(calls[1].lag_events == 40);
    CHECK(calls[3].lag_events == 30);
    CHECK(k.written() == expected);
    CHECK(sluice::read(k.counters().events_total) == 40);
    CHECK(sluice::read(k.counters().batches_total) == 4);
    CHECK(q.stats().events == 0);
}

TEST_CASE("a pipelined sink that has caught up finishes its write without waiting for more",
          "[sink]") {
    watchdog dog("pipelined caught up");
    bounded_queue q(big_queue(), 1, {{true}});
    batch_config b = limits(1000);  // an hour's timeout
    b.linger = 10ms;
    pipelined_sink k(b, q);
    k.start(q, 0);
    push(q, make_batch(0, 3, "light"));
    // Finished and committed soon after its linger, though no next write came to overlap.
    REQUIRE(eventually([&] { return lag_of(q, 0) == 0; }, 2000ms));
    CHECK(k.written() == lines_of("light", 3));
    REQUIRE(eventually([&] { return k.counters().latency.count() == 3; }));
    q.close();
    k.join();
}

TEST_CASE("a pipelined write whose finish fails is finished again, nothing lost, order kept",
          "[sink]") {
    watchdog dog("pipelined retry");
    bounded_queue q(big_queue(), 1, {{true}});
    pipelined_sink k(limits(10), q);
    k.script_finishes({write_status::retry, write_status::retry, write_status::ok,
                       write_status::permanent});
    std::vector<std::string> expected;
    for (int i = 0; i < 6; ++i) {
        const std::string tag = "r" + std::to_string(i);
        push(q, make_batch(0, 10, tag));
        const auto lines = lines_of(tag, 10);
        expected.insert(expected.end(), lines.begin(), lines.end());
    }
    k.start(q, 0);
    REQUIRE(eventually([&] { return lag_of(q, 0) == 0; }, 60000ms));
    q.close();
    k.join();
    CHECK(k.written() == expected);
    const auto calls = k.calls();
    // r0's finish failed twice, then worked; r1's failed (permanent) once, then worked.
    std::vector<std::string> finishes;
    for (const auto& c : calls) {
        if (c.finish) {
            finishes.push_back(c.first + (c.result == write_status::ok ? "" : "!"));
        }
    }
    CHECK(finishes == std::vector<std::string>{"r0-0!", "r0-0!", "r0-0", "r1-0!", "r1-0",
                                               "r2-0", "r3-0", "r4-0", "r5-0"});
    CHECK(sluice::read(k.counters().events_total) == 60);
    CHECK(sluice::read(k.counters().errors_total) == 3);
    CHECK(sluice::read(k.counters().retries_total) == 3);
}

TEST_CASE("a pipelined send that fails finishes the write before it first", "[sink]") {
    watchdog dog("pipelined send failure");
    bounded_queue q(big_queue(), 1, {{true}});
    pipelined_sink k(limits(10), q);
    k.script_sends({write_status::ok, write_status::retry, write_status::retry});
    push(q, make_batch(0, 10, "s0"));
    push(q, make_batch(0, 10, "s1"));
    k.start(q, 0);
    REQUIRE(eventually([&] { return lag_of(q, 0) == 0; }));
    q.close();
    k.join();
    std::vector<std::string> order;
    for (const auto& c : k.calls()) {
        order.push_back(std::string(c.finish ? "finish " : "send ") + c.first +
                        (c.result == write_status::ok ? "" : "!"));
    }
    CHECK(order == std::vector<std::string>{"send s0-0", "send s1-0!", "finish s0-0",
                                            "send s1-0!", "send s1-0", "finish s1-0"});
    CHECK(k.written() == concat({lines_of("s0", 10), lines_of("s1", 10)}));
    CHECK(sluice::read(k.counters().retries_total) == 2);
}
