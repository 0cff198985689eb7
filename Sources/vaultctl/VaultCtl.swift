// vaultctl: look into and operate a PatientVault store from a shell.
//
// Every command that touches a vault takes the acting principal (`--as`)
// and goes through the library's access decision and audit trail, like any
// caller of the library. An error is one line on standard error with a
// hint, and the exit code says what kind (see `ExitCodes`).
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import PatientVault
import PatientVaultProof
import PatientVaultTour

@main
struct VaultCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vaultctl",
        abstract: "Operate a PatientVault store: vaults, documents, the audit trail, checkpoints and keys.",
        discussion: """
            The master key comes from --key-file (32 raw bytes or 64 hexadecimal characters), --key-env (the name of \
            an environment variable holding 64 hexadecimal characters) or --passphrase-env. Principals (--as): \
            patient:<INS>, representative:<INS>:<parent|guardian>, <profession>:<RPPS> (doctor:10101234567), \
            organisation:<kind>:<FINESS>, insurer:<id>, reviewer:<id>. Wherever an INS is asked for (--patient, \
            --as), env:NAME reads it from the environment variable NAME instead: a command line is readable by every \
            user of the machine and kept in shell histories. --title-env and --reason-env do the same for a \
            document's title and an erasure's reason.

            Exit codes: 0 success; 1 bad usage or input; 2 access denied; 3 no such vault or document (or erased, \
            destroyed); 4 the store or its proofs fail their checks (corrupted, wrong key, checkpoint not extended); \
            5 any other failure (I/O, full disk, store locked).
            """,
        subcommands: [
            Init.self, Create.self, Deposit.self, Read.self, List.self, Grant.self, Revoke.self, Block.self, Audit.self,
            Checkpoint.self, Prove.self, Verify.self, Close.self, Erase.self, Compact.self, Scrub.self, RotateKey.self, Stats.self, Doctor.self,
            Backup.self, Restore.self, Export.self, VerifyBundle.self, ExportKey.self, Import.self, Demo.self,
        ])

    /// Parses and runs the command; a failure of ours is one line and its
    /// exit code, ArgumentParser's own (usage) are printed its way.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let error as CtlError {
            error.exit()
        } catch {
            exit(withError: error)
        }
    }
}

// MARK: - Shared options

struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "The store's folder.")
    var store: String

    @Option(name: .long, help: "A file holding the master key (32 bytes, or 64 hexadecimal characters).")
    var keyFile: String?

    @Option(name: .long, help: "An environment variable holding the master key in hexadecimal.")
    var keyEnv: String?

    @Option(name: .long, help: "An environment variable holding the store's passphrase.")
    var passphraseEnv: String?

    @Flag(name: .long, help: "Ask for the store's passphrase on the terminal (not echoed).")
    var passphrasePrompt = false

    @Option(name: .long, help: "A key provider: a program (the client of a KMS or HSM) that wraps and unwraps the store's root key (see Documentation/vaultctl.md).")
    var keyCommand: String?

    @Option(name: .long, help: "The key provider's name for its key (with --key-command), kept in the store's header.")
    var keyId: String?

    @Option(name: .long, help: "Configured audit reviewers (comma-separated identifiers), as the host configures them.")
    var reviewers: String = ""

    @Flag(name: .long, help: "Print JSON for scripts.")
    var json = false

    func source() throws -> MasterKeySource {
        try Self.source(
            keyFile: keyFile, keyEnv: keyEnv, passphraseEnv: passphraseEnv, passphrasePrompt: passphrasePrompt,
            keyCommand: keyCommand, keyID: keyId)
    }

    /// The master key from one of a file, an environment variable holding
    /// it in hexadecimal, one holding a passphrase, a passphrase typed on
    /// the terminal, or a key provider's program (``CommandKeyProvider``).
    static func source(
        keyFile: String?, keyEnv: String?, passphraseEnv: String?, passphrasePrompt: Bool = false,
        keyCommand: String? = nil, keyID: String? = nil, prefix: String = ""
    ) throws -> MasterKeySource {
        let given = [keyFile != nil, keyEnv != nil, passphraseEnv != nil, passphrasePrompt, keyCommand != nil].filter { $0 }.count
        guard given == 1 else {
            throw CtlError.usage(
                prefix.isEmpty
                    ? "give exactly one of --key-file, --key-env, --passphrase-env, --passphrase-prompt, --key-command"
                    : "give exactly one of --\(prefix)key-file, --\(prefix)key-command")
        }
        guard (keyCommand == nil) == (keyID == nil) else {
            throw CtlError.usage("--\(prefix)key-command and --\(prefix)key-id go together")
        }
        if let keyCommand, let keyID {
            guard FileManager.default.isExecutableFile(atPath: keyCommand) else {
                throw CtlError.usage("\(keyCommand) is not an executable program")
            }
            return .provider(CommandKeyProvider(keyID: keyID, program: keyCommand))
        }
        if passphrasePrompt { return .passphrase(try promptPassphrase()) }
        if let passphraseEnv {
            guard let passphrase = ProcessInfo.processInfo.environment[passphraseEnv], !passphrase.isEmpty else {
                throw CtlError.usage("the environment variable \(passphraseEnv) is not set")
            }
            return .passphrase(passphrase)
        }
        var bytes: [UInt8]
        if let keyFile {
            var data = try readFile(keyFile, atMost: 1024, what: "a key file")
            bytes = [UInt8](data)
            data.resetBytes(in: 0..<data.count)
        } else {
            guard let text = ProcessInfo.processInfo.environment[keyEnv!] else {
                throw CtlError.usage("the environment variable \(keyEnv!) is not set")
            }
            bytes = Array(text.utf8)
        }
        defer { for i in bytes.indices { bytes[i] = 0 } }
        if bytes.count != 32 {
            // Trimmed by index and decoded into one buffer of the key's
            // size, wiped once the key is in guarded memory: no copy of it
            // left behind.
            var end = bytes.count
            while end > 0, [0x0A, 0x0D, 0x20].contains(bytes[end - 1]) { end -= 1 }
            guard end == 64, var decoded = hexDecode(bytes[..<end]) else {
                throw CtlError.usage("a master key is 32 bytes or 64 hexadecimal characters")
            }
            defer { for i in decoded.indices { decoded[i] = 0 } }
            return .key(try MasterKey(bytes: decoded))
        }
        return .key(try MasterKey(bytes: bytes))
    }

    func configuration() throws -> Configuration {
        var c = Configuration()
        c.auditReviewers = Set(try reviewers.split(separator: ",").map { try SystemPrincipal(String($0)) })
        return c
    }

    func open() async throws -> VaultStore {
        guard FileManager.default.fileExists(atPath: store + "/store.header") else {
            throw CtlError.notFound("no store in \(store) (vaultctl init makes one)")
        }
        return try await VaultStore.open(at: URL(fileURLWithPath: store), key: try source(), configuration: try configuration())
    }

    /// Prints `value` as JSON, or `text` for people.
    func output(_ text: String, json value: [String: Any]) {
        Self.print(text, json: value, asJSON: json)
    }

    /// Prints `value` as JSON if `asJSON`, else `text`.
    static func print(_ text: String, json value: [String: Any], asJSON: Bool) {
        if asJSON, let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]) {
            Swift.print(String(decoding: data, as: UTF8.self))
        } else {
            Swift.print(text)
        }
    }
}

