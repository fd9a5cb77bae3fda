import COpenBLAS
import Foundation

/// Per-row scales fitted to the layer outputs on calibration prompts (least squares, no
/// gradients): with G = XᵀX the Gram matrix of a layer's inputs, the α minimising
/// ‖X(Δ_i − α s_i)ᵀ‖² is α_i = (Δ_i G s_iᵀ)/(s_i G s_iᵀ). The inputs are collected by running
/// the fine-tuned model (base + the full delta) teacher-forced over prompt + answer.
public enum ScaleFitter {
    /// A matrix's fitted row scales, and per row how much its 1-bit term lowers the squared
    /// output error on the calibration inputs: α_i²·(s_i G s_i) (what `--row-density` ranks by).
    public struct FittedRows: Sendable {
        public var scales: [Float]
        public var gains: [Float]
    }

    /// Which Gram matrix each matrix kind reads (see `LlamaModel.observer`).
    static let inputOfKind = [0, 0, 0, 1, 2, 2, 3]

    public static func fit(source: DeltaSource, base: LlamaModel, tokenizer: Tokenizer, template: ChatTemplate,
                           examples: [TaskExample], progress: (String, Int, Int) -> Void = { _, _, _ in }) throws -> [String: FittedRows] {
        let c = base.config
        let widths = [c.embeddingLength, c.queryDim, c.embeddingLength, c.feedForwardLength]
        // Gram matrices, upper triangles accumulated by ssyrk.
        var grams: [[[Float]]] = (0..<c.blockCount).map { _ in widths.map { [Float](repeating: 0, count: $0 * $0) } }
        let fineTune = Route([(try TaskVector(path: source.path, base: base, baseSHA256: nil), 1)])
        base.observer = { layer, input, values, columns in
            guard layer >= 0 && input < widths.count else { return }
            let n = Int32(widths[input])
            grams[layer][input].withUnsafeMutableBufferPointer { g in
                cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, Int32(columns), 1, values, n, 1, g.baseAddress, n)
            }
        }
        defer { base.observer = nil }
        openblas_set_num_threads(Int32(base.pool.threadCount))
        for (i, e) in examples.enumerated() {
            let text = template.render([.user(e.prompt), .assistant(e.answer ?? "")], addGenerationPrompt: false)
            let cache = base.makeCache(capacity: 1024)
            var ids = tokenizer.encode(text)
            if ids.count > 1023 { ids = Array(ids.prefix(1023)) }
            try base.prefill(ids, cache: cache, route: fineTune)
            progress("calibrate", i + 1, examples.count)
        }
        base.observer = nil

        var scales: [String: FittedRows] = [:]
        let total = c.blockCount * TaskVector.matrixKinds.count
        var done = 0
        for (l, layer) in base.weights.layers.enumerated() {
            for (input, w) in widths.enumerated() {  // mirror the upper triangle
                for i in 0..<w { for j in 0..<i { grams[l][input][i * w + j] = grams[l][input][j * w + i] } }
            }
            for (k, (kind, m)) in layer.matrices.enumerated() {
                let name = "blk.\(l).\(kind).weight"
                defer { done += 1; progress("fit", done, total) }
                guard let delta = try source.delta(name) else { continue }
                scales[name] = fitRows(delta: delta, rows: m.rows, columns: m.columns, gram: grams[l][inputOfKind[k]])
            }
        }
        return scales
    }

    /// α_i = (Δ_i G s_i)/(s_i G s_i); rows whose inputs carry no energy keep mean |Δ_i| (gain 0).
    public static func fitRows(delta: [Float], rows: Int, columns: Int, gram: [Float]) -> FittedRows {
        let signs = delta.map { $0 >= 0 ? Float(1) : -1 }
        var gs = [Float](repeating: 0, count: rows * columns)  // (S G)ᵀ rows: row i = G s_i (G symmetric)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(columns), Int32(columns),
                    1, signs, Int32(columns), gram, Int32(columns), 0, &gs, Int32(columns))
        let fallback = Compressor.meanAbsoluteRows(delta, rows: rows, columns: columns)
        var fitted = FittedRows(scales: fallback, gains: [Float](repeating: 0, count: rows))
        for i in 0..<rows {
            var num: Double = 0, den: Double = 0
            for j in 0..<columns {
                num += Double(delta[i * columns + j]) * Double(gs[i * columns + j])
                den += Double(signs[i * columns + j]) * Double(gs[i * columns + j])
            }
            guard den > 0 else { continue }
            fitted.scales[i] = Float(num / den)
            fitted.gains[i] = Float(num * num / den)
        }
        return fitted
    }
}
