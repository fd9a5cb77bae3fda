import Foundation

/// AIM (METHODS.md §5): how strongly the *base* uses each input channel of every linear layer,
/// measured on task-agnostic text, decides how much of a merged delta that channel keeps:
/// ρ[j] = 1 − I[j]·(1 − ω) with I = s / max s, and column j of the delta is scaled by ρ[j].
/// The most-used channel keeps ω of the merge, a silent one all of it.
public struct AIM: Sendable {
    /// s[layer][input]: Σ over calibration texts of the per-text mean |x_j|, for the four
    /// inputs of `LlamaModel.observer` (attention, attention output, feed-forward, down).
    public var activity: [[[Float]]]
    public var omega: Float

    public init(activity: [[[Float]]], omega: Float) {
        self.activity = activity
        self.omega = omega
    }

    /// Runs the base over each text (rendered as a user turn of the chat template, the way braid
    /// feeds prompts) and collects the per-channel mean |x| of every linear layer's input.
    public static func calibrate(model: LlamaModel, tokenizer: Tokenizer, template: ChatTemplate, texts: [String], omega: Float,
                                 progress: (Int, Int) -> Void = { _, _ in }) throws -> AIM {
        let c = model.config
        let widths = [c.embeddingLength, c.queryDim, c.embeddingLength, c.feedForwardLength]
        var total: [[[Float]]] = (0..<c.blockCount).map { _ in widths.map { [Float](repeating: 0, count: $0) } }
        var text: [[[Float]]] = total
        model.observer = { layer, input, values, columns in
            guard layer >= 0 && input < widths.count else { return }
            let w = widths[input]
            text[layer][input].withUnsafeMutableBufferPointer { s in
                for col in 0..<columns {
                    let x = values + col * w
                    for j in 0..<w { s[j] += abs(x[j]) }
                }
            }
        }
        defer { model.observer = nil }
        for (i, t) in texts.enumerated() {
            var ids = tokenizer.encode(template.render([.user(t)]))
            if ids.count > 1024 { ids = Array(ids.prefix(1024)) }
            let cache = model.makeCache(capacity: ids.count)
            try model.prefill(ids, cache: cache)
            let scale = 1 / Float(ids.count)
            for l in 0..<c.blockCount {
                for input in widths.indices {
                    for j in 0..<widths[input] { total[l][input][j] += text[l][input][j] * scale }
                    text[l][input] = [Float](repeating: 0, count: widths[input])
                }
            }
            progress(i + 1, texts.count)
        }
        return AIM(activity: total, omega: omega)
    }

    /// ρ for the input of matrix `kind` (0…6 in `TaskVector.matrixKinds`) of `layer`.
    public func relaxation(layer: Int, kind: Int) -> [Float] {
        Self.relaxation(activity[layer][ScaleFitter.inputOfKind[kind]], omega: omega)
    }

    /// ρ[j] = 1 − (s[j] / max s)·(1 − ω).
    public static func relaxation(_ s: [Float], omega: Float) -> [Float] {
        let peak = s.map(abs).max() ?? 0
        guard peak > 0 else { return [Float](repeating: 1, count: s.count) }
        return s.map { 1 - abs($0) / peak * (1 - omega) }
    }

    /// Scales column j of the rows × columns row-major `delta` by ρ[j].
    public static func apply(_ delta: inout [Float], rows: Int, columns: Int, relaxation rho: [Float]) {
        delta.withUnsafeMutableBufferPointer { d in
            rho.withUnsafeBufferPointer { p in
                for r in 0..<rows {
                    let row = d.baseAddress! + r * columns
                    for j in 0..<columns { row[j] *= p[j] }
                }
            }
        }
    }

    /// Calibration texts: JSONL lines with a "text" (or "prompt") string.
    public static func loadTexts(_ path: String, limit: Int?) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { throw BraidError.fileNotFound(path: path) }
        var out: [String] = []
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() {
            if let limit, out.count >= limit { break }
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let t = (o["text"] ?? o["prompt"]) as? String else {
                throw BraidError.invalidArgument("\(path):\(i + 1): not a {\"text\": …} object")
            }
            out.append(t)
        }
        guard !out.isEmpty else { throw BraidError.invalidArgument("\(path) holds no calibration text") }
        return out
    }
}
