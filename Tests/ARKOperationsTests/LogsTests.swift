import ARKTestSupport
import Foundation
import Logging
import Testing

@testable import ARKOperations
@testable import ARKProcess

final class LineSink: @unchecked Sendable {
    private let lock = NSLock()
    private var data: [UInt8] = []
    func append(_ bytes: [UInt8]) { lock.withLock { data += bytes } }
    var lines: [String] { lock.withLock { String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init) } }
}

@Suite struct LogsTests {
    @Test func jsonLinesCarryAgentInstanceTraceAndNeverASecret() throws {
        let sink = LineSink()
        var logger = Logger(label: "ark.kyle") { JSONLogHandler(label: $0, write: { sink.append($0) }) }
        logger[metadataKey: "agent"] = "Kyle"
        logger[metadataKey: "instance"] = "Kyle-h-1"
        logger.warning("signal rejected: \"quoted\"\nsecond line", metadata: ["trace_id": "t-9", "reasons": "price", "jwt_secret": "hunter2", "REDIS_PASSWORD": "pw"])
        logger.debug("not at info")
        let lines = sink.lines
        #expect(lines.count == 1)
        let o = try #require(jsonObject(lines[0]), "\(lines)")
        #expect(o["level"] as? String == "warning" && o["logger"] as? String == "ark.kyle")
        #expect(o["agent"] as? String == "Kyle" && o["instance"] as? String == "Kyle-h-1" && o["trace_id"] as? String == "t-9")
        #expect(o["msg"] as? String == "signal rejected: \"quoted\"\nsecond line" && o["reasons"] as? String == "price")
        #expect(o["jwt_secret"] as? String == "[redacted]" && o["REDIS_PASSWORD"] as? String == "[redacted]")
        #expect(!lines[0].contains("hunter2"))
        let ts = try #require(o["ts"] as? String)
        #expect(ts.count == 24 && ts.hasSuffix("Z"), "\(ts)")
    }

    @Test func oneTracesLinesAreGatheredAcrossFilesInTimeOrder() throws {
        let dir = try TempDir("ark-logs")
        defer { dir.remove() }
        func write(_ file: String, _ lines: [String]) throws {
            try (lines.joined(separator: "\n") + "\n").write(toFile: dir.path + "/" + file, atomically: true, encoding: .utf8)
        }
        try write("kyle.log", [
            #"{"ts":"2026-11-23T10:00:00.100Z","level":"warning","logger":"ark.kyle","instance":"Kyle-h-1","trace_id":"t-1","msg":"signal rejected","reasons":"price"}"#,
            #"{"ts":"2026-11-23T10:00:00.200Z","level":"info","logger":"ark.kyle","trace_id":"t-10","msg":"another trace"}"#,
        ])
        try write("aletheia.log", [#"{"ts":"2026-11-23T10:00:00.150Z","level":"error","logger":"ark.aletheia","trace_id":"t-1","msg":"continuity"}"#])
        try write("hrm.log.1", [#"{"ts":"2026-11-23T09:59:59.900Z","level":"notice","logger":"ark.hrm","msg":"earlier, mentions t-1 in its text"}"#])
        try write("notes.txt", [#"{"ts":"2026-11-23T10:00:00.000Z","trace_id":"t-1","msg":"not a log file"}"#])
        let lines = try LogSearch.lines(forTrace: "t-1", in: dir.path)
        #expect(lines.map(\.file) == ["hrm.log.1", "kyle.log", "aletheia.log"])
        #expect(lines[1].text == "warning Kyle-h-1 signal rejected reasons=price")
    }
}
