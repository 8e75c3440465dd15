import Foundation
import Testing
import TriplineTesting
@testable import TriplineCore

/// The scanner's eight-bytes-at-a-time string and number paths against byte-by-byte references:
/// the same outcome (range, escapes, error offset), the same cursor after the token, and numbers
/// bit-equal to the correctly rounded `strtod`.
@Suite struct JSONScannerTests {
    /// Byte-by-byte reference of a string's fast path: the range when the string closes before
    /// any backslash or control character and is valid UTF-8; otherwise where the fast path
    /// stops (nil range).
    static func referenceString(_ b: [UInt8], from: Int) -> (range: (Int, Int)?, stop: Int) {
        var i = from + 1
        while i < b.count {
            let c = b[i]
            if c == 34 {
                let ok = b[(from + 1)..<i].withContiguousStorageIfAvailable { validUTF8Buffer($0) } ?? false
                return (ok ? (from + 1, i) : nil, i)
            }
            if c == 92 || c < 32 { return (nil, i) }
            i += 1
        }
        return (nil, i)
    }

    @Test(arguments: Array(1...6) as [UInt64])
    func stringsAgreeWithTheByteByByteReference(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        // Mostly ASCII letters, then each byte the fast path must stop at or pass over.
        let alphabet: [[UInt8]] = [
            Array("a".utf8), Array("Z".utf8), Array("-".utf8), Array("7".utf8), Array(" ".utf8), Array("~".utf8),
            [34], [92], [92, 34], [92, 110], [92, 117, 48, 48, 69, 57], [9], [31], [0], [127],
            Array("é".utf8), Array("€".utf8), Array("😀".utf8), [0xC3], [0x80], [0xFF], [0xED, 0xA0, 0x80],
        ]
        var raw = 0, stopped = 0
        for _ in 0..<20_000 {
            var text: [UInt8] = [34]
            let n = Int(rng.next() % 40)
            for _ in 0..<n {
                let r = rng.next() % 100
                text += r < 95 ? alphabet[Int(rng.next() % 6)] : alphabet[Int(rng.next() % UInt64(alphabet.count))]
            }
            if rng.next() % 8 != 0 { text.append(34) }
            // What follows the string: nothing, or up to 12 more bytes (the 8-byte loads must
            // not depend on them).
            let tail = Int(rng.next() % 13)
            for _ in 0..<tail { text.append(rng.next() % 2 == 0 ? 34 : 44) }
            let ref = JSONScannerTests.referenceString(text, from: 0)
            text.withUnsafeBufferPointer { p in
                var s = JSONScanner(p)
                let result = s.scanString()
                if let (a, b) = ref.range {
                    raw += 1
                    guard case .success(.raw(let x, let y)) = result else {
                        Issue.record("expected raw \(a)..<\(b) for \(text), got \(result)")
                        return
                    }
                    #expect(x == a && y == b, "\(text)")
                    #expect(s.i == b + 1, "\(text)")
                } else {
                    stopped += 1
                    // The slow path starts where the reference stops; its outcome is the old
                    // one: compare with a scanner that starts in the slow path directly.
                    if case .success(.raw) = result { Issue.record("raw result for \(text), the reference stops at \(ref.stop)") }
                }
            }
        }
        #expect(raw > 3_000 && stopped > 3_000, "raw \(raw), stopped \(stopped): the generator must exercise both")
    }

