import Foundation

/// One column of a forward pass: a token at a position of a stream (its KV cache).
public struct BatchEntry {
    public var token: Int32
    public var position: Int
    public var cache: KVCache
    public var route: Route
    public init(token: Int32, position: Int, cache: KVCache, route: Route = .base) {
        self.token = token
        self.position = position
        self.cache = cache
        self.route = route
    }
}

/// A Llama-family model over a mapped GGUF: the forward pass for a batch of columns, each
/// with its own position and KV cache, so prefill (one stream, consecutive positions),
/// decode (one column) and multi-stream decode share one code path. Every matrix is read once
/// per batch, whatever the number of columns.
/// @unchecked Sendable: one caller runs forward passes at a time (a command's thread or the serving engine's); weights are read-only.
public final class LlamaModel: @unchecked Sendable {
    public let gguf: GGUFFile
    public let config: LlamaConfig
    public var weights: LlamaWeights
    public let pool: ThreadPool
    /// Columns per forward call; longer prompts are fed in chunks of this size.
    public let maxBatch: Int

    private let scratch: Scratch

    /// The float inputs of the linear layers, for calibration: (layer, input, values, columns).
    /// Inputs: 0 attention (q, k, v), 1 attention output (o), 2 feed-forward (gate, up), 3 down;
    /// and 4, layer −1: the final-norm hidden states.
    public var observer: ((Int, Int, UnsafePointer<Float>, Int) -> Void)?

    /// When set, a batch whose columns all share one task route runs on weights materialised
    /// for that route (W0 + Σ c_k·D_k) instead of adding the task terms on the fly.
    public var materialized: MaterializedCache?

    public init(gguf: GGUFFile, threads: Int, maxBatch: Int = 64) throws {
        self.gguf = gguf
        config = try LlamaConfig(gguf: gguf)
        let loaded = try LlamaWeights(gguf: gguf, config: config).withInterleavedRows(releasing: gguf.map)
        weights = loaded
        pool = ThreadPool(threads: threads)
        self.maxBatch = maxBatch
        // K-quant matrices read their inputs as Q8_K as well (llama.cpp's numerics).
        let kQuants = loaded.layers.contains { $0.matrices.contains { $0.1.type.blockSize == 256 } }
        scratch = Scratch(config: config, columns: maxBatch, threads: pool.threadCount, superBlocks: kQuants)
    }

    public convenience init(path: String, threads: Int, maxBatch: Int = 64) throws {
        try self.init(gguf: GGUFFile(path: path), threads: threads, maxBatch: maxBatch)
    }

    public func makeCache(capacity: Int? = nil) -> KVCache {
        KVCache(config: config, capacity: min(capacity ?? config.contextLength, config.contextLength))
    }