struct ActorOptions: ParsableArguments {
    @Option(name: .customLong("as"), help: "Who acts (see vaultctl --help).")
    var actor: String

    func principal() throws -> Principal { try parsePrincipal(actor) }
}

struct PatientOption: ParsableArguments {
    @Option(name: .long, help: "The patient's INS (15 characters), or env:NAME to read it from the environment variable NAME (a command line is visible to every user of the machine).")
    var patient: String

    func ins() throws -> INS { try parseINS(patient) }
}

/// A document, and one of its versions.
struct DocumentVersionOptions: ParsableArguments {
    @Argument(help: "The document's id.") var document: String
    @Option(help: "A version (the current one if absent).") var version: Int?

    func id() throws -> DocumentID { try DocumentID(document) }
}

/// A command on the whole store: `perform` runs with the store open
/// (``withStore(_:_:)``).
protocol StoreCommand: AsyncParsableCommand {
    var options: StoreOptions { get }
    func perform(_ store: VaultStore) async throws
}

extension StoreCommand {
    func run() async throws {
        try await withStore(options) { store in try await perform(store) }
    }
}

/// A command on one patient's vault, as one principal: `perform` runs
/// with the store open (``withStore(_:_:)``).
protocol VaultCommand: StoreCommand {
    var vault: VaultOptions { get }
    func perform(_ store: VaultStore, _ ins: INS, _ principal: Principal) async throws
}

extension VaultCommand {
    var options: StoreOptions { vault.options }

    func perform(_ store: VaultStore) async throws {
        try await perform(store, try vault.ins(), try vault.principal())
    }
}

/// The store, the patient whose vault, and who acts.
struct VaultOptions: ParsableArguments {
    @OptionGroup var options: StoreOptions
    @OptionGroup var patient: PatientOption
    @OptionGroup var actor: ActorOptions

    func ins() throws -> INS { try patient.ins() }
    func principal() throws -> Principal { try actor.principal() }
}

/// Runs a command body with the store open, closing it whatever happens,
/// and maps every error to one line and an exit code.
func withStore(_ options: StoreOptions, _ body: (VaultStore) async throws -> Void) async throws {
    try await mappingErrors {
        let store = try await options.open()
        do {
            try await body(store)
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }
}

/// Reads a passphrase from the controlling terminal (`/dev/tty`) with
/// echo off, restoring the terminal's settings afterwards.
func promptPassphrase() throws -> String {
    let tty = open("/dev/tty", O_RDWR | O_CLOEXEC)
    guard tty >= 0 else { throw CtlError.usage("--passphrase-prompt needs a terminal") }
    defer { close(tty) }
    var saved = termios()
    guard tcgetattr(tty, &saved) == 0 else { throw CtlError.usage("--passphrase-prompt needs a terminal") }
    var quiet = saved
    quiet.c_lflag &= ~tcflag_t(ECHO)
    guard tcsetattr(tty, TCSAFLUSH, &quiet) == 0 else { throw CtlError.usage("cannot turn the terminal's echo off") }
    defer {
        _ = tcsetattr(tty, TCSAFLUSH, &saved)
        _ = write(tty, "\n", 1)
    }
    let prompt = "Passphrase: "
    _ = write(tty, prompt, prompt.utf8.count)
    var line: [UInt8] = []
    defer { for i in line.indices { line[i] = 0 } }
    var byte: UInt8 = 0
    while read(tty, &byte, 1) == 1, byte != 0x0A, byte != 0x0D {
        guard line.count < 1024 else { throw CtlError.usage("a passphrase is at most 1024 bytes") }
        line.append(byte)
    }
    guard !line.isEmpty else { throw CtlError.usage("the passphrase is empty") }
    return String(decoding: line, as: UTF8.self)
}

/// Runs a command body, mapping every error to one line and an exit code
/// (``CtlError/from(_:)``).
func mappingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch {
        throw CtlError.from(error)
    }
}

/// A command that records a decision about another principal, given as
/// its argument (`grant`, `revoke`, `block`): `perform` parses it, has
/// the store record the decision and says what was done.
protocol DecisionCommand: VaultCommand {
    var decision: Decision { get }
}

/// What a ``DecisionCommand`` decides: about whom (its argument, as
/// given), what it says once done (in JSON, the key of `subject`), and the
/// store's call that records it: `record(store, subject, patient, actor)`.
struct Decision {
    var subject: String
    var done: String
    var record: (VaultStore, Principal, INS, Principal) async throws -> Void
}

extension DecisionCommand {
    func perform(_ store: VaultStore, _ ins: INS, _ principal: Principal) async throws {
        let decision = decision
        try await decision.record(store, try parsePrincipal(decision.subject), ins, principal)
        options.output(decision.done, json: [decision.done: decision.subject])
    }
}

