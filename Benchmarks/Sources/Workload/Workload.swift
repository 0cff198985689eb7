// The seeds' workload: one week of the national service at its late-2018
// peak, generated from a fixed seed, replayed against a store, and the
// figures the store computes compared with what the generator put in.

import Foundation
import PatientVault
import PatientVaultTesting
import Synchronization

/// SplitMix64: small, fast and the same on every machine.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The reviewer the benchmarks and the replay configure.
public let benchmarkReviewer = try! SystemPrincipal("benchmark-reviewer")

/// What one vault goes through during the week.
public struct VaultPlan: Sendable {
    public var index: Int
    public var createdAt: Date
    public var channel: CreationChannel
    public var creator: Principal?      // nil: the patient, online
    public var region: Region
    public var documents: [(author: Principal, size: Int, category: DocumentCategory)]
    public var insurerHistory: Bool
    public var medecinTraitant: HealthProfessional?
    public var deniedReader: Principal?
    public var breakGlassReader: Principal?
}

/// The generated week and the figures it must produce.
public struct SeedsWeek: Sendable {
    public static let vaultCount = 240_090
    public static let start = Date(timeIntervalSince1970: 1_541_980_800)  // Monday 12 November 2018, 00:00 UTC

    public var plans: [VaultPlan]
    public var expected: StoreStatistics
    public var contentBytes: Int

    /// National channel mix, Nov.–Dec. 2018: pharmacists 39 %, patients
    /// online 39 %, insurer agents 18 %, professionals and establishments 4 %.
    static let channelMix: [(CreationChannel, Double)] = [
        (.pharmacy, 0.39), (.patientOnline, 0.39), (.insurerAgent, 0.18), (.healthProfessional, 0.03), (.establishment, 0.01),
    ]

    /// Regional spread, roughly by population.
    static let regionWeights: [(String, Double)] = [
        ("11", 18.2), ("84", 12.0), ("32", 9.0), ("75", 9.0), ("76", 8.8), ("44", 8.2), ("93", 7.6), ("52", 5.7),
        ("53", 5.0), ("28", 5.0), ("27", 4.2), ("24", 3.8), ("04", 1.3), ("94", 0.5), ("01", 0.6), ("02", 0.5),
        ("03", 0.4), ("06", 0.4),
    ]

