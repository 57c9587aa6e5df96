// checkpoint_store: the file sources' saved offsets in data_dir/checkpoints.db (SQLite, WAL),
// one row per source and file (device, inode, fingerprint). Statements are prepared once; the
// SQL lives in checkpoint_sql.h. Blocking (disk): used from one thread at a time, never the
// io thread's hot path. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/sqlite_handle.h"
#include "ingest/tail/file_identity.h"

namespace sluice {

struct checkpoint {
    file_identity id;
    std::string path;        // as the glob matched it
    int64_t offset = 0;      // bytes delivered
    int64_t updated_ns = 0;  // unix ns of the save
};

class checkpoint_store {
public:
    // Opens or creates the database; throws sluice::error naming the path.
    explicit checkpoint_store(const std::string& path);

    // Every checkpoint of `source`.
    std::vector<checkpoint> load(std::string_view source);
    // Saves `rows` of `source` in one transaction (insert or replace by device and inode);
    // throws sluice::error if it cannot, having saved none of them.
    void save(std::string_view source, const std::vector<checkpoint>& rows);
    // Forgets one file of `source`.
    void remove(std::string_view source, uint64_t dev, uint64_t ino);
    // Forgets every checkpoint not saved since `before_ns` (files gone for a while); returns
    // how many.
    uint64_t prune(int64_t before_ns);

    const std::string& path() const { return path_; }

private:
    void run(sqlite_stmt& stmt, std::string_view what);

    std::string path_;
    sqlite_db db_;
    sqlite_stmt select_;
    sqlite_stmt upsert_;
    sqlite_stmt remove_;
    sqlite_stmt prune_;
    sqlite_stmt begin_;
    sqlite_stmt commit_;
    sqlite_stmt rollback_;
};

}  // namespace sluice
