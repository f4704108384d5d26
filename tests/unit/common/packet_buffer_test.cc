// PacketBuffer and BufferPool: cursor invariants, compaction, growth, erase of a discarded packet.
#include <doctest/doctest.h>

#include <cstring>

#include "common/packet_buffer.h"

namespace sluice {
namespace {

void put(PacketBuffer& b, const char* s) {
  const std::size_t n = std::strlen(s);
  REQUIRE(b.tail().size() >= n);
  std::memcpy(b.tail().data(), s, n);
  b.on_received(n);
}

TEST_CASE("packet buffer: cursors sent <= complete <= received, reset when drained") {
  BufferPool pool(64, 4);
  PacketBuffer b;
  b.adopt(pool.acquire(), pool.block_size());
  put(b, "aaaabbbbcc");
  b.set_complete(8);
  CHECK(b.pending() == 8);
  CHECK(b.partial() == 2);
  b.on_sent(8);
  CHECK(b.sane());
  CHECK(b.pending() == 0);
  CHECK_FALSE(b.empty());
  b.compact();
  CHECK(b.sent() == 0);
  CHECK(b.received() == 2);
  CHECK(std::memcmp(b.data(), "cc", 2) == 0);
  put(b, "dd");
  b.set_complete(4);
  b.on_sent(4);
  CHECK(b.empty());
  CHECK(b.received() == 0);  // drained: back to the front without a copy
  CHECK(b.give_back(pool));
  CHECK_FALSE(b.allocated());
}

TEST_CASE("packet buffer: growth keeps bytes - a grown buffer is not returned to the pool") {
  BufferPool pool(16, 4);
  PacketBuffer b;
  b.adopt(pool.acquire(), pool.block_size());
  put(b, "0123456789");
  REQUIRE(b.grow(1 << 20));
  CHECK(b.capacity() == 1 << 20);
  CHECK(std::memcmp(b.data(), "0123456789", 10) == 0);
  b.set_complete(10);
  b.on_sent(10);
  CHECK_FALSE(b.give_back(pool));
  b.reset();
  CHECK_FALSE(b.allocated());
}

TEST_CASE("packet buffer: erase_partial drops a discarded packet and keeps what follows") {
  BufferPool pool(64, 4);
  PacketBuffer b;
  b.adopt(pool.acquire(), pool.block_size());
  put(b, "KEEPxxxxxxNEXT");
  b.set_complete(4);
  b.erase_partial(10);
  CHECK(b.received() == 8);
  CHECK(std::memcmp(b.data(), "KEEPNEXT", 8) == 0);
  b.drop_partial();
  CHECK(b.received() == 4);
  b.reset();
}

}  // namespace
}  // namespace sluice
