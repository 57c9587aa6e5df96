#include "ingest/tail/checkpoint_writer.h"

#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/thread_name.h"

namespace sluice {

namespace {

// Rows of files not seen for this long are pruned (a file rotated away and deleted).
constexpr int64_t prune_after_ns = int64_t{7} * 24 * 3600 * 1'000'000'000;

}  // namespace

checkpoint_writer::checkpoint_writer(const std::string& db_path, std::string source)
    : source_(std::move(source)), store_(db_path) {
    loaded_ = store_.load(source_);
    const uint64_t pruned = store_.prune(unix_now_ns() - prune_after_ns);
    if (pruned > 0) {
        spdlog::info("Checkpoints: pruned {} files not seen for 7 days.", pruned);
    }
    thread_ = std::thread([this] {
        set_thread_name("checkpoints");
        run();
    });
}

checkpoint_writer::~checkpoint_writer() { stop(); }

void checkpoint_writer::post(const checkpoint& c) {
    {
        std::lock_guard lock(mutex_);
        pending_[key{c.id.dev, c.id.ino}] = c;
    }
    wake_.notify_one();
}

void checkpoint_writer::forget(uint64_t dev, uint64_t ino) {
    {
        std::lock_guard lock(mutex_);
        pending_.erase(key{dev, ino});
        forgotten_.emplace_back(dev, ino);
    }
    wake_.notify_one();
}

uint64_t checkpoint_writer::errors() const {
    std::lock_guard lock(mutex_);
    return errors_;
}

void checkpoint_writer::save_round(std::unique_lock<std::mutex>& lock) {
    std::vector<checkpoint> rows;
    for (auto& [k, c] : pending_) {
        rows.push_back(std::move(c));
    }
    pending_.clear();
    std::vector<key> gone;
    gone.swap(forgotten_);
    lock.unlock();
    try {
        const int64_t now = unix_now_ns();
        for (auto& c : rows) {
            c.updated_ns = now;
        }
        store_.save(source_, rows);
        for (const auto& [dev, ino] : gone) {
            store_.remove(source_, dev, ino);
        }
        lock.lock();
    } catch (const error& e) {
        lock.lock();
        ++errors_;
        // Put back what was not saved, unless a newer offset came meanwhile.
        for (auto& c : rows) {
            pending_.try_emplace(key{c.id.dev, c.id.ino}, std::move(c));
        }
        forgotten_.insert(forgotten_.end(), gone.begin(), gone.end());
        uint64_t suppressed = 0;
        if (limiter_.should_log(suppressed)) {
            spdlog::error("Checkpoints of source {}: {} ({} more failures); retrying.", source_,
                          e.what(), suppressed);
        }
    }
}

void checkpoint_writer::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || !pending_.empty() || !forgotten_.empty(); });
        if (stopping_) {
            break;
        }
        // At once, so that what a crash reads twice is only what was in flight; what is
        // delivered while a round is saved is coalesced into the next one.
        save_round(lock);
    }
    if (!pending_.empty() || !forgotten_.empty()) {
        save_round(lock);
    }
}

void checkpoint_writer::stop() noexcept {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && !thread_.joinable()) {
            return;
        }
        stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) {
        thread_.join();
    }
}

}  // namespace sluice
