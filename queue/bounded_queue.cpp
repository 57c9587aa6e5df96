#include "queue/bounded_queue.h"

#include <algorithm>
#include <bit>

#include "common/clock.h"
#include "common/error.h"

namespace sluice {

namespace {

constexpr size_t max_sinks = 64;
// Finished entries held back behind an unfinished one before the log is compacted.
constexpr size_t compact_min_finished = 256;

}  // namespace

bounded_queue::bounded_queue(queue_config config, size_t source_count,
                             std::vector<std::vector<bool>> sink_inputs)
    : config_(config),
      low_events_(static_cast<uint64_t>(static_cast<double>(config.max_events) *
                                        config.low_watermark)),
      low_bytes_(static_cast<uint64_t>(static_cast<double>(config.max_bytes) *
                                       config.low_watermark)),
      dropped_(source_count),
      ledger_(source_count) {
    if (sink_inputs.size() > max_sinks) {
        throw error("the queue serves at most 64 sinks");
    }
    sinks_.resize(sink_inputs.size());
    for (size_t k = 0; k < sink_inputs.size(); ++k) {
        sinks_[k].inputs = std::move(sink_inputs[k]);
        sinks_[k].inputs.resize(source_count, false);
    }
}

bool bounded_queue::over_limit(uint64_t events, uint64_t bytes) const {
    return events > config_.max_events || bytes > config_.max_bytes;
}

bool bounded_queue::under_low_watermark() const {
    return events_ <= low_events_ && bytes_ <= low_bytes_;
}

void bounded_queue::publish_guesses() {
    events_guess_.store(events_, std::memory_order_relaxed);
    bytes_guess_.store(bytes_, std::memory_order_relaxed);
    blocked_guess_.store(blocked_, std::memory_order_relaxed);
}

void bounded_queue::settle_unqueued(const batch& b) {
    if (b.position >= 0) {
        settled_.emplace_back(b.source(), ledger_.open(b.source(), b.stream, b.position));
    }
}

void bounded_queue::acknowledge(std::vector<std::pair<source_id, delivery_ticket>>& settled) {
    if (!settled.empty()) {
        ledger_.settle(settled);
        settled.clear();
    }
}

push_result bounded_queue::try_push(batch_ptr& b) {
    const uint64_t events = b->event_count();
    const uint64_t bytes = b->cost_bytes();
    const source_id source = b->source();
    bool notify = false;
    std::vector<std::pair<source_id, delivery_ticket>> settled;
    push_result result = push_result::ok;
    {
        std::lock_guard lock(mutex_);
        if (closed_) {
            return push_result::closed;
        }
        const bool empty = events_ == 0 && bytes_ == 0;
        bool drop = false;
        if (!empty && (over_limit(events_ + events, bytes_ + bytes) ||
                       (config_.when_full == overflow_policy::block && blocked_))) {
            switch (config_.when_full) {
                case overflow_policy::block:
                    blocked_ = true;
                    publish_guesses();
                    return push_result::full;
                case overflow_policy::drop_oldest:
                    evict_for(events, bytes);
                    pop_finished();
                    // An emptied queue admits any batch: refusing it now would lose both.
                    drop = (events_ != 0 || bytes_ != 0) &&
                           over_limit(events_ + events, bytes_ + bytes);
                    break;
                case overflow_policy::drop_newest:
                    drop = true;
                    break;
            }
        }
        if (drop) {
            dropped_[source][static_cast<size_t>(drop_reason::queue_full)].fetch_add(
                events, std::memory_order_relaxed);
            // Settled at once; the ledger still acknowledges it only after the batches of its
            // stream that were queued before it.
            settle_unqueued(*b);
            b.reset();
            result = push_result::dropped;
        } else {
            uint64_t pending = 0;
            for (size_t k = 0; k < sinks_.size(); ++k) {
                if (sinks_[k].inputs[source]) {
                    pending |= uint64_t{1} << k;
                    sinks_[k].lag_events += events;
                    sinks_[k].lag_bytes += bytes;
                }
            }
            if (pending != 0) {
                const bool positioned = b->position >= 0;
                const delivery_ticket ticket =
                    positioned ? ledger_.open(source, b->stream, b->position) : delivery_ticket{};
                const int64_t received_ns = b->received_ns;
                entries_.push_back(entry{next_seq_++, std::move(b), pending, events, bytes,
                                         received_ns, ticket, positioned, source});
                events_ += events;
                bytes_ += bytes;
            } else {
                // No sink takes this source: it is done as soon as it arrives.
                settle_unqueued(*b);
                b.reset();
            }
            notify = waiting_readers_ != 0 && pending != 0;
        }
        publish_guesses();
        settled.swap(settled_);
    }
    acknowledge(settled);
    if (notify) {
        readable_.notify_all();
    }
    return result;
}

size_t bounded_queue::index_after(uint64_t seq) const {
    auto it = std::upper_bound(entries_.begin(), entries_.end(), seq,
                               [](uint64_t s, const entry& e) { return s < e.seq; });
    return static_cast<size_t>(it - entries_.begin());
}

read_result bounded_queue::read_until(size_t sink, uint64_t& cursor,
                                      std::chrono::steady_clock::time_point deadline,
                                      std::vector<batch_ptr>& out, uint64_t max_events,
                                      uint64_t max_bytes) {
    const uint64_t bit = uint64_t{1} << sink;
    std::unique_lock lock(mutex_);
    // Two looks at most: before and after one wait. A wake-up with nothing new (a deadline,
    // wake_readers, a spurious one) returns `timeout` so the caller re-checks its own state.
    for (int look = 0;; ++look) {
        uint64_t events = 0;
        uint64_t bytes = 0;
        bool appended = false;
        for (size_t i = index_after(cursor); i < entries_.size(); ++i) {
            const entry& e = entries_[i];
            cursor = e.seq;
            if ((e.pending & bit) != 0) {
                out.push_back(e.batch);
                appended = true;
                events += e.events;
                bytes += e.bytes;
                if (events >= max_events || bytes >= max_bytes) {
                    break;
                }
            }
        }
        // Entries may have been popped past the cursor's position; never go backwards.
        cursor = std::max(cursor, sinks_[sink].read_cursor);
        sinks_[sink].read_cursor = cursor;
        if (appended) {
            return read_result::ok;
        }
        if (closed_) {
            return read_result::closed;
        }
        if (look == 1) {
            return read_result::timeout;
        }
        // A wake_readers that came before this call (after the caller last checked its stop
        // flag) must not be lost to a wait that could last forever.
        if ((wake_pending_ & bit) != 0) {
            wake_pending_ &= ~bit;
            return read_result::timeout;
        }
        ++waiting_readers_;
        readable_.wait_until(lock, deadline);
        --waiting_readers_;
        wake_pending_ &= ~bit;
    }
}

void bounded_queue::settle(entry& e, size_t sink) {
    const uint64_t bit = uint64_t{1} << sink;
    if ((e.pending & bit) == 0) {
        return;
    }
    e.pending &= ~bit;
    sinks_[sink].lag_events -= e.events;
    sinks_[sink].lag_bytes -= e.bytes;
    if (e.pending == 0) {
        events_ -= e.events;
        bytes_ -= e.bytes;
        e.batch.reset();
        ++finished_;
        if (e.positioned) {
            settled_.emplace_back(e.source, e.ticket);
        }
    }
}

void bounded_queue::pop_finished() {
    while (!entries_.empty() && entries_.front().pending == 0) {
        entries_.pop_front();
        --finished_;
    }
    // A sink stuck on one entry would otherwise keep every later finished entry (of sources it
    // does not even take) in the log. Removing them keeps the log sorted by seq, so cursors and
    // index_after still work; doing it only once they are the majority keeps it O(1) amortized.
    if (finished_ > compact_min_finished && finished_ * 2 > entries_.size()) {
        std::erase_if(entries_, [](const entry& e) { return e.pending == 0; });
        finished_ = 0;
    }
}

size_t bounded_queue::entry_count() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

void bounded_queue::evict_for(uint64_t events, uint64_t bytes) {
    for (auto& e : entries_) {
        if (!over_limit(events_ + events, bytes_ + bytes)) {
            return;
        }
        if (e.pending == 0) {
            continue;
        }
        bool in_flight = false;
        for (uint64_t m = e.pending; m != 0; m &= m - 1) {
            const auto k = static_cast<size_t>(std::countr_zero(m));
            in_flight = in_flight || sinks_[k].read_cursor >= e.seq;
        }
        if (in_flight) {
            continue;
        }
        dropped_[e.source][static_cast<size_t>(drop_reason::evicted)].fetch_add(
            e.events, std::memory_order_relaxed);
        for (uint64_t m = e.pending; m != 0; m &= m - 1) {
            settle(e, static_cast<size_t>(std::countr_zero(m)));
        }
    }
}

void bounded_queue::commit(size_t sink, uint64_t cursor) {
    bool resume = false;
    std::vector<std::pair<source_id, delivery_ticket>> settled;
    {
        std::lock_guard lock(mutex_);
        auto& s = sinks_[sink];
        if (cursor <= s.committed_cursor) {
            return;
        }
        for (size_t i = index_after(s.committed_cursor); i < entries_.size(); ++i) {
            entry& e = entries_[i];
            if (e.seq > cursor) {
                break;
            }
            settle(e, sink);
        }
        s.committed_cursor = cursor;
        pop_finished();
        if (blocked_ && under_low_watermark()) {
            blocked_ = false;
            resume = true;
        }
        publish_guesses();
        settled.swap(settled_);
    }
    acknowledge(settled);
    if (resume && resume_cb_) {
        resume_cb_();
    }
}

void bounded_queue::close() {
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }
    readable_.notify_all();
}

