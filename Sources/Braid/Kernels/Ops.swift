import Foundation

/// The small per-vector operations of a transformer block.
public enum Ops {
    /// out = x / sqrt(mean(x²) + eps) ⊙ weight
    @inline(__always)
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, eps: Float, into out: UnsafeMutablePointer<Float>, count n: Int) {
        let xr = UnsafeRawPointer(x), wr = UnsafeRawPointer(weight)
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            let v = xr.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
            acc += v * v
            i += 8
        }
        var sum = Double(acc.sum())
        while i < n { sum += Double(x[i] * x[i]); i += 1 }
        let scale = 1 / (Float(sum / Double(n)) + eps).squareRoot()
        i = 0
        let outr = UnsafeMutableRawPointer(out)
        while i + 8 <= n {
            let v = xr.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
            let w = wr.loadUnaligned(fromByteOffset: 4 &* i, as: SIMD8<Float>.self)
            outr.storeBytes(of: v * scale * w, toByteOffset: 4 &* i, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { out[i] = x[i] * scale * weight[i]; i += 1 }
    }

    /// RoPE in the layout of llama-architecture GGUF files: adjacent pairs (x[2i], x[2i+1])
    /// rotate by pos·base^(−2i/dims). Applied to `heads` heads of `headDim` each.
    /// The angle is stepped by repeated multiplication, as ggml does, so rounding matches.
    /// With `neoX`, the pairs are (x[i], x[i + dims/2]) instead (GPT-NeoX layout: Gemma, Qwen);
    /// `factors` divide pair i's angle (Llama 3's frequency factors) and `scale` multiplies it
    /// (linear RoPE scaling), in that order, after the stepping, as ggml does.
    @inline(__always)
    public static func rope(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, ropeDims: Int, position: Int, base: Float,
                            neoX: Bool = false, scale: Float = 1, factors: [Float]? = nil) {
        let thetaScale = powf(base, -2 / Float(ropeDims))
        var theta = Float(position)
        let half = ropeDims / 2
        var i = 0
        while i < ropeDims {
            let divided = factors.map { theta / $0[i / 2] } ?? theta
            let angle = scale == 1 ? divided : scale * divided
            let c = cosf(angle), s = sinf(angle)
            // Adjacent pairs (i, i+1), or NeoX pairs (i/2, i/2 + dims/2).
            let first = neoX ? i / 2 : i, second = neoX ? i / 2 + half : i + 1
            for h in 0..<heads {
                let p = x + h &* headDim
                let x0 = p[first], x1 = p[second]
                p[first] = x0 * c - x1 * s
                p[second] = x0 * s + x1 * c
            }
            theta *= thetaScale
            i += 2
        }
    }

    /// In-place softmax of n values.
    @inline(__always)
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        var m = -Float.infinity
        for i in 0..<n { m = max(m, x[i]) }
        var sum: Float = 0
        for i in 0..<n {
            let e = expf(x[i] - m)
            x[i] = e
            sum += e
        }
        let inv = 1 / sum
        for i in 0..<n { x[i] *= inv }
    }

    /// gate ← silu(gate) ⊙ up
    @inline(__always)
    public static func swiglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count n: Int) {
        for i in 0..<n {
            let g = gate[i]
            gate[i] = g / (1 + expf(-g)) * up[i]
        }
    }

    /// gate ← gelu(gate) ⊙ up, GELU with the tanh approximation, evaluated as ggml does on the
    /// CPU: through its fp16 table (the input rounded to fp16, the result stored as fp16), 0
    /// below −10 and the identity above 10.
    @inline(__always)
    public static func geglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count n: Int) {
        let table = geluTable
        for i in 0..<n {
            let g = gate[i]
            let value: Float
            if g <= -10 {
                value = 0
            } else if g >= 10 {
                value = g
            } else {
                value = Float(Float16(bitPattern: table[Int(Float16(g).bitPattern)]))
            }
            gate[i] = value * up[i]
        }
    }

    /// GELU (tanh form) of every fp16 value, as fp16 bits: one look-up instead of a tanh per element.
    /// nonisolated(unsafe): written once by the lazy initialiser, read-only afterwards.
    nonisolated(unsafe) static let geluTable: UnsafePointer<UInt16> = {
        let table = UnsafeMutablePointer<UInt16>.allocate(capacity: 1 << 16)
        for bits in 0..<(1 << 16) {
            let x = Float(Float16(bitPattern: UInt16(bits)))
            let inner: Float = 0.797_884_560_802_865_4 * x * (1 + 0.044715 * x * x)
            table[bits] = Float16(0.5 * x * (1 + tanhf(inner))).bitPattern
        }
        return UnsafePointer(table)
    }()

    /// x ← x + y
    @inline(__always)
    public static func add(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count n: Int) {
        for i in 0..<n { x[i] += y[i] }
    }

    /// Index of the largest value (the first one on ties).
    public static func argmax(_ x: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var value = -Float.infinity
        for i in 0..<x.count where x[i] > value {
            value = x[i]
            best = i
        }
        return best
    }
}
