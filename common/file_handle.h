// file_handle: an owned POSIX file descriptor (RAII). Move-only; not thread-safe.
#pragma once

#include <unistd.h>

#include <utility>

namespace sluice {

class file_handle {
public:
    file_handle() = default;
    explicit file_handle(int fd) : fd_(fd) {}
    file_handle(file_handle&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    file_handle& operator=(file_handle&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    file_handle(const file_handle&) = delete;
    file_handle& operator=(const file_handle&) = delete;
    ~file_handle() { reset(); }

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    void reset() {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

private:
    int fd_ = -1;
};

}  // namespace sluice
