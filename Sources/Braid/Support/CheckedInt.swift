/// Integers read from files and requests become sizes, counts, offsets and indices only through
/// these checks, so a hostile value is an error that names it, never a trap or a wild read.
public enum CheckedInt {
    /// `value` as an Int within `range`; `what` names the value for the error ("… in FILE").
    public static func int<T: BinaryInteger>(_ value: T, _ what: @autoclosure () -> String,
                                             in range: ClosedRange<Int> = 0...Int.max) throws -> Int {
        guard let v = Int(exactly: value), range.contains(v) else {
            throw BraidError.outOfRange(what: what(), value: String(value), allowed: describe(range))
        }
        return v
    }

    /// The product of `factors` (a shape's element count, a size in bytes), refusing negative
    /// factors and overflow.
    public static func product(_ factors: [Int], _ what: @autoclosure () -> String) throws -> Int {
        var p = 1
        for f in factors {
            guard f >= 0 else { throw BraidError.outOfRange(what: what(), value: "\(factors)", allowed: "non-negative") }
            let (m, overflow) = p.multipliedReportingOverflow(by: f)
            guard !overflow else { throw BraidError.outOfRange(what: what(), value: "\(factors)", allowed: "a product below 2^63") }
            p = m
        }
        return p
    }

    static func describe(_ r: ClosedRange<Int>) -> String {
        r.upperBound == Int.max ? "≥ \(r.lowerBound)" : "\(r.lowerBound)…\(r.upperBound)"
    }
}
