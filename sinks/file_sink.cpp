#include "sinks/file_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>

#include <spdlog/spdlog.h>

#include "sinks/event_json.h"

namespace sluice {

namespace {

constexpr size_t max_open_files = 64;

// Failures that will not pass by themselves: someone has to change the path or permissions.
bool permanent_errno(int err) {
    return err == EISDIR || err == ENOTDIR || err == EACCES || err == EPERM || err == ELOOP ||
           err == ENAMETOOLONG || err == EEXIST;
}

// Drops the first `bytes` of `iov` (written by an earlier attempt).
void skip_bytes(std::vector<iovec>& iov, uint64_t bytes) {
    size_t first = 0;
    while (first < iov.size() && bytes >= iov[first].iov_len) {
        bytes -= iov[first].iov_len;
        ++first;
    }
    iov.erase(iov.begin(), iov.begin() + static_cast<std::ptrdiff_t>(first));
    if (!iov.empty() && bytes > 0) {
        iov.front().iov_base = static_cast<char*>(iov.front().iov_base) + bytes;
        iov.front().iov_len -= bytes;
    }
}

// Writes every iovec fully, continuing after short writes; adds what went out to `written`.
// 0 or an errno.
int write_all(int fd, std::vector<iovec>& iov, uint64_t& written) {
    size_t first = 0;
    while (first < iov.size()) {
        const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
        const ssize_t n = ::writev(fd, iov.data() + first, count);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        written += static_cast<uint64_t>(n);
        auto left = static_cast<size_t>(n);
        while (first < iov.size() && left >= iov[first].iov_len) {
            left -= iov[first].iov_len;
            ++first;
        }
        if (left > 0) {
            iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
            iov[first].iov_len -= left;
        }
    }
    return 0;
}

}  // namespace

std::string render_path_template(const std::string& pattern, int64_t unix_ns,
                                 const std::string& source) {
    std::string with_source;
    with_source.reserve(pattern.size());
    for (size_t i = 0; i < pattern.size();) {
        if (pattern.compare(i, 8, "{source}") == 0) {
            with_source += source;
            i += 8;
        } else {
            with_source += pattern[i++];
        }
    }
    if (with_source.find('%') == std::string::npos) {
        return with_source;
    }
    const auto t = static_cast<time_t>(unix_ns / 1'000'000'000);
    std::tm tm{};
    localtime_r(&t, &tm);
    std::string out(with_source.size() * 2 + 64, '\0');
    for (;;) {
        const size_t n = std::strftime(out.data(), out.size(), with_source.c_str(), &tm);
        if (n != 0 || out.size() > 4096) {
            out.resize(n);
            return out;
        }
        out.resize(out.size() * 2);
    }
}

file_sink::file_sink(std::string name, batch_config batch, file_sink_config config,
                     std::filesystem::path data_dir, std::vector<std::string> source_names)
    : sink(std::move(name), batch),
      config_(std::move(config)),
      data_dir_(std::move(data_dir)),
      source_names_(std::move(source_names)),
      path_has_time_(config_.path.find('%') != std::string::npos),
      path_has_source_(config_.path.find("{source}") != std::string::npos) {}

std::string file_sink::render_path(const batch& b) const {
    if (!path_has_time_ && !path_has_source_) {
        return config_.path;
    }
    return render_path_template(config_.path, b.received_ns, source_label(b, source_names_));
}

const file_sink::open_file* file_sink::file_for(const std::string& rendered, int& err,
                                                std::string& what) {
    std::filesystem::path path = rendered;
    if (path.is_relative()) {
        path = data_dir_ / path;
    }
    auto it = files_.find(rendered);
    if (it != files_.end()) {
        struct stat st{};
        if (::stat(path.c_str(), &st) == 0 && st.st_dev == it->second.dev &&
            st.st_ino == it->second.ino) {
            return &it->second;
        }
        spdlog::warn("Sink {}: {} was removed or replaced; opening it again.", name(),
                     path.string());
        files_.erase(it);
    }
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) {
        err = ec.value();
        what = "cannot create directory " + path.parent_path().string();
        return nullptr;
    }
    open_file f;
    f.fd = file_handle(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    struct stat st{};
    if (!f.fd || ::fstat(f.fd.get(), &st) != 0) {
        err = errno;
        what = "cannot open " + path.string();
        return nullptr;
    }
    f.dev = st.st_dev;
    f.ino = st.st_ino;
    return &files_.insert_or_assign(rendered, std::move(f)).first->second;
}

void file_sink::append_json(std::string& out, const batch& b) const {
    const std::string& source = source_label(b, source_names_);
    for (size_t i = 0; i < b.event_count(); ++i) {
        append_event_json(out, b, i, source);
        out += '\n';
    }
}

write_status file_sink::write_impl(std::span<const batch_ptr> batches) {
    if (files_.size() >= max_open_files) {
        files_.clear();  // templated paths moved on (a new day): drop the old handles
    }
    // Consecutive batches bound for the same file form a group, written in one writev.
    // progress(): `batch` is the first batch of the group being written, `done` the bytes of
    // it already written by an earlier attempt.
    resume_point& at = progress();
    std::vector<iovec> iov;
    for (size_t i = at.batch; i < batches.size();) {
        const std::string path = render_path(*batches[i]);
        size_t j = i;
        iov.clear();
        json_buffer_.clear();
        for (; j < batches.size() && (j == i || render_path(*batches[j]) == path); ++j) {
            if (config_.format == file_format::text) {
                const auto text = batches[j]->text();
                iov.push_back({const_cast<char*>(text.data()), text.size()});
            } else {
                append_json(json_buffer_, *batches[j]);
            }
        }
        if (config_.format == file_format::json) {
            iov.push_back({json_buffer_.data(), json_buffer_.size()});
        }
        int err = 0;
        std::string what;
        const open_file* file = file_for(path, err, what);
        if (file == nullptr) {
            log_failure(what + ": " + std::strerror(err) + "; will retry.");
            return permanent_errno(err) ? write_status::permanent : write_status::retry;
        }
        if (at.done > 0 && (file->dev != partial_dev_ || file->ino != partial_ino_)) {
            at.done = 0;  // the part written went to a file that is gone: write it all here
        }
        partial_dev_ = file->dev;
        partial_ino_ = file->ino;
        remember_size(path, *file);
        skip_bytes(iov, at.done);
        err = write_all(file->fd.get(), iov, at.done);
        if (err == 0 && config_.fsync && ::fsync(file->fd.get()) != 0) {
            err = errno;
        }
        if (err != 0) {
            log_failure("cannot write " + path + ": " + std::strerror(err) + "; will retry.");
            return permanent_errno(err) ? write_status::permanent : write_status::retry;
        }
        at.batch = j;
        at.done = 0;
        i = j;
    }
    touched_.clear();
    return write_status::ok;
}

void file_sink::remember_size(const std::string& rendered, const open_file& file) {
    for (const auto& t : touched_) {
        if (t.dev == file.dev && t.ino == file.ino) {
            return;  // known since an earlier group or attempt: keep the first size
        }
    }
    struct stat st{};
    if (::fstat(file.fd.get(), &st) == 0) {
        touched_.push_back({rendered, file.dev, file.ino, st.st_size});
    }
}

void file_sink::abandon_impl() {
    for (const auto& t : touched_) {
        auto it = files_.find(t.rendered);
        if (it == files_.end() || it->second.dev != t.dev || it->second.ino != t.ino) {
            continue;  // closed or replaced since: nothing of ours to take back there
        }
        if (::ftruncate(it->second.fd.get(), t.size_before) != 0) {
            spdlog::error("Sink {}: cannot cut {} back to {} bytes at exit: {}", name(),
                          t.rendered, t.size_before, std::strerror(errno));
        }
    }
    touched_.clear();
}

}  // namespace sluice
