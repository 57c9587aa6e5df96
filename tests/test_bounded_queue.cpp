// Tests for bounded_queue: cursors per sink, freeing, limits and the three overflow policies,
// lag and age figures, delivery positions, waking and closing, and a many-thread stress run
// checked by checksums.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "common/clock.h"
#include "common/error.h"
#include "queue/bounded_queue.h"
#include "tests/test_support.h"

using namespace std::chrono_literals;
using sluice::batch;
using sluice::batch_ptr;
using sluice::bounded_queue;
using sluice::drop_reason;
using sluice::overflow_policy;
using sluice::push_result;
using sluice::queue_config;
using sluice::read_result;
using sluice::source_id;
using clk = std::chrono::steady_clock;

namespace {

using sluice::test::eventually;

constexpr uint64_t unlimited = uint64_t{1} << 40;

queue_config config(uint64_t max_events, uint64_t max_bytes = unlimited,
                    overflow_policy policy = overflow_policy::block) {
    queue_config c;
    c.max_events = max_events;
    c.max_bytes = max_bytes;
    c.when_full = policy;
    return c;
}

batch_ptr make_batch(source_id source, size_t events, const std::string& tag = "line",
                     int64_t position = -1, int64_t received_ns = 0) {
    auto b = std::make_shared<batch>(source);
    for (size_t i = 0; i < events; ++i) {
        b->add_line(tag + " " + std::to_string(i));
    }
    b->position = position;
    b->received_ns = received_ns;
    return b;
}

push_result push(bounded_queue& q, batch_ptr b) { return q.try_push(b); }

batch_ptr positioned(source_id source, uint32_t stream, int64_t position) {
    auto b = std::make_shared<batch>(source);
    b->add_line("s" + std::to_string(stream) + " p" + std::to_string(position));
    b->stream = stream;
    b->position = position;
    return b;
}

// Takes a source's acknowledgements as soon as it is told of them, as (source, position).
void record_deliveries(bounded_queue& q, std::vector<std::pair<source_id, int64_t>>& out) {
    q.set_delivery_callback([&q, &out](source_id s) {
        std::vector<sluice::delivery> d;
        q.take_deliveries(s, d);
        for (const auto& x : d) {
            out.emplace_back(s, x.position);
        }
    });
}

// Reads whatever is there for `sink` without waiting for more.
read_result read_now(bounded_queue& q, size_t sink, uint64_t& cursor, std::vector<batch_ptr>& out,
                     uint64_t max_events = unlimited, uint64_t max_bytes = unlimited) {
    return q.read_until(sink, cursor, clk::now(), out, max_events, max_bytes);
}

}  // namespace

TEST_CASE("push, read and commit one sink", "[queue]") {
    bounded_queue q(config(1000), 1, {{true}});
    CHECK(q.sink_count() == 1);

    std::vector<batch_ptr> sent;
    uint64_t sent_bytes = 0;
    for (int i = 0; i < 3; ++i) {
        batch_ptr b = make_batch(0, 2, "b" + std::to_string(i));
        sent.push_back(b);
        sent_bytes += b->cost_bytes();
        REQUIRE(q.try_push(b) == push_result::ok);
        CHECK(b == nullptr);  // moved from on ok
    }
    auto st = q.stats();
    CHECK(st.events == 6);
    CHECK(st.bytes == sent_bytes);
    CHECK(q.events_size_guess() == 6);
    CHECK(q.bytes_size_guess() == sent_bytes);
    CHECK(st.max_events == 1000);
    CHECK_FALSE(st.blocked);

    uint64_t cursor = 0;
    std::vector<batch_ptr> out;
    REQUIRE(read_now(q, 0, cursor, out) == read_result::ok);
    REQUIRE(out.size() == 3);
    for (size_t i = 0; i < 3; ++i) {
        CHECK(out[i] == sent[i]);  // shared, not copied
    }
    CHECK(cursor == 3);

    // Reading does not free; nothing more to read.
    CHECK(q.stats().events == 6);
    std::vector<batch_ptr> more;
    CHECK(read_now(q, 0, cursor, more) == read_result::timeout);
    CHECK(more.empty());
    CHECK(cursor == 3);

    std::vector<std::weak_ptr<const batch>> watch(sent.begin(), sent.end());
    sent.clear();
    out.clear();
    for (const auto& w : watch) {
        CHECK_FALSE(w.expired());  // the queue still holds them
    }
    q.commit(0, cursor);
    for (const auto& w : watch) {
        CHECK(w.expired());
    }
    st = q.stats();
    CHECK(st.events == 0);
    CHECK(st.bytes == 0);
    CHECK(q.events_size_guess() == 0);
    CHECK(q.bytes_size_guess() == 0);

    // Committing an old cursor again changes nothing.
    q.commit(0, cursor);
    q.commit(0, 1);
    CHECK(q.stats().events == 0);
}

TEST_CASE("read_until appends whole batches up to the read limits", "[queue]") {
    bounded_queue q(config(1000), 1, {{true}});
    for (int i = 0; i < 5; ++i) {
        REQUIRE(push(q, make_batch(0, 2, "b" + std::to_string(i))) == push_result::ok);
    }
    uint64_t cursor = 0;
    std::vector<batch_ptr> out;
    REQUIRE(read_now(q, 0, cursor, out, 3) == read_result::ok);
    CHECK(out.size() == 2);  // 2 + 2 >= 3
    CHECK(cursor == 2);
    REQUIRE(read_now(q, 0, cursor, out, 1) == read_result::ok);
    CHECK(out.size() == 3);
    CHECK(cursor == 3);
    CHECK(out[2]->line(0) == "b2 0");
    // A byte limit below one batch still hands over one whole batch.
    REQUIRE(read_now(q, 0, cursor, out, unlimited, 1) == read_result::ok);
    CHECK(out.size() == 4);
    CHECK(out[3]->line(1) == "b3 1");

    // Committing part of what was read frees just that part.
    q.commit(0, 2);
    CHECK(q.stats().events == 6);
    q.commit(0, cursor);
    CHECK(q.stats().events == 2);
    REQUIRE(read_now(q, 0, cursor, out) == read_result::ok);
    q.commit(0, cursor);
    CHECK(q.stats().events == 0);
}

