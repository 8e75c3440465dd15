import Foundation

/// Work that is independent item by item, shared among the cores: loading a zones file
/// (each feature read and validated, each polygon rasterised and banded) comes before a
/// replay's first event, while the thread that reads the events has little to do.
enum ParallelMap {
    /// `transform` of every item, in the items' order. With fewer than `minimum` items, or
    /// one core, it runs here, item after item. Otherwise the items are dealt out in
    /// stripes (i, i + stripes, ...), since the costly ones (country outlines of thousands
    /// of vertices) often come together in a file.
    static func map<T: Sendable, R: Sendable>(_ items: [T], minimum: Int = 32, _ transform: @Sendable (T) -> R) -> [R] {
        guard items.count >= minimum && ProcessInfo.processInfo.activeProcessorCount > 1 else { return items.map(transform) }
        let n = items.count, stripes = Swift.min(n, 64)
        return [R](unsafeUninitializedCapacity: n) { out, initialized in
            // Each slot is written by exactly one stripe; the address crosses as an integer.
            let address = UInt(bitPattern: out.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: stripes) { k in
                let base = UnsafeMutablePointer<R>(bitPattern: address)!
                var i = k
                while i < n {
                    (base + i).initialize(to: transform(items[i]))
                    i += stripes
                }
            }
            initialized = n
        }
    }
}
