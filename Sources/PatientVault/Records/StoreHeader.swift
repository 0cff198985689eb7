#if canImport(Glibc)
import Glibc
#endif
import VaultCrypto
import VaultStorage

/// The store's header file, `store.header`: how to obtain the master key
/// (raw, or Argon2id with salt and cost) and a check box that only the
/// right master key opens.
///
/// `magic(8) version(4) source(1) reserved(3) salt(16) opsLimit(8)
/// memLimit(8) storeID(16) checkBox(56) crc32c(4)`: 124 bytes. The check
/// box is XChaCha20-Poly1305 under the key-check subkey, sealing the store
/// id with every byte before it as associated data.
struct StoreHeader {
    static let magic: [UInt8] = Array("PVSTORE1".utf8)
    /// The store's format version. 2: a checkpoint from creation on, one
    /// statistics record of one size per vault group; 3: opaque engine
    /// references in sealed records; 4: the log engine's key-slot journal
    /// (CHANGELOG.md); 5: a random checkpoint signing key, wrapped in a key
    /// slot, named by the signing-key stream. There is no migration before
    /// 1.0: a store of another version is refused, naming both versions.
    static let version: UInt32 = 5
    static let size = 124
    private static let prefixSize = 64

    enum Source: UInt8 {
        case rawKey = 1
        case argon2id = 2
    }

    var source: Source
    var salt: [UInt8]
    var parameters: Argon2id.Parameters
    var storeID: [UInt8]
    var checkBox: [UInt8]

    private func prefix() -> [UInt8] {
        var w = ByteWriter(capacity: Self.prefixSize)
        w.write(bytes: Self.magic)
        w.write(Self.version)
        w.write(source.rawValue)
        w.writeZeros(3)
        w.write(bytes: salt)
        w.write(parameters.opsLimit)
        w.write(parameters.memLimit)
        w.write(bytes: storeID)
        return w.bytes
    }

    /// A header for a new store, sealed with `keys.check`.
    static func new(source: Source, salt: [UInt8], parameters: Argon2id.Parameters, keys: StoreKeys) throws -> StoreHeader {
        var h = StoreHeader(
            source: source, salt: salt, parameters: parameters, storeID: try SecureRandom.bytes(16), checkBox: [])
        h.checkBox = try XChaCha20Poly1305.seal(h.storeID, using: keys.check, authenticating: h.prefix())
        return h
    }

    /// Whether `keys` come from this store's master key.
    func verify(_ keys: StoreKeys) -> Bool {
        guard let opened = try? XChaCha20Poly1305.open(checkBox, using: keys.check, authenticating: prefix()) else {
            return false
        }
        return opened == storeID
    }

    func encoded() -> [UInt8] {
        var bytes = prefix() + checkBox
        bytes += withUnsafeBytes(of: CRC32C.checksum(bytes).littleEndian) { Array($0) }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) throws(PatientVaultError) -> StoreHeader {
        guard bytes.count == size, Array(bytes[0..<8]) == magic else {
            throw PatientVaultError(.corrupted, "store.header is not a PatientVault header")
        }
        let crc = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: size - 4, as: UInt32.self).littleEndian }
        guard CRC32C.checksum(Array(bytes[0..<(size - 4)])) == crc else {
            throw PatientVaultError(.corrupted, "store.header failed its checksum")
        }
        return try translatingErrors {
            try bytes.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                _ = try r.read(count: 8)
                let found: UInt32 = try r.read()
                guard found == version else {
                    throw PatientVaultError(
                        .unsupportedFormat,
                        "store format version \(found) is not supported: this build reads version \(version) only (no migration before 1.0)")
                }
                guard let source = Source(rawValue: try r.read()) else { throw ByteReader.Malformed() }
                _ = try r.read(count: 3)
                let salt = try r.read(count: 16)
                let ops: UInt64 = try r.read()
                let mem: UInt64 = try r.read()
                let id = try r.read(count: 16)
                let box = try r.read(count: 56)
                return StoreHeader(
                    source: source, salt: salt, parameters: .init(opsLimit: ops, memLimit: mem), storeID: id, checkBox: box)
            }
        }
    }

    /// Reads the header of the store in `directory`, or nil if there is none.
    static func read(directory: String) throws(PatientVaultError) -> StoreHeader? {
        guard let bytes = try translatingErrors({ try StoreFolder.readHeader(in: directory, maximumSize: size) }) else { return nil }
        return try decode(bytes)
    }

    /// Writes the header atomically (see ``StoreFolder/writeHeader(_:in:)``).
    func write(directory: String) throws(PatientVaultError) {
        try translatingErrors { try StoreFolder.writeHeader(encoded(), in: directory) }
    }
}