    /// Logits of output column `i` of the last forward call.
    public func logits(_ i: Int = 0) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: scratch.logits + i * config.vocabularySize, count: config.vocabularySize)
    }

    /// Final-norm hidden state of output column `j` of the last forward call made with `head: false`
    /// (what interweaving blends before the LM head).
    public func hidden(_ j: Int) -> UnsafeMutablePointer<Float> {
        scratch.xb + j * config.embeddingLength
    }

    /// Logits of hidden(0..<columns) into logits(0..<columns): the LM head alone.
    public func head(columns: Int) {
        precondition(columns > 0 && columns <= maxBatch)
        scratch.xq.quantize(scratch.xb, columns: columns)
        project([(weights.output, scratch.logits, config.vocabularySize, -1)], scratch.xq, layer: -1, routed: [])
    }

    /// Feeds `tokens` to `cache` from its current end, in chunks; returns the last token's logits
    /// (with `head: false`, its final-norm hidden state is left in hidden(0) and the result is empty).
    @discardableResult
    public func prefill(_ tokens: [Int32], cache: KVCache, route: Route = .base, layers: Int? = nil,
                        head: Bool = true) throws -> UnsafeBufferPointer<Float> {
        guard !tokens.isEmpty else { throw BraidError.invalidArgument("nothing to evaluate: the prompt has no tokens") }
        guard cache.count + tokens.count <= cache.capacity else {
            throw BraidError.promptTooLong(tokens: cache.count + tokens.count, context: cache.capacity)
        }
        var start = 0
        while start < tokens.count {
            let end = min(tokens.count, start + maxBatch)
            let base = cache.count
            let batch = (start..<end).map { BatchEntry(token: tokens[$0], position: base + $0 - start, cache: cache, route: route) }
            try forward(batch, outputs: end == tokens.count && layers == nil ? [batch.count - 1] : [], layers: layers, head: head)
            start = end
        }
        return head ? logits(0) : UnsafeBufferPointer(start: nil, count: 0)
    }

    /// One token at the end of `cache`.
    @discardableResult
    public func decode(_ token: Int32, cache: KVCache, route: Route = .base) throws -> UnsafeBufferPointer<Float> {
        try forward([BatchEntry(token: token, position: cache.count, cache: cache, route: route)], outputs: [0])
        return logits(0)
    }

    /// Runs the batch; logits of the columns listed in `outputs` land in `logits(0..)` in that order
    /// (with `head: false`, only their final-norm hidden states, in `hidden(0..)`).
    /// `layers` stops after that many blocks (router features; the cache then holds only those).
    public func forward(_ batch: [BatchEntry], outputs: [Int], layers: Int? = nil, head: Bool = true) throws {
        let n = batch.count
        guard n > 0, n <= maxBatch, outputs.count <= maxBatch else {
            throw BraidError.invalidArgument("batch of \(n) columns (at most \(maxBatch))")
        }
        for e in batch {
            guard e.position < e.cache.capacity else {
                throw BraidError.promptTooLong(tokens: e.position + 1, context: e.cache.capacity)
            }
            guard e.position <= e.cache.count || batch.contains(where: { $0.cache === e.cache && $0.position == e.position - 1 }) else {
                throw BraidError.invalidArgument("position \(e.position) leaves a gap in a cache holding \(e.cache.count) tokens")
            }
            guard e.token >= 0, Int(e.token) < config.vocabularySize else {
                throw BraidError.invalidArgument("token id \(e.token) is outside the vocabulary")
            }
        }
        var batch = batch
        var weights = self.weights
        if let cache = materialized, let first = batch.first, !first.route.isBase,
           batch.allSatisfy({ $0.route.label == first.route.label }) {
            weights = cache.weights(for: first.route, model: self)
            for i in batch.indices { batch[i].route = .base }
        }
        let c = config, s = scratch
        let d = c.embeddingLength, qd = c.queryDim, kvd = c.kvDim, ff = c.feedForwardLength
        let x = s.x, xb = s.xb

        for (i, e) in batch.enumerated() {
            weights.tokenEmbedding.decodeRow(Int(e.token), into: x + i * d)
            if c.embeddingScale != 1 { for j in 0..<d { x[i * d + j] *= c.embeddingScale } }
        }
        let caches = batch.map { $0.cache }
        let positions = batch.map { $0.position }
        // The Σ c_k·D_k·x part: each task vector in the batch with the columns it serves.
        var routed: [(TaskVector, [(Int, Float)])] = []
        for (i, e) in batch.enumerated() {
            for (vector, coefficient) in e.route.terms {
                if let g = routed.firstIndex(where: { $0.0 === vector }) {
                    routed[g].1.append((i, coefficient))
                } else {
                    routed.append((vector, [(i, coefficient)]))
                }
            }
        }
        let group = c.headCount / c.headCountKV
        let scale = 1 / Float(c.headDim).squareRoot()

        let bridged = batch.contains { $0.cache.bridge != nil }
        for (l, w) in weights.layers.prefix(layers ?? weights.layers.count).enumerated() {
            if bridged { addBridges(batch, block: l, into: x) }
            // attention
            let attnNorms = columnVectors(batch, w.vectors, .attention, layer: l)!
            prepare(s.xq, xb, n, tables: !routed.isEmpty) { i in norm(x, attnNorms[i], i, into: xb) }
            observer?(l, 0, xb, n)
            project([(w.q, s.q, qd, 0), (w.k, s.k, kvd, 1), (w.v, s.v, kvd, 2)], s.xq, layer: l, routed: routed)
            let rope = c.rope(layer: l)
            // Biases (Qwen2) before the head norms and RoPE, as llama.cpp adds them.
            for (kind, out, width) in [(VectorKind.queryBias, s.q, qd), (.keyBias, s.k, kvd), (.valueBias, s.v, kvd)] {
                guard let biases = columnVectors(batch, w.vectors, kind, layer: l) else { continue }
                for i in 0..<n { Ops.add(out + i * width, biases[i], count: width) }
            }
            let qNorms = columnVectors(batch, w.vectors, .query, layer: l), kNorms = columnVectors(batch, w.vectors, .key, layer: l)
            for i in 0..<n {
                if let qNorms, let kNorms {
                    for h in 0..<c.headCount { headNorm(s.q + i * qd + h * c.headDim, qNorms[i]) }
                    for h in 0..<c.headCountKV { headNorm(s.k + i * kvd + h * c.headDim, kNorms[i]) }
                }
                Ops.rope(s.q + i * qd, heads: c.headCount, headDim: c.headDim, ropeDims: c.ropeDimensions, position: positions[i],
                         base: rope.base, neoX: c.ropeNeoX, scale: rope.scale, factors: weights.ropeFactors)
                Ops.rope(s.k + i * kvd, heads: c.headCountKV, headDim: c.headDim, ropeDims: c.ropeDimensions, position: positions[i],
                         base: rope.base, neoX: c.ropeNeoX, scale: rope.scale, factors: weights.ropeFactors)
                // ggml multiplies the fp16 keys by the query converted to fp16: the same rounding here.
                for j in 0..<qd { s.q[i * qd + j] = Float(Float16(s.q[i * qd + j])) }
                let kc = caches[i].key(layer: l, position: positions[i]), vc = caches[i].value(layer: l, position: positions[i])
                for j in 0..<kvd {
                    kc[j] = Float16(s.k[i * kvd + j])
                    vc[j] = Float16(s.v[i * kvd + j])
                }
            }
            let pairs = n * c.headCount
            let window = c.localLayers[l] ? c.slidingWindow : 0
            pool.run { t in
                let scores = s.scores + t * s.scoreStride
                for p in ThreadPool.slice(pairs, t, pool.threadCount) {
                    let i = p / c.headCount, h = p % c.headCount
                    Attention.head(query: s.q + i * qd + h * c.headDim, cache: caches[i], layer: l,
                                   kvOffset: (h / group) * c.headDim, headDim: c.headDim,
                                   firstPosition: window > 0 ? max(0, positions[i] - window + 1) : 0, lastPosition: positions[i],
                                   scale: scale, scores: scores, out: s.att + i * qd + h * c.headDim)
                }
            }
            observer?(l, 1, s.att, n)
            prepare(s.attq, s.att, n, tables: !routed.isEmpty) { _ in }
            project([(w.o, s.tmp, d, 3)], s.attq, layer: l, routed: routed)
            if let post = columnVectors(batch, w.vectors, .postAttention, layer: l) { for i in 0..<n { rowNorm(s.tmp + i * d, post[i]) } }
            Ops.add(x, s.tmp, count: n * d)

            // feed-forward
            let ffnNorms = columnVectors(batch, w.vectors, .ffn, layer: l)!
            prepare(s.xq, xb, n, tables: !routed.isEmpty) { i in norm(x, ffnNorms[i], i, into: xb) }
            observer?(l, 2, xb, n)
            project([(w.gate, s.gate, ff, 4), (w.up, s.up, ff, 5)], s.xq, layer: l, routed: routed)
            let gelu = c.activation == .geluTanh
            prepare(s.hq, s.gate, n, tables: !routed.isEmpty) { i in
                if gelu {
                    Ops.geglu(s.gate + i * ff, s.up + i * ff, count: ff)
                } else {
                    Ops.swiglu(s.gate + i * ff, s.up + i * ff, count: ff)
                }
            }
            observer?(l, 3, s.gate, n)
            project([(w.down, s.tmp, d, 6)], s.hq, layer: l, routed: routed)
            if let post = columnVectors(batch, w.vectors, .postFFN, layer: l) { for i in 0..<n { rowNorm(s.tmp + i * d, post[i]) } }
            Ops.add(x, s.tmp, count: n * d)
        }
        for e in batch { e.cache.count = max(e.cache.count, e.position + 1) }

        if let observe = observer {
            // Final-norm hidden states of every column (the router's features).
            for i in 0..<n {
                let weight = batch[i].route.norm(-1, weights.outputNorm) { $0.outputNorm } ?? weights.outputNorm
                Ops.rmsNorm(x + i * d, weight: weight, eps: c.rmsEpsilon, into: xb + i * d, count: d)
            }
            observe(-1, 4, xb, n)
        }
        guard !outputs.isEmpty else { return }
        for (j, i) in outputs.enumerated() {
            let weight = batch[i].route.norm(-1, weights.outputNorm) { $0.outputNorm } ?? weights.outputNorm
            Ops.rmsNorm(x + i * d, weight: weight, eps: c.rmsEpsilon, into: xb + j * d, count: d)
        }
        if head { self.head(columns: outputs.count) }
    }

    /// The bridge layers at block `l`'s input, for the columns whose stream has a bridge memory
    /// and whose position it covers; columns sharing a memory in one call.
    private func addBridges(_ batch: [BatchEntry], block l: Int, into x: UnsafeMutablePointer<Float>) {
        var groups: [(BridgeMemory, Int, [Int])] = []
        for (i, e) in batch.enumerated() {
            guard let m = e.cache.bridge, e.position >= m.from, let layer = m.bridge.layer(atBlock: l) else { continue }
            if let g = groups.firstIndex(where: { $0.0 === m }) { groups[g].2.append(i) } else { groups.append((m, layer, [i])) }
        }
        for (memory, layer, columns) in groups { memory.bridge.add(layer: layer, memory: memory, x: x, columns: columns) }
    }

    /// RMS norm of one head of q or k in place (Gemma's q/k norms).
    @inline(__always)
    private func headNorm(_ v: UnsafeMutablePointer<Float>, _ weight: [Float]) {
        Ops.rmsNorm(v, weight: weight, eps: config.rmsEpsilon, into: v, count: config.headDim)
    }

    /// RMS norm of one d-wide column in place (Gemma's post-attention and post-FFN norms).
    @inline(__always)
    private func rowNorm(_ v: UnsafeMutablePointer<Float>, _ weight: [Float]) {
        Ops.rmsNorm(v, weight: weight, eps: config.rmsEpsilon, into: v, count: config.embeddingLength)
    }

    /// Each column's norm weight of `kind` in block `l` (nil where the block has none): the
    /// base's with its route's norm deltas applied (blended once per
    /// route and key). Looked up here, on the calling thread, before the pool's threads run
    /// `prepare`, so the workers only read: they neither compute the same blend at once nor
    /// take the route's lock. (That lock is a Synchronization.Mutex, whose contended path is a
    /// futex in the Swift runtime that ThreadSanitizer cannot see; when the workers shared it,
    /// TSan reported its guarded dictionary as a race.)
    private func columnVectors(_ batch: [BatchEntry], _ vectors: BlockVectors, _ kind: VectorKind, layer l: Int) -> [[Float]]? {
        guard let base = vectors[kind] else { return nil }
        let key = l * VectorKind.allCases.count + kind.rawValue
        return batch.map { $0.route.isBase ? base : ($0.route.norm(key, base) { $0.vectors[l][kind] }) ?? base }
    }

    /// RMS norm of column `i` with its weight (`columnNorms`).
    @inline(__always)
    private func norm(_ x: UnsafeMutablePointer<Float>, _ weight: [Float], _ i: Int, into out: UnsafeMutablePointer<Float>) {
        let d = config.embeddingLength
        Ops.rmsNorm(x + i * d, weight: weight, eps: config.rmsEpsilon, into: out + i * d, count: d)
    }

    /// Makes the input of the next projections: `fill(i)` writes column i of `input`, which is
    /// then quantised into `q`, with its sign tables where task terms will read them. Columns
    /// are independent, so with several the threads share them (a decode batch's per-column
    /// work would otherwise run on one core while the others wait).
    @inline(__always)
    private func prepare(_ q: QuantizedActivations, _ input: UnsafeMutablePointer<Float>, _ n: Int, tables: Bool, _ fill: (Int) -> Void) {
        q.begin(input, columns: n)
        @inline(__always) func make(_ i: Int) {
            fill(i)
            q.quantizeColumn(i)
            if tables { q.buildSignTables(column: i) }
        }
        let threads = pool.threadCount
        guard n > 1, threads > 1 else {
            for i in 0..<n { make(i) }
            return
        }
        pool.run { t in
            for i in ThreadPool.slice(n, t, threads) { make(i) }
        }
    }

    static let chunkTiles = 8

    /// y = W0·x + Σ c_k·D_k·x for several matrices sharing one input (quantised, with sign
    /// tables when `routed` is not empty: `prepare`), their rows claimed in chunks by the
    /// threads; each routed column adds its own task terms to the rows just made.
    @inline(__always)
    private func project(_ jobs: [(WeightMatrix, UnsafeMutablePointer<Float>, Int, Int)], _ x: QuantizedActivations,
                         layer: Int, routed: [(TaskVector, [(Int, Float)])]) {
        let total = jobs.reduce(0) { $0 + $1.0.rows }
        // Chunks of whole 32-row tiles (the 1-bit kernel's unit), a multiple of the thread count,
        // about `chunkTiles` long: long runs stream from memory faster (decode 1.4× with 256 rows
        // than with 32, BENCHMARKS.md), several per thread let an idle core take a busy one's share.
        let tiles = (total + BitMatrix.tileRows - 1) / BitMatrix.tileRows
        let chunkCount = pool.threadCount * max(1, tiles / (pool.threadCount * Self.chunkTiles))
        var grain = (tiles + chunkCount - 1) / chunkCount * BitMatrix.tileRows
        // Vectors that keep some rows lay their tiles out per group of rows: whole groups per
        // chunk compute each tile once. Where there is a chunk per thread, longer chunks would
        // unbalance the threads more than one tile computed twice per boundary costs.
        let dropsRows = routed.contains { vector, _ in jobs.contains { $0.3 >= 0 && vector.matrices[layer][$0.3]?.dropsRows == true } }
        if dropsRows && chunkCount > pool.threadCount {
            grain = (grain + BitMatrix.groupRows - 1) / BitMatrix.groupRows * BitMatrix.groupRows
        }
        // Chunks never straddle two matrices: each matrix's rows start on a chunk boundary.
        var starts: [Int] = []
        var chunkStart = 0
        for (w, _, _, _) in jobs {
            starts.append(chunkStart)
            chunkStart += (w.rows + grain - 1) / grain
        }
        // Per job, its task terms one column each: (matrix, column, coefficient, first column of
        // that matrix — whose turn it is to prefetch).
        let termsOfJob: [[(DeltaMatrix, Int, Float, Bool)]] = jobs.map { job in
            guard job.3 >= 0 else { return [] }
            return routed.flatMap { vector, columns in
                vector.matrices[layer][job.3].map { m in columns.enumerated().map { (m, $1.0, $1.1, $0 == 0) } } ?? []
            }
        }
        let tables = x.signTables.view
        pool.parallelFor(chunkStart, grain: 1) { chunks in
            for k in chunks {
                var j = jobs.count - 1
                while starts[j] > k { j -= 1 }
                let (w, y, ldy, _) = jobs[j]
                let lo = (k - starts[j]) * grain
                let rows = lo..<min(w.rows, lo + grain)
                termsOfJob[j].withUnsafeBufferPointer { terms in
                    if terms.isEmpty {
                        w.multiply(x, rows: rows, into: y, ldy: ldy)
                        return
                    }
                    // Tile by tile, the tile's signs are requested, then its base rows
                    // (compute-bound) run while they arrive; the task terms then read the
                    // chunk's signs from the cache.
                    var start = rows.lowerBound
                    while start < rows.upperBound {
                        let end = min(rows.upperBound, start + BitMatrix.tileRows, (start / BitMatrix.groupRows + 1) * BitMatrix.groupRows)
                        let part = start..<end
                        for t in terms where t.3 { t.0.prefetch(rows: part) }
                        w.multiply(x, rows: part, into: y, ldy: ldy)
                        start = end
                    }
                    for t in terms { t.0.addProduct(x, tables, column: t.1, coefficient: t.2, rows: rows, into: y, ldy: ldy) }
                }
            }
        }
    }
}

