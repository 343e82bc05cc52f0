import ARKCore
import Testing

/// What the intake compares when a trace id comes back.
@Suite struct ContentDigestTests {
    func canonical(_ s: String) -> String? { ContentDigest.canonical(Array(s.utf8)).map { String(decoding: $0, as: UTF8.self) } }

    @Test func keyOrderAndWhitespaceAreNotContent() {
        #expect(canonical(#" { "b" : [1, {"y":2,"x":"a b"}], "a":null } "#) == #"{"a":null,"b":[1.0,{"x":"a b","y":2.0}]}"#)
        #expect(ContentDigest.of(Array(#"{"price":1.5,"symbol":"AAPL"}"#.utf8)) == ContentDigest.of(Array("{\n  \"symbol\": \"AAPL\",\n  \"price\": 1.5\n}".utf8)))
        #expect(canonical(#"{"a":50,"b":50.0,"c":5e1}"#) == #"{"a":50.0,"b":50.0,"c":50.0}"#)
        // Keys are sorted by their text, an escaped key as what it says.
        #expect(canonical(#"{"\u0062":1,"a":2}"#) == #"{"a":2.0,"b":1.0}"#)
    }

    @Test func anyChangeOfAValueIsOtherContent() {
        let base = ContentDigest.of(Array(#"{"price":1.5,"leverage":1}"#.utf8))
        for other in [#"{"price":1.5,"leverage":50}"#, #"{"price":1.6,"leverage":1}"#, #"{"price":1.5,"leverage":1,"x":null}"#, #"{"price":"1.5","leverage":1}"#, #"{"price":NaN,"leverage":1}"#] {
            #expect(ContentDigest.of(Array(other.utf8)) != base, "\(other)")
        }
    }

    @Test func nonFiniteNumbersStayApartFromNull() {
        #expect(canonical(#"{"a":NaN,"b":null,"c":Infinity}"#) == #"{"a":NaN,"b":null,"c":Infinity}"#)
    }

    @Test func whatIsNotOneJSONValueHasNoDigest() {
        for bad in ["", "{", #"{"a":1} {"#, #"{"a":}"#, String(repeating: "[", count: 100) + String(repeating: "]", count: 100)] {
            #expect(ContentDigest.of(Array(bad.utf8)) == nil, "\(bad)")
        }
    }
}
