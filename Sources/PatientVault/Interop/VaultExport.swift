import Foundation
import PatientVaultProof
import VaultCrypto
import VaultStorage

/// One vault taken out of its store, as the patient takes it with them:
/// every document version they may read (metadata and content, decrypted),
/// their audit trail, and the evidence that ties each to a signed
/// checkpoint of the store, in one self-verifying file
/// (``VaultStore/exportVault(for:as:secret:)``).
///
/// **The file.** A first line `patientvault-export/1 <verifier key>
/// <signature>`, then the export as JSON. The signature is the store's
/// checkpoint signing key's
/// Ed25519 signature of `"patientvault-export/1\n"` followed by that JSON,
/// so no byte of the file can change unnoticed. The JSON carries, for each
/// document version, its sealed record as the log holds it, the version's
/// own metadata key (which opens that record and nothing else) and its
/// inclusion proof (`tlog-proof@v1`); for each audit entry, its sealed
/// record and inclusion proof; the signed checkpoint and the store's note
/// verifier key.
///
/// **What verification proves** (``init(verifying:trusting:)``, offline,
/// without the store; `vaultctl verify-bundle`): the file is the store's
/// (signature); each record is in the store's log at the checkpoint
/// (inclusion proofs, RFC 9162); each document version's metadata is what
/// its record seals (the record opens with the included key and holds the
/// same metadata), and its content is what that metadata's size and
/// BLAKE2b-256 hash describe. An audit entry's text is bound to its
/// record by the signature alone (opening it would take the vault's audit
/// key, which is not exported). Pin the store's published verifier key
/// (`trusting`): without it, a file signed by any key checks against itself.
///
/// **Sealed to a recipient.** ``sealed(to:)`` seals the whole file to an
/// X25519 public key with libsodium's `crypto_box_seal`
/// (``ExportRecipientKey``): only the recipient opens it
/// (``init(opening:with:trusting:)``).
public struct VaultExport: Sendable {
    /// An exported document version: its metadata and its content.
    public struct Document: Sendable, Hashable {
        /// The version's metadata, as its record seals it (to the
        /// nanosecond), with the status the exporter saw.
        public let metadata: DocumentMetadata
        /// The content, decrypted.
        public let content: Data
    }

    /// The vault's public id.
    public let vaultID: String
    /// Whose vault.
    public let patient: INS
    /// When it was exported.
    public let exportedAt: Date
    /// Who exported it.
    public let exportedBy: Principal
    /// Every version the exporter may read, by document then version.
    public let documents: [Document]
    /// The vault's audit trail as the exporter may read it, oldest first
    /// (the export's own entry last).
    public let auditTrail: [AuditEntry]
    /// The signed checkpoint every proof of the file is against.
    public let checkpoint: SignedCheckpoint
    /// The key that signed the checkpoint and the file.
    public let verifierKey: NoteVerifierKey
    /// The file: the signature line, then the JSON.
    public let bytes: Data

    static let magic = "patientvault-export/1"
    static let sealedMagic = Array("patientvault-export-sealed/1\n".utf8)
    /// The largest file read (a vault's documents are at most this, whole).
    public static let maximumSize = 1 << 30
    /// The JSON's `format`: 2 since a version record's header hides its
    /// document (store format 9; a verifier rebuilds the record's
    /// associated data from the id and version the export claims).
    static let format = 2