TEST_CASE("a batch is freed only when every sink that takes it committed", "[queue]") {
    bounded_queue q(config(1000), 1, {{true}, {true}});
    batch_ptr b = make_batch(0, 4);
    const uint64_t cost = b->cost_bytes();
    std::weak_ptr<const batch> watch = b;
    REQUIRE(q.try_push(b) == push_result::ok);

    uint64_t fast = 0;
    uint64_t slow = 0;
    std::vector<batch_ptr> out;
    REQUIRE(read_now(q, 0, fast, out) == read_result::ok);
    out.clear();
    q.commit(0, fast);
    auto st = q.stats();
    CHECK_FALSE(watch.expired());
    CHECK(st.events == 4);
    CHECK(st.bytes == cost);
    CHECK(st.sinks[0].events == 0);
    CHECK(st.sinks[0].bytes == 0);
    CHECK(st.sinks[1].events == 4);
    CHECK(st.sinks[1].bytes == cost);

    // The slow sink still gets it.
    REQUIRE(read_now(q, 1, slow, out) == read_result::ok);
    REQUIRE(out.size() == 1);
    CHECK(out[0]->line(3) == "line 3");
    out.clear();
    CHECK_FALSE(watch.expired());
    q.commit(1, slow);
    CHECK(watch.expired());
    st = q.stats();
    CHECK(st.events == 0);
    CHECK(st.bytes == 0);
    CHECK(st.sinks[1].events == 0);
}

TEST_CASE("a sink whose inputs exclude a source never sees nor holds its batches", "[queue]") {
    // Sink 0 takes sources 0 and 1; sink 1 takes only source 0. Source 2 has no sink.
    std::vector<std::pair<source_id, int64_t>> delivered;
    bounded_queue q(config(1000), 3, {{true, true, false}, {true}});
    record_deliveries(q, delivered);

    batch_ptr from1 = make_batch(1, 3, "one", 100);
    std::weak_ptr<const batch> watch1 = from1;
    REQUIRE(q.try_push(from1) == push_result::ok);
    REQUIRE(push(q, make_batch(0, 2, "zero", 10)) == push_result::ok);

    auto st = q.stats();
    CHECK(st.events == 5);
    CHECK(st.sinks[0].events == 5);
    CHECK(st.sinks[1].events == 2);

    uint64_t c1 = 0;
    std::vector<batch_ptr> out;
    REQUIRE(read_now(q, 1, c1, out) == read_result::ok);
    REQUIRE(out.size() == 1);
    CHECK(out[0]->source() == 0);
    CHECK(c1 == 2);
    out.clear();
    q.commit(1, c1);

    // Sink 0 alone holds the source-1 batch; its commit frees it.
    CHECK_FALSE(watch1.expired());
    uint64_t c0 = 0;
    REQUIRE(read_now(q, 0, c0, out) == read_result::ok);
    CHECK(out.size() == 2);
    out.clear();
    q.commit(0, c0);
    CHECK(watch1.expired());
    CHECK(q.stats().events == 0);
    CHECK(delivered == std::vector<std::pair<source_id, int64_t>>{{1, 100}, {0, 10}});

    // A source no sink takes is done on arrival: not counted, freed, delivered at once.
    batch_ptr from2 = make_batch(2, 7, "two", 5);
    std::weak_ptr<const batch> watch2 = from2;
    REQUIRE(q.try_push(from2) == push_result::ok);
    CHECK(watch2.expired());
    CHECK(q.stats().events == 0);
    CHECK(delivered.back() == std::pair<source_id, int64_t>{2, 5});
    CHECK(read_now(q, 0, c0, out) == read_result::timeout);
    CHECK(read_now(q, 1, c1, out) == read_result::timeout);
    CHECK(out.empty());

    // Only sink 1's excluded batches queued: it reads nothing, sink 0 reads them.
    REQUIRE(push(q, make_batch(1, 1, "one")) == push_result::ok);
    CHECK(read_now(q, 1, c1, out) == read_result::timeout);
    CHECK(q.stats().sinks[1].events == 0);
    REQUIRE(read_now(q, 0, c0, out) == read_result::ok);
    q.commit(0, c0);
    CHECK(q.stats().events == 0);
}

TEST_CASE("an empty queue always admits one batch, even over its limits", "[queue]") {
    for (auto policy :
         {overflow_policy::block, overflow_policy::drop_newest, overflow_policy::drop_oldest}) {
        INFO("policy " << sluice::to_string(policy));
        bounded_queue q(config(2, 64, policy), 1, {{true}});
        batch_ptr huge = make_batch(0, 50);
        REQUIRE(huge->cost_bytes() > 64);
        REQUIRE(q.try_push(huge) == push_result::ok);
        CHECK(q.stats().events == 50);

        // Not empty now: the next one does not fit.
        batch_ptr one = make_batch(0, 1);
        const push_result r = q.try_push(one);
        if (policy == overflow_policy::block) {
            CHECK(r == push_result::full);
            CHECK(one != nullptr);
        } else if (policy == overflow_policy::drop_newest) {
            CHECK(r == push_result::dropped);
            CHECK(one == nullptr);
            CHECK(q.dropped(0, drop_reason::queue_full) == 1);
        } else {
            // drop_oldest: the huge batch (unread) is evicted, and then the queue is empty.
            CHECK(r == push_result::ok);
            CHECK(q.dropped(0, drop_reason::evicted) == 50);
            CHECK(q.stats().events == 1);
        }
    }
}

TEST_CASE("drop_oldest admits an over-limit batch once eviction empties the queue", "[queue]") {
    bounded_queue q(config(10, unlimited, overflow_policy::drop_oldest), 1, {{true}});
    REQUIRE(push(q, make_batch(0, 3, "old")) == push_result::ok);
    batch_ptr big = make_batch(0, 25, "big");
    // Evicting the old batch leaves the queue empty, and an empty queue admits any batch:
    // evicting and then refusing would lose both.
    CHECK(q.try_push(big) == push_result::ok);
    CHECK(q.dropped(0, drop_reason::evicted) == 3);
    CHECK(q.dropped(0, drop_reason::queue_full) == 0);
    uint64_t cursor = 0;
    std::vector<batch_ptr> out;
    REQUIRE(read_now(q, 0, cursor, out) == read_result::ok);
    REQUIRE(out.size() == 1);
    CHECK(out[0]->line(0) == "big 0");
}

