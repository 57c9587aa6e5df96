// delivery_ledger: delivery acknowledgements. For each source and each stream of its own (a
// tailed file, later a NATS subscription or a disk segment), how far its batches have been
// settled (written by every sink that takes them, or dropped), in push order per stream, so a
// stream is never held back by another stream's or another source's batches.
// The queue opens a ticket per positioned batch and settles it; the source takes what moved.
// Thread-safe; one mutex per source, never held while calling out.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "queue/event.h"

namespace sluice {

// One acknowledgement: every batch of `stream` up to the one that carried `position` has been
// settled.
struct delivery {
    uint32_t stream = 0;
    int64_t position = -1;
};

// Names one open batch: its stream and its place among that stream's batches.
struct delivery_ticket {
    uint32_t stream = 0;
    uint64_t ordinal = 0;
};

class delivery_ledger {
public:
    explicit delivery_ledger(size_t source_count);
    delivery_ledger(const delivery_ledger&) = delete;
    delivery_ledger& operator=(const delivery_ledger&) = delete;

    // Called without any lock held, at most once per source until it calls take(): the source
    // has deliveries to take. Runs on whichever thread settled the batch (a sink's, or the
    // pushing one), so it should only hand over (e.g. `asio::post` to the source's loop).
    // Set before the first open().
    void set_notify(std::function<void(source_id)> cb) { notify_ = std::move(cb); }

    // Registers a batch of `source`'s `stream` that carries `position`; tickets of one
    // stream must be opened in the order its batches are pushed. Never blocks for long.
    delivery_ticket open(source_id source, uint32_t stream, int64_t position);
    // Marks the ticket's batch settled; acknowledges every settled batch at the front of its
    // stream, and notifies the source if it had nothing waiting to be taken.
    void settle(source_id source, const delivery_ticket& ticket);
    // Settles several tickets of possibly several sources, notifying each source at most once.
    void settle(const std::vector<std::pair<source_id, delivery_ticket>>& tickets);

    // Appends, for every stream of `source` whose acknowledged position moved since the last
    // take, its newest acknowledged position; returns how many. A stream with nothing left
    // open is forgotten once taken. Any thread; typically the source's own.
    size_t take(source_id source, std::vector<delivery>& out);
    // Batches opened and not yet acknowledged, all streams of `source` together.
    uint64_t open_count(source_id source) const;

private:
    struct stream_state {
        uint64_t front_ordinal = 0;  // ordinal of slots.front()
        uint64_t next_ordinal = 0;
        std::deque<std::pair<int64_t, bool>> slots;  // position, settled
        int64_t acked = -1;
        bool moved = false;  // acked changed since the last take
    };
    struct source_state {
        mutable std::mutex mutex;
        std::unordered_map<uint32_t, stream_state> streams;
        std::vector<uint32_t> moved;  // streams with moved == true
        uint64_t open = 0;
        bool notified = false;  // notify_ called, take() not yet
    };
    // Lock held. Returns true when the source is to be notified.
    bool settle_locked(source_state& s, const delivery_ticket& ticket);

    std::vector<std::unique_ptr<source_state>> sources_;
    std::function<void(source_id)> notify_;
};

}  // namespace sluice
