// Parsing and printing of the config's size and duration values, in my.cnf style.
#include "common/units.h"

#include <cctype>
#include <charconv>
#include <limits>

namespace sluice {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// Splits off the leading run of decimal digits and parses it; nullopt when there are no
// digits or they overflow. `text` keeps what follows.
std::optional<std::uint64_t> take_digits(std::string_view& text, std::size_t* count = nullptr) {
  std::size_t n = 0;
  while (n < text.size() && text[n] >= '0' && text[n] <= '9') ++n;
  if (n == 0) return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + n, value);
  if (ec != std::errc{} || end != text.data() + n) return std::nullopt;
  text.remove_prefix(n);
  if (count != nullptr) *count = n;
  return value;
}

// The multiplier of a size unit; "" and "B" are bytes.
std::optional<std::uint64_t> size_unit(std::string_view unit) {
  if (unit.empty() || iequals(unit, "b")) return 1;
  const char letter = static_cast<char>(std::tolower(static_cast<unsigned char>(unit[0])));
  const std::string_view suffix = unit.substr(1);
  if (!suffix.empty() && !iequals(suffix, "b") && !iequals(suffix, "ib")) return std::nullopt;
  switch (letter) {
    case 'k':
      return 1ull << 10;
    case 'm':
      return 1ull << 20;
    case 'g':
      return 1ull << 30;
    default:
      return std::nullopt;
  }
}

// Milliseconds per duration unit; a bare number is seconds.
std::optional<std::uint64_t> duration_unit(std::string_view unit) {
  if (unit.empty() || iequals(unit, "s")) return 1000;
  if (iequals(unit, "ms")) return 1;
  if (iequals(unit, "m")) return 60'000;
  if (iequals(unit, "h")) return 3'600'000;
  return std::nullopt;
}

// The fractional digits after '.', without trailing zeros, as numerator over 10^digits.
struct Fraction {
  std::uint64_t numerator = 0;
  std::uint64_t denominator = 1;
};

std::optional<Fraction> take_fraction(std::string_view& text) {
  if (text.empty() || text.front() != '.') return Fraction{};
  text.remove_prefix(1);
  std::size_t n = 0;
  while (n < text.size() && text[n] >= '0' && text[n] <= '9') ++n;
  if (n == 0) return std::nullopt;
  std::string_view digits = text.substr(0, n);
  text.remove_prefix(n);
  while (!digits.empty() && digits.back() == '0') digits.remove_suffix(1);
  // Nine significant fractional digits are already far below a millisecond of an hour.
  if (digits.size() > 9) return std::nullopt;
  Fraction fraction;
  for (char c : digits) {
    fraction.numerator = fraction.numerator * 10 + static_cast<std::uint64_t>(c - '0');
    fraction.denominator *= 10;
  }
  return fraction;
}

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view text) {
  text = trim(text);
  const std::optional<std::uint64_t> number = take_digits(text);
  if (!number) return std::nullopt;
  const std::optional<std::uint64_t> unit = size_unit(trim(text));
  if (!unit) return std::nullopt;
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(*number, *unit, &bytes)) return std::nullopt;
  return bytes;
}

std::optional<Millis> parse_duration(std::string_view text) {
  text = trim(text);
  const std::optional<std::uint64_t> whole = take_digits(text);
  if (!whole) return std::nullopt;
  const std::optional<Fraction> fraction = take_fraction(text);
  if (!fraction) return std::nullopt;
  const std::optional<std::uint64_t> unit = duration_unit(trim(text));
  if (!unit) return std::nullopt;
  // numerator < denominator <= 10^9 and unit <= 3.6e6, so this product cannot overflow.
  const std::uint64_t part = fraction->numerator * *unit;
  if (part % fraction->denominator != 0) return std::nullopt;  // finer than a millisecond
  std::uint64_t ms = 0;
  if (__builtin_mul_overflow(*whole, *unit, &ms)) return std::nullopt;
  if (__builtin_add_overflow(ms, part / fraction->denominator, &ms)) return std::nullopt;
  if (ms > static_cast<std::uint64_t>(std::numeric_limits<Millis::rep>::max())) {
    return std::nullopt;
  }
  return Millis{static_cast<Millis::rep>(ms)};
}

std::string format_duration(Millis duration) {
  const Millis::rep count = duration.count();
  if (count == 0) return "0s";
  std::string sign = count < 0 ? "-" : "";
  // Unsigned negation keeps the minimum value representable.
  const std::uint64_t ms =
      count < 0 ? 0 - static_cast<std::uint64_t>(count) : static_cast<std::uint64_t>(count);
  if (ms % 3'600'000 == 0) return sign + std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return sign + std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return sign + std::to_string(ms / 1000) + "s";
  return sign + std::to_string(ms) + "ms";
}

std::string format_size(std::uint64_t bytes) {
  if (bytes == 0) return "0";
  if (bytes % (1ull << 30) == 0) return std::to_string(bytes >> 30) + "G";
  if (bytes % (1ull << 20) == 0) return std::to_string(bytes >> 20) + "M";
  if (bytes % (1ull << 10) == 0) return std::to_string(bytes >> 10) + "K";
  return std::to_string(bytes);
}

}  // namespace sluice
