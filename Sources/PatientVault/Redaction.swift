// Values that hold patient data or secrets print without them: string
// interpolation, `print`, `debugPrint`, `dump`, a debugger's summary and
// loggers that reflect on values see only what names the value (an id, a
// version, a count). What they hold is read through their properties, on
// purpose, never by accident in a log line or an error message.

extension INS: CustomDebugStringConvertible, CustomReflectable {
    /// `INS(redacted)`, as ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows no digits.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension DocumentDraft: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// `DocumentDraft(redacted)`: no title, code, type or date.
    public var description: String { "DocumentDraft(redacted)" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows none of its fields.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension DocumentMetadata: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The document's id and version only.
    public var description: String { "DocumentMetadata(id: \(id), version: \(version))" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows none of its fields.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension ErasureReason: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// `ErasureReason(redacted)`.
    public var description: String { "ErasureReason(redacted)" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows no text.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension ErasedDocument: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The document's id and its number of versions only.
    public var description: String { "ErasedDocument(id: \(id), versions: \(versions))" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows neither the reason nor the actors.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension BreakGlassReason: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// `BreakGlassReason(redacted)`.
    public var description: String { "BreakGlassReason(redacted)" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows no text.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension MasterKeySource: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The kind of source only: never the key, the passphrase or the
    /// provider's state.
    public var description: String {
        switch self {
        case .key: "MasterKeySource.key(redacted)"
        case .passphrase: "MasterKeySource.passphrase(redacted)"
        case .provider(let p): "MasterKeySource.provider(\(p.keyID))"
        }
    }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows no key material.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension VaultExport: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The vault's public id and counts only.
    public var description: String {
        "VaultExport(vault: \(vaultID), documents: \(documents.count), entries: \(auditTrail.count))"
    }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows none of its content.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension DocumentContent: CustomStringConvertible, CustomReflectable {
    /// `DocumentContent(redacted)`: neither its bytes nor where they are.
    public var description: String { "DocumentContent(redacted)" }
    /// No children: reflection shows neither its keys nor its location.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension VaultExport.Document: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The document's id and version only: never its content, which
    /// `Data`'s own mirror prints when it is short.
    public var description: String { "VaultExport.Document(id: \(metadata.id), version: \(metadata.version))" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows neither the content nor the metadata.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension VaultClosure: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// `VaultClosure(redacted)`: its reason (a death) is health data.
    public var description: String { "VaultClosure(redacted)" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows neither the reason nor who closed it.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension DestroyedVault: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The vault's public id only.
    public var description: String { "DestroyedVault(vault: \(vaultID))" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows neither the reason nor the dates.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension VaultInfo: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The vault's public id and its count only.
    public var description: String { "VaultInfo(vault: \(vaultID), documents: \(documentCount))" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows neither its creator nor its closure.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension DocumentTypeCode: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// `DocumentTypeCode(redacted)`: the kind of document is clinical.
    public var description: String { "DocumentTypeCode(redacted)" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows neither system nor code.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension DocumentQuery: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// `DocumentQuery(redacted)`: its filters (a type code, a category)
    /// say what is looked for.
    public var description: String { "DocumentQuery(redacted)" }
    /// As ``description``.
    public var debugDescription: String { description }
    /// No children: reflection shows none of its filters.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension VaultStore: CustomStringConvertible, CustomReflectable {
    /// `VaultStore`: its state (streams' pseudonyms, keys behind
    /// pointers) is not for logs.
    public var description: String { "VaultStore" }
    /// No children: reflection does not walk into the loaded vaults.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

extension VaultAccess: CustomStringConvertible, CustomReflectable {
    /// `VaultAccess`: neither its caller nor its store.
    public var description: String { "VaultAccess" }
    /// No children: reflection does not walk into the store.
    public var customMirror: Mirror { Mirror(self, children: []) }
}
