import ARKCore
import ARKTestSupport
import Foundation
import Testing

/// docs/configuration.md is what the configuration code generates, and every variable ARK
/// reads anywhere is in it.
@Suite struct ConfigReferenceTests {
    @Test func theReferenceInDocsIsWhatTheCodeGenerates() throws {
        let file = try String(contentsOfFile: Repo.root + "/docs/configuration.md", encoding: .utf8)
        #expect(file == ARKConfig.referenceMarkdown(), "docs/configuration.md is stale. Fix: .build/debug/ark config reference > docs/configuration.md")
    }

    @Test func everyVariableReadHasAMeaningAndEveryMeaningIsRead() {
        let read = ARKConfig.catalog().map(\.name)
        #expect(read.count == Set(read).count, "a variable is catalogued twice")
        #expect(Set(read).subtracting(ARKConfig.meanings.keys).sorted() == [], "read without a meaning in ConfigReference.swift")
        #expect(Set(ARKConfig.meanings.keys).subtracting(read).sorted() == [], "a meaning for a variable no longer read")
        #expect(Set(ARKConfig.processVariables.map(\.name)).isDisjoint(with: read))
    }

    /// Every `environment["NAME"]` in the sources and every variable the scripts read with a
    /// default (`${NAME:-…}`) is in the reference (the account's own USER and SUDO_USER aside).
    @Test func noVariableIsReadOutsideTheReference() throws {
        let known = Set(ARKConfig.catalog().map(\.name) + ARKConfig.processVariables.map(\.name) + ["USER", "SUDO_USER"])
        var found: [String: String] = [:]
        let swiftRead = try NSRegularExpression(pattern: #"environment\["([A-Z][A-Z0-9_]+)"\]"#)
        let enumerator = FileManager.default.enumerator(atPath: Repo.root + "/Sources")!
        while let file = enumerator.nextObject() as? String {
            guard file.hasSuffix(".swift") else { continue }
            let text = try String(contentsOfFile: Repo.root + "/Sources/" + file, encoding: .utf8)
            // Environments ARK builds for its children are written, not read.
            for m in swiftRead.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                let r = Range(m.range, in: text)!
                let after = text[r.upperBound...].prefix(4)
                if after.hasPrefix(" = ") { continue }
                found[String(text[Range(m.range(at: 1), in: text)!])] = "Sources/" + file
            }
        }
        let unknown = found.filter { !known.contains($0.key) }
        #expect(unknown.isEmpty, "read but not in docs/configuration.md: \(unknown.sorted { $0.key < $1.key })")
    }
}