    /// Generates the week. `scale` < 1 replays a fraction (for quick runs).
    public static func generate(seed: UInt64 = 2018, scale: Double = 1) -> SeedsWeek {
        var rng = SeededGenerator(seed: seed)
        let count = max(100, Int((Double(vaultCount) * scale).rounded()))
        // Exact channel counts (largest remainder), shuffled.
        var channels: [CreationChannel] = []
        var assigned = 0
        for (i, (channel, share)) in channelMix.enumerated() {
            let n = i == channelMix.count - 1 ? count - assigned : Int((Double(count) * share).rounded())
            channels += Array(repeating: channel, count: n)
            assigned += n
        }
        channels.shuffle(using: &rng)
        let totalWeight = regionWeights.reduce(0) { $0 + $1.1 }
        func region() -> Region {
            var x = Double.random(in: 0..<totalWeight, using: &rng)
            for (code, w) in regionWeights {
                if x < w { return try! Region(code: code) }
                x -= w
            }
            return .ileDeFrance
        }
        // Pools of users (sizes in the order of one department's × a few).
        let doctors = 4_000, pharmacists = 3_000, nurses = 1_500, pharmacies = 6_000, hospitals = 300
        func doctor(_ i: Int) -> Principal { .doctor(i) }
        func pharmacist(_ i: Int) -> Principal { .pharmacist(100_000 + i) }
        func nurse(_ i: Int) -> Principal { .nurse(200_000 + i) }
        func pharmacy(_ i: Int) -> Principal { .pharmacy(i) }
        func hospital(_ i: Int) -> Principal { .hospital(50_000 + i) }

        var expected = StoreStatistics()
        var usedProfessionals = Set<Principal>()
        var usedOrganisations = Set<Principal>()
        var plans: [VaultPlan] = []
        plans.reserveCapacity(count)
        var contentBytes = 0
        let fedCount = Int((Double(count) * 0.18).rounded())
        var fedFlags = Array(repeating: true, count: fedCount) + Array(repeating: false, count: count - fedCount)
        fedFlags.shuffle(using: &rng)
        let step = 7 * 86_400.0 / Double(count)
        for i in 0..<count {
            let channel = channels[i]
            let creator: Principal? = switch channel {
            case .pharmacy: Bool.random(using: &rng) ? pharmacist(Int.random(in: 0..<pharmacists, using: &rng)) : pharmacy(Int.random(in: 0..<pharmacies, using: &rng))
            case .patientOnline: nil
            case .insurerAgent: Principal.healthInsurer
            case .healthProfessional: doctor(Int.random(in: 0..<doctors, using: &rng))
            case .establishment: hospital(Int.random(in: 0..<hospitals, using: &rng))
            }
            var plan = VaultPlan(
                index: i, createdAt: start.addingTimeInterval(Double(i) * step), channel: channel, creator: creator,
                region: region(), documents: [], insurerHistory: Double.random(in: 0..<1, using: &rng) < 0.5,
                medecinTraitant: nil, deniedReader: nil, breakGlassReader: nil)
            if let creator {
                if case .professional = creator { usedProfessionals.insert(creator) }
                if case .organisation = creator { usedOrganisations.insert(creator) }
            }
            if fedFlags[i] {
                for _ in 0..<Int.random(in: 3...4, using: &rng) {
                    let author: Principal
                    let category: DocumentCategory
                    switch Int.random(in: 0..<10, using: &rng) {
                    case 0..<4: author = doctor(Int.random(in: 0..<doctors, using: &rng)); category = .report
                    case 4..<6: author = hospital(Int.random(in: 0..<hospitals, using: &rng)); category = .summary
                    case 6..<8: author = pharmacist(Int.random(in: 0..<pharmacists, using: &rng)); category = .dispensation
                    case 8: author = nurse(Int.random(in: 0..<nurses, using: &rng)); category = .carePlan
                    default: author = doctor(Int.random(in: 0..<doctors, using: &rng)); category = .medicalImaging
                    }
                    // Sizes: mostly a few KiB, some tens of KiB, a few MiB.
                    let r = Double.random(in: 0..<1, using: &rng)
                    let size = r < 0.002 ? Int.random(in: (1 << 20)...(3 << 20), using: &rng)
                        : r < 0.10 ? Int.random(in: (16 << 10)...(128 << 10), using: &rng)
                        : Int.random(in: (2 << 10)...(12 << 10), using: &rng)
                    plan.documents.append((author, size, category))
                    contentBytes += size
                    if case .professional = author { usedProfessionals.insert(author) } else { usedOrganisations.insert(author) }
                }
                // Reads: a médecin traitant for a third of fed vaults; a
                // refused stranger for 5 %; break-glass for 0.2 %.
                if Double.random(in: 0..<1, using: &rng) < 0.33, case .professional(let p) = doctor(Int.random(in: 0..<doctors, using: &rng)) {
                    plan.medecinTraitant = p
                    usedProfessionals.insert(.professional(p))
                }
                if Double.random(in: 0..<1, using: &rng) < 0.05 {
                    // A nurse who wrote nothing in this vault (an author may look).
                    var n = nurse(Int.random(in: 0..<nurses, using: &rng))
                    while plan.documents.contains(where: { $0.author == n }) { n = nurse(Int.random(in: 0..<nurses, using: &rng)) }
                    plan.deniedReader = n
                }
                if Double.random(in: 0..<1, using: &rng) < 0.002 {
                    let urgent = doctor(Int.random(in: 0..<doctors, using: &rng))
                    plan.breakGlassReader = urgent
                    usedProfessionals.insert(urgent)
                }
                expected.fedVaults += 1
                expected.documentsByOthersThanTheInsurer += plan.documents.count
            }
            if plan.insurerHistory { contentBytes += 2048 }
            expected.vaults += 1
            expected.vaultsPerChannel[channel, default: 0] += 1
            expected.vaultsPerRegion[plan.region, default: 0] += 1
            expected.documents += plan.documents.count + (plan.insurerHistory ? 1 : 0)
            plans.append(plan)
        }
        expected.vaultsPerWeek = [start: count]
        expected.distinctProfessionals = usedProfessionals.count
        expected.distinctOrganisations = usedOrganisations.count
        for o in usedOrganisations {
            if case .organisation(let org) = o { expected.distinctOrganisationsByKind[org.kind, default: 0] += 1 }
        }
        return SeedsWeek(plans: plans, expected: expected, contentBytes: contentBytes)
    }

