import Foundation

/// The task vectors a server holds: every `*.tv.gguf` of a folder made for the base, the router
/// their metadata carries, and the files it refused and why. A rescan reuses vectors whose file
/// did not change, so in-flight routes keep theirs and reloading costs only the new files.
public final class TaskCatalog: Sendable {
    public let directory: String
    public let vectors: [TaskVector]
    /// nil when no vector is present or they carry no router data.
    public let router: Router?
    /// (file, reason) of each file that could not be served.
    public let refused: [(file: String, reason: String)]
    /// Why there is no router although there are vectors (shown by /v1/models and the log).
    public let routerProblem: String?
    private let stamps: [String: String]

    public var names: [String] { vectors.map(\.name) }

    public func vector(named name: String) -> TaskVector? { vectors.first { $0.name == name } }

    /// Loads the folder; `previous` lends the vectors whose file is unchanged.
    public init(directory: String, model: LlamaModel, previous: TaskCatalog? = nil) throws {
        self.directory = directory
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".tv.gguf") }.sorted()
        let sha = files.isEmpty ? "" : try BaseIdentity.sha256(of: model)
        var vectors: [TaskVector] = []
        var refused: [(String, String)] = []
        var stamps: [String: String] = [:]
        for f in files {
            let path = URL(fileURLWithPath: directory).appendingPathComponent(f).path
            let stamp = (try? BaseIdentity.fileKey(path)) ?? ""
            do {
                let v: TaskVector
                if let old = previous?.vectors.first(where: { $0.path == path }), previous?.stamps[path] == stamp, !stamp.isEmpty {
                    v = old
                } else {
                    v = try TaskVector(path: path, base: model, baseSHA256: sha)
                }
                if let other = vectors.first(where: { $0.name == v.name }) {
                    refused.append((path, "task \(v.name) is already served from \(other.path)"))
                    continue
                }
                vectors.append(v)
                stamps[path] = stamp
            } catch {
                refused.append((path, "\(error)"))
            }
        }
        self.vectors = vectors
        self.refused = refused
        self.stamps = stamps
        if vectors.isEmpty {
            router = nil
            routerProblem = nil
        } else {
            do {
                router = try Router(tasks: vectors)
                routerProblem = nil
            } catch {
                router = nil
                routerProblem = "\(error)"
            }
        }
    }

    /// TASK.gate.gguf beside TASK.tv.gguf (the learned interweaving gate of a vector).
    public static func gatePath(for vector: TaskVector) -> String {
        let url = URL(fileURLWithPath: vector.path)
        let stem = url.lastPathComponent.components(separatedBy: ".").first ?? vector.name
        return url.deletingLastPathComponent().appendingPathComponent(stem + ".gate.gguf").path
    }

    /// The learned gates of every vector that has one beside it.
    public func learnedGates(dim: Int) throws -> [String: LearnedGate] {
        var gates: [String: LearnedGate] = [:]
        for v in vectors where FileManager.default.fileExists(atPath: Self.gatePath(for: v)) {
            gates[v.name] = try LearnedGate(path: Self.gatePath(for: v), for: v, dim: dim)
        }
        return gates
    }
}
