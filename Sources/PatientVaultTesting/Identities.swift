import PatientVault

// Valid identifiers and principals for tests: deterministic (`example(n)`,
// the same value for the same `n`, different values for different `n`) or
// random (`random(using:)`). Valid in form only: nothing stops one from
// matching a real person's number, so keep them out of production data.

extension INS {
    /// A valid INS, the same for the same `n`: a woman born in 1984, abroad
    /// (department 99), order number `n` (taken modulo 1,000,000), with its key.
    public static func example(_ n: Int) -> INS {
        let nir = "28405" + "99" + String(format6(wrapped(n, 1_000_000)))
        return try! INS(nir + key(nir))
    }

    /// A random valid INS.
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> INS {
        let sex = Bool.random(using: &generator) ? "1" : "2"
        let year = String(Int.random(in: 0...99, using: &generator)).leftPadded(2)
        let month = String(Int.random(in: 1...12, using: &generator)).leftPadded(2)
        let department = String(Int.random(in: 1...95, using: &generator)).leftPadded(2)
        let rest = String(Int.random(in: 1...999_999, using: &generator)).leftPadded(6)
        let nir = sex + year + month + department + rest
        return try! INS(nir + key(nir))
    }

    /// A random valid INS, from the system's generator.
    public static func random() -> INS {
        var g = SystemRandomNumberGenerator()
        return random(using: &g)
    }

    private static func key(_ nir: String) -> String {
        String(INS.key(forNIR: nir)!).leftPadded(2)
    }
}

extension RPPSNumber {
    /// A valid RPPS number (`10` then 9 digits: `n` modulo 10⁹), the same
    /// for the same `n`.
    public static func example(_ n: Int) -> RPPSNumber {
        try! RPPSNumber("10" + String(wrapped(n, 1_000_000_000)).leftPadded(9))
    }
}

extension FINESSNumber {
    /// A valid FINESS number (department 99, then 7 digits: `n` modulo 10⁷),
    /// the same for the same `n`.
    public static func example(_ n: Int) -> FINESSNumber {
        try! FINESSNumber("99" + String(wrapped(n, 10_000_000)).leftPadded(7))
    }
}

extension Principal {
    // Each kind of principal has its own block of a million numbers, so
    // that two builders never give the same identifier: `n` is taken
    // modulo 1,000,000 (0 to 999,999 are all different).

    /// A doctor (RPPS `example(n)`, `n` modulo 10⁶).
    public static func doctor(_ n: Int = 1) -> Principal {
        .professional(HealthProfessional(rpps: .example(wrapped(n, block)), profession: .doctor))
    }
    /// A pharmacist (RPPS `example(1_000_000 + n)`, `n` modulo 10⁶).
    public static func pharmacist(_ n: Int = 1) -> Principal {
        .professional(HealthProfessional(rpps: .example(block + wrapped(n, block)), profession: .pharmacist))
    }
    /// A nurse (RPPS `example(2_000_000 + n)`, `n` modulo 10⁶).
    public static func nurse(_ n: Int = 1) -> Principal {
        .professional(HealthProfessional(rpps: .example(2 * block + wrapped(n, block)), profession: .nurse))
    }
    /// A professional of `profession` (RPPS `example((3 + i) × 1_000_000 +
    /// n)`, `i` the profession's place in `Profession.allCases`, `n` modulo
    /// 10⁶): two professions never share a number, nor does one of them
    /// with ``doctor(_:)``, ``pharmacist(_:)`` or ``nurse(_:)``.
    public static func professional(_ profession: Profession, _ n: Int = 1) -> Principal {
        let i = Profession.allCases.firstIndex(of: profession)!
        return .professional(HealthProfessional(rpps: .example((3 + i) * block + wrapped(n, block)), profession: profession))
    }
    /// A hospital (FINESS `example(n)`, `n` modulo 10⁶).
    public static func hospital(_ n: Int = 1) -> Principal {
        .organisation(Organisation(finess: .example(wrapped(n, block)), kind: .hospital))
    }
    /// A pharmacy (FINESS `example(1_000_000 + n)`, `n` modulo 10⁶).
    public static func pharmacy(_ n: Int = 1) -> Principal {
        .organisation(Organisation(finess: .example(block + wrapped(n, block)), kind: .pharmacy))
    }
    /// A laboratory (FINESS `example(2_000_000 + n)`, `n` modulo 10⁶).
    public static func laboratory(_ n: Int = 1) -> Principal {
        .organisation(Organisation(finess: .example(2 * block + wrapped(n, block)), kind: .laboratory))
    }
    /// The health insurer's systems (`cnam`).
    public static var healthInsurer: Principal { .insurer(try! SystemPrincipal("cnam")) }
    /// An audit reviewer (``SystemPrincipal/reviewer(_:)``, which is what
    /// `Configuration/auditReviewers` lists).
    public static func reviewer(_ n: Int = 1) -> Principal { .auditReviewer(.reviewer(n)) }
}

extension SystemPrincipal {
    /// An audit reviewer's system name (`reviewer-n`), for
    /// `Configuration/auditReviewers`: `c.auditReviewers = [.reviewer()]`
    /// lets ``PatientVault/Principal/reviewer(_:)`` review.
    public static func reviewer(_ n: Int = 1) -> SystemPrincipal { try! SystemPrincipal("reviewer-\(n)") }
}

/// The size of each kind's block of example numbers.
private let block = 1_000_000

private func format6(_ n: Int) -> String { String(n).leftPadded(6) }

/// `n` in `0..<modulus`, for any `n` (negative and `Int.min` included): an
/// example number never traps.
private func wrapped(_ n: Int, _ modulus: Int) -> Int {
    let r = n % modulus
    return r < 0 ? r + modulus : r
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
