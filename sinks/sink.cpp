#include "sinks/sink.h"

#include <random>

#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/thread_name.h"

namespace sluice {

sink::sink(std::string name, batch_config batch, retry_config retry)
    : name_(std::move(name)), batch_(batch), retry_(retry) {}

sink::~sink() { stop_thread(); }

void sink::stop_thread() {
    abort();
    join();
}

void sink::start(bounded_queue& queue, size_t id, std::function<void()> on_fatal) {
    queue_ = &queue;
    id_ = id;
    on_fatal_ = std::move(on_fatal);
    thread_ = std::thread([this] {
        set_thread_name("sink:" + name_);
        run();
    });
}

void sink::abort() {
    {
        std::lock_guard lock(abort_mutex_);
        aborted_.store(true, std::memory_order_release);
    }
    abort_cv_.notify_all();
    if (queue_ != nullptr) {
        queue_->wake_readers();
    }
}

void sink::join() {
    if (thread_.joinable()) {
        thread_.join();
    }
}

void sink::log_failure(const std::string& what) {
    uint64_t suppressed = 0;
    if (failure_log_.should_log(suppressed)) {
        if (suppressed != 0) {
            spdlog::error("Sink {}: {} ({} similar failures in the last second.)", name_, what,
                          suppressed);
        } else {
            spdlog::error("Sink {}: {}", name_, what);
        }
    }
}

write_status sink::write(std::span<const batch_ptr> batches) {
    const int64_t start = mono_now_ns();
    write_status status;
    try {
        if (reopen_.exchange(false, std::memory_order_acq_rel)) {
            reopen_impl();
        }
        status = write_impl(batches);
    } catch (const std::exception& e) {
        log_failure(std::string("write failed: ") + e.what());
        status = write_status::retry;
    } catch (...) {
        // Anything else thrown would end the sink thread, and the process, by terminate().
        log_failure("write failed: an exception not derived from std::exception");
        status = write_status::retry;
    }
    if (status == write_status::ok) {
        uint64_t events = 0;
        for (const auto& b : batches) {
            events += b->event_count();
        }
        bump(counters_.events_total, events);
        bump(counters_.batches_total);
        counters_.batch_duration.observe(static_cast<double>(mono_now_ns() - start) / 1e9);
    } else {
        bump(counters_.errors_total);
    }
    return status;
}

bool sink::sleep_unless_aborted(std::chrono::nanoseconds d) {
    std::unique_lock lock(abort_mutex_);
    return !abort_cv_.wait_for(lock, d,
                               [this] { return aborted_.load(std::memory_order_acquire); });
}

bool sink::deliver(std::span<const batch_ptr> batches) {
    auto backoff = retry_.initial_backoff;
    std::minstd_rand jitter(static_cast<uint32_t>(mono_now_ns()));
    for (;;) {
        const write_status status = write(batches);
        if (status == write_status::ok) {
            return true;
        }
        if (status == write_status::fatal) {
            spdlog::error("Sink {} stopped on a fatal error; its events stay queued.", name_);
            failed_.store(true, std::memory_order_release);
            if (on_fatal_) {
                on_fatal_();
            }
            return false;
        }
        bump(counters_.retries_total);
        // Full jitter on the upper half keeps several failing sinks from retrying in step.
        const auto half = backoff / 2;
        const auto wait = half + std::chrono::nanoseconds(jitter() % (half.count() + 1));
        if (!sleep_unless_aborted(wait)) {
            return false;
        }
        backoff = std::min(backoff * 2, retry_.max_backoff);
    }
}

void sink::run() {
    using clock = std::chrono::steady_clock;
    std::vector<batch_ptr> pending;
    uint64_t cursor = 0;
    uint64_t pending_events = 0;
    uint64_t pending_bytes = 0;
    clock::time_point flush_at = clock::time_point::max();
    bool closed = false;
    // A sink never takes more than half the queue into one write: what it holds cannot be
    // evicted, so a larger share would leave drop_oldest nothing to make room with.
    const auto& limits = queue_->config();
    const uint64_t max_events = std::max<uint64_t>(
        1, std::min(batch_.max_events, limits.max_events / 2));
    const uint64_t max_bytes =
        std::max<uint64_t>(1, std::min(batch_.max_bytes, limits.max_bytes / 2));
    while (!aborted_.load(std::memory_order_acquire)) {
        const size_t before = pending.size();
        const read_result r = queue_->read_until(id_, cursor, flush_at, pending,
                                                 max_events - pending_events,
                                                 max_bytes - pending_bytes);
        if (r == read_result::ok) {
            for (size_t i = before; i < pending.size(); ++i) {
                pending_events += pending[i]->event_count();
                pending_bytes += pending[i]->cost_bytes();
            }
            if (flush_at == clock::time_point::max()) {
                flush_at = clock::now() + batch_.timeout;
            }
        }
        closed = r == read_result::closed;
        const bool due = pending_events >= max_events || pending_bytes >= max_bytes ||
                         clock::now() >= flush_at || closed;
        if (!due) {
            continue;
        }
        if (!pending.empty()) {
            if (!deliver(pending)) {
                break;
            }
            queue_->commit(id_, cursor);
            pending.clear();
            pending_events = 0;
            pending_bytes = 0;
        } else if (cursor != 0) {
            // Nothing of ours, but skipped entries of other sources still count as passed.
            queue_->commit(id_, cursor);
        }
        flush_at = clock::time_point::max();
        if (closed) {
            break;
        }
    }
    finished_.store(true, std::memory_order_release);
}

}  // namespace sluice
