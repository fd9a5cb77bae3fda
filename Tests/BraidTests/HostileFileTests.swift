import Foundation
import Testing
import Braid

/// Files built to break the readers: each is refused with the error that names what is wrong,
/// never a trap or a read outside the file.
struct HostileFileTests {
    func write(_ data: Data, suffix: String = ".safetensors") throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-hostile-\(UUID().uuidString)\(suffix)").path
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A safetensors file: the 8-byte header length (`length` overrides it), the JSON header, `body`.
    func safetensors(_ header: String, body: Int = 16, length: UInt64? = nil) -> Data {
        var d = Data()
        var n = (length ?? UInt64(header.utf8.count)).littleEndian
        withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array(header.utf8))
        d.append(Data(count: body))
        return d
    }

    @Test func safetensorsHeaderLengthBeyondInt64IsRefused() throws {
        let path = try write(safetensors("{}", length: 1 << 63))
        #expect(throws: BraidError.outOfRange(what: "the header length of \(path)", value: "\(UInt64(1) << 63)", allowed: "1…18")) {
            try SafetensorsFile(path: path)
        }
    }

    @Test func safetensorsShapeWhoseElementCountOverflowsIsRefused() throws {
        let header = #"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 16]}}"#
        let path = try write(safetensors(header))
        #expect(throws: BraidError.outOfRange(what: "the shape of tensor w in \(path)", value: "[4294967296, 4294967296, 4]",
                                              allowed: "a product below 2^63")) {
            try SafetensorsFile(path: path)
        }
    }

    @Test func safetensorsNegativeShapeIsRefused() throws {
        let header = #"{"w": {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]}}"#
        let path = try write(safetensors(header))
        #expect(throws: BraidError.outOfRange(what: "the shape of tensor w in \(path)", value: "[-2, -2, 4]", allowed: "non-negative")) {
            try SafetensorsFile(path: path)
        }
    }

    @Test func safetensorsNegativeDataOffsetsAreRefused() throws {
        let header = #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [-64, -56]}}"#
        let path = try write(safetensors(header))
        #expect(throws: BraidError.outOfRange(what: "the start offset of tensor w in \(path)", value: "-64", allowed: "0…16")) {
            try SafetensorsFile(path: path)
        }
    }

    @Test func safetensorsOffsetsPastTheEndAreRefused() throws {
        let header = #"{"w": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}"#
        let path = try write(safetensors(header))
        #expect(throws: BraidError.outOfRange(what: "the end offset of tensor w in \(path)", value: "32", allowed: "0…16")) {
            try SafetensorsFile(path: path)
        }
    }

    @Test func aWellFormedSafetensorsFileStillReads() throws {
        var body = Data()
        for v: Float in [1, -2, 3.5, 0] { withUnsafeBytes(of: v.bitPattern.littleEndian) { body.append(contentsOf: $0) } }
        var d = safetensors(#"{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}"#, body: 0)
        d.append(body)
        let f = try SafetensorsFile(path: try write(d))
        #expect(f.floats(f.tensors["w"]!) == [1, -2, 3.5, 0])
    }

    @Test func checkedIntRefusesWhatDoesNotFit() throws {
        #expect(try CheckedInt.int(UInt64(12), "n") == 12)
        #expect(throws: BraidError.outOfRange(what: "n", value: "18446744073709551615", allowed: "≥ 0")) { try CheckedInt.int(UInt64.max, "n") }
        #expect(throws: BraidError.outOfRange(what: "n", value: "-1", allowed: "≥ 0")) { try CheckedInt.int(Int32(-1), "n") }
        #expect(throws: BraidError.outOfRange(what: "n", value: "9", allowed: "1…8")) { try CheckedInt.int(9, "n", in: 1...8) }
        #expect(try CheckedInt.product([3, 5, 7], "p") == 105)
        #expect(throws: BraidError.outOfRange(what: "p", value: "[\(Int.max), 2]", allowed: "a product below 2^63")) {
            try CheckedInt.product([Int.max, 2], "p")
        }
    }

    /// The old file stays whole until the new one is complete; a failed write leaves no temporary.
    @Test func atomicWriteReplacesWholeOrNotAtAll() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("braid-atomic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("x.gguf").path
        try AtomicFile.write(Data("old".utf8), to: path)
        try AtomicFile.write(Data("new contents".utf8), to: path)
        #expect(FileManager.default.contents(atPath: path) == Data("new contents".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["x.gguf"])
        let missing = dir.appendingPathComponent("no/such/dir/y.gguf").path
        #expect(throws: BraidError.cannotWrite(path: missing, reason: "No such file or directory")) {
            try AtomicFile.write(Data("z".utf8), to: missing)
        }
    }
}
