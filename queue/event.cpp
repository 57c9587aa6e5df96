#include "queue/event.h"

#include <algorithm>

namespace sluice {

void byte_buffer::reserve(size_t capacity) {
    if (capacity <= capacity_) {
        return;
    }
    auto fresh = std::make_unique_for_overwrite<char[]>(capacity);
    if (size_ != 0) {
        std::memcpy(fresh.get(), data_.get(), size_);
    }
    data_ = std::move(fresh);
    capacity_ = capacity;
}

void byte_buffer::shrink_to_fit() {
    if (size_ == capacity_) {
        return;
    }
    std::unique_ptr<char[]> fresh;
    if (size_ != 0) {
        fresh = std::make_unique_for_overwrite<char[]>(size_);
        std::memcpy(fresh.get(), data_.get(), size_);
    }
    data_ = std::move(fresh);
    capacity_ = size_;
}

uint64_t batch::payload_bytes() const {
    uint64_t total = 0;
    for (const auto& e : events_) {
        total += e.length;
    }
    return total;
}

void batch::shrink_if_sparse() {
    if (buffer_.size() * 2 < buffer_.capacity()) {
        buffer_.shrink_to_fit();
    }
    if (events_.size() * 2 < events_.capacity()) {
        events_.shrink_to_fit();
    }
}

}  // namespace sluice
