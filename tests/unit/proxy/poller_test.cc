// Poller: level-triggered delivery, interest changes, forgetting a slot mid-wakeup, embedding.
#include <doctest/doctest.h>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "proxy/poller.h"
#include "socket_pair.h"

namespace sluice {
namespace {

using testing::SocketPair;

// A slot that records what it was given and may run an action on delivery.
struct Recorder {
  PollSlot slot;
  std::vector<std::uint32_t> got;
  void (*action)(Recorder&) = nullptr;
  void* context = nullptr;

  explicit Recorder(int fd) {
    slot.fd = fd;
    slot.owner = this;
    slot.on_events = [](PollSlot& s, std::uint32_t events) {
      auto* r = static_cast<Recorder*>(s.owner);
      r->got.push_back(events);
      if (r->action != nullptr) r->action(*r);
    };
  }
};

int wait_and_deliver(Poller& poller, bool* embedded = nullptr) {
  const int ready = poller.wait(1000);
  const bool e = poller.deliver(ready);
  if (embedded != nullptr) *embedded = e;
  return ready;
}

TEST_CASE("poller: readiness repeats until read, and interest 0 takes the socket out") {
  Poller poller;
  REQUIRE(poller.error().empty());
  SocketPair sp;
  Recorder r(sp.a);
  poller.watch(r.slot, EPOLLIN);
  REQUIRE(::write(sp.b, "x", 1) == 1);
  CHECK(wait_and_deliver(poller) == 1);
  CHECK(wait_and_deliver(poller) == 1);  // level-triggered: still unread
  REQUIRE(r.got.size() == 2);
  CHECK((r.got[0] & EPOLLIN) != 0);
  poller.watch(r.slot, 0);
  CHECK(r.slot.interest == 0);
  CHECK(poller.wait(50) == 0);
  poller.watch(r.slot, EPOLLIN | EPOLLOUT);
  CHECK(wait_and_deliver(poller) == 1);
  CHECK((r.got.back() & (EPOLLIN | EPOLLOUT)) == (EPOLLIN | EPOLLOUT));
}

TEST_CASE("poller: a slot forgotten during a wakeup gets none of that wakeup's events") {
  Poller poller;
  SocketPair one;
  SocketPair two;
  Recorder first(one.a);
  Recorder second(two.a);
  // Whichever is delivered first forgets the other, as a session closing its
  // upstream socket does while the upstream's event is still undelivered.
  struct Pair {
    Poller* poller;
    Recorder* other;
  };
  Pair to_second{&poller, &second};
  Pair to_first{&poller, &first};
  first.context = &to_second;
  second.context = &to_first;
  first.action = second.action = [](Recorder& self) {
    auto* pair = static_cast<Pair*>(self.context);
    pair->poller->forget(pair->other->slot);
  };
  poller.watch(first.slot, EPOLLIN);
  poller.watch(second.slot, EPOLLIN);
  REQUIRE(::write(one.b, "x", 1) == 1);
  REQUIRE(::write(two.b, "y", 1) == 1);
  CHECK(wait_and_deliver(poller) == 2);  // both were ready in one wakeup
  CHECK(first.got.size() + second.got.size() == 1);
  // The forgotten one is out of the set: only the other is ever woken again.
  first.action = second.action = nullptr;
  CHECK(wait_and_deliver(poller) == 1);
  CHECK(first.got.size() + second.got.size() == 2);
  CHECK((first.got.empty() || second.got.empty()));
}

TEST_CASE("poller: the embedded fd is reported, not delivered") {
  Poller poller;
  const int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  REQUIRE(efd >= 0);
  REQUIRE(poller.embed(efd));
  SocketPair sp;
  Recorder r(sp.a);
  poller.watch(r.slot, EPOLLIN);
  const std::uint64_t one = 1;
  REQUIRE(::write(efd, &one, sizeof one) == sizeof one);
  bool embedded = false;
  CHECK(wait_and_deliver(poller, &embedded) == 1);
  CHECK(embedded);
  CHECK(r.got.empty());
  std::uint64_t value = 0;
  REQUIRE(::read(efd, &value, sizeof value) == sizeof value);
  REQUIRE(::write(sp.b, "x", 1) == 1);
  CHECK(wait_and_deliver(poller, &embedded) == 1);
  CHECK_FALSE(embedded);
  CHECK(r.got.size() == 1);
  ::close(efd);
}

TEST_CASE("poller: a hang-up is reported even without interest in writing") {
  Poller poller;
  SocketPair sp;
  Recorder r(sp.a);
  poller.watch(r.slot, EPOLLIN);
  ::shutdown(sp.b, SHUT_RDWR);
  CHECK(wait_and_deliver(poller) == 1);
  REQUIRE(r.got.size() == 1);
  CHECK((r.got[0] & (EPOLLHUP | EPOLLRDHUP | EPOLLIN)) != 0);
}

}  // namespace
}  // namespace sluice
