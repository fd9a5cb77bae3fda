import Foundation

/// How sure one stream is of its next token, read off its logits: the top token, its
/// probability and the runner-up's (the guarded gate's evidence, one pass over the vocabulary).
public struct StreamConfidence: Sendable, Equatable {
    public var token: Int
    public var top: Float
    public var second: Float

    public init(token: Int, top: Float, second: Float) {
        self.token = token
        self.top = top
        self.second = second
    }

    public init(logits x: UnsafeBufferPointer<Float>) {
        var best = 0, bestValue = -Float.infinity, secondValue = -Float.infinity
        for (i, v) in x.enumerated() {
            if v > bestValue {
                secondValue = bestValue
                bestValue = v
                best = i
            } else if v > secondValue {
                secondValue = v
            }
        }
        var sum: Float = 0
        for v in x { sum += expf(v - bestValue) }
        token = best
        top = 1 / sum
        second = expf(secondValue - bestValue) / sum
    }

    /// The probability lead of the top token over the runner-up.
    public var margin: Float { top - second }
}
