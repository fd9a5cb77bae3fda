import Foundation

/// A progress bar on stderr: redrawn in place on a terminal (at most ~10 times a second),
/// a plain line every 10 % otherwise, nothing with --quiet.
final class ProgressBar {
    let label: String
    let quiet: Bool
    private let tty = isatty(2) == 1
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var lastDecile = -1

    init(_ label: String, quiet: Bool = false) {
        self.label = label
        self.quiet = quiet
    }

    func update(_ done: Int, _ total: Int) {
        guard !quiet, total > 0 else { return }
        let fraction = Double(done) / Double(total)
        let elapsed = Date().timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        if tty {
            guard done == total || Date().timeIntervalSince(lastDraw) > 0.1 else { return }
            lastDraw = Date()
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            let line = String(format: "\r%@ [%@] %d/%d %3.0f%% %@ < %@", label, bar, done, total, fraction * 100, Self.clock(elapsed), Self.clock(eta))
            FileHandle.standardError.write(Data(line.utf8))
            if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
        } else {
            let decile = Int(fraction * 10)
            guard decile > lastDecile else { return }
            lastDecile = decile
            printError(String(format: "%@: %d/%d (%.0f%%) %@ elapsed", label, done, total, fraction * 100, Self.clock(elapsed)))
        }
    }

    static func clock(_ s: Double) -> String { String(format: "%02d:%02d", Int(s) / 60, Int(s) % 60) }
}
