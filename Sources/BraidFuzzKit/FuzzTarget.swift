import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A fuzz target: any bytes in, an error or a value out, never a crash, a hang or a leak.
/// Errors are expected and dropped; a broken property (a tokenizer round trip) is a crash.
public struct FuzzTarget: Sendable {
    public let name: String
    public let summary: String
    /// Builds what the target needs once per process (before the first input).
    public let prepare: @Sendable () -> Void
    public let run: @Sendable (UnsafeRawBufferPointer) -> Void

    public init(name: String, summary: String, prepare: @escaping @Sendable () -> Void = {},
                run: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) {
        self.name = name
        self.summary = summary
        self.prepare = prepare
        self.run = run
    }
}

/// The command line of a fuzz executable. Built with `-sanitize=fuzzer,address -DFUZZING`
/// (scripts/fuzz.sh) it hands over to libFuzzer; built normally it replays files through a target,
/// so corpora and crash reproducers run in an ordinary build:
///
///     braid-fuzz --list
///     braid-fuzz --target=NAME FILE_OR_FOLDER...      (or BRAID_FUZZ_TARGET=NAME)
///     braid-fuzz --write-seeds FOLDER                 (the generated seeds, FOLDER/TARGET/FILE)
///
/// The target is $BRAID_FUZZ_TARGET or `--target=NAME` (libFuzzer ignores flags that start
/// with "--" and passes them on to the processes it forks).
public enum FuzzMain {
    nonisolated(unsafe) static var current: FuzzTarget?
    /// Replay's -v: each step's error is printed (what an input does, not only that it passes).
    nonisolated(unsafe) static var verbose = false

    public static func run(_ targets: [FuzzTarget]) -> Never {
        let args = Array(CommandLine.arguments.dropFirst())
        var name = ProcessInfo.processInfo.environment["BRAID_FUZZ_TARGET"]
        for a in args where a.hasPrefix("--target=") { name = String(a.dropFirst("--target=".count)) }
        let known = targets.map(\.name).joined(separator: ", ")
        if args.contains(where: { $0 == "--list" || $0 == "--write-seeds" || $0 == "-h" || $0 == "--help" }) {
            exit(Replay.main(args, target: nil, targets: targets))
        }
        guard let name else { fatal("set BRAID_FUZZ_TARGET or --target=NAME (known: \(known))") }
        guard let target = targets.first(where: { $0.name == name }) else { fatal("unknown target \(name) (known: \(known))") }
        current = target
        #if FUZZING
        target.prepare()
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { llvmFuzzerTestOneInput($0, $1) })
        #else
        exit(Replay.main(args, target: target, targets: targets))
        #endif
    }
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt
#endif

/// libFuzzer's entry point: one input to the selected target.
@_cdecl("LLVMFuzzerTestOneInput")
public func llvmFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let target = FuzzMain.current else { fatal("no fuzz target selected") }
    target.run(UnsafeRawBufferPointer(start: size > 0 ? data : nil, count: size))
    return 0
}

public func fatal(_ message: String) -> Never {
    FileHandle.standardError.write(Data("braid-fuzz: \(message)\n".utf8))
    exit(2)
}

/// `body`'s value, or nil when it throws (an expected outcome for hostile input; printed when
/// replaying with -v).
public func attempt<T>(_ what: @autoclosure () -> String, _ body: () throws -> T) -> T? {
    do {
        return try body()
    } catch {
        if FuzzMain.verbose { FileHandle.standardError.write(Data("  \(what()): \(error)\n".utf8)) }
        return nil
    }
}

/// Keeps a value the optimiser would otherwise drop unread.
@inline(never)
public func blackHole<T>(_ x: T) {
    withExtendedLifetime(x) {}
}
