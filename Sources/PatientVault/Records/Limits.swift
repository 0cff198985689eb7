import Foundation

/// The bounds of every caller-supplied value that ends up in a record.
///
/// One table, used by the validating initialisers (where a value is
/// created), by the draft validation (where a deposit is received) and by
/// the decoders: a decoder accepts exactly what its encoder can be given,
/// so no accepted input can produce a record that fails to read back.
/// Lengths are in UTF-8 bytes.
enum Limits {
    /// Largest encoded metadata of one document version.
    static let versionMetadata = 16 << 10
    /// Room in a record beyond one content chunk: metadata and the chunk list.
    static let recordOverhead = 64 << 10
    /// A professional's speciality.
    static let speciality = 64
    /// A break-glass reason (only its keyed hash is stored).
    static let breakGlassReason = 1024
    /// The fewest letters or digits (Unicode L and N) a break-glass reason has.
    static let breakGlassReasonLettersOrDigits = 4
    /// A key provider's name for its key, kept in the store's header.
    static let keyProviderID = 255
    /// The root key as a key provider wraps it.
    static let wrappedRootKey = 1024
    /// An erasure reason (kept sealed in the vault's tombstone).
    static let erasureReason = 512
    /// The version name of an access matrix.
    static let matrixVersion = 64
    /// A document title.
    static let title = 1024
    /// A type code's code and system.
    static let typeCode = 64
    static let typeCodeSystem = 256
    /// A MIME type.
    static let mimeType = 255
    /// A system principal's identifier.
    static let systemIdentifier = 64
    /// Identifiers read back from records (INS, RPPS, FINESS, region):
    /// their parsers bound them far below this.
    static let identifier = 32
    /// Enumeration raw values (actions, rules, professions, kinds).
    static let enumName = 64
    /// A legal basis or an audit target (both come from the store's own
    /// tables and from public register numbers).
    static let auditText = 64
    /// The public vault id in an audit entry (32 hexadecimal characters).
    static let publicVaultID = 32
    /// Versions are stored as 32-bit numbers, from 1.
    static let versions: ClosedRange<Int> = 1...Int(UInt32.max)
    /// Rotations of one vault's key, at most: each keeps a key slot, which
    /// the vault's load unwraps into guarded memory and its destruction's
    /// lifecycle record lists (8 bytes each), so the count is bounded where
    /// a caller adds to it.
    static let vaultKeyRotations = 256
    /// Dates are stored as their 64-bit floating-point seconds since 1970:
    /// finite, from 0001-01-01T00:00:00Z (−62,135,596,800 s) to 10¹¹ s
    /// (5138-11-16T09:46:40Z), so that time arithmetic (expiries, the
    /// hidden-document delays) never overflows, and every date a record
    /// holds survives its JSON form (`JSONDate`): Foundation's ISO 8601
    /// parser reads no year before 1, so a date before it could be
    /// written as JSON and never read back (an export that never imports).
    static let dateSeconds: ClosedRange<Double> = -62_135_596_800...1e11

    /// The accepted dates, for error messages.
    static let dateRangeDescription = "finite, from 0001-01-01T00:00:00Z to 5138-11-16T09:46:40Z"

    /// Whether `date` can be stored and compared safely.
    static func isStorable(_ date: Date) -> Bool {
        dateSeconds.contains(date.timeIntervalSince1970)
    }

    /// Whether `text` is non-empty, within `maximum` UTF-8 bytes, and free
    /// of control and format characters (NUL, U+2060, U+FEFF, bidi marks...).
    static func isPrintable(_ text: String, maximum: Int) -> Bool {
        (1...maximum).contains(text.utf8.count) && text.unicodeScalars.allSatisfy(isPrintable)
    }

    static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        // ASCII without the Unicode tables (most titles and codes): only
        // C0 controls and DEL are control characters there.
        if scalar.isASCII { return scalar.value >= 0x20 && scalar.value != 0x7F }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator:
            return false
        default:
            return true
        }
    }
}
