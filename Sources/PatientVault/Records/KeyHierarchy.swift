import VaultCrypto
import VaultStorage

/// Keys derived from the master key (`crypto_kdf`, context `PVMASTER`).
///
/// - 1: key-check key: keys the header's root check (``StoreHeader``),
///   so a root key a provider gives back is checked before anything is
///   read or written;
/// - 2: key-encryption key, wraps each vault key;
/// - 3: pseudonym key, keyed BLAKE2b of the INS gives the vault's id;
/// - 4: activity key, seals the per-professional copies of audit entries;
/// - 5: statistics key, seals the statistics stream and keys its tags;
/// - 6: public-id key, keyed BLAKE2b of a vault's stream id gives the id
///   the API shows (distinct from, and not linkable to, the stream id);
/// - 7: log key, the MAC of every frame header and of the index checkpoint
///   (handed to the storage engine as a ``LogAuthenticator``);
/// - 8: signing-key key: seals the records of the store's checkpoint
///   signing keys and wraps their random seeds (``SigningKeyRing``);
/// - 9: lifecycle key: seals the store's lifecycle stream (vaults closed,
///   reopened, destroyed: ``VaultLifecycleIndex``);
/// - 10: header-mask key: hides the document id and version in the
///   header of every document version record (``HeaderMask``).
struct StoreKeys: Sendable {
    static let context = KeyDerivation.Context("PVMASTER")
    /// Subkeys 1 to 9, as numbered above (10 is ``headerMask``).
    let check, keyEncryption, pseudonym, activity, statistics, publicID, log, signingKey, lifecycle: SymmetricKey
    /// Subkey 10's mask of document version headers.
    let headerMask: HeaderMask
    /// The store's one activity-mark stream (``ActivityWriter``), derived once.
    let activityMarkStream: StreamID
    /// The store's one statistics stream, derived once.
    let statisticsStream: StreamID
    /// The store's one stream of checkpoint signing keys (``SigningKeyRing``).
    let signingKeyStream: StreamID
    /// The store's one stream of vault closures, reopenings and
    /// destructions (``VaultLifecycleIndex``).
    let lifecycleStream: StreamID
    /// The store's one stream of compaction tickets (``CompactionTicket``),
    /// sealed under the lifecycle key.
    let compactionStream: StreamID

    init(master: SymmetricKey) throws {
        let k = try KeyDerivation.deriveKeys(from: master, ids: Array(1...10), context: Self.context)
        (check, keyEncryption, pseudonym, activity, statistics, publicID, log, signingKey, lifecycle) =
            (k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8])
        headerMask = HeaderMask(key: k[9])
        activityMarkStream = Self.classed(.activityMark, BLAKE2b.hash(Array("PV1-activity-mark".utf8), key: pseudonym))
        statisticsStream = Self.classed(.statistics, BLAKE2b.hash(Array("PV1-statistics".utf8), key: pseudonym))
        signingKeyStream = Self.classed(.signingKey, BLAKE2b.hash(Array("PV1-signing-keys".utf8), key: pseudonym))
        lifecycleStream = Self.classed(.lifecycle, BLAKE2b.hash(Array("PV1-vault-lifecycle".utf8), key: pseudonym))
        compactionStream = Self.classed(.compaction, BLAKE2b.hash(Array("PV1-compaction".utf8), key: pseudonym))
    }

    /// Wipes every key now (at ``VaultStore/close()``), rather than when
    /// the last reference goes.
    func wipe() {
        for key in [check, keyEncryption, pseudonym, activity, statistics, publicID, log, signingKey, lifecycle, headerMask.key] { key.wipe() }
    }

    /// The id the API shows for a vault (32 hexadecimal characters): keyed
    /// BLAKE2b-128 of its stream id under the public-id key. Errors, audit
    /// entries, notifications and ``VaultInfo`` carry this, never the
    /// stream id that names the vault's frames on disk.
    func publicVaultID(of vault: StreamID) -> String {
        hexEncoded(BLAKE2b.hash(Array("PV1-public-id".utf8) + vault.bytes, outputByteCount: 16, key: publicID))
    }

    /// The stream of a vault's audit trail: keyed BLAKE2b of the vault's
    /// pseudonym, so the two ids cannot be derived from each other without
    /// the master key (the log still shows them together: every write's
    /// group holds the vault's records and its audit entry).
    func auditStream(of vault: StreamID) -> StreamID {
        Self.classed(.audit, BLAKE2b.hash(Array("PV1-audit".utf8) + vault.bytes, key: pseudonym))
    }

    /// The stream of everything one professional or organisation did.
    func activityStream(of holder: GrantHolder) -> StreamID {
        let name: String = switch holder {
        case .professional(let r): "PV1-activity-rpps:" + r.digits
        case .organisation(let f): "PV1-activity-finess:" + f.value
        }
        return Self.classed(.activity, BLAKE2b.hash(Array(name.utf8), key: pseudonym))
    }

    /// The stream where a reviewer's own reads are recorded.
    func reviewerStream(of reviewer: SystemPrincipal) -> StreamID {
        reviewerStream(named: reviewer.identifier)
    }

    /// The stream of a reviewer identifier, or of `kind-<principal kind>`
    /// for attempts by principals without a stream of their own.
    func reviewerStream(named name: String) -> StreamID {
        Self.classed(.reviewer, BLAKE2b.hash(Array(("PV1-reviewer:" + name).utf8), key: pseudonym))
    }

    /// The vault's stream id: BLAKE2b-256 keyed by the pseudonym key over
    /// `"PV1-INS" || INS`. Without the master key it cannot be linked to a
    /// patient, and it is stable so the vault can be found again.
    func vaultPseudonym(for ins: INS) -> StreamID {
        // Once per call of the API: hashed in place, without an array (the
        // bytes are those of `"PV1-INS" + digits`, as ever).
        var digits = ins.digits
        return digits.withUTF8 { utf8 in
            let prefix: StaticString = "PV1-INS"
            let count = prefix.utf8CodeUnitCount + utf8.count
            return withUnsafeTemporaryAllocation(byteCount: count + 32, alignment: 8) { buffer in
                let input = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
                input.copyMemory(from: UnsafeRawBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount))
                UnsafeMutableRawBufferPointer(rebasing: input[prefix.utf8CodeUnitCount...]).copyMemory(from: UnsafeRawBufferPointer(utf8))
                let hash = UnsafeMutableRawBufferPointer(rebasing: buffer[count..<(count + 32)])
                BLAKE2b.hash(UnsafeRawBufferPointer(input), key: pseudonym, into: hash)
                hash[0] = StreamClass.vault.rawValue
                return StreamID(bytes: hash)
            }
        }
    }

    /// The first byte of a stream id says what kind of stream it is, so the
    /// engine can count vaults without knowing what they are.
    enum StreamClass: UInt8 {
        case vault = 1, audit = 2, activity = 3, reviewer = 4, statistics = 5, activityMark = 6, signingKey = 7, lifecycle = 8
        case compaction = 9

        /// The class of a stream: its first byte.
        init?(of stream: StreamID) { self.init(rawValue: UInt8(truncatingIfNeeded: stream.w0)) }
    }

    static func classed(_ c: StreamClass, _ hash: [UInt8]) -> StreamID {
        var bytes = hash
        bytes[0] = c.rawValue
        return StreamID(bytes: bytes)
    }

    /// Binds a wrapped vault key to its vault and slot.
    static func vaultKeyContext(_ vault: StreamID, slot: KeySlot) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        w.write(bytes: Array("PV1-vault-key".utf8))
        w.write(bytes: vault.bytes)
        w.write(slot.number)
        return w.bytes
    }
}

