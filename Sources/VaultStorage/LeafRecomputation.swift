import Dispatch
import Foundation
import VaultCrypto

extension StorageEngine {
    /// ``StorageEngine/recomputeLeaves(count:_:)`` for any engine: the
    /// records read in order by ``StorageEngine/visitEveryRecord(_:)``, in
    /// batches of about 8 MiB, each hashed on every core while the next is
    /// read. Waiting for a batch blocks the reading thread (the visit is
    /// synchronous).
    package func recomputeLeaves(count: UInt64, _ visit: ([UInt8]) throws -> Void) async throws {
        var batch: [StoredRecord] = []
        var batchBytes = 0
        var hashing: LeafHashing?
        var queued: UInt64 = 0
        func handOver() throws {
            guard let done = hashing?.wait() else { return }
            hashing = nil
            try visit(done)
        }
        func hashBatch() throws {
            try handOver()
            if !batch.isEmpty { hashing = LeafHashing(batch) }
            batch = []
            batchBytes = 0
        }
        do {
            try await visitEveryRecord { record in
                guard queued < count else { return false }
                guard record.sequence == queued + 1 else {
                    throw StorageError(.corrupted, "record \(record.sequence) is out of order")
                }
                queued += 1
                batch.append(record)
                batchBytes += record.payload.count
                if batchBytes >= 8 << 20 { try hashBatch() }
                return true
            }
            try hashBatch()
            try handOver()
        } catch {
            _ = hashing?.wait()
            throw error
        }
    }
}

/// The leaf hashes of a batch of records, computed in the background on
/// every core the process may use; ``wait()`` returns them in the
/// records' order, concatenated.
private final class LeafHashing: @unchecked Sendable {
    // @unchecked: `hashes` is written by the workers (each its own
    // range) before `group` is left, and read only after `wait()`.
    private var hashes: [UInt8]
    private let group = DispatchGroup()

    init(_ records: [StoredRecord]) {
        hashes = [UInt8](repeating: 0, count: records.count * MerkleTree.hashSize)
        group.enter()
        DispatchQueue.global().async { [self] in
            let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, records.count))
            hashes.withUnsafeMutableBytes { buffer in
                nonisolated(unsafe) let buffer = buffer
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    var i = worker
                    while i < records.count {
                        let leaf = UnsafeMutableRawBufferPointer(
                            rebasing: buffer[(i * MerkleTree.hashSize)..<((i + 1) * MerkleTree.hashSize)])
                        if let kept = records[i].compactedLeaf {
                            leaf.copyBytes(from: kept)
                        } else {
                            records[i].payload.withUnsafeBytes { MerkleLog.writeLeafHash(stream: records[i].stream, payload: $0, into: leaf) }
                        }
                        i += workers
                    }
                }
            }
            group.leave()
        }
    }

    /// Blocks until the batch is hashed.
    func wait() -> [UInt8] {
        group.wait()
        return hashes
    }
}
