#include "sinks/sqlite_sink.h"

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "sinks/sqlite_sql.h"

namespace sluice {

namespace {

std::string with_table(std::string_view sql, const std::string& table) {
    std::string out(sql);
    for (size_t at = out.find("{table}"); at != std::string::npos; at = out.find("{table}", at)) {
        out.replace(at, 7, table);
        at += table.size();
    }
    return out;
}

}  // namespace

bool valid_table_name(const std::string& name) {
    if (name.empty() || name.size() > 64 || std::isdigit(static_cast<unsigned char>(name[0]))) {
        return false;
    }
    for (char c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') {
            return false;
        }
    }
    return true;
}

sqlite_sink::sqlite_sink(std::string name, batch_config batch, sqlite_sink_config config,
                         std::filesystem::path data_dir, std::vector<std::string> source_names,
                         retry_config retry)
    : sink(std::move(name), batch, retry),
      config_(std::move(config)),
      source_names_(std::move(source_names)) {
    if (!valid_table_name(config_.table)) {
        throw error("sink " + this->name() + ": invalid table name '" + config_.table + "'");
    }
    std::filesystem::path path = config_.path;
    if (path.is_relative()) {
        path = data_dir / path;
    }
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    db_ = sqlite_db(path.string());
    sqlite3_busy_timeout(db_.get(), static_cast<int>(config_.busy_timeout.count()));
    const std::string what = "sink " + this->name() + ": " + path.string();
    db_.exec(sqlite_sql::pragmas, what);
    db_.exec(with_table(sqlite_sql::create_table, config_.table), what);
    if (config_.fts) {
        db_.exec(with_table(sqlite_sql::create_fts, config_.table), what);
    }
    begin_ = db_.prepare(sqlite_sql::begin);
    commit_ = db_.prepare(sqlite_sql::commit);
    rollback_ = db_.prepare(sqlite_sql::rollback);
    insert_ = db_.prepare(with_table(sqlite_sql::insert, config_.table));
    spdlog::info("Sink {} writing to SQLite {} table {}.", this->name(), path.string(),
                 config_.table);
}

write_status sqlite_sink::write_impl(std::span<const batch_ptr> batches) {
    int rc = begin_.run();
    if (rc != SQLITE_DONE) {
        log_failure("cannot begin a transaction: " + db_.last_error() + "; will retry.");
        return sqlite_transient(rc) ? write_status::retry : write_status::fatal;
    }
    sqlite3_stmt* insert = insert_.get();
    for (const auto& b : batches) {
        const std::string& source = source_names_.at(b->source());
        sqlite3_bind_int64(insert, sqlite_sql::received_at, b->received_ns);
        sqlite3_bind_text(insert, sqlite_sql::source, source.data(),
                          static_cast<int>(source.size()), SQLITE_STATIC);
        if (b->host.empty()) {
            sqlite3_bind_null(insert, sqlite_sql::host);
        } else {
            sqlite3_bind_text(insert, sqlite_sql::host, b->host.data(),
                              static_cast<int>(b->host.size()), SQLITE_STATIC);
        }
        const char* base = b->buffer().data();
        for (const auto& e : b->events()) {
            sqlite3_bind_text(insert, sqlite_sql::message, base + e.offset,
                              static_cast<int>(e.length), SQLITE_STATIC);
            rc = sqlite3_step(insert);
            sqlite3_reset(insert);
            if (rc != SQLITE_DONE) {
                break;
            }
        }
        if (rc != SQLITE_DONE) {
            break;
        }
    }
    if (rc == SQLITE_DONE) {
        rc = commit_.run();
    }
    if (rc == SQLITE_DONE) {
        return write_status::ok;
    }
    const std::string message = db_.last_error();
    // Undo whatever part of the batch was inserted, so the retry writes it exactly once.
    if (!sqlite3_get_autocommit(db_.get())) {
        rollback_.run();
    }
    log_failure("write failed: " + message + "; will retry.");
    return sqlite_transient(rc) ? write_status::retry : write_status::fatal;
}

}  // namespace sluice
