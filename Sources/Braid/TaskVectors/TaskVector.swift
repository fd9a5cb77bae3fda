import Foundation

/// A fine-tune stored as its difference from the base: per base matrix a `DeltaMatrix`, per
/// norm vector a float delta. Loaded memory-mapped from braid's task-vector GGUF (or, for the
/// full fine-tune, from a delta GGUF as shipped), and checked against the base it serves.
/// @unchecked Sendable: immutable after loading; every route and request shares it read-only.
public final class TaskVector: @unchecked Sendable {
    /// 3 added kept rows (`NAME.rows`, a bitmap); version 2 files are version 3 files that keep every row.
    public static let formatVersion = 3
    static let readableVersions = 2...3
    /// Order of the seven matrices of a block, as in `LayerWeights.matrices`.
    public static let matrixKinds = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]

    public let name: String
    public let description: String
    public let path: String
    public let file: GGUFFile
    /// [layer][kind] (nil: the fine-tune left that matrix alone)
    public let matrices: [[DeltaMatrix?]]
    /// [layer][kind]: the deltas of the block's norms and biases the fine-tune changed.
    public let vectors: [[VectorKind: [Float]]]
    public let outputNorm: [Float]?
    /// Kept-row lists and fp16 scales decoded to float: their matrices point into them.
    private let owned: [AnyObject]

    /// Loads `path` for `base`. A braid task vector must name `baseSHA256`; a plain delta GGUF
    /// (`general.type = delta`) is accepted when its shapes fit.
    public convenience init(path: String, base: LlamaModel, baseSHA256: String?) throws {
        try self.init(file: GGUFFile(path: path), base: base, baseSHA256: baseSHA256)
    }

    /// The task vector in an already parsed GGUF (`file.path` names it).
    public init(file: GGUFFile, base: LlamaModel, baseSHA256: String?) throws {
        self.file = file
        let path = file.path
        self.path = path
        let type = file.metadata["general.type"]?.stringValue
        let url = URL(fileURLWithPath: path)
        switch type {
        case "task_vector":
            let version = try file.int("braid.task_vector.version")
            guard Self.readableVersions.contains(version) else {
                throw BraidError.invalidArgument("\(path): task-vector format version \(version); this braid reads versions \(Self.readableVersions.lowerBound)–\(Self.readableVersions.upperBound) (rebuild it with braid compress)")
            }
            name = try file.string("braid.task_vector.task")
            description = file.metadata["braid.task_vector.description"]?.stringValue ?? ""
            let made = try file.string("braid.task_vector.base_sha256")
            if let expected = baseSHA256, made != expected {
                throw BraidError.invalidArgument("\(path) was made for another base model (base sha256 \(made.prefix(12))…, the loaded base is \(expected.prefix(12))…)")
            }
        case "delta":
            name = file.metadata["delta.task"]?.stringValue ?? String(url.lastPathComponent.prefix { $0 != "." })
            description = "full fine-tune delta \(url.lastPathComponent)"
        default:
            throw BraidError.invalidArgument("\(path) is neither a braid task vector nor a delta GGUF (general.type = \(type ?? "none"))")
        }

        try Self.checkName(name, in: path)

        let c = base.config
        func vector(_ n: String, _ count: Int) throws -> [Float]? {
            guard let t = file.tensors[n] else { return nil }
            guard t.elementCount == count, t.type == .f32 || t.type == .f16 else {
                throw BraidError.tensorShape(name: n, expected: [count], found: t.shape)
            }
            var out = [Float](repeating: 0, count: count)
            out.withUnsafeMutableBufferPointer { BlockCodec.decode(t.type, file.data(t), into: $0.baseAddress!, count: count) }
            return out
        }
        var matrices: [[DeltaMatrix?]] = []
        var vectors: [[VectorKind: [Float]]] = []
        var found = 0
        var owned: [AnyObject] = []
        for (l, layer) in base.weights.layers.enumerated() {
            var row: [DeltaMatrix?] = []
            for (kind, w) in layer.matrices {
                let name = "blk.\(l).\(kind).weight"
                let m = try Self.matrix(file, name, rows: w.rows, columns: w.columns, owned: &owned)
                if m != nil { found += 1 }
                row.append(m)
            }
            matrices.append(row)
            var deltas: [VectorKind: [Float]] = [:]
            for kind in layer.vectors.kinds {
                deltas[kind] = try vector(kind.tensorName(layer: l), layer.vectors[kind]!.count)
            }
            vectors.append(deltas)
        }
        self.matrices = matrices
        self.owned = owned
        self.vectors = vectors
        outputNorm = try vector("output_norm.weight", c.embeddingLength)
        // A fine-tune may have changed only norms or biases; a file with nothing for this base is no task vector.
        guard found > 0 || outputNorm != nil || vectors.contains(where: { !$0.isEmpty }) else {
            throw BraidError.invalidArgument("\(path) holds no tensor of this base model")
        }
        let known = Set(base.gguf.tensors.keys)
        for t in file.tensorList {
            let baseName = [".signs", ".scales", ".rows", ".delta", ".lora_a", ".lora_b"].reduce(t.name) { $0.replacingOccurrences(of: $1, with: "") }
            guard known.contains(baseName) else {
                throw BraidError.invalidArgument("\(path): tensor \(t.name) has no counterpart in the base model")
            }
        }
    }

    static func matrix(_ f: GGUFFile, _ name: String, rows: Int, columns: Int, owned: inout [AnyObject]) throws -> DeltaMatrix? {
        if let s = f.tensors[name + ".signs"] {
            var kept: RowIndex?
            if let t = f.tensors[name + ".rows"] {
                guard t.type == .i8, t.shape == [RowIndex.bitmapBytes(rows)] else {
                    throw BraidError.tensorShape(name: t.name, expected: [RowIndex.bitmapBytes(rows)], found: t.shape)
                }
                do { kept = try RowIndex(bitmap: f.data(t), baseRows: rows) } catch {
                    throw BraidError.invalidArgument("\(f.path): \(t.name): \(error)")
                }
                owned.append(kept!)
            }
            let stored = kept?.count ?? rows
            guard s.type == .i8, s.shape == [columns / 8, stored] else {
                throw BraidError.tensorShape(name: s.name, expected: [columns / 8, stored], found: s.shape)
            }
            let a = try f.tensor(name + ".scales")
            guard a.type == .f32 || a.type == .f16, a.elementCount == stored || a.elementCount == 1 else {
                throw BraidError.tensorShape(name: a.name, expected: [stored], found: a.shape)
            }
            var scales = f.data(a).assumingMemoryBound(to: Float.self)
            if a.type == .f16 {
                let decoded = DecodedFloats(count: a.elementCount)
                BlockCodec.decode(.f16, f.data(a), into: decoded.values, count: a.elementCount)
                owned.append(decoded)
                scales = UnsafePointer(decoded.values)
            }
            return .bits(BitMatrix(rows: rows, columns: columns, signs: f.data(s), scales: scales,
                                   perRowScales: a.elementCount == stored, kept: kept,
                                   overreadSafe: f.map.bytes.count - (s.fileOffset + s.byteCount) >= 32, scaleBytes: a.type == .f16 ? 2 : 4))
        }
        if let a = f.tensors[name + ".lora_a"] {
            // A LoRA update's factors: A (rank × columns) as stored, B (rows × rank) decoded to floats.
            let b = try f.tensor(name + ".lora_b")
            let rank = a.shape.count == 2 ? a.shape[1] : 0
            guard rank >= 1, a.shape == [columns, rank], a.type == .f32 || a.type == .f16 else {
                throw BraidError.tensorShape(name: a.name, expected: [columns, max(rank, 1)], found: a.shape)
            }
            guard b.shape == [rank, rows], b.type == .f32 || b.type == .f16 else {
                throw BraidError.tensorShape(name: b.name, expected: [rank, rows], found: b.shape)
            }
            let decoded = DecodedFloats(count: rows * rank)
            BlockCodec.decode(b.type, f.data(b), into: decoded.values, count: rows * rank)
            owned.append(decoded)
            return .lowRank(LowRankMatrix(a: WeightMatrix(type: a.type, rows: rank, columns: columns, data: f.data(a)),
                                          b: UnsafePointer(decoded.values), rows: rows))
        }
        if let d = f.tensors[name + ".delta"] ?? f.tensors[name] {
            guard d.shape == [columns, rows] else {
                throw BraidError.tensorShape(name: d.name, expected: [columns, rows], found: d.shape)
            }
            // Q4 deltas (a mixed-precision policy's matrices) get the interleaved kernel too.
            let storage = PackedWeightStorage()
            owned.append(storage)
            return .dense(WeightMatrix(type: d.type, rows: rows, columns: columns, data: f.data(d)).withInterleavedRows(storage, releasing: f.map))
        }
        return nil
    }

    /// Bytes of the task vector's tensors (what serving it reads).
    /// sha256 of the tensor data (the weights, not the metadata): what a gate trained for this
    /// vector names, so refitting the router stored in the metadata keeps its gates valid.
    public var weightsSHA256: String { SHA256.hex(UnsafeRawBufferPointer(rebasing: file.map.bytes[file.dataOffset...])) }

    public var byteCount: Int { file.tensorList.reduce(0) { $0 + $1.byteCount } }
}

