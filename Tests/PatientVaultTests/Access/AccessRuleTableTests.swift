import Foundation
import Testing
@testable import PatientVault

/// The access decision as a table: every principal kind, flag, matrix
/// cell, block, grant state, override, break-glass case and forbidden
/// class, with the rule expected to decide.
@Suite struct AccessRuleTableTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var request: AccessRequest
        var allowed: Bool
        var rule: AccessRule
        var breakGlass = false
        var testDescription: String { name }
    }

    // MARK: - Fixtures

    static let holder = Fixtures.alice
    static let t0 = Date(timeIntervalSince1970: 1_750_000_000)
    static let day: TimeInterval = 86_400
    static func pro(_ rpps: String, _ profession: Profession) -> HealthProfessional {
        HealthProfessional(rpps: try! RPPSNumber(rpps), profession: profession)
    }
    static let grantedDoctor = pro("10100000001", .doctor)
    static let mtDoctor = pro("10100000002", .doctor)
    static let authorDoctor = pro("10100000003", .doctor)
    static let strangerDoctor = pro("10100000004", .doctor)
    static let teamNurse = pro("10100000005", .nurse)
    static let regulator = pro("10100000006", .doctor)
    static let hospital = Organisation(finess: try! FINESSNumber("750712184"), kind: .hospital)
    static let rep = LegalRepresentative(ins: Fixtures.bob, relationship: .parent)
    static let insurer = Principal.insurer(try! SystemPrincipal("cnam"))
    static let employer = Principal.employer(try! SystemPrincipal("acme-hr"))
    static let mutuelle = Principal.complementaryInsurer(try! SystemPrincipal("mutuelle-x"))
    static let reviewer = Principal.auditReviewer(try! SystemPrincipal("dpo"))

    /// A vault where the patient named a representative, a médecin
    /// traitant, a care-team nurse, and authorised one doctor and one hospital.
    static func basePolicy() -> VaultPolicy {
        var p = VaultPolicy()
        p.apply(.nameRepresentative(rep), at: t0)
        p.apply(.setMedecinTraitant(mtDoctor), at: t0)
        p.apply(.addToCareTeam(teamNurse), at: t0)
        p.apply(.authorise(.professional(grantedDoctor), until: nil), at: t0)
        p.apply(.authorise(.organisation(hospital), until: nil), at: t0)
        return p
    }

    static func document(
        _ category: DocumentCategory = .report, flags: ConfidentialityFlags = [], author: Principal = .professional(authorDoctor),
        depositedAt: Date = t0
    ) -> DocumentMetadata {
        DocumentMetadata(
            id: DocumentID(bytes: [UInt8](repeating: 7, count: 16)), version: 1,
            draft: DocumentDraft(typeCode: .consultationNote, category: category, title: "t", createdAt: t0, mimeType: "text/plain", confidentiality: flags),
            author: author, depositedAt: depositedAt, size: 1, contentHash: [], status: .current)
    }

    static func req(
        _ action: VaultAction = .readContent, _ principal: Principal, policy: VaultPolicy = basePolicy(),
        document: DocumentMetadata? = document(), purpose: AccessPurpose = .care, at time: Date = t0 + day,
        category: DocumentCategory? = nil, authoredAny: Bool = false, reviewer: Bool = false
    ) -> AccessRequest {
        AccessRequest(
            action: action, principal: principal, purpose: purpose, holder: holder, policy: policy, document: document,
            category: category, principalAuthoredAny: authoredAny, isConfiguredReviewer: reviewer, time: time)
    }

    static func allow(_ name: String, _ r: AccessRequest, _ rule: AccessRule, breakGlass: Bool = false) -> Case {
        Case(name: name, request: r, allowed: true, rule: rule, breakGlass: breakGlass)
    }
    static func deny(_ name: String, _ r: AccessRequest, _ rule: AccessRule) -> Case {
        Case(name: name, request: r, allowed: false, rule: rule)
    }

    // MARK: - The table

    static let principalKinds: [Case] = {
        let vaultLevel: [(String, Principal, Bool, AccessRule)] = [
            ("holder", .patient(holder), true, .patientIsHolder),
            ("another patient", .patient(Fixtures.bob), false, .notAuthorised),
            ("named representative", .representative(rep), true, .legalRepresentative),
            ("unnamed representative", .representative(LegalRepresentative(ins: Fixtures.ins("1600675000001"), relationship: .guardian)), false, .notAuthorised),
            ("authorised doctor", .professional(grantedDoctor), true, .authorisedByPatient),
            ("médecin traitant", .professional(mtDoctor), true, .medecinTraitant),
            ("care-team nurse", .professional(teamNurse), true, .careTeam),
            ("stranger doctor", .professional(strangerDoctor), false, .notAuthorised),
            ("authorised hospital", .organisation(hospital), true, .authorisedByPatient),
            ("unknown pharmacy", Fixtures.pharmacy, false, .notAuthorised),
            ("insurer", insurer, false, .forbiddenClass),
            ("employer", employer, false, .forbiddenClass),
            ("complementary insurer", mutuelle, false, .forbiddenClass),
            ("reviewer", reviewer, false, .notAuthorised),
            ("system", .system, false, .notAuthorised),
            ("regulator without break-glass", .emergencyRegulator(regulator), false, .notAuthorised),
        ]
        var out: [Case] = []
        for action in [VaultAction.listDocuments, .readVaultInfo] {
            for (name, p, ok, rule) in vaultLevel {
                let r = req(action, p, document: nil)
                out.append(ok ? allow("\(action) by \(name)", r, rule) : deny("\(action) by \(name)", r, rule))
            }
        }
        return out
    }()

    static let forbiddenClasses: [Case] = {
        var out: [Case] = []
        for (name, p) in [("insurer", insurer), ("employer", employer), ("complementary insurer", mutuelle)] {
            for action in [VaultAction.readMetadata, .readContent, .listVersions] {
                out.append(deny("\(name) \(action)", req(action, p), .forbiddenClass))
            }
            // Even as author of the document, even with break-glass.
            out.append(deny("\(name) reads own document", req(.readContent, p, document: document(.reimbursement, author: p)), .forbiddenClass))
            out.append(deny("\(name) manages access", req(.authorise, p, document: nil), .forbiddenClass))
        }
        out.append(allow("insurer deposits reimbursement", req(.deposit, insurer, document: nil, category: .reimbursement), .insurerDeposit))
        out.append(deny("insurer deposits a report", req(.deposit, insurer, document: nil, category: .report), .insurerDepositsReimbursementOnly))
        out.append(deny("employer deposits", req(.deposit, employer, document: nil, category: .certificate), .forbiddenClass))
        out.append(deny("complementary insurer deposits", req(.deposit, mutuelle, document: nil, category: .reimbursement), .forbiddenClass))
        return out
    }()

    /// Flags × readers. Expected per reader: (none, masked, hidden from
    /// patient, hidden from representatives, masked + hidden from representatives).
    static let flags: [Case] = {
        let flagSets: [(String, ConfidentialityFlags)] = [
            ("no flag", []), ("masked", [.maskedFromProfessionals]), ("hidden from patient", [.hiddenFromPatient]),
            ("hidden from representatives", [.hiddenFromLegalRepresentatives]),
            ("masked+hidden from representatives", [.maskedFromProfessionals, .hiddenFromLegalRepresentatives]),
        ]
        typealias E = (Bool, AccessRule)
        let readers: [(String, Principal, [E])] = [
            ("holder", .patient(holder), [
                (true, .patientIsHolder), (true, .patientIsHolder), (false, .hiddenFromPatient), (true, .patientIsHolder), (true, .patientIsHolder)]),
            ("representative", .representative(rep), [
                (true, .legalRepresentative), (true, .legalRepresentative), (false, .hiddenFromPatient),
                (false, .hiddenFromLegalRepresentatives), (false, .hiddenFromLegalRepresentatives)]),
            ("authorised doctor", .professional(grantedDoctor), [
                (true, .authorisedByPatient), (false, .maskedFromProfessionals), (true, .authorisedByPatient),
                (true, .authorisedByPatient), (false, .maskedFromProfessionals)]),
            ("médecin traitant", .professional(mtDoctor), [
                (true, .medecinTraitant), (true, .medecinTraitant), (true, .medecinTraitant), (true, .medecinTraitant), (true, .medecinTraitant)]),
            ("author", .professional(authorDoctor), [
                (true, .authorOfDocument), (true, .authorOfDocument), (true, .authorOfDocument), (true, .authorOfDocument), (true, .authorOfDocument)]),
            ("care-team nurse", .professional(teamNurse), [
                (true, .careTeam), (false, .maskedFromProfessionals), (true, .careTeam), (true, .careTeam), (false, .maskedFromProfessionals)]),
            ("authorised hospital", .organisation(hospital), [
                (true, .authorisedByPatient), (false, .maskedFromProfessionals), (true, .authorisedByPatient),
                (true, .authorisedByPatient), (false, .maskedFromProfessionals)]),
        ]
        var out: [Case] = []
        for (reader, p, expected) in readers {
            for ((flagName, f), (ok, rule)) in zip(flagSets, expected) {
                let r = req(.readContent, p, document: document(.report, flags: f))
                out.append(ok ? allow("\(reader), \(flagName)", r, rule) : deny("\(reader), \(flagName)", r, rule))
            }
        }
        return out
    }()

    /// Every profession (authorised) against three categories, written out.
    static let matrix: [Case] = {
        // report, summary, reimbursement
        let table: [(Profession, Bool, Bool, Bool)] = [
            (.doctor, true, true, true), (.midwife, true, true, true), (.pharmacist, false, true, true),
            (.dentist, true, false, true), (.nurse, true, true, false), (.physiotherapist, true, true, false),
            (.podiatrist, true, false, false), (.occupationalTherapist, true, false, false), (.psychomotorTherapist, true, false, false),
            (.speechTherapist, true, false, false), (.orthoptist, true, false, false), (.radiographer, true, false, false),
            (.medicalLaboratoryTechnician, true, false, false), (.hearingAidSpecialist, true, false, false), (.optician, true, false, false),
            (.orthotistProsthetist, true, false, false), (.dietitian, true, false, false), (.pharmacyTechnician, false, false, false),
            (.paramedic, false, true, false),
        ]
        var out: [Case] = []
        for (i, (profession, report, summary, reimbursement)) in table.enumerated() {
            let p = pro("1020000\(String(format: "%04d", i))", profession)
            var policy = basePolicy()
            policy.apply(.authorise(.professional(p), until: nil), at: t0)
            for (category, ok) in [(DocumentCategory.report, report), (.summary, summary), (.reimbursement, reimbursement)] {
                let r = req(.readContent, .professional(p), policy: policy, document: document(category))
                let name = "\(profession) reads \(category)"
                out.append(ok ? allow(name, r, .authorisedByPatient) : deny(name, r, .professionMatrix))
            }
        }
        // The author reads their own document whatever the matrix says.
        let dentist = pro("10300000001", .dentist)
        out.append(allow("dentist author reads own summary", req(.readContent, .professional(dentist), document: document(.summary, author: .professional(dentist))), .authorOfDocument))
        // Organisations have their own row.
        out.append(deny("hospital reads patient-deposited", req(.readContent, .organisation(hospital), document: document(.patientDeposited)), .professionMatrix))
        out.append(allow("hospital reads imaging", req(.readContent, .organisation(hospital), document: document(.medicalImaging)), .authorisedByPatient))
        return out
    }()

    static let blocking: [Case] = {
        var blocked = basePolicy()
        blocked.apply(.block(grantedDoctor.rpps), at: t0)
        blocked.apply(.block(authorDoctor.rpps), at: t0)
        blocked.apply(.block(teamNurse.rpps), at: t0)
        var mtBlocked = basePolicy()
        mtBlocked.blocked.insert(mtDoctor.rpps)  // cannot happen through the API; the rule still holds
        var unblocked = blocked
        unblocked.apply(.unblock(grantedDoctor.rpps), at: t0 + 2 * day)
        return [
            deny("blocked authorised doctor", req(.readContent, .professional(grantedDoctor), policy: blocked), .blockedByPatient),
            deny("blocked doctor lists", req(.listDocuments, .professional(grantedDoctor), policy: blocked, document: nil), .blockedByPatient),
            deny("blocked author", req(.readContent, .professional(authorDoctor), policy: blocked), .blockedByPatient),
            deny("blocked care-team nurse", req(.readContent, .professional(teamNurse), policy: blocked), .blockedByPatient),
            deny("blocked doctor with break-glass", req(.readContent, .professional(grantedDoctor), policy: blocked, purpose: .breakGlass(reason: try! BreakGlassReason("coma"))), .blockedByPatient),
            allow("médecin traitant cannot be blocked", req(.readContent, .professional(mtDoctor), policy: mtBlocked), .medecinTraitant),
            allow("unblocked doctor", req(.readContent, .professional(grantedDoctor), policy: unblocked, at: t0 + 3 * day), .authorisedByPatient),
            allow("blocked doctor still deposits", req(.deposit, .professional(grantedDoctor), policy: blocked, document: nil, category: .report), .depositByAuthor),
        ]
    }()

    static let grants: [Case] = {
        let doc = pro("10400000001", .doctor)
        var expiring = VaultPolicy()
        expiring.apply(.authorise(.professional(doc), until: t0 + 10 * day), at: t0)
        var revoked = expiring
        revoked.apply(.revoke(.professional(doc.rpps)), at: t0 + 5 * day)
        var regranted = revoked
        regranted.apply(.authorise(.professional(doc), until: nil), at: t0 + 7 * day)
        let p = Principal.professional(doc)
        return [
            deny("before the grant", req(.readContent, p, policy: expiring, at: t0 - day), .notAuthorised),
            allow("during the grant", req(.readContent, p, policy: expiring, at: t0 + day), .authorisedByPatient),
            allow("just before expiry", req(.readContent, p, policy: expiring, at: t0 + 10 * day - 1), .authorisedByPatient),
            deny("at expiry", req(.readContent, p, policy: expiring, at: t0 + 10 * day), .grantExpired),
            deny("after expiry", req(.readContent, p, policy: expiring, at: t0 + 20 * day), .grantExpired),
            allow("before revocation", req(.readContent, p, policy: revoked, at: t0 + 4 * day), .authorisedByPatient),
            deny("after revocation", req(.readContent, p, policy: revoked, at: t0 + 6 * day), .grantRevoked),
            deny("revoked, vault level", req(.listDocuments, p, policy: revoked, document: nil, at: t0 + 6 * day), .grantRevoked),
            allow("granted again", req(.readContent, p, policy: regranted, at: t0 + 8 * day), .authorisedByPatient),
            deny("expired organisation grant", {
                var o = VaultPolicy()
                o.apply(.authorise(.organisation(hospital), until: t0 + day), at: t0)
                return req(.readContent, .organisation(hospital), policy: o, at: t0 + 2 * day)
            }(), .grantExpired),
        ]
    }()

    static let breakGlass: [Case] = {
        var opposed = basePolicy()
        opposed.apply(.setBreakGlassOpposition(true), at: t0)
        let reason = AccessPurpose.breakGlass(reason: try! BreakGlassReason("unconscious on arrival"))
        return [
            allow("stranger doctor, break-glass", req(.readContent, .professional(strangerDoctor), purpose: reason), .breakGlass, breakGlass: true),
            allow("stranger doctor lists, break-glass", req(.listDocuments, .professional(strangerDoctor), document: nil, purpose: reason), .breakGlass, breakGlass: true),
            allow("regulator, break-glass", req(.readContent, .emergencyRegulator(regulator), purpose: reason), .breakGlass, breakGlass: true),
            deny("stranger doctor, break-glass opposed", req(.readContent, .professional(strangerDoctor), policy: opposed, purpose: reason), .breakGlassOpposed),
            deny("regulator, break-glass opposed", req(.readContent, .emergencyRegulator(regulator), policy: opposed, purpose: reason), .breakGlassOpposed),
            allow("authorised doctor does not need break-glass", req(.readContent, .professional(grantedDoctor), purpose: reason), .authorisedByPatient),
            deny("break-glass keeps masked documents masked", req(.readContent, .professional(strangerDoctor), document: document(flags: [.maskedFromProfessionals]), purpose: reason), .maskedFromProfessionals),
            deny("break-glass keeps the matrix", req(.readContent, .professional(pro("10500000001", .pharmacyTechnician)), document: document(.report), purpose: reason), .professionMatrix),
            deny("a patient cannot break glass", req(.readContent, .patient(Fixtures.bob), purpose: reason), .notAuthorised),
        ]
    }()

    static let hiddenTime: [Case] = {
        let hidden = document(.report, flags: [.hiddenFromPatient], depositedAt: t0)
        var released = basePolicy()
        released.apply(.releaseToPatient(hidden.id), at: t0 + 3 * day)
        var out: [Case] = []
        for (days, visible) in [(0.0, false), (1, false), (13.9, false), (14, false), (15, false), (29.9, false), (30, true), (31, true), (365, true)] {
            let r = req(.readContent, .patient(holder), document: hidden, at: t0 + days * day)
            out.append(visible ? allow("patient at day \(days)", r, .hiddenDocumentReleasedByTime) : deny("patient at day \(days)", r, .hiddenFromPatient))
        }
        out.append(deny("representative at day 20", req(.readContent, .representative(rep), document: hidden, at: t0 + 20 * day), .hiddenFromPatient))
        out.append(allow("representative at day 30", req(.readContent, .representative(rep), document: hidden, at: t0 + 30 * day), .hiddenDocumentReleasedByTime))
        out.append(allow("patient after release by the author", req(.readContent, .patient(holder), policy: released, document: hidden, at: t0 + 4 * day), .patientIsHolder))
        out.append(allow("author at day 0", req(.readContent, .professional(authorDoctor), document: hidden, at: t0), .authorOfDocument))
        out.append(allow("authorised doctor at day 0", req(.readContent, .professional(grantedDoctor), document: hidden, at: t0), .authorisedByPatient))
        return out
    }()

    static let management: [Case] = {
        var out: [Case] = []
        for action in [VaultAction.authorise, .revoke, .block, .setMedecinTraitant, .nameRepresentative, .setBreakGlassOpposition] {
            out.append(allow("holder \(action)", req(action, .patient(holder), document: nil), .patientIsHolder))
            out.append(allow("representative \(action)", req(action, .representative(rep), document: nil), .legalRepresentative))
            out.append(deny("médecin traitant \(action)", req(action, .professional(mtDoctor), document: nil), .onlyPatientManagesAccess))
            out.append(deny("another patient \(action)", req(action, .patient(Fixtures.bob), document: nil), .onlyPatientManagesAccess))
        }
        out.append(allow("author releases", req(.releaseToPatient, .professional(authorDoctor)), .authorOfDocument))
        out.append(deny("médecin traitant releases", req(.releaseToPatient, .professional(mtDoctor)), .onlyAuthorReleases))
        out.append(allow("author replaces", req(.replace, .professional(authorDoctor)), .authorOfDocument))
        out.append(deny("authorised doctor replaces", req(.replace, .professional(grantedDoctor)), .onlyAuthorReplaces))
        out.append(allow("holder reads the trail", req(.readAuditTrail, .patient(holder), document: nil), .patientIsHolder))
        out.append(deny("doctor reads the trail", req(.readAuditTrail, .professional(grantedDoctor), document: nil), .notAuthorised))
        out.append(allow("configured reviewer", req(.reviewActivity, reviewer, document: nil, reviewer: true), .configuredReviewer))
        out.append(deny("unconfigured reviewer", req(.reviewActivity, reviewer, document: nil), .notAReviewer))
        out.append(deny("doctor reviews activity", req(.reviewActivity, .professional(mtDoctor), document: nil), .notAReviewer))
        out.append(allow("system records a notice", req(.hiddenDocumentNotice, .system, document: nil), .systemEvent))
        out.append(deny("a doctor cannot act as the system", req(.automaticRelease, .professional(mtDoctor), document: nil), .notAuthorised))
        return out
    }()

    /// Creation, the remaining policy calls, verification, history and statistics.
    static let others: [Case] = {
        func create(_ p: Principal, _ channel: CreationChannel) -> AccessRequest {
            var r = req(.createVault, p, document: nil)
            r.channel = channel
            return r
        }
        return [
            allow("patient creates online", create(.patient(holder), .patientOnline), .creationChannelFits),
            allow("pharmacist creates at the counter", create(.professional(pro("10003456789", .pharmacist)), .pharmacy), .creationChannelFits),
            deny("doctor creates as the patient online", create(.professional(strangerDoctor), .patientOnline), .creationChannelMismatch),
            allow("holder unblocks", req(.unblock, .patient(holder), document: nil), .patientIsHolder),
            deny("médecin traitant updates the care team", req(.updateCareTeam, .professional(mtDoctor), document: nil), .onlyPatientManagesAccess),
            allow("representative removes a representative", req(.removeRepresentative, .representative(rep), document: nil), .legalRepresentative),
            allow("holder verifies the trail", req(.verifyAuditTrail, .patient(holder), document: nil), .patientIsHolder),
            deny("representative verifies the trail", req(.verifyAuditTrail, .representative(rep), document: nil), .notAuthorised),
            allow("configured reviewer queries access history", req(.queryAccessHistory, reviewer, document: nil, reviewer: true), .configuredReviewer),
            deny("insurer queries access history", req(.queryAccessHistory, insurer, document: nil), .forbiddenClass),
            allow("configured reviewer reads statistics", req(.readStatistics, reviewer, document: nil, reviewer: true), .configuredReviewer),
            deny("doctor reads statistics", req(.readStatistics, .professional(mtDoctor), document: nil), .notAReviewer),
        ]
    }()

    /// Erasure (CSP R1111-51): the author alone, whoever else may read.
    static let erasure: [Case] = {
        let patients = document(author: .patient(holder))
        let representatives = document(author: .representative(rep))
        var blocked = basePolicy()
        blocked.apply(.block(authorDoctor.rpps), at: t0)
        return [
            allow("patient erases their own deposit", req(.erase, .patient(holder), document: patients), .patientIsHolder),
            deny("patient erases a doctor's document", req(.erase, .patient(holder)), .onlyAuthorErases),
            allow("author erases their document", req(.erase, .professional(authorDoctor)), .authorOfDocument),
            allow("blocked author still erases at the patient's request", req(.erase, .professional(authorDoctor), policy: blocked), .authorOfDocument),
            deny("médecin traitant erases another's document", req(.erase, .professional(mtDoctor)), .onlyAuthorErases),
            deny("authorised doctor erases the patient's deposit", req(.erase, .professional(grantedDoctor), document: patients), .onlyAuthorErases),
            allow("representative erases their own deposit", req(.erase, .representative(rep), document: representatives), .legalRepresentative),
            deny("representative erases the patient's deposit", req(.erase, .representative(rep), document: patients), .onlyAuthorErases),
            deny("hospital erases a doctor's document", req(.erase, .organisation(hospital)), .onlyAuthorErases),
            deny("insurer erases its own reimbursement data", req(.erase, insurer, document: document(.reimbursement, author: insurer)), .forbiddenClass),
            deny("another patient erases", req(.erase, .patient(Fixtures.bob), document: document(author: .patient(Fixtures.bob))), .notAuthorised),
            deny("erasure without a document", req(.erase, .patient(holder), document: nil), .unknownDocument),
        ]
    }()

    /// Closure (at the patient's request or on death), reopening, heirs,
    /// destruction (CSP L1111-18).
    static let lifecycle: [Case] = {
        var closed = basePolicy()
        closed.apply(.closeVault(.patientRequest), at: t0, by: .patient(holder))
        var blockedGranted = basePolicy()
        blockedGranted.apply(.block(grantedDoctor.rpps), at: t0)
        var dead = basePolicy()
        dead.apply(.closeVault(.death), at: t0, by: .professional(mtDoctor))
        let heir = Fixtures.bob
        var inherited = dead
        inherited.apply(.authoriseHeir(heir), at: t0, by: reviewer)
        let hidden = document(flags: [.hiddenFromPatient], depositedAt: t0)
        return [
            allow("patient closes", req(.closeVault, .patient(holder), document: nil), .patientIsHolder),
            allow("representative closes", req(.closeVault, .representative(rep), document: nil), .legalRepresentative),
            deny("doctor closes at the patient's request", req(.closeVault, .professional(mtDoctor), document: nil), .onlyPatientManagesAccess),
            deny("insurer closes", req(.closeVault, insurer, document: nil), .forbiddenClass),
            allow("médecin traitant records a death", req(.recordDeath, .professional(mtDoctor), document: nil), .certifiesDeath),
            allow("authorised doctor records a death", req(.recordDeath, .professional(grantedDoctor), document: nil), .certifiesDeath),
            deny("a doctor the patient never let in records a death", req(.recordDeath, .professional(strangerDoctor), document: nil), .onlyDoctorCertifiesDeath),
            deny("a blocked doctor records a death", req(.recordDeath, .professional(grantedDoctor), policy: blockedGranted, document: nil), .onlyDoctorCertifiesDeath),
            allow("a death recorded in a vault the patient closed", req(.recordDeath, .professional(mtDoctor), policy: closed, document: nil), .certifiesDeath),
            deny("employer deposits into a closed vault: its own rule, not the closure", req(.deposit, employer, policy: closed, document: nil, category: .report), .forbiddenClass),
            deny("nurse records a death", req(.recordDeath, .professional(teamNurse), document: nil), .onlyDoctorCertifiesDeath),
            deny("patient records a death", req(.recordDeath, .patient(holder), document: nil), .onlyDoctorCertifiesDeath),
            deny("hospital records a death", req(.recordDeath, .organisation(hospital), document: nil), .onlyDoctorCertifiesDeath),
            deny("close a closed vault", req(.closeVault, .patient(holder), policy: closed, document: nil), .vaultClosed),
            deny("deposit into a closed vault", req(.deposit, .professional(authorDoctor), policy: closed, document: nil, category: .report), .vaultClosed),
            deny("replace in a closed vault", req(.replace, .professional(authorDoctor), policy: closed), .vaultClosed),
            deny("erase in a closed vault", req(.erase, .professional(authorDoctor), policy: closed), .vaultClosed),
            deny("authorise in a closed vault", req(.authorise, .patient(holder), policy: closed, document: nil), .vaultClosed),
            allow("read a closed vault", req(.readContent, .patient(holder), policy: closed), .patientIsHolder),
            allow("authorised doctor reads a closed vault", req(.readContent, .professional(grantedDoctor), policy: closed), .authorisedByPatient),
            allow("patient reopens", req(.reopenVault, .patient(holder), policy: closed, document: nil), .patientIsHolder),
            deny("doctor reopens what the patient closed", req(.reopenVault, .professional(mtDoctor), policy: closed, document: nil), .onlyPatientManagesAccess),
            allow("doctor corrects a death recorded by mistake", req(.reopenVault, .professional(mtDoctor), policy: dead, document: nil), .certifiesDeath),
            deny("representative reopens after death", req(.reopenVault, .representative(rep), policy: dead, document: nil), .onlyDoctorCertifiesDeath),
            allow("reviewer authorises an heir", req(.authoriseHeir, reviewer, policy: dead, document: nil, reviewer: true), .configuredReviewer),
            deny("doctor authorises an heir", req(.authoriseHeir, .professional(mtDoctor), policy: dead, document: nil), .notAReviewer),
            deny("insurer authorises an heir", req(.authoriseHeir, insurer, policy: dead, document: nil), .forbiddenClass),
            allow("heir reads after death", req(.readContent, .patient(heir), policy: inherited), .heirOfDeceased),
            deny("heir reads a document still hidden from the patient", req(.readContent, .patient(heir), policy: inherited, document: hidden, at: t0 + day), .hiddenFromPatient),
            deny("heir not yet authorised", req(.readContent, .patient(heir), policy: dead), .notAuthorised),
            allow("configured reviewer destroys", req(.destroyVault, reviewer, policy: closed, document: nil, reviewer: true), .configuredReviewer),
            allow("the store's job destroys", req(.destroyVault, .system, policy: closed, document: nil), .systemEvent),
            deny("patient destroys", req(.destroyVault, .patient(holder), policy: closed, document: nil), .notAReviewer),
            deny("system authorises an heir", req(.authoriseHeir, .system, policy: dead, document: nil), .notAReviewer),
            allow("configured reviewer rotates the signing key", req(.rotateSigningKey, reviewer, document: nil, reviewer: true), .configuredReviewer),
            deny("patient rotates the signing key", req(.rotateSigningKey, .patient(holder), document: nil), .notAReviewer),
            allow("configured reviewer rotates the master key", req(.rotateMasterKey, reviewer, document: nil, reviewer: true), .configuredReviewer),
            deny("unconfigured reviewer rotates the master key", req(.rotateMasterKey, reviewer, document: nil), .notAReviewer),
            allow("patient exports their vault", req(.exportVault, .patient(holder), document: nil), .patientIsHolder),
            deny("médecin traitant exports the vault", req(.exportVault, .professional(mtDoctor), document: nil), .notAuthorised),
            deny("representative exports the vault", req(.exportVault, .representative(rep), document: nil), .notAuthorised),
            allow("patient rotates their vault key", req(.rotateVaultKey, .patient(holder), document: nil), .patientIsHolder),
            allow("configured reviewer rotates a vault key", req(.rotateVaultKey, reviewer, document: nil, reviewer: true), .configuredReviewer),
            deny("médecin traitant rotates the vault key", req(.rotateVaultKey, .professional(mtDoctor), document: nil), .notAuthorised),
            deny("representative rotates the vault key", req(.rotateVaultKey, .representative(rep), document: nil), .notAuthorised),
            allow("patient imports their vault", req(.importVault, .patient(holder), document: nil), .patientIsHolder),
            deny("médecin traitant imports the vault", req(.importVault, .professional(mtDoctor), document: nil), .notAuthorised),
            allow("configured reviewer compacts", req(.compact, reviewer, document: nil, reviewer: true), .configuredReviewer),
            deny("unconfigured reviewer compacts", req(.compact, reviewer, document: nil), .notAReviewer),
            deny("patient compacts", req(.compact, .patient(holder), document: nil), .notAReviewer),
            allow("configured reviewer scrubs", req(.scrub, reviewer, document: nil, reviewer: true), .configuredReviewer),
            deny("unconfigured reviewer scrubs", req(.scrub, reviewer, document: nil), .notAReviewer),
            deny("patient scrubs", req(.scrub, .patient(holder), document: nil), .notAReviewer),
        ]
    }()

    static let all: [Case] = principalKinds + forbiddenClasses + flags + matrix + blocking + grants + breakGlass + hiddenTime + management
        + others + erasure + lifecycle

    /// The table is large enough when every rule the decision can give
    /// is expected by some case (the rules the pipeline gives, outside the
    /// decision, are the exceptions), and every action is decided at least
    /// once: a rule or action left out is a behaviour no case pins down.
    @Test func theTableCoversEveryRuleAndAction() {
        let outsideTheDecision: Set<AccessRule> = [.invalidRequest, .unknownDocument, .vaultAlreadyExists]
        let expected = Set(Self.all.map(\.rule))
        for rule in AccessRule.allCases where !outsideTheDecision.contains(rule) {
            #expect(expected.contains(rule), "no case expects \(rule)")
        }
        let actions = Set(Self.all.map(\.request.action))
        for action in VaultAction.allCases {
            #expect(actions.contains(action), "no case decides \(action)")
        }
    }

    @Test(arguments: all)
    func decision(_ c: Case) {
        let d = AccessPolicy.decide(c.request)
        #expect(d.isAllowed == c.allowed, "\(c.name): got \(d.rule)")
        #expect(d.rule == c.rule, "\(c.name)")
        #expect(d.isBreakGlass == c.breakGlass, "\(c.name)")
    }

    /// Every document-reading action follows the same rules as reading content.
    @Test(arguments: [VaultAction.readMetadata, .listVersions])
    func otherReadsFollowTheSameRules(_ action: VaultAction) {
        for c in Self.flags + Self.matrix {
            var r = c.request
            r.action = action
            #expect(AccessPolicy.decide(r).isAllowed == c.allowed, "\(c.name)")
        }
    }
}
