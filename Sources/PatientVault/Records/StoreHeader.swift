#if canImport(Glibc)
import Glibc
#endif
import VaultCrypto
import VaultStorage

/// The store's header file, `store.header`: the store's **root key**,
/// wrapped by whoever holds the master key: a raw key, a passphrase
/// (Argon2id, with its salt and cost), or a ``KeyProvider`` (a KMS or an
/// HSM that never hands its key out). Every key of the store derives from
/// the root key (``StoreKeys``), so changing the master key rewrites this
/// file alone (``VaultStore/rotateMasterKey(to:as:)``).
///
/// `magic(8) version(4) source(1) reserved(3) salt(16) opsLimit(8)
/// memLimit(8) storeID(16) keyIDLength(2) keyID wrappedLength(2) wrapped
/// rootCheck(32) crc32c(4)`. The bytes before `wrapped` are the wrap's associated data
/// (its context, for a provider): a header whose fields were altered does
/// not open. For a raw key or a passphrase, `wrapped` is an
/// XChaCha20-Poly1305 box (72 bytes) of the root key under subkey 1 of the
/// master key (`crypto_kdf`, context `PVHEADER`). `rootCheck` is the keyed
/// BLAKE2b-256 of every byte before it under the root key's check key
/// (``StoreKeys`` subkey 1): a provider's wrap is opaque to the store, so
/// the root key a provider returns is checked here, before anything is
/// read or written with it (`wrongMasterKey`, not `corrupted` later).
struct StoreHeader {
    static let magic: [UInt8] = Array("PVSTORE1".utf8)
    /// The store's format version. 2: a checkpoint from creation on, one
    /// statistics record of one size per vault group; 3: opaque engine
    /// references in sealed records; 4: the log engine's key-slot journal
    /// (CHANGELOG.md); 5: a random checkpoint signing key, wrapped in a key
    /// slot, named by the signing-key stream; 6: a root key wrapped by the
    /// master key or a key provider; 7: a vault anchor's head hash keyed
    /// over the newest record's BLAKE2b-256 digest, not its bytes; 8: the
    /// root key's check value in the header; 9: record headers hide their
    /// document id and version (``HeaderMask``). There is no migration
    /// before 1.0: a store of another version is refused, naming both
    /// versions.
    static let version: UInt32 = 9
    /// The size of ``rootCheck``.
    static let rootCheckSize = 32
    /// The largest header: a provider's key id and wrapped key included.
    static let maximumSize = 64 + 2 + Limits.keyProviderID + 2 + Limits.wrappedRootKey + rootCheckSize + 4
    static let kdfContext = KeyDerivation.Context("PVHEADER")

    enum Source: UInt8 {
        case rawKey = 1
        case argon2id = 2
        case provider = 3
    }

    var source: Source
    var salt: [UInt8]
    var parameters: Argon2id.Parameters
    var storeID: [UInt8]
    /// The provider's name for its key (empty for a raw key or a passphrase).
    var keyID: String
    var wrapped: [UInt8]
    /// The root key's check value over the bytes before it (see the type's
    /// comment); set by ``checked(root:)``.
    var rootCheck: [UInt8] = []

    /// Everything before the wrapped key: its associated data.
    func prefix() -> [UInt8] {
        var w = ByteWriter(capacity: 96 + keyID.utf8.count)
        w.write(bytes: Self.magic)
        w.write(Self.version)
        w.write(source.rawValue)
        w.writeZeros(3)
        w.write(bytes: salt)
        w.write(parameters.opsLimit)
        w.write(parameters.memLimit)
        w.write(bytes: storeID)
        w.write(UInt16(keyID.utf8.count))
        w.write(bytes: Array(keyID.utf8))
        return w.bytes
    }

    /// The bytes ``rootCheck`` covers: the prefix and the wrapped key.
    private func checkedBytes() -> [UInt8] {
        var w = ByteWriter(capacity: Self.maximumSize)
        w.write(bytes: prefix())
        w.write(UInt16(wrapped.count))
        w.write(bytes: wrapped)
        return w.bytes
    }

    /// The check value of `root` over this header's bytes.
    private func rootCheck(of root: SymmetricKey) throws -> [UInt8] {
        let key = try KeyDerivation.deriveKeys(from: root, ids: [1], context: StoreKeys.context)[0]
        defer { key.wipe() }
        return BLAKE2b.hash(checkedBytes(), key: key)
    }

    /// This header with the check value of `root`, its root key.
    func checked(root: SymmetricKey) throws -> StoreHeader {
        var h = self
        h.rootCheck = try rootCheck(of: root)
        return h
    }

    /// Whether `root` is this header's root key (constant time).
    func isRootKey(_ root: SymmetricKey) -> Bool {
        guard let expected = try? rootCheck(of: root) else { return false }
        return MerkleTree.constantTimeEqual(expected, rootCheck)
    }