    /// Reads and checks an export file, offline: its signature, every
    /// inclusion proof against its checkpoint, every version's record
    /// against its metadata and content (see the type's documentation).
    /// - Parameters:
    ///   - data: the file (``bytes``).
    ///   - trusted: the store's note verifier keys the host or the patient
    ///     kept (`VaultStore.checkpointVerifierKeys`); empty to check the
    ///     file against its own key only.
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` for a file that
    ///   is not an export (or signed by a key not among `trusted`),
    ///   ``PatientVaultError/Code/corrupted`` for one that fails a check.
    public init(verifying data: Data, trusting trusted: [NoteVerifierKey] = []) throws(PatientVaultError) {
        let malformed = PatientVaultError(.invalidArgument, "not a PatientVault export file")
        guard data.count <= Self.maximumSize, let newline = data.firstIndex(of: 0x0A) else { throw malformed }
        guard let first = String(validating: data[..<newline], as: UTF8.self) else { throw malformed }
        // A slice of the file, not a copy (an export is up to 1 GiB).
        let json = data[data.index(after: newline)...]
        let parts = first.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == Self.magic, let key = try? NoteVerifierKey(String(parts[1])),
              let signature = Data(base64Encoded: String(parts[2])), signature.count == 64,
              // The signature covers the JSON only: the line that carries
              // it must be the one line the writer makes, byte for byte.
              first == Self.magic + " " + key.description + " " + signature.base64EncodedString()
        else { throw malformed }
        guard trusted.isEmpty || trusted.contains(key) else {
            throw PatientVaultError(.invalidArgument, "the export is signed by a key that is not among the trusted ones")
        }
        let broken = { (what: String) in PatientVaultError(.corrupted, "the export fails its check: \(what)") }
        // The signature first: no byte of the JSON changed.
        let signed: Bool = {
            var message = Array((Self.magic + "\n").utf8)
            message.reserveCapacity(message.count + json.count)
            message.append(contentsOf: json)
            guard let publicKey = try? Ed25519PublicKey(bytes: key.publicKey) else { return false }
            return publicKey.isValidSignature(Array(signature), for: message)
        }()
        guard signed else { throw broken("its signature does not verify") }
        let payload: ExportPayload
        do { payload = try JSONDecoder().decode(ExportPayload.self, from: json) } catch { throw malformed }
        guard payload.format == Self.format else {
            throw PatientVaultError(.unsupportedFormat, "export format \(payload.format); this build reads \(Self.format)")
        }
        let checkpoint: SignedCheckpoint
        do {
            guard try NoteVerifierKey(payload.verifierKey) == key else { throw malformed }
            checkpoint = try SignedCheckpoint(payload.checkpoint)
        } catch { throw malformed }
        let verifier: CheckpointVerifier
        do {
            // The origin its key names (a store signs as its origin): a
            // checkpoint of another log under the same key is refused.
            verifier = try CheckpointVerifier(logKey: key)
            _ = try verifier.verify(checkpoint)
        } catch { throw broken("its checkpoint's signature") }
        guard let stream = Data(base64Encoded: payload.stream), stream.count == 32,
              let auditStream = Data(base64Encoded: payload.auditStream), auditStream.count == 32
        else { throw malformed }
        let vault = StreamID(bytes: stream), audit = StreamID(bytes: auditStream)
        func provenRecord(_ record: String, _ proofText: String, in stream: StreamID, _ what: String) throws(PatientVaultError) -> [UInt8] {
            guard let bytes = Data(base64Encoded: record).map(Array.init), bytes.count >= RecordHeader.size else { throw malformed }
            do {
                let proof = try InclusionProof(proofText)
                guard proof.checkpoint == checkpoint else { throw broken("\(what): a proof against another checkpoint") }
                try verifier.verifyInclusion(proof, leafData: bytes.withUnsafeBytes { MerkleLog.leafData(stream: stream, payload: $0) })
            } catch let error as PatientVaultError {
                throw error
            } catch {
                throw broken("\(what): its record is not in the log at the checkpoint")
            }
            return bytes
        }
        var documents: [Document] = []
        for version in payload.documents {
            let what = "document \(version.metadata.id) version \(version.metadata.version)"
            guard Limits.versions.contains(version.metadata.version) else { throw malformed }
            let record = try provenRecord(version.record, version.proof, in: vault, what)
            guard let content = Data(base64Encoded: version.content), let keyBytes = Data(base64Encoded: version.key), keyBytes.count == 32
            else { throw malformed }
            let sealed: DocumentMetadata
            do {
                // The header hides the document and version (``HeaderMask``):
                // the record opens only if they are the ones claimed.
                var header = try RecordHeader.decode(record, mask: nil)
                guard header.kind == .documentVersion else { throw broken(what) }
                header.document = version.metadata.id
                header.version = UInt32(version.metadata.version)
                let metadataKey = try keyBytes.withUnsafeBytes { try SymmetricKey.copying($0) }
                let (plaintext, _) = try RecordCodec.open(record, header: header, key: metadataKey, stream: vault)
                sealed = try DocumentVersionBody.decode(plaintext, id: version.metadata.id, version: version.metadata.version).metadata
            } catch {
                throw broken("\(what): its record does not hold its metadata")
            }
            // The status is derived when read (the record keeps `.current`);
            // the JSON's dates are to the millisecond: the record's metadata,
            // written as the JSON writes it, must be the file's.
            var exact = sealed
            exact.status = version.metadata.status
            let json = JSONEncoder()
            json.outputFormatting = [.sortedKeys]
            guard let a = try? json.encode(exact), let b = try? json.encode(version.metadata), a == b else {
                throw broken("\(what): its metadata differs from its record's")
            }
            guard Int64(content.count) == sealed.size, BLAKE2b.hash(Array(content)) == sealed.contentHash else {
                throw broken("\(what): its content is not the one its metadata describes")
            }
            documents.append(Document(metadata: exact, content: content))
        }
        var trail: [AuditEntry] = []
        for item in payload.auditTrail {
            _ = try provenRecord(item.record, item.proof, in: audit, "audit entry \(item.entry.sequence)")
            trail.append(item.entry)
        }
        guard let exportedBy = trail.last?.actor, trail.last?.action == .exportVault, let patient = try? INS(payload.patient),
              trail.allSatisfy({ $0.vaultID == payload.vaultID })
        else { throw broken("its trail does not end with its own export") }
        vaultID = payload.vaultID
        self.patient = patient
        exportedAt = trail.last!.time
        self.exportedBy = exportedBy
        self.documents = documents
        auditTrail = trail
        self.checkpoint = checkpoint
        verifierKey = key
        bytes = data
    }

    /// Opens an export sealed to `recipient` (``sealed(to:)``) and checks
    /// it as ``init(verifying:trusting:)`` does.
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` for a file that
    ///   is not a sealed export or not sealed to this key, as
    ///   ``init(verifying:trusting:)`` otherwise.
    public init(opening sealed: Data, with recipient: ExportRecipientKey, trusting trusted: [NoteVerifierKey] = []) throws(PatientVaultError) {
        // The largest file ``sealed(to:)`` writes: the magic, the box's
        // overhead and an export of the maximum size.
        guard sealed.count <= Self.sealedMagic.count + SealedBox.overhead + Self.maximumSize, sealed.starts(with: Self.sealedMagic) else {
            throw PatientVaultError(.invalidArgument, "not a sealed PatientVault export")
        }
        let opened: [UInt8]
        do {
            opened = try SealedBox.open(Array(sealed.dropFirst(Self.sealedMagic.count)), with: recipient.keyPair)
        } catch {
            throw PatientVaultError(.invalidArgument, "the sealed export does not open with this key (or was altered)")
        }
        try self.init(verifying: Data(opened), trusting: trusted)
    }

