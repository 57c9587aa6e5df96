#include "sinks/sink.h"

#include <random>

#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/thread_name.h"

namespace sluice {

const char* to_string(sink_state s) {
    switch (s) {
        case sink_state::ok:
            return "ok";
        case sink_state::retrying:
            return "retrying";
        case sink_state::failed:
            return "failed";
    }
    return "?";
}

sink::sink(std::string name, batch_config batch, retry_config retry)
    : name_(std::move(name)), batch_(batch), retry_(retry) {}

sink::~sink() { stop_thread(); }

void sink::stop_thread() {
    abort();
    join();
}

void sink::start(bounded_queue& queue, size_t id) {
    queue_ = &queue;
    id_ = id;
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

std::string sink::last_error() const {
    std::lock_guard lock(error_mutex_);
    return last_error_;
}

void sink::set_state(sink_state s) { state_.store(s, std::memory_order_release); }

void sink::log_failure(const std::string& what) {
    {
        std::lock_guard lock(error_mutex_);
        last_error_ = what;
    }
    if (failed()) {
        return;  // said once, when the sink failed; the attempts are still counted
    }
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
    write_status status = attempt(batches, false);
    if (status == write_status::ok && pipelined()) {
        status = attempt(batches, true);
    }
    return status;
}

write_status sink::attempt(std::span<const batch_ptr> batches, bool finish) {
    const int64_t start = mono_now_ns();
    resume_point& at = progress();
    if (!finish && at.at_start()) {
        began_ns_[slot_] = start;  // a new write (or a retry that had got nowhere yet)
    }
    write_status status;
    try {
        if (!finish && reopen_.exchange(false, std::memory_order_acq_rel)) {
            reopen_impl();
        }
        status = finish ? finish_impl(batches) : write_impl(batches);
        exceptions_in_row_ = 0;
    } catch (const std::exception& e) {
        log_failure(std::string("write failed: ") + e.what());
        status = write_status::retry;
        ++exceptions_in_row_;
    } catch (...) {
        // Anything else thrown would end the sink thread, and the process, by terminate().
        log_failure("write failed: an exception not derived from std::exception");
        status = write_status::retry;
        ++exceptions_in_row_;
    }
    if (exceptions_in_row_ >= retry_.exception_limit) {
        status = write_status::permanent;
    }
    if (status != write_status::ok) {
        bump(counters_.errors_total);
        return status;
    }
    if (finish != pipelined()) {
        return status;  // sent; finish_impl says when it is written
    }
    at = {};
    uint64_t events = 0;
    for (const auto& b : batches) {
        events += b->event_count();
    }
    bump(counters_.events_total, events);
    bump(counters_.batches_total);
    counters_.batch_duration.observe(static_cast<double>(mono_now_ns() - began_ns_[slot_]) / 1e9);
    const int64_t written_ns = unix_now_ns();
    for (const auto& b : batches) {
        counters_.latency.observe(
            static_cast<double>(std::max<int64_t>(written_ns - b->received_ns, 0)) / 1e9,
            b->event_count());
    }
    return status;
}

bool sink::sleep_unless_aborted(std::chrono::nanoseconds d) {
    std::unique_lock lock(abort_mutex_);
    return !abort_cv_.wait_for(lock, d,
                               [this] { return aborted_.load(std::memory_order_acquire); });
}

bool sink::deliver(std::span<const batch_ptr> batches, bool finish,
                   const std::function<bool()>& on_first_failure) {
    auto backoff = retry_.initial_backoff;
    std::minstd_rand jitter(static_cast<uint32_t>(mono_now_ns()));
    const int64_t began = mono_now_ns();
    uint64_t failures = 0;
    for (;;) {
        const resume_point before = progress();
        const write_status status = attempt(batches, finish);
        if (status == write_status::ok) {
            if (state() != sink_state::ok) {
                spdlog::info("Sink {} is writing again, after {} failed attempts in {:.1f} s.",
                             name_, failures,
                             static_cast<double>(mono_now_ns() - began) / 1e9);
                {
                    std::lock_guard lock(error_mutex_);
                    last_error_.clear();
                }
                set_state(sink_state::ok);
            }
            return true;
        }
        if (++failures == 1 && on_first_failure && !on_first_failure()) {
            return false;
        }
        std::chrono::nanoseconds wait{};
        if (status == write_status::permanent) {
            if (!failed()) {
                spdlog::error("Sink {} failed: {} This will not pass by itself; the sink tries "
                              "again every {:.0f} s and its events stay queued.",
                              name_, last_error(),
                              std::chrono::duration<double>(retry_.failed_interval).count());
                set_state(sink_state::failed);
            }
            wait = retry_.failed_interval;
        } else {
            set_state(sink_state::retrying);
            // An attempt that got further than the last one (a stream with room for some of
            // the messages, a disk with room for some bytes) starts the backoff over: the
            // next attempt may well get further still.
            const resume_point& now = progress();
            if (now.batch != before.batch || now.event != before.event ||
                now.done != before.done) {
                backoff = retry_.initial_backoff;
            }
            // Full jitter on the upper half keeps several failing sinks from retrying in step.
            const auto half = backoff / 2;
            wait = half + std::chrono::nanoseconds(jitter() % (half.count() + 1));
            backoff = std::min(backoff * 2, retry_.max_backoff);
        }
        bump(counters_.retries_total);
        if (!sleep_unless_aborted(wait)) {
            return false;
        }
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
    const bool pipelining = pipelined();
    // A pipelined sink's sent, unfinished write: its batches and the cursor past them.
    constexpr size_t none = 2;
    size_t outstanding = none;
    std::vector<batch_ptr> sent[2];
    uint64_t sent_cursor[2] = {0, 0};
    const auto finish_outstanding = [&] {
        slot_ = outstanding;
        if (!deliver(sent[outstanding], true)) {
            return false;
        }
        queue_->commit(id_, sent_cursor[outstanding]);
        sent[outstanding].clear();
        outstanding = none;
        return true;
    };
    // A sink never takes more than half the queue into its writes: what it holds cannot be
    // evicted, so a larger share would leave drop_oldest nothing to make room with. A
    // pipelined sink holds two writes.
    const auto& limits = queue_->config();
    const uint64_t share = pipelining ? 4 : 2;
    const uint64_t max_events = std::max<uint64_t>(
        1, std::min(batch_.max_events, limits.max_events / share));
    const uint64_t max_bytes =
        std::max<uint64_t>(1, std::min(batch_.max_bytes, limits.max_bytes / share));
    // A write given up on (aborted while it was being delivered) leaves what failed attempts
    // made of it for abandon_impl to undo.
    bool gave_up = false;
    while (!aborted_.load(std::memory_order_acquire)) {
        const size_t before = pending.size();
        // With a write outstanding and nothing gathered, only look: if nothing more is queued,
        // finish that write now rather than after the next one's linger.
        const bool look = outstanding != none && pending.empty();
        const read_result r = queue_->read_until(id_, cursor, look ? clock::now() : flush_at,
                                                 pending, max_events - pending_events,
                                                 max_bytes - pending_bytes);
        if (look && r == read_result::timeout) {
            if (!finish_outstanding()) {
                gave_up = true;
                break;
            }
            continue;
        }
        if (r == read_result::ok) {
            for (size_t i = before; i < pending.size(); ++i) {
                pending_events += pending[i]->event_count();
                pending_bytes += pending[i]->cost_bytes();
            }
            if (flush_at == clock::time_point::max()) {
                // Below its limits after a read, the sink has read everything queued for it:
                // it has caught up, and waits `linger` for more (`timeout` at the most).
                flush_at = clock::now() + std::min(batch_.timeout, batch_.linger);
            }
        }
        closed = r == read_result::closed;
        const bool due = pending_events >= max_events || pending_bytes >= max_bytes ||
                         clock::now() >= flush_at || closed;
        if (!due) {
            continue;
        }
        if (!pending.empty() && pipelining) {
            // Send this write, then finish the one before it: its acknowledgements came in
            // while this one was gathered and sent.
            const size_t s = outstanding == 0 ? 1 : 0;
            sent[s] = std::move(pending);
            sent_cursor[s] = cursor;
            slot_ = s;
            // If this one cannot be sent, the one before it is finished first: it need not
            // wait for the retries (nor be lost to an abort while they go on).
            const auto finish_before = [&] {
                const bool done = outstanding == none || finish_outstanding();
                slot_ = s;
                return done;
            };
            if (!deliver(sent[s], false, finish_before) ||
                (outstanding != none && !finish_outstanding())) {
                gave_up = true;
                break;
            }
            outstanding = s;
        } else if (!pending.empty()) {
            if (!deliver(pending, false)) {
                gave_up = true;
                break;
            }
            queue_->commit(id_, cursor);
        } else {
            if (outstanding != none && !finish_outstanding()) {
                gave_up = true;
                break;
            }
            if (cursor != 0) {
                // Nothing of ours, but skipped entries of other sources still count as passed.
                queue_->commit(id_, cursor);
            }
        }
        pending.clear();
        pending_events = 0;
        pending_bytes = 0;
        flush_at = clock::time_point::max();
        if (closed) {
            gave_up = outstanding != none && !finish_outstanding();
            break;
        }
    }
    if (gave_up) {
        abandon_impl();
    }
    finished_.store(true, std::memory_order_release);
}

}  // namespace sluice
