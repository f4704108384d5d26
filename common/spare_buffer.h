// The last large packet buffer, kept briefly for the next large packet, with its memory
// reservation.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/memory_budget.h"
#include "common/packet_buffer.h"

namespace sluice {

// A 64 MiB packet needs a 64 MiB buffer, and fresh pages cost more CPU to
// fault in and zero than the bytes cost to forward. Keeping the buffer of the
// last large packet lets the next one (the SELECT after an INSERT, the next
// row of a blob table) reuse pages already mapped. The buffer keeps its
// memory_limit reservation while kept: the memory is still held, and the
// budget says so (but it holds no packet bytes: MemoryBudget::packet_bytes()
// leaves it out). It is given back when its keeper decides it is stale, when
// someone is waiting for memory, or when a reservation would otherwise fail.
// Single-threaded: one per worker.
class SpareBuffer {
 public:
  struct Block {
    BufferBlock memory;
    std::uint64_t reserved = 0;  // budget bytes that come with it
  };

  // Buffers below `min_capacity` are not worth keeping: malloc serves them
  // from memory it already has.
  SpareBuffer(MemoryBudget& budget, std::size_t min_capacity)
      : budget_(budget), min_capacity_(min_capacity) {}
  ~SpareBuffer() { drop(); }
  SpareBuffer(const SpareBuffer&) = delete;
  SpareBuffer& operator=(const SpareBuffer&) = delete;

  bool held() const { return block_.memory.data != nullptr; }
  std::size_t capacity() const { return block_.memory.capacity; }

  // Keeps `b` (ownership of its memory and reservation passes here). Of two
  // buffers the larger is kept; the other is freed and its reservation
  // released. Nothing is kept while someone waits for memory, or below the
  // minimum size.
  void keep(Block b) {
    if (b.memory.capacity < min_capacity_ || budget_.has_waiters() ||
        (held() && capacity() >= b.memory.capacity)) {
      return dispose(b);
    }
    drop();
    block_ = b;
    budget_.add_spare(b.reserved);
  }

  // Hands the buffer and its reservation to the caller. Precondition: held().
  Block take() {
    const Block b = block_;
    block_ = Block{};
    budget_.remove_spare(b.reserved);
    return b;
  }

  // Frees the buffer and releases its reservation. True if one was held.
  bool drop() {
    if (!held()) return false;
    dispose(take());
    return true;
  }

 private:
  void dispose(const Block& b) {
    free_block(b.memory.data, b.memory.mapped);
    if (b.reserved != 0) budget_.release(b.reserved);
  }

  MemoryBudget& budget_;
  std::size_t min_capacity_;
  Block block_;
};

}  // namespace sluice
