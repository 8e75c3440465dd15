import Foundation
import Testing
import TriplineTesting
@testable import TriplineCore

/// The document parser (which gathers array elements on a stack and finds line starts with
/// memchr) against documents whose every value's text, line and column the generator knows.
@Suite struct DocParserTests {
    /// What the generator wrote for one value: its compact text (as `jsonText` writes it) and
    /// where it starts; children in order.
    final class Written {
        var compact = ""
        var line = 0, column = 0
        var children: [Written] = []
    }

    /// Writes a random value at `depth` into `out` (tracking line and column), pretty enough
    /// that values start on many lines and columns.
    /// With `pairs`, arrays of two numbers (sometimes three, sometimes across lines) are
    /// frequent, as positions are in GeoJSON.
    static func write(_ rng: inout SplitMix64, depth: Int, into out: inout [UInt8], line: inout Int, lineStart: inout Int, pairs: Bool = false) -> Written {
        let w = Written()
        w.line = line
        w.column = out.count - lineStart + 1
        func emit(_ s: String) { out += Array(s.utf8) }
        func newline() {
            out.append(10)
            line += 1
            lineStart = out.count
            for _ in 0..<Int(rng.next() % 3) { out.append(32) }
        }
        func separator() { if rng.next() % 3 == 0 { newline() } else if rng.next() % 2 == 0 { out.append(32) } }
        func number() -> Written {
            let n = Written()
            n.line = line
            n.column = out.count - lineStart + 1
            let text: String
            switch rng.next() % 4 {
            case 0: text = String(Int(rng.next() % 361) - 180)
            case 1: text = String(format: "%.6f", Double(rng.next() % 3_600_000) / 10_000 - 180)
            case 2: text = "-0.\(rng.next() % 1000)e\(Int(rng.next() % 5) - 2)"
            default: text = "\(rng.next() % 90).\(rng.next() % 100_000_000_000_000_000)"
            }
            emit(text)
            n.compact = JSONText.ecmaScript(Double(text)!)
            return n
        }
        if pairs && depth < 5 && rng.next() % 3 == 0 {
            emit("[")
            if rng.next() % 8 == 0 { separator() }
            w.children.append(number())
            if rng.next() % 8 == 0 { separator() }
            emit(",")
            if rng.next() % 4 == 0 { separator() }
            w.children.append(number())
            if rng.next() % 6 == 0 {
                emit(",")
                w.children.append(number())
            }
            if rng.next() % 8 == 0 { separator() }
            emit("]")
            w.compact = "[" + w.children.map(\.compact).joined(separator: ",") + "]"
            return w
        }
        let kind = depth >= 5 ? rng.next() % 3 : rng.next() % 6
        switch kind {
        case 0:
            let v = Int(rng.next() % 2_000_001) - 1_000_000
            emit(String(v)); w.compact = String(v)
        case 1:
            let s = "s\(rng.next() % 1000)é"
            emit("\"" + s + "\""); w.compact = "\"" + s + "\""
        case 2:
            let b = rng.next() % 2 == 0
            emit(b ? "true" : "false"); w.compact = b ? "true" : "false"
        case 3, 4:
            // Arrays, often of positions and rings (the zone files' shape), sometimes empty.
            let n = Int(rng.next() % (depth == 0 ? 40 : 9))
            emit("[")
            for k in 0..<n {
                if k > 0 { emit(",") }
                separator()
                w.children.append(Self.write(&rng, depth: depth + 1, into: &out, line: &line, lineStart: &lineStart, pairs: pairs))
            }
            separator()
            emit("]")
            w.compact = "[" + w.children.map(\.compact).joined(separator: ",") + "]"
        default:
            let n = Int(rng.next() % 5)
            emit("{")
            var parts: [String] = []
            for k in 0..<n {
                if k > 0 { emit(",") }
                separator()
                emit("\"k\(k)\":")
                separator()
                let c = Self.write(&rng, depth: depth + 1, into: &out, line: &line, lineStart: &lineStart, pairs: pairs)
                w.children.append(c)
                parts.append("\"k\(k)\":" + c.compact)
            }
            separator()
            emit("}")
            w.compact = "{" + parts.joined(separator: ",") + "}"
        }
        return w
    }

