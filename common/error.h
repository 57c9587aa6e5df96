// sluice::error: the one exception type for setup failures (config, bind, open).
// Hot paths never throw; they return status values instead.
#pragma once

#include <stdexcept>
#include <string>

namespace sluice {

class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Throws sluice::error with `what` and the text of errno value `err`.
[[noreturn]] void throw_errno(const std::string& what, int err);

}  // namespace sluice
