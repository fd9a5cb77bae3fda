import Foundation

/// Writes a whole file under a temporary name beside it, flushes it to disk and renames it over
/// the target: a crash or a full disk leaves the old file or none, never a truncated one that
/// loads.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let tmp = "\(path).part-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BraidError.cannotWrite(path: path, reason: String(cString: strerror(errno))) }
        var failure: String?
        data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = String(cString: strerror(errno))
                    return
                }
                done += n
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        close(fd)
        if failure == nil && rename(tmp, path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(tmp)
            throw BraidError.cannotWrite(path: path, reason: failure)
        }
    }
}
