#include "ingest/source.h"

#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/units.h"

namespace sluice {

source::lane::lane(asio::io_context& loop, size_t lane_index)
    : io(loop), index(lane_index), resume_signal(loop) {
    resume_signal.expires_at(asio::steady_timer::time_point::max());
}

source::source(std::string name, source_id id, asio::io_context& io, bounded_queue& queue)
    : io_(io), queue_(queue), name_(std::move(name)), id_(id) {
    lanes_.push_back(std::make_unique<lane>(io, 0));
}

source::lane& source::add_lane(asio::io_context& loop) {
    lanes_.push_back(std::make_unique<lane>(loop, lanes_.size()));
    return *lanes_.back();
}

namespace {

constexpr auto first_backoff = std::chrono::milliseconds(100);
constexpr auto max_backoff = std::chrono::seconds(30);
// A loop that ran this long before it threw starts its backoff over.
constexpr auto healthy_run = std::chrono::minutes(1);

std::string describe(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "an exception not derived from std::exception";
    }
}

}  // namespace

void source::stop() noexcept {
    stopping_.store(true, std::memory_order_release);
    // Each lane cancels its own supervisors' backoffs. A supervisor that has not begun its
    // wait when the cancel runs sees stopping() first: both run on the lane's thread.
    for (auto& l : lanes_) {
        if (&l->io == &io_) {
            cancel_backoffs(*l);
        } else {
            asio::post(l->io, [target = l.get()] { cancel_backoffs(*target); });
        }
    }
    on_stop();
}

void source::cancel_backoffs(lane& l) {
    for (auto* timer : l.backoffs) {
        timer->cancel();
    }
}

void source::report_failure(const std::string& what, std::exception_ptr e) {
    bump(counters_.errors_total);
    uint64_t suppressed = 0;
    if (failure_log_.should_log(suppressed)) {
        if (suppressed != 0) {
            spdlog::error("Source {}: the {} failed: {} ({} more failures in the last second.)",
                          name_, what, describe(e), suppressed);
        } else {
            spdlog::error("Source {}: the {} failed: {}", name_, what, describe(e));
        }
    }
}

void source::check_wait(const asio::error_code& ec, const char* what) const {
    if (ec && ec != asio::error::operation_aborted) {
        throw asio::system_error(ec, std::string("waiting for ") + what);
    }
}

void source::supervise(std::string what, std::function<asio::awaitable<void>()> make,
                       std::function<void()> done, lane* on) {
    lane& l = on != nullptr ? *on : home_lane();
    spawn_task(what, supervisor(what, std::move(make), l), std::move(done), &l);
}

void source::spawn_task(std::string what, asio::awaitable<void> task,
                        std::function<void()> done, lane* on) {
    live_tasks_.fetch_add(1, std::memory_order_relaxed);
    asio::io_context& loop = on != nullptr ? on->io : io_;
    asio::co_spawn(loop, std::move(task),
                   [this, what = std::move(what), done = std::move(done)](std::exception_ptr e) {
                       if (e) {
                           report_failure(what, e);
                       }
                       if (done) {
                           done();
                       }
                       // Last: once idle() sees zero, everything the task read is pushed.
                       live_tasks_.fetch_sub(1, std::memory_order_release);
                   });
}

asio::awaitable<void> source::supervisor(std::string what,
                                         std::function<asio::awaitable<void>()> make, lane& on) {
    using clock = std::chrono::steady_clock;
    std::chrono::nanoseconds backoff = first_backoff;
    asio::steady_timer timer(on.io);
    while (!stopping()) {
        const auto began = clock::now();
        std::exception_ptr failure;
        try {
            co_await make();
        } catch (...) {
            failure = std::current_exception();
        }
        if (!failure) {
            co_return;
        }
        report_failure(what, failure);
        if (stopping()) {
            break;
        }
        if (clock::now() - began >= healthy_run) {
            backoff = first_backoff;
        }
        spdlog::info("Source {}: restarting the {} in {:.1f} s.", name_, what,
                     std::chrono::duration<double>(backoff).count());
        timer.expires_after(backoff);
        on.backoffs.insert(&timer);
        auto [ec] = co_await timer.async_wait(use_tuple);
        on.backoffs.erase(&timer);
        check_wait(ec, "a restart");  // cancelled by stop(): the loop condition ends it
        backoff = std::min<std::chrono::nanoseconds>(backoff * 2, max_backoff);
    }
}

void source::pause(lane& l) {
    if (l.paused) {
        return;
    }
    l.paused = true;
    std::lock_guard lock(pause_mutex_);
    if (paused_lanes_++ != 0) {
        return;
    }
    counters_.paused_since_ns.store(mono_now_ns(), std::memory_order_relaxed);
    counters_.paused.store(true, std::memory_order_relaxed);
    spdlog::info("Source {} paused: queue at {} of {}, {} of {} events.", name_,
                 format_size(queue_.bytes_size_guess()), format_size(queue_.config().max_bytes),
                 queue_.events_size_guess(), queue_.config().max_events);
}

void source::resume() {
    for (auto& l : lanes_) {
        asio::post(l->io, [this, target = l.get()] { resume_lane(*target); });
    }
}

void source::resume_lane(lane& l) {
    if (!l.paused) {
        return;
    }
    l.paused = false;
    l.resume_signal.cancel();
    std::lock_guard lock(pause_mutex_);
    if (--paused_lanes_ != 0) {
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
}

asio::awaitable<void> source::wait_while_paused(lane& l) {
    while (l.paused) {
        auto [ec] = co_await l.resume_signal.async_wait(use_tuple);
        check_wait(ec, "the queue to resume");
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

asio::awaitable<bool> source::push(batch_ptr b, lane& l) {
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
                pause(l);
                co_await wait_while_paused(l);
                break;
        }
    }
}

}  // namespace sluice
