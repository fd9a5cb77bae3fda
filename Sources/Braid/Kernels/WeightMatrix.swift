import CPrefetch

/// A rows × columns weight matrix viewed in place in its encoding (usually inside a mapped
/// GGUF file). Row r holds the weights that produce output r.
/// @unchecked Sendable: a view of read-only weight memory owned by the model's file or packed storage.
public struct WeightMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let columns: Int
    public let data: UnsafeRawPointer
    public let rowBytes: Int
    /// The same weights repacked eight rows at a time for `multiply` (base matrices of the
    /// formats that have such a layout); `data` stays the reference for everything that reads rows.
    public let rowGroups: RowGroups?

    public init(type: GGMLType, rows: Int, columns: Int, data: UnsafeRawPointer, rowGroups: RowGroups? = nil) {
        self.type = type
        self.rows = rows
        self.columns = columns
        self.data = data
        rowBytes = type.rowBytes(columns)
        self.rowGroups = rowGroups
    }

    /// The Q4 repacking (which also adds dense task-vector terms), if this matrix has it.
    public var interleaved: InterleavedNibbles? {
        if case .nibbles(let packed) = rowGroups { return packed }
        return nil
    }

    /// This matrix with an interleaved copy for `multiply` made in `storage`, where its
    /// encoding has one; the original's pages are then released from `map` if it holds them.
    public func withInterleavedRows(_ storage: PackedWeightStorage, releasing map: MappedFile? = nil) -> WeightMatrix {
        #if AVX2
        guard rowGroups == nil, let packed = RowGroups(packing: self, storage, releasing: map) else { return self }
        map?.release(data, count: byteCount)
        return WeightMatrix(type: type, rows: rows, columns: columns, data: data, rowGroups: packed)
        #else
        return self
        #endif
    }

    /// The same matrix read row by row (rows outside whole groups).
    private var rowMajor: WeightMatrix { WeightMatrix(type: type, rows: rows, columns: columns, data: data) }

    @inline(__always) public func row(_ r: Int) -> UnsafeRawPointer { data + r &* rowBytes }

    /// Bytes of weights.
    public var byteCount: Int { rowBytes * rows }

    /// Decodes row `r` into `dst` (`columns` floats).
    public func decodeRow(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        if case .q8(let packed) = rowGroups { return packed.decodeRow(r, into: dst) }
        BlockCodec.decode(type, row(r), into: dst, count: columns)
    }

    /// W[r]·x[c] for one row and column.
    @inline(__always)
    public func dot(_ r: Int, _ x: QuantizedActivations, _ c: Int) -> Float {
        switch type {
        case .q4_1: return DotKernels.nibbleDot(row(r), x, c, Q4_1Block.self)
        case .q4_0: return DotKernels.nibbleDot(row(r), x, c, Q4_0Block.self)
        case .q8_0: return DotKernels.q8Dot(row(r), x, c)
        case .f16, .f32, .bf16, .i8: return DotKernels.floatDot(row(r), type, x.floats! + c &* x.width, columns)
        default: return type.unpackedFormat!.dot(self, r, x, c)
        }
    }

    /// y[c·ldy + r] = W[r]·x[c] for rows in `rowRange` and every column of `x`.
    /// Quantised weights use the 8-bit activations, float weights the float ones.
    public func multiply(_ x: QuantizedActivations, rows rowRange: Range<Int>, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        let n = x.columns
        if let packed = rowGroups, packed.reads(x) {
            // Whole groups of 8 rows interleaved; rows outside them (a range not on group
            // boundaries) row by row.
            let g = RowGroups.rows
            let lo = min(rowRange.upperBound, (rowRange.lowerBound + g - 1) / g * g)
            let hi = max(lo, rowRange.upperBound / g * g)
            if rowRange.lowerBound < lo { rowMajor.multiply(x, rows: rowRange.lowerBound..<lo, into: y, ldy: ldy) }
            packed.multiply(x, groups: lo / g..<hi / g, into: y, ldy: ldy)
            if hi < rowRange.upperBound { rowMajor.multiply(x, rows: hi..<rowRange.upperBound, into: y, ldy: ldy) }
            return
        }
        switch type {
        case .q4_1: multiplyNibbles(x, rowRange, y, ldy, n, Q4_1Block.self)
        case .q4_0: multiplyNibbles(x, rowRange, y, ldy, n, Q4_0Block.self)
        case .q8_0:
            for r in rowRange {
                let w = row(r)
                prefetch(row: r &+ Self.prefetchDistance)
                var c = 0
                while c + 4 <= n {
                    let v = DotKernels.q8Dot4(w, x, c)
                    y[c &* ldy &+ r] = v[0]; y[(c + 1) &* ldy &+ r] = v[1]
                    y[(c + 2) &* ldy &+ r] = v[2]; y[(c + 3) &* ldy &+ r] = v[3]
                    c += 4
                }
                if c + 2 <= n {
                    let v = DotKernels.q8Dot2(w, x, c)
                    y[c &* ldy &+ r] = v[0]; y[(c + 1) &* ldy &+ r] = v[1]
                    c += 2
                }
                while c < n {
                    y[c &* ldy &+ r] = DotKernels.q8Dot(w, x, c)
                    c += 1
                }
            }
        case .f16, .f32, .bf16, .i8:
            let xf = x.floats!
            for r in rowRange {
                for c in 0..<n {
                    y[c &* ldy &+ r] = DotKernels.floatDot(row(r), type, xf + c &* x.width, columns)
                }
            }
        default:
            type.unpackedFormat!.multiply(self, x, rows: rowRange, into: y, ldy: ldy)
        }
    }

    /// Rows ahead whose bytes are requested before they are read: a thread's run of rows is too
    /// short a stream for the hardware prefetcher to reach full speed on its own (measured: decode
    /// 1.2× faster with it, BENCHMARKS.md).
    static let prefetchDistance = 8

    @inline(__always)
    private func prefetch(row r: Int) {
        let start = data + r &* rowBytes
        var offset = 0
        while offset < rowBytes {
            braid_prefetch(start + offset)
            offset &+= 64
        }
    }

    @inline(__always)
    private func multiplyNibbles<B: NibbleBlock>(_ x: QuantizedActivations, _ rowRange: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ n: Int, _: B.Type) {
        for r in rowRange {
            let w = row(r)
            prefetch(row: r &+ Self.prefetchDistance)
            var c = 0
            while c + 4 <= n {
                let v = DotKernels.nibbleDot4(w, x, c, B.self)
                y[c &* ldy &+ r] = v[0]; y[(c + 1) &* ldy &+ r] = v[1]
                y[(c + 2) &* ldy &+ r] = v[2]; y[(c + 3) &* ldy &+ r] = v[3]
                c += 4
            }
            if c + 2 <= n {
                let v = DotKernels.nibbleDot2(w, x, c, B.self)
                y[c &* ldy &+ r] = v[0]; y[(c + 1) &* ldy &+ r] = v[1]
                c += 2
            }
            while c < n {
                y[c &* ldy &+ r] = DotKernels.nibbleDot(w, x, c, B.self)
                c += 1
            }
        }
    }
}