/// Floats decoded from a file's fp16 tensor, owned by the vector whose matrices read them.
private final class DecodedFloats {
    let values: UnsafeMutablePointer<Float>
    init(count: Int) { values = .allocate(capacity: max(1, count)) }
    deinit { values.deallocate() }
}

extension TaskVector {
    /// Names a route or a router label already means: a task may not take them.
    public static let reservedNames: Set<String> = ["base", "none", "general", "braid", "auto", "blend"]

    /// A task name is letters, digits, - or _, and not one of `reservedNames`.
    public static func checkName(_ name: String, in file: String? = nil) throws {
        let source = file.map { " (in \($0))" } ?? ""
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw BraidError.invalidArgument("task name \"\(name)\"\(source) must be letters, digits, - or _")
        }
        guard !reservedNames.contains(name) else {
            throw BraidError.invalidArgument("task name \"\(name)\"\(source) is reserved (\(reservedNames.sorted().joined(separator: ", ")))")
        }
    }

    /// Refuses two vectors of one task: a blend or a router holding both would be ambiguous.
    public static func requireDistinctNames(_ vectors: [TaskVector]) throws {
        var seen: [String: String] = [:]
        for v in vectors {
            if let first = seen[v.name] { throw BraidError.duplicateTask(name: v.name, first: first, second: v.path) }
            seen[v.name] = v.path
        }
    }
}
