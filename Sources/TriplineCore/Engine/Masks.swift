/// A set of zone ids as a bitset.
struct ZoneMask {
    var words: [UInt64]
    /// nil words = all zones.
    var all: Bool

    static func build(_ selector: Selector?, zones: [Zone]) -> ZoneMask {
        guard let selector else { return ZoneMask(words: [], all: true) }
        var w = Array(repeating: UInt64(0), count: (zones.count + 63) / 64)
        for (i, z) in zones.enumerated() where selector.matches(id: z.id, class: z.category, tags: z.tags) {
            w[i >> 6] |= 1 << UInt64(i & 63)
        }
        return ZoneMask(words: w, all: false)
    }

    @inline(__always)
    func contains(_ z: Int32) -> Bool {
        all || (words[Int(z) >> 6] >> UInt64(z & 63)) & 1 == 1
    }
}

/// The zone masks of one plan, each built once per distinct selector: rules often share one
/// ("any depot"), and building a mask matches the selector against every zone.
final class ZoneMaskMemo {
    let zones: [Zone]
    private var built: [Selector: ZoneMask] = [:]

    init(_ zones: [Zone]) { self.zones = zones }

    func mask(_ selector: Selector?) -> ZoneMask {
        guard let selector else { return ZoneMask.build(nil, zones: zones) }
        if let m = built[selector] { return m }
        let m = ZoneMask.build(selector, zones: zones)
        built[selector] = m
        return m
    }
}

/// Which entity selectors each entity matches: one bit per distinct selector.
struct MatchTable {
    var stride: Int
    var bits: [UInt64] = []

    @inline(__always)
    func matches(_ e: Int32, _ s: Int32) -> Bool {
        (bits[Int(e) * stride + Int(s >> 6)] >> UInt64(s & 63)) & 1 == 1
    }
}
