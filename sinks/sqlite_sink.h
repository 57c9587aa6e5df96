// sqlite_sink: inserts events into a SQLite table (schema in SPEC.md), one transaction per gathered
// batch, WAL journal, checkpoints on a thread of their own (wal_checkpointer.h). SQLITE_BUSY,
// locked and I/O errors roll the transaction back and retry, so a batch is never half-written or
// written twice. Sink thread only.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "sinks/sink.h"
#include "common/sqlite_handle.h"
#include "sinks/wal_checkpointer.h"

namespace sluice {

struct sqlite_sink_config {
    std::string path = "logs.db";   // relative to data_dir
    std::string table = "logs";     // [A-Za-z_][A-Za-z0-9_]*
    bool fts = false;               // an FTS5 index on message
    std::chrono::milliseconds busy_timeout{1000};  // SQLite's wait for a lock per statement
};

class sqlite_sink final : public sink {
public:
    // Opens (creates) the database and table; throws sluice::error if it cannot.
    sqlite_sink(std::string name, batch_config batch, sqlite_sink_config config,
                std::filesystem::path data_dir, std::vector<std::string> source_names,
                retry_config retry = {});

    ~sqlite_sink() override;

    // Null when SQLite checkpoints on its own (the checkpointer could not start).
    const wal_checkpointer* checkpointer() const { return checkpointer_.get(); }

protected:
    write_status write_impl(std::span<const batch_ptr> batches) override;

private:
    // Inserts the events of a decoded batch, binding every column; the last SQLite code.
    int insert_decoded(const batch& b);
    // Puts the decoded columns back to NULL for plain-text batches.
    void clear_decoded_columns();

    sqlite_sink_config config_;
    bool decoded_bound_ = false;
    std::vector<std::string> source_names_;
    sqlite_db db_;
    sqlite_stmt begin_;
    sqlite_stmt commit_;
    sqlite_stmt rollback_;
    sqlite_stmt insert_;
    std::unique_ptr<wal_checkpointer> checkpointer_;
};

// True for a valid unquoted SQL identifier we accept as a table name.
bool valid_table_name(const std::string& name);

}  // namespace sluice
