import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file. Weights stay in the page cache and are shared
/// between processes; nothing is copied into the heap.
/// @unchecked Sendable: a read-only mapping, unmapped in deinit.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer
    /// Whether `bytes` is a heap copy (`init(copying:)`) rather than a map.
    private let copied: Bool

    public init(path: String) throws {
        self.path = path
        copied = false
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            if errno == ENOENT { throw BraidError.fileNotFound(path: path) }
            throw BraidError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw BraidError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw BraidError.cannotOpen(path: path, reason: "it is a directory")
        }
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw BraidError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    /// A copy of `data` on the heap, exactly as large as `data` (parsers fuzzed in memory: a read
    /// past the end is an AddressSanitizer report, not a read of the page's zero tail); `path`
    /// names it in errors.
    public init(copying data: UnsafeRawBufferPointer, path: String) {
        self.path = path
        copied = true
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(data.count, 1), alignment: 64)
        if let src = data.baseAddress, data.count > 0 { p.copyMemory(from: src, byteCount: data.count) }
        bytes = UnsafeRawBufferPointer(start: p, count: data.count)
    }

    /// Drops the resident pages wholly inside `count` bytes at `start` from this process (a
    /// region copied elsewhere, e.g. repacked weights): they stop counting in its memory, and a
    /// later read faults them back in from the page cache. Regions outside the map are ignored.
    public func release(_ start: UnsafeRawPointer, count: Int) {
        guard !copied, let base = bytes.baseAddress, start >= base, start + count <= base + bytes.count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = (Int(bitPattern: start) + page - 1) / page * page
        let hi = (Int(bitPattern: start) + count) / page * page
        guard hi > lo else { return }
        madvise(UnsafeMutableRawPointer(bitPattern: lo), hi - lo, MADV_DONTNEED)
    }

    deinit {
        if copied {
            bytes.baseAddress.map { UnsafeMutableRawPointer(mutating: $0).deallocate() }
        } else if let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }
}
