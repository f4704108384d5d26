// The global memory_limit: every packet byte sluice holds is reserved here first.
#include "common/memory_budget.h"

#include <algorithm>

namespace sluice {

bool MemoryBudget::try_add(std::uint64_t n) {
  std::uint64_t used = used_.load(std::memory_order_relaxed);
  do {
    if (used + n > limit_.load(std::memory_order_relaxed) + kSlack) return false;
  } while (!used_.compare_exchange_weak(used, used + n, std::memory_order_relaxed));
  return true;
}

bool MemoryBudget::reserve(std::uint64_t n, Ticket* ticket) {
  if (n <= small_) {
    // It goes as soon as it fits, wherever it is in the queue; one that does
    // not takes a place there (counted as a wait) only the first time.
    if (try_add(n)) {
      if (*ticket != 0) cancel(ticket);
      return true;
    }
    if (*ticket == 0) {
      std::lock_guard lock(mu_);
      take_ticket(ticket);
    }
    return false;
  }
  if (*ticket == 0 && !queued_.load(std::memory_order_relaxed) && try_add(n)) return true;
  std::lock_guard lock(mu_);
  if (*ticket == 0) {
    if (queue_.empty() && try_add(n)) return true;
    take_ticket(ticket);
    return false;
  }
  // Arrival order: only the oldest waiter may take memory.
  if (queue_.empty() || queue_.front() != *ticket || !try_add(n)) return false;
  queue_.pop_front();
  queued_.store(!queue_.empty(), std::memory_order_relaxed);
  *ticket = 0;
  return true;
}

// Joins the queue, counted as a wait. Called with mu_ held.
void MemoryBudget::take_ticket(Ticket* ticket) {
  *ticket = next_ticket_++;
  queue_.push_back(*ticket);
  queued_.store(true, std::memory_order_relaxed);
  waits_.fetch_add(1, std::memory_order_relaxed);
}

void MemoryBudget::cancel(Ticket* ticket) {
  if (*ticket == 0) return;
  std::lock_guard lock(mu_);
  auto it = std::find(queue_.begin(), queue_.end(), *ticket);
  if (it != queue_.end()) queue_.erase(it);
  queued_.store(!queue_.empty(), std::memory_order_relaxed);
  *ticket = 0;
}

bool MemoryBudget::acquire_large_turn(const void* owner, std::uint64_t claim) {
  std::lock_guard lock(mu_);
  for (const auto& held : large_) {
    if (held.first == owner) return true;
  }
  if (!large_.empty() && large_claims_ + claim > limit() + kSlack) return false;
  large_.emplace_back(owner, claim);
  large_claims_ += claim;
  return true;
}

void MemoryBudget::release_large_turn(const void* owner) {
  std::lock_guard lock(mu_);
  for (auto it = large_.begin(); it != large_.end(); ++it) {
    if (it->first != owner) continue;
    large_claims_ -= it->second;
    large_.erase(it);
    return;
  }
}

}  // namespace sluice