    /// The escape path decodes the same bytes whichever byte the eight-byte scan stopped at.
    @Test func escapesAndInvalidBytesAfterLongPlainRuns() {
        for run in 0..<20 {
            let plain = String(repeating: "k", count: run)
            let cases: [(String, String?)] = [
                ("\"\(plain)\\n\(plain)\"", plain + "\n" + plain),
                ("\"\(plain)\\u00e9\"", plain + "é"),
                ("\"\(plain)é\(plain)\"", nil),
                ("\"\(plain)\\\"\"", plain + "\""),
            ]
            for (json, decoded) in cases {
                let bytes = Array(json.utf8)
                bytes.withUnsafeBufferPointer { p in
                    var s = JSONScanner(p)
                    switch s.scanString() {
                    case .success(.raw(let a, let b)):
                        #expect(decoded == nil, "\(json): raw, expected unescaped")
                        #expect(Array(bytes[a..<b]) == Array((plain + "é" + plain).utf8))
                    case .success(.unescaped):
                        #expect(s.scratch == Array((decoded ?? "?").utf8), "\(json)")
                    case .failure(let e):
                        Issue.record("\(json): \(e.message)")
                    }
                    #expect(s.i == bytes.count, "\(json)")
                }
            }
            // Invalid UTF-8 and a control character after a plain run are refused, at the
            // string's start and at the character.
            for (bad, offset) in [([UInt8(0xC3), 0x28], 1), ([UInt8(10)], 1 + run)] {
                let bytes = [34] + Array(plain.utf8) + bad + [34]
                bytes.withUnsafeBufferPointer { p in
                    var s = JSONScanner(p)
                    guard case .failure(let e) = s.scanString() else { Issue.record("accepted \(bytes)"); return }
                    #expect(e.offset == offset, "\(bytes): \(e.message)")
                }
            }
        }
    }

    static func randomNumberText(_ rng: inout SplitMix64) -> String {
        func digits(_ n: Int, leadingZero: Bool) -> String {
            var s = ""
            for k in 0..<n { s += String(k == 0 && !leadingZero ? 1 + rng.next() % 9 : rng.next() % 10) }
            return s
        }
        var t = rng.next() % 3 == 0 ? "-" : ""
        let intDigits = Int(rng.next() % 24)
        t += intDigits == 0 ? "0" : digits(intDigits, leadingZero: false)
        if rng.next() % 2 == 0 { t += "." + digits(1 + Int(rng.next() % 24), leadingZero: true) }
        if rng.next() % 5 == 0 { t += (rng.next() % 2 == 0 ? "e" : "E") + ["", "+", "-"][Int(rng.next() % 3)] + String(rng.next() % 40) }
        return t
    }

    @Test(arguments: Array(1...6) as [UInt64])
    func numbersAreCorrectlyRoundedAndEndWhereTheTextEnds(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var fast = 0
        for _ in 0..<20_000 {
            let text = JSONScannerTests.randomNumberText(&rng)
            // A following byte that is not a digit (or nothing), then bytes the 8-byte loads may see.
            let follow = ["", ",", "}", " ", "x", ",\"lat\":12345678", "}\n"][Int(rng.next() % 7)]
            let bytes = Array((text + follow).utf8)
            let expected = strtod(text, nil)
            let isInt = !text.contains(".") && !text.lowercased().contains("e")
            bytes.withUnsafeBufferPointer { p in
                var s = JSONScanner(p)
                guard case .success(let (v, int)) = s.scanNumber() else { Issue.record("refused \(text)"); return }
                #expect(v.bitPattern == expected.bitPattern, "\(text): \(v) != \(expected)")
                #expect(int == isInt, "\(text)")
                #expect(s.i == text.utf8.count, "\(text + follow): cursor \(s.i)")
            }
            if text.filter(\.isNumber).count <= 19 && !text.contains("e") && !text.contains("E") { fast += 1 }
        }
        #expect(fast > 5_000)
    }