// MARK: - Commands

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the tour of PatientVault (the README's main job) on a new store with a random key.",
        discussion: """
            Creates a vault, deposits, reads, lists, grants, refuses, breaks the glass, prints the trail, replaces \
            a document, then searches every file of the store for the plaintexts it wrote. The store is in a \
            temporary folder, removed afterwards, or in --keep (its random key is not kept: the files are for \
            looking at).
            """)
    @Option(help: "Keep the demo's store in this new folder.")
    var keep: String?

    func run() async throws {
        let folder = keep.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("vaultctl-demo-\(UUID().uuidString)")
        if keep != nil, FileManager.default.fileExists(atPath: folder.path) {
            throw CtlError.usage("\(folder.path) exists: the demo makes a new store")
        }
        defer { if keep == nil { try? FileManager.default.removeItem(at: folder) } }
        try await mappingErrors { try await runTour(in: folder) }
    }
}

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a new store (and, with --generate-key, its master key file).")
    @OptionGroup var options: StoreOptions
    @Flag(name: .long, help: "Write a new random master key to --key-file (mode 0600) first.")
    var generateKey = false

    func run() async throws {
        try await mappingErrors {
            if FileManager.default.fileExists(atPath: options.store + "/store.header") {
                throw CtlError.usage("\(options.store) already holds a store")
            }
            if generateKey {
                guard let keyFile = options.keyFile else { throw CtlError.usage("--generate-key writes to --key-file") }
                guard !FileManager.default.fileExists(atPath: keyFile) else { throw CtlError.usage("\(keyFile) exists: not overwritten") }
                let key = try MasterKey.generate()
                var hex = Array((key.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() } + "\n").utf8)
                defer { for i in hex.indices { hex[i] = 0 } }
                // Created 0600 from the start (never readable by others),
                // written and synced before the store that needs it exists.
                let fd = open(keyFile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw CtlError.usage("cannot create \(keyFile)") }
                let written = hex.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                let synced = written == hex.count && fsync(fd) == 0
                guard close(fd) == 0, synced else { throw CtlError.usage("cannot write \(keyFile)") }
                // Its name too: losing the key file loses the store.
                try syncFolder(of: keyFile)
            }
            let store = try await VaultStore.open(
                at: URL(fileURLWithPath: options.store), key: try options.source(), configuration: try options.configuration())
            let verifier = store.checkpointVerifierKey.description
            try await store.close()
            options.output("store created in \(options.store)\ncheckpoint verifier key: \(verifier)", json: ["store": options.store, "verifierKey": verifier])
        }
    }
}

struct Create: VaultCommand {
    static let configuration = CommandConfiguration(abstract: "Create a patient's vault.")
    @OptionGroup var vault: VaultOptions
    @Option(help: "The creation channel: \(CreationChannel.allCases.map(\.rawValue).joined(separator: ", ")).")
    var channel: String

    func perform(_ store: VaultStore, _ ins: INS, _ principal: Principal) async throws {
        guard let channel = CreationChannel(rawValue: channel) else { throw CtlError.usage("unknown channel \(channel)") }
        let info = try await store.createVault(for: ins, as: principal, channel: channel)
        options.output("vault \(info.vaultID) created", json: ["vaultID": info.vaultID])
    }
}

struct Deposit: VaultCommand {
    static let configuration = CommandConfiguration(abstract: "Deposit a file as a new document (or, with --replaces, a new version).")
    @OptionGroup var vault: VaultOptions
    @Argument(help: "The file to deposit.") var file: String
    @Option(help: "The title.") var title: String?
    @Option(help: "An environment variable holding the title (kept off the command line, which every user of the machine can read).") var titleEnv: String?
    @Option(help: "The category: \(DocumentCategory.allCases.map(\.rawValue).joined(separator: ", ")).") var category = "report"
    @Option(help: "The LOINC type code.") var typeCode = "11488-4"
    @Option(help: "The MIME type.") var mimeType = "application/pdf"
    @Option(help: "The document this replaces (a new version of it).") var replaces: String?

    func perform(_ store: VaultStore, _ ins: INS, _ principal: Principal) async throws {
        guard let category = DocumentCategory(rawValue: category) else { throw CtlError.usage("unknown category \(category)") }
        guard let title = try textOption(title, env: titleEnv, name: "title") else { throw CtlError.usage("give one of --title, --title-env") }
        // Read whole: the limit of a document read back whole, too.
        let data = try readFile(file, atMost: Int(VaultStore.wholeContentLimit), what: "a document deposited with vaultctl")
        let draft = DocumentDraft(
            typeCode: DocumentTypeCode(code: typeCode), category: category, title: title, createdAt: Date(), mimeType: mimeType)
        let m = if let replaces {
            try await store.replace(try DocumentID(replaces), with: draft, content: data, for: ins, as: principal)
        } else {
            try await store.deposit(draft, content: data, for: ins, as: principal)
        }
        options.output("document \(m.id) version \(m.version) (\(m.size) bytes)", json: ["document": m.id.description, "version": m.version, "size": m.size])
    }
}

struct Read: VaultCommand {
    static let configuration = CommandConfiguration(abstract: "Read a document's content, to a file or standard output.")
    @OptionGroup var vault: VaultOptions
    @OptionGroup var document: DocumentVersionOptions
    @Option(name: .shortAndLong, help: "Write to this file instead of standard output.") var output: String?

    func perform(_ store: VaultStore, _ ins: INS, _ principal: Principal) async throws {
        // Streamed, one chunk at a time: any size, in bounded memory.
        let content = try await store.contentStream(
            of: try document.id(), version: document.version, includingDeprecated: document.version != nil, for: ins, as: principal)
        if let output {
            try await writeDurably(streaming: content, to: output, mode: 0o600)
        } else {
            for try await chunk in content { FileHandle.standardOutput.write(chunk) }
        }
    }
}

struct List: VaultCommand {
    static let configuration = CommandConfiguration(abstract: "List the documents the principal may see in a vault.")
    @OptionGroup var vault: VaultOptions

    func perform(_ store: VaultStore, _ ins: INS, _ principal: Principal) async throws {
        let docs = try await store.documents(for: ins, as: principal)
        let lines = docs.map { "\($0.id)  v\($0.version)  \($0.category.rawValue)  \($0.size) bytes  \($0.title)" }
        options.output(
            lines.isEmpty ? "(no documents)" : lines.joined(separator: "\n"),
            json: ["documents": docs.map { ["id": $0.id.description, "version": $0.version, "category": $0.category.rawValue, "size": $0.size, "title": $0.title] }])
    }
}

