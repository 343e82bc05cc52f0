import ARKCore
import ARKTestSupport
import ARKWitness
import Foundation
import Testing

/// The witness's decisions without a network: each attack on the ARK host (a rollback, a
/// history rewritten and re-signed with the real key, a log re-signed with another key) is
/// an alarm; growth proved consistent and a rotation the trusted key signed are not.
@Suite struct WitnessJudgeTests {
    let logKey = try! Ed25519.PrivateKey.generate()
    let leaves = (0..<1000).map { Merkle.leafHash(Array("leaf \($0)".utf8)) }

    func head(_ size: Int, of hashes: [Merkle.Digest]? = nil, key: Ed25519.PrivateKey? = nil, kind: AuditCheckpoint.Kind = .checkpoint, note: String = "", at time: Int64? = nil) -> AuditCheckpoint {
        let k = key ?? logKey
        var c = AuditCheckpoint(kind: kind, size: size, root: Merkle.root((hashes ?? leaves).prefix(size)), timeNs: time ?? Int64(size) * 1_000, keyID: k.publicKey.keyID, note: note)
        c.signature = try! k.sign(c.signedText)
        return c
    }

    func proof(_ from: Int, _ to: Int, of hashes: [Merkle.Digest]? = nil) -> [Merkle.Digest] {
        let h = hashes ?? leaves
        return Merkle.consistencyProof(first: from, second: to) { Merkle.root(h[$0..<$1]) }
    }

    @Test func growthProvedConsistentIsCosignedAndTheSameHeadIsUnchanged() {
        let judge = WitnessJudge(logKey: logKey.publicKey)
        #expect(judge.assess(held: nil, newest: head(300), rotations: []) == .cosignFirst)
        #expect(judge.assess(held: head(300), newest: head(300, at: 99_999_999)) == .unchanged)
        #expect(judge.assess(held: head(300), newest: head(720), rotations: []) == .prove(from: 300, to: 720))
        #expect(judge.check(held: head(300), newest: head(720), proof: proof(300, 720)) == nil)
    }

    /// The issue's first attack: the store rolled back by 360 of its 720 leaves, the
    /// checkpoint file and Redis key emptied, Aletheia signing a forked history with the real
    /// key. Smaller: a rollback. Grown past 720 again: the proof cannot tie it to the head held.
    @Test func aRollbackAndAForkSignedWithTheRealKeyAreAlarms() {
        let judge = WitnessJudge(logKey: logKey.publicKey)
        let held = head(720)
        guard case .alarm(.rollback, let why) = judge.assess(held: held, newest: head(360), rotations: []) else { Issue.record("no rollback alarm"); return }
        #expect(why.contains("360 leaves") && why.contains("cosigned 720"))
        var forked = Array(leaves.prefix(360))
        forked += (0..<500).map { Merkle.leafHash(Array("forked \($0)".utf8)) }
        guard case .alarm(.fork, _) = judge.assess(held: held, newest: head(720, of: forked), rotations: []) else { Issue.record("no fork alarm at the same size"); return }
        let grown = head(860, of: forked)
        #expect(judge.assess(held: held, newest: grown, rotations: []) == .prove(from: 720, to: 860))
        #expect(judge.check(held: held, newest: grown, proof: proof(720, 860, of: forked))?.0 == .fork)
        // Nor does the honest log's proof make a forked head pass.
        #expect(judge.check(held: held, newest: grown, proof: proof(720, 720 + 140)) != nil)
        // A restore is a rollback too; the alarm says how the witness's operators accept it.
        guard case .alarm(.rollback, let restore) = judge.assess(held: held, newest: head(360, kind: .restore, note: "restored b.db"), rotations: []) else { Issue.record("no alarm"); return }
        #expect(restore.contains("ark witness reset"))
    }

    /// The second attack: a denied pass rewritten as approved, the tree rebuilt, every
    /// checkpoint re-signed with a new key whose .pub was put beside the private key.
    @Test func aLogReSignedWithAnotherKeyIsAnAlarmAndARotationTheLogKeySignedIsNot() throws {
        let judge = WitnessJudge(logKey: logKey.publicKey)
        let attacker = try Ed25519.PrivateKey.generate()
        guard case .alarm(.signature, let why) = judge.assess(held: head(300), newest: head(720, key: attacker), rotations: []) else { Issue.record("no alarm"); return }
        #expect(why.contains(attacker.publicKey.keyID) && why.contains(logKey.publicKey.keyID))
        // A rotation record the attacker signs for their own key proves nothing.
        let fakeRotation = head(310, key: attacker, kind: .rotation, note: AuditCheckpoint.rotationNote(to: attacker.publicKey), at: 310_000)
        guard case .alarm(.signature, _) = judge.assess(held: head(300), newest: head(720, key: attacker), rotations: [fakeRotation]) else { Issue.record("no alarm"); return }
        // The operators' rotation, signed by the log key, hands trust to the successor.
        let successor = try Ed25519.PrivateKey.generate()
        let rotation = head(310, kind: .rotation, note: AuditCheckpoint.rotationNote(to: successor.publicKey), at: 310_000)
        #expect(judge.assess(held: head(300), newest: head(720, key: successor), rotations: [rotation]) == .prove(from: 300, to: 720))
        // A forged signature under the right key id is caught too.
        var forged = head(720)
        forged.signature[3] ^= 1
        guard case .alarm(.signature, _) = judge.assess(held: head(300), newest: forged, rotations: []) else { Issue.record("no alarm"); return }
    }

    /// The witness's storage: what it cosigned survives a restart; an alarm stays until reset.
    @Test func theStoreKeepsCosignedHeadsAndAlarmsUntilReset() throws {
        let dir = try TempDir("ark-witness-store")
        defer { dir.remove() }
        let store = WitnessStore(directory: dir.path + "/w")
        let witnessKey = try store.initialize(logKeyPEM: logKey.publicKey.pem)
        #expect(throws: WitnessStore.Problem.self) { _ = try store.initialize(logKeyPEM: logKey.publicKey.pem) }
        #expect(try store.logKey() == logKey.publicKey)
        let key = try store.key()
        #expect(key.publicKey == witnessKey)
        let c = try AuditCosignature.sign(head(300), with: key, timeNs: 5)
        try store.append(c)
        try store.append(try AuditCosignature.sign(head(720), with: key, timeNs: 6))
        #expect(store.held()?.checkpoint.size == 720 && store.cosigned().count == 2)
        #expect(store.held()!.verify(with: witnessKey) && !store.held()!.verify(with: logKey.publicKey))
        try store.raise(WitnessAlarm(.fork, "two roots", atNs: 7))
        #expect(store.alarm() == WitnessAlarm(.fork, "two roots", atNs: 7))
        try store.reset(nowNs: 8)
        #expect(store.alarm() == nil && store.held() == nil)
        #expect(FileManager.default.fileExists(atPath: store.cosignedPath + ".before-8"))
    }
}