    /// The file sealed to `recipient`'s public key: only its secret key
    /// opens it (``init(opening:with:trusting:)``).
    public func sealed(to recipient: ExportRecipientPublicKey) throws(PatientVaultError) -> Data {
        do {
            return Data(Self.sealedMagic + (try SealedBox.seal(Array(bytes), to: recipient.key)))
        } catch {
            throw PatientVaultError(.cryptoUnavailable, "the export could not be sealed")
        }
    }
}

/// The JSON of an export file.
struct ExportPayload: Codable {
    struct Version: Codable {
        var metadata: DocumentMetadata
        /// Base64 of the content.
        var content: String
        /// Base64 of the version's record, as the log holds it.
        var record: String
        /// Base64 of the version's metadata key (opens its record only).
        var key: String
        /// `tlog-proof@v1` of the record.
        var proof: String
    }

    struct Entry: Codable {
        var entry: AuditEntry
        var record: String
        var proof: String
    }

    var format: Int
    var vaultID: String
    /// The patient's INS (the file is theirs).
    var patient: String
    /// Base64 of the vault's stream id and of its audit trail's (what the
    /// records' leaves and associated data name).
    var stream: String
    var auditStream: String
    var checkpoint: String
    var verifierKey: String
    var documents: [Version]
    var auditTrail: [Entry]
}

/// A recipient's X25519 key pair for sealed exports. Its secret half lives
/// in guarded memory; ``secretKey`` hands it out to be stored by the
/// recipient (a file only they can read).
public final class ExportRecipientKey: Sendable {
    let keyPair: X25519KeyPair

    private init(_ keyPair: X25519KeyPair) { self.keyPair = keyPair }

    /// A new random key pair.
    public static func generate() throws(PatientVaultError) -> ExportRecipientKey {
        do { return ExportRecipientKey(try X25519KeyPair.generate()) } catch {
            throw PatientVaultError(.cryptoUnavailable, "no key pair could be made")
        }
    }

    /// The key pair of a secret key stored earlier (32 bytes).
    /// - Throws: ``PatientVaultError/Code/invalidArgument`` for another size.
    public convenience init(secretKey: [UInt8]) throws(PatientVaultError) {
        do { self.init(try X25519KeyPair.fromSecret(secretKey)) } catch {
            throw PatientVaultError(.invalidArgument, "an export recipient's secret key is 32 bytes")
        }
    }

    /// The public half, to give to whoever seals an export for this key.
    public var publicKey: ExportRecipientPublicKey { ExportRecipientPublicKey(key: keyPair.publicKey) }

    /// The secret key's 32 bytes, to store (the caller wipes its copy).
    public var secretKey: [UInt8] { keyPair.withSecretBytes { Array($0) } }
}

/// An export recipient's X25519 public key; its text form is the standard
/// base64 of its 32 bytes.
public struct ExportRecipientPublicKey: Sendable, Hashable, CustomStringConvertible {
    let key: X25519PublicKey

    init(key: X25519PublicKey) { self.key = key }

    /// Parses the base64 text form.
    /// - Throws: ``PatientVaultError/Code/invalidArgument``.
    public init(_ text: String) throws(PatientVaultError) {
        guard let bytes = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
              let key = try? X25519PublicKey(bytes: Array(bytes))
        else { throw PatientVaultError(.invalidArgument, "an export recipient's public key is 32 bytes in base64") }
        self.key = key
    }

    /// The base64 text form.
    public var description: String { Data(key.bytes).base64EncodedString() }
}
