import ArgumentParser
import Braid
import Foundation

/// Where `braid run` puts its answers: one JSON line each, written as each finishes, so a killed
/// run keeps everything it answered. Resuming reads the ids an existing file already holds and
/// drops a last line that a crash cut short.
final class AnswerFile {
    let path: String?
    let handle: FileHandle
    /// Ids already in the file (resume only).
    private(set) var answered: Set<String> = []

    /// Opens (or creates) the file before any work starts, so an unwritable path fails at once.
    init(path: String?, resume: Bool) throws {
        self.path = path
        guard let path else {
            handle = .standardOutput
            return
        }
        var keep = 0
        if resume, FileManager.default.fileExists(atPath: path) {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw BraidError.cannotOpen(path: path, reason: "cannot read it to resume")
            }
            keep = data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
            for (i, line) in data[..<keep].split(separator: UInt8(ascii: "\n")).enumerated() {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                      let id = object["id"] as? String else {
                    throw ValidationError("\(path):\(i + 1) is not an answer of braid run; cannot resume from it")
                }
                answered.insert(id)
            }
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (resume ? 0 : O_TRUNC), 0o644)
        guard fd >= 0 else { throw BraidError.cannotWrite(path: path, reason: String(cString: strerror(errno))) }
        guard ftruncate(fd, off_t(keep)) == 0, lseek(fd, off_t(keep), SEEK_SET) >= 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw BraidError.cannotWrite(path: path, reason: reason)
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// One record, written through to the file at once.
    func append(_ record: Data) throws {
        do { try handle.write(contentsOf: record + Data("\n".utf8)) } catch {
            throw BraidError.cannotWrite(path: path ?? "stdout", reason: "\(error.localizedDescription)")
        }
    }
}
