// Helpers shared by the config tests (test_config.cpp, test_config_types.cpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "app/config.h"

namespace sluice::test {

// A config that is valid on its own; tests append the lines they are about, so the line
// numbers in their expectations count from the end of this one (5 lines).
inline constexpr std::string_view minimal = R"toml([sources.app]
type = "tcp"

[sinks.out]
type = "file"
)toml";

// The problems parse_config reports for `text`; fails the test if it accepts the text.
inline std::vector<config_problem> problems_of(const std::string& text) {
    try {
        parse_config(text, "test.toml");
    } catch (const config_error& e) {
        return e.problems();
    }
    FAIL("parse_config accepted:\n" << text);
    return {};
}

// The one problem reported for `text`, checked to be alone.
inline config_problem only_problem(const std::string& text) {
    auto problems = problems_of(text);
    INFO(config_error(problems).what());
    REQUIRE(problems.size() == 1);
    return problems.front();
}

inline bool contains(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
}

}  // namespace sluice::test
