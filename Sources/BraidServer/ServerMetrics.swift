import Braid
import Foundation
import Prometheus

/// What /metrics shows: request counts by endpoint and status, token counts, latency
/// histograms, and the engine's state (active sequences, queue, resident task vectors, RSS).
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let firstToken: DurationHistogram
    private let duration: DurationHistogram

    init() {
        let buckets: [Duration] = [.milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
                                   .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30), .seconds(60)]
        firstToken = registry.makeDurationHistogram(descriptor: Self.metric("braid_time_to_first_token", unit: "seconds", help: "From admission to the first token"), buckets: buckets)
        duration = registry.makeDurationHistogram(descriptor: Self.metric("braid_request_duration", unit: "seconds", help: "From admission to the last token"), buckets: buckets)
    }

    /// A metric's name (the unit, if any, is its last part) and help text.
    private static func metric(_ name: String, unit: String = "", help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: unit, helpText: help)
    }

    func request(_ endpoint: String, status: Int) {
        registry.makeCounter(descriptor: Self.metric("braid_requests", unit: "total", help: "HTTP requests answered"), labels: [("endpoint", endpoint), ("status", String(status))]).increment()
    }

    func finished(_ usage: ServingUsage, route: String) {
        firstToken.recordSeconds(usage.firstTokenSeconds)
        duration.recordSeconds(usage.totalSeconds)
        registry.makeCounter(descriptor: Self.metric("braid_completions", unit: "total", help: "Answers finished, by route"), labels: [("route", route)]).increment()
    }

    /// The registry's text plus the engine's gauges, read now.
    func render(engine: ServingEngine?) -> String {
        var bytes: [UInt8] = []
        if let engine {
            let s = engine.snapshot()
            let catalog = engine.currentCatalog
            registry.makeGauge(descriptor: Self.metric("braid_active_sequences", help: "Sequences in the decode batch")).set(Double(s.active))
            registry.makeGauge(descriptor: Self.metric("braid_queued_requests", help: "Requests waiting for a sequence")).set(Double(s.queued))
            registry.makeGauge(descriptor: Self.metric("braid_engine_steps", help: "Forward steps run")).set(Double(s.steps))
            registry.makeGauge(descriptor: Self.metric("braid_engine_step_seconds", help: "Seconds spent in forward steps")).set(s.stepSeconds)
            registry.makeGauge(descriptor: Self.metric("braid_prompt_tokens", help: "Prompt tokens admitted")).set(Double(s.promptTokens))
            registry.makeGauge(descriptor: Self.metric("braid_generated_tokens", help: "Tokens produced by steps")).set(Double(s.generatedTokens))
            registry.makeGauge(descriptor: Self.metric("braid_task_vectors_resident", help: "Task vectors being served")).set(Double(catalog.vectors.count))
            registry.makeGauge(descriptor: Self.metric("braid_task_vectors_refused", help: "Task vector files refused at the last scan")).set(Double(catalog.refused.count))
            registry.makeGauge(descriptor: Self.metric("braid_resident_bytes", help: "Resident set size of the process")).set(Double(MemoryReport.current().rss))
        }
        registry.emit(into: &bytes)
        var text = String(decoding: bytes, as: UTF8.self)
        if let engine {
            // One line per resident vector: the set changes on reload, so it is written, not registered.
            text += "# HELP braid_task_vector_bytes Bytes of each resident task vector\n# TYPE braid_task_vector_bytes gauge\n"
            for v in engine.currentCatalog.vectors { text += "braid_task_vector_bytes{task=\"\(v.name)\"} \(v.byteCount)\n" }
        }
        return text
    }
}

extension DurationHistogram {
    func recordSeconds(_ s: Double) { record(.nanoseconds(Int64(max(0, s) * 1e9))) }
}
