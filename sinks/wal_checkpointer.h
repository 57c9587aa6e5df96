// wal_checkpointer: moves SQLite's WAL checkpoints off the writer's thread.
//
// By default SQLite checkpoints inside the COMMIT that takes the WAL past 1000 pages: the
// writer copies the WAL into the database and waits for two fsyncs before it can insert
// again. For a log sink that is most of the time spent on bytes. This class turns the
// automatic checkpoint off on the writer's connection (its wal_hook replaces it), and runs
// PASSIVE checkpoints on its own thread and connection while the writer goes on inserting.
//
// The WAL only starts over from its beginning when a write transaction begins after a
// checkpoint that copied every frame. A writer that never pauses would outrun that, so once
// the WAL holds `limit_bytes` the writer waits, before its next transaction, for one
// checkpoint pass that starts after it asked. If that pass copied everything, the next
// transaction restarts the WAL. If a reader pinned old frames and it could not, the writer
// goes on anyway (the WAL grows, as it would with SQLite's own checkpoints): the wait is
// bounded by one pass.
//
// Writeback. Left alone, the kernel writes the WAL and the database out in bursts: when the
// checkpointer syncs the WAL before a pass and the database after it. In between the disk
// idles while the writer fills the page cache, and on a disk-bound box the writer then waits
// at the limit for those syncs. A third thread asks the kernel to start writing both files'
// dirty pages (sync_file_range with SYNC_FILE_RANGE_WRITE, which does not wait) at most once
// per `writeback_interval` while they are being written, so the disk works all along and the
// syncs find little left. Durability still comes from SQLite's own fsyncs; this only changes
// when the bytes go (PostgreSQL's checkpoint_flush_after, RocksDB's bytes_per_sync).
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "common/sqlite_handle.h"

namespace sluice {

struct wal_checkpoint_config {
    uint64_t trigger_bytes = 4ull << 20;  // committed since the last pass: start a pass
    uint64_t limit_bytes = 64ull << 20;   // WAL size at which the writer waits for a pass
    // Start the kernel's writeback of the WAL and the database at most this often while they
    // are written; zero: never (no writeback thread).
    std::chrono::milliseconds writeback_interval{10};
};

struct wal_checkpoint_stats {
    uint64_t passes = 0;          // checkpoint passes run
    uint64_t writer_waits = 0;    // times the writer waited for a pass at the limit
    int64_t writer_wait_ns = 0;   // time it spent waiting
    int wal_frames = 0;           // pages in the WAL after the last commit
    int checkpointed_frames = 0;  // of those, pages copied into the database
    uint64_t writebacks = 0;      // times the writeback thread started the kernel's writeback
};

class wal_checkpointer {
public:
    // Opens a second connection to `path` and starts the thread. `writer` is the connection
    // that inserts; its automatic checkpoint is replaced. Throws sluice::error if the
    // connection cannot be opened or the database is not in WAL mode.
    wal_checkpointer(sqlite3* writer, const std::string& path, wal_checkpoint_config config = {});
    ~wal_checkpointer();
    wal_checkpointer(const wal_checkpointer&) = delete;
    wal_checkpointer& operator=(const wal_checkpointer&) = delete;

    // Writer's thread, before BEGIN: waits for a checkpoint pass if the WAL is at its limit.
    void before_transaction();
    // Any thread.
    wal_checkpoint_stats stats() const;

private:
    static int on_commit(void* self, sqlite3* db, const char* schema, int frames);
    void committed(int frames);
    void run();
    void write_back();
    bool pass_due() const;  // with mu_ held

    sqlite3* writer_;
    const std::string path_;
    const std::chrono::milliseconds writeback_interval_;
    int trigger_frames_ = 0;      // the config in pages of the database's page size
    int limit_frames_ = 0;
    sqlite_db db_;  // the checkpointer's own connection; its thread only after construction

    mutable std::mutex mu_;
    std::condition_variable cv_;            // the checkpointer's thread and the writer
    std::condition_variable writeback_cv_;  // the writeback thread
    bool stop_ = false;
    bool urgent_ = false;         // the writer waits: run a pass even below the trigger
    int frames_ = 0;              // WAL pages after the last commit
    int checkpointed_ = 0;        // pages of the current WAL copied into the database
    int frames_at_last_pass_ = 0; // frames_ when the last pass started
    uint64_t generation_ = 0;     // times the WAL started over, as commits showed it
    uint64_t passes_started_ = 0;
    uint64_t passes_done_ = 0;
    uint64_t writer_waits_ = 0;
    int64_t writer_wait_ns_ = 0;
    uint64_t writes_ = 0;         // commits and passes: each left dirty pages behind
    uint64_t written_back_ = 0;   // writes_ when the last writeback started
    uint64_t writebacks_ = 0;
    std::thread writeback_thread_;
    std::thread thread_;          // last two: start once everything above exists
};

}  // namespace sluice
