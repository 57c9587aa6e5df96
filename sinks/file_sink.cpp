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

// Writes every iovec fully, continuing after short writes. 0 or an errno.
int write_all(int fd, std::vector<iovec>& iov) {
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
    return render_path_template(config_.path, b.received_ns, source_names_.at(b.source()));
}

const file_handle* file_sink::file_for(const std::string& rendered) {
    auto it = files_.find(rendered);
    if (it != files_.end()) {
        return &it->second;
    }
    std::filesystem::path path = rendered;
    if (path.is_relative()) {
        path = data_dir_ / path;
    }
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_failure("cannot open " + path.string() + ": " + std::strerror(errno) +
                    "; will retry.");
        return nullptr;
    }
    return &files_.emplace(rendered, file_handle(fd)).first->second;
}

void file_sink::append_json(std::string& out, const batch& b) const {
    const std::string& source = source_names_.at(b.source());
    for (size_t i = 0; i < b.event_count(); ++i) {
        append_event_json(out, b, i, source);
        out += '\n';
    }
}

write_status file_sink::write_impl(std::span<const batch_ptr> batches) {
    struct written {
        int fd;
        off_t size_before;
    };
    if (files_.size() >= max_open_files) {
        files_.clear();  // templated paths moved on (a new day): drop the old handles
    }
    std::vector<written> touched;
    std::vector<iovec> iov;
    int failure = 0;
    std::string failed_path;
    // Consecutive batches bound for the same file go out in one writev.
    for (size_t i = 0; i < batches.size() && failure == 0;) {
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
        i = j;
        const file_handle* file = file_for(path);
        if (file == nullptr) {
            failure = EIO;
            failed_path = path;
            break;
        }
        struct stat st{};
        if (::fstat(file->get(), &st) != 0) {
            failure = errno;
            failed_path = path;
            break;
        }
        touched.push_back({file->get(), st.st_size});
        failure = write_all(file->get(), iov);
        if (failure == 0 && config_.fsync && ::fsync(file->get()) != 0) {
            failure = errno;
        }
        if (failure != 0) {
            failed_path = path;
        }
    }
    if (failure == 0) {
        return write_status::ok;
    }
    // Take back what this attempt appended, so the retry writes each event once.
    for (const auto& w : touched) {
        if (::ftruncate(w.fd, w.size_before) != 0) {
            log_failure("cannot truncate " + failed_path + " back after a failed write: " +
                        std::strerror(errno));
        }
    }
    log_failure("cannot write " + failed_path + ": " + std::strerror(failure) + "; will retry.");
    return write_status::retry;
}

}  // namespace sluice
