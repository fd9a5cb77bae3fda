/// Keys and values of one sequence (one stream) for every layer, stored as fp16 like
/// llama.cpp's default cache. Memory is reserved for the whole context up front but only
/// pages actually written count toward RSS.
/// @unchecked Sendable: one sequence owns it; the model's pool writes disjoint rows of it inside one forward call.
public final class KVCache: @unchecked Sendable {
    public let layers: Int
    public let capacity: Int
    public let kvDim: Int
    let keys: UnsafeMutablePointer<Float16>
    let values: UnsafeMutablePointer<Float16>
    /// Tokens stored (positions 0..<count are valid).
    public var count = 0
    /// The bridge's memory of this sequence's request (nil: no bridge), read by positions from
    /// its `from` on.
    public var bridge: BridgeMemory?

    public init(config: LlamaConfig, capacity: Int) {
        layers = config.blockCount
        self.capacity = capacity
        kvDim = config.kvDim
        let n = layers * capacity * kvDim
        keys = .allocate(capacity: n)
        values = .allocate(capacity: n)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    @inline(__always) func key(layer: Int, position: Int) -> UnsafeMutablePointer<Float16> {
        keys + (layer &* capacity &+ position) &* kvDim
    }

    @inline(__always) func value(layer: Int, position: Int) -> UnsafeMutablePointer<Float16> {
        values + (layer &* capacity &+ position) &* kvDim
    }

    /// Forgets everything from `position` on.
    public func truncate(to position: Int) { count = min(count, max(0, position)) }
    public func reset() { count = 0 }

    /// Takes the first `n` positions of `other` (a shared prompt prefix computed once).
    public func copyPrefix(from other: KVCache, count n: Int) {
        precondition(n <= other.count && n <= capacity && other.kvDim == kvDim && other.layers == layers)
        for l in 0..<layers {
            key(layer: l, position: 0).update(from: other.key(layer: l, position: 0), count: n * kvDim)
            value(layer: l, position: 0).update(from: other.value(layer: l, position: 0), count: n * kvDim)
        }
        count = n
    }

    /// Bytes reserved for keys and values.
    public var byteCount: Int { 2 * layers * capacity * kvDim * MemoryLayout<Float16>.size }
}
