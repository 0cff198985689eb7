import Foundation
import VaultStorage

/// What a `vaultEvent` record says.
enum VaultEvent: Hashable, Sendable {
    /// A change of who may access the vault.
    case policy(PolicyChange)
    /// A professional or organisation accessed the vault for the first time.
    case firstAccess(GrantHolder)
    /// The patient was told of a hidden document not released after two weeks.
    case hiddenNotice(DocumentID)
    /// A hidden document became visible to the patient after one month.
    case automaticRelease(DocumentID)
    /// A document was erased: its tombstone (its keys are destroyed after
    /// this record is durable, or by the next load of the vault).
    case erased(Erasure)
    /// The vault's history in the store it was exported from
    /// (``VaultStore/importVault(_:trusting:as:secret:)``).
    case imported(ImportedHistory)
    /// A new document-key wrapping key (``VaultStore/rotateVaultKey(for:as:secret:)``):
    /// its version, and the slot of the random key it derives from (wrapped
    /// like the vault key, under the store's key-encryption key).
    case keyRotated(version: UInt32, slot: KeySlot)
}

/// The sealed body of a `vaultEvent` record.
struct VaultEventBody: Hashable, Sendable {
    var time: Date
    var by: Principal
    var event: VaultEvent

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 96)
        w.write(date: time)
        w.write(principal: by)
        switch event {
        case .policy(let change):
            w.write(UInt8(1))
            w.write(change: change)
        case .firstAccess(let holder):
            w.write(UInt8(2)); w.write(holder: holder)
        case .hiddenNotice(let d):
            w.write(UInt8(3)); w.write(bytes: d.bytes)
        case .automaticRelease(let d):
            w.write(UInt8(4)); w.write(bytes: d.bytes)
        case .erased(let e):
            w.write(UInt8(5)); e.write(to: &w)
        case .imported(let h):
            w.write(UInt8(6)); h.write(to: &w)
        case .keyRotated(let version, let slot):
            w.write(UInt8(7)); w.write(version); w.write(slot.number)
        }
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> VaultEventBody {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let time = try r.readDate()
            let by = try r.readPrincipal()
            let event: VaultEvent = switch try r.read(UInt8.self) {
            case 1: .policy(try r.readChange())
            case 2: .firstAccess(try r.readHolder())
            case 3: .hiddenNotice(DocumentID(bytes: try r.read(count: 16)))
            case 4: .automaticRelease(DocumentID(bytes: try r.read(count: 16)))
            case 5: .erased(try Erasure.read(from: &r))
            case 6: .imported(try ImportedHistory.read(from: &r))
            case 7:
                try { () throws -> VaultEvent in
                    let version: UInt32 = try r.read()
                    let slot: UInt64 = try r.read()
                    guard version >= 1, slot >= 1 else { throw ByteReader.Malformed() }
                    return .keyRotated(version: version, slot: KeySlot(slot))
                }()
            default: throw ByteReader.Malformed()
            }
            guard r.remaining == 0 else { throw ByteReader.Malformed() }
            return VaultEventBody(time: time, by: by, event: event)
        }
    }
}

extension ByteWriter {
    mutating func write(holder: GrantHolder) {
        switch holder {
        case .professional(let r): write(UInt8(1)); write(string: r.digits)
        case .organisation(let f): write(UInt8(2)); write(string: f.value)
        }
    }

    mutating func write(change: PolicyChange) {
        switch change {
        case .authorise(let p, let until): write(UInt8(1)); write(principal: p); write(optionalDate: until)
        case .revoke(let h): write(UInt8(2)); write(holder: h)
        case .block(let r): write(UInt8(3)); write(string: r.digits)
        case .unblock(let r): write(UInt8(4)); write(string: r.digits)
        case .setMedecinTraitant(let p):
            write(UInt8(5))
            if let p { write(UInt8(1)); write(principal: .professional(p)) } else { write(UInt8(0)) }
        case .addToCareTeam(let p): write(UInt8(6)); write(principal: .professional(p))
        case .removeFromCareTeam(let r): write(UInt8(7)); write(string: r.digits)
        case .nameRepresentative(let r): write(UInt8(8)); write(principal: .representative(r))
        case .removeRepresentative(let i): write(UInt8(9)); write(string: i.digits)
        case .setBreakGlassOpposition(let b): write(UInt8(10)); write(UInt8(b ? 1 : 0))
        case .releaseToPatient(let d): write(UInt8(11)); write(bytes: d.bytes)
        case .closeVault(let reason): write(UInt8(12)); write(UInt8(reason == .patientRequest ? 1 : 2))
        case .reopenVault: write(UInt8(13))
        case .authoriseHeir(let i): write(UInt8(14)); write(string: i.digits)
        }
    }
}

extension ByteReader {
    mutating func readHolder() throws -> GrantHolder {
        switch try read(UInt8.self) {
        case 1: return .professional(try RPPSNumber(try readString(limit: 32)))
        case 2: return .organisation(try FINESSNumber(try readString(limit: 32)))
        default: throw ByteReader.Malformed()
        }
    }

    mutating func readRPPS() throws -> RPPSNumber { try RPPSNumber(try readString(limit: 32)) }

    mutating func readProfessional() throws -> HealthProfessional {
        guard case .professional(let p) = try readPrincipal() else { throw ByteReader.Malformed() }
        return p
    }

    mutating func readChange() throws -> PolicyChange {
        switch try read(UInt8.self) {
        case 1: return .authorise(try readPrincipal(), until: try readOptionalDate())
        case 2: return .revoke(try readHolder())
        case 3: return .block(try readRPPS())
        case 4: return .unblock(try readRPPS())
        case 5:
            switch try read(UInt8.self) {
            case 0: return .setMedecinTraitant(nil)
            case 1: return .setMedecinTraitant(try readProfessional())
            default: throw ByteReader.Malformed()
            }
        case 6: return .addToCareTeam(try readProfessional())
        case 7: return .removeFromCareTeam(try readRPPS())
        case 8:
            guard case .representative(let r) = try readPrincipal() else { throw ByteReader.Malformed() }
            return .nameRepresentative(r)
        case 9: return .removeRepresentative(try INS(try readString(limit: 32)))
        case 10:
            switch try read(UInt8.self) {
            case 0: return .setBreakGlassOpposition(false)
            case 1: return .setBreakGlassOpposition(true)
            default: throw ByteReader.Malformed()
            }
        case 11: return .releaseToPatient(DocumentID(bytes: try read(count: 16)))
        case 12:
            switch try read(UInt8.self) {
            case 1: return .closeVault(.patientRequest)
            case 2: return .closeVault(.death)
            default: throw ByteReader.Malformed()
            }
        case 13: return .reopenVault
        case 14: return .authoriseHeir(try INS(try readString(limit: Limits.identifier)))
        default: throw ByteReader.Malformed()
        }
    }
}
