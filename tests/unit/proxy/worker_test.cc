// Worker as a whole: one upstream round robin per listener; one that never ran frees all.
// frees all.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "proxy/io.h"
#include "proxy/worker.h"

namespace sluice {
namespace {

TEST_CASE("round robin: successive sessions take successive upstreams, whichever worker accepts") {
  ListenerConfig l;
  l.name = "main";
  l.listen = {"127.0.0.1", 0};
  l.upstreams = {{"127.0.0.1", 1}, {"127.0.0.1", 2}, {"127.0.0.1", 3}};
  Config c;
  c.listeners = {l};
  std::vector<std::string> errors;
  auto rc = make_runtime_config(c, &errors);
  MemoryBudget budget{1ull << 30};
  std::vector<ListenerShared> shared(1);
  Worker w0(0, rc, budget, shared, real_syscalls());
  Worker w1(1, rc, budget, shared, real_syscalls());
  std::string error;
  REQUIRE(w0.open_listeners({}, &error));
  REQUIRE(w1.open_listeners(w0.bound_ports(), &error));
  // Running, so that their loops end (and free everything) the normal way.
  w0.start();
  w1.start();
  // Sessions accepted by workers 0, 1, 1, 0, 1, 0 in turn (the counter is the
  // listener's atomic: any thread may take a turn).
  std::vector<std::size_t> order;
  for (Worker* w : {&w0, &w1, &w1, &w0, &w1, &w0}) order.push_back(w->next_upstream(0, 3));
  CHECK(order == std::vector<std::size_t>{0, 1, 2, 0, 1, 2});
  for (Worker* w : {&w0, &w1}) {
    w->post_force_close();
    w->join();
  }
}

TEST_CASE("worker: one that is made, opens its listeners and never runs is destroyed cleanly") {
  // Start-up can fail after some workers exist (a later listener cannot
  // bind): those are destroyed without having run. LeakSanitizer (make asan)
  // checks that their loops free everything.
  ListenerConfig l;
  l.name = "main";
  l.listen = {"127.0.0.1", 0};
  l.upstreams = {{"127.0.0.1", 1}};
  Config c;
  c.listeners = {l};
  std::vector<std::string> errors;
  MemoryBudget budget{1ull << 30};
  std::vector<ListenerShared> shared(1);
  auto w =
      std::make_unique<Worker>(0, make_runtime_config(c, &errors), budget, shared, real_syscalls());
  std::string error;
  REQUIRE(w->open_listeners({}, &error));
  const std::uint16_t port = w->bound_ports().at(0);
  w.reset();
  // Its listening socket is gone with it: the port can be bound again.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  ::close(fd);
}

}  // namespace
}  // namespace sluice