    /// A document of 1-6 values in a top-level array (so that nested arrays share the
    /// element stack), values often on lines of their own; and what was written.
    static func document(_ rng: inout SplitMix64, pairs: Bool = false) -> ([UInt8], Written) {
        var out: [UInt8] = []
        var line = 1, lineStart = 0
        out += Array("[".utf8)
        let top = Written()
        top.line = 1; top.column = 1
        let n = 1 + Int(rng.next() % 6)
        for k in 0..<n {
            if k > 0 { out.append(44) }
            if rng.next() % 2 == 0 { out.append(10); line += 1; lineStart = out.count }
            top.children.append(Self.write(&rng, depth: 1, into: &out, line: &line, lineStart: &lineStart, pairs: pairs))
        }
        out += Array("]\n".utf8)
        top.compact = "[" + top.children.map(\.compact).joined(separator: ",") + "]"
        return (out, top)
    }

    static func check(_ node: DocNode, _ w: Written, _ path: String) {
        #expect(node.line == w.line && node.column == w.column, "\(path): at \(node.line):\(node.column), written at \(w.line):\(w.column)")
        let children: [DocNode] = node.elements ?? node.members?.map(\.node) ?? []
        #expect(children.count == w.children.count, "\(path)")
        for (k, (c, cw)) in zip(children, w.children).enumerated() { check(c, cw, path + "/\(k)") }
    }

    @Test(arguments: Array(1...8) as [UInt64])
    func everyValueHasItsTextLineAndColumn(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<40 {
            let (out, top) = Self.document(&rng)
            let parsed = out.withUnsafeBufferPointer { JSONDocumentParser.parse($0, file: "t.json") }
            guard case .success(let doc) = parsed else {
                Issue.record("parse failed: \(parsed) on \(String(decoding: out, as: UTF8.self))")
                return
            }
            #expect(doc.jsonText == top.compact)
            Self.check(doc, top, "")
        }
    }

    /// Counts the `.pair` nodes under `node`.
    static func pairs(_ node: DocNode) -> Int {
        if case .pair = node.value { return 1 }
        return (node.elements ?? node.members?.map(\.node) ?? []).reduce(0) { $0 + pairs($1) }
    }

    /// A parse with `compactPairs` (zone files) keeps arrays of two numbers on one line as
    /// `.pair` nodes; through `elements` they are the nodes a plain parse makes, with the same
    /// text, lines, columns and integer flags. Pairs split across lines, with a third number,
    /// or with whitespace anywhere are generated too; and documents cut anywhere fail with
    /// the plain parse's error.
    @Test(arguments: Array(1...6) as [UInt64])
    func compactPairsReadAsThePlainParsesArrays(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var compacted = 0
        for _ in 0..<40 {
            let (out, top) = Self.document(&rng, pairs: true)
            let plain = out.withUnsafeBufferPointer { JSONDocumentParser.parse($0, file: "t.json") }
            let compact = out.withUnsafeBufferPointer { JSONDocumentParser.parse($0, file: "t.json", compactPairs: true) }
            guard case .success(let p) = plain, case .success(let c) = compact else {
                Issue.record("parse failed: \(plain) / \(compact) on \(String(decoding: out, as: UTF8.self))")
                return
            }
            #expect(Self.pairs(p) == 0)
            compacted += Self.pairs(c)
            #expect(p.jsonText == top.compact)
            #expect(c.jsonText == top.compact)
            Self.check(p, top, "")
            Self.check(c, top, "")
            // Integer flags survive (the rule and entity readers look at them).
            func flags(_ d: DocNode) -> [Bool] {
                if case .number(_, let i) = d.value { return [i] }
                return (d.elements ?? d.members?.map(\.node) ?? []).flatMap(flags)
            }
            #expect(flags(p) == flags(c))
            for _ in 0..<4 {
                // Cut before the closing "]\n": never a whole document.
                let head = Array(out[0..<(Int(rng.next() % UInt64(out.count - 2)) + 1)])
                let a = head.withUnsafeBufferPointer { JSONDocumentParser.parse($0, file: "t.json") }
                let b = head.withUnsafeBufferPointer { JSONDocumentParser.parse($0, file: "t.json", compactPairs: true) }
                guard case .failure(let ea) = a, case .failure(let eb) = b else {
                    Issue.record("a cut document parsed: \(a) / \(b)")
                    continue
                }
                #expect(ea.description == eb.description)
            }
        }
        // Most generated pairs are on one line: a parse that never compacts fails here.
        #expect(compacted > 100, "\(compacted) pairs compacted")
    }

