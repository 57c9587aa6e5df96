// checkpoint_writer: saves a file source's offsets off the io thread. The source posts the
// newest delivered offset of each file; a thread of its own saves them at once, one
// transaction a round, coalescing what arrives while a round is being saved, so a slow disk
// never stalls reading and a burst of deliveries costs one write. post() and forget() never block on the disk.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/log_limiter.h"
#include "ingest/tail/checkpoint_store.h"

namespace sluice {

class checkpoint_writer {
public:
    // Opens the store (throws sluice::error) and starts the thread.
    checkpoint_writer(const std::string& db_path, std::string source);
    ~checkpoint_writer();
    checkpoint_writer(const checkpoint_writer&) = delete;
    checkpoint_writer& operator=(const checkpoint_writer&) = delete;

    // What the store held for this source when it opened.
    const std::vector<checkpoint>& loaded() const { return loaded_; }
    // Any thread: the newest offset of one file, saved in the next round.
    void post(const checkpoint& c);
    // Any thread: the file is gone; its row goes in the next round.
    void forget(uint64_t dev, uint64_t ino);
    // Saves everything posted, then ends the thread. Idempotent.
    void stop() noexcept;
    // Rounds that failed (logged, retried with the next round).
    uint64_t errors() const;

private:
    using key = std::pair<uint64_t, uint64_t>;  // dev, ino
    void run();
    void save_round(std::unique_lock<std::mutex>& lock);

    std::string source_;
    checkpoint_store store_;
    std::vector<checkpoint> loaded_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::map<key, checkpoint> pending_;
    std::vector<key> forgotten_;
    bool stopping_ = false;
    uint64_t errors_ = 0;
    log_limiter limiter_{5'000'000'000};
    std::thread thread_;
};

}  // namespace sluice
