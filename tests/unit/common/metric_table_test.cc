// The metric table's bucket helpers: the packet-size shortcut agrees with the plain search.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>

#include "common/metric_table.h"

namespace sluice {
namespace {

TEST_CASE("metric table: packet_size_bucket agrees with bucket_index at every bound and beyond") {
  auto agrees = [](std::uint64_t size) {
    CAPTURE(size);
    CHECK(packet_size_bucket(size) == bucket_index(kPacketSizeBuckets, static_cast<double>(size)));
  };
  for (std::uint64_t size = 0; size <= 300; ++size) agrees(size);
  for (const double bound : kPacketSizeBuckets) {
    const auto b = static_cast<std::uint64_t>(bound);
    for (const std::uint64_t size : {b - 1, b, b + 1}) agrees(size);
  }
  for (const std::uint64_t size : {0xFFFFFFull, 0x1000000ull, (1ull << 40), ~0ull >> 1}) {
    agrees(size);
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 10000; ++i) agrees(rng() >> (rng() % 64));
}

}  // namespace
}  // namespace sluice