/// A matrix's weights repacked eight rows at a time, in the layout of its encoding.
public enum RowGroups: Sendable {
    case nibbles(InterleavedNibbles)
    case q8(InterleavedQ8)
    case codes(InterleavedCodes)

    public static let rows = 8

    /// The repacked copy of `w` in `storage`, for an encoding that has one.
    init?(packing w: WeightMatrix, _ storage: PackedWeightStorage, releasing map: MappedFile?) {
        if let count = InterleavedNibbles.byteCount(w) {
            self = .nibbles(InterleavedNibbles(packing: w, into: storage.allocate(count), releasing: map))
        } else if let count = InterleavedQ8.byteCount(w) {
            self = .q8(InterleavedQ8(packing: w, into: storage.allocate(count), releasing: map))
        } else if let count = InterleavedCodes.byteCount(w) {
            self = .codes(InterleavedCodes(packing: w, into: storage.allocate(count), releasing: map))
        } else {
            return nil
        }
    }

    /// How the kernels sum byte products.
    public var dot: ByteDotKind {
        get {
            switch self {
            case .nibbles(let p): return p.dot
            case .q8(let p): return p.dot
            case .codes(let p): return p.dot
            }
        }
        set {
            switch self {
            case .nibbles(var p): p.dot = newValue; self = .nibbles(p)
            case .q8(var p): p.dot = newValue; self = .q8(p)
            case .codes(var p): p.dot = newValue; self = .codes(p)
            }
        }
    }

    /// Whether the kernel takes these activations (a K-quant's needs their Q8_K copy, which a
    /// model with K-quant matrices always makes; others fall back to the row-major kernel).
    func reads(_ x: QuantizedActivations) -> Bool {
        if case .codes(let p) = self { return p.layout.superSize == 32 || x.superBlocks }
        return true
    }

    /// y[c·ldy + r] = W[r]·x[c] for the rows of `groups` and every column of `x`.
    @inline(__always)
    func multiply(_ x: QuantizedActivations, groups: Range<Int>, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        switch self {
        case .nibbles(let p): p.multiply(x, groups: groups, into: y, ldy: ldy)
        case .q8(let p): p.multiply(x, groups: groups, into: y, ldy: ldy)
        case .codes(let p): p.multiply(x, groups: groups, into: y, ldy: ldy)
        }
    }
}
