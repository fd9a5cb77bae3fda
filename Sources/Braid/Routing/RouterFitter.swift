import Foundation

/// Fits the router from labelled features: class centroids after standardising the features,
/// and a multinomial logistic regression (full-batch gradient descent, L2) on the same.
public enum RouterFitter {
    /// `labels[i]` is a task index, or `taskCount` for "none".
    public static func fit(features: [[Float]], labels: [Int], taskCount: Int, classifier: String = "linear", featureLayers: Int? = nil,
                           threshold: Float = 0.5, temperature: Float = 0.05, epochs: Int = 300,
                           learningRate: Float = 0.5, l2: Float = 1e-3) -> [RouterData] {
        let d = features[0].count, k = taskCount + 1
        let (mean, scale, z) = standardised(features)

        var centroids = [[Float]](repeating: [Float](repeating: 0, count: d), count: k)
        var counts = [Int](repeating: 0, count: k)
        for (x, y) in zip(z, labels) {
            let len = max(x.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            for j in 0..<d { centroids[y][j] += x[j] / len }
            counts[y] += 1
        }
        for c in 0..<k where counts[c] > 0 { centroids[c] = centroids[c].map { $0 / Float(counts[c]) } }

        let (w, b) = softmaxRegression(z, labels, classes: k, epochs: epochs, learningRate: learningRate, l2: l2)
        let shared = RouterData.Shared(featureMean: mean, featureScale: scale, noneCentroid: centroids[taskCount],
                                       noneWeight: w[taskCount], noneBias: b[taskCount], threshold: threshold,
                                       temperature: temperature, classifier: classifier, featureLayers: featureLayers)
        return (0..<taskCount).map { RouterData(shared: shared, centroid: centroids[$0], weight: w[$0], bias: b[$0]) }
    }

    /// Adds an early stage (a linear classifier on features from `featureLayers` blocks, the same
    /// prompts in the same order) to a fitted router.
    public static func addEarlyStage(to data: [RouterData], features: [[Float]], labels: [Int], featureLayers: Int,
                                     confidence: Float, epochs: Int = 300, learningRate: Float = 0.5, l2: Float = 1e-3) -> [RouterData] {
        let taskCount = data.count
        let (mean, scale, z) = standardised(features)
        let (w, b) = softmaxRegression(z, labels, classes: taskCount + 1, epochs: epochs, learningRate: learningRate, l2: l2)
        let early = RouterData.EarlyStage(featureLayers: featureLayers, featureMean: mean, featureScale: scale,
                                          noneWeight: w[taskCount], noneBias: b[taskCount], confidence: confidence)
        return data.enumerated().map { i, d in
            var d = d
            d.shared.early = early
            d.earlyWeight = w[i]
            d.earlyBias = b[i]
            return d
        }
    }

    /// Per-feature mean and standard deviation, and the features standardised by them.
    static func standardised(_ features: [[Float]]) -> ([Float], [Float], [[Float]]) {
        let d = features[0].count, n = features.count
        var mean = [Float](repeating: 0, count: d)
        for f in features { for j in 0..<d { mean[j] += f[j] / Float(n) } }
        var scale = [Float](repeating: 0, count: d)
        for f in features { for j in 0..<d { scale[j] += (f[j] - mean[j]) * (f[j] - mean[j]) / Float(n) } }
        scale = scale.map { max($0.squareRoot(), 1e-6) }
        return (mean, scale, features.map { f in (0..<d).map { (f[$0] - mean[$0]) / scale[$0] } })
    }

    /// Class-balanced multinomial logistic regression: full-batch gradient descent with L2.
    static func softmaxRegression(_ z: [[Float]], _ labels: [Int], classes k: Int, epochs: Int, learningRate: Float,
                                  l2: Float) -> ([[Float]], [Float]) {
        let d = z[0].count, n = z.count
        var counts = [Int](repeating: 0, count: k)
        for y in labels { counts[y] += 1 }
        var w = [[Float]](repeating: [Float](repeating: 0, count: d), count: k)
        var b = [Float](repeating: 0, count: k)
        let classWeight = counts.map { $0 > 0 ? Float(n) / Float(k * $0) : 0 }
        for _ in 0..<epochs {
            var gw = [[Float]](repeating: [Float](repeating: 0, count: d), count: k)
            var gb = [Float](repeating: 0, count: k)
            for (x, y) in zip(z, labels) {
                var s = (0..<k).map { c in zip(w[c], x).reduce(b[c]) { $0 + $1.0 * $1.1 } }
                let m = s.max()!
                s = s.map { expf($0 - m) }
                let total = s.reduce(0, +)
                for c in 0..<k {
                    let g = (s[c] / total - (c == y ? 1 : 0)) * classWeight[y] / Float(n)
                    gb[c] += g
                    for j in 0..<d { gw[c][j] += g * x[j] }
                }
            }
            for c in 0..<k {
                b[c] -= learningRate * gb[c]
                for j in 0..<d { w[c][j] -= learningRate * (gw[c][j] + l2 * w[c][j]) }
            }
        }
        return (w, b)
    }

    /// Rewrites a task-vector file with router data in its metadata (tensors unchanged).
    public static func store(_ data: RouterData, in path: String) throws {
        let f = try GGUFFile(path: path)
        var w = GGUFWriter()
        w.alignment = f.alignment
        for k in f.metadataKeys where k != "general.alignment" { w.set(k, f.metadata[k]!) }
        let json = String(decoding: try JSONEncoder().encode(data), as: UTF8.self)
        w.set(RouterData.metadataKey, .string(json))
        for t in f.tensorList {
            try w.addTensor(t.name, shape: t.shape, type: t.type, data: Data(bytes: f.data(t), count: t.byteCount))
        }
        try w.write(to: path)
    }
}
