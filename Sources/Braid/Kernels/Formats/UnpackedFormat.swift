#if AVX2
import _Builtin_intrinsics.intel
#endif

/// A block encoding whose weights are, for every run of 16 elements, w = scale·code (+ min)
/// with small integer codes: the 5-bit formats and every K-quant. A format's own file says only
/// how one block unpacks into codes, scales and mins; decoding and the integer dot products
/// against 8-bit activations are shared (this file), so a new encoding is one small file and a
/// line in `GGMLType.unpackedFormat`.
protocol UnpackedFormat {
    /// Elements per block (32, or 256 for the K-quants).
    static var blockSize: Int { get }
    static var blockBytes: Int { get }
    /// Codes are signed (−32…31: w = scale·code) rather than unsigned (0…63: w = scale·code + min).
    static var signedCodes: Bool { get }
    static var hasMins: Bool { get }
    /// Unpacks the block at `blk`: `blockSize` codes (signed ones as their bit patterns), and
    /// one scale and one min per 16 elements, computed exactly as ggml's dequantiser computes
    /// them so that scale·code + min reproduces its floats bit for bit.
    static func unpack(_ blk: UnsafeRawPointer, codes: UnsafeMutablePointer<UInt8>,
                       scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>)

    // Requirements with the shared implementations below, so that each format's witness is
    // specialised for it (unpack inlined) when called through `GGMLType.unpackedFormat`.
    static func decode(_ src: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>, count: Int)
    static func multiply(_ w: WeightMatrix, _ x: QuantizedActivations, rows: Range<Int>, into y: UnsafeMutablePointer<Float>, ldy: Int)
    static func dot(_ w: WeightMatrix, _ r: Int, _ x: QuantizedActivations, _ c: Int) -> Float
}

extension UnpackedFormat {
    /// Decodes `count` elements (whole blocks) at `src` into `dst`: the scalar reference.
    static func decode(_ src: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>, count: Int) {
        withUnpackBuffers(blockSize) { codes, scales, mins in
            for b in 0..<count / blockSize {
                unpack(src + b * blockBytes, codes: codes, scales: scales, mins: mins)
                let y = dst + b * blockSize
                for j in 0..<blockSize {
                    let code = signedCodes ? Float(Int8(bitPattern: codes[j])) : Float(codes[j])
                    // Adding a zero min would turn −0 into +0: formats without mins skip it.
                    y[j] = hasMins ? scales[j / 16] * code + mins[j / 16] : scales[j / 16] * code
                }
            }
        }
    }

    /// Unpacks a row of `columns` elements.
    @inline(__always)
    static func unpackRow(_ row: UnsafeRawPointer, columns: Int, codes: UnsafeMutablePointer<UInt8>,
                          scales: UnsafeMutablePointer<Float>, mins: UnsafeMutablePointer<Float>) {
        let perBlock = blockSize / 16
        for b in 0..<columns / blockSize {
            unpack(row + b &* blockBytes, codes: codes + b &* blockSize, scales: scales + b &* perBlock, mins: mins + b &* perBlock)
        }
    }

    /// y[c·ldy + r] = W[r]·x[c] for the rows in `rows` and every column of `x`: each row is
    /// unpacked once, then multiplied with every column in integers.
    static func multiply(_ w: WeightMatrix, _ x: QuantizedActivations, rows: Range<Int>, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        withUnpackBuffers(w.columns) { codes, scales, mins in
            for r in rows {
                unpackRow(w.row(r), columns: w.columns, codes: codes, scales: scales, mins: mins)
                for c in 0..<x.columns {
                    y[c &* ldy &+ r] = dot(codes, scales, mins, x, c)
                }
            }
        }
    }

    /// W[r]·x[c] for one row and column.
    static func dot(_ w: WeightMatrix, _ r: Int, _ x: QuantizedActivations, _ c: Int) -> Float {
        withUnpackBuffers(w.columns) { codes, scales, mins in
            unpackRow(w.row(r), columns: w.columns, codes: codes, scales: scales, mins: mins)
            return dot(codes, scales, mins, x, c)
        }
    }

    /// Σ_j (scale·code_j + min)·x_j over an unpacked row, with x in 8-bit blocks of 32:
    /// integer products per 4 elements, scaled per 16 (the scale) and per 32 (the activation's d).
    @inline(__always)
    static func dot(_ codes: UnsafePointer<UInt8>, _ scales: UnsafePointer<Float>, _ mins: UnsafePointer<Float>,
                    _ x: QuantizedActivations, _ c: Int) -> Float {
        let nb = x.blocksPerColumn
        // K-quants meet the activations as llama.cpp's Q8_K (one scale per 256), the others as Q8_0.
        let (xq, xd, xs) = blockSize == 256 && x.superBlocks ? x.superColumn(c) : (x.q(c), x.d(c), x.halfSums(c))
        var total: Float = 0
        #if AVX2
        var acc = _mm256_setzero_ps()
        for g in 0..<nb {
            let w = UnsafeRawPointer(codes + g &* 32).loadUnaligned(as: SIMD4<Int64>.self)
            let p = signedCodes ? DotKernels.signedProducts(w, xq + g &* 32) : DotKernels.products(w, xq + g &* 32)
            // Lanes 0–3 hold the first 16 elements' sums, lanes 4–7 the second 16's.
            let s = _mm256_set_m128(_mm_set1_ps(scales[2 &* g &+ 1]), _mm_set1_ps(scales[2 &* g]))
            acc = _mm256_fmadd_ps(p, _mm256_mul_ps(s, _mm256_set1_ps(xd[g])), acc)
        }
        total = DotKernels.horizontalSum(acc)
        #else
        for g in 0..<nb {
            var lo: Int32 = 0, hi: Int32 = 0
            for j in 0..<16 {
                let a = signedCodes ? Int32(Int8(bitPattern: codes[g &* 32 &+ j])) : Int32(codes[g &* 32 &+ j])
                let b = signedCodes ? Int32(Int8(bitPattern: codes[g &* 32 &+ 16 &+ j])) : Int32(codes[g &* 32 &+ 16 &+ j])
                lo &+= a &* Int32(xq[g &* 32 &+ j])
                hi &+= b &* Int32(xq[g &* 32 &+ 16 &+ j])
            }
            total += (scales[2 &* g] * Float(lo) + scales[2 &* g &+ 1] * Float(hi)) * xd[g]
        }
        #endif
        if hasMins {
            for h in 0..<2 &* nb { total += mins[h] * xs[h] }
        }
        return total
    }
}

/// Scratch for one unpacked run of `count` elements (codes, and scales and mins per 16).
@inline(__always)
func withUnpackBuffers<R>(_ count: Int, _ body: (UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> R) -> R {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { codes in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * ((count + 15) / 16)) { f in
            body(codes.baseAddress!, f.baseAddress!, f.baseAddress! + (count + 15) / 16)
        }
    }
}

/// fp16 at a byte offset of a block.
@inline(__always)
func halfAt(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}
