// SpareBuffer: keeps the larger buffer with its reservation, gives both back, and keeps nothing
// under pressure.
#include "common/spare_buffer.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>

#include "common/packet_buffer.h"

namespace sluice {
namespace {

// A buffer of `n` bytes whose reservation is taken from `budget`, as a
// session's large packet buffer is.
SpareBuffer::Block reserved_block(MemoryBudget& budget, std::size_t n) {
  MemoryBudget::Ticket ticket = 0;
  REQUIRE(budget.reserve(n, &ticket));
  return {{static_cast<std::uint8_t*>(std::malloc(n)), n, 0}, n};
}

TEST_CASE("spare buffer: keeps its reservation, which is not counted as packet bytes") {
  MemoryBudget budget(1 << 20);
  SpareBuffer spare(budget, 1000);
  spare.keep(reserved_block(budget, 4096));
  CHECK(spare.held());
  CHECK(spare.capacity() == 4096);
  CHECK(budget.used() == 4096);
  CHECK(budget.packet_bytes() == 0);
  const SpareBuffer::Block b = spare.take();
  CHECK_FALSE(spare.held());
  CHECK(b.memory.capacity == 4096);
  CHECK(b.reserved == 4096);
  CHECK(budget.packet_bytes() == 4096);  // in use again
  spare.keep(b);
  CHECK(spare.drop());
  CHECK(budget.used() == 0);
  CHECK_FALSE(spare.drop());
}

TEST_CASE("spare buffer: of two buffers the larger stays, the other is freed and released") {
  MemoryBudget budget(1 << 20);
  SpareBuffer spare(budget, 1000);
  spare.keep(reserved_block(budget, 8192));
  spare.keep(reserved_block(budget, 4096));
  CHECK(spare.capacity() == 8192);
  CHECK(budget.used() == 8192);
  spare.keep(reserved_block(budget, 16384));
  CHECK(spare.capacity() == 16384);
  CHECK(budget.used() == 16384);
  CHECK(budget.packet_bytes() == 0);
}

TEST_CASE("spare buffer: nothing small, and nothing while someone waits for memory") {
  MemoryBudget budget(10000);
  SpareBuffer spare(budget, 1000);
  spare.keep(reserved_block(budget, 500));
  CHECK_FALSE(spare.held());
  CHECK(budget.used() == 0);

  spare.keep(reserved_block(budget, 4096));
  CHECK(spare.held());
  CHECK(spare.drop());
  const SpareBuffer::Block b = reserved_block(budget, 60000);  // within limit + slack
  MemoryBudget::Ticket waiter = 0;
  REQUIRE_FALSE(budget.reserve(MemoryBudget::kSlack, &waiter));  // queued
  CHECK(budget.has_waiters());
  spare.keep(b);
  CHECK_FALSE(spare.held());
  CHECK(budget.used() == 0);
  CHECK(budget.reserve(MemoryBudget::kSlack, &waiter));  // the waiter gets it
  budget.release(MemoryBudget::kSlack);
}

TEST_CASE("spare buffer: the destructor gives everything back") {
  MemoryBudget budget(1 << 20);
  {
    SpareBuffer spare(budget, 1000);
    spare.keep(reserved_block(budget, 4096));
  }
  CHECK(budget.used() == 0);
  CHECK(budget.packet_bytes() == 0);
}

TEST_CASE(
    "packet buffer: replace_block moves the unsent bytes to a new block, detach hands it over") {
  BufferPool pool(64, 4);
  PacketBuffer b;
  b.adopt(pool.acquire(), pool.block_size());
  std::memcpy(b.tail().data(), "sentwhole-part", 14);
  b.on_received(14);
  b.set_complete(9);
  b.on_sent(4);  // "sent" is out; "whole" is pending; "-part" is partial
  auto* bigger = static_cast<std::uint8_t*>(std::malloc(1024));
  pool.release(b.replace_block({bigger, 1024, 0}));
  CHECK(b.sane());
  CHECK(b.capacity() == 1024);
  CHECK(b.sent() == 0);
  CHECK(b.pending() == 5);
  CHECK(b.partial() == 5);
  CHECK(std::memcmp(b.data(), "whole-part", 10) == 0);
  b.on_sent(5);
  b.drop_partial();
  REQUIRE(b.empty());
  const BufferBlock taken = b.detach();
  CHECK(taken.data == bigger);
  CHECK(taken.capacity == 1024);
  CHECK(taken.mapped == 0);
  CHECK_FALSE(b.allocated());
  CHECK(b.capacity() == 0);
  free_block(taken.data, taken.mapped);
}

}  // namespace
}  // namespace sluice
