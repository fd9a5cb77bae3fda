import Foundation

/// The machine's memory read bandwidth as the model's threads see it: the time to sum a buffer
/// far larger than the caches, split across the pool (the best of a few passes). Decode reads
/// every weight once per token, so tokens/s × bytes per token over this is how close decode
/// runs to the memory's limit.
public enum ReadBandwidth {
    /// Bytes per second.
    public static func measure(pool: ThreadPool, bytes: Int = 512 << 20, passes: Int = 4) -> Double {
        let count = bytes / MemoryLayout<SIMD8<Float>>.stride
        let buffer = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: SIMD8(repeating: 1), count: count)
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: pool.threadCount)
        defer { sums.deallocate() }
        var best = Double.infinity
        for _ in 0..<passes {
            let start = DispatchTime.now().uptimeNanoseconds
            pool.run { t in
                // Four independent sums: one would wait on each add in turn.
                var a = SIMD8<Float>(), b = a, c = a, d = a
                let range = ThreadPool.slice(count / 4, t, pool.threadCount)
                for i in range {
                    a += buffer[4 &* i]; b += buffer[4 &* i &+ 1]; c += buffer[4 &* i &+ 2]; d += buffer[4 &* i &+ 3]
                }
                sums[t] = (a + b + c + d).sum()
            }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        // The sums are read so the loads are not optimised away.
        return (0..<pool.threadCount).reduce(0) { $0 + Double(sums[$1]) } > 0 ? Double(count / 4 * 4 * MemoryLayout<SIMD8<Float>>.stride) / best : 0
    }
}
