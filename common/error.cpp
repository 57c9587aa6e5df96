#include "common/error.h"

#include <cstring>

#include <fmt/format.h>

namespace sluice {

void throw_errno(const std::string& what, int err) {
    throw error(fmt::format("{}: {}", what, std::strerror(err)));
}

}  // namespace sluice
