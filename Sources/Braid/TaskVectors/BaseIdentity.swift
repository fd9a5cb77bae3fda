import Synchronization

/// The sha256 of a base model's GGUF file, computed once per file per process.
public enum BaseIdentity {
    private static let cache = Mutex<[String: String]>([:])

    public static func sha256(of model: LlamaModel) throws -> String {
        let path = model.gguf.path
        if let known = cache.withLock({ $0[path] }) { return known }
        let digest = SHA256.hex(model.gguf.map.bytes)
        cache.withLock { $0[path] = digest }
        return digest
    }
}
