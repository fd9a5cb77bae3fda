/// Scalar reference encoders and decoders for every tensor encoding, block by block.
/// Fast paths live in the dot kernels; these are the ground truth they are tested against,
/// and what writers (compress, merge, test fixtures) use to produce blocks.
public enum BlockCodec {
    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    /// Decodes `count` elements (a whole number of blocks) of `type` at `src` into `dst`.
    public static func decode(_ type: GGMLType, _ src: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>, count: Int) {
        if let format = type.unpackedFormat { return format.decode(src, into: dst, count: count) }
        switch type {
        case .f32:
            dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
        case .f16:
            for i in 0..<count { dst[i] = half(src, 2 * i) }
        case .bf16:
            for i in 0..<count { dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
        case .i8:
            for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: Int8.self)) }
        case .q4_0:
            for b in 0..<count / 32 {
                let blk = src + b * 18
                let d = half(blk, 0)
                for j in 0..<16 {
                    let q = blk.load(fromByteOffset: 2 + j, as: UInt8.self)
                    dst[b * 32 + j] = Float(Int(q & 0x0F) - 8) * d
                    dst[b * 32 + j + 16] = Float(Int(q >> 4) - 8) * d
                }
            }
        case .q4_1:
            for b in 0..<count / 32 {
                let blk = src + b * 20
                let d = half(blk, 0), m = half(blk, 2)
                for j in 0..<16 {
                    let q = blk.load(fromByteOffset: 4 + j, as: UInt8.self)
                    dst[b * 32 + j] = Float(q & 0x0F) * d + m
                    dst[b * 32 + j + 16] = Float(q >> 4) * d + m
                }
            }
        case .q8_0:
            for b in 0..<count / 32 {
                let blk = src + b * 34
                let d = half(blk, 0)
                for j in 0..<32 {
                    dst[b * 32 + j] = Float(blk.load(fromByteOffset: 2 + j, as: Int8.self)) * d
                }
            }
        default:
            break  // every other type has an unpacked format (above)
        }
    }

    /// Encodes `count` floats (a whole number of blocks) as `type`, the way ggml's reference
    /// quantisers do (round to nearest, scale chosen from the block's extremes). braid writes
    /// F32, F16, BF16, Q4_0, Q4_1 and Q8_0 (`encodable`); it reads every type but does not write
    /// the 5-bit and K-quant ones.
    public static func encode(_ type: GGMLType, _ src: UnsafePointer<Float>, into dst: UnsafeMutableRawPointer, count: Int) {
        func putHalf(_ v: Float, _ p: UnsafeMutableRawPointer, _ offset: Int) {
            p.storeBytes(of: Float16(v).bitPattern, toByteOffset: offset, as: UInt16.self)
        }
        switch type {
        case .f32:
            dst.copyMemory(from: src, byteCount: 4 * count)
        case .f16:
            for i in 0..<count { putHalf(src[i], dst, 2 * i) }
        case .bf16:
            // Round to nearest even, as ggml's fp32→bf16 conversion does (NaNs kept quiet).
            for i in 0..<count {
                let bits = src[i].bitPattern
                let rounded = src[i].isNaN ? (bits >> 16) | 64 : (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16
                dst.storeBytes(of: UInt16(truncatingIfNeeded: rounded), toByteOffset: 2 * i, as: UInt16.self)
            }
        case .i8:
            for i in 0..<count { dst.storeBytes(of: Int8(max(-128, min(127, src[i].rounded()))), toByteOffset: i, as: Int8.self) }
        case .q4_0:
            for b in 0..<count / 32 {
                let x = src + b * 32, blk = dst + b * 18
                var amax: Float = 0, maxv: Float = 0
                for j in 0..<32 where abs(x[j]) > amax { amax = abs(x[j]); maxv = x[j] }
                let d = maxv / -8
                let id: Float = d != 0 ? 1 / d : 0
                putHalf(d, blk, 0)
                for j in 0..<16 {
                    let a = UInt8(min(15, Int(x[j] * id + 8.5)))
                    let c = UInt8(min(15, Int(x[j + 16] * id + 8.5)))
                    blk.storeBytes(of: a | (c << 4), toByteOffset: 2 + j, as: UInt8.self)
                }
            }
        case .q4_1:
            for b in 0..<count / 32 {
                let x = src + b * 32, blk = dst + b * 20
                var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
                for j in 0..<32 { lo = min(lo, x[j]); hi = max(hi, x[j]) }
                let d = (hi - lo) / 15
                let id: Float = d != 0 ? 1 / d : 0
                putHalf(d, blk, 0)
                putHalf(lo, blk, 2)
                for j in 0..<16 {
                    let a = UInt8(min(15, Int((x[j] - lo) * id + 0.5)))
                    let c = UInt8(min(15, Int((x[j + 16] - lo) * id + 0.5)))
                    blk.storeBytes(of: a | (c << 4), toByteOffset: 4 + j, as: UInt8.self)
                }
            }
        case .q8_0:
            for b in 0..<count / 32 {
                let x = src + b * 32, blk = dst + b * 34
                var amax: Float = 0
                for j in 0..<32 { amax = max(amax, abs(x[j])) }
                let d = amax / 127
                let id: Float = d != 0 ? 1 / d : 0
                putHalf(d, blk, 0)
                for j in 0..<32 {
                    blk.storeBytes(of: Int8((x[j] * id).rounded()), toByteOffset: 2 + j, as: Int8.self)
                }
            }
        default:
            preconditionFailure("braid has no encoder for \(type.name) (callers choose from the encodable types)")
        }
    }

    /// Types `encode` writes.
    public static let encodable: Set<GGMLType> = [.f32, .f16, .bf16, .i8, .q4_0, .q4_1, .q8_0]

    /// Convenience: encode an array into a byte array.
    public static func encode(_ type: GGMLType, _ values: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: type.rowBytes(values.count))
        values.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBytes { d in encode(type, s.baseAddress!, into: d.baseAddress!, count: values.count) }
        }
        return out
    }

    /// Convenience: decode a byte array of `count` elements.
    public static func decode(_ type: GGMLType, _ bytes: [UInt8], count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { s in
            out.withUnsafeMutableBufferPointer { d in decode(type, s.baseAddress!, into: d.baseAddress!, count: count) }
        }
        return out
    }
}