TEST_CASE("block: full at the limit, resume once under the low watermark", "[queue]") {
    // max 10 events, low watermark 8 (0.8).
    bounded_queue q(config(10), 1, {{true}});
    int resumes = 0;
    uint64_t events_at_resume = 0;
    q.set_resume_callback([&] {
        ++resumes;
        // Called without the queue's lock: the queue can be used from here.
        events_at_resume = q.stats().events;
    });

    for (int i = 0; i < 10; ++i) {
        REQUIRE(push(q, make_batch(0, 1, "e" + std::to_string(i))) == push_result::ok);
    }
    batch_ptr extra = make_batch(0, 1, "extra");
    const batch* extra_raw = extra.get();
    REQUIRE(q.try_push(extra) == push_result::full);
    CHECK(extra.get() == extra_raw);  // untouched
    CHECK(extra->line(0) == "extra 0");
    CHECK(q.stats().blocked);
    CHECK(q.blocked_guess());
    CHECK(q.stats().events == 10);

    uint64_t cursor = 0;
    std::vector<batch_ptr> out;
    REQUIRE(read_now(q, 0, cursor, out) == read_result::ok);
    REQUIRE(out.size() == 10);

    q.commit(0, 1);  // 9 queued: over the low watermark
    CHECK(resumes == 0);
    CHECK(q.stats().blocked);
    // Hysteresis: there is room for one, but pushes stay refused until under the watermark.
    CHECK(q.try_push(extra) == push_result::full);
    CHECK(extra != nullptr);

    q.commit(0, 2);  // 8 queued: at the watermark
    q.commit(0, 3);  // 7 queued: under it
    CHECK(resumes == 1);
    CHECK(events_at_resume <= 8);
    CHECK(events_at_resume >= 7);
    CHECK_FALSE(q.stats().blocked);
    CHECK_FALSE(q.blocked_guess());

    REQUIRE(q.try_push(extra) == push_result::ok);
    CHECK(extra == nullptr);
    q.commit(0, 10);
    CHECK(resumes == 1);  // exactly once per full

    // Fill again: a second full, a second resume.
    for (int i = 0; i < 9; ++i) {
        REQUIRE(push(q, make_batch(0, 1)) == push_result::ok);
    }
    CHECK(push(q, make_batch(0, 1)) == push_result::full);
    REQUIRE(read_now(q, 0, cursor, out) == read_result::ok);
    q.commit(0, cursor);
    CHECK(resumes == 2);
    CHECK(q.stats().events == 0);

    // No full, no resume.
    REQUIRE(push(q, make_batch(0, 1)) == push_result::ok);
    REQUIRE(read_now(q, 0, cursor, out) == read_result::ok);
    q.commit(0, cursor);
    CHECK(resumes == 2);
}

TEST_CASE("block: the byte limit counts what batches cost", "[queue]") {
    const uint64_t cost = make_batch(0, 1)->cost_bytes();
    bounded_queue q(config(1000, cost * 4), 1, {{true}});
    int resumes = 0;
    q.set_resume_callback([&] { ++resumes; });
    for (int i = 0; i < 4; ++i) {
        REQUIRE(push(q, make_batch(0, 1)) == push_result::ok);
    }
    CHECK(push(q, make_batch(0, 1)) == push_result::full);
    CHECK(q.stats().bytes == cost * 4);
    uint64_t cursor = 0;
    std::vector<batch_ptr> out;
    REQUIRE(read_now(q, 0, cursor, out) == read_result::ok);
    q.commit(0, 1);  // 3 of 4: 75%, under 80%
    CHECK(resumes == 1);
    CHECK(push(q, make_batch(0, 1)) == push_result::ok);
}

TEST_CASE("drop_newest refuses and counts what does not fit", "[queue]") {
    bounded_queue q(config(10, unlimited, overflow_policy::drop_newest), 2, {{true, true}});
    uint64_t pushed = 0;
    uint64_t stored = 0;
    for (int i = 0; i < 12; ++i) {
        const source_id s = static_cast<source_id>(i % 2);
        batch_ptr b = make_batch(s, 3);
        const push_result r = q.try_push(b);
        pushed += 3;
        CHECK(b == nullptr);  // moved from either way
        if (r == push_result::ok) {
            stored += 3;
        } else {
            CHECK(r == push_result::dropped);
        }
    }
    CHECK(stored == 9);
    CHECK(q.stats().events == 9);
    CHECK_FALSE(q.stats().blocked);
    const uint64_t dropped =
        q.dropped(0, drop_reason::queue_full) + q.dropped(1, drop_reason::queue_full);
    CHECK(stored + dropped == pushed);
    // Pushes 3 to 11 are refused: 4 of them from source 0, 5 from source 1.
    CHECK(q.dropped(0, drop_reason::queue_full) == 3 * 4);
    CHECK(q.dropped(1, drop_reason::queue_full) == 3 * 5);
    CHECK(q.dropped(0, drop_reason::evicted) == 0);

    // A small batch that fits is still admitted.
    CHECK(push(q, make_batch(0, 1)) == push_result::ok);
    CHECK(q.stats().events == 10);
}

