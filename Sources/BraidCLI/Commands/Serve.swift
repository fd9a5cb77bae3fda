import ArgumentParser
import Braid
import BraidServer
import Foundation
import Logging

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "OpenAI-compatible HTTP server: every request routed, all routes decoded together in one batch.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var taskOptions: TaskOptions
    @OptionGroup var interweaveOptions: InterweaveOptions

    @Option(help: "Address to listen on (loopback by default).")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on.")
    var port = 8080

    @Option(help: "Sequences decoded together (each with its own route).")
    var parallel = 8

    @Option(help: "Requests waiting for a sequence; beyond it 503 with Retry-After.")
    var queue = 64

    @Option(help: "API key: then every endpoint but /health needs Authorization: Bearer KEY (env BRAID_API_KEY).")
    var apiKey: String?

    @Option(help: "Key of POST /admin/reload (env BRAID_ADMIN_KEY); without it the endpoint is off.")
    var adminKey: String?

    @Option(help: "Largest request body, bytes.")
    var maxBody = 1 << 20

    @Option(help: "Seconds to let requests in flight finish after SIGTERM/SIGINT.")
    var drainTimeout = 30.0

    @Option(help: "Seconds a request may wait and run in all.")
    var timeout = 600.0

    @Option(help: "Columns of one forward step (decode tokens + prompt chunks).")
    var stepTokens = 64

    func validate() throws {
        guard (1...65535).contains(port) || port == 0 else { throw ValidationError("--port must be between 1 and 65535") }
        guard (1...32).contains(parallel) else { throw ValidationError("--parallel must be between 1 and 32") }
        guard queue >= 0 else { throw ValidationError("--queue must be ≥ 0") }
        guard maxBody >= 1024 else { throw ValidationError("--max-body must be at least 1024") }
        guard drainTimeout >= 0, timeout > 0 else { throw ValidationError("--drain-timeout and --timeout must be positive") }
        guard (1...64).contains(stepTokens) else { throw ValidationError("--step-tokens must be between 1 and 64") }
        guard taskOptions.tasks.isEmpty else { throw ValidationError("serve routes per request: choose tasks with the request's model field, not --task") }
        guard taskOptions.materialize == nil else { throw ValidationError("serve adds task terms on the fly; --materialize is not supported") }
        guard ["auto", "blend", "none"].contains(taskOptions.route) else { throw ValidationError("--route must be auto, blend or none") }
    }

    func run() async throws {
        var logger = Logger(label: "braid.serve")
        logger.logLevel = output.quiet ? .warning : .info
        var config = BraidServer.Configuration()
        config.host = host
        config.port = port
        config.apiKey = apiKey ?? ProcessInfo.processInfo.environment["BRAID_API_KEY"]
        config.adminKey = adminKey ?? ProcessInfo.processInfo.environment["BRAID_ADMIN_KEY"]
        config.maxBody = maxBody
        config.drainTimeout = drainTimeout
        config.requestTimeout = timeout
        config.sampling = try sampling.parameters(defaultTemperature: 0.8)
        let modelOptions = self.modelOptions, taskDir = taskOptions.taskDir, blendK = taskOptions.blendK
        let interweave = interweaveOptions.interweave
        var engineConfig = ServingEngine.Configuration()
        engineConfig.parallel = parallel
        engineConfig.queueLimit = queue
        engineConfig.stepTokenBudget = stepTokens
        engineConfig.interweave = interweave
        engineConfig.blendK = blendK
        let server = BraidServer(configuration: config, logger: logger)
        let log = logger, baseConfig = engineConfig
        try await server.run {
            let rt = try Runtime(modelOptions)
            var engineConfig = baseConfig
            engineConfig.contextSize = rt.contextLength
            let catalog = try TaskCatalog(directory: taskDir, model: rt.model)
            for r in catalog.refused { log.warning("refused \(r.file): \(r.reason)") }
            if let p = catalog.routerProblem { log.warning("no router: \(p)") }
            let engine = try ServingEngine(model: rt.model, tokenizer: rt.tokenizer, template: rt.template, catalog: catalog, configuration: engineConfig)
            return BraidServer.Loaded(engine: engine, tokenizer: rt.tokenizer, template: rt.template,
                                      modelName: URL(fileURLWithPath: modelOptions.model).lastPathComponent)
        }
    }
}
