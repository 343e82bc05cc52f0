import ARKCore
import ARKTestSupport
import Foundation
import Testing

/// The tree of RFC 9162 against the reference vectors Certificate Transparency's
/// implementations share (the same inputs and roots in the Go, C++ and Trillian tests), and
/// every proof of every leaf in trees of every shape up to 70 leaves.
@Suite struct MerkleTests {
    static let leaves: [[UInt8]] = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"].map { bytes(fromHex: $0)! }
    static let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    @Test func rootsMatchTheReferenceForEverySize() {
        #expect(SHA256.hex(Merkle.emptyRoot) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Merkle.Frontier().root) == SHA256.hex(Merkle.emptyRoot))
        let hashes = Self.leaves.map(Merkle.leafHash)
        var frontier = Merkle.Frontier()
        for n in 1...8 {
            frontier.append(hashes[n - 1])
            #expect(SHA256.hex(Merkle.root(hashes.prefix(n))) == Self.roots[n - 1], "size \(n)")
            #expect(SHA256.hex(frontier.root) == Self.roots[n - 1], "frontier, size \(n)")
        }
    }

    @Test func inclusionPathsMatchTheReference() {
        let hashes = Self.leaves.map(Merkle.leafHash)
        let path0 = Merkle.inclusionPath(index: 0, size: 8) { Merkle.root(hashes[$0..<$1]) }.map(SHA256.hex)
        #expect(path0 == ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                          "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                          "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"])
        let path5 = Merkle.inclusionPath(index: 5, size: 8) { Merkle.root(hashes[$0..<$1]) }.map(SHA256.hex)
        #expect(path5 == ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                          "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                          "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"])
    }

    /// Every leaf of every tree up to 70 leaves: its path leads to the root; the wrong leaf,
    /// index, size or a path one hash short or long does not.
    @Test func everyProofVerifiesAndNoAlteredOneDoes() {
        let hashes = (0..<70).map { Merkle.leafHash([UInt8($0), UInt8(truncatingIfNeeded: $0 * 7)]) }
        var frontier = Merkle.Frontier()
        var stored: [[Int]: Merkle.Digest] = [:]
        for size in 1...70 {
            frontier.append(hashes[size - 1]) { h, i, d in stored[[h, i]] = d }
            let root = Merkle.root(hashes.prefix(size))
            #expect(frontier.root == root)
            for index in 0..<size {
                let path = Merkle.inclusionPath(index: index, size: size) { Merkle.root(hashes[$0..<$1]) }
                #expect(Merkle.rootFromInclusion(index: index, size: size, leafHash: hashes[index], path: path) == root, "\(index) of \(size)")
                let other = hashes[(index + 1) % 70]
                #expect(Merkle.rootFromInclusion(index: index, size: size, leafHash: other, path: path) != root)
                if size > 1 {
                    #expect(Merkle.rootFromInclusion(index: (index + 1) % size, size: size, leafHash: hashes[index], path: path) != root)
                    #expect(Merkle.rootFromInclusion(index: index, size: size, leafHash: hashes[index], path: Array(path.dropLast())) != root)
                }
                #expect(Merkle.rootFromInclusion(index: index, size: size, leafHash: hashes[index], path: path + [root]) != root)
            }
        }
        // Each complete subtree the frontier reported is the root of its leaves.
        for (key, d) in stored {
            let (h, i) = (key[0], key[1])
            #expect(Merkle.root(hashes[(i << h)..<((i + 1) << h)]) == d)
        }
        #expect(stored.count == 70 - 70.nonzeroBitCount)
        #expect(Merkle.Frontier(size: 70, nodes: frontier.nodes) == frontier)
        #expect(Merkle.Frontier(size: 71, nodes: frontier.nodes) == nil)
    }

    /// Consistency proofs (RFC 9162 §2.1.4) of the 8-leaf reference tree, as the Go and C++
    /// Certificate Transparency tests give them.
    @Test func consistencyProofsMatchTheReference() {
        let hashes = Self.leaves.map(Merkle.leafHash)
        func proof(_ m: Int, _ n: Int) -> [String] {
            Merkle.consistencyProof(first: m, second: n) { Merkle.root(hashes[$0..<$1]) }.map(SHA256.hex)
        }
        #expect(proof(1, 1) == [])
        #expect(proof(1, 8) == ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"])
        #expect(proof(6, 8) == ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"])
        #expect(proof(2, 5) == ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"])
    }

