import ArgumentParser
import Braid
import Foundation

/// `--interweave`: decode the base and the routed stream side by side (IMSM).
struct InterweaveOptions: ParsableArguments {
    @Option(help: "Interweave the base and the routed stream at decode time: off, guarded (per token from the router's probability and both streams' confidence; the recommended mode), fixed:λ (hidden states; λ is the base's weight), fixed-logits:λ, adaptive, learned (TASK.gate.gguf beside each task vector, from braid train-gate).")
    var interweave: String = "off"

    func validate() throws {
        if interweave != "learned" { _ = try InterweaveGate.parse(interweave) }
    }

    /// Whether the gate needs the router's probability of the route.
    var needsPrior: Bool { (try? InterweaveGate.parse(interweave))??.needsPrior ?? false }

    /// The gate; a learned one is loaded for each of `vectors` and checked against it.
    func gate(for vectors: [TaskVector], model: LlamaModel) throws -> InterweaveGate? {
        guard interweave == "learned" else { return try InterweaveGate.parse(interweave) }
        var gates: [String: LearnedGate] = [:]
        for v in vectors {
            let path = Self.gatePath(for: v)
            guard FileManager.default.fileExists(atPath: path) else {
                throw ValidationError("no learned gate for task \(v.name) at \(path); train one with braid train-gate --task \(v.name)")
            }
            gates[v.name] = try LearnedGate(path: path, for: v, dim: model.config.embeddingLength)
        }
        return .learned(gates)
    }

    /// TASK.gate.gguf beside TASK.tv.gguf.
    static func gatePath(for vector: TaskVector) -> String { TaskCatalog.gatePath(for: vector) }
}
