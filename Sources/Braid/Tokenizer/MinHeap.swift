/// A 4-ary min-heap (the pairs merges form, the special-token split): half the depth of a
/// binary heap, and a node's four children are adjacent in memory.
struct MinHeap<Element: Comparable> {
    private var items: [Element] = []

    init() {}

    var isEmpty: Bool { items.isEmpty }

    var top: Element? { items.first }

    mutating func push(_ x: Element) {
        items.append(x)
        items.withUnsafeMutableBufferPointer { buf in
            var i = buf.count - 1
            while i > 0 {
                let parent = (i - 1) / 4
                guard x < buf[parent] else { break }
                buf[i] = buf[parent]
                i = parent
            }
            buf[i] = x
        }
    }

    mutating func pop() -> Element? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        guard !items.isEmpty else { return top }
        items.withUnsafeMutableBufferPointer { buf in
            Self.siftDown(last, buf)
        }
        return top
    }

    /// Puts `x` at the root and moves it down to its place.
    private static func siftDown(_ x: Element, _ buf: UnsafeMutableBufferPointer<Element>) {
        let n = buf.count
        var i = 0
        while true {
            let first = 4 * i + 1
            if first >= n { break }
            var m = first
            let end = min(first + 4, n)
            var k = first + 1
            while k < end {
                if buf[k] < buf[m] { m = k }
                k += 1
            }
            guard buf[m] < x else { break }
            buf[i] = buf[m]
            i = m
        }
        buf[i] = x
    }
}
