import ARKTestSupport
import Foundation
import Testing

/// The design document the code cites: every "DESIGN §n" in the repository names a section of
/// docs/architecture.md, and every link of that document leads to a file or a README heading
/// that exists.
@Suite struct DocumentationTests {
    static func text(_ path: String) throws -> String { try String(contentsOfFile: Repo.root + "/" + path, encoding: .utf8) }

    /// The files git would ship below `dirs`, by walking them (no git needed).
    static func files(under dirs: [String]) -> [String] {
        dirs.flatMap { dir -> [String] in
            let root = Repo.root + "/" + dir
            let walker = FileManager.default.enumerator(atPath: root)
            var out: [String] = []
            while let name = walker?.nextObject() as? String {
                if name.hasPrefix(".build") || name.contains("/.build") { walker?.skipDescendants(); continue }
                if [".swift", ".sh", ".md", ".py", ".service", ".toml"].contains(where: name.hasSuffix) { out.append(dir + "/" + name) }
            }
            return out
        }
    }

    @Test func everyCitedDesignSectionExists() throws {
        let doc = try Self.text("docs/architecture.md")
        let sections = Set(doc.split(separator: "\n").compactMap { line -> Int? in
            guard line.hasPrefix("## "), let dot = line.dropFirst(3).firstIndex(of: ".") else { return nil }
            return Int(line[line.index(line.startIndex, offsetBy: 3)..<dot])
        })
        #expect(sections.isSuperset(of: 1...10), "\(sections.sorted())")
        let cite = try NSRegularExpression(pattern: #"DESIGN §([0-9]+)"#)
        var cited = 0
        for file in Self.files(under: ["Sources", "Tests", "scripts", "deployment", "Benchmarks"]) {
            let body = try Self.text(file)
            for m in cite.matches(in: body, range: NSRange(body.startIndex..., in: body)) {
                let n = Int(body[Range(m.range(at: 1), in: body)!])!
                cited += 1
                #expect(sections.contains(n), "\(file) cites DESIGN §\(n), which docs/architecture.md does not have")
            }
        }
        #expect(cited >= 15)
    }

    @Test func theDesignDocumentsLinksLeadSomewhere() throws {
        let doc = try Self.text("docs/architecture.md")
        let readme = try Self.text("README.md")
        // GitHub's anchors: lower case, punctuation dropped, spaces as hyphens.
        let anchors = Set(readme.split(separator: "\n").filter { $0.hasPrefix("#") }.map { line -> String in
            let title = line.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces).lowercased()
            return String(title.compactMap { c -> Character? in
                c == " " ? "-" : (c.isLetter || c.isNumber || c == "-" || c == "_") ? c : nil
            })
        })
        let link = try NSRegularExpression(pattern: #"\]\(([^)#]+)(#[^)]+)?\)"#)
        var links = 0
        for m in link.matches(in: doc, range: NSRange(doc.startIndex..., in: doc)) {
            let target = String(doc[Range(m.range(at: 1), in: doc)!])
            guard !target.hasPrefix("http") else { continue }
            links += 1
            let path = URL(fileURLWithPath: Repo.root + "/docs/" + target).standardizedFileURL.path
            #expect(FileManager.default.fileExists(atPath: path), "docs/architecture.md links \(target), which does not exist")
            if let r = Range(m.range(at: 2), in: doc), target.hasSuffix("README.md") {
                let anchor = String(doc[r].dropFirst())
                #expect(anchors.contains(anchor), "docs/architecture.md links README.md#\(anchor), which is no heading of README.md")
            }
        }
        #expect(links >= 5)
        #expect(readme.contains("docs/architecture.md"), "README does not point at the design document")
    }
}
