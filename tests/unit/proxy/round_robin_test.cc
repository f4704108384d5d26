// The round robin over upstreams is the listener's, shared by its workers.
#include <doctest/doctest.h>

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

}  // namespace
}  // namespace sluice
