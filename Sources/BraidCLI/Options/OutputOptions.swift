import ArgumentParser

struct OutputOptions: ParsableArguments {
    @Option(name: [.customLong("system"), .customLong("system-prompt")], help: "System prompt (default: the model's).")
    var system: String?

    @Flag(name: [.short, .long], help: "Hide the timings line.")
    var quiet = false
}
