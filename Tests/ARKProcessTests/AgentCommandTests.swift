import ARKCore
import ARKProcess
import Foundation
import Testing

@testable import ARKProcess

/// Which command starts an agent from a build or release directory.
@Suite struct AgentCommandTests {
    func directory(with files: [String]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ark-agentcmd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for file in files {
            #expect(FileManager.default.createFile(atPath: dir + "/" + file, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755]))
        }
        return dir
    }

    @Test func theLeanAgentBinaryBesideArkIsPreferred() throws {
        let dir = try directory(with: ["ark", "ark-agent"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let command = ChildProcess.agentCommand(.hrm, ark: dir + "/ark")
        #expect(command.executable == dir + "/ark-agent" && command.arguments == ["HRM"])
    }

    @Test func withoutItArkAgentSubcommandRunsTheStage() throws {
        let dir = try directory(with: ["ark"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let command = ChildProcess.agentCommand(.kenny, ark: dir + "/ark")
        #expect(command.executable == dir + "/ark" && command.arguments == ["agent", "Kenny"])
    }

    @Test func aNonExecutableArkAgentIsNotUsed() throws {
        let dir = try directory(with: ["ark"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(FileManager.default.createFile(atPath: dir + "/ark-agent", contents: Data(), attributes: [.posixPermissions: 0o644]))
        #expect(ChildProcess.agentCommand(.kyle, ark: dir + "/ark").executable == dir + "/ark")
        #expect(ChildProcess.leanAgentBinary(besideArk: dir + "/ark") == nil)
    }
}
