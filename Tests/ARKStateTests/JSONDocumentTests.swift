import ARKCore
import ARKState
import Foundation
import Testing

/// The one JSON path off the hot path: Foundation's JSONSerialization written one way, and
/// read field by field with errors that name the field.
@Suite struct JSONDocumentTests {
    @Test func documentsAreSortedAndPrettyOnesEndInANewline() throws {
        let object: [String: Any] = ["b": 1, "a": ["x/y", 2.5, true, NSNull()], "c": ["z": Int64(1_795_000_000_000_000_001)]]
        #expect(try JSONDocument.text(object) == #"{"a":["x/y",2.5,true,null],"b":1,"c":{"z":1795000000000000001}}"#)
        let pretty = try JSONDocument.text(object, .pretty)
        #expect(pretty.hasSuffix("}\n") && pretty.contains("\n  \"a\" : ["))
        #expect(JSONDocument.parse(pretty) as? NSDictionary == object as NSDictionary)
        // A number that is not one JSON can hold is an error, never a crash or a silent "{}".
        #expect(throws: (any Error).self) { try JSONDocument.data(["x": Double.nan]) }
        #expect(throws: (any Error).self) { try JSONDocument.data(["x": Double.infinity]) }
    }

    @Test func parseTakesFragmentsAndRefusesWhatIsNotJSON() {
        #expect(JSONDocument.parse(#"["a","b"]"#) as? [String] == ["a", "b"])
        #expect(JSONDocument.parse("42") as? Int == 42)
        #expect(JSONDocument.parse(#""s""#) as? String == "s")
        for bad in ["", "{", "{\"a\":}", "nul", "\u{FEFF}{x}", "{\"a\":1}}"] {
            #expect(JSONDocument.parse(bad) == nil, "\(bad)")
        }
        #expect(JSONDocument.object("[1]") == nil)
        #expect(JSONDocument.object(#"{"a":1}"#)?["a"] as? Int == 1)
    }

    @Test func fieldsAreReadByTypeAndAMismatchNamesTheField() throws {
        let f = try JSONFields(text: #"{"s":"x","i":7,"f":10.0,"d":2.5,"b":true,"one":1,"n":null,"big":1795000000000000001,"l":[1,2],"m":{"a":1},"o":{"k":"v"},"os":[{"k":"v"},3]}"#, "doc")
        #expect(try f.required("s", as: String.self) == "x")
        #expect(try f.required("i", as: Int.self) == 7)
        #expect(try f.required("f", as: Int.self) == 10)
        #expect(try f.required("i", as: Double.self) == 7)
        #expect(try f.required("d", as: Double.self) == 2.5)
        #expect(try f.required("b", as: Bool.self))
        #expect(try f.required("big", as: Int64.self) == 1_795_000_000_000_000_001)
        #expect(try f.required("l", as: [Int].self) == [1, 2])
        #expect(try f.required("m", as: [String: Int].self) == ["a": 1])
        #expect(try f.object("o")?.required("k", as: String.self) == "v")
        // Absent and null are nil; required says which is missing.
        #expect(try f.optional("n", as: String.self) == nil)
        #expect(try f.optional("absent", as: Int.self) == nil)
        #expect(try f.object("n") == nil)
        func mismatch(_ body: () throws -> Void) -> String {
            do { try body() } catch { return (error as? JSONFields.Mismatch)?.description ?? "another error: \(error)" }
            return "no error"
        }
        #expect(mismatch { _ = try f.required("absent", as: Int.self) } == "doc.absent is missing")
        #expect(mismatch { _ = try f.required("s", as: Int.self) } == "doc.s: expected integer, found string")
        #expect(mismatch { _ = try f.required("d", as: Int.self) } == "doc.d: expected integer, found number")
        // A boolean is not a number, nor a number a boolean (Foundation bridges both ways).
        #expect(mismatch { _ = try f.required("b", as: Int.self) } == "doc.b: expected integer, found boolean")
        #expect(mismatch { _ = try f.required("b", as: Double.self) } == "doc.b: expected number, found boolean")
        #expect(mismatch { _ = try f.required("one", as: Bool.self) } == "doc.one: expected boolean, found number")
        #expect(mismatch { _ = try f.required("big", as: Int32.self) } == "doc.big: expected 32-bit integer, found number")
        #expect(mismatch { _ = try f.required("l", as: [String].self) } == "doc.l: expected list of string, found list")
        #expect(mismatch { _ = try f.required("m", as: [String: String].self) } == "doc.m: expected object of string, found object")
        #expect(mismatch { _ = try f.objects("os") } == "doc.os[1]: expected object, found number")
        #expect(mismatch { _ = try f.objects("s") } == "doc.s: expected list, found string")
        #expect(mismatch { _ = try JSONFields(text: "[]", "report") } == "report: expected object, found list")
        #expect(mismatch { _ = try JSONFields(text: "{", "report") } == "report is not JSON")
    }
}
