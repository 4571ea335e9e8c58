import Foundation

/// A minimal Prometheus registry: counters and histograms updated as things happen, and gauges read at
/// scrape time, rendered in the text exposition format (version 0.0.4).
///
/// Names and labels are Cilium's and Hubble's (`cilium_drop_count_total{reason,direction}`, …) so that
/// existing dashboards and alerts work unchanged.
public final class MetricRegistry: @unchecked Sendable {
    public enum Kind: String, Sendable { case counter, gauge, histogram }

    struct Family {
        var help: String
        var kind: Kind
        var buckets: [Double] = []
        var values: [[String: String]: Double] = [:]
        var histograms: [[String: String]: Histogram] = [:]
    }

    struct Histogram {
        var counts: [UInt64]
        var sum = 0.0
        var count: UInt64 = 0
    }

    private let lock = NSLock()
    private var families: [String: Family] = [:]
    /// Gauges computed at scrape time: name → (help, samples).
    private var collectors: [(name: String, help: String, kind: Kind, collect: @Sendable () -> [([String: String], Double)])] = []

    public init() {}

    /// Declares a family up front, so that it is exposed (with no samples) before anything happened.
    public func declare(_ name: String, _ kind: Kind, help: String, buckets: [Double] = []) {
        lock.withLock {
            if families[name] == nil { families[name] = Family(help: help, kind: kind, buckets: buckets) }
        }
    }

    public func add(_ name: String, _ labels: [String: String] = [:], _ value: Double = 1) {
        lock.withLock { families[name, default: Family(help: "", kind: .counter)].values[labels, default: 0] += value }
    }

    public func set(_ name: String, _ labels: [String: String] = [:], _ value: Double) {
        lock.withLock { families[name, default: Family(help: "", kind: .gauge)].values[labels] = value }
    }

    public func observe(_ name: String, _ labels: [String: String] = [:], _ value: Double) {
        lock.withLock {
            guard var family = families[name], family.kind == .histogram else { return }
            var h = family.histograms[labels] ?? Histogram(counts: Array(repeating: 0, count: family.buckets.count))
            for (i, bound) in family.buckets.enumerated() where value <= bound { h.counts[i] += 1 }
            h.sum += value
            h.count += 1
            family.histograms[labels] = h
            families[name] = family
        }
    }

    /// A family whose samples are read when scraped (kernel counters, endpoint states, map pressure).
    public func collect(_ name: String, _ kind: Kind, help: String, _ body: @escaping @Sendable () -> [([String: String], Double)]) {
        lock.withLock { collectors.append((name, help, kind, body)) }
    }

    // MARK: Exposition

    public func render() -> String {
        var out = ""
        let (snapshot, scraped) = lock.withLock { (families, collectors) }
        var all = snapshot
        for c in scraped {
            var f = all[c.name] ?? Family(help: c.help, kind: c.kind)
            for (labels, v) in c.collect() { f.values[labels] = v }
            all[c.name] = f
        }
        for name in all.keys.sorted() {
            let f = all[name]!
            out += "# HELP \(name) \(f.help)\n# TYPE \(name) \(f.kind.rawValue)\n"
            if f.kind == .histogram {
                for labels in f.histograms.keys.sorted(by: MetricRegistry.labelOrder) {
                    let h = f.histograms[labels]!
                    for (i, bound) in f.buckets.enumerated() {
                        out += "\(name)_bucket\(MetricRegistry.text(labels, extra: ("le", MetricRegistry.number(bound)))) \(h.counts[i])\n"
                    }
                    out += "\(name)_bucket\(MetricRegistry.text(labels, extra: ("le", "+Inf"))) \(h.count)\n"
                    out += "\(name)_sum\(MetricRegistry.text(labels)) \(MetricRegistry.number(h.sum))\n"
                    out += "\(name)_count\(MetricRegistry.text(labels)) \(h.count)\n"
                }
            } else {
                for labels in f.values.keys.sorted(by: MetricRegistry.labelOrder) {
                    out += "\(name)\(MetricRegistry.text(labels)) \(MetricRegistry.number(f.values[labels]!))\n"
                }
            }
        }
        return out
    }

    static func labelOrder(_ a: [String: String], _ b: [String: String]) -> Bool { text(a) < text(b) }

    static func text(_ labels: [String: String], extra: (String, String)? = nil) -> String {
        var pairs = labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        if let extra { pairs.append(extra) }
        guard !pairs.isEmpty else { return "" }
        return "{" + pairs.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}
