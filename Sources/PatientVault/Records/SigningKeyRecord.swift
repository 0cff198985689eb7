import Foundation
import VaultCrypto
import VaultStorage

/// The store's checkpoint signing keys: the current Ed25519 key (its
/// secret half in guarded memory) and the public halves of every key the
/// store has had, oldest first, so that checkpoints signed before a
/// rotation still verify.
///
/// Kept in the store's signing-key stream (``StoreKeys/signingKeyStream``):
/// one record per key, sealed under the master key's signing-key subkey
/// (`PVMASTER` id 8), naming the key slot that holds the key's 32-byte
/// seed, wrapped under the same subkey and bound to the slot and the
/// public key. The first key is made with the store, at its first open,
/// from the system's random source; it is never derived from the master
/// key, so a rotation of one leaves the other standing.
struct SigningKeyRing: Sendable {
    /// Signs the store's checkpoints.
    let current: Ed25519SigningKey
    /// Every public key the store has signed with, oldest first (the
    /// current one last).
    let publicKeys: [Ed25519PublicKey]
    /// The key slot of the current key's seed (the older keys' slots are
    /// destroyed).
    let currentSlot: KeySlot

    /// The record body: `format(1) = 1, slot(8), publicKey(32), created(8,
    /// milliseconds since 1970)`: 49 bytes, nothing else accepted.
    private static let bodyFormat: UInt8 = 1
    private static let bodyCount = 1 + 8 + 32 + 8

    /// Loads the store's signing keys, or makes the first one if the store
    /// holds no record at all (it is new).
    /// - Throws: `missing` if the store holds records but no signing key
    ///   under these keys (damage, or for a store without a header the
    ///   wrong master key); ``PatientVaultError/Code/corrupted`` if a
    ///   signing-key record, or the current key's slot, does not open.
    static func loadOrCreate(
        engine: any StorageEngine, keys: StoreKeys, now: Date, missing: PatientVaultError
    ) async throws -> SigningKeyRing {
        let stream = keys.signingKeyStream
        var records: [StoredRecord] = []
        try await engine.visitNewestFirst(stream) { records.append($0); return true }
        guard !records.isEmpty else {
            guard engine.streamCount == 0 else { throw missing }
            return try await create(engine: engine, keys: keys, now: now)
        }
        let broken = PatientVaultError(.corrupted, "a checkpoint signing-key record is damaged")
        var publicKeys: [Ed25519PublicKey] = []
        var slots: [KeySlot] = []
        for (i, record) in records.reversed().enumerated() {
            // Oldest first, numbered 0, 1, 2…: none missing or moved.
            guard try RecordHeader.decode(record.payload, mask: nil).sequence == UInt64(i) else { throw broken }
            let body = try RecordCodec.openStoreRecord(record, kind: .signingKey, key: keys.signingKey, stream: stream, broken: broken)
            let (slot, publicKey) = try decode(body, broken: broken)
            publicKeys.append(publicKey)
            slots.append(slot)
        }
        let newestSlot = slots[slots.count - 1]
        let seed: SymmetricKey
        do {
            let wrapped = try await engine.keySlots.readKeySlot(newestSlot)
            seed = try KeyWrap.unwrap(wrapped, with: keys.signingKey, context: wrapContext(newestSlot, publicKeys[publicKeys.count - 1]))
        } catch {
            // Destroyed, empty, damaged or another slot's: the store cannot
            // sign, and nothing but damage takes its key away.
            throw PatientVaultError(.corrupted, "the checkpoint signing key's slot does not open")
        }
        defer { seed.wipe() }
        let current = try Ed25519SigningKey.fromSeed(seed)
        guard current.publicKey == publicKeys[publicKeys.count - 1] else { throw broken }
        // A rotation cut short after its record was durable: the older
        // seeds go now.
        try await engine.keySlots.finishDestruction(of: Array(slots.dropLast()))
        return SigningKeyRing(current: current, publicKeys: publicKeys, currentSlot: newestSlot)
    }

    /// Replaces the current signing key by a new random one: its record
    /// (the next in the stream) and its wrapped seed are made durable, then
    /// the old seed's slot is destroyed. Checkpoints signed before still
    /// verify with the old public key, which the ring keeps. The caller
    /// serialises rotations.
    func rotated(engine: any StorageEngine, keys: StoreKeys, now: Date) async throws -> SigningKeyRing {
        let (key, slot) = try await Self.append(
            engine: engine, keys: keys, sequence: UInt64(publicKeys.count), now: now)
        try await engine.keySlots.destroyKeySlot(currentSlot)
        return SigningKeyRing(current: key, publicKeys: publicKeys + [key.publicKey], currentSlot: slot)
    }

    /// Makes the store's first signing key: a random seed, wrapped into a
    /// new key slot, and its record, durable before the store opens.
    private static func create(engine: any StorageEngine, keys: StoreKeys, now: Date) async throws -> SigningKeyRing {
        let (key, slot) = try await append(engine: engine, keys: keys, sequence: 0, now: now)
        return SigningKeyRing(current: key, publicKeys: [key.publicKey], currentSlot: slot)
    }

    /// A new random key: its seed wrapped into a new slot and its record,
    /// at `sequence` in the stream, durable before this returns.
    private static func append(
        engine: any StorageEngine, keys: StoreKeys, sequence: UInt64, now: Date
    ) async throws -> (Ed25519SigningKey, KeySlot) {
        let seed = try SymmetricKey.generate()
        defer { seed.wipe() }
        let key = try Ed25519SigningKey.fromSeed(seed)
        let slot = try engine.keySlots.reserveKeySlot()
        let wrapped = try KeyWrap.wrap(seed, with: keys.signingKey, context: wrapContext(slot, key.publicKey))
        var w = ByteWriter(capacity: bodyCount)
        w.write(bodyFormat)
        w.write(slot.number)
        w.write(bytes: key.publicKey.bytes)
        w.write(UInt64(max(0, (now.timeIntervalSince1970 * 1000).rounded(.down))))
        let header = RecordHeader(kind: .signingKey, sequence: sequence, document: nil, version: 0, keySlot: nil)
        let payload = try RecordCodec.seal(header: header, body: w.bytes, key: keys.signingKey, stream: keys.signingKeyStream)
        _ = try await engine.append(
            [EngineRecord(stream: keys.signingKeyStream, payload: payload)], keySlotWrites: [(slot, wrapped)],
            durability: .durable, mayUseReserve: false
        ).wait()
        return (key, slot)
    }

    private static func decode(_ body: [UInt8], broken: PatientVaultError) throws -> (KeySlot, Ed25519PublicKey) {
        guard body.count == bodyCount else { throw broken }
        return try body.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            guard try r.read(UInt8.self) == bodyFormat else { throw broken }
            let slot = KeySlot(try r.read(UInt64.self))
            let publicKey = try Ed25519PublicKey(bytes: try r.read(count: 32))
            _ = try r.read(UInt64.self)
            return (slot, publicKey)
        }
    }

    /// Binds a wrapped seed to its slot and its public key.
    private static func wrapContext(_ slot: KeySlot, _ publicKey: Ed25519PublicKey) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        w.write(bytes: Array("PV1-signing-key".utf8))
        w.write(slot.number)
        w.write(bytes: publicKey.bytes)
        return w.bytes
    }
}