void bounded_queue::wake_readers() {
    {
        std::lock_guard lock(mutex_);
        wake_pending_ = ~uint64_t{0};
    }
    readable_.notify_all();
}

uint64_t bounded_queue::dropped(source_id source, drop_reason reason) const {
    return dropped_[source][static_cast<size_t>(reason)].load(std::memory_order_relaxed);
}

queue_stats bounded_queue::stats() const {
    queue_stats st;
    const int64_t now = unix_now_ns();
    auto age = [now](int64_t received_ns) {
        return received_ns == 0 ? 0.0 : std::max(0.0, static_cast<double>(now - received_ns) / 1e9);
    };
    std::lock_guard lock(mutex_);
    st.events = events_;
    st.bytes = bytes_;
    st.max_events = config_.max_events;
    st.max_bytes = config_.max_bytes;
    st.blocked = blocked_;
    for (const auto& e : entries_) {
        if (e.pending != 0) {
            st.oldest_age_seconds = age(e.received_ns);
            break;
        }
    }
    st.sinks.resize(sinks_.size());
    for (size_t k = 0; k < sinks_.size(); ++k) {
        const uint64_t bit = uint64_t{1} << k;
        st.sinks[k].events = sinks_[k].lag_events;
        st.sinks[k].bytes = sinks_[k].lag_bytes;
        for (size_t i = index_after(sinks_[k].committed_cursor); i < entries_.size(); ++i) {
            if ((entries_[i].pending & bit) != 0) {
                st.sinks[k].seconds = age(entries_[i].received_ns);
                break;
            }
        }
    }
    return st;
}

}  // namespace sluice
