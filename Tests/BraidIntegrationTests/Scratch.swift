import Foundation
import Testing
import Braid

@Test func scratchStep0() throws {
    let model = try Fixtures.model()
    let ref = try Fixtures.json("reference.json")
    for p in ["a","b","c","d","e"] {
    let chat = (ref["chat"] as! [String: Any])[p] as! [String: Any]
    let promptIDs = (chat["prompt_token_ids"] as! [Int]).map(Int32.init)
    let cache = model.makeCache(capacity: 128)
    let logits = Array(try model.prefill(promptIDs, cache: cache))
    let top = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(5)
    print(p, top.map { ($0, logits[$0]) }, (chat["step0_top5"] as! [[String: Any]]).map { ($0["id"]!, $0["logit"]!) })
    }
}
