#include "queue/delivery_ledger.h"

#include "common/error.h"

namespace sluice {

delivery_ledger::delivery_ledger(size_t source_count) {
    sources_.reserve(source_count);
    for (size_t i = 0; i < source_count; ++i) {
        sources_.push_back(std::make_unique<source_state>());
    }
}

delivery_ticket delivery_ledger::open(source_id source, uint32_t stream, int64_t position) {
    source_state& s = *sources_.at(source);
    std::lock_guard lock(s.mutex);
    stream_state& st = s.streams[stream];
    st.slots.emplace_back(position, false);
    ++s.open;
    return delivery_ticket{stream, st.next_ordinal++};
}

bool delivery_ledger::settle_locked(source_state& s, const delivery_ticket& ticket) {
    auto it = s.streams.find(ticket.stream);
    if (it == s.streams.end() || ticket.ordinal < it->second.front_ordinal ||
        ticket.ordinal >= it->second.next_ordinal) {
        throw error("delivery_ledger: a ticket settled twice or never opened");
    }
    stream_state& st = it->second;
    st.slots[ticket.ordinal - st.front_ordinal].second = true;
    bool moved = false;
    while (!st.slots.empty() && st.slots.front().second) {
        st.acked = st.slots.front().first;
        st.slots.pop_front();
        ++st.front_ordinal;
        --s.open;
        moved = true;
    }
    if (!moved) {
        return false;
    }
    if (!st.moved) {
        st.moved = true;
        s.moved.push_back(ticket.stream);
    }
    if (s.notified) {
        return false;
    }
    s.notified = true;
    return true;
}

void delivery_ledger::settle(source_id source, const delivery_ticket& ticket) {
    bool notify = false;
    {
        source_state& s = *sources_.at(source);
        std::lock_guard lock(s.mutex);
        notify = settle_locked(s, ticket);
    }
    if (notify && notify_) {
        notify_(source);
    }
}

void delivery_ledger::settle(const std::vector<std::pair<source_id, delivery_ticket>>& tickets) {
    // Each source is notified at most once (its `notified` flag), so no grouping is needed.
    for (const auto& [source, ticket] : tickets) {
        settle(source, ticket);
    }
}

size_t delivery_ledger::take(source_id source, std::vector<delivery>& out) {
    source_state& s = *sources_.at(source);
    std::lock_guard lock(s.mutex);
    s.notified = false;
    const size_t taken = s.moved.size();
    for (uint32_t stream : s.moved) {
        auto it = s.streams.find(stream);
        out.push_back(delivery{stream, it->second.acked});
        it->second.moved = false;
        if (it->second.slots.empty()) {
            s.streams.erase(it);
        }
    }
    s.moved.clear();
    return taken;
}

uint64_t delivery_ledger::open_count(source_id source) const {
    const source_state& s = *sources_.at(source);
    std::lock_guard lock(s.mutex);
    return s.open;
}

}  // namespace sluice
