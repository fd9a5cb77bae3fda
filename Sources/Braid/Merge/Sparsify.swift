/// The two ways a merge thins a task vector before mixing: keep the largest magnitudes (TIES
/// trim) or drop entries at random and rescale the survivors (DARE).
public enum Sparsify {
    /// The k-th largest |x| over one or more buffers, found by a two-pass radix select on the
    /// bit patterns of |x| (for non-negative floats they order like the values), so the whole
    /// model's threshold (TIES reference code) costs two streaming passes and no sort.
    public struct MagnitudeSelect {
        private var high = [Int](repeating: 0, count: 1 << 15)
        private var low = [Int](repeating: 0, count: 1 << 16)
        private var bucket: UInt32?
        private var above = 0
        public private(set) var nonZero = 0

        public init() {}

        /// Pass 1 over every buffer: histogram of the high 16 bits.
        public mutating func count(_ values: UnsafeBufferPointer<Float>) {
            high.withUnsafeMutableBufferPointer { h in
                for v in values {
                    let bits = v.bitPattern & 0x7FFF_FFFF
                    if bits != 0 { h[Int(bits >> 16)] += 1 }
                }
            }
            nonZero += values.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
        }

        /// Between the passes: the high bucket the k-th largest falls in (false when k covers
        /// every non-zero entry, so no second pass is needed).
        public mutating func chooseBucket(keep: Int) -> Bool {
            guard keep > 0, keep < nonZero else { return false }
            var cumulative = 0
            for b in stride(from: high.count - 1, through: 0, by: -1) {
                if cumulative + high[b] >= keep {
                    bucket = UInt32(b)
                    above = cumulative
                    return true
                }
                cumulative += high[b]
            }
            return false
        }

        /// Pass 2 over every buffer: histogram of the low 16 bits inside the chosen bucket.
        public mutating func refine(_ values: UnsafeBufferPointer<Float>) {
            guard let b = bucket else { return }
            low.withUnsafeMutableBufferPointer { h in
                for v in values {
                    let bits = v.bitPattern & 0x7FFF_FFFF
                    if bits >> 16 == b { h[Int(bits & 0xFFFF)] += 1 }
                }
            }
        }

        /// Keep |x| ≥ the returned value (ties at the threshold are all kept).
        public func threshold(keep: Int) -> Float {
            if keep <= 0 { return .infinity }
            guard let b = bucket else { return .leastNonzeroMagnitude }
            var cumulative = above
            for l in stride(from: low.count - 1, through: 0, by: -1) {
                cumulative += low[l]
                if cumulative >= keep { return Float(bitPattern: b << 16 | UInt32(l)) }
            }
            return Float(bitPattern: b << 16)
        }
    }

    /// |x| threshold keeping the `density` fraction of one tensor's entries.
    public static func magnitudeThreshold(_ values: UnsafeBufferPointer<Float>, density: Float) -> Float {
        let keep = Int((Double(density) * Double(values.count)).rounded())
        var s = MagnitudeSelect()
        s.count(values)
        if s.chooseBucket(keep: keep) { s.refine(values) }
        return s.threshold(keep: keep)
    }

    /// Zeroes every entry below `threshold` in magnitude.
    public static func trim(_ values: UnsafeMutableBufferPointer<Float>, threshold: Float) {
        for i in values.indices where abs(values[i]) < threshold { values[i] = 0 }
    }

    /// DARE: drop each entry with probability 1 − density, divide the kept ones by density
    /// when `rescale` (so E[result] = input). Seeded per tensor and model, so a merge is
    /// reproducible whatever order tensors are visited in.
    public static func dropRandom(_ values: UnsafeMutableBufferPointer<Float>, density: Float, rescale: Bool, seed: UInt64) {
        guard density < 1 else { return }
        var rng = Xoshiro256(seed: seed)
        let scale: Float = rescale ? 1 / density : 1
        for i in values.indices {
            values[i] = rng.nextUnit() < density ? values[i] * scale : 0
        }
    }

    /// A seed for (merge seed, model, tensor): FNV-1a over the tensor name.
    public static func seed(_ base: UInt64, model: Int, tensor: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ base &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(model) &* 0xBF58_476D_1CE4_E5B9
        for b in tensor.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }
}