struct Grant: DecisionCommand {
    static let configuration = CommandConfiguration(abstract: "Authorise a professional or organisation (optionally for some days).")
    @OptionGroup var vault: VaultOptions
    @Argument(help: "Who is authorised (a principal).") var grantee: String
    @Option(help: "For this many days.") var days: Int?

    var decision: Decision {
        let until = days.map { Date().addingTimeInterval(Double($0) * 86_400) }
        return Decision(subject: grantee, done: "authorised") { try await $0.authorise($1, until: until, for: $2, as: $3) }
    }
}

struct Revoke: DecisionCommand {
    static let configuration = CommandConfiguration(abstract: "Revoke an authorisation.")
    @OptionGroup var vault: VaultOptions
    @Argument(help: "Whose authorisation (a principal).") var grantee: String
    var decision: Decision { Decision(subject: grantee, done: "revoked") { try await $0.revoke($1, for: $2, as: $3) } }
}

struct Block: DecisionCommand {
    static let configuration = CommandConfiguration(abstract: "Block a professional from the vault.")
    @OptionGroup var vault: VaultOptions
    @Argument(help: "The professional (a principal).") var professional: String
    var decision: Decision { Decision(subject: professional, done: "blocked") { try await $0.block($1, for: $2, as: $3) } }
}

struct Audit: VaultCommand {
    static let configuration = CommandConfiguration(abstract: "Show a vault's audit trail, newest first, and verify its chain.")
    @OptionGroup var vault: VaultOptions
    @Option(help: "At most this many entries.") var limit = 50
    @Flag(help: "Also verify the whole hash chain.") var verify = false

    func perform(_ store: VaultStore, _ ins: INS, _ principal: Principal) async throws {
        guard (1...100_000).contains(limit) else { throw CtlError.usage("--limit is 1 to 100,000") }
        let ins = ins
        let principal = principal
        let entries = try await store.auditTrail(for: ins, matching: AuditQuery(limit: limit), as: principal)
        var lines = entries.map { e in
            "#\(e.sequence)  \(ISO8601DateFormatter().string(from: e.time))  \(e.action.rawValue)  \(e.outcome)  \(e.rule.rawValue)  \(e.actor)"
                + (e.document.map { "  \($0)" } ?? "")
        }
        var json: [String: Any] = ["entries": entries.map { ["sequence": $0.sequence, "action": $0.action.rawValue, "outcome": "\($0.outcome)", "rule": $0.rule.rawValue] }]
        if verify {
            let v = try await store.verifyAuditTrail(for: ins, as: principal)
            lines.append("chain verified: \(v.entries) entries, head \(v.headHash)")
            json["verified"] = v.entries
            json["headHash"] = v.headHash
        }
        options.output(lines.joined(separator: "\n"), json: json)
    }
}

struct Checkpoint: StoreCommand {
    static let configuration = CommandConfiguration(abstract: "Print a signed checkpoint of the store (C2SP tlog-checkpoint), or write it to a file.")
    @OptionGroup var options: StoreOptions
    @Option(name: .shortAndLong, help: "Write it to this file.") var output: String?

    func perform(_ store: VaultStore) async throws {
        let checkpoint = try await store.checkpoint()
        if let output {
            // A checkpoint is public: anyone may read it.
            try writeDurably(Data(checkpoint.text.utf8), to: output, mode: 0o644)
        }
        options.output(
            output == nil ? checkpoint.text : "checkpoint of \(checkpoint.treeHead.size) records written to \(output!)",
            json: ["size": checkpoint.treeHead.size, "checkpoint": checkpoint.text, "verifierKey": store.checkpointVerifierKey.description])
    }
}

struct Prove: VaultCommand {
    static let configuration = CommandConfiguration(abstract: "Print a receipt (tlog-proof@v1) that a document version is in the log.")
    @OptionGroup var vault: VaultOptions
    @OptionGroup var document: DocumentVersionOptions

    func perform(_ store: VaultStore, _ ins: INS, _ principal: Principal) async throws {
        let receipt = try await store.receipt(for: try document.id(), version: document.version, for: ins, as: principal)
        let leaf = receipt.leafData.map { String(format: "%02x", $0) }.joined()
        options.output(receipt.proof.text + "\nleaf data: " + leaf, json: ["proof": receipt.proof.text, "leafData": leaf])
    }
}

struct Verify: StoreCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the store extends a checkpoint kept elsewhere (a file).")
    @OptionGroup var options: StoreOptions
    @Argument(help: "The checkpoint file.") var checkpoint: String

    func perform(_ store: VaultStore) async throws {
        let data = try readFile(checkpoint, atMost: SignedCheckpoint.maximumSize, what: "a checkpoint")
        let kept = try SignedCheckpoint(String(decoding: data, as: UTF8.self))
        let bar = ProgressBar("verifying \(kept.treeHead.size) records")
        defer { bar.finish() }
        try await store.verify(against: kept) { bar.update($0) }
        options.output("the store extends the checkpoint of \(kept.treeHead.size) records", json: ["verified": kept.treeHead.size])
    }
}

struct Close: VaultCommand {
    static let configuration = CommandConfiguration(abstract: "Close a vault (read-only for its retention period).")
    @OptionGroup var vault: VaultOptions
    @Flag(help: "The patient died (recorded by a doctor).") var death = false

    func perform(_ store: VaultStore, _ ins: INS, _ principal: Principal) async throws {
        try await store.closeVault(for: ins, reason: death ? .death : .patientRequest, as: principal)
        options.output("vault closed", json: ["closed": true])
    }
}

struct Erase: VaultCommand {
    static let configuration = CommandConfiguration(abstract: "Erase a document (its author only; a professional states why).")
    @OptionGroup var vault: VaultOptions
    @Argument(help: "The document's id.") var document: String
    @Option(help: "Why (required from a professional).") var reason: String?
    @Option(help: "An environment variable holding the reason (kept off the command line, which every user of the machine can read).") var reasonEnv: String?

