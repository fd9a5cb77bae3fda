import Foundation
import Yams

/// A merge described in YAML, in mergekit's words where mergekit has them (`merge_method`,
/// `base_model`, `models: [{model, parameters: {weight, density}}]`, `parameters: {lambda,
/// normalize, rescale, …}`), plus braid's `aim:`, `evolver:` and `output:` sections.
/// Unknown keys are errors: a typo must not fall back to a default silently.
public struct MergeConfig: Sendable {
    public enum Method: String, Sendable, CaseIterable {
        case taskArithmetic = "task_arithmetic"
        case ties
        case dareLinear = "dare_linear"
        case dareTies = "dare_ties"
        case star
        case evolver
    }

    /// Where TIES draws its magnitude threshold: per tensor (mergekit) or over the whole task
    /// vector (the TIES paper's reference code).
    public enum Trim: String, Sendable { case tensor, model }

    public enum Output: Sendable, Equatable {
        /// a whole model GGUF, matrices in this encoding
        case model(GGMLType)
        /// one merged delta GGUF (general.type = delta) that loads as a task vector / route
        case delta(GGMLType)
    }

    public struct Model: Sendable {
        public var path: String
        /// (tensor-name filter, weight): the first entry whose filter is part of the tensor's
        /// name applies (mergekit's filtered parameters); nil filter matches all; no match → 1.
        public var weights: [(filter: String?, value: Float)] = []
        /// fraction of entries kept by TIES / DARE (nil: the global `density`)
        public var density: Float?
    }

    public struct AIM: Sendable {
        public var omega: Float = 0.4
        public var calibration = "prompts/aim-calibration.jsonl"
        public var limit: Int?
    }

    public struct Evolver: Sendable {
        public enum Granularity: String, Sendable { case layer, matrix }
        public enum Mutation: String, Sendable { case currentToRef = "current_to_ref", rand1 = "rand1" }
        public var granularity: Granularity = .layer
        public var mutation: Mutation = .currentToRef
        public var f: Float = 0.5
        public var cr: Float = 0.5
        public var iterations = 10
        public var devPerTask = 20
        public var tasks = ["arith", "json", "sentiment", "spell"]
        public var suites = "../shared/tasks"
        public var seed: UInt64 = 0
        public var batch = 16
    }

    public var method: Method
    public var base: String?
    public var models: [Model]
    public var lambda: Float
    public var density: Float = 1
    public var trim: Trim = .tensor
    public var normalize: Bool
    public var rescale: Bool
    public var seed: UInt64 = 0
    /// STAR: percent of the nuclear norm the kept singular values must reach.
    public var eta: Float = 40
    public var aim: AIM?
    public var evolver = Evolver()
    public var output: Output = .model(.q8_0)
    public var name: String?
    /// The YAML text, stored in the output for provenance.
    public var text: String

    /// Parses a YAML (or JSON, a subset of YAML) merge config.
    public init(yaml text: String, source: String = "config") throws {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw BraidError.invalidArgument("\(source): not valid YAML: \(error)")
        }
        var budget = YAMLTree.maxNodes
        let r = try Reader(try node.map { try YAMLTree.value($0, path: source, depth: 0, budget: &budget) }, path: source)
        try r.only(["merge_method", "base_model", "models", "parameters", "aim", "evolver", "output", "name"])
        let methodName = try r.string("merge_method")
        guard let m = Method(rawValue: methodName) else {
            throw BraidError.invalidArgument("\(source): unknown merge_method \"\(methodName)\" (known: \(Method.allCases.map(\.rawValue).joined(separator: ", ")); aim is a section applied after any of them)")
        }
        method = m
        self.text = text
        base = try r.optionalString("base_model")
        name = try r.optionalString("name")
        // mergekit's defaults per method (docs/merge_methods.md): TIES normalises (disjoint mean),
        // DARE rescales by 1/density; STAR averages, so its default lambda is 1.
        normalize = m == .ties
        rescale = m == .dareLinear || m == .dareTies
        lambda = 1

        let p = try r.section("parameters")
        try p.only(["lambda", "density", "trim", "normalize", "rescale", "seed", "eta"])
        lambda = try p.optionalFloat("lambda") ?? lambda
        density = try p.optionalFloat("density") ?? density
        if let t = try p.optionalString("trim") {
            guard let v = Trim(rawValue: t) else { throw BraidError.invalidArgument("\(p.path).trim must be tensor or model, got \(t)") }
            trim = v
        }
        normalize = try p.optionalBool("normalize") ?? normalize
        rescale = try p.optionalBool("rescale") ?? rescale
        seed = UInt64(try p.optionalInt("seed") ?? 0)
        eta = try p.optionalFloat("eta") ?? eta
        guard eta > 0 && eta <= 100 else { throw BraidError.invalidArgument("\(p.path).eta must be in (0, 100], got \(eta)") }