    /// Numbers of 16 to 19 digits (how GIS tools write coordinates), which the scanner rounds
    /// through Float80, against strtod: random ones, and ones within a few Float80 units of a
    /// point halfway between two Doubles, where rounding twice would go wrong and the scanner
    /// must defer to strtod. Written from the Float80 halfway point's own digits, cut to 19
    /// and moved by one in the last place.
    @Test(arguments: Array(1...4) as [UInt64])
    func longNumbersNearHalfwayPointsAreCorrectlyRounded(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var cases: [String] = []
        for _ in 0..<5_000 {
            var t = String(1 + rng.next() % 9)
            for _ in 0..<(15 + Int(rng.next() % 4)) { t += String(rng.next() % 10) }
            let point = 1 + Int(rng.next() % UInt64(t.count - 1))
            t.insert(".", at: t.index(t.startIndex, offsetBy: point))
            cases.append((rng.next() % 2 == 0 ? "-" : "") + t)
        }
        #if arch(x86_64)
        var nearHalfway = 0
        while nearHalfway < 5_000 {
            // A Double between 1 and 180, the point halfway to the next one (exact in Float80).
            let d = 1 + Double(rng.next() >> 11) / Double(1 << 53) * 179
            let mid = (Float80(d) + Float80(d.nextUp)) / 2
            var digits = mid.description
            guard !digits.contains("e"), let dot = digits.firstIndex(of: ".") else { continue }
            let intPart = digits.distance(from: digits.startIndex, to: dot)
            digits.remove(at: dot)
            guard digits.count >= 19 else { continue }
            digits = String(digits.prefix(19))
            let last = Int(String(digits.last!))!
            guard last > 0 && last < 9 else { continue }
            for delta in -1...1 {
                var t = String(digits.dropLast()) + String(last + delta)
                t.insert(".", at: t.index(t.startIndex, offsetBy: intPart))
                cases.append(t)
            }
            nearHalfway += 1
        }
        #endif
        for text in cases {
            let bytes = Array((text + ",").utf8)
            let expected = strtod(text, nil)
            bytes.withUnsafeBufferPointer { p in
                var s = JSONScanner(p)
                guard case .success(let (v, _)) = s.scanNumber() else { Issue.record("refused \(text)"); return }
                #expect(v.bitPattern == expected.bitPattern, "\(text): \(v) != \(expected)")
                #expect(s.i == text.utf8.count, "\(text): cursor \(s.i)")
            }
        }
    }

    @Test func malformedNumbersAreRefusedWhereTheyGoWrong() {
        for (text, offset) in [("0123", 0), ("-", 0), ("1.", 2), ("12345678.x", 9), ("1e", 2), ("123456789e+", 11), ("-01", 0)] {
            let bytes = Array(text.utf8)
            bytes.withUnsafeBufferPointer { p in
                var s = JSONScanner(p)
                guard case .failure(let e) = s.scanNumber() else { Issue.record("accepted \(text)"); return }
                #expect(e.offset == offset, "\(text): \(e.message) at \(e.offset)")
            }
        }
    }
}

/// The writer's side: every string written as a JSON literal (the copy-in-one-piece path and
/// the escaping path) reads back as the same string, and numbers as the same value.
@Suite struct JSONTextTests {
    @Test(arguments: Array(1...4) as [UInt64])
    func stringsAndNumbersReadBackUnchanged(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let pieces = ["truck-", "7", "é", "😀", "\"", "\\", "\n", "\t", "\r", "\u{01}", "\u{1F}", "/", " ", "zone"]
        for _ in 0..<2_000 {
            var s = ""
            for _ in 0..<Int(rng.next() % 12) {
                s += rng.next() % 4 == 0 ? pieces[Int(rng.next() % UInt64(pieces.count))] : pieces[Int(rng.next() % 2)]
            }
            var out: [UInt8] = []
            JSONText.appendString(s, to: &out)
            let back = try JSONSerialization.jsonObject(with: Data(out), options: [.fragmentsAllowed]) as? String
            #expect(back == s, "\(s.debugDescription) -> \(String(decoding: out, as: UTF8.self))")
            // The interner's path writes the same bytes.
            var interner = Interner()
            let id = interner.intern(s)
            var viaInterner: [UInt8] = []
            interner.appendJSONString(id, to: &viaInterner)
            #expect(viaInterner == out)
        }
        for d in [0.0, -0.0, 7, -7, 123_456_789_012_345, 1e15, 0.5, -2.25, 1e-7, 1e300, 99_999_999_999_999] {
            var out: [UInt8] = []
            JSONText.appendNumber(d, to: &out)
            let text = String(decoding: out, as: UTF8.self)
            #expect(Double(text) == d, "\(d) -> \(text)")
            if d == d.rounded() && abs(d) < 1e15 { #expect(!text.contains(".") && !text.contains("e"), "\(d) -> \(text)") }
        }
    }
}
