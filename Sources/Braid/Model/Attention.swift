/// Causal attention of one query head over the cached keys and values of its stream.
enum Attention {
    /// out[0..<headDim] = softmax(q·Kᵀ·scale) · V over positions 0...lastPosition.
    @inline(__always)
    static func head(query q: UnsafePointer<Float>, cache: KVCache, layer: Int, kvOffset: Int, headDim: Int,
                     lastPosition: Int, scale: Float, scores: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let qr = UnsafeRawPointer(q)
        for t in 0...lastPosition {
            let k = UnsafeRawPointer(cache.key(layer: layer, position: t) + kvOffset)
            var acc = SIMD8<Float>()
            var i = 0
            while i < headDim {
                let kv = SIMD8<Float>(k.loadUnaligned(fromByteOffset: 2 &* i, as: SIMD8<Float16>.self))
                acc += kv * qr.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
                i += 8
            }
            scores[t] = acc.sum() * scale
        }
        Ops.softmax(scores, count: lastPosition + 1)
        let outr = UnsafeMutableRawPointer(out)
        var i = 0
        while i < headDim {
            var acc = SIMD8<Float>()
            for t in 0...lastPosition {
                let v = UnsafeRawPointer(cache.value(layer: layer, position: t) + kvOffset)
                acc += scores[t] * SIMD8<Float>(v.loadUnaligned(fromByteOffset: 2 &* i, as: SIMD8<Float16>.self))
            }
            outr.storeBytes(of: acc, toByteOffset: 4 &* i, as: SIMD8<Float>.self)
            i += 8
        }
    }
}
