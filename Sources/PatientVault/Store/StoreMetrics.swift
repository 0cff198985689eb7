import CoreMetrics

/// What the store counts and times, through swift-metrics (the host
/// bootstraps a backend, or gives one in ``Configuration/metricsFactory``;
/// with neither, nothing is kept):
///
/// - `patientvault_operations_total`, a counter per `action` and `outcome`
///   (`allowed`, `denied`, `abandoned`): every audited operation on an
///   existing vault, exactly as its audit entry says (vault creations and
///   store-level calls are not counted);
/// - `patientvault_operation_duration`, a timer per `action`: from the call
///   to its answer, durable wait included;
/// - `patientvault_durability_lost_total`: calls answered `durabilityLost`;
/// - `patientvault_checkpoints_total`: signed checkpoints made;
/// - `patientvault_compacted_bytes_total`: bytes of sealed content compaction removed.
///
/// Dimensions are action and outcome names only: no patient, vault,
/// document or principal. The metrics are made once, at open; an operation
/// costs a dictionary lookup and the backend's own work.
final class StoreMetrics: Sendable {
    private let operations: [VaultAction: [AuditOutcome: Counter]]
    private let durations: [VaultAction: Timer]
    let durabilityLost: Counter
    let checkpoints: Counter
    /// Bytes of sealed content compaction removed.
    let compactedBytes: Counter

    init(factory: (any MetricsFactory)?) {
        func counter(_ label: String, _ dimensions: [(String, String)] = []) -> Counter {
            factory.map { Counter(label: label, dimensions: dimensions, factory: $0) } ?? Counter(label: label, dimensions: dimensions)
        }
        var operations: [VaultAction: [AuditOutcome: Counter]] = [:]
        var durations: [VaultAction: Timer] = [:]
        for action in VaultAction.allCases {
            for outcome in [AuditOutcome.allowed, .denied, .abandoned] {
                operations[action, default: [:]][outcome] = counter(
                    "patientvault_operations_total", [("action", action.rawValue), ("outcome", outcome.rawValue)])
            }
            let dimensions = [("action", action.rawValue)]
            durations[action] = factory.map { Timer(label: "patientvault_operation_duration", dimensions: dimensions, factory: $0) }
                ?? Timer(label: "patientvault_operation_duration", dimensions: dimensions)
        }
        self.operations = operations
        self.durations = durations
        durabilityLost = counter("patientvault_durability_lost_total")
        checkpoints = counter("patientvault_checkpoints_total")
        compactedBytes = counter("patientvault_compacted_bytes_total")
    }

    /// Counts one operation with the outcome its entry records, and times it.
    func record(_ action: VaultAction, _ outcome: AuditOutcome, since start: ContinuousClock.Instant) {
        operations[action]?[outcome]?.increment()
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        durations[action]?.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
