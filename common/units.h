// Parsing and printing of sizes ("64MiB") and durations ("200ms") as used in the config.
// Pure functions; safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

// "64MiB", "4KiB", "1GiB", "10MB", "512B" or a plain number of bytes. nullopt when malformed.
std::optional<uint64_t> parse_size(std::string_view text);

// "200ms", "1s", "5m", "1h", "250us", "10ns". nullopt when malformed or negative.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);

// 67108864 -> "64.0 MiB"; for log lines.
std::string format_size(uint64_t bytes);

}  // namespace sluice
