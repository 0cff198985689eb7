import Foundation
import VaultCrypto
import VaultStorage

/// The figures the seeds publish, computed from the store's statistics
/// stream without decrypting any document or vault.
public struct StoreStatistics: Hashable, Sendable {
    /// Vaults created.
    public var vaults = 0
    /// Vaults created per ISO week (keyed by the Monday 00:00 UTC that starts it).
    public var vaultsPerWeek: [Date: Int] = [:]
    /// Vaults created per channel.
    public var vaultsPerChannel: [CreationChannel: Int] = [:]
    /// Vaults created per region (vaults opened without a region are not counted here).
    public var vaultsPerRegion: [Region: Int] = [:]
    /// Documents deposited (new documents; replacements are not counted).
    public var documents = 0
    /// Vaults holding at least one document deposited by someone other than the insurer.
    public var fedVaults = 0
    /// New documents deposited by someone other than the insurer.
    public var documentsByOthersThanTheInsurer = 0
    /// Distinct professionals (RPPS) who created, fed or read a vault at least once.
    public var distinctProfessionals = 0
    /// Distinct organisations (FINESS) that created, fed or read a vault at least once.
    public var distinctOrganisations = 0
    /// The same, per kind of organisation.
    public var distinctOrganisationsByKind: [OrganisationKind: Int] = [:]

    /// Empty figures (for building expected values to compare with).
    public init() {}

    /// Share of vaults fed by someone other than the insurer (0…1).
    public var shareFedByOthersThanTheInsurer: Double { vaults == 0 ? 0 : Double(fedVaults) / Double(vaults) }
    /// Documents (by others than the insurer) per fed vault.
    public var documentsPerFedVault: Double { fedVaults == 0 ? 0 : Double(documentsByOthersThanTheInsurer) / Double(fedVaults) }
    /// Share of vaults created through each channel (0…1).
    public var channelShares: [CreationChannel: Double] {
        vaults == 0 ? [:] : vaultsPerChannel.mapValues { Double($0) / Double(vaults) }
    }
}

/// One record of the statistics stream: what the figures need, and nothing
/// more. Sealed under the store's statistics key; vaults and users appear
/// only as 16-byte keyed tags.
///
/// Every group that writes a vault's stream carries exactly one, and every
/// kind seals to the same size (one padding block, ``RecordKind/paddingBlock``):
/// a replacement or a policy change carries ``none``, so that on disk a
/// new document looks like a replacement and a professional's first access
/// like a policy change.
enum StatisticsRecord: Equatable {
    case vaultCreated(time: Date, channel: CreationChannel, region: Region?, creator: UserTag?)
    case document(vault: [UInt8], user: UserTag?, byInsurer: Bool)
    case use(UserTag)
    /// Counts nothing: the statistics record of a group that changes no figure.
    case none

    /// A professional or organisation, by keyed tag.
    struct UserTag: Hashable {
        /// 1 professional, 2 organisation.
        var kind: UInt8
        var organisationKind: OrganisationKind?
        var tag: [UInt8]
    }

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        switch self {
        case .vaultCreated(let time, let channel, let region, let creator):
            w.write(UInt8(1)); w.write(date: time); w.write(string: channel.rawValue); w.write(optionalString: region?.code)
            if let creator { w.write(UInt8(1)); w.write(user: creator) } else { w.write(UInt8(0)) }
        case .document(let vault, let user, let byInsurer):
            w.write(UInt8(2)); w.write(bytes: vault); w.write(UInt8(byInsurer ? 1 : 0))
            if let user { w.write(UInt8(1)); w.write(user: user) } else { w.write(UInt8(0)) }
        case .use(let user):
            w.write(UInt8(3)); w.write(user: user)
        case .none:
            w.write(UInt8(4))
        }
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> StatisticsRecord {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            switch try r.read(UInt8.self) {
            case 1:
                let time = try r.readDate()
                guard let channel = CreationChannel(rawValue: try r.readString(limit: 64)) else { throw ByteReader.Malformed() }
                let region = try r.readOptionalString(limit: Limits.identifier).map { try Region(code: $0) }
                let creator: UserTag? = try r.readBool() ? try r.readUser() : nil
                guard r.remaining == 0 else { throw ByteReader.Malformed() }
                return .vaultCreated(time: time, channel: channel, region: region, creator: creator)
            case 2:
                let vault = try r.read(count: 16)
                let byInsurer = try r.readBool()
                let user: UserTag? = try r.readBool() ? try r.readUser() : nil
                guard r.remaining == 0 else { throw ByteReader.Malformed() }
                return .document(vault: vault, user: user, byInsurer: byInsurer)
            case 3:
                let user = try r.readUser()
                guard r.remaining == 0 else { throw ByteReader.Malformed() }
                return .use(user)
            case 4:
                guard r.remaining == 0 else { throw ByteReader.Malformed() }
                return .none
            default:
                throw ByteReader.Malformed()
            }
        }
    }
}

extension ByteWriter {
    mutating func write(user: StatisticsRecord.UserTag) {
        write(user.kind)
        write(optionalString: user.organisationKind?.rawValue)
        write(bytes: user.tag)
    }
}

extension ByteReader {
    mutating func readUser() throws -> StatisticsRecord.UserTag {
        let kind: UInt8 = try read()
        guard kind == 1 || kind == 2 else { throw ByteReader.Malformed() }
        let organisationKind = try readOptionalString(limit: Limits.enumName).map { name in
            guard let k = OrganisationKind(rawValue: name) else { throw ByteReader.Malformed() }
            return k
        }
        return StatisticsRecord.UserTag(kind: kind, organisationKind: organisationKind, tag: try read(count: 16))
    }

