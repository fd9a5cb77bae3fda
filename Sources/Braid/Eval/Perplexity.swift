import Foundation

/// Perplexity the way llama-perplexity measures it (tools/perplexity in llama.cpp): the text is
/// tokenized whole (with BOS when the vocabulary adds one), cut into chunks of `context` tokens
/// that are evaluated independently from an empty cache, the first token of each chunk replaced
/// by BOS when the vocabulary adds one; only the second half of each chunk is scored (positions
/// context/2 … context−2 predict the tokens after them), each by its log-softmax in double.
/// PPL = exp(mean negative log-likelihood); its standard error is PPL × the standard error of
/// that mean, as llama.cpp's "Final estimate: PPL = X +/- Y".
public struct Perplexity {
    public let model: LlamaModel
    /// Tokens per chunk (llama-perplexity's -c, default 512).
    public let context: Int
    /// The token written over each chunk's first one (llama.cpp does this when the vocabulary
    /// adds BOS); nil leaves chunks as they are.
    public let bos: Int32?
    public let route: Route

    public init(model: LlamaModel, context: Int = 512, bos: Int32?, route: Route = .base) {
        self.model = model
        self.context = context
        self.bos = bos
        self.route = route
    }

    public struct Result: Sendable {
        public let context: Int
        /// Tokens the text has (all of them, evaluated or not).
        public let tokenCount: Int
        /// Mean negative log-likelihood of each chunk's scored tokens.
        public let chunkNLL: [Double]
        /// PPL over the chunks so far, after each chunk (what llama-perplexity prints as [i]PPL).
        public let running: [Double]
        public let perplexity: Double
        public let standardError: Double
        /// Tokens scored: chunks × (context − context/2 − 1).
        public let scored: Int
        /// Seconds spent evaluating the chunks (tokenization excluded).
        public let seconds: Double

        /// Tokens evaluated per second (every token of every chunk, as llama.cpp's prompt eval).
        public var tokensPerSecond: Double { Double(chunkNLL.count * context) / seconds }
    }

    /// The text's tokens as llama-perplexity makes them (BOS added when the vocabulary says so,
    /// special-token text not parsed), and the BOS id to put at each chunk's start (nil when
    /// the vocabulary adds none).
    public static func tokenize(_ text: String, model: LlamaModel) throws -> (tokens: [Int32], bos: Int32?) {
        let tokenizer = try Tokenizer(gguf: model.gguf)
        let bos = tokenizer.addBOS ? tokenizer.bosID : nil
        return (tokenizer.encode(text, parseSpecial: false), bos)
    }

    /// At least this many tokens are needed (llama-perplexity refuses fewer: 2 × the context).
    public static func minimumTokens(context: Int) -> Int { 2 * context }

    /// Chunks evaluated for `tokenCount` tokens, at most `limit`.
    public func chunkCount(tokenCount: Int, limit: Int? = nil) -> Int {
        min(tokenCount / context, limit ?? Int.max)
    }

    /// Evaluates the chunks; `progress(done, total, running PPL)` after each. `source` names the
    /// text in the error for too few tokens.
    public func run(_ tokens: [Int32], chunks limit: Int? = nil, source: String = "the text",
                    progress: ((Int, Int, Double) -> Void)? = nil) throws -> Result {
        let maxContext = model.config.contextLength
        guard context >= 4, context <= maxContext else {
            throw BraidError.outOfRange(what: "the context (--ctx-size)", value: String(context), allowed: "4...\(maxContext), the model's context length")
        }
        if let limit, limit < 1 {
            throw BraidError.outOfRange(what: "--chunks", value: String(limit), allowed: "1 or more")
        }
        guard tokens.count >= Self.minimumTokens(context: context) else {
            throw BraidError.invalidArgument(
                "you need at least \(Self.minimumTokens(context: context)) tokens to evaluate perplexity with a context of \(context); \(source) tokenizes to only \(tokens.count) tokens")
        }
        let n = chunkCount(tokenCount: tokens.count, limit: limit)
        let first = context / 2
        let perChunk = context - first - 1
        let cache = model.makeCache(capacity: context)
        let vocabulary = model.config.vocabularySize
        // Negative log-likelihood of each scored position of the chunk in hand.
        let values = UnsafeMutableBufferPointer<Double>.allocate(capacity: perChunk)
        defer { values.deallocate() }

        var nll = 0.0, nll2 = 0.0, count = 0
        var chunkNLL: [Double] = [], running: [Double] = []
        let started = DispatchTime.now().uptimeNanoseconds
        for chunk in 0..<n {
            let start = chunk * context
            cache.count = 0
            var position = 0
            while position < context {
                let end = min(context, position + model.maxBatch)
                let batch = (position..<end).map { p in
                    BatchEntry(token: p == 0 ? (bos ?? tokens[start]) : tokens[start + p], position: p, cache: cache, route: route)
                }
                // Columns whose logits are scored: positions first … context−2.
                let lo = max(position, first), hi = min(end, context - 1)
                let outputs = lo < hi ? Array((lo - position)..<(hi - position)) : []
                try model.forward(batch, outputs: outputs)
                if !outputs.isEmpty {
                    let threads = model.pool.threadCount
                    model.pool.run { t in
                        for j in ThreadPool.slice(outputs.count, t, threads) {
                            let p = position + outputs[j]
                            let target = Int(tokens[start + p + 1])
                            values[p - first] = -Self.logSoftmax(model.logits(j), vocabulary: vocabulary, target: target)
                        }
                    }
                }
                position = end
            }
            // Summed in position order, so the result does not depend on the thread count.
            var sum = 0.0
            for v in values {
                sum += v
                nll2 += v * v
            }
            nll += sum
            count += perChunk
            chunkNLL.append(sum / Double(perChunk))
            running.append(exp(nll / Double(count)))
            progress?(chunk + 1, n, running[running.count - 1])
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let mean = nll / Double(count)
        let ppl = exp(mean)
        let variance = nll2 / Double(count) - mean * mean
        let standardError = variance > 0 && count > 1 ? (variance / Double(count - 1)).squareRoot() * ppl : 0
        return Result(context: context, tokenCount: tokens.count, chunkNLL: chunkNLL, running: running,
                      perplexity: ppl, standardError: standardError, scored: count, seconds: seconds)
    }

    /// log p(target) under softmax(logits): the maximum in float, exp in float, the sum and the
    /// logarithm in double (llama.cpp's log_softmax).
    public static func logSoftmax(_ logits: UnsafeBufferPointer<Float>, vocabulary: Int, target: Int) -> Double {
        var m = logits[0]
        for i in 1..<vocabulary { m = max(m, logits[i]) }
        var sum = 0.0
        for i in 0..<vocabulary { sum += Double(expf(logits[i] - m)) }
        return Double(logits[target] - m) - log(sum)
    }
}
