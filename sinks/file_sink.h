// file_sink: appends events to files named by a path template (strftime and {source}),
// as text (the line and '\n', written straight from the batch buffer) or JSON lines.
// All work happens on the sink's thread; request_reopen() (SIGHUP) is the only cross-thread call.
// Before each write a cached file is checked against its path: a file whose directory was
// removed, or that was renamed away, is opened again at the path (directories made). A write
// that fails part way (disk full) records how many bytes went out; the retry writes the rest,
// so no event is written twice or cut.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/file_handle.h"
#include "sinks/sink.h"

namespace sluice {

enum class file_format { text, json };

struct file_sink_config {
    std::string path = "logs/sluice.log";  // strftime and {source}; relative to data_dir
    file_format format = file_format::text;
    bool fsync = false;                     // fsync each file after every batch
};

class file_sink final : public sink {
public:
    // `source_names[id]` names each source for {source}; relative paths resolve under data_dir.
    file_sink(std::string name, batch_config batch, file_sink_config config,
              std::filesystem::path data_dir, std::vector<std::string> source_names);

    ~file_sink() override { stop_thread(); }

protected:
    write_status write_impl(std::span<const batch_ptr> batches) override;
    void reopen_impl() override { files_.clear(); }
    void abandon_impl() override;

private:
    // Renders the template for one batch.
    std::string render_path(const batch& b) const;
    struct open_file {
        file_handle fd;
        dev_t dev = 0;
        ino_t ino = 0;
    };
    // The open file for a rendered path, opened (and its directories made) on first use, or
    // again when the path no longer names it. Null on failure, with `err` and `what` set.
    const open_file* file_for(const std::string& rendered, int& err, std::string& what);
    void append_json(std::string& out, const batch& b) const;
    // Notes the size of `file` before the current gathered batches first went to it.
    void remember_size(const std::string& rendered, const open_file& file);

    file_sink_config config_;
    std::filesystem::path data_dir_;
    std::vector<std::string> source_names_;
    bool path_has_time_;
    bool path_has_source_;
    std::map<std::string, open_file> files_;
    std::string json_buffer_;
    // The file that holds the first progress().done bytes of the current group.
    dev_t partial_dev_ = 0;
    ino_t partial_ino_ = 0;
    // Each file the current gathered batches went to, and its size before they did: what
    // abandon_impl() cuts back to. Cleared after a good write.
    struct touched_file {
        std::string rendered;
        dev_t dev;
        ino_t ino;
        off_t size_before;
    };
    std::vector<touched_file> touched_;
};

// Expands strftime conversions (local time, as logrotate users expect) and {source} in
// `pattern` for the given unix time.
std::string render_path_template(const std::string& pattern, int64_t unix_ns,
                                 const std::string& source);

}  // namespace sluice
