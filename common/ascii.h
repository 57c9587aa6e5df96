// ASCII character classes for the hand-written parsers (framing, syslog, timestamps): unlike
// <cctype>, they ignore the locale and take a plain char. Pure; safe from any thread.
#pragma once

namespace sluice {

constexpr bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace sluice