        let list = try r.list("models")
        guard !list.isEmpty else { throw BraidError.invalidArgument("\(source): models is empty") }
        models = try list.map { e in
            try e.only(["model", "parameters"])
            var model = Model(path: try e.string("model"))
            let mp = try e.section("parameters")
            try mp.only(["weight", "density"])
            model.weights = try mp.filtered("weight")
            model.density = try mp.optionalFloat("density")
            return model
        }
        for d in [density] + models.compactMap(\.density) where !(d > 0 && d <= 1) {
            throw BraidError.invalidArgument("\(source): density must be in (0, 1], got \(d)")
        }

        if r.has("aim") {
            let a = try r.section("aim")
            try a.only(["omega", "calibration", "limit"])
            var aim = AIM()
            aim.omega = try a.optionalFloat("omega") ?? aim.omega
            aim.calibration = try a.optionalString("calibration") ?? aim.calibration
            aim.limit = try a.optionalInt("limit")
            guard aim.omega >= 0 && aim.omega <= 1 else { throw BraidError.invalidArgument("\(a.path).omega must be in [0, 1], got \(aim.omega)") }
            self.aim = aim
        }

        let e = try r.section("evolver")
        if r.has("evolver") && m != .evolver { throw BraidError.invalidArgument("\(source): an evolver section needs merge_method: evolver") }
        try e.only(["granularity", "mutation", "f", "cr", "iterations", "dev_per_task", "tasks", "suites", "seed", "batch"])
        if let g = try e.optionalString("granularity") {
            guard let v = Evolver.Granularity(rawValue: g) else { throw BraidError.invalidArgument("\(e.path).granularity must be layer or matrix, got \(g)") }
            evolver.granularity = v
        }
        if let g = try e.optionalString("mutation") {
            guard let v = Evolver.Mutation(rawValue: g) else { throw BraidError.invalidArgument("\(e.path).mutation must be current_to_ref or rand1, got \(g)") }
            evolver.mutation = v
        }
        evolver.f = try e.optionalFloat("f") ?? evolver.f
        evolver.cr = try e.optionalFloat("cr") ?? evolver.cr
        evolver.iterations = try e.optionalInt("iterations") ?? evolver.iterations
        evolver.devPerTask = try e.optionalInt("dev_per_task") ?? evolver.devPerTask
        evolver.tasks = try e.optionalStrings("tasks") ?? evolver.tasks
        evolver.suites = try e.optionalString("suites") ?? evolver.suites
        evolver.seed = UInt64(try e.optionalInt("seed") ?? 0)
        evolver.batch = try e.optionalInt("batch") ?? evolver.batch
        if m == .evolver && models.count < 2 { throw BraidError.invalidArgument("\(source): evolver needs at least two models") }

        let o = try r.section("output")
        try o.only(["type"])
        if let t = try o.optionalString("type") {
            switch t.lowercased() {
            case "f16": output = .model(.f16)
            case "q8_0": output = .model(.q8_0)
            case "q4_1": output = .model(.q4_1)
            case "delta", "delta_q8_0": output = .delta(.q8_0)
            case "delta_f16": output = .delta(.f16)
            default: throw BraidError.invalidArgument("\(o.path).type must be f16, q8_0, q4_1, delta (Q8_0) or delta_f16, got \(t)")
            }
        }
    }

    /// The config file at `path`.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw BraidError.fileNotFound(path: path) }
        try self.init(yaml: String(decoding: data, as: UTF8.self), source: path)
    }

    /// Model `i`'s weight for `tensor`.
    public func weight(of i: Int, tensor: String) -> Float {
        models[i].weights.first { $0.filter.map(tensor.contains) ?? true }?.value ?? 1
    }

    /// The density model `i` trims or drops to.
    public func density(of i: Int) -> Float { models[i].density ?? density }
}

/// A YAML document as plain values ([String: Any], [Any], String, Int, Double, Bool, NSNull),
/// built from Yams' node tree rather than by `Yams.load`, which traps on a key that is not a
/// scalar and expands aliases without bound. Here keys are scalars and unique, and the document,
/// its aliases expanded, holds at most `maxNodes` values nested at most `maxDepth` deep.
enum YAMLTree {
    static let maxNodes = 10_000, maxDepth = 32