    /// SUBPROOF of RFC 9162 §2.1.4.1 written out on arrays of leaf hashes, as the RFC states
    /// it: the reference the stored-node implementation is held to.
    static func naiveProof(_ m: Int, _ d: ArraySlice<Merkle.Digest>) -> [Merkle.Digest] {
        func subproof(_ m: Int, _ d: ArraySlice<Merkle.Digest>, _ b: Bool) -> [Merkle.Digest] {
            if m == d.count { return b ? [] : [Merkle.root(d)] }
            let k = Merkle.split(d.count)
            if m <= k { return subproof(m, d.prefix(k), b) + [Merkle.root(d.dropFirst(k))] }
            return subproof(m - k, d.dropFirst(k), false) + [Merkle.root(d.prefix(k))]
        }
        return m == 0 ? [] : subproof(m, d, true)
    }

    /// Every pair of sizes up to 70: the proof is the RFC's, it verifies, and no altered one
    /// does (a hash changed, one dropped or added, the first size or a root not the proof's, the
    /// second tree forked from the first).
    @Test func everyConsistencyProofUpTo70VerifiesAndNoAlteredOneDoes() {
        let hashes = (0..<70).map { Merkle.leafHash([UInt8($0), 0xC0]) }
        let forked = hashes.enumerated().map { i, h in i == 33 ? Merkle.leafHash([0xFF]) : h }
        for n in 1...70 {
            let secondRoot = Merkle.root(hashes.prefix(n))
            for m in 0...n {
                let firstRoot = Merkle.root(hashes.prefix(m))
                let proof = Merkle.consistencyProof(first: m, second: n) { Merkle.root(hashes[$0..<$1]) }
                #expect(proof == Self.naiveProof(m, hashes.prefix(n)), "\(m) → \(n)")
                #expect(Merkle.verifyConsistency(first: m, second: n, firstRoot: firstRoot, secondRoot: secondRoot, proof: proof), "\(m) → \(n)")
                guard m > 0 && m < n else { continue }
                for i in proof.indices {
                    var bad = proof
                    bad[i][5] ^= 1
                    #expect(!Merkle.verifyConsistency(first: m, second: n, firstRoot: firstRoot, secondRoot: secondRoot, proof: bad), "\(m) → \(n), hash \(i)")
                }
                #expect(!Merkle.verifyConsistency(first: m, second: n, firstRoot: firstRoot, secondRoot: secondRoot, proof: Array(proof.dropLast())))
                #expect(!Merkle.verifyConsistency(first: m, second: n, firstRoot: firstRoot, secondRoot: secondRoot, proof: proof + [secondRoot]))
                #expect(!Merkle.verifyConsistency(first: m, second: n, firstRoot: secondRoot, secondRoot: secondRoot, proof: proof))
                #expect(!Merkle.verifyConsistency(first: m, second: n, firstRoot: firstRoot, secondRoot: firstRoot, proof: proof))
                if m + 1 < n {
                    #expect(!Merkle.verifyConsistency(first: m + 1, second: n, firstRoot: firstRoot, secondRoot: secondRoot, proof: proof))
                }
                // (The second size is bound by its signed head, not by the proof: RFC 9162's
                // verification accepts sizes whose trees have the same right edge, 69 and 70.)
                // A second tree that changed leaf 33 of a first tree holding it is no extension.
                if m > 33 {
                    let fork = Merkle.root(forked.prefix(n))
                    let forkProof = Merkle.consistencyProof(first: m, second: n) { Merkle.root(forked[$0..<$1]) }
                    #expect(!Merkle.verifyConsistency(first: m, second: n, firstRoot: firstRoot, secondRoot: fork, proof: forkProof))
                }
            }
            // The same size: only the same root, with nothing to prove.
            #expect(!Merkle.verifyConsistency(first: n, second: n, firstRoot: secondRoot, secondRoot: Merkle.leafHash([1]), proof: []))
        }
        #expect(!Merkle.verifyConsistency(first: 5, second: 4, firstRoot: Merkle.emptyRoot, secondRoot: Merkle.emptyRoot, proof: []))
    }

    /// Random pairs in trees of up to 5,000 leaves: the proof is the RFC's and verifies.
    @Test func randomLargeConsistencyProofsMatchTheRFC() {
        var rng = SplitMix64(seed: 9162)
        let hashes = (0..<5_000).map { i -> Merkle.Digest in
            Merkle.leafHash(withUnsafeBytes(of: UInt64(i).littleEndian) { Array($0) })
        }
        // Subtrees by their ranges, computed once.
        var memo: [Int: Merkle.Digest] = [:]
        func subtree(_ a: Int, _ b: Int) -> Merkle.Digest {
            if let h = memo[a * 10_007 + b] { return h }
            let h = b - a == 1 ? hashes[a] : Merkle.nodeHash(subtree(a, a + Merkle.split(b - a)), subtree(a + Merkle.split(b - a), b))
            memo[a * 10_007 + b] = h
            return h
        }
        for _ in 0..<40 {
            let n = Int(rng.next() % 5_000) + 1
            let m = Int(rng.next() % UInt64(n + 1))
            let proof = Merkle.consistencyProof(first: m, second: n, subtree: subtree)
            let naive = Self.naiveProof(m, hashes.prefix(n))
            #expect(proof == naive, "\(m) → \(n)")
            #expect(Merkle.verifyConsistency(first: m, second: n, firstRoot: m == 0 ? Merkle.emptyRoot : subtree(0, m), secondRoot: subtree(0, n), proof: proof))
            #expect(proof.count <= 2 * (Int.bitWidth - n.leadingZeroBitCount))
        }
    }
}