    func encoded() -> [UInt8] {
        assert(rootCheck.count == Self.rootCheckSize, "a header is written with its root check")
        var bytes = checkedBytes() + rootCheck
        bytes += withUnsafeBytes(of: CRC32C.checksum(bytes).littleEndian) { Array($0) }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) throws(PatientVaultError) -> StoreHeader {
        guard bytes.count >= 12, bytes.count <= maximumSize, Array(bytes[0..<8]) == magic else {
            throw PatientVaultError(.corrupted, "store.header is not a PatientVault header")
        }
        let crc = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self).littleEndian }
        guard CRC32C.checksum(Array(bytes[0..<(bytes.count - 4)])) == crc else {
            throw PatientVaultError(.corrupted, "store.header failed its checksum")
        }
        return try translatingErrors {
            try bytes.withUnsafeBytes { raw in
                var r = ByteReader(UnsafeRawBufferPointer(rebasing: raw[0..<(bytes.count - 4)]))
                _ = try r.read(count: 8)
                let found: UInt32 = try r.read()
                guard found == version else {
                    throw PatientVaultError(
                        .unsupportedFormat,
                        "store format version \(found) is not supported: this build reads version \(version) only (no migration before 1.0)")
                }
                guard let source = Source(rawValue: try r.read()) else { throw ByteReader.Malformed() }
                guard try r.read(count: 3) == [0, 0, 0] else { throw ByteReader.Malformed() }
                let salt = try r.read(count: 16)
                let ops: UInt64 = try r.read()
                let mem: UInt64 = try r.read()
                let id = try r.read(count: 16)
                let keyIDLength = Int(try r.read(UInt16.self))
                guard keyIDLength <= Limits.keyProviderID, let keyID = String(validating: try r.read(count: keyIDLength), as: UTF8.self),
                      (source == .provider) == !keyID.isEmpty
                else { throw ByteReader.Malformed() }
                let wrappedLength = Int(try r.read(UInt16.self))
                guard (1...Limits.wrappedRootKey).contains(wrappedLength) else { throw ByteReader.Malformed() }
                let wrapped = try r.read(count: wrappedLength)
                let check = try r.read(count: rootCheckSize)
                guard r.remaining == 0 else { throw ByteReader.Malformed() }
                return StoreHeader(
                    source: source, salt: salt, parameters: .init(opsLimit: ops, memLimit: mem), storeID: id, keyID: keyID,
                    wrapped: wrapped, rootCheck: check)
            }
        }
    }

    /// Reads the header of the store in `directory`, or nil if there is none.
    static func read(directory: String) throws(PatientVaultError) -> StoreHeader? {
        guard let bytes = try translatingErrors({ try StoreFolder.readHeader(in: directory, maximumSize: maximumSize) }) else { return nil }
        guard bytes.count <= maximumSize else { throw PatientVaultError(.corrupted, "store.header is larger than any header") }
        return try decode(bytes)
    }

    /// The store's header as read: whole, or damaged, with every header it
    /// may have been before one of its bytes was flipped (the CRC's
    /// algebra lists them) for the open to prove by unwrapping.
    enum Read {
        case whole(StoreHeader)
        case damaged(PatientVaultError, candidates: [StoreHeader])
    }

    /// ``read(directory:)``, except that a header failing its checksum (or
    /// its magic, which the checksum covers) is returned with its
    /// single-byte repairs instead of thrown.
    static func readRestoringOneByte(directory: String) throws(PatientVaultError) -> Read? {
        guard let bytes = try translatingErrors({ try StoreFolder.readHeader(in: directory, maximumSize: maximumSize) }) else { return nil }
        guard bytes.count <= maximumSize else { throw PatientVaultError(.corrupted, "store.header is larger than any header") }
        do {
            return .whole(try decode(bytes))
        } catch where error.code == .corrupted && bytes.count >= 16 {
            // Every repair that decodes, for the unwrap to prove: collected
            // through the one-at-a-time search (a header is small).
            var candidates: [StoreHeader] = []
            _ = CRC32C.uniqueSingleByteRepair(of: bytes, covered: 0..<(bytes.count - 4), storedAt: bytes.count - 4) { candidate -> Bool? in
                if let header = try? decode(candidate) { candidates.append(header) }
                return nil
            }
            return .damaged(error, candidates: candidates)
        }
    }

    /// Writes the header of a new store unless another opener wrote one
    /// first (``StoreFolder/createHeader(_:in:)``); false then.
    func create(directory: String) throws(PatientVaultError) -> Bool {
        try translatingErrors { try StoreFolder.createHeader(encoded(), in: directory) }
    }

    /// Writes the header atomically (see ``StoreFolder/writeHeader(_:in:)``).
    func write(directory: String) throws(PatientVaultError) {
        try translatingErrors { try StoreFolder.writeHeader(encoded(), in: directory) }
    }

    // MARK: Wrapping the root key under a raw or passphrase-derived key

    /// The root key wrapped under `master` (subkey 1 of `PVHEADER`), bound
    /// to the header's prefix.
    func wrapping(_ root: SymmetricKey, under master: SymmetricKey) throws -> [UInt8] {
        let kek = try KeyDerivation.deriveKeys(from: master, ids: [1], context: Self.kdfContext)[0]
        defer { kek.wipe() }
        return try KeyWrap.wrap(root, with: kek, context: prefix())
    }

    /// The root key, if `master` wrapped it.
    /// - Throws: ``PatientVaultError/Code/wrongMasterKey`` otherwise.
    func unwrapRoot(with master: SymmetricKey) throws(PatientVaultError) -> SymmetricKey {
        do {
            let kek = try KeyDerivation.deriveKeys(from: master, ids: [1], context: Self.kdfContext)[0]
            defer { kek.wipe() }
            return try KeyWrap.unwrap(wrapped, with: kek, context: prefix())
        } catch {
            throw PatientVaultError(.wrongMasterKey, "the master key does not open this store (or its header was altered)")
        }
    }
}
