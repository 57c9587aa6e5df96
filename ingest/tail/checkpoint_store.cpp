#include "ingest/tail/checkpoint_store.h"

#include "common/error.h"
#include "ingest/tail/checkpoint_sql.h"

namespace sluice {

namespace {

void bind_text(sqlite3_stmt* s, int i, std::string_view text) {
    sqlite3_bind_text(s, i, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

// Device and inode numbers are unsigned 64-bit; SQLite stores them bit for bit as signed.
int64_t as_signed(uint64_t v) { return static_cast<int64_t>(v); }
uint64_t as_unsigned(int64_t v) { return static_cast<uint64_t>(v); }

}  // namespace

checkpoint_store::checkpoint_store(const std::string& path) : path_(path), db_(path) {
    db_.exec(checkpoint_sql::pragmas, "cannot configure checkpoint database " + path);
    db_.exec(checkpoint_sql::create_table, "cannot create checkpoint table in " + path);
    select_ = db_.prepare(checkpoint_sql::select_source);
    upsert_ = db_.prepare(checkpoint_sql::upsert);
    remove_ = db_.prepare(checkpoint_sql::remove);
    prune_ = db_.prepare(checkpoint_sql::prune);
    begin_ = db_.prepare(checkpoint_sql::begin);
    commit_ = db_.prepare(checkpoint_sql::commit);
    rollback_ = db_.prepare(checkpoint_sql::rollback);
}

void checkpoint_store::run(sqlite_stmt& stmt, std::string_view what) {
    const int rc = stmt.run();
    if (rc != SQLITE_DONE) {
        throw error("checkpoints " + path_ + ": cannot " + std::string(what) + ": " +
                    db_.last_error());
    }
}

std::vector<checkpoint> checkpoint_store::load(std::string_view source) {
    std::vector<checkpoint> out;
    sqlite3_stmt* s = select_.get();
    bind_text(s, 1, source);
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        checkpoint c;
        c.id.dev = as_unsigned(sqlite3_column_int64(s, 0));
        c.id.ino = as_unsigned(sqlite3_column_int64(s, 1));
        c.id.fp.length = static_cast<uint32_t>(sqlite3_column_int64(s, 2));
        c.id.fp.hash = as_unsigned(sqlite3_column_int64(s, 3));
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(s, 4));
        c.path = text != nullptr ? text : "";
        c.offset = sqlite3_column_int64(s, 5);
        c.updated_ns = sqlite3_column_int64(s, 6);
        out.push_back(std::move(c));
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE) {
        throw error("checkpoints " + path_ + ": cannot read: " + db_.last_error());
    }
    return out;
}

void checkpoint_store::save(std::string_view source, const std::vector<checkpoint>& rows) {
    if (rows.empty()) {
        return;
    }
    run(begin_, "begin a save");
    try {
        sqlite3_stmt* s = upsert_.get();
        for (const auto& c : rows) {
            bind_text(s, 1, source);
            sqlite3_bind_int64(s, 2, as_signed(c.id.dev));
            sqlite3_bind_int64(s, 3, as_signed(c.id.ino));
            sqlite3_bind_int64(s, 4, c.id.fp.length);
            sqlite3_bind_int64(s, 5, as_signed(c.id.fp.hash));
            bind_text(s, 6, c.path);
            sqlite3_bind_int64(s, 7, c.offset);
            sqlite3_bind_int64(s, 8, c.updated_ns);
            run(upsert_, "save an offset");
        }
        run(commit_, "commit a save");
    } catch (...) {
        rollback_.run();
        throw;
    }
}

void checkpoint_store::remove(std::string_view source, uint64_t dev, uint64_t ino) {
    sqlite3_stmt* s = remove_.get();
    bind_text(s, 1, source);
    sqlite3_bind_int64(s, 2, as_signed(dev));
    sqlite3_bind_int64(s, 3, as_signed(ino));
    run(remove_, "forget a file");
}

uint64_t checkpoint_store::prune(int64_t before_ns) {
    sqlite3_bind_int64(prune_.get(), 1, before_ns);
    run(prune_, "prune");
    return static_cast<uint64_t>(sqlite3_changes(db_.get()));
}

}  // namespace sluice
