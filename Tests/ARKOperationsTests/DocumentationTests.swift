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

    /// GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped,
    /// spaces as hyphens.
    static func anchors(_ markdown: String) -> Set<String> {
        var inCode = false
        var out: Set<String> = []
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") { inCode.toggle(); continue }
            guard !inCode, line.hasPrefix("#") else { continue }
            let title = line.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces).lowercased()
            out.insert(String(title.compactMap { c -> Character? in
                c == " " ? "-" : (c.isLetter || c.isNumber || c == "-" || c == "_") ? c : nil
            }))
        }
        return out
    }

    /// Every relative link of the documentation (README, the runbook, the monitoring guide,
    /// docs/) leads to a file that exists and, with an anchor, to a heading of it.
    @Test func everyLinkOfTheDocumentationLeadsSomewhere() throws {
        let docs = ["README.md", "RUNBOOK.md", "monitoring/MONITORING_GUIDE.md"]
            + (try FileManager.default.contentsOfDirectory(atPath: Repo.root + "/docs")).filter { $0.hasSuffix(".md") }.map { "docs/" + $0 }
        let link = try NSRegularExpression(pattern: #"\]\(([^)\s]*)\)"#)
        var checked = 0
        for doc in docs {
            let text = try Self.text(doc)
            let dir = URL(fileURLWithPath: Repo.root + "/" + doc).deletingLastPathComponent()
            for m in link.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                let url = String(text[Range(m.range(at: 1), in: text)!])
                guard !url.hasPrefix("http"), !url.hasPrefix("mailto:") else { continue }
                let parts = url.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                let target = parts[0].isEmpty ? URL(fileURLWithPath: Repo.root + "/" + doc) : dir.appendingPathComponent(parts[0]).standardizedFileURL
                checked += 1
                guard FileManager.default.fileExists(atPath: target.path) else {
                    Issue.record("\(doc) links \(url): no such file")
                    continue
                }
                if parts.count == 2, target.pathExtension == "md" {
                    let heads = Self.anchors(try String(contentsOf: target, encoding: .utf8))
                    #expect(heads.contains(parts[1]), "\(doc) links \(url): no such heading")
                }
            }
        }
        #expect(checked > 100)
        // README is the map: what ARK is, the two commands, where the rest is.
        let readme = try Self.text("README.md")
        #expect(readme.split(separator: "\n", omittingEmptySubsequences: false).count <= 100)
        #expect(readme.contains("docs/architecture.md"))
    }
}

/// Every source file opens with one sentence saying what it is for.
@Suite struct FileHeaderTests {
    @Test func everySourceFileSaysInOneSentenceWhatItIsFor() throws {
        var bad: [String] = []
        let enumerator = FileManager.default.enumerator(atPath: Repo.root + "/Sources")!
        var count = 0
        while let file = enumerator.nextObject() as? String {
            guard file.hasSuffix(".swift") else { continue }
            count += 1
            let text = try String(contentsOfFile: Repo.root + "/Sources/" + file, encoding: .utf8)
            let header = text.split(separator: "\n", omittingEmptySubsequences: false).prefix { $0.hasPrefix("// ") }
            let sentence = header.map { $0.dropFirst(3) }.joined(separator: " ")
            // Code in backticks may hold periods; outside it, only the last character is one.
            let prose = sentence.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 0 }.map(\.element).joined()
            let nextLine = text.split(separator: "\n", omittingEmptySubsequences: false).dropFirst(header.count).first
            if sentence.isEmpty || !sentence.hasSuffix(".") || prose.dropLast().contains(". ") || nextLine != "" {
                bad.append("Sources/\(file): \(sentence.isEmpty ? "(no header)" : sentence)")
            }
        }
        #expect(count > 100)
        #expect(bad.isEmpty, "\(bad.sorted().joined(separator: "\n"))")
    }
}
