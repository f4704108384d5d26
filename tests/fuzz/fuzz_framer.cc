// Fuzzes the Framer: a stream cut at random points must give the events of a whole-stream parse,
// through next() and through next_packet().
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/framer.h"
#include "common/wire.h"

namespace {

using sluice::FrameEvent;
using Kind = FrameEvent::Kind;

struct Event {
  Kind kind;
  std::uint32_t frame_length;
  std::uint8_t seq;
  bool first_frame;
  std::uint64_t logical_length;
  bool operator==(const Event&) const = default;
};

void require(bool ok) {
  if (!ok) std::abort();
}

struct Reference {
  std::vector<Event> events;
  bool at_boundary;  // the stream ends between two packets
};

// The reference: walk the whole stream at once and list the events in order.
Reference reference(const std::uint8_t* data, std::size_t size) {
  Reference ref;
  std::size_t pos = 0;
  std::uint64_t logical = 0;
  bool continued = false;
  while (size - pos >= sluice::wire::kHeaderSize) {
    const std::uint32_t length = sluice::wire::le24(data + pos);
    logical += length;
    ref.events.push_back({Kind::kHeader, length, data[pos + 3], !continued, logical});
    pos += sluice::wire::kHeaderSize;
    if (size - pos < length) break;  // the frame's payload is incomplete
    pos += length;
    continued = length == sluice::wire::kMaxFrame;
    if (!continued) {
      ref.events.push_back({Kind::kPacketEnd, 0, 0, false, logical});
      logical = 0;
    }
  }
  ref.at_boundary =
      pos == size && (ref.events.empty() || ref.events.back().kind == Kind::kPacketEnd);
  return ref;
}

// Feeds one chunk, collecting events until the framer asks for more bytes.
// With `whole`, steps with next_packet, whose kPacket stands for a kHeader and
// a kPacketEnd.
void feed(sluice::Framer& framer, bool whole, const std::uint8_t* p, std::size_t left,
          std::vector<Event>& events, std::size_t& consumed) {
  for (int guard = 0;; ++guard) {
    require(guard < (1 << 20));  // every event but kNeedMore makes progress
    const FrameEvent ev = whole ? framer.next_packet(p, left) : framer.next(p, left);
    require(ev.consumed <= left);
    p += ev.consumed;
    left -= ev.consumed;
    consumed += ev.consumed;
    require(framer.header_have() < sluice::wire::kHeaderSize);
    require(framer.payload_left() <= sluice::wire::kMaxFrame);
    if (ev.kind == Kind::kNeedMore) {
      require(left == 0);  // kNeedMore: every byte given was consumed
      return;
    }
    if (ev.kind == Kind::kPacket) {
      require(ev.first_frame && ev.frame_length < sluice::wire::kMaxFrame && framer.at_boundary());
      require(ev.consumed == sluice::wire::kHeaderSize + ev.frame_length);
      events.push_back({Kind::kHeader, ev.frame_length, ev.seq, true, ev.logical_length});
      events.push_back({Kind::kPacketEnd, 0, 0, false, ev.logical_length});
    } else if (ev.kind == Kind::kPacketEnd) {
      events.push_back({ev.kind, 0, 0, false, ev.logical_length});
    } else {
      events.push_back({ev.kind, ev.frame_length, ev.seq, ev.first_frame, ev.logical_length});
    }
  }
}

}  // namespace

// Input: 1 byte n, then n chunk sizes (cycled; 0 also feeds an empty chunk),
// then the stream itself.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t n_cuts = std::min<std::size_t>(data[0], size - 1);
  const std::uint8_t* cuts = data + 1;
  const std::uint8_t* stream = cuts + n_cuts;
  const std::size_t stream_size = size - 1 - n_cuts;

  const Reference ref = reference(stream, stream_size);
  for (const bool whole : {false, true}) {
    sluice::Framer framer;
    std::vector<Event> events;
    std::size_t consumed = 0;
    for (std::size_t cut = 0; consumed < stream_size; ++cut) {
      std::size_t want = n_cuts ? cuts[cut % n_cuts] : stream_size;
      if (want == 0) {
        feed(framer, whole, stream + consumed, 0, events, consumed);
        want = 1;
      }
      feed(framer, whole, stream + consumed, std::min(want, stream_size - consumed), events,
           consumed);
    }
    feed(framer, whole, stream + consumed, 0, events, consumed);  // a pending empty-frame end
    require(consumed == stream_size);
    require(events == ref.events);
    require(framer.at_boundary() == ref.at_boundary);
  }
  return 0;
}
