import Foundation

/// Memory of this process as the kernel counts it (/proc/self/status), in bytes.
public struct MemoryReport: Sendable {
    public var rss = 0
    public var peakRSS = 0
    public var rssFile = 0
    public var rssAnon = 0

    public static func current() -> MemoryReport {
        var r = MemoryReport()
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return r }
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count >= 2, let kb = Int(parts[1]) else { continue }
            switch parts[0] {
            case "VmRSS:": r.rss = kb * 1024
            case "VmHWM:": r.peakRSS = kb * 1024
            case "RssFile:": r.rssFile = kb * 1024
            case "RssAnon:": r.rssAnon = kb * 1024
            default: break
            }
        }
        return r
    }

    public static func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
}
