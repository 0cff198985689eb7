import Foundation
import VaultStorage

/// Why a document was erased, as its author states it (CSP R1111-51: a
/// professional erases their document at the patient's request, and says
/// why). Validated when created.
///
/// 1 to 512 UTF-8 bytes, at least one letter or digit, no control or
/// format characters. Kept sealed in the vault's erasure record (the
/// tombstone), never in the audit trail: it may name the patient's
/// circumstances.
public struct ErasureReason: Hashable, Sendable {
    /// The reason as stated.
    public let text: String

    /// Validates a reason.
    /// - Throws: ``PatientVaultError/Code/invalidArgument``.
    public init(_ text: String) throws(PatientVaultError) {
        guard Limits.isPrintable(text, maximum: Limits.erasureReason),
              text.unicodeScalars.contains(where: BreakGlassReason.isLetterOrDigit)
        else {
            throw PatientVaultError(
                .invalidArgument,
                "an erasure reason is 1 to \(Limits.erasureReason) UTF-8 bytes with a letter or digit and no control or format characters")
        }
        self.text = text
    }

    /// A reason read back from a record: it was checked when it was
    /// created; here only its byte bounds are (a decoder must not depend on
    /// the Unicode tables of the toolchain that reads it: a reason a newer
    /// build accepted must not make the vault unloadable on an older one).
    init(stored text: String) throws(PatientVaultError) {
        guard (1...Limits.erasureReason).contains(text.utf8.count) else {
            throw PatientVaultError(.invalidArgument, "a stored erasure reason is out of bounds")
        }
        self.text = text
    }
}

/// What remains of an erased document: its tombstone. Its content, its
/// metadata and every version's key are gone; this says that it existed,
/// who wrote it, when, and who erased it, when and why.
public struct ErasedDocument: Hashable, Sendable {
    /// The document's id.
    public var id: DocumentID
    /// Who deposited it (the author of its first version).
    public var author: Principal
    /// When its first version was deposited.
    public var depositedAt: Date
    /// How many versions it had.
    public var versions: Int
    /// When it was erased.
    public var erasedAt: Date
    /// Who erased it.
    public var erasedBy: Principal
    /// Why, if a reason was given (always for a professional's document).
    public var reason: ErasureReason?
}

/// What a vault's erasure record says (the tombstone less its time and
/// actor, which the event body carries).
struct Erasure: Hashable, Sendable {
    var id: DocumentID
    var author: Principal
    var depositedAt: Date
    var versions: UInt32
    var reason: ErasureReason?
    /// The current version's confidentiality flags when it was erased,
    /// `hiddenFromPatient` only if that version was then still hidden from
    /// the patient (not released, by its author or by time): the tombstone
    /// and the trail's entries about it stay hidden from whom the document
    /// was hidden.
    var confidentiality: ConfidentialityFlags = []

    func tombstone(at time: Date, by principal: Principal) -> ErasedDocument {
        ErasedDocument(
            id: id, author: author, depositedAt: depositedAt, versions: Int(versions), erasedAt: time, erasedBy: principal,
            reason: reason)
    }

    /// `id(16) author depositedAt versions(4) flags(1) hasReason(1) [reason]`.
    func write(to w: inout ByteWriter) {
        w.write(bytes: id.bytes)
        w.write(principal: author)
        w.write(date: depositedAt)
        w.write(versions)
        w.write(confidentiality.rawValue)
        if let reason {
            w.write(UInt8(1))
            w.write(string: reason.text)
        } else {
            w.write(UInt8(0))
        }
    }

    static func read(from r: inout ByteReader) throws -> Erasure {
        let id = DocumentID(bytes: try r.read(count: 16))
        let author = try r.readPrincipal()
        let depositedAt = try r.readDate()
        let versions: UInt32 = try r.read()
        guard versions >= 1 else { throw ByteReader.Malformed() }
        let flags: UInt8 = try r.read()
        guard flags & ~UInt8(7) == 0 else { throw ByteReader.Malformed() }
        let reason: ErasureReason?
        switch try r.read(UInt8.self) {
        case 0: reason = nil
        case 1:
            do {
                reason = try ErasureReason(stored: try r.readString(limit: Limits.erasureReason))
            } catch {
                throw ByteReader.Malformed()
            }
        default: throw ByteReader.Malformed()
        }
        return Erasure(
            id: id, author: author, depositedAt: depositedAt, versions: versions, reason: reason,
            confidentiality: ConfidentialityFlags(rawValue: flags))
    }
}
