#include "common/units.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace sluice {

namespace {

// Splits "12.5MiB" into 12.5 and "MiB". Returns false when there is no leading number.
bool split_number(std::string_view text, double& number, std::string_view& unit) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
        text.remove_prefix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
        text.remove_suffix(1);
    }
    size_t i = 0;
    while (i < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
        ++i;
    }
    if (i == 0) {
        return false;
    }
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, number);
    if (ec != std::errc{} || ptr != text.data() + i || !std::isfinite(number) || number < 0) {
        return false;
    }
    unit = text.substr(i);
    while (!unit.empty() && unit.front() == ' ') {
        unit.remove_prefix(1);
    }
    return true;
}

}  // namespace

std::optional<uint64_t> parse_size(std::string_view text) {
    double number = 0;
    std::string_view unit;
    if (!split_number(text, number, unit)) {
        return std::nullopt;
    }
    struct suffix {
        std::string_view name;
        double factor;
    };
    static constexpr std::array<suffix, 10> suffixes{{
        {"", 1},
        {"B", 1},
        {"KiB", 1024.0},
        {"MiB", 1024.0 * 1024},
        {"GiB", 1024.0 * 1024 * 1024},
        {"TiB", 1024.0 * 1024 * 1024 * 1024},
        {"KB", 1e3},
        {"MB", 1e6},
        {"GB", 1e9},
        {"TB", 1e12},
    }};
    for (const auto& s : suffixes) {
        if (unit == s.name) {
            double bytes = number * s.factor;
            if (bytes > 1.8e19 || bytes != std::floor(bytes)) {
                return std::nullopt;
            }
            return static_cast<uint64_t>(bytes);
        }
    }
    return std::nullopt;
}

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
    double number = 0;
    std::string_view unit;
    if (!split_number(text, number, unit)) {
        return std::nullopt;
    }
    struct suffix {
        std::string_view name;
        double ns;
    };
    static constexpr std::array<suffix, 7> suffixes{{
        {"ns", 1},
        {"us", 1e3},
        {"ms", 1e6},
        {"s", 1e9},
        {"m", 60e9},
        {"h", 3600e9},
        {"d", 86400e9},
    }};
    for (const auto& s : suffixes) {
        if (unit == s.name) {
            double ns = number * s.ns;
            if (ns > 9.2e18) {
                return std::nullopt;
            }
            return std::chrono::nanoseconds(static_cast<int64_t>(ns));
        }
    }
    return std::nullopt;
}

std::string format_size(uint64_t bytes) {
    static constexpr std::array<const char*, 5> names{"B", "KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes);
    size_t i = 0;
    while (value >= 1024 && i + 1 < names.size()) {
        value /= 1024;
        ++i;
    }
    if (i == 0) {
        return fmt::format("{} B", bytes);
    }
    return fmt::format("{:.1f} {}", value, names[i]);
}

}  // namespace sluice
