// pv-crash-writer: a writer for crash tests, through the public API only.
//
//   pv-crash-writer <store directory or postgres:// URL> <master key A, 64 hex>,<master key B> <seed>
//
// Opens the store (recovering it), makes sure its patients have vaults,
// then writes from four tasks until killed: deposits, replacements, grants,
// erasures, audited reads, and rotations of the master key between A and B
// (the store opens with whichever of the two it finds; a store on
// PostgreSQL has no header, so no rotation: A only). Each operation prints a `BEGIN` line before it starts
// and an `ACK` line once the store acknowledged it (one `write(2)` per line,
// so a kill never leaves half a line). The test that kills it
// (`CrashTests`) reopens the store and checks every acknowledged operation.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PatientVault
import PatientVaultProof
import Synchronization

func emit(_ fields: [String]) {
    let line = fields.joined(separator: "\t") + "\n"
    _ = line.withCString { write(1, $0, strlen($0)) }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count == 4, let seed = Int(arguments[3]) else { fail("usage: pv-crash-writer <dir> <key A hex>,<key B hex> <seed>") }
func key(hex: Substring) -> MasterKey {
    let text = Array(hex.utf8)
    guard text.count == 64 else { fail("a key is 64 hexadecimal characters") }
    var bytes: [UInt8] = []
    for i in stride(from: 0, to: 64, by: 2) {
        guard let b = UInt8(String(decoding: text[i..<(i + 2)], as: UTF8.self), radix: 16) else { fail("bad key") }
        bytes.append(b)
    }
    return try! MasterKey(bytes: bytes)
}
let keys = arguments[2].split(separator: ",").map { key(hex: $0) }
guard keys.count == 2 else { fail("two keys, A and B") }

let patients: [INS] = ["1840175000001", "2850275000002", "1860375000003", "2870475000004", "1880575000005", "2890675000006"].map { nir in
    let key = INS.key(forNIR: nir)!
    return try! INS(nir + (key < 10 ? "0" : "") + String(key))
}
let professionals = CrashContract.professionals

/// Which of the two keys opens the store now.
let currentKey = Mutex<Int>(0)
var opened: VaultStore?
for (i, k) in keys.enumerated() where opened == nil {
    do {
        opened = try await CrashContract.open(arguments[1], key: k)
        currentKey.withLock { $0 = i }
    } catch where error.code == .wrongMasterKey {
        continue
    } catch {
        fail("open: \(error)")
    }
}
guard let store = opened else { fail("open: neither key opens the store") }
emit(["OPEN"])
// A creation attempt on an existing vault is a durable, audited refusal (it
// costs what a creation costs): only a run that finds vaults missing (the
// first, or one killed while creating them) tries them all.
for p in patients where store.vaultCount < patients.count {
    do {
        try await store.createVault(for: p, as: .patient(p), channel: .patientOnline)
    } catch {
        if error.code != .vaultAlreadyExists { fail("createVault: \(error)") }
    }
}
emit(["READY"])

/// Documents acknowledged in this run, for replacements and reads.
let written = Mutex<[(patient: Int, id: DocumentID, version: Int, author: Int)]>([])
/// Documents whose erasure began: an operation on one may find it gone.
let erasing = Mutex<Set<DocumentID>>([])
let counter = Atomic<Int>(seed * 1_000_000)

await withTaskGroup(of: Void.self) { group in
    for task in 0..<4 {
        group.addTask {
            var rng = SystemRandomNumberGenerator()
            _ = task
            while true {
                let op = counter.add(1, ordering: .relaxed).newValue
                let choice = Int.random(in: 0..<10, using: &rng)
                let known = written.withLock { $0.randomElement(using: &rng) }
                do {
                    if task == 0 && choice == 9 {
                        // A checkpoint the host publishes: after the kill,
                        // the recovered log must extend it.
                        let checkpoint = try await store.checkpoint()
                        emit(["CHECKPOINT", "checkpoint", "\(op)", Data(checkpoint.text.utf8).base64EncodedString()])
                    } else if choice < 5 || known == nil {
                        let p = Int.random(in: 0..<patients.count, using: &rng)
                        let a = Int.random(in: 0..<professionals.count, using: &rng)
                        let size = Int.random(in: 1...12_000, using: &rng)
                        emit(["BEGIN", "deposit", "\(op)", patients[p].digits, "\(size)"])
                        let draft = DocumentDraft(
                            typeCode: .consultationNote, category: .report, title: "op \(op)", createdAt: Date(), mimeType: "text/plain")
                        let m = try await store.deposit(draft, content: CrashContract.content(op: op, size: size), for: patients[p], as: professionals[a])
                        written.withLock { $0.append((p, m.id, m.version, a)) }
                        emit(["ACK", "deposit", "\(op)", patients[p].digits, "\(m.id)", "\(m.version)", "\(size)", "\(a)"])
                    } else if task == 2 && choice == 9 && Int.random(in: 0..<3, using: &rng) == 0 && !CrashContract.isPostgres(arguments[1]) {
                        // Only this task rotates: the key it rotates to is the other one.
                        let next = 1 - currentKey.withLock { $0 }
                        emit(["BEGIN", "rotate", "\(op)", "-", "\(next)"])
                        try await store.rotateMasterKey(to: .key(keys[next]), as: .auditReviewer(try SystemPrincipal("dpo")))
                        currentKey.withLock { $0 = next }
                        emit(["ACK", "rotate", "\(op)", "-", "\(next)"])
                    } else if task == 3 && choice == 9 && Int.random(in: 0..<3, using: &rng) == 0 {
                        // A compaction of what was erased so far, killed
                        // anywhere: the next open finishes its batch.
                        emit(["BEGIN", "compact", "\(op)", "-"])
                        let report = try await store.compact(as: .auditReviewer(try SystemPrincipal("dpo")))
                        emit(["ACK", "compact", "\(op)", "-", "\(report.recordsCompacted)"])
                    } else if task == 1 && choice >= 8, let k = known {
                        // No later operation picks it; one already under way
                        // may find it erased (NACK below).
                        written.withLock { $0.removeAll { $0.id == k.id } }
                        erasing.withLock { _ = $0.insert(k.id) }
                        emit(["BEGIN", "erase", "\(op)", patients[k.patient].digits, "\(k.id)"])
                        try await store.erase(
                            k.id, for: patients[k.patient], reason: try ErasureReason("crash test \(op)"), as: professionals[k.author])
                        emit(["ACK", "erase", "\(op)", patients[k.patient].digits, "\(k.id)"])
                    } else if choice < 7, let k = known {
                        let size = Int.random(in: 1...12_000, using: &rng)
                        emit(["BEGIN", "replace", "\(op)", patients[k.patient].digits, "\(k.id)", "\(size)"])
                        let draft = DocumentDraft(
                            typeCode: .consultationNote, category: .report, title: "op \(op)", createdAt: Date(), mimeType: "text/plain")
                        let m = try await store.replace(
                            k.id, with: draft, content: CrashContract.content(op: op, size: size), for: patients[k.patient], as: professionals[k.author])
                        written.withLock { $0.append((k.patient, m.id, m.version, k.author)) }
                        emit(["ACK", "replace", "\(op)", patients[k.patient].digits, "\(m.id)", "\(m.version)", "\(size)", "\(k.author)"])
                    } else if choice < 8 {
                        let p = Int.random(in: 0..<patients.count, using: &rng)
                        let a = Int.random(in: 0..<professionals.count, using: &rng)
                        emit(["BEGIN", "authorise", "\(op)", patients[p].digits, "\(a)"])
                        try await store.authorise(professionals[a], for: patients[p], as: .patient(patients[p]))
                        emit(["ACK", "authorise", "\(op)", patients[p].digits, "\(a)"])
                    } else if let k = known {
                        emit(["BEGIN", "read", "\(op)", patients[k.patient].digits, "\(k.id)", "\(k.version)"])
                        let bytes = try await store.content(
                            of: k.id, version: k.version, includingDeprecated: true, for: patients[k.patient], as: .patient(patients[k.patient]))
                        guard bytes.starts(with: Data("op:".utf8)) else { fail("read back wrong content") }
                        emit(["ACK", "read", "\(op)", patients[k.patient].digits, "\(k.id)", "\(k.version)"])
                    }
                } catch let e as PatientVaultError where e.code == .conflict {
                    emit(["NACK", "\(op)", "conflict"])
                } catch let e as PatientVaultError
                    where [.erased, .unknownDocument].contains(e.code) && erasing.withLock({ set in known.map { set.contains($0.id) } ?? false })
                {
                    emit(["NACK", "\(op)", "erased"])
                } catch {
                    fail("operation \(op): \(error)")
                }
            }
        }
    }
}
