// Tests for parsing and printing config sizes and durations.
#include "common/units.h"

#include <doctest/doctest.h>

#include <cstdint>

namespace sluice {
namespace {

TEST_CASE("parse_size accepts bytes and 1024-based K/M/G with optional B or iB") {
  CHECK(parse_size("0") == 0u);
  CHECK(parse_size("512") == 512u);
  CHECK(parse_size("512B") == 512u);
  CHECK(parse_size("16K") == 16u << 10);
  CHECK(parse_size("16k") == 16u << 10);
  CHECK(parse_size("16KB") == 16u << 10);
  CHECK(parse_size("16KiB") == 16u << 10);
  CHECK(parse_size("16kib") == 16u << 10);
  CHECK(parse_size("64M") == 64u << 20);
  CHECK(parse_size("16MB") == 16u << 20);
  CHECK(parse_size("16MiB") == 16u << 20);
  CHECK(parse_size("1g") == 1ull << 30);
  CHECK(parse_size("4G") == 4ull << 30);
  CHECK(parse_size(" 64 M ") == 64u << 20);
  CHECK(parse_size("18446744073709551615") == UINT64_MAX);
}

TEST_CASE("parse_size rejects negatives, fractions, garbage and overflow") {
  for (const char* bad :
       {"", " ", "abc", "-1", "+1", "1.5M", "16X", "16T", "16MiBs", "16iB", "K", "M16", "1 6M",
        "16 M B", "0x10", "18446744073709551616", "17179869184G", "16M extra"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_size(bad).has_value());
  }
}

TEST_CASE("parse_duration: a plain number is seconds, units ms/s/m/h") {
  CHECK(parse_duration("30") == Millis{30'000});
  CHECK(parse_duration("0") == Millis{0});
  CHECK(parse_duration("500ms") == Millis{500});
  CHECK(parse_duration("30s") == Millis{30'000});
  CHECK(parse_duration("30S") == Millis{30'000});
  CHECK(parse_duration("5m") == Millis{300'000});
  CHECK(parse_duration("8h") == Millis{8 * 3'600'000});
  CHECK(parse_duration(" 10 s ") == Millis{10'000});
}

TEST_CASE("parse_duration accepts decimals that are whole milliseconds") {
  CHECK(parse_duration("1.5s") == Millis{1500});
  CHECK(parse_duration("0.5") == Millis{500});
  CHECK(parse_duration("0.25m") == Millis{15'000});
  CHECK(parse_duration("1.50000000000s") == Millis{1500});
  CHECK(parse_duration("0.001") == Millis{1});
  CHECK_FALSE(parse_duration("0.0001").has_value());  // finer than a millisecond
  CHECK_FALSE(parse_duration("1.5ms").has_value());
}

TEST_CASE("parse_duration rejects negatives, garbage, unknown units and overflow") {
  for (const char* bad : {"", "abc", "-5s", "+5s", "5d", "5 sec", "1.s", ".5s", "1..5s", "s", "5ss",
                          "99999999999999999999h", "9999999999999999h"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_duration(bad).has_value());
  }
}

TEST_CASE("format_duration uses the largest exact unit") {
  CHECK(format_duration(Millis{500}) == "500ms");
  CHECK(format_duration(Millis{1500}) == "1500ms");
  CHECK(format_duration(Millis{30'000}) == "30s");
  CHECK(format_duration(Millis{90'000}) == "90s");
  CHECK(format_duration(Millis{300'000}) == "5m");
  CHECK(format_duration(Millis{8 * 3'600'000}) == "8h");
  CHECK(format_duration(Millis{0}) == "0s");
  CHECK(format_duration(Millis{-2000}) == "-2s");
}

TEST_CASE("format_size uses the largest exact unit") {
  CHECK(format_size(0) == "0");
  CHECK(format_size(1000) == "1000");
  CHECK(format_size(1536) == "1536");
  CHECK(format_size(16 << 10) == "16K");
  CHECK(format_size(64 << 20) == "64M");
  CHECK(format_size(1ull << 30) == "1G");
  CHECK(format_size(2048ull << 30) == "2048G");
}

TEST_CASE("formatted values parse back to themselves") {
  for (std::uint64_t bytes : {0ull, 1ull, 1000ull, 1024ull, 1536ull, 64ull << 20, 3ull << 30}) {
    CHECK(parse_size(format_size(bytes)) == bytes);
  }
  for (long long ms : {0ll, 1ll, 999ll, 1000ll, 61'000ll, 3'600'000ll, 90'000'000ll}) {
    CHECK(parse_duration(format_duration(Millis{ms})) == Millis{ms});
  }
}

}  // namespace
}  // namespace sluice
