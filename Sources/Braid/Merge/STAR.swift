import COpenBLAS

/// STAR (METHODS.md §4): per task and matrix, keep the leading singular directions that carry
/// η % of the nuclear norm, scale the kept singular values up so the nuclear norm is unchanged,
/// then average the tasks. Small spectral components are where merged tasks conflict.
public enum STAR {
    /// Replaces the rows × columns row-major `matrix` by its truncated, rescaled SVD; returns the
    /// rank kept. η = 100 keeps every direction (the input, up to rounding).
    @discardableResult
    public static func truncate(_ matrix: inout [Float], rows: Int, columns: Int, eta: Float) -> Int {
        // LAPACK is column-major: the row-major m × n matrix is the column-major n × m matrix
        // Aᵀ. Truncating Aᵀ's SVD and writing it back in the same layout truncates A's.
        let m = Int32(columns), n = Int32(rows)
        let k = Int(min(m, n))
        var s = [Float](repeating: 0, count: k)
        var u = [Float](repeating: 0, count: Int(m) * k)
        var vt = [Float](repeating: 0, count: k * Int(n))
        var a = matrix
        let info = gesdd("S", m, n, &a, &s, &u, m, &vt, Int32(k))
        guard info == 0 else { return k }  // no convergence: leave the matrix as it is

        let r = rank(s, eta: eta)
        let total = s.reduce(0.0) { $0 + Double($1) }, kept = s.prefix(r).reduce(0.0) { $0 + Double($1) }
        let factor = kept > 0 ? Float(total / kept) : 0
        // U[:, :r] · diag(σ'), then · Vᵀ[:r, :]
        for j in 0..<r {
            let sigma = s[j] * factor
            for i in 0..<Int(m) { u[j * Int(m) + i] *= sigma }
        }
        cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, n, Int32(r), 1, u, m, vt, Int32(k), 0, &matrix, m)
        return r
    }

    /// r = min{k : Σ_{i≤k} σ_i ≥ η/100 · Σ σ} (σ descending).
    public static func rank(_ s: [Float], eta: Float) -> Int {
        if eta >= 100 { return s.count }
        let target = Double(eta) / 100 * s.reduce(0.0) { $0 + Double($1) }
        var cumulative = 0.0
        for (i, v) in s.enumerated() {
            cumulative += Double(v)
            if cumulative >= target { return i + 1 }
        }
        return s.count
    }

    /// Singular values of a row-major matrix (descending), for checks and reports.
    public static func singularValues(_ matrix: [Float], rows: Int, columns: Int) -> [Float] {
        var s = [Float](repeating: 0, count: min(rows, columns))
        var a = matrix, u: [Float] = [0], vt: [Float] = [0]
        _ = gesdd("N", Int32(columns), Int32(rows), &a, &s, &u, 1, &vt, 1)
        return s
    }

    /// LAPACK's sgesdd on the column-major m × n `a` (destroyed), with its workspace query first;
    /// returns LAPACK's info (0: converged).
    private static func gesdd(_ job: Character, _ m: Int32, _ n: Int32, _ a: inout [Float], _ s: inout [Float],
                              _ u: inout [Float], _ ldu: Int32, _ vt: inout [Float], _ ldvt: Int32) -> Int32 {
        var jobz = Int8(job.asciiValue!), m = m, n = n, lda = m, ldu = ldu, ldvt = ldvt, info: Int32 = 0
        var iwork = [Int32](repeating: 0, count: 8 * Int(min(m, n)))
        var query: Float = 0, lwork: Int32 = -1
        sgesdd_(&jobz, &m, &n, &a, &lda, &s, &u, &ldu, &vt, &ldvt, &query, &lwork, &iwork, &info)
        lwork = Int32(query)
        var work = [Float](repeating: 0, count: Int(lwork))
        sgesdd_(&jobz, &m, &n, &a, &lda, &s, &u, &ldu, &vt, &ldvt, &work, &lwork, &iwork, &info)
        return info
    }
}
