// One direction's byte buffer, with cursors that separate sent, complete and partial packets.
#include "common/packet_buffer.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstring>

namespace sluice {
namespace {

constexpr std::size_t kHugePage = 2u << 20;

std::size_t round_up(std::size_t n, std::size_t to) {
  return (n + to - 1) / to * to;
}

// `span` bytes (a multiple of 2 MiB) of address space, 2 MiB-aligned and
// marked for huge pages; nothing is allocated until it is touched. nullptr
// when the mapping fails.
std::uint8_t* map_region(std::size_t span) {
  void* raw = ::mmap(nullptr, span + kHugePage, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = round_up(start, kHugePage);
  if (aligned > start) ::munmap(raw, aligned - start);
  const std::uintptr_t end = start + span + kHugePage;
  if (end > aligned + span) ::munmap(reinterpret_cast<void*>(aligned + span), end - aligned - span);
  auto* region = reinterpret_cast<std::uint8_t*>(aligned);
#ifdef MADV_HUGEPAGE
  ::madvise(region, span, MADV_HUGEPAGE);  // advisory: "never" leaves 4 KiB pages
#endif
  return region;
}

}  // namespace

void free_block(std::uint8_t* data, std::size_t mapped) {
  if (mapped != 0) {
    ::munmap(data, mapped);
  } else {
    std::free(data);
  }
}

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

bool PacketBuffer::grow(std::size_t capacity, std::size_t expected) {
  if (capacity <= capacity_) return true;
  const std::size_t old = capacity_;
  if (capacity <= mapped_) {
    capacity_ = capacity;  // the address space is there: only pages to add
    prefault(old);
    return true;
  }
  if (capacity < kMappedMin) {
    void* grown = std::realloc(data_, capacity);  // a small, malloc'd block
    if (grown == nullptr) return false;
    data_ = static_cast<std::uint8_t*>(grown);
    capacity_ = capacity;
    return true;
  }
  // Address space for the whole packet when its size is known to be bounded;
  // just for `capacity` if that much cannot be mapped.
  std::size_t span = round_up(capacity > expected ? capacity : expected, kHugePage);
  std::uint8_t* region = map_region(span);
  if (region == nullptr && span > round_up(capacity, kHugePage)) {
    span = round_up(capacity, kHugePage);
    region = map_region(span);
  }
  if (region == nullptr) return false;
  std::uint8_t* previous = data_;
  const std::size_t previous_mapped = mapped_;
  data_ = region;
  mapped_ = span;
  capacity_ = capacity;
  // Populated before the bytes held are copied in, so they land on huge
  // pages too, in one call instead of a fault per page.
  prefault(0);
  if (received_ > 0) std::memcpy(data_, previous, received_);
  free_block(previous, previous_mapped);
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
  free_block(data_, mapped_);
  data_ = nullptr;
  capacity_ = mapped_ = sent_ = complete_ = received_ = 0;
}

BufferBlock PacketBuffer::detach() {
  const BufferBlock block{data_, capacity_, mapped_};
  data_ = nullptr;
  capacity_ = mapped_ = sent_ = complete_ = received_ = 0;
  return block;
}

std::uint8_t* PacketBuffer::replace_block(const BufferBlock& block) {
  const std::size_t keep = received_ - sent_;
  if (keep > 0) std::memcpy(block.data, data_ + sent_, keep);
  std::uint8_t* old = data_;
  data_ = block.data;
  capacity_ = block.capacity;
  mapped_ = block.mapped;
  complete_ -= sent_;
  received_ = keep;
  sent_ = 0;
  return old;
}

}  // namespace sluice