@Suite struct Ed25519Tests {
    /// RFC 8032 §7.1, test 1 (the empty message) and test 2.
    @Test func rfc8032VectorsVerify() throws {
        let key1 = try Ed25519.PublicKey(raw: bytes(fromHex: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")!)
        let sig1 = bytes(fromHex: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")!
        #expect(key1.verify(signature: sig1, message: []))
        #expect(!key1.verify(signature: sig1, message: [0]))
        let key2 = try Ed25519.PublicKey(raw: bytes(fromHex: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")!)
        let sig2 = bytes(fromHex: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")!
        #expect(key2.verify(signature: sig2, message: [0x72]))
        var bent = sig2
        bent[10] ^= 1
        #expect(!key2.verify(signature: bent, message: [0x72]))
        #expect(!key2.verify(signature: Array(sig2.prefix(63)), message: [0x72]))
    }

    /// RFC 8032 §7.1 test 1 signed here, from its secret key in a PKCS#8 PEM as OpenSSL
    /// writes one: Ed25519 is deterministic, so the signature is the RFC's, byte for byte.
    @Test func rfc8032VectorSignsToTheSameBytes() throws {
        let pkcs8 = bytes(fromHex: "302e020100300506032b657004220420" + "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")!
        let pem = "-----BEGIN PRIVATE KEY-----\n" + Data(pkcs8).base64EncodedString() + "\n-----END PRIVATE KEY-----\n"
        let key = try Ed25519.PrivateKey(pem: Array(pem.utf8))
        #expect(key.publicKey.raw == bytes(fromHex: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")!)
        #expect(try key.sign([]) == bytes(fromHex: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")!)
        // What this key writes is what OpenSSL wrote for it.
        #expect(String(decoding: key.pem, as: UTF8.self) == pem)
    }

    /// A key made here is what OpenSSL's own tool reads, and a signature made here verifies
    /// with `openssl pkeyutl` (docs/audit.md's hand check).
    @Test func keysAndSignaturesInteroperateWithOpenSSL() throws {
        let dir = try TempDir("ark-ed25519")
        defer { dir.remove() }
        let key = try Ed25519.PrivateKey.generate()
        let again = try Ed25519.PrivateKey(pem: key.pem)
        #expect(again.publicKey == key.publicKey)
        #expect(try Ed25519.PublicKey(pem: key.publicKey.pem) == key.publicKey)
        #expect(key.publicKey.keyID.count == 16)
        let message = Array("ark-audit-checkpoint/v1\nsize 3\n".utf8)
        let signature = try key.sign(message)
        #expect(key.publicKey.verify(signature: signature, message: message))
        try Data(key.publicKey.pem).write(to: URL(fileURLWithPath: dir.path + "/pub.pem"))
        try Data(message).write(to: URL(fileURLWithPath: dir.path + "/msg"))
        try Data(signature).write(to: URL(fileURLWithPath: dir.path + "/sig"))
        let ok = try runCommand("/usr/bin/openssl", ["pkeyutl", "-verify", "-pubin", "-inkey", dir.path + "/pub.pem", "-rawin", "-in", dir.path + "/msg", "-sigfile", dir.path + "/sig"])
        #expect(ok.code == 0 && ok.output.contains("Signature Verified Successfully"), "\(ok.output)")
        // And a key OpenSSL made is read here.
        let made = try runCommand("/usr/bin/openssl", ["genpkey", "-algorithm", "ed25519", "-out", dir.path + "/theirs.pem"])
        #expect(made.code == 0)
        _ = try Ed25519.PrivateKey(pem: Array(try Data(contentsOf: URL(fileURLWithPath: dir.path + "/theirs.pem"))))
        #expect(throws: Ed25519.Failure.self) { try Ed25519.PrivateKey(pem: Array("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".utf8)) }
        let rsa = try runCommand("/usr/bin/openssl", ["genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024", "-out", dir.path + "/rsa.pem"])
        #expect(rsa.code == 0)
        #expect(throws: Ed25519.Failure.self) { try Ed25519.PrivateKey(pem: Array(try Data(contentsOf: URL(fileURLWithPath: dir.path + "/rsa.pem")))) }
    }
}
