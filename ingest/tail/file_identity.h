// file_identity: how the file source knows a file across renames, restarts and inode reuse:
// device, inode, and a fingerprint (64-bit FNV-1a) of its first bytes, up to 256. A file
// shorter than that is fingerprinted over what it has, and again as it grows.
// Plain functions on an open descriptor; they block on the read, like any regular-file read.
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice {

inline constexpr uint32_t fingerprint_max_bytes = 256;
inline constexpr uint64_t fnv1a_basis = 1469598103934665603ull;

struct fingerprint {
    uint32_t length = 0;  // bytes covered, up to fingerprint_max_bytes
    uint64_t hash = fnv1a_basis;  // FNV-1a of those bytes

    bool operator==(const fingerprint&) const = default;
};

struct file_identity {
    uint64_t dev = 0;
    uint64_t ino = 0;
    fingerprint fp;
};

fingerprint fingerprint_of(std::string_view bytes);
// The fingerprint of the file's first min(size, `length`) bytes, read with pread; length 0
// when the read fails.
fingerprint read_fingerprint(int fd, uint32_t length = fingerprint_max_bytes);
// Whether the file at `fd` still starts with the bytes `fp` was taken of: false when it is now
// shorter than them, or they changed (a copytruncate and rewrite, or a reused inode).
bool starts_with(int fd, const fingerprint& fp);

}  // namespace sluice
