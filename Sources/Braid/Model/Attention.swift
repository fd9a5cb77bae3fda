/// Causal attention of one query head over the cached keys and values of its stream.
enum Attention {
    /// out[0..<headDim] = softmax(q·Kᵀ·scale) · V over positions firstPosition...lastPosition
    /// (0 unless the layer has a sliding window).
    @inline(__always)
    static func head(query q: UnsafePointer<Float>, cache: KVCache, layer: Int, kvOffset: Int, headDim: Int,
                     firstPosition: Int = 0, lastPosition: Int, scale: Float, scores allScores: UnsafeMutablePointer<Float>,
                     out: UnsafeMutablePointer<Float>) {
        let qr = UnsafeRawPointer(q)
        // scores[t] for t in the window: the buffer is indexed from the window's start.
        let scores = allScores - firstPosition
        for t in firstPosition...lastPosition {
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
        let count = lastPosition - firstPosition + 1
        Ops.softmax(allScores, count: count)
        // ggml multiplies fp16 V by the probabilities converted to fp16: the same rounding here.
        for t in 0..<count { allScores[t] = Float(Float16(allScores[t])) }
        // Position by position, four running sums of 8 dimensions each: independent chains,
        // where one sum per 8 dimensions over every position would wait on each FMA in turn.
        let outr = UnsafeMutableRawPointer(out)
        var i = 0
        while i + 32 <= headDim {
            var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0
            for t in firstPosition...lastPosition {
                let v = UnsafeRawPointer(cache.value(layer: layer, position: t) + kvOffset) + 2 &* i
                let p = SIMD8<Float>(repeating: scores[t])
                a0 += p * SIMD8<Float>(v.loadUnaligned(as: SIMD8<Float16>.self))
                a1 += p * SIMD8<Float>(v.loadUnaligned(fromByteOffset: 16, as: SIMD8<Float16>.self))
                a2 += p * SIMD8<Float>(v.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float16>.self))
                a3 += p * SIMD8<Float>(v.loadUnaligned(fromByteOffset: 48, as: SIMD8<Float16>.self))
            }
            outr.storeBytes(of: a0, toByteOffset: 4 &* i, as: SIMD8<Float>.self)
            outr.storeBytes(of: a1, toByteOffset: 4 &* i &+ 32, as: SIMD8<Float>.self)
            outr.storeBytes(of: a2, toByteOffset: 4 &* i &+ 64, as: SIMD8<Float>.self)
            outr.storeBytes(of: a3, toByteOffset: 4 &* i &+ 96, as: SIMD8<Float>.self)
            i += 32
        }
        while i < headDim {
            var acc = SIMD8<Float>()
            for t in firstPosition...lastPosition {
                let v = UnsafeRawPointer(cache.value(layer: layer, position: t) + kvOffset)
                acc += scores[t] * SIMD8<Float>(v.loadUnaligned(fromByteOffset: 2 &* i, as: SIMD8<Float16>.self))
            }
            outr.storeBytes(of: acc, toByteOffset: 4 &* i, as: SIMD8<Float>.self)
            i += 8
        }
    }
}
