import Foundation
import PatientVaultTesting
import Testing

/// The synthetic tree the benchmarks measure proofs on: its proofs are
/// those of a store's tree (stored layout, file, proof code), checked here
/// at sizes that are and are not powers of two.
@Suite struct SyntheticTransparencyLogTests {
    @Test(arguments: [1 as UInt64, 2, 255, 256, 257, 70_000])
    func everyProofVerifiesAndNoOtherLeafFitsIt(records: UInt64) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pv-synthetic-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let log = try SyntheticTransparencyLog(folder: folder, records: records)
        #expect(log.size == records && log.rootHash.count == 32)
        let indices = Set([0, records / 3, records / 2, records - 1])
        for index in indices {
            let proof = try log.inclusionProof(index: index)
            #expect(log.verifies(proof, index: index), "record \(index) of \(records)")
            if records > 1 {
                #expect(!log.verifies(proof, index: (index + 1) % records), "another record's leaf does not fit record \(index)'s proof")
            }
            // O(log n) hashes: at most ⌈log2 n⌉.
            #expect(proof.count <= max(1, Int((Double(records)).log2().rounded(.up))))
        }
        #expect(throws: (any Error).self) { _ = try log.inclusionProof(index: records) }
    }

    /// A tree built again in the same folder (a benchmark run after
    /// another) replaces the earlier one: its proofs verify, and the file
    /// holds one tree.
    @Test func aTreeBuiltAgainInItsFolderReplacesTheEarlierOne() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pv-synthetic-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try SyntheticTransparencyLog(folder: folder, records: 300)
        let file = folder.appendingPathComponent("merkle.hashes")
        let first = try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int
        let again = try SyntheticTransparencyLog(folder: folder, records: 300)
        #expect(try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int == first)
        for index: UInt64 in [0, 150, 299] { #expect(again.verifies(try again.inclusionProof(index: index), index: index)) }
        let larger = try SyntheticTransparencyLog(folder: folder, records: 1000)
        for index: UInt64 in [0, 500, 999] { #expect(larger.verifies(try larger.inclusionProof(index: index), index: index)) }
        // A folder with a store's header is not the tree's to use.
        #expect(FileManager.default.createFile(atPath: folder.appendingPathComponent("store.header").path, contents: Data([1])))
        #expect(throws: (any Error).self) { _ = try SyntheticTransparencyLog(folder: folder, records: 10) }
    }

    @Test func anEmptyTreeIsRefused() {
        #expect(throws: (any Error).self) {
            _ = try SyntheticTransparencyLog(folder: FileManager.default.temporaryDirectory.appendingPathComponent("pv-empty-\(UUID().uuidString)"), records: 0)
        }
    }
}

private extension Double {
    func log2() -> Double { Foundation.log2(self) }
}
