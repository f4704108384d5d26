// MemoryBudget: limit, arrival-order waiting, the multi-frame turn.
#include <doctest/doctest.h>

#include "common/memory_budget.h"

namespace sluice {
namespace {

// Reservations may pass the limit by kSlack (headers and the next packet's
// start ride along with payload); these tests count in units of that.
constexpr std::uint64_t kS = MemoryBudget::kSlack;

TEST_CASE("memory budget: reserves up to the limit (plus slack), then queues in arrival order") {
  MemoryBudget b(100 - kS);
  MemoryBudget::Ticket none = 0;
  CHECK(b.reserve(60, &none));
  MemoryBudget::Ticket first = 0;
  MemoryBudget::Ticket second = 0;
  CHECK_FALSE(b.reserve(50, &first));
  CHECK(first != 0);
  CHECK_FALSE(b.reserve(10, &second));  // would fit, but must not overtake `first`
  CHECK(b.waits() == 2);
  b.release(60);
  CHECK_FALSE(b.reserve(10, &second));  // still behind `first`
  CHECK(b.reserve(50, &first));
  CHECK(first == 0);
  CHECK(b.reserve(10, &second));
  CHECK(b.used() == 60);
}

TEST_CASE("memory budget: a small reservation that fits goes ahead of a queued large one") {
  MemoryBudget b(100 - kS, 10);
  MemoryBudget::Ticket none = 0;
  CHECK(b.reserve(60, &none));
  MemoryBudget::Ticket large = 0;
  CHECK_FALSE(b.reserve(50, &large));
  MemoryBudget::Ticket small = 0;
  CHECK(b.reserve(10, &small));  // a block: it fits, and need not wait for `large`
  CHECK(small == 0);
  CHECK_FALSE(b.reserve(11, &small));  // above the small size: behind `large`
  CHECK(b.waits() == 2);
  b.release(70);
  CHECK_FALSE(b.reserve(11, &small));
  CHECK(b.reserve(50, &large));
  CHECK(b.reserve(11, &small));
  // A small one that does not fit waits (once counted), and goes as soon as
  // it fits, ahead of whoever queued before it.
  CHECK(b.reserve(30, &none));  // 91 held
  MemoryBudget::Ticket large2 = 0;
  CHECK_FALSE(b.reserve(60, &large2));
  MemoryBudget::Ticket small2 = 0;
  CHECK_FALSE(b.reserve(10, &small2));
  CHECK(small2 != 0);
  CHECK_FALSE(b.reserve(10, &small2));
  CHECK(b.waits() == 4);
  b.release(11);
  CHECK(b.reserve(10, &small2));
  CHECK(small2 == 0);
  CHECK_FALSE(b.reserve(60, &large2));
  b.release(90);
  CHECK(b.reserve(60, &large2));  // the queue is just `large2` again
}

TEST_CASE("memory budget: a cancelled waiter leaves the queue") {
  MemoryBudget b(10 - kS);
  MemoryBudget::Ticket t0 = 0;
  MemoryBudget::Ticket t1 = 0;
  MemoryBudget::Ticket t2 = 0;
  CHECK(b.reserve(10, &t0));
  CHECK_FALSE(b.reserve(5, &t1));
  CHECK_FALSE(b.reserve(5, &t2));
  b.cancel(&t1);
  b.release(10);
  CHECK(b.reserve(5, &t2));
}

TEST_CASE("memory budget: a multi-frame packet claiming the whole budget grows alone") {
  MemoryBudget b(1 << 30);
  int a = 0;
  int c = 0;
  CHECK(b.acquire_large_turn(&a, 1 << 30));
  CHECK(b.acquire_large_turn(&a, 1 << 30));
  CHECK_FALSE(b.acquire_large_turn(&c, 1 << 30));
  b.release_large_turn(&a);
  CHECK(b.acquire_large_turn(&c, 1 << 30));
}

TEST_CASE("memory budget: large turns go to as many packets as their claims fit together") {
  MemoryBudget b(64 << 20);
  int p[5] = {};
  for (int i = 0; i < 4; ++i) CHECK(b.acquire_large_turn(&p[i], 16 << 20));
  CHECK_FALSE(b.acquire_large_turn(&p[4], 16 << 20));  // a fifth would not fit beside them
  b.release_large_turn(&p[2]);
  CHECK(b.acquire_large_turn(&p[4], 16 << 20));
  CHECK(b.acquire_large_turn(&p[0], 16 << 20));  // a holder asking again keeps its turn
  b.release_large_turn(&p[4]);
  b.release_large_turn(&p[4]);  // releasing twice gives nothing back twice
  CHECK(b.acquire_large_turn(&p[2], 16 << 20));
  CHECK_FALSE(b.acquire_large_turn(&p[4], 16 << 20));
}

TEST_CASE("memory budget: a claim larger than the budget still gets a turn alone") {
  MemoryBudget b(16 << 20);
  int a = 0;
  int c = 0;
  CHECK(b.acquire_large_turn(&a, 1 << 30));
  CHECK_FALSE(b.acquire_large_turn(&c, 1 << 20));
  b.release_large_turn(&a);
  CHECK(b.acquire_large_turn(&c, 1 << 20));
}

}  // namespace
}  // namespace sluice