    /// Replays the week with `concurrency` tasks; returns the operation count.
    public func replay(on store: VaultStore, clock: ManualClock, concurrency: Int = 64) async throws -> Int {
        let next = Counter()
        let operations = Counter()
        let plans = self.plans
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var ops = 0
                    while true {
                        let i = next.value.add(1, ordering: .relaxed).oldValue
                        guard i < plans.count else { break }
                        ops += try await Self.run(plans[i], on: store, clock: clock)
                    }
                    operations.value.add(ops, ordering: .relaxed)
                }
            }
            try await group.waitForAll()
        }
        return operations.value.load(ordering: .relaxed)
    }

    static func run(_ plan: VaultPlan, on store: VaultStore, clock: ManualClock) async throws -> Int {
        clock.set(plan.createdAt)
        let ins = INS.example(plan.index)
        let patient = Principal.patient(ins)
        try await store.createVault(for: ins, as: plan.creator ?? patient, channel: plan.channel, region: plan.region)
        var ops = 1
        if plan.insurerHistory {
            _ = try await store.deposit(
                DocumentDraft(typeCode: DocumentTypeCode(code: "REMB"), category: .reimbursement, title: "Historique de remboursements",
                              createdAt: plan.createdAt, mimeType: "application/json"),
                content: Data(count: 2048), for: ins, as: Principal.healthInsurer)
            ops += 1
        }
        var ids: [DocumentID] = []
        for (k, d) in plan.documents.enumerated() {
            let m = try await store.deposit(
                DocumentDraft(typeCode: .consultationNote, category: d.category, title: "Document \(k)",
                              createdAt: plan.createdAt, mimeType: "application/pdf"),
                content: Data(repeating: UInt8(truncatingIfNeeded: plan.index &+ k), count: d.size), for: ins, as: d.author)
            ids.append(m.id)
            ops += 1
        }
        if let mt = plan.medecinTraitant {
            try await store.setMedecinTraitant(.professional(mt), for: ins, as: patient)
            let listed = try await store.documents(for: ins, as: .professional(mt))
            if let first = listed.first(where: { $0.size < 64 << 10 }) {
                _ = try await store.content(of: first.id, for: ins, as: .professional(mt))
                ops += 1
            }
            ops += 2
        }
        if let stranger = plan.deniedReader {
            let refused = await Self.isRefused { _ = try await store.documents(for: ins, as: stranger) }
            guard refused else { throw WorkloadError.unexpectedAccess }
            ops += 1
        }
        if let urgent = plan.breakGlassReader {
            _ = try await store.documents(for: ins, as: urgent, purpose: .breakGlass(reason: try BreakGlassReason("unconscious on arrival")))
            ops += 1
        }
        return ops
    }

    static func isRefused(_ body: () async throws -> Void) async -> Bool {
        do {
            try await body()
            return false
        } catch {
            return (error as? PatientVaultError)?.code == .accessDenied
        }
    }

    /// Compares the store's figures with the generator's: exact for counts,
    /// to the percent for shares. Returns the lines of a report and whether
    /// everything matched.
    public func compare(_ s: StoreStatistics) -> (lines: [String], ok: Bool) {
        var lines: [String] = []
        var ok = true
        func check(_ name: String, _ got: some Equatable & CustomStringConvertible, _ want: some Equatable & CustomStringConvertible, _ same: Bool) {
            lines.append("\(same ? "ok  " : "FAIL") \(name): store \(got), generator \(want)")
            ok = ok && same
        }
        let e = expected
        check("vaults created", s.vaults, e.vaults, s.vaults == e.vaults)
        check("vaults per week", s.vaultsPerWeek.values.sorted().description, e.vaultsPerWeek.values.sorted().description, s.vaultsPerWeek == e.vaultsPerWeek)
        for (channel, _) in Self.channelMix {
            let got = s.vaultsPerChannel[channel] ?? 0, want = e.vaultsPerChannel[channel] ?? 0
            let share = String(format: "%.1f %%", 100 * Double(got) / Double(max(1, s.vaults)))
            check("channel \(channel.rawValue) (\(share))", got, want, got == want)
        }
        for region in Region.all {
            let got = s.vaultsPerRegion[region] ?? 0, want = e.vaultsPerRegion[region] ?? 0
            if got != want || region == .ileDeFrance || region == .hautsDeFrance || region == .auvergneRhoneAlpes {
                check("region \(region.name)", got, want, got == want)
            }
        }
        let regionsMatch = s.vaultsPerRegion == e.vaultsPerRegion
        check("all 18 regions", regionsMatch ? "identical" : "different", "identical", regionsMatch)
        check("documents", s.documents, e.documents, s.documents == e.documents)
        check("fed vaults", s.fedVaults, e.fedVaults, s.fedVaults == e.fedVaults)
        let shareGot = String(format: "%.0f %%", 100 * s.shareFedByOthersThanTheInsurer)
        let shareWant = String(format: "%.0f %%", 100 * e.shareFedByOthersThanTheInsurer)
        check("share fed by others than the insurer", shareGot, shareWant, shareGot == shareWant)
        let perGot = String(format: "%.2f", s.documentsPerFedVault), perWant = String(format: "%.2f", e.documentsPerFedVault)
        check("documents per fed vault", perGot, perWant, perGot == perWant)
        check("distinct professionals", s.distinctProfessionals, e.distinctProfessionals, s.distinctProfessionals == e.distinctProfessionals)
        check("distinct organisations", s.distinctOrganisations, e.distinctOrganisations, s.distinctOrganisations == e.distinctOrganisations)
        let kinds = s.distinctOrganisationsByKind == e.distinctOrganisationsByKind
        check("organisations by kind", s.distinctOrganisationsByKind.description, e.distinctOrganisationsByKind.description, kinds)
        return (lines, ok)
    }
}

/// The replay saw something the plan did not expect.
public enum WorkloadError: Error {
    case unexpectedAccess
}

/// A shared counter.
public final class Counter: Sendable {
    public let value = Atomic<Int>(0)
    public init() {}
}

extension DocumentMetadata {
    /// A document's metadata as a decision sees it, for benchmarks of the decision.
    public static func sample(author: Principal, category: DocumentCategory = .report, flags: ConfidentialityFlags = []) -> DocumentMetadata {
        DocumentMetadata(
            id: try! DocumentID("00112233445566778899aabbccddeeff"), version: 1,
            draft: DocumentDraft(typeCode: .consultationNote, category: category, title: "t", createdAt: Date(), mimeType: "text/plain", confidentiality: flags),
            author: author, depositedAt: Date(), size: 1, contentHash: [])
    }
}
