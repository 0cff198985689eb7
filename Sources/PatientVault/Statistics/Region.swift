/// A French region (INSEE code), where a vault was opened: the seeds count
/// vaults by region.
public struct Region: Hashable, Sendable, CustomStringConvertible {
    /// The INSEE region code, e.g. "11" for Île-de-France.
    public let code: String

    /// The 18 regions (2016 map), by INSEE code.
    public static let names: [String: String] = [
        "01": "Guadeloupe", "02": "Martinique", "03": "Guyane", "04": "La Réunion", "06": "Mayotte",
        "11": "Île-de-France", "24": "Centre-Val de Loire", "27": "Bourgogne-Franche-Comté", "28": "Normandie",
        "32": "Hauts-de-France", "44": "Grand Est", "52": "Pays de la Loire", "53": "Bretagne",
        "75": "Nouvelle-Aquitaine", "76": "Occitanie", "84": "Auvergne-Rhône-Alpes",
        "93": "Provence-Alpes-Côte d'Azur", "94": "Corse",
    ]

    /// Every region, by code.
    public static let all: [Region] = names.keys.sorted().map { Region(unchecked: $0) }

    /// Validates an INSEE region code.
    /// - Throws: ``PatientVaultError/Code/invalidIdentifier`` for an unknown code.
    public init(code: String) throws(PatientVaultError) {
        guard Self.names[code] != nil else {
            throw PatientVaultError(.invalidIdentifier, "not an INSEE region code")
        }
        self.code = code
    }

    private init(unchecked code: String) { self.code = code }

    /// Île-de-France.
    public static let ileDeFrance = Region(unchecked: "11")
    /// Hauts-de-France.
    public static let hautsDeFrance = Region(unchecked: "32")
    /// Auvergne-Rhône-Alpes.
    public static let auvergneRhoneAlpes = Region(unchecked: "84")

    /// The region's name.
    public var name: String { Self.names[code] ?? code }
    /// The region's name.
    public var description: String { name }
}
