import CFuzzerDriver
import ARKCore

/// JSONReader on any bytes: walking every value with the typed calls and skipping the
/// whole document agree on whether it is JSON, and every number it reads is the double
/// strtod reads from the same characters.
@_cdecl("FuzzJSONReader_main")
func main(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    ark_fuzz_main(argc, argv) { fuzzJSONReader($0, $1) }
}

func fuzzJSONReader(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    bytes.withUnsafeBufferPointer { buf in
        var walker = JSONReader(buf)
        var walked = true
        do { try walk(&walker, depth: 0); try walker.end() } catch { walked = false }
        var skipper = JSONReader(buf)
        var skipped = true
        do { try skipper.skipValue(); try skipper.end() } catch { skipped = false }
        precondition(walked == skipped, "walking and skipping disagree on whether this is JSON: walked \(walked), skipped \(skipped)")
    }
    return 0
}

func walk(_ r: inout JSONReader, depth: Int) throws {
    // The fuzzer's own recursion stops where the reader's depth cap would.
    if depth >= JSONReader.maxDepth { return try r.skipValue() }
    switch try r.peekKind() {
    case .object:
        try r.beginObject()
        var first = true
        while let k = try r.nextKey(first: first) {
            first = false
            _ = try r.string(k)
            try walk(&r, depth: depth + 1)
        }
    case .array:
        try r.beginArray()
        var first = true
        while try r.nextElement(first: first) {
            first = false
            try walk(&r, depth: depth + 1)
        }
    case .string: _ = try r.readString()
    case .number:
        r.skipWhitespace()
        let start = r.offset
        let n = try r.readNumber()
        let text = r.text(from: start)
        let expected = Double(text)
        precondition(expected.map { $0.bitPattern == n.value.bitPattern || ($0.isNaN && n.value.isNaN) } ?? false,
                     "'\(text)' read as \(n.value), strtod says \(String(describing: expected))")
    case .bool: _ = try r.readBool()
    case .null:
        // peekKind judges by the first byte: "nope" starts like null and is not JSON.
        guard r.readNullIfPresent() else { throw JSONParseError("not null", offset: r.offset) }
    }
}
