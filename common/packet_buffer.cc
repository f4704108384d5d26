// One direction's byte buffer, with cursors that separate sent, complete and partial packets.
#include "common/packet_buffer.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstring>

namespace sluice {

BufferPool::~BufferPool() {
  for (std::uint8_t* block : free_) std::free(block);
}

std::uint8_t* BufferPool::acquire() {
  if (free_.empty()) return static_cast<std::uint8_t*>(std::malloc(block_size_));
  std::uint8_t* block = free_.back();
  free_.pop_back();
  return block;
}

void BufferPool::release(std::uint8_t* block) {
  if (free_.size() < max_free_) {
    free_.push_back(block);
  } else {
    std::free(block);
  }
}

void PacketBuffer::on_sent(std::size_t n) {
  sent_ += n;
  if (sent_ == received_) {
    // Everything went out: start over at the front, with no copy.
    sent_ = complete_ = received_ = 0;
  }
}

void PacketBuffer::erase_partial(std::size_t upto) {
  const std::size_t rest = received_ - upto;
  if (rest > 0) std::memmove(data_ + complete_, data_ + upto, rest);
  received_ = complete_ + rest;
}

void PacketBuffer::adopt(std::uint8_t* block, std::size_t size) {
  data_ = block;
  capacity_ = size;
  sent_ = complete_ = received_ = 0;
}

bool PacketBuffer::give_back(BufferPool& pool) {
  if (data_ == nullptr || !empty() || capacity_ != pool.block_size()) return false;
  pool.release(data_);
  data_ = nullptr;
  capacity_ = sent_ = complete_ = received_ = 0;
  return true;
}

void PacketBuffer::compact() {
  if (sent_ == 0) return;
  const std::size_t keep = received_ - sent_;
  // Only the unsent tail moves, and only when a packet needs the room.
  if (keep > 0) std::memmove(data_, data_ + sent_, keep);
  complete_ -= sent_;
  received_ -= sent_;
  sent_ = 0;
}

bool PacketBuffer::grow(std::size_t capacity) {
  if (capacity <= capacity_) return true;
  // realloc of a large block is an mremap in glibc: no copy of the bytes.
  void* grown = std::realloc(data_, capacity);
  if (grown == nullptr) return false;
  data_ = static_cast<std::uint8_t*>(grown);
  const std::size_t old = capacity_;
  capacity_ = capacity;
  prefault(old);
  return true;
}

// A large packet's buffer is fresh memory that is written once: faulting it
// in 4 KiB at a time costs more CPU than moving the bytes. One
// MADV_POPULATE_WRITE (Linux 5.14+) maps the whole new range in a single call;
// where the kernel lacks it, the pages fault in as before.
void PacketBuffer::prefault(std::size_t from) {
  constexpr std::size_t kPage = 4096;
  constexpr std::size_t kWorthIt = 1u << 20;
  const auto begin = (reinterpret_cast<std::uintptr_t>(data_) + from + kPage - 1) & ~(kPage - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(data_) + capacity_) & ~(kPage - 1);
  if (end <= begin || end - begin < kWorthIt) return;
#ifdef MADV_POPULATE_WRITE
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);  // advisory only
#endif
}

void PacketBuffer::reset() {
  std::free(data_);
  data_ = nullptr;
  capacity_ = sent_ = complete_ = received_ = 0;
}

std::uint8_t* PacketBuffer::detach() {
  std::uint8_t* block = data_;
  data_ = nullptr;
  capacity_ = sent_ = complete_ = received_ = 0;
  return block;
}

std::uint8_t* PacketBuffer::replace_block(std::uint8_t* block, std::size_t capacity) {
  const std::size_t keep = received_ - sent_;
  if (keep > 0) std::memcpy(block, data_ + sent_, keep);
  std::uint8_t* old = data_;
  data_ = block;
  capacity_ = capacity;
  complete_ -= sent_;
  received_ = keep;
  sent_ = 0;
  return old;
}

}  // namespace sluice
