// Parsing and printing of the config's size and duration values, in my.cnf style.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

using Millis = std::chrono::milliseconds;  // same alias as common/config.h

// Bytes: "512", or a number with K/M/G (1024-based, case-insensitive, optionally followed
// by "B" or "iB": 16M = 16MB = 16MiB); "512B" is 512 bytes. Surrounding blanks and blanks
// between number and unit are allowed. Negative, fractional, garbage and values that do
// not fit 64 bits give nullopt.
std::optional<std::uint64_t> parse_size(std::string_view text);

// A plain number is seconds, as in my.cnf; otherwise a number with ms, s, m or h
// (case-insensitive). Decimals are allowed when the result is a whole number of
// milliseconds ("1.5s", "0.25m"). Negative, garbage and overflow give nullopt.
std::optional<Millis> parse_duration(std::string_view text);

// The shortest exact form in the largest unit that divides the value: 500ms, 30s, 5m, 8h.
std::string format_duration(Millis duration);

// The largest exact 1024-based unit: 64M, 16K, 1G, or plain bytes (1000).
std::string format_size(std::uint64_t bytes);

}  // namespace sluice
