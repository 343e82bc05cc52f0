// The Merkle tree of RFC 9162 with its inclusion and consistency proofs.

/// The Merkle tree of RFC 9162 (Certificate Transparency 2.0), §2.1: SHA-256, leaves hashed
/// as `H(0x00 || data)`, interior nodes as `H(0x01 || left || right)`, and a tree of `n`
/// leaves split at the largest power of two below `n`. The audit log is such a tree.
public enum Merkle {
    public typealias Digest = [UInt8]

    /// MTH of the empty tree: SHA-256 of nothing.
    public static let emptyRoot: Digest = SHA256.hash([])

    public static func leafHash(_ data: [UInt8]) -> Digest {
        var h = SHA256()
        h.update([0])
        h.update(data)
        return h.finalize()
    }

    public static func nodeHash(_ left: Digest, _ right: Digest) -> Digest {
        var input: [UInt8] = [1]
        input.reserveCapacity(65)
        input.append(contentsOf: left)
        input.append(contentsOf: right)
        return SHA256.hash(input)
    }

    /// The largest power of two smaller than `n` (n ≥ 2): where RFC 9162 splits a tree.
    public static func split(_ n: Int) -> Int {
        precondition(n >= 2)
        return 1 << (Int.bitWidth - 1 - (n - 1).leadingZeroBitCount)
    }

    /// MTH of `leaves` (their leaf hashes), straight from the definition: for tests and
    /// small ranges.
    public static func root(_ leaves: ArraySlice<Digest>) -> Digest {
        switch leaves.count {
        case 0: return emptyRoot
        case 1: return leaves.first!
        default:
            let k = split(leaves.count)
            return nodeHash(root(leaves.prefix(k)), root(leaves.dropFirst(k)))
        }
    }

    /// The audit path of leaf `index` in a tree of `size` leaves (RFC 9162 §2.1.3.1), from
    /// the leaf's sibling up. `subtree(a, b)` gives MTH of leaves a..<b; it is only asked for
    /// ranges that are whole subtrees of the tree, so a caller can answer from stored nodes.
    public static func inclusionPath(index: Int, size: Int, subtree: (Int, Int) throws -> Digest) rethrows -> [Digest] {
        precondition(index >= 0 && index < size)
        var path: [Digest] = []
        func walk(_ m: Int, _ lo: Int, _ hi: Int) throws {
            let n = hi - lo
            guard n > 1 else { return }
            let k = split(n)
            if m < k {
                try walk(m, lo, lo + k)
                path.append(try subtree(lo + k, hi))
            } else {
                try walk(m - k, lo + k, hi)
                path.append(try subtree(lo, lo + k))
            }
        }
        try walk(index, 0, size)
        return path
    }

    /// The root that an audit path yields (RFC 9162 §2.1.3.2), or nil when the path has the
    /// wrong length for `index` and `size`. The proof holds when this equals the signed root.
    public static func rootFromInclusion(index: Int, size: Int, leafHash: Digest, path: [Digest]) -> Digest? {
        guard index >= 0, index < size else { return nil }
        var fn = index
        var sn = size - 1
        var r = leafHash
        for p in path {
            if sn == 0 { return nil }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 ? r : nil
    }

    /// The consistency proof of the tree of `first` leaves with the tree of `second`
    /// (RFC 9162 §2.1.4.1, PROOF(m, D[n])): the hashes that, with the first root, give the
    /// second, so the second tree is the first with leaves appended. Empty when the sizes are
    /// equal or `first` is 0. `subtree(a, b)` as for `inclusionPath`.
    public static func consistencyProof(first: Int, second: Int, subtree: (Int, Int) throws -> Digest) rethrows -> [Digest] {
        precondition(first >= 0 && first <= second)
        guard first > 0, first < second else { return [] }
        var proof: [Digest] = []
        // SUBPROOF(m, D[lo:hi], b), appending in the RFC's order (the deepest first).
        func subproof(_ m: Int, _ lo: Int, _ hi: Int, _ whole: Bool) throws {
            let n = hi - lo
            if m == n {
                if !whole { proof.append(try subtree(lo, hi)) }
                return
            }
            let k = split(n)
            if m <= k {
                try subproof(m, lo, lo + k, whole)
                proof.append(try subtree(lo + k, hi))
            } else {
                try subproof(m - k, lo + k, hi, false)
                proof.append(try subtree(lo, lo + k))
            }
        }
        try subproof(first, 0, second, true)
        return proof
    }

    /// Whether `proof` shows the tree of `second` leaves with root `secondRoot` extends the
    /// tree of `first` leaves with root `firstRoot` (RFC 9162 §2.1.4.2). Equal sizes need
    /// equal roots and an empty proof; an empty first tree is extended by any tree.
    public static func verifyConsistency(first: Int, second: Int, firstRoot: Digest, secondRoot: Digest, proof: [Digest]) -> Bool {
        guard first >= 0, first <= second else { return false }
        if first == second { return proof.isEmpty && firstRoot == secondRoot }
        if first == 0 { return proof.isEmpty }
        guard !proof.isEmpty else { return false }
        var path = proof[...]
        var fn = first - 1
        var sn = second - 1
        var fr: Digest
        var sr: Digest
        if first.nonzeroBitCount == 1 {
            // The first tree is a complete subtree: its root is the path's first node.
            fr = firstRoot
        } else {
            fr = path.removeFirst()
        }
        sr = fr
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        for c in path {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return fr == firstRoot && sr == secondRoot && sn == 0
    }

    /// The tree's right edge: the roots of the complete subtrees that `size` leaves make,
    /// largest first (one per set bit of `size`). Enough to append a leaf and to give the
    /// root, in O(log n) hashes, without holding the leaves.
    public struct Frontier: Sendable, Equatable {
        public private(set) var size: Int = 0
        /// Roots of complete subtrees, largest (leftmost) first.
        public private(set) var nodes: [Digest] = []

        public init() {}

        /// `nodes` as stored: the complete subtrees of a tree of `size` leaves.
        public init?(size: Int, nodes: [Digest]) {
            guard size >= 0, nodes.count == size.nonzeroBitCount, nodes.allSatisfy({ $0.count == 32 }) else { return nil }
            self.size = size
            self.nodes = nodes
        }

        /// Appends a leaf; `completed` hears of each subtree that becomes complete, as
        /// (height, index among subtrees of that height, hash), so a writer can store them.
        public mutating func append(_ leafHash: Digest, completed: (Int, Int, Digest) -> Void = { _, _, _ in }) {
            var hash = leafHash
            var height = 0
            var index = size
            // Each trailing 1 bit of size is a subtree of the same height as the new one.
            while (size >> height) & 1 == 1 {
                hash = Merkle.nodeHash(nodes.removeLast(), hash)
                height += 1
                index >>= 1
                completed(height, index, hash)
            }
            nodes.append(hash)
            size += 1
        }

        /// MTH of the leaves so far.
        public var root: Digest {
            guard var r = nodes.last else { return Merkle.emptyRoot }
            for n in nodes.dropLast().reversed() { r = Merkle.nodeHash(n, r) }
            return r
        }
    }
}
