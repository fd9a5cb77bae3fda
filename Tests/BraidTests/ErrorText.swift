import Braid

/// The message of the BraidError `body` throws ("no error" or the foreign error otherwise), so a
/// refusal test asserts which refusal it got, not merely that something failed.
func errorText(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "no error"
    } catch let e as BraidError {
        return e.description
    } catch {
        return "not a BraidError: \(error)"
    }
}