TEST_CASE("drop_oldest evicts the oldest batches no sink has read", "[queue]") {
    std::vector<std::pair<source_id, int64_t>> delivered;
    bounded_queue q(config(10, unlimited, overflow_policy::drop_oldest), 1, {{true}, {true}});
    record_deliveries(q, delivered);
    std::vector<std::weak_ptr<const batch>> watch;
    for (int i = 0; i < 5; ++i) {
        batch_ptr b = make_batch(0, 2, "b" + std::to_string(i), i);
        watch.push_back(b);
        REQUIRE(q.try_push(b) == push_result::ok);
    }
    // Sink 0 has read (not committed) the first batch: it is in flight, not evictable.
    uint64_t c0 = 0;
    uint64_t c1 = 0;
    std::vector<batch_ptr> out0;
    std::vector<batch_ptr> out1;
    REQUIRE(read_now(q, 0, c0, out0, 1) == read_result::ok);
    REQUIRE(out0.size() == 1);

    REQUIRE(push(q, make_batch(0, 2, "b5", 5)) == push_result::ok);
    CHECK(q.dropped(0, drop_reason::evicted) == 2);
    CHECK_FALSE(watch[0].expired());
    CHECK(watch[1].expired());  // the oldest unread one
    CHECK(q.stats().events == 10);
    CHECK(q.stats().sinks[1].events == 10);

    REQUIRE(push(q, make_batch(0, 4, "b6", 6)) == push_result::ok);
    CHECK(q.dropped(0, drop_reason::evicted) == 6);
    CHECK(watch[2].expired());
    CHECK(watch[3].expired());
    CHECK_FALSE(watch[4].expired());

    // Sink 1 never sees the evicted ones; both see the rest in order.
    REQUIRE(read_now(q, 1, c1, out1) == read_result::ok);
    std::vector<std::string> firsts;
    for (const auto& b : out1) {
        firsts.emplace_back(b->line(0));
    }
    CHECK(firsts == std::vector<std::string>{"b0 0", "b4 0", "b5 0", "b6 0"});
    REQUIRE(read_now(q, 0, c0, out0) == read_result::ok);
    CHECK(out0.size() == 4);
    q.commit(0, c0);
    q.commit(1, c1);
    CHECK(q.stats().events == 0);
    // Evicted batches are settled too (their positions are done with), but acknowledged only
    // in order: 1-3 waited behind the in-flight 0 and come with it.
    CHECK(delivered == std::vector<std::pair<source_id, int64_t>>{{0, 3}, {0, 4}, {0, 5}, {0, 6}});
    CHECK(q.unacknowledged(0) == 0);

    SECTION("everything in flight: the new batch is dropped as queue_full") {
        REQUIRE(push(q, make_batch(0, 10)) == push_result::ok);
        REQUIRE(read_now(q, 0, c0, out0) == read_result::ok);
        CHECK(push(q, make_batch(0, 1)) == push_result::dropped);
        CHECK(q.dropped(0, drop_reason::queue_full) == 1);
        CHECK(q.dropped(0, drop_reason::evicted) == 6);
        CHECK(q.stats().events == 10);
    }
}

TEST_CASE("lag per sink is what it has not committed", "[queue]") {
    bounded_queue q(config(1000), 2, {{true, true}, {true, false}});
    std::vector<batch_ptr> sent;
    for (int i = 0; i < 6; ++i) {
        sent.push_back(make_batch(static_cast<source_id>(i % 2), static_cast<size_t>(i + 1)));
        batch_ptr b = sent.back();
        REQUIRE(q.try_push(b) == push_result::ok);
    }
    auto lag = [&](size_t sink, size_t from_seq) {
        // Events and bytes of the batches with seq > from_seq that `sink` takes.
        std::pair<uint64_t, uint64_t> sum{0, 0};
        for (size_t i = from_seq; i < sent.size(); ++i) {
            if (sink == 0 || sent[i]->source() == 0) {
                sum.first += sent[i]->event_count();
                sum.second += sent[i]->cost_bytes();
            }
        }
        return sum;
    };
    auto check_lag = [&](size_t c0, size_t c1) {
        const auto st = q.stats();
        REQUIRE(st.sinks.size() == 2);
        CHECK(st.sinks[0].events == lag(0, c0).first);
        CHECK(st.sinks[0].bytes == lag(0, c0).second);
        CHECK(st.sinks[1].events == lag(1, c1).first);
        CHECK(st.sinks[1].bytes == lag(1, c1).second);
    };
    check_lag(0, 0);
    CHECK(q.stats().sinks[0].events == 21);
    CHECK(q.stats().sinks[1].events == 1 + 3 + 5);

    uint64_t c0 = 0;
    uint64_t c1 = 0;
    std::vector<batch_ptr> out;
    // Reading alone changes no lag.
    REQUIRE(read_now(q, 0, c0, out, 4) == read_result::ok);
    REQUIRE(read_now(q, 1, c1, out) == read_result::ok);
    check_lag(0, 0);
    q.commit(0, c0);
    check_lag(c0, 0);
    q.commit(1, 3);
    check_lag(c0, 3);
    q.commit(1, c1);
    check_lag(c0, 6);
    REQUIRE(read_now(q, 0, c0, out) == read_result::ok);
    q.commit(0, c0);
    check_lag(6, 6);
    CHECK(q.stats().events == 0);
}

