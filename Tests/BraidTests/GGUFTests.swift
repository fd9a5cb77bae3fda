import Foundation
import Testing
import Braid

/// Reader verdicts on handcrafted files, and a writer → reader round trip.
struct GGUFTests {
    func write(_ data: Data) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("braid-test-\(UUID().uuidString).gguf").path
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    func sample() throws -> GGUFWriter {
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("test.u8", .uint8(7))
        w.set("test.i64", .int64(-5))
        w.set("test.f64", .float64(2.5))
        w.set("test.bool", .bool(true))
        w.set("test.strings", .array(.string, [.string("a"), .string("ünï")]))
        w.set("test.nested", .array(.array, [.array(.int32, [.int32(1), .int32(2)]), .array(.int32, [])]))
        try w.addTensor("a", shape: [64, 2], floats: (0..<128).map { Float($0) })
        try w.addTensor("b", shape: [32], type: .q8_0, data: Data(BlockCodec.encode(.q8_0, (0..<32).map { Float($0) / 8 })))
        return w
    }

    @Test func roundTrip() throws {
        let path = try write(try sample().encoded())
        let f = try GGUFFile(path: path)
        #expect(f.version == 3)
        #expect(f.metadata["test.u8"] == .uint8(7))
        #expect(f.metadata["test.i64"]?.intValue == -5)
        #expect(f.metadata["test.f64"]?.floatValue == 2.5)
        #expect(f.metadata["test.bool"] == .bool(true))
        #expect(try f.stringArray("test.strings") == ["a", "ünï"])
        #expect(f.metadata["test.nested"] == .array(.array, [.array(.int32, [.int32(1), .int32(2)]), .array(.int32, [])]))
        let a = try f.tensor("a")
        #expect(a.shape == [64, 2] && a.type == .f32 && a.rows == 2)
        #expect(f.data(a).load(fromByteOffset: 4 * 127, as: Float.self) == 127)
        #expect(try f.tensor("b").type == .q8_0)
        #expect(f.data(try f.tensor("b")).alignedUp(toMultipleOf: 32) == f.data(try f.tensor("b")))
    }

    @Test func badMagicIsRefused() throws {
        var d = try sample().encoded()
        d[0] = UInt8(ascii: "X")
        do {
            _ = try GGUFFile(path: try write(d))
            Issue.record("bad magic accepted")
        } catch let e as BraidError {
            guard case .ggufBadMagic = e else { Issue.record("wrong error \(e)"); return }
        }
    }

    @Test func unsupportedVersionIsRefused() throws {
        var d = try sample().encoded()
        d[4] = 9
        let path = try write(d)
        #expect(throws: BraidError.ggufUnsupportedVersion(path: path, version: 9)) { _ = try GGUFFile(path: path) }
    }

    /// Every truncation point must give an error, never a crash or out-of-bounds read.
    @Test func everyTruncationIsAnError() throws {
        let d = try sample().encoded()
        let full = try GGUFFile(path: try write(d))
        let end = full.tensorList.map { $0.fileOffset + $0.byteCount }.max()!
        // Cuts inside the padding after the last tensor leave every byte that matters.
        for cut in Array(stride(from: 0, to: end, by: 7)) + [end - 1] {
            let path = try write(d.prefix(cut))
            let message = errorText { _ = try GGUFFile(path: path) }
            #expect(message.hasPrefix("\(path) is truncated: "), "cut at \(cut): \(message)")
        }
    }

    /// Random byte flips in the header must give an error or a file that still checks out.
    @Test func corruptedHeadersNeverCrash() throws {
        let d = try sample().encoded()
        var rng = Xoshiro256(seed: 7)
        var errors = 0
        for _ in 0..<300 {
            var c = d
            for _ in 0..<3 { c[Int(rng.next() % 400)] = UInt8(truncatingIfNeeded: rng.next()) }
            do {
                let f = try GGUFFile(path: try write(c))
                for t in f.tensorList { #expect(t.fileOffset + t.byteCount <= c.count) }
            } catch is BraidError {
                errors += 1
            }
        }
        #expect(errors > 0)
    }

    /// Tensors are read as floats in place: an alignment under 8 could misalign them.
    @Test func alignmentBelowEightIsRefused() throws {
        var w = try sample()
        w.alignment = 2
        let path = try write(w.encoded())
        #expect(throws: BraidError.ggufCorrupt(path: path, what: "general.alignment must be a power of two from 8 to 65536")) {
            _ = try GGUFFile(path: path)
        }
        w.alignment = 8
        #expect(try GGUFFile(path: try write(w.encoded())).alignment == 8)
    }

    @Test func duplicateKeyIsRefused() throws {
        var w = GGUFWriter()
        w.set("k", .uint32(1))
        let one = w.encoded()
        // Header (24 bytes), then the entry "k" (8 + 1 + 4 + 4 bytes): write it twice.
        let entry = one[24..<41]
        var d = Data(one[0..<24])
        d[16] = 2
        d.append(contentsOf: entry)
        d.append(contentsOf: entry)
        #expect(errorText { _ = try GGUFFile(path: try write(d)) }.hasSuffix(".gguf is corrupt: duplicate metadata key k"))
    }

    @Test func missingFileIsAClearError() {
        #expect(throws: BraidError.fileNotFound(path: "/nonexistent/x.gguf")) { _ = try GGUFFile(path: "/nonexistent/x.gguf") }
    }
}

struct SHA256Tests {
    @Test func knownDigests() {
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hex(long) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }
}