    func perform(_ store: VaultStore, _ ins: INS, _ principal: Principal) async throws {
        let reason = try textOption(reason, env: reasonEnv, name: "reason")
        let tombstone = try await store.erase(
            try DocumentID(document), for: ins, reason: try reason.map { try ErasureReason($0) }, as: principal)
        options.output("document \(tombstone.id) erased (\(tombstone.versions) versions)", json: ["erased": tombstone.id.description, "versions": tombstone.versions])
    }
}

struct Export: VaultCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export the patient's vault as a self-verifying file: documents, trail, proofs, signed by the store.",
        discussion: "The patient's own. With --recipient the file is sealed to that public key (vaultctl export-key makes one).")
    @OptionGroup var vault: VaultOptions
    @Option(name: .shortAndLong, help: "The file to write (created, owner-only).") var output: String
    @Option(help: "Seal the file to this recipient's X25519 public key (base64).") var recipient: String?

    func perform(_ store: VaultStore, _ ins: INS, _ principal: Principal) async throws {
        // The key first: a mistyped one leaves no export in the patient's
        // trail.
        let recipientKey = try recipient.map { try ExportRecipientPublicKey($0) }
        let export = try await store.exportVault(for: ins, as: principal)
        let data = try recipientKey.map { try export.sealed(to: $0) } ?? export.bytes
        try writeOwnerOnly(data, to: output)
        options.output(
            "exported \(export.documents.count) document versions and \(export.auditTrail.count) audit entries to \(output)"
                + (recipient == nil ? "" : ", sealed to the recipient"),
            json: [
                "documents": export.documents.count, "auditEntries": export.auditTrail.count, "sealed": recipient != nil,
                "verifierKey": export.verifierKey.description,
            ])
    }
}

struct VerifyBundle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-bundle",
        abstract: "Check an export file offline: its signature, every inclusion proof, every record against its content.",
        discussion: "No store is needed. Pin the store's published key with --verifier-key; without it the file is checked against its own key.")
    @OptionGroup var bundle: BundleOptions
    @Flag(help: "Print JSON for scripts.") var json = false

    func run() async throws {
        try await mappingErrors {
            let (export, pinned) = try bundle.verified()
            let text = "verified: \(export.documents.count) document versions and \(export.auditTrail.count) audit entries of vault \(export.vaultID), "
                + "in the log at the checkpoint of \(export.checkpoint.treeHead.size) records"
                + (pinned ? ", signed by a pinned key" : " (signed by the file's own key: pin the store's with --verifier-key)")
            StoreOptions.print(
                text, json: [
                    "verified": true, "documents": export.documents.count, "auditEntries": export.auditTrail.count,
                    "treeSize": export.checkpoint.treeHead.size, "pinned": pinned,
                ], asJSON: json)
        }
    }
}

/// The export file or sealed export, for `verify-bundle` and `import`.
struct BundleOptions: ParsableArguments {
    @Argument(help: "The export file.") var file: String
    @Option(help: "The store's note verifier key (repeatable: every key the store has had).") var verifierKey: [String] = []
    @Option(help: "A file holding the recipient's secret key, for a sealed export.") var recipientKeyFile: String?

    /// The file, opened if sealed and checked.
    func verified() throws -> (VaultExport, pinned: Bool) {
        // An export, or one sealed (its magic and the box's overhead, well
        // under 4 KiB, besides).
        let data = try readFile(file, atMost: VaultExport.maximumSize + 4096, what: "an export")
        let trusted = try verifierKey.map { try NoteVerifierKey($0) }
        guard let recipientKeyFile else { return (try VaultExport(verifying: data, trusting: trusted), !trusted.isEmpty) }
        var secret = Array(try readFile(recipientKeyFile, atMost: 1024, what: "a recipient's key file"))
        defer { for i in secret.indices { secret[i] = 0 } }
        return (try VaultExport(opening: data, with: try ExportRecipientKey(secretKey: secret), trusting: trusted), !trusted.isEmpty)
    }
}

struct Import: StoreCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import a patient's export into their vault in this store (created if absent), keeping history, authorship and proofs.",
        discussion: "The file is checked first (as verify-bundle) against the source store's key (--verifier-key, required). The patient imports (--as patient:<INS>).")
    @OptionGroup var options: StoreOptions
    @OptionGroup var actor: ActorOptions
    @OptionGroup var bundle: BundleOptions

    func perform(_ store: VaultStore) async throws {
        guard !bundle.verifierKey.isEmpty else {
            throw CtlError.usage("pin the source store's key with --verifier-key: an export is imported only from a store you trust")
        }
        let (export, _) = try bundle.verified()
        let trusted = try bundle.verifierKey.map { try NoteVerifierKey($0) }
        let principal = try actor.principal()
        do {
            try await store.createVault(for: export.patient, as: principal, channel: .patientOnline)
        } catch {
            // Imported into the vault the patient already has (it must hold no document).
            guard error.code == .vaultAlreadyExists else { throw error }
        }
        let imported = try await store.importVault(export, trusting: trusted, as: principal)
        options.output(
            "imported \(imported.count) document versions and the source's trail of \(export.auditTrail.count) entries into the patient's vault",
            json: ["documents": imported.count, "auditEntries": export.auditTrail.count])
    }
}

struct ExportKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-key",
        abstract: "Make a recipient's key pair for sealed exports: the secret key to a file, the public key printed.")
    @Option(help: "The file for the secret key (created, owner-only).") var secretKeyFile: String
    @Flag(help: "Print JSON for scripts.") var json = false

    func run() async throws {
        try await mappingErrors {
            guard !FileManager.default.fileExists(atPath: secretKeyFile) else { throw CtlError.usage("\(secretKeyFile) exists") }
            let key = try ExportRecipientKey.generate()
            var secret = key.secretKey
            defer { for i in secret.indices { secret[i] = 0 } }
            try writeOwnerOnly(Data(secret), to: secretKeyFile)
            StoreOptions.print(key.publicKey.description, json: ["publicKey": key.publicKey.description], asJSON: json)
        }
    }
}

