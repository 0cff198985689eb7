import Foundation
import Testing
@testable import PatientVault

/// The seeds' figures from the statistics stream alone (`Statistics`).
@Suite struct StatisticsTests {
    @Test func figuresOfTheSeedsFromTheStatisticsStreamOnly() async throws {
        let clock = ManualClock(Date(timeIntervalSince1970: 1_541_980_800))  // Monday 12 Nov 2018, 00:00 UTC
        var c = Fixtures.configuration(clock: clock)
        c.auditReviewers = [try SystemPrincipal("cnam-stats")]
        let t = try await TestStore(configuration: c, engine: testStorage)
        let store = t.store
        let pharmacy = Fixtures.pharmacy
        let channels: [(CreationChannel, Principal?)] = [
            (.pharmacy, pharmacy), (.pharmacy, Fixtures.pharmacist), (.patientOnline, nil), (.insurerAgent, Fixtures.insurer),
            (.healthProfessional, Fixtures.doctor), (.establishment, Fixtures.hospital),
        ]
        let regions: [Region] = [.ileDeFrance, .hautsDeFrance, .auvergneRhoneAlpes]
        var patients: [INS] = []
        for i in 0..<12 {
            if i == 6 { clock.advance(by: 7 * 86_400) }  // the second half a week later
            let p = Fixtures.ins("2" + String(format: "%012d", 910_000_000 + i * 17))
            let (channel, by) = channels[i % channels.count]
            try await store.createVault(for: p, as: by ?? .patient(p), channel: channel, region: regions[i % 3])
            patients.append(p)
        }
        // Vaults 0-2 fed by professionals (3, 4 and 3 documents); every vault
        // gets the insurer's history; vault 3 is also read by another doctor.
        for (i, count) in [(0, 3), (1, 4), (2, 3)] {
            for k in 0..<count {
                let author = k % 2 == 0 ? Fixtures.doctor : Fixtures.hospital
                _ = try await store.deposit(Fixtures.draft(), content: Data([UInt8(k)]), for: patients[i], as: author)
            }
        }
        for p in patients {
            _ = try await store.deposit(Fixtures.draft(category: .reimbursement), content: Data([1]), for: p, as: Fixtures.insurer)
        }
        try await store.authorise(Fixtures.otherDoctor, for: patients[3], as: .patient(patients[3]))
        _ = try await store.documents(for: patients[3], as: Fixtures.otherDoctor)
        _ = try await store.documents(for: patients[3], as: Fixtures.otherDoctor)
        // A replacement is not a new document.
        let first = try await store.documents(for: patients[0], as: Fixtures.doctor)[0]
        _ = try await store.replace(first.id, with: Fixtures.draft(), content: Data([9]), for: patients[0], as: first.author)

        let reviewer = Principal.auditReviewer(try SystemPrincipal("cnam-stats"))
        let s = try await store.statistics(as: reviewer)
        #expect(s.vaults == 12)
        #expect(s.vaultsPerWeek.values.sorted() == [6, 6])
        #expect(s.vaultsPerWeek.keys.min() == Date(timeIntervalSince1970: 1_541_980_800))
        #expect(s.vaultsPerChannel == [.pharmacy: 4, .patientOnline: 2, .insurerAgent: 2, .healthProfessional: 2, .establishment: 2])
        #expect(s.vaultsPerRegion == [.ileDeFrance: 4, .hautsDeFrance: 4, .auvergneRhoneAlpes: 4])
        #expect(s.documents == 10 + 12)
        #expect(s.fedVaults == 3)
        #expect(s.documentsByOthersThanTheInsurer == 10)
        #expect(abs(s.shareFedByOthersThanTheInsurer - 0.25) < 1e-9)
        #expect(abs(s.documentsPerFedVault - 10.0 / 3.0) < 1e-9)
        // Professionals: doctor (created, deposits), pharmacist (created),
        // otherDoctor (read). Organisations: pharmacy (created), hospital.
        #expect(s.distinctProfessionals == 3)
        #expect(s.distinctOrganisations == 2)
        #expect(s.distinctOrganisationsByKind == [.hospital: 1, .pharmacy: 1])
        // Reopened, the same figures; an unnamed reviewer is refused.
        let reopened = try await t.reopen(configuration: c)
        #expect(try await reopened.statistics(as: reviewer) == s)
        #expect(await code { _ = try await reopened.statistics(as: .auditReviewer(try SystemPrincipal("other"))) } == .accessDenied)
        #expect(await code { _ = try await reopened.statistics(as: Fixtures.doctor) } == .accessDenied)
        try await reopened.close()
    }

    @Test func regionsAreValidated() throws {
        #expect(throws: PatientVaultError.self) { try Region(code: "99") }
        #expect(try Region(code: "11") == .ileDeFrance)
        #expect(Region.all.count == 18)
    }
}
