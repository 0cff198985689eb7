import Foundation
import Testing
@testable import PatientVault
@testable import VaultStorage

/// An altered, removed or reordered audit entry is caught (`verifyAuditTrail`, the chain hash).
@Suite struct AuditTamperTests {
    /// Rewrites the frame at `location` with `payload` (same length) or a new
    /// back-pointer, recomputing both checksums and the header's MAC, as an
    /// attacker who holds the log key (but no vault key) would: what is left
    /// to catch the change is the audit chain itself.
    func rewrite(_ t: TestStore, _ location: RecordLocation, payload: [UInt8]? = nil, previous: RecordLocation?? = nil) throws {
        let path = t.folder.appendingPathComponent(LogFormat.segmentFileName(location.segment)).path
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let salt = Array(bytes[24..<40])
        let o = Int(location.offset)
        let h = LogFormat.frameHeaderSize
        if let payload {
            bytes.replaceSubrange((o + h)..<(o + h + payload.count), with: payload)
            let crc = LogFormat.payloadCRC(payload)
            withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange((o + 12)..<(o + 16), with: $0) }
        }
        if let previous {
            let raw = previous?.raw ?? 0
            let length = previous?.frameLength ?? 0
            withUnsafeBytes(of: length.littleEndian) { bytes.replaceSubrange((o + 36)..<(o + 40), with: $0) }
            withUnsafeBytes(of: raw.littleEndian) { bytes.replaceSubrange((o + 40)..<(o + 48), with: $0) }
        }
        let mac = try t.logMAC()
        let tag = Array(bytes[o..<(o + h)]).withUnsafeBytes { header in
            LogFormat.macMessage(salt: salt, offset: location.offset, header: header).withUnsafeBytes { mac.tag($0) }
        }
        bytes.replaceSubrange((o + LogFormat.frameMACOffset)..<(o + h), with: tag)
        let headerCRC = CRC32C.checksum(salt + Array(bytes[(o + 8)..<(o + h)]))
        withUnsafeBytes(of: headerCRC.littleEndian) { bytes.replaceSubrange((o + 4)..<(o + 8), with: $0) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// A vault with a dozen entries of the same shape; returns its audit
    /// records, oldest first, after closing the store.
    func prepared() async throws -> (AuditedVault, [LogFrame]) {
        let v = try await AuditedVault(storage: .folder)
        for _ in 0..<10 { _ = try await v.store.vaultInfo(for: v.alice, as: v.patient) }
        let stream = v.store.keys.auditStream(of: v.store.keys.vaultPseudonym(for: v.alice))
        let log = try #require(v.store.engine as? LogEngine)
        var records: [LogFrame] = []
        var next = log.head(of: stream)
        while let l = next {
            let r = try log.frame(at: l)
            records.append(r)
            next = r.previous
        }
        try await v.store.close()
        return (v, records.reversed())
    }

    func verify(_ v: AuditedVault) async throws -> PatientVaultError.Code? {
        let store = try await VaultStore.open(at: v.t.folder, key: .key(v.t.key), configuration: Fixtures.configuration())
        defer { Task { try? await store.close() } }
        return await code { _ = try await store.verifyAuditTrail(for: v.alice, as: .patient(v.alice)) }
    }

    @Test func anUntouchedChainVerifies() async throws {
        let (v, records) = try await prepared()
        #expect(records.count == 11)
        #expect(try await verify(v) == nil)
    }

    @Test(arguments: [1, 5, 9])
    func alteredEntryIsDetected(index: Int) async throws {
        let (v, records) = try await prepared()
        var payload = records[index].payload
        payload[payload.count - 20] ^= 0x01
        try rewrite(v.t, records[index].location, payload: payload)
        #expect(try await verify(v) == .corrupted)
    }

    @Test(arguments: [1, 5, 8])
    func removedEntryIsDetected(index: Int) async throws {
        let (v, records) = try await prepared()
        // The next entry now points past the removed one.
        try rewrite(v.t, records[index + 1].location, previous: .some(records[index - 1].location))
        #expect(try await verify(v) == .corrupted)
    }

    @Test(arguments: [1, 4, 8])
    func reorderedEntriesAreDetected(index: Int) async throws {
        let (v, records) = try await prepared()
        #expect(records[index].payload.count == records[index + 1].payload.count)
        try rewrite(v.t, records[index].location, payload: records[index + 1].payload)
        try rewrite(v.t, records[index + 1].location, payload: records[index].payload)
        #expect(try await verify(v) == .corrupted)
    }

    @Test func entryMovedFromAnotherVaultIsDetected() async throws {
        let (v, records) = try await prepared()
        let store = try await VaultStore.open(at: v.t.folder, key: .key(v.t.key), configuration: Fixtures.configuration())
        try await store.createVault(for: Fixtures.bob, as: .patient(Fixtures.bob), channel: .patientOnline)
        for _ in 0..<2 { _ = try await store.vaultInfo(for: Fixtures.bob, as: .patient(Fixtures.bob)) }
        let bobStream = store.keys.auditStream(of: store.keys.vaultPseudonym(for: Fixtures.bob))
        let log = try #require(store.engine as? LogEngine)
        let bobHead = try log.frame(at: log.head(of: bobStream)!)
        try await store.close()
        // Bob's entry 2 copied over Alice's entry 2 (same size, valid checksums).
        #expect(bobHead.payload.count == records[2].payload.count)
        try rewrite(v.t, records[2].location, payload: bobHead.payload)
        #expect(try await verify(v) == .corrupted)
    }
}
