import Foundation

/// Byte-level JSON lexing primitives shared by the document parser and the fast event decoder.
/// Works on raw UTF-8 without creating Strings unless asked to.

struct JSONScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var i: Int
    /// Scratch space for strings with escapes.
    var scratch: [UInt8] = []

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        self.i = 0
    }

    var atEnd: Bool { i >= bytes.count }

    mutating func skipWhitespace() {
        while i < bytes.count {
            let c = bytes[i]
            if c == 32 || c == 9 || c == 10 || c == 13 { i += 1 } else { break }
        }
    }

    func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }

    /// Describes the byte at the cursor for error messages.
    func describeHere() -> String {
        guard i < bytes.count else { return "end of input" }
        let c = bytes[i]
        if c >= 32 && c < 127 { return "'\(Character(UnicodeScalar(c)))'" }
        return String(format: "byte 0x%02X", c)
    }

    enum StringResult {
        /// The string's bytes lie in the input without escapes: [start, end).
        case raw(Int, Int)
        /// The string had escapes; its decoded bytes are in `scratch`.
        case unescaped
    }

    /// Scans a string starting at the opening quote. On success the cursor is after the closing quote.
    mutating func scanString() -> Result<StringResult, ScanError> {
        guard i < bytes.count, bytes[i] == 34 else { return .failure(.init(i, "expected a string")) }
        i += 1
        let start = i
        // Fast path: no escapes, no control characters. Eight bytes at a time while they are
        // plain ASCII; the first byte that is a quote, a backslash, a control character or
        // not ASCII is looked at on its own. UTF-8 is validated only when a byte >= 0x80 was
        // seen.
        let n = bytes.count
        var nonASCII = false
        if let base = bytes.baseAddress {
            while true {
                while i &+ 8 <= n {
                    let w = UInt64(littleEndian: UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self))
                    let m = JSONScanner.stringStops(w)
                    if m != 0 { i &+= m.trailingZeroBitCount &>> 3; break }
                    i &+= 8
                }
                guard i < n else { break }
                let c = base[i]
                if c == 34 {
                    let end = i
                    i += 1
                    if nonASCII && !validUTF8Buffer(UnsafeBufferPointer(rebasing: bytes[start..<end])) {
                        return .failure(.init(start, "string is not valid UTF-8"))
                    }
                    return .success(.raw(start, end))
                }
                if c == 92 || c < 32 { break }
                if c >= 0x80 { nonASCII = true }
                i &+= 1
            }
        }
        // Slow path with escapes.
        scratch.removeAll(keepingCapacity: true)
        for k in start..<i { scratch.append(bytes[k]) }
        while i < bytes.count {
            let c = bytes[i]
            if c == 34 {
                i += 1
                let ok = scratch.withUnsafeBufferPointer { validUTF8Buffer($0) }
                if !ok { return .failure(.init(start, "string is not valid UTF-8")) }
                return .success(.unescaped)
            }
            if c < 32 { return .failure(.init(i, "control character in string: escape it (e.g. \\n)")) }
            if c == 92 {
                i += 1
                guard i < bytes.count else { break }
                let e = bytes[i]
                i += 1
                switch e {
                case 34: scratch.append(34)
                case 92: scratch.append(92)
                case 47: scratch.append(47)
                case 98: scratch.append(8)
                case 102: scratch.append(12)
                case 110: scratch.append(10)
                case 114: scratch.append(13)
                case 116: scratch.append(9)
                case 117:
                    guard let u = hex4() else { return .failure(.init(i, "\\u must be followed by 4 hex digits")) }
                    var scalar = u
                    if u >= 0xD800 && u < 0xDC00 {
                        guard i + 1 < bytes.count, bytes[i] == 92, bytes[i + 1] == 117 else {
                            return .failure(.init(i, "unpaired UTF-16 surrogate in \\u escape"))
                        }
                        i += 2
                        guard let lo = hex4(), lo >= 0xDC00 && lo < 0xE000 else {
                            return .failure(.init(i, "unpaired UTF-16 surrogate in \\u escape"))
                        }
                        scalar = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    } else if u >= 0xDC00 && u < 0xE000 {
                        return .failure(.init(i, "unpaired UTF-16 surrogate in \\u escape"))
                    }
                    if scalar == 0 { return .failure(.init(i - 6, "\\u0000 (NUL) is not allowed in text: no id or name needs it, and PostgreSQL cannot store it")) }
                    appendUTF8(scalar)
                default:
                    return .failure(.init(i - 1, "invalid escape '\\\(Character(UnicodeScalar(e)))'"))
                }
                continue
            }
            scratch.append(c)
            i += 1
        }
        return .failure(.init(start - 1, "unterminated string (missing closing quote)"))
    }

    mutating func hex4() -> UInt32? {
        guard i + 4 <= bytes.count else { return nil }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 65...70: d = UInt32(c - 55)
            case 97...102: d = UInt32(c - 87)
            default: return nil
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    mutating func appendUTF8(_ s: UInt32) {
        if s < 0x80 {
            scratch.append(UInt8(s))
        } else if s < 0x800 {
            scratch.append(UInt8(0xC0 | (s >> 6))); scratch.append(UInt8(0x80 | (s & 0x3F)))
        } else if s < 0x10000 {
            scratch.append(UInt8(0xE0 | (s >> 12))); scratch.append(UInt8(0x80 | ((s >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (s & 0x3F)))
        } else {
            scratch.append(UInt8(0xF0 | (s >> 18))); scratch.append(UInt8(0x80 | ((s >> 12) & 0x3F)))
            scratch.append(UInt8(0x80 | ((s >> 6) & 0x3F))); scratch.append(UInt8(0x80 | (s & 0x3F)))
        }
    }

    /// For eight bytes read little-endian: a word whose lowest set bit is the high bit of the
    /// first byte that ends the fast path of a string (a quote, a backslash, a byte under 0x20
    /// or one of 0x80 and above), or 0 when none does. Each of the four tests may also set bits
    /// above its own first hit (borrows), never below it, so the lowest set bit is exact.
    @inline(__always)
    static func stringStops(_ w: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        let q = w ^ (ones &* 0x22), b = w ^ (ones &* 0x5C)
        let quote = (q &- ones) & ~q
        let backslash = (b &- ones) & ~b
        let control = w &- (ones &* 0x20)
        return (quote | backslash | control | w) & highs
    }

    /// For eight bytes read little-endian: how many of them, from the first, are ASCII digits.
    @inline(__always)
    static func leadingDigits(_ w: UInt64) -> Int {
        let highNibbles: UInt64 = 0xF0F0_F0F0_F0F0_F0F0, threes: UInt64 = 0x3030_3030_3030_3030
        // A byte is a digit when its high nibble is 3 and stays 3 after adding 6 (0x30-0x39).
        // A carry out of a byte >= 0xFA only reaches bytes after that non-digit.
        let x = ((w & highNibbles) ^ threes) | (((w &+ 0x0606_0606_0606_0606) & highNibbles) ^ threes)
        return x == 0 ? 8 : x.trailingZeroBitCount &>> 3
    }

    /// The value of eight ASCII digits read little-endian (the first byte is the most
    /// significant digit); bytes that are 0 count as leading zeros.
    @inline(__always)
    static func eightDigits(_ w: UInt64) -> UInt64 {
        var v = w & 0x0F0F_0F0F_0F0F_0F0F
        v = (v &* 2561) &>> 8
        v = ((v & 0x00FF_00FF_00FF_00FF) &* 6_553_601) &>> 16
        return ((v & 0x0000_FFFF_0000_FFFF) &* 42_949_672_960_001) &>> 32
    }

    static let pow10Int: [UInt64] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000]

    /// Reads a run of digits at the cursor into `mantissa` (keeping at most 19 significant
    /// digits, counting the rest in `digits`), eight at a time while they fit. Returns how many
    /// digits were read.
    @inline(__always)
    mutating func scanDigits(_ mantissa: inout UInt64, _ digits: inout Int) -> Int {
        let from = i
        let n = bytes.count
        if let base = bytes.baseAddress {
            while i &+ 8 <= n && digits &+ 8 <= 19 {
                let w = UInt64(littleEndian: UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self))
                let k = JSONScanner.leadingDigits(w)
                if k == 0 { return i &- from }
                mantissa = mantissa &* JSONScanner.pow10Int[k] &+ JSONScanner.eightDigits(w &<< UInt64(8 &* (8 &- k)))
                digits &+= k
                i &+= k
                if k < 8 { return i &- from }
            }
        }
        while i < n, bytes[i] >= 48, bytes[i] <= 57 {
            if digits < 19 { mantissa = mantissa &* 10 &+ UInt64(bytes[i] &- 48) }
            digits &+= 1
            i &+= 1
        }
        return i &- from
    }

    /// Scans a JSON number. Returns the value and whether it was written as an integer.
    mutating func scanNumber() -> Result<(Double, Bool), ScanError> {
        let start = i
        var negative = false
        if i < bytes.count && bytes[i] == 45 { negative = true; i += 1 }
        var mantissa: UInt64 = 0
        var digits = 0
        guard i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 else {
            return .failure(.init(start, "invalid number"))
        }
        if bytes[i] == 48 {
            i += 1
            if i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 { return .failure(.init(start, "numbers may not have leading zeros")) }
        } else {
            _ = scanDigits(&mantissa, &digits)
        }
        var isInteger = true
        var fracDigits = 0
        if i < bytes.count && bytes[i] == 46 {
            isInteger = false
            i += 1
            guard i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 else { return .failure(.init(i, "a '.' must be followed by digits")) }
            let before = digits
            _ = scanDigits(&mantissa, &digits)
            fracDigits = min(digits, 19) - min(before, 19)
        }
        var exp = 0
        if i < bytes.count && (bytes[i] == 101 || bytes[i] == 69) {
            isInteger = false
            i += 1
            var eneg = false
            if i < bytes.count && (bytes[i] == 43 || bytes[i] == 45) { eneg = bytes[i] == 45; i += 1 }
            guard i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 else { return .failure(.init(i, "an exponent must have digits")) }
            while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 {
                if exp < 100_000 { exp = exp * 10 + Int(bytes[i] - 48) }
                i += 1
            }
            if eneg { exp = -exp }
        }
        // Clinger's fast path: exact when no digit was dropped, the mantissa fits 53 bits
        // and the power of ten is exactly representable.
        if digits <= 19 {
            let e10 = exp - fracDigits
            if mantissa <= (1 << 53) && e10 >= -22 && e10 <= 22 {
                var v = Double(mantissa)
                if e10 < 0 { v /= JSONScanner.pow10[-e10] } else if e10 > 0 { v *= JSONScanner.pow10[e10] }
                return .success((negative ? -v : v, isInteger))
            }
        }
        #if arch(x86_64)
        // Up to 19 digits (a coordinate written with 16 or 17, as Python and most GIS tools
        // write them) with a power of ten up to 10^27: the digits and the power are exact in
        // Float80's 64-bit significand, so the quotient or product is rounded once there
        // (IEEE), and rounding that to a Double is the correctly rounded result unless the
        // Float80 value lies within one of its units of a point halfway between two Doubles
        // (its low 11 bits 0x3FF, 0x400 or 0x401): those go to strtod below.
        if digits <= 19 {
            let e10 = exp - fracDigits
            if e10 >= -27 && e10 <= 27 && mantissa != 0 {
                let m = Float80(mantissa)
                let r = e10 < 0 ? m / JSONScanner.pow10x[-e10] : m * JSONScanner.pow10x[e10]
                let low = r.significandBitPattern & 0x7FF
                if low < 0x3FF || low > 0x401 {
                    let v = Double(r)
                    return .success((negative ? -v : v, isInteger))
                }
            }
        }
        #endif
        // Slow path: correctly rounded strtod on a NUL-terminated copy (on the stack up to
        // 255 bytes: a coordinate written with 17 digits, as Python and most GIS tools write
        // them, takes this path, and a heap copy per number showed in zone loading).
        let n = i - start
        let v = withUnsafeTemporaryAllocation(of: CChar.self, capacity: n < 256 ? 256 : n + 1) { tmp -> Double in
            for k in 0..<n { tmp[k] = CChar(bitPattern: bytes[start + k]) }
            tmp[n] = 0
            return strtod(tmp.baseAddress!, nil)
        }
        return .success((v, isInteger))
    }

    #if arch(x86_64)
    /// 10^0 ... 10^27, each exact (5^27 < 2^64).
    static let pow10x: [Float80] = (0...27).map { e in
        var v: Float80 = 1
        for _ in 0..<e { v *= 10 }
        return v
    }
    #endif

    static let pow10: [Double] = (0...22).map { e in
        var v = 1.0
        for _ in 0..<e { v *= 10 }
        return v
    }

    /// Matches a literal (`true`, `false`, `null`).
    mutating func scanLiteral(_ lit: StaticString) -> Bool {
        let n = lit.utf8CodeUnitCount
        guard i + n <= bytes.count else { return false }
        let p = lit.utf8Start
        for k in 0..<n where bytes[i + k] != p[k] { return false }
        i += n
        return true
    }

    /// Skips any JSON value (used for error recovery and to measure values).
    mutating func skipValue(depth: Int = 0) -> ScanError? {
        skipWhitespace()
        guard let c = peek() else { return .init(i, "expected a value") }
        switch c {
        case 34:
            if case .failure(let e) = scanString() { return e }
        case 123, 91:
            if depth > 512 { return .init(i, "nesting is too deep") }
            let close: UInt8 = c == 123 ? 125 : 93
            i += 1
            skipWhitespace()
            if peek() == close { i += 1; return nil }
            while true {
                if c == 123 {
                    skipWhitespace()
                    if case .failure(let e) = scanString() { return e }
                    skipWhitespace()
                    guard peek() == 58 else { return .init(i, "expected ':'") }
                    i += 1
                }
                if let e = skipValue(depth: depth + 1) { return e }
                skipWhitespace()
                guard let d = peek() else { return .init(i, "unexpected end of input") }
                i += 1
                if d == close { return nil }
                if d != 44 { return .init(i - 1, "expected ',' or '\(Character(UnicodeScalar(close)))'") }
            }
        case 116: if !scanLiteral("true") { return .init(i, "invalid literal") }
        case 102: if !scanLiteral("false") { return .init(i, "invalid literal") }
        case 110: if !scanLiteral("null") { return .init(i, "invalid literal") }
        default:
            if case .failure(let e) = scanNumber() { return e }
        }
        return nil
    }
}

/// A lexing failure at a byte offset.

struct ScanError: Error {
    var offset: Int
    var message: String
    init(_ offset: Int, _ message: String) {
        self.offset = offset
        self.message = message
    }
}


func validUTF8Buffer(_ p: UnsafeBufferPointer<UInt8>) -> Bool {
    var k = 0
    let n = p.count
    while k < n {
        let c = p[k]
        if c < 0x80 { k += 1; continue }
        var need = 0
        var minScalar: UInt32 = 0
        var s: UInt32
        if c & 0xE0 == 0xC0 { need = 1; s = UInt32(c & 0x1F); minScalar = 0x80 }
        else if c & 0xF0 == 0xE0 { need = 2; s = UInt32(c & 0x0F); minScalar = 0x800 }
        else if c & 0xF8 == 0xF0 { need = 3; s = UInt32(c & 0x07); minScalar = 0x10000 }
        else { return false }
        for j in 1...need {
            guard k + j < n else { return false }
            let cc = p[k + j]
            guard cc & 0xC0 == 0x80 else { return false }
            s = s << 6 | UInt32(cc & 0x3F)
        }
        if s < minScalar || s > 0x10FFFF || (s >= 0xD800 && s < 0xE000) { return false }
        k += need + 1
    }
    return true
}
