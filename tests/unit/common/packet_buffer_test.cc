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

TEST_CASE("packet buffer: a large packet's block is mapped once for its expected size") {
  BufferPool pool(16, 4);
  PacketBuffer b;
  b.adopt(pool.acquire(), pool.block_size());
  put(b, "0123456789");
  REQUIRE(b.grow(3 << 20, 64 << 20));
  CHECK(b.capacity() == 3u << 20);
  CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % (2u << 20) == 0);  // huge-page aligned
  CHECK(std::memcmp(b.data(), "0123456789", 10) == 0);
  std::uint8_t* const first = b.data();
  b.data()[(3u << 20) - 1] = 'x';
  b.on_received((3u << 20) - 10);
  // Frame by frame up to the expected size: the bytes never move.
  REQUIRE(b.grow(40 << 20));
  CHECK(b.data() == first);
  CHECK(b.capacity() == 40u << 20);
  CHECK(b.data()[(3u << 20) - 1] == 'x');
  // Past it: a new mapping, with every byte held copied over.
  REQUIRE(b.grow(70 << 20));
  CHECK(b.data() != first);
  CHECK(std::memcmp(b.data(), "0123456789", 10) == 0);
  CHECK(b.data()[(3u << 20) - 1] == 'x');
  b.set_complete(b.received());
  b.on_sent(b.received());
  const BufferBlock block = b.detach();
  CHECK(block.capacity == 70u << 20);
  CHECK(block.mapped >= block.capacity);
  free_block(block.data, block.mapped);
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
