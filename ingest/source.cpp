#include "ingest/source.h"

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/units.h"

namespace sluice {

source::source(std::string name, source_id id, asio::io_context& io, bounded_queue& queue)
    : io_(io), queue_(queue), name_(std::move(name)), id_(id), resume_signal_(io) {
    resume_signal_.expires_at(asio::steady_timer::time_point::max());
}

void source::pause() {
    if (paused()) {
        return;
    }
    counters_.paused_since_ns.store(mono_now_ns(), std::memory_order_relaxed);
    counters_.paused.store(true, std::memory_order_relaxed);
    spdlog::info("Source {} paused: queue at {} of {}, {} of {} events.", name_,
                 format_size(queue_.bytes_size_guess()), format_size(queue_.config().max_bytes),
                 queue_.events_size_guess(), queue_.config().max_events);
}

void source::resume() {
    if (!paused()) {
        return;
    }
    const int64_t waited =
        mono_now_ns() - counters_.paused_since_ns.load(std::memory_order_relaxed);
    bump(counters_.backpressure_ns_total, static_cast<uint64_t>(std::max<int64_t>(waited, 0)));
    counters_.paused_since_ns.store(0, std::memory_order_relaxed);
    counters_.paused.store(false, std::memory_order_relaxed);
    spdlog::info("Source {} resumed after {:.3f} s: queue at {} of {}.", name_,
                 static_cast<double>(waited) / 1e9, format_size(queue_.bytes_size_guess()),
                 format_size(queue_.config().max_bytes));
    resume_signal_.cancel();
}

asio::awaitable<void> source::wait_while_paused() {
    while (paused()) {
        auto [ec] = co_await resume_signal_.async_wait(
            asio::experimental::as_tuple(asio::use_awaitable));
        (void)ec;
    }
}

void source::push_or_drop(batch_ptr b) {
    const uint64_t events = b->event_count();
    bump(counters_.events_total, events);
    switch (queue_.try_push(b)) {
        case push_result::ok:
        case push_result::dropped:
            break;
        case push_result::full:
        case push_result::closed:
            queue_.count_dropped(id_, drop_reason::queue_full, events);
            break;
    }
}

asio::awaitable<bool> source::push(batch_ptr b) {
    const uint64_t events = b->event_count();
    for (;;) {
        switch (queue_.try_push(b)) {
            case push_result::ok:
            case push_result::dropped:
                bump(counters_.events_total, events);
                co_return true;
            case push_result::closed:
                bump(counters_.events_total, events);
                spdlog::error("Source {}: {} events read after the queue closed are lost.",
                              name_, events);
                co_return false;
            case push_result::full:
                pause();
                co_await wait_while_paused();
                break;
        }
    }
}

}  // namespace sluice