/// A long job's progress bar: drawn on standard error when it is a
/// terminal, nothing at all when piped (scripts read standard output, and
/// `--json` stays one object).
final class ProgressBar: @unchecked Sendable {
    // @unchecked: `shownPercent` is behind `lock`; the rest is set once.
    private let label: String
    private let shown: Bool
    private let lock = NSLock()
    private var shownPercent = -1

    init(_ label: String) {
        self.label = label
        shown = isatty(STDERR_FILENO) == 1
    }

    /// ``update(_:)`` as a progress callback, or nil when the bar is not
    /// drawn (standard error is not a terminal): the job then reports no
    /// progress at all.
    var callback: (@Sendable (Double) -> Void)? {
        guard shown else { return nil }
        return { [self] fraction in update(fraction) }
    }

    /// Redraws the bar for `fraction` (0 to 1) when its percentage changes.
    func update(_ fraction: Double) {
        guard shown else { return }
        let percent = fraction.isNaN ? 0 : Int(min(max(fraction, 0), 1) * 100)
        let changed = lock.withLock { () -> Bool in
            defer { shownPercent = percent }
            return shownPercent != percent
        }
        guard changed else { return }
        let width = 30
        let filled = percent * width / 100
        let line = "\r\(label) [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] \(percent)%"
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Clears the bar's line.
    func finish() {
        guard shown else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
    }
}

/// The bytes of the file at `path`, read no further than `limit` (a file
/// larger than that is refused, not read into memory whole).
func readFile(_ path: String, atMost limit: Int, what: String) throws -> Data {
    guard let handle = FileHandle(forReadingAtPath: path) else { throw CtlError.usage("cannot read \(path)") }
    defer { try? handle.close() }
    guard let data = try? handle.read(upToCount: limit + 1) ?? Data() else { throw CtlError.usage("cannot read \(path)") }
    guard data.count <= limit else { throw CtlError.usage("\(path) is larger than \(what) can be (\(limit) bytes)") }
    return data
}

/// Writes `data` to a file only its owner reads (mode 0600).
func writeOwnerOnly(_ data: Data, to path: String) throws {
    try writeDurably(data, to: path, mode: 0o600)
}

/// Writes `data` to `path` (created or replaced) with permissions `mode`
/// set before any byte is written: into a new file beside it, synced, then
/// renamed over `path` and the folder synced. What the command reports
/// written survives a power loss, and a failure or a crash leaves the
/// previous file whole (a published checkpoint, an earlier export). Every
/// system call's result is checked.
func writeDurably(_ data: Data, to path: String, mode: mode_t) throws {
    // Something that is not a regular file (`/dev/stdout`, a pipe) is
    // written in place, as given; a symbolic link's target is replaced,
    // not the link.
    var info = stat()
    if stat(path, &info) == 0, info.st_mode & S_IFMT != S_IFREG {
        return try writeInPlace(data, to: path)
    }
    var target = path
    if let resolved = realpath(path, nil) {
        target = String(cString: resolved)
        free(resolved)
    }
    let aside = target + ".new-\(UUID().uuidString.prefix(8))"
    do {
        try writeNewFile(data, to: aside, mode: mode)
        guard rename(aside, target) == 0 else { throw CtlError.usage("cannot write \(path)") }
    } catch {
        unlink(aside)
        throw error
    }
    try syncFolder(of: target)
}

/// As ``writeDurably(_:to:mode:)``, for a document's content read chunk
/// by chunk (any size, in bounded memory).
func writeDurably(streaming content: DocumentContent, to path: String, mode: mode_t) async throws {
    var info = stat()
    if stat(path, &info) == 0, info.st_mode & S_IFMT != S_IFREG {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CtlError.usage("cannot open \(path)") }
        var ok = true
        do {
            // A failed write ends the read: nothing more is decrypted.
            for try await chunk in content {
                guard writeAll(chunk, to: fd) else { ok = false; break }
            }
        } catch {
            close(fd)
            throw error
        }
        guard close(fd) == 0, ok else { throw CtlError.usage("cannot write \(path)") }
        return
    }
    var target = path
    if let resolved = realpath(path, nil) {
        target = String(cString: resolved)
        free(resolved)
    }
    let aside = target + ".new-\(UUID().uuidString.prefix(8))"
    let fd = open(aside, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else { throw CtlError.usage("cannot create \(aside)") }
    do {
        var ok = fchmod(fd, mode) == 0
        do {
            // A failed write ends the read: nothing more is decrypted.
            if ok {
                for try await chunk in content {
                    guard writeAll(chunk, to: fd) else { ok = false; break }
                }
            }
        } catch {
            close(fd)
            throw error
        }
        ok = ok && fsync(fd) == 0
        ok = close(fd) == 0 && ok
        guard ok else { throw CtlError.usage("cannot write \(path)") }
        guard rename(aside, target) == 0 else { throw CtlError.usage("cannot write \(path)") }
    } catch {
        unlink(aside)
        throw error
    }
    try syncFolder(of: target)
}

/// Writes `data` to the existing non-regular file `path` (a device, a pipe).
private func writeInPlace(_ data: Data, to path: String) throws {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { throw CtlError.usage("cannot open \(path)") }
    let ok = writeAll(data, to: fd)
    guard close(fd) == 0, ok else { throw CtlError.usage("cannot write \(path)") }
}

/// Writes all of `data` to `fd`, retrying on EINTR; false on an error.
private func writeAll(_ data: Data, to fd: Int32) -> Bool {
    data.withUnsafeBytes { raw -> Bool in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }
}

/// Writes `data` to the new file `path` (it must not exist), synced.
private func writeNewFile(_ data: Data, to path: String, mode: mode_t) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else { throw CtlError.usage("cannot create \(path)") }
    var ok = fchmod(fd, mode) == 0
    ok = ok && writeAll(data, to: fd)
    ok = ok && fsync(fd) == 0
    ok = close(fd) == 0 && ok
    guard ok else { throw CtlError.usage("cannot write \(path)") }
}

/// Syncs the folder that holds `path`, so that its new name is durable.
func syncFolder(of path: String) throws {
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
    let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw CtlError.usage("cannot open \(folder) to sync it") }
    let synced = fsync(fd) == 0
    guard close(fd) == 0, synced else { throw CtlError.usage("cannot sync \(folder)") }
}