/// Per-model work buffers, sized once for the largest batch; nothing is allocated per token.
/// @unchecked Sendable: belongs to its model, used only inside that model's forward call.
final class Scratch: @unchecked Sendable {
    let x, xb, q, k, v, att, tmp, gate, up, logits, scores: UnsafeMutablePointer<Float>
    let scoreStride: Int
    let xq, attq, hq: QuantizedActivations

    init(config c: LlamaConfig, columns n: Int, threads: Int, superBlocks: Bool = false) {
        let d = c.embeddingLength
        x = .allocate(capacity: n * d)
        xb = .allocate(capacity: n * d)
        q = .allocate(capacity: n * c.queryDim)
        k = .allocate(capacity: n * c.kvDim)
        v = .allocate(capacity: n * c.kvDim)
        att = .allocate(capacity: n * c.queryDim)
        tmp = .allocate(capacity: n * d)
        gate = .allocate(capacity: n * c.feedForwardLength)
        up = .allocate(capacity: n * c.feedForwardLength)
        logits = .allocate(capacity: n * c.vocabularySize)
        scoreStride = c.contextLength
        scores = .allocate(capacity: threads * c.contextLength)
        xq = QuantizedActivations(width: d, capacity: n, superBlocks: superBlocks)
        attq = QuantizedActivations(width: c.queryDim, capacity: n, superBlocks: superBlocks)
        hq = QuantizedActivations(width: c.feedForwardLength, capacity: n, superBlocks: superBlocks)
    }

    deinit {
        for p in [x, xb, q, k, v, att, tmp, gate, up, logits, scores] { p.deallocate() }
    }
}
