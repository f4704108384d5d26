// Framer micro-benchmark: how fast sluice::Framer finds packet boundaries in a byte stream.
//
// The framer never reads payload bytes, so its cost is per event (header, packet end), not
// per byte. Two streams bracket what a proxy sees:
//  - BM_LargePackets: 16 MiB logical packets (one 0xFFFFFF frame + a short trailer frame),
//    reported in bytes/s (issue 6 target: >= 5 GB/s);
//  - BM_SmallPackets: 32-byte packets on the wire (4-byte header + 28-byte payload), reported
//    in packets/s as items/s (issue 6 target: >= 50 M packets/s).
// Both are fed in chunks the size of a socket read (the argument, in bytes), so packets and
// headers are split across calls exactly as they are in the proxy; chunk sizes that do not
// divide the packet size force headers to straddle two reads.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/framer.h"

namespace {

using sluice::FrameEvent;
using sluice::Framer;

void put_header(std::vector<std::uint8_t>& out, std::uint32_t length, std::uint8_t seq) {
  out.push_back(static_cast<std::uint8_t>(length & 0xFF));
  out.push_back(static_cast<std::uint8_t>((length >> 8) & 0xFF));
  out.push_back(static_cast<std::uint8_t>((length >> 16) & 0xFF));
  out.push_back(seq);
}

// `count` logical packets of 0xFFFFFF + `tail` payload bytes each: a full frame then a short one.
std::vector<std::uint8_t> large_stream(int count, std::uint32_t tail) {
  std::vector<std::uint8_t> s;
  s.reserve(static_cast<std::size_t>(count) * (0xFFFFFFu + tail + 8));
  for (int i = 0; i < count; ++i) {
    put_header(s, 0xFFFFFF, 0);
    s.resize(s.size() + 0xFFFFFF, static_cast<std::uint8_t>(i));
    put_header(s, tail, 1);
    s.resize(s.size() + tail, 0x5A);
  }
  return s;
}

// `count` packets of `wire_size` bytes each (header included).
std::vector<std::uint8_t> small_stream(std::size_t count, std::uint32_t wire_size) {
  std::vector<std::uint8_t> s;
  s.reserve(count * wire_size);
  for (std::size_t i = 0; i < count; ++i) {
    put_header(s, wire_size - 4, static_cast<std::uint8_t>(i));
    s.resize(s.size() + wire_size - 4, 0xA5);
  }
  return s;
}

// Feeds the whole stream to a fresh framer in `chunk`-byte reads; returns packets completed.
std::uint64_t frame_stream(const std::vector<std::uint8_t>& stream, std::size_t chunk) {
  Framer framer;
  std::uint64_t packets = 0;
  const std::uint8_t* data = stream.data();
  std::size_t left = stream.size();
  while (left > 0) {
    const std::size_t n = left < chunk ? left : chunk;
    std::size_t off = 0;
    // A read is done when every byte is consumed and no event is pending. After a kHeader
    // one more call is needed even at the end of the read: an empty final frame reports its
    // kPacketEnd with consumed 0. (kNeedMore does not always mean "all consumed": the end of
    // a 0xFFFFFF frame's payload is reported as kNeedMore with the rest of the read left.)
    for (;;) {
      const FrameEvent ev = framer.next(data + off, n - off);
      off += ev.consumed;
      if (ev.kind == FrameEvent::Kind::kPacketEnd) ++packets;
      if (off == n && ev.kind != FrameEvent::Kind::kHeader) break;
      if (ev.kind == FrameEvent::Kind::kNeedMore && ev.consumed == 0) break;  // defensive
    }
    data += n;
    left -= n;
  }
  return packets;
}

void BM_LargePackets(benchmark::State& state) {
  static const std::vector<std::uint8_t> stream = large_stream(4, 4096);  // ~64 MiB
  const auto chunk = static_cast<std::size_t>(state.range(0));
  std::uint64_t packets = 0;
  for (auto _ : state) {
    packets = frame_stream(stream, chunk);
    benchmark::DoNotOptimize(packets);
  }
  if (packets != 4) state.SkipWithError("framer found the wrong number of packets");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(stream.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 4);
}
// 16 KiB = net_buffer_length, 64 KiB = a typical socket read, 1 MiB = a large exact-size read.
BENCHMARK(BM_LargePackets)->Arg(16 << 10)->Arg(64 << 10)->Arg(1 << 20);

void BM_SmallPackets(benchmark::State& state) {
  constexpr std::size_t kPackets = 1 << 15;  // 1 MiB of 32-byte packets: stays in L2
  static const std::vector<std::uint8_t> stream = small_stream(kPackets, 32);
  const auto chunk = static_cast<std::size_t>(state.range(0));
  std::uint64_t packets = 0;
  for (auto _ : state) {
    packets = frame_stream(stream, chunk);
    benchmark::DoNotOptimize(packets);
  }
  if (packets != kPackets) state.SkipWithError("framer found the wrong number of packets");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(kPackets));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(stream.size()));
}
// 16384 divides the packet size; 16381 makes headers straddle reads.
BENCHMARK(BM_SmallPackets)->Arg(16384)->Arg(16381);

}  // namespace
