import Foundation

/// The chat page served at `/` (Web/index.html: one self-contained file, nothing fetched from outside).
enum WebPage {
    static let html: [UInt8] = {
        if let url = Bundle.module.url(forResource: "index", withExtension: "html"), let data = try? Data(contentsOf: url) {
            return Array(data)
        }
        return Array("<!doctype html><title>braid</title><p>The page was not installed with this build.".utf8)
    }()
}
