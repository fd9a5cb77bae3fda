// braid-fuzz-server: libFuzzer target for braid serve's request decoder (README: Fuzzing;
// scripts/fuzz.sh). Separate from braid-fuzz because it links the HTTP stack (Hummingbird, NIO),
// which takes several times longer to build with the sanitizers than the Braid library.
import Braid
import BraidFuzzKit
import BraidServer
import Foundation

/// A chat (or text) completion body, decoded and checked as the server does, into the request
/// the engine would run: the real vocabulary and template, two tiny task vectors to route to.
let translation = RequestTranslation(tokenizer: Fixtures.realTokenizer, template: Fixtures.realTemplate, catalog: Fixtures.tinyCatalog,
                                     defaults: SamplingParameters(), contextSize: 2048, timeout: 60)

FuzzMain.run([
    FuzzTarget(name: "chat", summary: "braid serve's request decoder: a chat (or text) completion body to the engine's request",
               prepare: { _ = translation }) { data in
        let body = Data(data)
        if let r = attempt("chat body", { try BraidServer.decodeJSON(body, as: ChatCompletionRequest.self) }) {
            blackHole(attempt("chat request") { try translation.chat(r) })
        }
        if let r = attempt("completion body", { try BraidServer.decodeJSON(body, as: CompletionRequest.self) }) {
            blackHole(attempt("completion request") { try translation.completion(r) })
        }
    },
])
