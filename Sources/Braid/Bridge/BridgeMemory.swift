import Foundation

/// What one request's bridge reads: each layer's keys and values over the source's states of
/// that request's user message, computed once (a per-request cache, like a KV cache).
/// @unchecked Sendable: immutable after it is made.
public final class BridgeMemory: @unchecked Sendable {
    public let bridge: Bridge
    /// Source states.
    public let count: Int
    /// The first position of the small model's sequence that the bridge writes.
    public let from: Int
    let keys: [[Float]]
    let values: [[Float]]

    init(bridge: Bridge, count: Int, from: Int, keys: [[Float]], values: [[Float]]) {
        self.bridge = bridge
        self.count = count
        self.from = from
        self.keys = keys
        self.values = values
    }

    /// The same states read from another position on.
    public func starting(at position: Int) -> BridgeMemory {
        BridgeMemory(bridge: bridge, count: count, from: position, keys: keys, values: values)
    }
}