    /// A byte that is 0 or 1.
    mutating func readBool() throws -> Bool {
        switch try read(UInt8.self) {
        case 0: return false
        case 1: return true
        default: throw ByteReader.Malformed()
        }
    }
}

/// Writes the statistics stream: small records (a vault created, a new
/// document, a first use by a professional) keyed so that they name no
/// vault, professional or organisation, only tags under the store's
/// statistics key. Records go in the atomic group of the operation they
/// count (``AuditWriter`` and the pipeline's write phases ask for them).
struct StatisticsWriter: Sendable {
    let keys: StoreKeys
    /// Tags of recent professionals and organisations, derived once each.
    private let userTags = BoundedMemo<Principal, StatisticsRecord.UserTag?>()

    init(keys: StoreKeys) { self.keys = keys }

    /// The statistics stream's tag of a vault (kept in its
    /// ``VaultState/statisticsTag``, derived when it loads).
    static func tag(of vault: StreamID, keys: StoreKeys) -> [UInt8] {
        Array(BLAKE2b.hash(Array("PV1-stats-vault".utf8) + vault.bytes, key: keys.statistics).prefix(16))
    }

    /// The statistics stream's tag of a professional or organisation
    /// (kept for the next call: at most 4,096, then started afresh).
    func user(_ principal: Principal) -> StatisticsRecord.UserTag? {
        guard GrantHolder(principal) != nil else { return nil }
        return userTags.value(principal) { derivedUser(principal) }
    }

    private func derivedUser(_ principal: Principal) -> StatisticsRecord.UserTag? {
        switch principal {
        case .professional(let p), .emergencyRegulator(let p):
            return .init(kind: 1, organisationKind: nil, tag: Array(BLAKE2b.hash(Array(("PV1-stats-rpps:" + p.rpps.digits).utf8), key: keys.statistics).prefix(16)))
        case .organisation(let o):
            return .init(kind: 2, organisationKind: o.kind, tag: Array(BLAKE2b.hash(Array(("PV1-stats-finess:" + o.finess.value).utf8), key: keys.statistics).prefix(16)))
        default:
            return nil
        }
    }

    /// A record of the statistics stream, for an atomic group.
    func record(_ record: StatisticsRecord) throws -> EngineRecord {
        let stream = keys.statisticsStream
        let header = RecordHeader(kind: .statistics, sequence: 0, document: nil, version: 0, keySlot: nil)
        return EngineRecord(stream: stream, payload: try RecordCodec.seal(header: header, body: record.encoded(), key: keys.statistics, stream: stream))
    }
}

extension VaultStore {
    /// The figures the seeds publish: vaults per week, channel and region;
    /// the share of vaults fed by others than the insurer; documents per fed
    /// vault; distinct professionals and organisations that used the
    /// service. Computed from the statistics stream (one small record per
    /// vault creation, new document and first use of a vault by a
    /// professional), never from documents.
    ///
    /// For a reviewer named in ``Configuration/auditReviewers``; the call is
    /// recorded in the caller's own stream, allowed or denied. Cost: one
    /// read and one decryption per record of the stream.
    /// - Throws: ``PatientVaultError/Code/accessDenied`` (rule `notAReviewer`).
    public func statistics(as principal: Principal) async throws(PatientVaultError) -> StoreStatistics {
        try await recordStoreLevelAccess(.readStatistics, by: principal, target: nil)
        return try await translatingErrorsAsync {
            var stats = StoreStatistics()
            var fed = Set<[UInt8]>()
            var professionals = Set<[UInt8]>()
            var organisations: [[UInt8]: OrganisationKind?] = [:]
            var calendar = Calendar(identifier: .iso8601)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            let stream = keys.statisticsStream
            let broken = PatientVaultError(.corrupted, "the statistics stream is broken")
            try await loader.walkBack(stream, broken: broken) { r in
                let record = try StatisticsRecord.decode(
                    try RecordCodec.openStoreRecord(r, kind: .statistics, key: keys.statistics, stream: stream, broken: broken))
                func noteUser(_ u: StatisticsRecord.UserTag) {
                    if u.kind == 1 { professionals.insert(u.tag) } else { organisations[u.tag] = u.organisationKind }
                }
                switch record {
                case .vaultCreated(let time, let channel, let region, let creator):
                    if let creator { noteUser(creator) }
                    stats.vaults += 1
                    let week = calendar.dateInterval(of: .weekOfYear, for: time)?.start ?? time
                    stats.vaultsPerWeek[week, default: 0] += 1
                    stats.vaultsPerChannel[channel, default: 0] += 1
                    if let region { stats.vaultsPerRegion[region, default: 0] += 1 }
                case .document(let vault, let user, let byInsurer):
                    stats.documents += 1
                    if !byInsurer {
                        stats.documentsByOthersThanTheInsurer += 1
                        fed.insert(vault)
                    }
                    if let user { noteUser(user) }
                case .use(let user):
                    noteUser(user)
                case .none:
                    break
                }
                return true
            }
            stats.fedVaults = fed.count
            stats.distinctProfessionals = professionals.count
            stats.distinctOrganisations = organisations.count
            for kind in organisations.values { if let kind { stats.distinctOrganisationsByKind[kind, default: 0] += 1 } }
            // A close() during the walk wiped the keys it hashed with.
            try ensureOpen()
            return stats
        }
    }
}