struct Compact: StoreCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove the sealed bytes of erased documents and destroyed vaults from the store's files (a configured reviewer).",
        discussion: "Online and crash-safe: run it again after a failure; it finishes what was cut.")
    @OptionGroup var options: StoreOptions
    @OptionGroup var actor: ActorOptions

    func perform(_ store: VaultStore) async throws {
        let bar = ProgressBar("compacting")
        defer { bar.finish() }
        let r = try await store.compact(as: try actor.principal(), progress: bar.callback)
        options.output(
            "compacted \(r.erasedDocuments) erased documents and \(r.destroyedVaults) destroyed vaults: \(r.recordsCompacted) records, \(r.bytesRemoved) bytes removed",
            json: [
                "erasedDocuments": r.erasedDocuments, "destroyedVaults": r.destroyedVaults, "records": r.recordsCompacted,
                "bytesRemoved": Int(clamping: r.bytesRemoved),
            ])
    }
}

struct Scrub: StoreCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read every record and write back each damaged byte whose value is proven (a configured reviewer).",
        discussion: "Online. Exit 4 if records are damaged beyond a repair: restore them from a backup.")
    @OptionGroup var options: StoreOptions
    @OptionGroup var actor: ActorOptions

    func perform(_ store: VaultStore) async throws {
        let bar = ProgressBar("scrubbing")
        defer { bar.finish() }
        let r = try await store.scrub(as: try actor.principal(), progress: bar.callback)
        options.output(
            "checked \(r.recordsChecked) records: \(r.recordsRestored) restored, \(r.recordsDamaged) damaged beyond repair",
            json: ["records": r.recordsChecked, "restored": r.recordsRestored, "damaged": r.recordsDamaged])
        if r.recordsDamaged > 0 {
            throw PatientVaultError(.corrupted, "\(r.recordsDamaged) records are damaged beyond repair")
        }
    }
}

struct RotateKey: StoreCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-key", abstract: "Wrap the store's root key under a new master key (a configured reviewer).")
    @OptionGroup var options: StoreOptions
    @OptionGroup var actor: ActorOptions
    @Option(help: "A file holding the new master key (32 bytes or 64 hexadecimal characters).") var newKeyFile: String?
    @Option(help: "A key provider's program for the new key (as --key-command).") var newKeyCommand: String?
    @Option(help: "The new key provider's name for its key (with --new-key-command).") var newKeyId: String?

    func perform(_ store: VaultStore) async throws {
        let next = try StoreOptions.source(
            keyFile: newKeyFile, keyEnv: nil, passphraseEnv: nil, keyCommand: newKeyCommand, keyID: newKeyId, prefix: "new-")
        try await store.rotateMasterKey(to: next, as: try actor.principal())
        options.output("master key rotated: the old key opens nothing in this store", json: ["rotated": true])
    }
}

struct Stats: StoreCommand {
    static let configuration = CommandConfiguration(abstract: "The store's figures (the seeds' statistics), for a configured reviewer.")
    @OptionGroup var options: StoreOptions
    @OptionGroup var actor: ActorOptions

    func perform(_ store: VaultStore) async throws {
        let s = try await store.statistics(as: try actor.principal())
        options.output(
            "vaults: \(s.vaults)\ndocuments: \(s.documents)\nfed vaults: \(s.fedVaults)\nprofessionals: \(s.distinctProfessionals)\norganisations: \(s.distinctOrganisations)",
            json: ["vaults": s.vaults, "documents": s.documents, "fedVaults": s.fedVaults, "professionals": s.distinctProfessionals, "organisations": s.distinctOrganisations])
    }
}

struct Doctor: StoreCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open the store (recovering it), check the log against a new checkpoint, and say whether it is healthy.")
    @OptionGroup var options: StoreOptions

    func perform(_ store: VaultStore) async throws {
        let checkpoint = try await store.checkpoint()
        // Every record read again and hashed, against the tree's root.
        let bar = ProgressBar("verifying \(checkpoint.treeHead.size) records")
        try await store.verify(against: checkpoint) { bar.update($0) }
        bar.finish()
        let backlog = try await store.compactionBacklog()
        options.output(
            "healthy: \(store.vaultCount) vaults, \(checkpoint.treeHead.size) records verified; waiting for compaction: "
                + "\(backlog.erasedDocuments) erased documents, \(backlog.destroyedVaults) destroyed vaults",
            json: [
                "healthy": true, "vaults": store.vaultCount, "records": checkpoint.treeHead.size,
                "compactionBacklog": ["erasedDocuments": backlog.erasedDocuments, "destroyedVaults": backlog.destroyedVaults],
            ])
    }
}

struct Backup: StoreCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a consistent state of the store, with a signed checkpoint of it, into a folder.",
        discussion: "Into a folder that holds an earlier backup of this store, only what is new is copied.")
    @OptionGroup var options: StoreOptions
    @Argument(help: "The backup folder (new, empty, or holding an earlier backup of this store).") var folder: String
    @Flag(help: "Also read and hash every record of the copy against its checkpoint (as a restore does).")
    var verifyEveryRecord = false

    func perform(_ store: VaultStore) async throws {
        let bar = ProgressBar("backing up")
        defer { bar.finish() }
        let checkpoint = try await store.backup(
            to: URL(fileURLWithPath: folder), verifyingEveryRecord: verifyEveryRecord, progress: bar.callback)
        options.output(
            "backup of \(checkpoint.treeHead.size) records in \(folder), checked against its checkpoint\(verifyEveryRecord ? " record by record" : "")",
            json: ["records": checkpoint.treeHead.size, "checkpoint": checkpoint.text])
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore a backup into a new folder (--store), checked against the backup's checkpoint first.")
    @OptionGroup var options: StoreOptions
    @Option(help: "The backup folder.") var from: String

    func run() async throws {
        try await mappingErrors {
            let checkpoint = try await VaultStore.restore(
                from: URL(fileURLWithPath: from), to: URL(fileURLWithPath: options.store), key: try options.source(),
                configuration: try options.configuration())
            options.output(
                "restored \(checkpoint.treeHead.size) records into \(options.store): everything up to the backup's checkpoint, each record checked against it",
                json: ["records": checkpoint.treeHead.size])
        }
    }
}