    static func value(_ node: Node, path: String, depth: Int, budget: inout Int) throws -> Any {
        budget -= 1
        guard budget >= 0 else {
            throw BraidError.invalidArgument("\(path): too large for a config (over \(maxNodes) values once its aliases are expanded)")
        }
        guard depth < maxDepth else { throw BraidError.invalidArgument("\(path) nests deeper than \(maxDepth) levels") }
        switch node {
        case .scalar(let scalar):
            switch node.tag.rawValue {
            case Tag.Name.null.rawValue: return NSNull()
            case Tag.Name.bool.rawValue: if let b = node.bool { return b }
            case Tag.Name.int.rawValue:
                guard let i = node.int else { throw BraidError.invalidArgument("\(path): \(scalar.string) is not a whole number braid can hold") }
                return i
            case Tag.Name.float.rawValue: if let d = node.float { return d }
            default: break
            }
            return scalar.string
        case .sequence(let items):
            var out: [Any] = []
            for (i, item) in items.enumerated() { out.append(try value(item, path: "\(path)[\(i)]", depth: depth + 1, budget: &budget)) }
            return out
        case .mapping(let pairs):
            var out: [String: Any] = [:]
            for (k, v) in pairs {
                guard case .scalar(let key) = k else { throw BraidError.invalidArgument("\(path): a key must be a plain string") }
                guard out[key.string] == nil else { throw BraidError.invalidArgument("\(path) has the key \(key.string) twice") }
                out[key.string] = try value(v, path: "\(path).\(key.string)", depth: depth + 1, budget: &budget)
            }
            return out
        case .alias:
            throw BraidError.invalidArgument("\(path): an alias to nothing")
        }
    }
}

/// Typed access to one YAML mapping, with the key path in every error.
private struct Reader {
    let map: [String: Any]
    let path: String

    init(_ node: Any?, path: String) throws {
        guard let m = node as? [AnyHashable: Any] else { throw BraidError.invalidArgument("\(path) must be a mapping of keys to values") }
        var keys: [String: Any] = [:]
        for (k, v) in m {
            let key = "\(k)"
            guard keys[key] == nil else { throw BraidError.invalidArgument("\(path) has the key \(key) twice") }
            keys[key] = v
        }
        map = keys
        self.path = path
    }

    func has(_ key: String) -> Bool { map[key] != nil }

    func only(_ keys: Set<String>) throws {
        let unknown = Set(map.keys).subtracting(keys)
        guard unknown.isEmpty else {
            throw BraidError.invalidArgument("\(path): unknown key\(unknown.count > 1 ? "s" : "") \(unknown.sorted().joined(separator: ", ")) (known: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    func string(_ key: String) throws -> String {
        guard let v = try optionalString(key) else { throw BraidError.invalidArgument("\(path): missing \(key)") }
        return v
    }

    func optionalString(_ key: String) throws -> String? {
        guard let v = map[key] else { return nil }
        guard let s = v as? String else { throw BraidError.invalidArgument("\(path).\(key) must be a string") }
        return s
    }

    func optionalStrings(_ key: String) throws -> [String]? {
        guard let v = map[key] else { return nil }
        guard let s = v as? [String] else { throw BraidError.invalidArgument("\(path).\(key) must be a list of strings") }
        return s
    }

    func optionalFloat(_ key: String) throws -> Float? {
        guard let v = map[key] else { return nil }
        if let d = v as? Double { return Float(d) }
        if let i = v as? Int { return Float(i) }
        throw BraidError.invalidArgument("\(path).\(key) must be a number")
    }

    /// A number, or a list of {filter: STRING, value: NUMBER} (filter optional).
    func filtered(_ key: String) throws -> [(filter: String?, value: Float)] {
        guard let v = map[key] else { return [] }
        if let x = try? optionalFloat(key) { return [(nil, x)] }
        guard let a = v as? [Any] else { throw BraidError.invalidArgument("\(path).\(key) must be a number or a list of {filter, value}") }
        return try a.enumerated().map { i, e in
            let r = try Reader(e, path: "\(path).\(key)[\(i)]")
            try r.only(["filter", "value"])
            guard let value = try r.optionalFloat("value") else { throw BraidError.invalidArgument("\(r.path): missing value") }
            return (try r.optionalString("filter"), value)
        }
    }

    func optionalInt(_ key: String) throws -> Int? {
        guard let v = map[key] else { return nil }
        guard let i = v as? Int, i >= 0 else { throw BraidError.invalidArgument("\(path).\(key) must be a whole number ≥ 0") }
        return i
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let v = map[key] else { return nil }
        guard let b = v as? Bool else { throw BraidError.invalidArgument("\(path).\(key) must be true or false") }
        return b
    }

    /// A nested mapping (empty when absent).
    func section(_ key: String) throws -> Reader {
        guard let v = map[key] else { return try Reader([AnyHashable: Any](), path: "\(path).\(key)") }
        return try Reader(v, path: "\(path).\(key)")
    }

    func list(_ key: String) throws -> [Reader] {
        guard let v = map[key] else { throw BraidError.invalidArgument("\(path): missing \(key)") }
        guard let a = v as? [Any] else { throw BraidError.invalidArgument("\(path).\(key) must be a list") }
        return try a.enumerated().map { try Reader($1, path: "\(path).\(key)[\($0)]") }
    }
}
