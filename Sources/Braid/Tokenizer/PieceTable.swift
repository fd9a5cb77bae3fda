import Foundation

/// Token text → id without building a String or an Array per look-up: open addressing over
/// FNV-1a hashes of the UTF-8 bytes, each slot holding an id whose text is compared byte for
/// byte (a Dictionary of Strings hashes canonical equivalents alike, and took 0.15 s to fill
/// with Gemma's 262,144 tokens). For equal texts the later id wins, as in llama.cpp's
/// text-to-token map.
struct PieceTable: Sendable {
    /// Every token's text, one after another, and where each starts (plus the end).
    private let bytes: [UInt8]
    private let offsets: [Int]
    private let slots: [Int32]
    private let mask: Int
    /// The longest token text, in bytes.
    let maxLength: Int

    init(_ texts: [String]) {
        var bytes: [UInt8] = [], offsets = [0]
        offsets.reserveCapacity(texts.count + 1)
        for t in texts {
            bytes += t.utf8
            offsets.append(bytes.count)
        }
        var capacity = 16
        while capacity < 2 * texts.count { capacity *= 2 }
        var slots = [Int32](repeating: -1, count: capacity)
        let mask = capacity - 1
        var maxLength = 0
        bytes.withUnsafeBufferPointer { all in
            offsets.withUnsafeBufferPointer { offsets in
                slots.withUnsafeMutableBufferPointer { slots in
                    for id in 0..<texts.count {
                        let count = offsets[id + 1] - offsets[id]
                        maxLength = max(maxLength, count)
                        let slot = Self.slot(all.baseAddress.map { $0 + offsets[id] }, count, all, offsets, UnsafeBufferPointer(slots), mask)
                        slots[slot] = Int32(id)
                    }
                }
            }
        }
        self.bytes = bytes
        self.offsets = offsets
        self.slots = slots
        self.mask = mask
        self.maxLength = maxLength
    }

    /// Runs `body` with a look-up over raw pointers (no array access per call).
    func withLookup<R>(_ body: ((UnsafePointer<UInt8>?, Int) -> Int32?) -> R) -> R {
        bytes.withUnsafeBufferPointer { all in
            offsets.withUnsafeBufferPointer { offsets in
                slots.withUnsafeBufferPointer { slots in
                    let mask = self.mask, maxLength = self.maxLength
                    return body { p, count in
                        guard count <= maxLength else { return nil }
                        let id = slots[Self.slot(p, count, all, offsets, slots, mask)]
                        return id >= 0 ? id : nil
                    }
                }
            }
        }
    }

    func find(_ text: String) -> Int32? {
        var text = text
        return text.withUTF8 { p in withLookup { $0(p.baseAddress, p.count) } }
    }

    /// The slot holding the `count` bytes at `p`, else the empty slot where they would go:
    /// linear probing from their hash.
    @inline(__always)
    private static func slot(_ p: UnsafePointer<UInt8>?, _ count: Int, _ all: UnsafeBufferPointer<UInt8>,
                             _ offsets: UnsafeBufferPointer<Int>, _ slots: UnsafeBufferPointer<Int32>, _ mask: Int) -> Int {
        var h = hash(p, count) & mask
        while true {
            let id = Int(slots[h])
            if id < 0 { return h }
            let s = offsets[id], e = offsets[id + 1]
            if e - s == count && (count == 0 || memcmp(all.baseAddress! + s, p!, count) == 0) { return h }
            h = (h + 1) & mask
        }
    }

    @inline(__always)
    private static func hash(_ p: UnsafePointer<UInt8>?, _ count: Int) -> Int {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for i in 0..<count { h = (h ^ UInt64(p![i])) &* 0x0000_0100_0000_01B3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }
}
