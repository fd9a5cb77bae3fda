import ArgumentParser
import Braid

@main
struct BraidCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "braid",
        abstract: "A CPU LLM runtime: one base model, many fine-tunes as 1-bit task vectors.",
        subcommands: [Generate.self, Chat.self, Run.self, Compress.self, Eval.self, Footprint.self, Bench.self, RouterCommand.self, TrainGate.self, GateEvidenceCommand.self, Agreement.self, Merge.self, Serve.self, PerplexityCommand.self, SourceStates.self],
        defaultSubcommand: nil)
}