TEST_CASE("oldest_age_seconds and sink lag seconds come from receive times", "[queue]") {
    bounded_queue q(config(1000), 1, {{true}, {true}});
    CHECK(q.stats().oldest_age_seconds == 0);
    const int64_t now = sluice::unix_now_ns();
    REQUIRE(push(q, make_batch(0, 1, "old", -1, now - 30'000'000'000)) == push_result::ok);
    REQUIRE(push(q, make_batch(0, 1, "newer", -1, now - 5'000'000'000)) == push_result::ok);
    auto st = q.stats();
    CHECK(st.oldest_age_seconds >= 30.0);
    CHECK(st.oldest_age_seconds < 30.0 + 3600);
    CHECK(st.sinks[0].seconds >= 30.0);
    CHECK(st.sinks[1].seconds >= 30.0);

    // Sink 0 commits the old batch: its lag age is the newer one's; the queue's is still the
    // old one's, since sink 1 holds it.
    uint64_t c0 = 0;
    std::vector<batch_ptr> out;
    REQUIRE(read_now(q, 0, c0, out, 1) == read_result::ok);
    q.commit(0, c0);
    st = q.stats();
    CHECK(st.oldest_age_seconds >= 30.0);
    CHECK(st.sinks[0].seconds >= 5.0);
    CHECK(st.sinks[0].seconds < 30.0);
    CHECK(st.sinks[1].seconds >= 30.0);

    uint64_t c1 = 0;
    REQUIRE(read_now(q, 1, c1, out) == read_result::ok);
    q.commit(1, c1);
    st = q.stats();
    CHECK(st.oldest_age_seconds >= 5.0);
    CHECK(st.oldest_age_seconds < 30.0);
    CHECK(st.sinks[1].seconds == 0);

    REQUIRE(read_now(q, 0, c0, out) == read_result::ok);
    q.commit(0, c0);
    st = q.stats();
    CHECK(st.oldest_age_seconds == 0);
    CHECK(st.sinks[0].seconds == 0);

    // A batch without a receive time has no age.
    REQUIRE(push(q, make_batch(0, 1)) == push_result::ok);
    CHECK(q.stats().oldest_age_seconds == 0);
}

TEST_CASE("acknowledgements come per source in order, not held back by other sources",
          "[queue][delivery]") {
    // Sink 0 takes source 0 only, sink 1 source 1 only.
    std::vector<std::pair<source_id, int64_t>> delivered;
    bounded_queue q(config(1000), 2, {{true, false}, {false, true}});
    record_deliveries(q, delivered);
    REQUIRE(push(q, make_batch(0, 1, "a", 10)) == push_result::ok);
    REQUIRE(push(q, make_batch(1, 1, "b", 100)) == push_result::ok);
    REQUIRE(push(q, make_batch(0, 1, "c", -1)) == push_result::ok);  // no position
    REQUIRE(push(q, make_batch(0, 1, "d", 20)) == push_result::ok);
    REQUIRE(push(q, make_batch(1, 1, "e", 200)) == push_result::ok);

    // Sink 1 writes all of source 1's batches first: they are acknowledged at once, although
    // source 0's older batch is still unwritten.
    uint64_t c1 = 0;
    std::vector<batch_ptr> out;
    REQUIRE(read_now(q, 1, c1, out) == read_result::ok);
    q.commit(1, c1);
    CHECK(delivered == std::vector<std::pair<source_id, int64_t>>{{1, 100}, {1, 200}});
    CHECK(q.unacknowledged(0) == 2);
    CHECK(q.unacknowledged(1) == 0);

    uint64_t c0 = 0;
    REQUIRE(read_now(q, 0, c0, out, 1) == read_result::ok);
    q.commit(0, c0);
    REQUIRE(read_now(q, 0, c0, out) == read_result::ok);
    q.commit(0, c0);
    CHECK(delivered ==
          std::vector<std::pair<source_id, int64_t>>{{1, 100}, {1, 200}, {0, 10}, {0, 20}});
    CHECK(q.unacknowledged(0) == 0);
}

TEST_CASE("each stream of a source is acknowledged on its own, newest position per take",
          "[queue][delivery]") {
    // Two sinks take the one source; its streams 1 and 2 are, say, two files.
    bounded_queue q(config(1000), 1, {{true}, {true}});
    int notified = 0;
    q.set_delivery_callback([&](source_id s) {
        CHECK(s == 0);
        ++notified;
    });
    REQUIRE(push(q, positioned(0, 1, 100)) == push_result::ok);
    REQUIRE(push(q, positioned(0, 2, 7)) == push_result::ok);
    REQUIRE(push(q, positioned(0, 2, 9)) == push_result::ok);
    REQUIRE(push(q, positioned(0, 1, 200)) == push_result::ok);

    // Sink 0 writes everything; sink 1 only the first batch (stream 1 at 100).
    uint64_t c0 = 0;
    uint64_t c1 = 0;
    std::vector<batch_ptr> out;
    REQUIRE(read_now(q, 0, c0, out) == read_result::ok);
    q.commit(0, c0);
    CHECK(notified == 0);  // nothing is written by both yet
    REQUIRE(read_now(q, 1, c1, out, 1) == read_result::ok);
    q.commit(1, c1);
    CHECK(notified == 1);

    std::vector<sluice::delivery> d;
    CHECK(q.take_deliveries(0, d) == 1);
    REQUIRE(d.size() == 1);
    CHECK(d[0].stream == 1);
    CHECK(d[0].position == 100);
    CHECK(q.take_deliveries(0, d) == 0);  // nothing moved since

    // The rest settles in one commit; stream 2 moves twice but is reported once, at its newest,
    // and the source is told once until it takes.
    REQUIRE(read_now(q, 1, c1, out) == read_result::ok);
    q.commit(1, c1);
    CHECK(notified == 2);
    d.clear();
    CHECK(q.take_deliveries(0, d) == 2);
    std::sort(d.begin(), d.end(), [](const auto& a, const auto& b) { return a.stream < b.stream; });
    CHECK(d[0].stream == 1);
    CHECK(d[0].position == 200);
    CHECK(d[1].stream == 2);
    CHECK(d[1].position == 9);
    CHECK(q.unacknowledged(0) == 0);
}

TEST_CASE("a dropped batch is acknowledged only after its stream's queued batches",
          "[queue][delivery]") {
    std::vector<std::pair<source_id, int64_t>> delivered;
    bounded_queue q(config(1, unlimited, overflow_policy::drop_newest), 1, {{true}});
    record_deliveries(q, delivered);
    REQUIRE(push(q, positioned(0, 0, 1)) == push_result::ok);
    REQUIRE(push(q, positioned(0, 0, 2)) == push_result::dropped);
    REQUIRE(push(q, positioned(0, 3, 50)) == push_result::dropped);  // another stream: at once
    CHECK(delivered == std::vector<std::pair<source_id, int64_t>>{{0, 50}});
    uint64_t c = 0;
    std::vector<batch_ptr> out;
    REQUIRE(read_now(q, 0, c, out) == read_result::ok);
    q.commit(0, c);
    CHECK(delivered == std::vector<std::pair<source_id, int64_t>>{{0, 50}, {0, 2}});
}

TEST_CASE("finished entries behind a stuck sink do not pile up in the queue",
          "[queue][delivery]") {
    // Sink 0 takes source 0 only and never commits its one batch; sink 1 takes source 1, whose
    // batches are written as they come. The fill stays near zero; so must the log.
    std::vector<std::pair<source_id, int64_t>> delivered;
    bounded_queue q(config(1'000'000), 2, {{true, false}, {false, true}});
    record_deliveries(q, delivered);
    REQUIRE(push(q, make_batch(0, 1, "stuck", 0)) == push_result::ok);
    uint64_t c0 = 0;
    std::vector<batch_ptr> out;
    REQUIRE(read_now(q, 0, c0, out) == read_result::ok);

    uint64_t c1 = 0;
    size_t most_entries = 0;
    for (int64_t i = 0; i < 100'000; ++i) {
        REQUIRE(push(q, make_batch(1, 1, "flowing", i)) == push_result::ok);
        out.clear();
        REQUIRE(read_now(q, 1, c1, out) == read_result::ok);
        q.commit(1, c1);
        most_entries = std::max(most_entries, q.entry_count());
    }
    CHECK(most_entries <= 600);
    CHECK(q.stats().events == 1);
    // Source 1 was acknowledged all along, source 0 not at all.
    CHECK(delivered.size() == 100'000);
    CHECK(delivered.back() == std::pair<source_id, int64_t>{1, 99'999});
    CHECK(q.unacknowledged(0) == 1);

    // The stuck sink still reads nothing new, and its commit frees the last entry.
    out.clear();
    CHECK(read_now(q, 0, c0, out) == read_result::timeout);
    q.commit(0, c0);
    CHECK(q.entry_count() == 0);
    CHECK(delivered.back() == std::pair<source_id, int64_t>{0, 0});
}

TEST_CASE("read_until with a deadline returns timeout without data", "[queue]") {
    bounded_queue q(config(1000), 1, {{true}});
    uint64_t cursor = 0;
    std::vector<batch_ptr> out;
    CHECK(q.read_until(0, cursor, clk::now() + 20ms, out, 10, 10) == read_result::timeout);
    CHECK(q.read_until(0, cursor, clk::now() - 1s, out, 10, 10) == read_result::timeout);
    CHECK(out.empty());
    CHECK(cursor == 0);
}

TEST_CASE("a push wakes a blocked reader", "[queue]") {
    bounded_queue q(config(1000), 1, {{true}});
    std::atomic<int> result{-1};
    std::vector<batch_ptr> out;
    std::thread reader([&] {
        uint64_t cursor = 0;
        const auto r = q.read_until(0, cursor, clk::time_point::max(), out, 10, unlimited);
        result = static_cast<int>(r);
    });
    std::this_thread::sleep_for(10ms);  // most likely blocked by now; correct either way
    REQUIRE(push(q, make_batch(0, 1, "wake")) == push_result::ok);
    const bool woke = eventually([&] { return result.load() != -1; });
    if (!woke) {
        q.close();  // release it before failing
    }
    reader.join();
    REQUIRE(woke);
    CHECK(result.load() == static_cast<int>(read_result::ok));
    REQUIRE(out.size() == 1);
    CHECK(out[0]->line(0) == "wake 0");
}

TEST_CASE("wake_readers makes a reader return, even one not yet blocked", "[queue]") {
    bounded_queue q(config(1000), 2, {{true}, {true}});
    SECTION("blocked reader") {
        std::atomic<int> result{-1};
        std::thread reader([&] {
            uint64_t cursor = 0;
            std::vector<batch_ptr> out;
            result = static_cast<int>(
                q.read_until(0, cursor, clk::time_point::max(), out, 10, unlimited));
        });
        std::this_thread::sleep_for(10ms);
        q.wake_readers();
        const bool woke = eventually([&] { return result.load() != -1; });
        if (!woke) {
            q.close();
        }
        reader.join();
        REQUIRE(woke);
        CHECK(result.load() == static_cast<int>(read_result::timeout));
    }
    SECTION("a wake-up just before the reader blocks is not lost") {
        // A sink checks its stop flag, then calls read_until; abort() may set the flag and wake
        // readers in between. The reader must still return.
        q.wake_readers();
        std::atomic<int> result{-1};
        std::thread reader([&] {
            uint64_t cursor = 0;
            std::vector<batch_ptr> out;
            result = static_cast<int>(
                q.read_until(1, cursor, clk::time_point::max(), out, 10, unlimited));
        });
        const bool woke = eventually([&] { return result.load() != -1; });
        if (!woke) {
            q.close();
        }
        reader.join();
        REQUIRE(woke);
        CHECK(result.load() == static_cast<int>(read_result::timeout));
    }
}

TEST_CASE("close wakes a blocked reader, readers get what is queued first", "[queue]") {
    SECTION("empty queue") {
        bounded_queue q(config(1000), 1, {{true}});
        std::atomic<int> result{-1};
        std::thread reader([&] {
            uint64_t cursor = 0;
            std::vector<batch_ptr> out;
            result = static_cast<int>(
                q.read_until(0, cursor, clk::time_point::max(), out, 10, unlimited));
        });
        std::this_thread::sleep_for(10ms);
        q.close();
        reader.join();  // a lost wake-up hangs here
        CHECK(result.load() == static_cast<int>(read_result::closed));
    }
    SECTION("with batches queued") {
        bounded_queue q(config(1000), 2, {{true}, {true}});
        REQUIRE(push(q, make_batch(0, 2, "x")) == push_result::ok);
        REQUIRE(push(q, make_batch(0, 2, "y")) == push_result::ok);
        q.close();
        batch_ptr late = make_batch(0, 1, "late");
        CHECK(q.try_push(late) == push_result::closed);
        CHECK(late != nullptr);  // untouched

        uint64_t cursor = 0;
        std::vector<batch_ptr> out;
        CHECK(q.read_until(0, cursor, clk::time_point::max(), out, 2, unlimited) ==
              read_result::ok);
        CHECK(out.size() == 1);
        CHECK(q.read_until(0, cursor, clk::time_point::max(), out, 2, unlimited) ==
              read_result::ok);
        CHECK(out.size() == 2);
        CHECK(q.read_until(0, cursor, clk::time_point::max(), out, 2, unlimited) ==
              read_result::closed);
        CHECK(out.size() == 2);
        q.commit(0, cursor);
        // The other sink still gets everything.
        uint64_t other = 0;
        std::vector<batch_ptr> out1;
        CHECK(q.read_until(1, other, clk::time_point::max(), out1, 100, unlimited) ==
              read_result::ok);
        CHECK(out1.size() == 2);
        CHECK(q.read_until(1, other, clk::time_point::max(), out1, 100, unlimited) ==
              read_result::closed);
        q.commit(1, other);
        CHECK(q.stats().events == 0);
    }
}

TEST_CASE("the queue refuses more than 64 sinks", "[queue]") {
    CHECK_THROWS_AS(bounded_queue(config(10), 1, std::vector<std::vector<bool>>(65, {true})),
                    sluice::error);
    CHECK_NOTHROW(bounded_queue(config(10), 1, std::vector<std::vector<bool>>(64, {true})));
}

// ---------------------------------------------------------------------------------------------
// Stress

namespace {

constexpr size_t stress_producers = 4;
constexpr size_t stress_sinks = 3;

// Sink 2 does not take the last source.
bool stress_takes(size_t sink, size_t source) {
    return sink != 2 || source != stress_producers - 1;
}

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull) {
    for (char c : s) {
        h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    }
    return h;
}

size_t stress_lines(size_t producer, uint64_t seq) { return 1 + (seq * 7 + producer) % 5; }

std::string stress_line(size_t producer, uint64_t seq, size_t line) {
    return "p" + std::to_string(producer) + " s" + std::to_string(seq) + " l" +
           std::to_string(line);
}

struct stress_run {
    stress_run(overflow_policy p, uint64_t n) : policy(p), batches_per_producer(n) {}

    const overflow_policy policy;
    const uint64_t batches_per_producer;

    // Producer side.
    std::array<std::atomic<uint64_t>, stress_producers> pushed{};         // batches accepted
    std::array<std::atomic<uint64_t>, stress_producers> pushed_events{};  // all events offered
    std::array<uint64_t, stress_producers> checksum{};                    // of accepted batches
    std::atomic<uint64_t> fulls{0};
    std::atomic<uint64_t> batches_alive{0};  // lifetimes: every batch must be freed
    // Sink side, each written by its own sink thread only.
    std::array<std::array<uint64_t, stress_producers>, stress_sinks> seen{};
    std::array<std::array<uint64_t, stress_producers>, stress_sinks> seen_events{};
    std::array<std::array<uint64_t, stress_producers>, stress_sinks> seen_checksum{};
    std::array<std::array<int64_t, stress_producers>, stress_sinks> last_seq{};
    std::array<std::string, stress_sinks + stress_producers> errors;
    std::array<std::atomic<uint64_t>, stress_sinks> progress{};
    // Acknowledgements, taken on the settling threads, under delivery_mutex. Producer p's
    // batch seq goes to stream seq % 2 with position seq.
    std::mutex delivery_mutex;
    std::array<std::array<int64_t, 2>, stress_producers> last_delivered{};
    bool delivered_in_order = true;

    void run();
};

void stress_run::run() {
    queue_config cfg = config(64, 24 * 1024, policy);
    bounded_queue q(
        cfg, stress_producers,
        {{true, true, true, true}, {true, true, true, true}, {true, true, true, false}});
    std::mutex resume_mutex;
    std::condition_variable resume_cv;
    uint64_t resume_gen = 0;
    q.set_resume_callback([&] {
        {
            std::lock_guard lock(resume_mutex);
            ++resume_gen;
        }
        resume_cv.notify_all();
    });
    for (auto& row : last_delivered) {
        row.fill(-1);
    }
    q.set_delivery_callback([&](source_id s) {
        std::vector<sluice::delivery> d;
        std::lock_guard lock(delivery_mutex);
        q.take_deliveries(s, d);
        for (const auto& x : d) {
            auto& last = last_delivered[s][x.stream];
            delivered_in_order = delivered_in_order && x.position > last &&
                                 static_cast<uint32_t>(x.position % 2) == x.stream;
            last = x.position;
        }
    });
    for (auto& row : last_seq) {
        row.fill(-1);
    }

    std::mutex done_mutex;
    std::condition_variable done_cv;
    bool done = false;
    std::thread watchdog([&] {
        std::unique_lock lock(done_mutex);
        if (!done_cv.wait_for(lock, 60s, [&] { return done; })) {
            std::fprintf(stderr, "stress watchdog (%s): no end after 60 s.\n",
                         std::string(sluice::to_string(policy)).c_str());
            for (size_t p = 0; p < stress_producers; ++p) {
                std::fprintf(stderr, "  producer %zu: %llu of %llu batches pushed\n", p,
                             static_cast<unsigned long long>(pushed[p].load()),
                             static_cast<unsigned long long>(batches_per_producer));
            }
            for (size_t k = 0; k < stress_sinks; ++k) {
                std::fprintf(stderr, "  sink %zu: %llu batches read\n", k,
                             static_cast<unsigned long long>(progress[k].load()));
            }
            std::fprintf(stderr, "  queue: %llu events, %llu bytes, blocked %d, fulls %llu\n",
                         static_cast<unsigned long long>(q.events_size_guess()),
                         static_cast<unsigned long long>(q.bytes_size_guess()),
                         q.blocked_guess() ? 1 : 0, static_cast<unsigned long long>(fulls.load()));
            std::abort();
        }
    });

    std::vector<std::thread> sinks;
    for (size_t k = 0; k < stress_sinks; ++k) {
        sinks.emplace_back([&, k] {
            uint64_t cursor = 0;
            std::vector<batch_ptr> out;
            std::string& error = errors[k];
            for (uint64_t round = 0;; ++round) {
                out.clear();
                const read_result r = q.read_until(k, cursor, clk::now() + 20ms, out, 16, 4 * 1024);
                for (const auto& b : out) {
                    const size_t p = b->source();
                    const auto seq = static_cast<uint64_t>(b->position);
                    if (!stress_takes(k, p) && error.empty()) {
                        error = "sink " + std::to_string(k) + " got source " + std::to_string(p);
                    }
                    const bool in_order = policy == overflow_policy::block
                                              ? b->position == last_seq[k][p] + 1
                                              : b->position > last_seq[k][p];
                    if (!in_order && error.empty()) {
                        error = "sink " + std::to_string(k) + " source " + std::to_string(p) +
                                ": seq " + std::to_string(seq) + " after " +
                                std::to_string(last_seq[k][p]);
                    }
                    last_seq[k][p] = b->position;
                    if (b->event_count() != stress_lines(p, seq) && error.empty()) {
                        error = "batch with " + std::to_string(b->event_count()) + " events";
                    }
                    uint64_t h = 0;
                    for (size_t i = 0; i < b->event_count(); ++i) {
                        if (b->line(i) != stress_line(p, seq, i) && error.empty()) {
                            error = "line " + std::string(b->line(i));
                        }
                        h += fnv1a(b->line(i));
                    }
                    seen_checksum[k][p] += h;
                    seen_events[k][p] += b->event_count();
                    ++seen[k][p];
                }
                progress[k].fetch_add(out.size(), std::memory_order_relaxed);
                if (k == 2 && round % 4 == 0) {
                    std::this_thread::sleep_for(50us);  // the slow one
                }
                q.commit(k, cursor);
                if (r == read_result::closed) {
                    break;
                }
            }
        });
    }

    std::vector<std::thread> producers;
    for (size_t p = 0; p < stress_producers; ++p) {
        producers.emplace_back([&, p] {
            for (uint64_t seq = 0; seq < batches_per_producer; ++seq) {
                batches_alive.fetch_add(1);
                std::shared_ptr<batch> b(new batch(static_cast<source_id>(p)), [this](batch* x) {
                    delete x;
                    batches_alive.fetch_sub(1);
                });
                uint64_t h = 0;
                for (size_t i = 0; i < stress_lines(p, seq); ++i) {
                    const std::string line = stress_line(p, seq, i);
                    b->add_line(line);
                    h += fnv1a(line);
                }
                b->position = static_cast<int64_t>(seq);
                b->stream = static_cast<uint32_t>(seq % 2);
                b->received_ns = sluice::unix_now_ns();
                pushed_events[p] += b->event_count();
                batch_ptr ptr = std::move(b);
                for (;;) {
                    uint64_t gen = 0;
                    {
                        std::lock_guard lock(resume_mutex);
                        gen = resume_gen;
                    }
                    const push_result r = q.try_push(ptr);
                    if (r == push_result::ok) {
                        checksum[p] += h;
                        pushed[p].fetch_add(1);
                        break;
                    }
                    if (r == push_result::dropped) {
                        break;
                    }
                    if (r != push_result::full || ptr == nullptr) {
                        errors[stress_sinks + p] = "push gave " + std::to_string(int(r));
                        return;
                    }
                    fulls.fetch_add(1);
                    if (p % 2 == 0) {
                        // Wait for resume, as a source does.
                        std::unique_lock lock(resume_mutex);
                        resume_cv.wait(lock, [&] { return resume_gen != gen; });
                    } else {
                        std::this_thread::yield();  // spin
                    }
                }
            }
        });
    }
    for (auto& t : producers) {
        t.join();
    }
    q.close();
    for (auto& t : sinks) {
        t.join();
    }
    {
        std::lock_guard lock(done_mutex);
        done = true;
    }
    done_cv.notify_all();
    watchdog.join();

    for (const auto& e : errors) {
        CHECK(e == "");
    }
    uint64_t accepted = 0;
    for (size_t p = 0; p < stress_producers; ++p) {
        INFO("producer " << p);
        accepted += pushed[p];
        for (size_t k = 0; k < stress_sinks; ++k) {
            INFO("sink " << k);
            if (!stress_takes(k, p)) {
                CHECK(seen[k][p] == 0);
                continue;
            }
            if (policy == overflow_policy::block) {
                // Every batch, once, in order.
                CHECK(pushed[p] == batches_per_producer);
                CHECK(seen[k][p] == batches_per_producer);
                CHECK(seen_checksum[k][p] == checksum[p]);
            } else {
                // What a sink missed was counted as dropped or evicted, nothing else. An
                // evicted batch may have been written by a faster sink already, so with
                // eviction the sum can exceed what was offered, never fall short of it.
                const auto s = static_cast<source_id>(p);
                const uint64_t refused = q.dropped(s, drop_reason::queue_full);
                const uint64_t evicted = q.dropped(s, drop_reason::evicted);
                CHECK(seen[k][p] <= pushed[p]);
                CHECK(seen_events[k][p] + refused <= pushed_events[p]);
                CHECK(seen_events[k][p] + refused + evicted >= pushed_events[p]);
                if (policy == overflow_policy::drop_newest) {
                    CHECK(evicted == 0);
                    CHECK(seen_events[k][p] + refused == pushed_events[p]);
                    CHECK(seen_checksum[k][p] == checksum[p]);
                }
            }
        }
    }
    const auto st = q.stats();
    CHECK(st.events == 0);
    CHECK(st.bytes == 0);
    CHECK(batches_alive.load() == 0);
    for (const auto& lag : st.sinks) {
        CHECK(lag.events == 0);
        CHECK(lag.bytes == 0);
    }
    // Every batch offered was settled (written, refused or evicted), so each stream ends
    // acknowledged at its last position.
    CHECK(delivered_in_order);
    for (size_t p = 0; p < stress_producers; ++p) {
        INFO("producer " << p);
        CHECK(q.unacknowledged(static_cast<source_id>(p)) == 0);
        CHECK(last_delivered[p][0] == static_cast<int64_t>(batches_per_producer) - 2);
        CHECK(last_delivered[p][1] == static_cast<int64_t>(batches_per_producer) - 1);
    }
    CHECK(accepted <= stress_producers * batches_per_producer);
    if (policy == overflow_policy::block) {
        CHECK(fulls > 0);  // backpressure was exercised
        CHECK_FALSE(st.blocked);
    }
}

}  // namespace

TEST_CASE("stress: 4 producers and 3 sinks under block, every batch once and in order", "[queue]") {
    stress_run run{overflow_policy::block, 3000};
    run.run();
}

TEST_CASE("stress: drop policies lose nothing uncounted", "[queue]") {
    for (auto policy : {overflow_policy::drop_newest, overflow_policy::drop_oldest}) {
        INFO("policy " << sluice::to_string(policy));
        stress_run run{policy, 1500};
        run.run();
    }
}