// MARK: - Parsing and errors

func parsePrincipal(_ text: String) throws -> Principal {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    switch (parts.first ?? "", parts.count) {
    case ("patient", 2): return .patient(try parseINS(parts[1]))
    case ("representative", 3):
        guard let relationship = LegalRepresentative.Relationship(rawValue: parts[2]) else { throw CtlError.usage("unknown relationship (see vaultctl --help)") }
        return .representative(LegalRepresentative(ins: try parseINS(parts[1]), relationship: relationship))
    case ("patient", 3) where parts[1] == "env":
        return .patient(try parseINS("env:" + parts[2]))
    case ("representative", 4) where parts[1] == "env":
        guard let relationship = LegalRepresentative.Relationship(rawValue: parts[3]) else { throw CtlError.usage("unknown relationship (see vaultctl --help)") }
        return .representative(LegalRepresentative(ins: try parseINS("env:" + parts[2]), relationship: relationship))
    case ("organisation", 3):
        guard let kind = OrganisationKind(rawValue: parts[1]) else { throw CtlError.usage("unknown organisation kind (see vaultctl --help)") }
        return .organisation(Organisation(finess: try FINESSNumber(parts[2]), kind: kind))
    case ("insurer", 2): return .insurer(try SystemPrincipal(parts[1]))
    case ("reviewer", 2): return .auditReviewer(try SystemPrincipal(parts[1]))
    case (let profession, 2):
        // Nothing of the argument is echoed: it may hold an INS.
        guard let p = Profession(rawValue: profession) else { throw CtlError.usage("unknown principal kind (see vaultctl --help)") }
        return .professional(HealthProfessional(rpps: try RPPSNumber(parts[1]), profession: p))
    default:
        throw CtlError.usage("unknown principal: kind:identifier expected (see vaultctl --help)")
    }
}

/// An INS as vaultctl takes it: its 15 characters, or `env:NAME` to read
/// them from the environment variable `NAME`. A command line is readable
/// by every user of the machine (`/proc/<pid>/cmdline`, `ps`) and kept in
/// shell histories; a process's environment only by its owner.
func parseINS(_ text: String) throws -> INS {
    guard text.hasPrefix("env:") else { return try INS(text) }
    return try INS(try environmentValue(String(text.dropFirst(4))))
}

/// The value of an environment variable named by an option (`--title-env`,
/// `env:NAME`), which must be set and not empty. The error names the
/// variable, never its value, and not even the name unless it is one
/// (letters, digits, `_`): an INS typed where the name goes is not echoed.
func environmentValue(_ name: String) throws -> String {
    let isName = name.first.map { $0 == "_" || ($0.isASCII && $0.isLetter) } == true
        && name.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
    guard isName else { throw CtlError.usage("env: and --…-env take the name of an environment variable") }
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
        throw CtlError.usage("the environment variable \(name) is not set")
    }
    return value
}

/// Free text given either on the command line or, kept off it, through an
/// environment variable (`--title` or `--title-env`): at most one of them.
func textOption(_ direct: String?, env: String?, name: String) throws -> String? {
    switch (direct, env) {
    case (let direct?, nil): return direct
    case (nil, let env?): return try environmentValue(env)
    case (nil, nil): return nil
    case (_?, _?): throw CtlError.usage("give at most one of --\(name), --\(name)-env")
    }
}

/// The bytes of hexadecimal text of even length (either case); nil for
/// anything else. One buffer of the result's size (it may hold a key: no
/// partial copy is left by a reallocation, and no `String` is made).
func hexDecode<Text: RandomAccessCollection>(_ text: Text) -> [UInt8]? where Text.Element == UInt8, Text.Index == Int {
    guard text.count % 2 == 0 else { return nil }
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
    var out: [UInt8] = []
    out.reserveCapacity(text.count / 2)
    var i = text.startIndex
    while i < text.endIndex {
        guard let high = nibble(text[i]), let low = nibble(text[i + 1]) else {
            for k in out.indices { out[k] = 0 }
            return nil
        }
        out.append(high << 4 | low)
        i += 2
    }
    return out
}

/// One line on standard error and an exit code (`VaultCtl`'s help lists them).
struct CtlError: Error, CustomStringConvertible {
    let message: String
    let hint: String?
    let code: Int32

    var description: String { message + (hint.map { " (hint: \($0))" } ?? "") }

    static func usage(_ m: String) -> CtlError { CtlError(message: m, hint: "vaultctl help <command>", code: 1) }
    static func notFound(_ m: String) -> CtlError { CtlError(message: m, hint: nil, code: 3) }

    static func from(_ error: Error) -> Error {
        if let error = error as? CtlError { return error }
        if error is ValidationError || error is CleanExit { return error }
        if let e = error as? PatientVaultError {
            let (code, hint): (Int32, String?) = switch e.code {
            case .invalidArgument, .invalidIdentifier, .contentSourceFailed: (1, "check the arguments")
            case .accessDenied: (2, e.rule.map { "rule \($0.rawValue)" })
            case .unknownVault, .unknownDocument, .erased, .vaultDestroyed: (3, nil)
            case .corrupted, .wrongMasterKey, .checkpointNotExtended, .unsupportedFormat: (4, e.code == .wrongMasterKey ? "another key, or the header was altered" : "vaultctl doctor")
            case .storeLocked: (5, "another process has the store open")
            default: (5, nil)
            }
            return CtlError(message: "\(e.code): \(e.message)", hint: hint, code: code)
        }
        if let e = error as? ProofError { return CtlError(message: "checkpoint: \(e.code.rawValue)", hint: "is it a checkpoint of this store?", code: 4) }
        return CtlError(message: "\(error)", hint: nil, code: 5)
    }
}

extension CtlError {
    /// Exits with this error's code after printing it (ArgumentParser
    /// prints other errors itself).
    func exit() -> Never {
        FileHandle.standardError.write(Data("vaultctl: error: \(description)\n".utf8))
        Glibc.exit(code)
    }
}
