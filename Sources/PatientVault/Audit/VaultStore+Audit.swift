import Foundation
import Synchronization
import VaultSync
import VaultCrypto
import VaultStorage

extension VaultStore {
    // MARK: - Decisions

    /// Builds the request the decision sees for `vault` at `time`.
    func request(
        _ action: VaultAction, by principal: Principal, purpose: AccessPurpose = .care, vault: VaultState,
        document: DocumentMetadata? = nil, category: DocumentCategory? = nil, time: Date, policy: VaultPolicy? = nil
    ) -> AccessRequest {
        AccessRequest(
            action: action, principal: principal, purpose: purpose, holder: vault.creation.holder,
            policy: policy ?? vault.policy, document: document,
            // Only a version hidden from the patient needs its period (a walk
            // of the document's versions, on every listing's decisions).
            hiddenSince: document.flatMap {
                $0.confidentiality.contains(.hiddenFromPatient) ? vault.hiddenSince($0.id, upTo: $0.version) : nil
            },
            category: category,
            principalAuthoredAny: vault.authors.contains(principal),
            isConfiguredReviewer: configuration.isConfiguredReviewer(principal), matrix: configuration.accessMatrix, time: time)
    }

    /// Whether `principal` may see `document` (its metadata) at `time`: the
    /// one visibility rule of listings, counts, the trail and the access
    /// history. A document they may not see does not exist for them.
    func sees(
        _ document: DocumentMetadata, as principal: Principal, purpose: AccessPurpose = .care, in vault: VaultState, at time: Date
    ) -> Bool {
        AccessPolicy.decide(request(.readMetadata, by: principal, purpose: purpose, vault: vault, document: document, time: time)).isAllowed
    }

    /// Checks a version number a caller asked for (stored as 32 bits, from 1).
    static func validate(version: Int?) throws(PatientVaultError) {
        if let version, !Limits.versions.contains(version) {
            throw PatientVaultError(.invalidArgument, "a version number is 1 to \(UInt32.max)")
        }
    }

    /// An operation with no work outside the vault's lock, through the
    /// ``OperationPipeline`` (which commits its one entry).
    func audited<R>(
        _ action: VaultAction, _ patient: INS, by principal: Principal, purpose: AccessPurpose = .care, secret: Bool = false,
        asSystem: Bool = false, _ body: (inout VaultState, Date) throws -> Audited<R>
    ) async throws(PatientVaultError) -> R {
        try await pipeline.run(
            action, Caller(patient: patient, principal: principal, purpose: purpose, secret: secret, asSystem: asSystem), decide: body)
    }
}

extension Configuration {
    /// Whether `principal` is a reviewer this store was configured with.
    func isConfiguredReviewer(_ principal: Principal) -> Bool {
        if case .auditReviewer(let r) = principal { return auditReviewers.contains(r) }
        return false
    }
}

/// Fans notifications out to every listener.
/// Once finished (the store closed), a new listener gets a stream that is
/// already finished.
final class Notifier: Sendable {
    private let listeners = Locked<(streams: [UInt64: AsyncStream<VaultNotification>.Continuation], finished: Bool)>(([:], false))
    private let counter = Atomic<UInt64>(0)

    func stream() -> AsyncStream<VaultNotification> {
        let id = counter.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream<VaultNotification>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        continuation.onTermination = { [weak self] _ in _ = self?.listeners.withLock { $0.streams.removeValue(forKey: id) } }
        let open = listeners.withLock { l -> Bool in
            if !l.finished { l.streams[id] = continuation }
            return !l.finished
        }
        if !open { continuation.finish() }
        return stream
    }

    func emit(_ n: VaultNotification) {
        let all = listeners.withLock { Array($0.streams.values) }
        for c in all { c.yield(n) }
    }

    func finish() {
        let all = listeners.withLock { l -> [AsyncStream<VaultNotification>.Continuation] in
            let v = Array(l.streams.values)
            l.streams.removeAll()
            l.finished = true
            return v
        }
        for c in all { c.finish() }
    }
}

/// What a vault's audit record seals about the vault's own stream as the
/// record's group leaves it: how many records it has and a keyed hash of
/// the newest. Checked when the vault loads, so that a vault stream cut
/// short (a record edited out of it, a head pointer moved back) is caught
/// by its audit trail even where the engine's own checks could not see it.
struct VaultAnchor: Equatable {
    static let size = 8 + 16
    /// Records in the vault's stream.
    var records: UInt64
    /// Keyed BLAKE2b-128 of the newest record's payload.
    var headHash: [UInt8]

    static func headHash(of payload: [UInt8], keys: VaultKeys) -> [UInt8] {
        BLAKE2b.hash(payload, outputByteCount: 16, key: keys.auditChain)
    }

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: Self.size)
        w.write(records)
        w.write(bytes: headHash)
        return w.bytes
    }

    /// Writes the 24 bytes of ``encoded()`` at the start of `out`.
    func write(into out: UnsafeMutableRawBufferPointer) {
        out.storeBytes(of: records.littleEndian, toByteOffset: 0, as: UInt64.self)
        headHash.withUnsafeBytes { out.baseAddress!.advanced(by: 8).copyMemory(from: $0.baseAddress!, byteCount: 16) }
    }

    static func decode(_ bytes: ArraySlice<UInt8>) throws -> VaultAnchor {
        try Array(bytes).withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let anchor = VaultAnchor(records: try r.read(), headHash: try r.read(count: 16))
            guard r.remaining == 0 else { throw ByteReader.Malformed() }
            return anchor
        }
    }
}
