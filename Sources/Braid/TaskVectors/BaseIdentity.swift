import Foundation
import Synchronization

/// The sha256 of a base model's GGUF file, which every task vector names. Hashing ~100 MB takes
/// longer than loading and answering a short prompt, so a digest is remembered per process and
/// on disk (`~/.cache/braid/sha256/`, or `$XDG_CACHE_HOME/braid/sha256/`), keyed by the file's
/// path, size, inode and modification time: a changed file is hashed again.
public enum BaseIdentity {
    private static let cache = Mutex<[String: String]>([:])

    public static func sha256(of model: LlamaModel) throws -> String {
        try sha256(ofFile: model.gguf.path, bytes: model.gguf.map.bytes, cacheDirectory: defaultCacheDirectory)
    }

    /// `bytes`: the file's contents (already mapped); `cacheDirectory` nil: remember in memory only.
    public static func sha256(ofFile path: String, bytes: UnsafeRawBufferPointer, cacheDirectory: URL?) throws -> String {
        let key = try fileKey(path)
        if let known = cache.withLock({ $0[key] }) { return known }
        let entry = cacheDirectory.map { $0.appendingPathComponent(SHA256.hex(Array(key.utf8))) }
        if let entry, let stored = try? String(contentsOf: entry, encoding: .utf8), stored.count == 64,
           stored.allSatisfy({ $0.isHexDigit }) {
            cache.withLock { $0[key] = stored }
            return stored
        }
        let digest = SHA256.hex(bytes)
        cache.withLock { $0[key] = digest }
        if let entry {  // best effort: a read-only home only costs the next process the hash
            try? FileManager.default.createDirectory(at: entry.deletingLastPathComponent(), withIntermediateDirectories: true)
            try? digest.write(to: entry, atomically: true, encoding: .utf8)
        }
        return digest
    }

    static var defaultCacheDirectory: URL? {
        let env = ProcessInfo.processInfo.environment
        guard let root = env["XDG_CACHE_HOME"] ?? env["HOME"].map({ $0 + "/.cache" }) else { return nil }
        return URL(fileURLWithPath: root).appendingPathComponent("braid/sha256")
    }

    /// What identifies the file's contents without reading them.
    public static func fileKey(_ path: String) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw BraidError.invalidArgument("cannot stat \(path)") }
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        return "\(absolute)|\(info.st_size)|\(info.st_ino)|\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
    }
}