    /// A pair at the nesting limit is refused as the plain parse refuses it (its numbers are
    /// one level deeper than the array).
    @Test func compactPairsKeepTheNestingLimit() {
        for depth in 250...258 {
            let text = String(repeating: "[", count: depth) + "1,2" + String(repeating: "]", count: depth)
            let a = JSONDocumentParser.parse(text, file: "d")
            let b = JSONDocumentParser.parse(text, file: "d", compactPairs: true)
            switch (a, b) {
            case (.success(let x), .success(let y)): #expect(x.jsonText == y.jsonText)
            case (.failure(let x), .failure(let y)): #expect(x.description == y.description)
            default: Issue.record("depth \(depth): \(a) against \(b)")
            }
            #expect(depth < 256 ? (try? a.get()) != nil : (try? a.get()) == nil, "depth \(depth)")
        }
    }

    /// A document cut anywhere inside nested arrays fails with the error at the cut (its line
    /// and column), and the nodes gathered so far are released without harm.
    @Test(arguments: Array(1...4) as [UInt64])
    func cutDocumentsFailAtTheCut(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<60 {
            var out: [UInt8] = []
            var line = 1, lineStart = 0
            out += Array("[".utf8)
            _ = Self.write(&rng, depth: 1, into: &out, line: &line, lineStart: &lineStart)
            out += Array("]".utf8)
            let cut = Int(rng.next() % UInt64(out.count - 1)) + 1
            let head = Array(out[0..<cut])
            let parsed = head.withUnsafeBufferPointer { JSONDocumentParser.parse($0, file: "t.json") }
            guard case .failure(let e) = parsed else {
                // A cut right after a complete top-level value cannot happen ("[" opens it).
                Issue.record("cut at \(cut) parsed: \(String(decoding: head, as: UTF8.self))")
                continue
            }
            let lines = head.split(separator: 10, omittingEmptySubsequences: false)
            #expect(e.location?.line ?? 0 >= 1 && e.location?.line ?? 0 <= lines.count, "\(e)")
            #expect(e.message.contains("invalid JSON"), "\(e)")
        }
    }

    /// A repeated member name is refused at the repeat, whether the object is small (names
    /// compared with those before) or large (a set from the ninth member on); distinct
    /// names, however many, are accepted in order.
    @Test func repeatedMemberNamesAreRefusedAtTheRepeat() throws {
        for count in [1, 2, 7, 8, 9, 20] {
            let names = (0..<count).map { "k\($0)" }
            let body = names.map { #""\#($0)":1"# }.joined(separator: ",")
            let doc = try JSONDocumentParser.parse("{" + body + "}", file: "d").get()
            #expect(doc.members?.map(\.key) == names)
            for repeatOf in Set([0, count / 2, count - 1]) {
                let text = "{" + body + #","k\#(repeatOf)":2}"#
                guard case .failure(let e) = JSONDocumentParser.parse(text, file: "d") else {
                    Issue.record("\(count) members, k\(repeatOf) repeated: accepted")
                    continue
                }
                #expect(e.message.contains(#"duplicate member "k\#(repeatOf)""#), "\(e)")
                #expect(e.location?.column == body.utf8.count + 3, "\(e)")
            }
        }
    }

    /// Positions are read without building a JSON pointer for each; the errors of bad ones
    /// still name the position's pointer, line and column (and the clamping stays).
    @Test func badPositionsDeepInALongRingAreLocated() throws {
        var ring: [String] = []
        for k in 0..<500 {
            let a = Double(k) / 500 * 2 * Double.pi
            ring.append("[\(10 + cos(a)),\(50 + sin(a))]")
        }
        ring.append(ring[0])
        func zones(_ ring: [String]) -> String {
            #"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"z","category":"c"},"geometry":{"type":"Polygon","coordinates":[[\#n"# + ring.joined(separator: ",\n") + "]]}}]}"
        }
        #expect(try ZoneCodec.decode(zones(ring), file: "z").get().count == 1)
        for (k, bad, message) in [(137, "[10.5,95]", "latitude 95.0 is out of range"), (260, "[-181,50]", "longitude -181.0 is out of range"),
                                  (3, "[10.5]", "a position must be [longitude, latitude]"), (499, "[\"x\",50]", "longitude must be a number")] {
            var r = ring
            r[k] = bad
            guard case .failure(let errs) = ZoneCodec.decode(zones(r), file: "z") else {
                Issue.record("position \(k) \(bad) was accepted")
                continue
            }
            #expect(errs.errors.count == 1)
            let e = errs.errors[0]
            #expect(e.message.contains(message), "\(e)")
            let pointer = e.location?.pointer ?? ""
            #expect(pointer.hasPrefix("/features/0/geometry/coordinates/0/\(k)"), "\(e)")
            #expect(e.location?.line == k + 2, "\(e)")
        }
    }
}
