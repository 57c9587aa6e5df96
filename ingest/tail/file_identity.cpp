#include "ingest/tail/file_identity.h"

#include <unistd.h>

#include <cerrno>

namespace sluice {

fingerprint fingerprint_of(std::string_view bytes) {
    uint64_t h = fnv1a_basis;
    for (char c : bytes) {
        h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    }
    return fingerprint{static_cast<uint32_t>(bytes.size()), h};
}

fingerprint read_fingerprint(int fd, uint32_t length) {
    char buf[fingerprint_max_bytes];
    if (length > fingerprint_max_bytes) {
        length = fingerprint_max_bytes;
    }
    size_t got = 0;
    while (got < length) {
        const ssize_t n = ::pread(fd, buf + got, length - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += static_cast<size_t>(n);
    }
    return fingerprint_of(std::string_view(buf, got));
}

bool starts_with(int fd, const fingerprint& fp) {
    const fingerprint now = read_fingerprint(fd, fp.length);
    return now == fp;
}

}  // namespace sluice
