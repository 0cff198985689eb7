import Foundation
import Testing
@testable import PatientVault
import VaultStorage

/// Statistics records do not tell, per vault on disk, what an operation was
/// (the review's finding: a new document had one and a replacement none; a
/// first access had one and a policy change none). Every group that writes
/// a vault's stream carries exactly one, and all seal to one size.
@Suite struct StatisticsShapeTests {
    @Test func everyVaultGroupCarriesOneStatisticsRecordOfOneSize() async throws {
        let t = try await TestStore(configuration: Fixtures.configuration(), storage: .folder)
        let alice = Fixtures.alice
        try await t.store.createVault(for: alice, as: Fixtures.pharmacist, channel: .pharmacy, region: .ileDeFrance)
        let doc = try await t.store.deposit(Fixtures.draft(), content: Data([1]), for: alice, as: Fixtures.doctor)
        _ = try await t.store.replace(doc.id, with: Fixtures.draft("v2"), content: Data([2]), for: alice, as: Fixtures.doctor)
        try await t.store.authorise(Fixtures.otherDoctor, for: alice, as: .patient(alice))
        _ = try await t.store.documents(for: alice, as: Fixtures.otherDoctor)  // a first access
        try await t.store.block(Fixtures.pharmacist, for: alice, as: .patient(alice))
        _ = try await t.store.deposit(Fixtures.draft(category: .reimbursement), content: Data([3]), for: alice, as: Fixtures.insurer)
        let vault = t.store.keys.vaultPseudonym(for: alice)
        let statistics = t.store.keys.statisticsStream
        try await t.store.close()
        let engine = try t.rawEngine()
        var vaultRecords = 0
        var statisticsSizes: [Int] = []
        try engine.scanFrames(from: LogPosition(segment: 1, offset: 0), only: { $0 == vault || $0 == statistics }) { r in
            if r.stream == vault { vaultRecords += 1 } else { statisticsSizes.append(r.payload.count) }
            return true
        }
        try await engine.close()
        // Creation, deposit, replacement, grant, first access, block, deposit.
        #expect(vaultRecords == 7)
        #expect(statisticsSizes.count == vaultRecords)
        #expect(Set(statisticsSizes).count == 1, "\(statisticsSizes)")
    }

    /// The largest record of each kind fits one padding block, so no kind
    /// is larger than another once sealed.
    @Test func everyKindFitsOneBlock() throws {
        let longestKind = OrganisationKind.allCases.max { $0.rawValue.utf8.count < $1.rawValue.utf8.count }!
        let user = StatisticsRecord.UserTag(kind: 2, organisationKind: longestKind, tag: [UInt8](repeating: 0xFF, count: 16))
        let longestChannel = CreationChannel.allCases.max { $0.rawValue.utf8.count < $1.rawValue.utf8.count }!
        let longestRegion = Region.all.max { $0.code.utf8.count < $1.code.utf8.count }!
        let records: [StatisticsRecord] = [
            .vaultCreated(time: Date(timeIntervalSince1970: 1e11), channel: longestChannel, region: longestRegion, creator: user),
            .document(vault: [UInt8](repeating: 1, count: 16), user: user, byInsurer: false),
            .use(user), .none,
        ]
        let block = RecordKind.statistics.paddingBlock
        for r in records {
            #expect(r.encoded().count < block, "\(r)")
            #expect(try StatisticsRecord.decode(r.encoded()) == r)
        }
    }
}