/// The MAC of the engine's frame headers and checkpoints: keyed
/// BLAKE2b-128 under the store's log key. The engine gets this value, never
/// the key.
struct LogMAC: LogAuthenticator {
    let key: SymmetricKey

    func tag(_ message: UnsafeRawBufferPointer) -> [UInt8] {
        BLAKE2b.hash(message, outputByteCount: 16, key: key)
    }

    func tag(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        BLAKE2b.hash(message, key: key, into: output)
    }
}

/// Keys derived from a vault key (context `PVVAULT_`): 1 seals the vault's
/// own records, 2 wraps its documents' keys, 3 seals its audit entries,
/// 4 keys the BLAKE2b of the audit chain, 5 keys the hash of break-glass
/// reasons (a key of its own: a reason's hash is never a chain value).
struct VaultKeys: Sendable {
    static let context = KeyDerivation.Context("PVVAULT_")
    /// Subkeys 1 to 5, as numbered above.
    let records, documentKeyWrapping, audit, auditChain, reasonHash: SymmetricKey

    static let subkeyIDs: [UInt64] = [1, 2, 3, 4, 5]

    /// From `[vaultKey, subkey 1…5]`, as `keyWithSubkeys` returns them.
    private init(_ k: [SymmetricKey]) {
        (records, documentKeyWrapping, audit, auditChain, reasonHash) = (k[1], k[2], k[3], k[4], k[5])
    }

    /// A new random vault key and its subkeys, in one guarded allocation.
    static func generate() throws -> (vaultKey: SymmetricKey, keys: VaultKeys) {
        let k = try KeyDerivation.randomKeyWithSubkeys(ids: subkeyIDs, context: context)
        return (k[0], VaultKeys(k))
    }

    /// Unwraps a vault key and derives its subkeys, in one guarded allocation.
    static func unwrap(_ wrapped: [UInt8], with key: SymmetricKey, context wrapContext: [UInt8]) throws -> VaultKeys {
        VaultKeys(try KeyWrap.unwrap(wrapped, with: key, context: wrapContext, subkeys: subkeyIDs, derivation: context))
    }

    /// Binds a wrapped document key to its vault, document, version and slot.
    static func documentKeyContext(_ vault: StreamID, document: DocumentID, version: UInt32, slot: KeySlot) -> [UInt8] {
        var w = ByteWriter(capacity: 80)
        w.write(bytes: Array("PV1-doc-key".utf8))
        w.write(bytes: vault.bytes)
        w.write(bytes: document.bytes)
        w.write(version)
        w.write(slot.number)
        return w.bytes
    }
}

/// Keys derived from a document key (context `PVDOCKEY`): 1 seals the
/// metadata, 2 the content stream. Destroying the document key's slot
/// makes both unreadable.
struct DocumentKeys {
    static let context = KeyDerivation.Context("PVDOCKEY")
    /// Subkeys 1 and 2, as numbered above.
    let metadata, content: SymmetricKey

    static let subkeyIDs: [UInt64] = [1, 2]

    private init(_ k: [SymmetricKey]) {
        (metadata, content) = (k[1], k[2])
    }

    /// A new random document key and its subkeys, in one guarded allocation.
    static func generate() throws -> (documentKey: SymmetricKey, keys: DocumentKeys) {
        let k = try KeyDerivation.randomKeyWithSubkeys(ids: subkeyIDs, context: context)
        return (k[0], DocumentKeys(k))
    }

    /// Unwraps a document key and derives its subkeys, in one guarded allocation.
    static func unwrap(_ wrapped: [UInt8], with key: SymmetricKey, context wrapContext: [UInt8]) throws -> DocumentKeys {
        DocumentKeys(try KeyWrap.unwrap(wrapped, with: key, context: wrapContext, subkeys: subkeyIDs, derivation: context))
    }
}
