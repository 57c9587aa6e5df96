// sqlite_sink: inserts events into a SQLite table (schema in SPEC.md), one transaction per gathered
// batch, WAL journal, checkpoints on a thread of their own (wal_checkpointer.h). SQLITE_BUSY,
// locked and I/O errors roll the transaction back and retry, so a batch is never half-written or
// written twice. Before each transaction the sink checks that its path still names the database
// it has open: one deleted or replaced under it is closed and a fresh one made at the path. After
// an I/O, read-only or cannot-open error the database is opened again before the retry (a
// filesystem remounted read-only and back). Sink thread only.
#pragma once

#include <sys/types.h>

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
    // Opens (creates) the database, its table and statements and the checkpointer. Throws
    // sluice::error.
    void open_database();
    void close_database();
    // True when the path no longer names the open database (deleted, replaced).
    bool database_replaced() const;
    // Makes sure a usable database is open before a transaction; false (logged) if not.
    bool ensure_open();
    // Inserts the events of a decoded batch, binding every column; the last SQLite code.
    int insert_decoded(const batch& b);
    // Puts the decoded columns back to NULL for plain-text batches.
    void clear_decoded_columns();

    sqlite_sink_config config_;
    std::filesystem::path path_;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    bool reopen_ = false;  // an error that a fresh connection may cure
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
