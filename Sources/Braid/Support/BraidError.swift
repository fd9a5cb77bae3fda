import Foundation

/// Every error braid reports to a user. Descriptions say what went wrong and, where it helps,
/// what to do about it.
public enum BraidError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(path: String)
    case cannotOpen(path: String, reason: String)
    case cannotWrite(path: String, reason: String)
    case ggufBadMagic(path: String)
    case ggufUnsupportedVersion(path: String, version: UInt32)
    case ggufTruncated(path: String, what: String)
    case ggufCorrupt(path: String, what: String)
    case ggufUnsupportedTensorType(name: String, type: UInt32)
    case missingKey(String)
    case wrongKeyType(key: String, expected: String)
    case missingTensor(String)
    case tensorShape(name: String, expected: [Int], found: [Int])
    case unsupportedArchitecture(String)
    case promptTooLong(tokens: Int, context: Int)
    case invalidUTF8(source: String)
    case invalidArgument(String)
    case outOfRange(what: String, value: String, allowed: String)
    case duplicateTask(name: String, first: String, second: String)

    public var description: String {
        switch self {
        case .fileNotFound(let p):
            return "file not found: \(p)"
        case .cannotOpen(let p, let r):
            return "cannot open \(p): \(r)"
        case .cannotWrite(let p, let r):
            return "cannot write \(p): \(r)"
        case .ggufBadMagic(let p):
            return "\(p) is not a GGUF file (bad magic)"
        case .ggufUnsupportedVersion(let p, let v):
            return "\(p): GGUF version \(v) is not supported (braid reads versions 2 and 3)"
        case .ggufTruncated(let p, let w):
            return "\(p) is truncated: \(w) runs past the end of the file"
        case .ggufCorrupt(let p, let w):
            return "\(p) is corrupt: \(w)"
        case .ggufUnsupportedTensorType(let n, let t):
            return "tensor \(n) has ggml type \(t), which braid does not support (F32, F16, Q4_0, Q4_1, Q8_0)"
        case .missingKey(let k):
            return "missing metadata key \(k)"
        case .wrongKeyType(let k, let e):
            return "metadata key \(k) is not of type \(e)"
        case .missingTensor(let n):
            return "missing tensor \(n)"
        case .tensorShape(let n, let e, let f):
            return "tensor \(n) has shape \(f), expected \(e)"
        case .unsupportedArchitecture(let a):
            return "architecture \(a) is not supported (braid runs \(LlamaConfig.architectures.joined(separator: ", ")))"
        case .promptTooLong(let t, let c):
            return "the prompt is \(t) tokens but the context holds \(c); shorten it or raise --ctx-size"
        case .invalidUTF8(let s):
            return "\(s) is not valid UTF-8"
        case .invalidArgument(let m):
            return m
        case .outOfRange(let w, let v, let a):
            return "\(w) is \(v), out of range (allowed: \(a))"
        case .duplicateTask(let n, let a, let b):
            return a == b ? "task \(n) is given twice (\(a))" : "task \(n) comes from two files: \(a) and \(b)"
        }
    }
}
